//! From probed images to chains: match every backing reference to an image,
//! find the tops, walk each chain top → base, and say what is wrong.
//!
//! Building a [`Forest`] ([`build_with`]) is three jobs, one file each:
//!
//! 1. `matching.rs`: index the images and match each backing reference to
//!    an image ([`Link`]) — the caller's mapping, the path, the longest
//!    common path suffix, the parent id, in that order;
//! 2. `rules.rs`: decide, once per image, everything said about it and its
//!    link (the name, how it was matched, libvirt's and qemu's format rules,
//!    parent ids, the probe's notes and safety findings) and how a walk goes
//!    on from it (where the chain ends and why);
//! 3. `walk.rs`: walk every chain from its top, iteratively, reusing the
//!    suffixes already walked, and give it its status ([`status_of`]).
//!
//! Each file's own docs say how (the matching order, the rules and their
//! sources in libvirt and qemu, the cost). Building is O(images + Σ chain
//! lengths) and uses no recursion.

#![warn(missing_docs)]

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::image::{Format, ImageInfo};
use crate::source::{SourceType, StorageSource};

mod matching;
mod rules;
mod walk;

pub use matching::{backing_path, extent_paths, normalize};
pub use rules::untrusted_reason;
pub use walk::status_of;

use rules::Step;

/// One image given to the builder: its name as the caller knows it (an
/// absolute path for the CLI, a dropped file's relative path in the browser)
/// and its probe result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Image {
    /// The name backing references are matched against.
    pub filename: String,
    /// The facts, or why there are none (flattened into the image's JSON).
    #[serde(flatten)]
    pub probe: Probed,
    /// Bytes the caller read to probe it (reported, not checked).
    pub bytes_read: u64,
}

/// A probe's outcome, as the builder takes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", untagged)]
pub enum Probed {
    /// The header's facts ([`crate::image::probe`]).
    Info(Box<ImageInfo>),
    /// The image could not be probed (a bad header, a failed read): the
    /// message. A chain that reaches it ends there, `unreadable`.
    Error {
        /// What went wrong, in words.
        error: String,
    },
}

impl Image {
    /// The facts, unless the probe failed.
    pub fn info(&self) -> Option<&ImageInfo> {
        match &self.probe {
            Probed::Info(i) => Some(i),
            Probed::Error { .. } => None,
        }
    }
    fn backing_name(&self) -> Option<&str> {
        self.info().and_then(|i| i.backing_filename.as_deref())
    }
}

/// How a backing reference was matched to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Match {
    /// The caller's mapping.
    Mapping,
    /// The resolved path is the image's name.
    Path,
    /// The longest common path suffix (several images share the basename).
    Suffix,
    /// The only image with that basename.
    Basename,
    /// The parent id recorded in the image is the image's id.
    Identity,
}

/// What a layer's backing reference points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Link {
    /// The image records no backing file.
    None,
    /// Another image of the set (index into `Forest::images`).
    Image {
        /// The backing image.
        index: usize,
        /// The backing name as a path, relative names joined to the
        /// image's directory ([`backing_path`]).
        resolved: String,
        /// How the reference was matched.
        #[serde(rename = "match")]
        how: Match,
    },
    /// A local file that is not in the set.
    Missing {
        /// The path looked for.
        resolved: String,
    },
    /// An untrusted backing name ([`BuildOptions::untrusted`],
    /// [`untrusted_reason`]) that is not in the set: the caller must not
    /// open it, so it is not looked for; the chain ends there.
    NotOpened {
        /// The path the name stands for.
        resolved: String,
    },
    /// Several images fit equally well: the user must choose.
    Ambiguous {
        /// The path looked for.
        resolved: String,
        /// The images that fit, by index.
        candidates: Vec<usize>,
    },
    /// A network or other non-file source: never opened, the chain ends here.
    Remote {
        /// The source the backing name gives.
        source: StorageSource,
    },
    /// The backing name could not be parsed.
    Unparsed {
        /// Why, in words.
        error: String,
    },
    /// The image itself could not be probed.
    Unprobed,
}

/// A chain's verdict: `ok`, or the first problem from the top down (what
/// libvirt or qemu would stumble on first). Every error diagnostic gives a
/// status other than `ok` ([`status_of`] is the one table from codes to
/// statuses); warnings and notes leave it `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The base has no backing file and no link has an error: libvirt
    /// starts the VM with this chain (warnings may remain).
    Ok,
    /// A backing file is not among the images (or not on disk).
    Missing,
    /// The chain comes back to one of its own images.
    Loop,
    /// libvirt refuses the chain: a layer does not record its backing's
    /// format and the probed backing has a backing of its own.
    UnprobedFormat,
    /// The chain ends at a network (or other non-file) source, never opened.
    Remote,
    /// A backing name longer than qemu reads, or a chain deeper than
    /// [`crate::limits::MAX_CHAIN_DEPTH`].
    TooLong,
    /// A backing name that cannot be parsed.
    BadName,
    /// Several images fit a backing name equally well.
    Ambiguous,
    /// An image of the chain could not be read.
    Unreadable,
    /// A layer records a format for its backing that is not the backing's
    /// real format.
    FormatMismatch,
    /// A layer records a backing format name that is not a format.
    BadFormat,
    /// More layers than libvirt's qemu driver accepts.
    TooDeep,
    /// An image is unsafe to attach (external data file, extents or names
    /// outside its directory, several formats in one file).
    Unsafe,
    /// An untrusted backing name, not opened ([`Link::NotOpened`]).
    Untrusted,
    /// Another error diagnostic (see its code).
    Error,
}

impl Status {
    /// The name used in JSON (`ok`, `missing`, `unprobed-format`, …).
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Loop => "loop",
            Status::UnprobedFormat => "unprobed-format",
            Status::Remote => "remote",
            Status::TooLong => "too-long",
            Status::BadName => "bad-name",
            Status::Ambiguous => "ambiguous",
            Status::Unreadable => "unreadable",
            Status::FormatMismatch => "format-mismatch",
            Status::BadFormat => "bad-format",
            Status::TooDeep => "too-deep",
            Status::Unsafe => "unsafe",
            Status::Untrusted => "untrusted",
            Status::Error => "error",
        }
    }
}

/// One chain from a top to its base.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    /// The top image's index (the image a disk's `<source>` names).
    pub top: usize,
    /// Image indices, top first.
    pub layers: Vec<usize>,
    /// The first problem from the top down, or `ok`.
    pub status: Status,
    /// What was noticed along the chain: each layer's and link's
    /// diagnostics, then the chain's own (depth, loops, …).
    pub diagnostics: Vec<Diagnostic>,
    /// How the walk ended: `Ok` at a base with no backing file (the chain
    /// is complete: XML gets a terminator), else what stopped it. `status`
    /// is the first problem along the chain, which may be above the end.
    pub end: Status,
}

/// All images, how they link, and the chains from every top.
#[derive(Debug, Clone, Serialize)]
pub struct Forest {
    /// The images as given, in order: every index refers to this list.
    pub images: Vec<Image>,
    /// `links[i]`: what image `i`'s backing reference points at.
    pub links: Vec<Link>,
    /// Images nobody references, each with its chain; then one chain for
    /// each loop no top reaches.
    pub chains: Vec<Chain>,
    /// `overlays[i]`: images whose backing is image `i` (answers "who
    /// depends on this base?").
    pub overlays: Vec<Vec<usize>>,
    /// Diagnostics about the set as a whole (duplicate basenames, …).
    pub diagnostics: Vec<Diagnostic>,
    /// `link_diagnostics[i]`: what was noticed about image `i` and its link
    /// (shared by every chain through it).
    #[serde(skip)]
    link_diagnostics: Vec<Vec<Diagnostic>>,
    /// `steps[i]`: how a walk goes on from image `i` (decided with its
    /// link's diagnostics).
    #[serde(skip)]
    steps: Vec<Step>,
    /// `chain_of[i]`: the chain that starts at image `i`, if one does.
    #[serde(skip)]
    chain_of: Vec<Option<usize>>,
}

/// How to build.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct BuildOptions {
    /// `(image, backing image)` by filename: the user's choice for a
    /// reference, overriding every other match.
    pub mapping: Vec<(String, String)>,
    /// `(image, backing image)` by filename where the backing name, though
    /// spelt differently (`./a`, `sub/../a`), is the same file as that image
    /// (the CLI knows it from the file system). Matched like the mapping.
    pub same_files: Vec<(String, String)>,
    /// Match by path only (the CLI, which follows real paths): no suffix,
    /// basename or identity matching.
    pub exact_paths: bool,
    /// The images come from elsewhere: flag backing names that reach outside
    /// (absolute paths outside image directories, `..` escapes, `json:`).
    pub untrusted: bool,
}

/// Build the forest with default options (dropped files: fuzzy matching).
///
/// # Example
///
/// A base shared by two overlays, and an overlay whose backing file is not
/// among the images (facts made by hand here; [`crate::image::probe`] gives
/// them from the headers):
///
/// ```
/// use backing_chain::chain::{self, Image, Link, Probed, Status};
/// use backing_chain::diag::Code;
/// use backing_chain::image::{Format, ImageInfo};
///
/// fn qcow2(filename: &str, backing: Option<&str>) -> Image {
///     let mut info = ImageInfo::new(Format::Qcow2);
///     info.backing_filename = backing.map(String::from);
///     info.backing_filename_format = backing.map(|_| "qcow2".to_string());
///     Image { filename: filename.into(), probe: Probed::Info(Box::new(info)), bytes_read: 0 }
/// }
///
/// let forest = chain::build(vec![
///     qcow2("/images/base.qcow2", None),
///     qcow2("/images/vm1.qcow2", Some("base.qcow2")),
///     qcow2("/images/vm2.qcow2", Some("/images/base.qcow2")),
///     qcow2("/images/old.qcow2", Some("gone.qcow2")),
/// ]);
///
/// // One chain per top (an image no other image references), top first.
/// let chains: Vec<(usize, &[usize], Status)> = forest
///     .chains
///     .iter()
///     .map(|c| (c.top, c.layers.as_slice(), c.status))
///     .collect();
/// assert_eq!(
///     chains,
///     [
///         (1, &[1, 0][..], Status::Ok),
///         (2, &[2, 0][..], Status::Ok),
///         (3, &[3][..], Status::Missing),
///     ]
/// );
/// // Who depends on the base?
/// assert_eq!(forest.overlays[0], [1, 2]);
/// // What old.qcow2 points at, and what is said about it.
/// assert!(matches!(&forest.links[3], Link::Missing { resolved } if resolved == "/images/gone.qcow2"));
/// assert_eq!(forest.chains[2].diagnostics[0].code, Code::MissingBacking);
/// ```
pub fn build(images: Vec<Image>) -> Forest {
    build_with(images, &BuildOptions::default())
}

/// Build the forest: match and judge every link, then walk the chains.
pub fn build_with(images: Vec<Image>, opts: &BuildOptions) -> Forest {
    let n = images.len();
    let mut links = Vec::with_capacity(n);
    let mut link_diagnostics = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    let mut diagnostics = Vec::new();
    {
        let index = matching::Index::new(&images);
        let mapping = matching::mapping(&images, opts, &mut diagnostics);
        for i in 0..n {
            let m = matching::link_of(i, &images, &index, &mapping, opts);
            let (d, step) = rules::judge(i, &images, &m, opts.untrusted);
            links.push(m.link);
            link_diagnostics.push(d);
            steps.push(step);
        }
        if !opts.exact_paths {
            rules::duplicate_basenames(&index, &images, &mut diagnostics);
        }
    }

    let mut overlays = vec![Vec::new(); n];
    for (i, l) in links.iter().enumerate() {
        if let Link::Image { index, .. } = l {
            overlays[*index].push(i);
        }
    }

    let mut forest = Forest {
        images,
        links,
        chains: Vec::new(),
        overlays,
        diagnostics,
        link_diagnostics,
        steps,
        chain_of: vec![None; n],
    };
    let chains = walk::all_chains(&forest);
    for (c, ch) in chains.iter().enumerate() {
        forest.chain_of[ch.top].get_or_insert(c);
    }
    forest.chains = chains;
    forest
}

impl Forest {
    /// The chain that starts at image `idx` (any image, not only a top).
    pub fn chain_from(&self, idx: usize) -> Chain {
        // A top's chain was walked when the forest was built; walking again
        // would cost O(images) per call (the walker's arrays).
        match self.chain_of.get(idx).copied().flatten() {
            Some(c) => self.chains[c].clone(),
            None => walk::Walker::new(self.images.len()).walk(idx, self, &[]),
        }
    }

    /// The format qemu and libvirt open layer `pos` of `chain` with: the
    /// format its overlay records when it records one (a raw-recorded file
    /// with a qcow2 header is raw — that header is guest data), else the
    /// format its header says. Use this, not the detected format alone, for
    /// the `<format type>` of a `<backingStore>`.
    pub fn layer_format(&self, chain: &Chain, pos: usize) -> Option<String> {
        let idx = *chain.layers.get(pos)?;
        let detected = self.images[idx].info().map(|i| i.format.name().to_string());
        if pos == 0 {
            return detected;
        }
        self.recorded_backing_format(chain.layers[pos - 1])
            .or(detected)
    }

    /// The format image `idx` records for its backing, as qemu and libvirt
    /// open the backing with it: a format name as it is, a protocol name
    /// (`file`, `nbd`, …) raw; `None` when none is recorded or the name is
    /// not a format.
    pub fn recorded_backing_format(&self, idx: usize) -> Option<String> {
        match self.images.get(idx)?.info().map(rules::recorded_format)? {
            rules::Recorded::Format(f) => Some(f.name().to_string()),
            rules::Recorded::Protocol(_) => Some("raw".to_string()),
            _ => None,
        }
    }

    /// What was noticed about image `idx` and its backing link.
    pub fn link_diagnostics(&self, idx: usize) -> &[Diagnostic] {
        &self.link_diagnostics[idx]
    }

    /// Every image's external data file (qcow2): the name its header
    /// gives, resolved against the image ([`data_file_source`]), and which
    /// of `names` (the images' and any other file's the caller knows) it
    /// is: the same name, else the first that ends its path.
    pub fn data_files(&self, names: &[String]) -> Vec<DataFile> {
        let mut out = Vec::new();
        for (i, img) in self.images.iter().enumerate() {
            let Some((name, src)) = data_file_source(img) else {
                continue;
            };
            let resolved = src.path.filter(|_| src.kind == SourceType::File);
            let file = resolved.as_deref().and_then(|p| {
                names.iter().find(|n| *n == p).or_else(|| {
                    names
                        .iter()
                        .find(|n| p.strip_suffix(n.as_str()).is_some_and(|d| d.ends_with('/')))
                })
            });
            out.push(DataFile {
                image: i,
                name: name.to_string(),
                file: file.cloned(),
                resolved,
            });
        }
        out
    }
}

/// An image's external data file ([`Forest::data_files`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFile {
    /// The image (index into [`Forest::images`]) whose header names it.
    pub image: usize,
    /// The name the header gives.
    pub name: String,
    /// The name resolved against the image, when it is a file.
    #[serde(skip)]
    pub resolved: Option<String>,
    /// The known file it is.
    pub file: Option<String>,
}

/// The external data file image `img` records (qcow2) and where it is:
/// the name resolved against the image as libvirt resolves a backing name
/// (a relative name joins the image's directory). `None` without one.
pub fn data_file_source(img: &Image) -> Option<(&str, StorageSource)> {
    let name = img.info()?.data_file()?.0;
    if name.is_empty() {
        return None;
    }
    let parsed =
        crate::source::resolve_backing(&StorageSource::file(img.filename.as_str()), name).ok()?;
    Some((name, parsed.source))
}

/// The source and format of layer `idx` as the XML writer wants them: the
/// image's own path and its detected format.
pub fn layer_source(images: &[Image], idx: usize) -> (StorageSource, Option<Format>) {
    let img = &images[idx];
    let src = StorageSource {
        kind: SourceType::File,
        path: Some(img.filename.clone()),
        ..Default::default()
    };
    (src, img.info().map(|i| i.format))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::diag::Code;

    /// A qcow2 image recording its backing (if any) as qcow2.
    pub fn img(name: &str, backing: Option<&str>) -> Image {
        let mut info = ImageInfo::new(Format::Qcow2);
        info.backing_filename = backing.map(str::to_string);
        info.backing_filename_format = backing.map(|_| "qcow2".into());
        Image {
            filename: name.into(),
            probe: Probed::Info(Box::new(info)),
            bytes_read: 0,
        }
    }

    pub fn names(f: &Forest, c: &Chain) -> Vec<String> {
        c.layers
            .iter()
            .map(|&l| f.images[l].filename.clone())
            .collect()
    }

    pub fn codes(c: &Chain) -> Vec<Code> {
        c.diagnostics.iter().map(|d| d.code).collect()
    }
}
