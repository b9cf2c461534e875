//! From probed images to chains: match every backing reference to an image,
//! find the tops, walk each chain top → base, and say what is wrong.
//!
//! # Matching a backing reference to an image
//!
//! The backing name is parsed ([`source::resolve_backing`]); a relative plain
//! file name is joined to the directory of the image naming it (no `..`
//! folding). Then, in order:
//!
//! 1. the caller's mapping ([`BuildOptions::mapping`]) overrides everything;
//! 2. an image whose name is the resolved path (as given, then with `.` and
//!    `..` folded lexically);
//! 3. unless [`BuildOptions::exact_paths`]: the images with the same basename,
//!    ranked by the longest common suffix of whole path components; a tie is
//!    `ambiguous` (the user chooses, through the mapping);
//! 4. unless `exact_paths`: identity — the one image whose id (VMDK CID,
//!    VHD/VHDX/VDI id) is this image's parent id.
//!
//! # Cost
//!
//! Everything is iterative (no recursion: a 10,000-deep chain runs on a small
//! stack). Indexing and matching are linear in the number of images; what a
//! link implies (format checks, parse notes, identity checks) is computed
//! once per link and shared by every chain through it. Each image is walked
//! once: a later chain that reaches an image an earlier (loop-free) chain
//! went through copies that chain's suffix — layers and diagnostics — instead
//! of walking it again. Building is O(images + Σ chain lengths), and Σ chain
//! lengths is the size of the output, since every chain lists its layers
//! (T tops over a D-deep base hold T × D layer indices).

use std::collections::HashMap;

use serde::Serialize;

use crate::diag::{shell_quote, Diagnostic, Severity};
use crate::image::{Format, ImageInfo};
use crate::limits;
use crate::source::{self, SourceType, StorageSource};

/// One image given to the builder: its name as the caller knows it (an
/// absolute path for the CLI, a dropped file's relative path in the browser)
/// and its probe result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Image {
    pub filename: String,
    #[serde(flatten)]
    pub probe: Probed,
    pub bytes_read: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", untagged)]
pub enum Probed {
    Info(Box<ImageInfo>),
    Error { error: String },
}

impl Image {
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
        index: usize,
        resolved: String,
        #[serde(rename = "match")]
        how: Match,
    },
    /// A local file that is not in the set.
    Missing { resolved: String },
    /// An untrusted backing name ([`BuildOptions::untrusted`],
    /// [`untrusted_reason`]) that is not in the set: the caller must not
    /// open it, so it is not looked for; the chain ends there.
    NotOpened { resolved: String },
    /// Several images fit equally well: the user must choose.
    Ambiguous {
        resolved: String,
        candidates: Vec<usize>,
    },
    /// A network or other non-file source: never opened, the chain ends here.
    Remote { source: StorageSource },
    /// The backing name could not be parsed.
    Unparsed { error: String },
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
    /// [`limits::MAX_CHAIN_DEPTH`].
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

/// The status an error diagnostic gives its chain (the one table of it).
pub fn status_of(code: &str) -> Status {
    match code {
        "missing-backing" => Status::Missing,
        "backing-loop" => Status::Loop,
        "backing-format-not-recorded" => Status::UnprobedFormat,
        "too-long" | "backing-name-too-long" => Status::TooLong,
        "bad-backing-name" => Status::BadName,
        "ambiguous-backing" => Status::Ambiguous,
        "unprobed" => Status::Unreadable,
        "missing-extent" => Status::Missing,
        "backing-format-mismatch" => Status::FormatMismatch,
        "backing-format-unknown" => Status::BadFormat,
        "too-deep-for-libvirt" => Status::TooDeep,
        c if UNSAFE_CODES.contains(&c) => Status::Unsafe,
        _ => Status::Error,
    }
}

/// Error codes of the image safety checks (the probes' inspector,
/// `image::safety`): an image unsafe to attach as it is.
const UNSAFE_CODES: [&str; 4] = [
    "external-data-file",
    "vmdk-extent-path",
    "vmdk-extent-protocol",
    "multiple-formats",
];

/// One chain from a top to its base.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub top: usize,
    /// Image indices, top first.
    pub layers: Vec<usize>,
    pub status: Status,
    pub diagnostics: Vec<Diagnostic>,
    /// How the walk ended: `Ok` at a base with no backing file (the chain
    /// is complete: XML gets a terminator), else what stopped it. `status`
    /// is the first problem along the chain, which may be above the end.
    pub end: Status,
}

/// All images, how they link, and the chains from every top.
#[derive(Debug, Clone, Serialize)]
pub struct Forest {
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

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Fold `.` and `..` lexically (for matching names only; links keep the
/// plain join).
pub fn normalize(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(l) if *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let j = parts.join("/");
    if abs {
        format!("/{j}")
    } else {
        j
    }
}

/// Longest common suffix of two paths, counted in whole components.
fn common_suffix_components(a: &str, b: &str) -> usize {
    a.rsplit('/')
        .zip(b.rsplit('/'))
        .take_while(|(x, y)| x == y && !x.is_empty())
        .count()
}

struct Index<'a> {
    by_path: HashMap<&'a str, usize>,
    by_norm: HashMap<String, usize>,
    by_base: HashMap<&'a str, Vec<usize>>,
    by_id: HashMap<&'a str, Vec<usize>>,
    norm: Vec<String>,
}

impl<'a> Index<'a> {
    fn new(images: &'a [Image]) -> Self {
        let n = images.len();
        let mut ix = Index {
            by_path: HashMap::with_capacity(n),
            by_norm: HashMap::with_capacity(n),
            by_base: HashMap::with_capacity(n),
            by_id: HashMap::new(),
            norm: Vec::with_capacity(n),
        };
        for (i, img) in images.iter().enumerate() {
            ix.by_path.entry(img.filename.as_str()).or_insert(i);
            let nm = normalize(&img.filename);
            ix.by_norm.entry(nm.clone()).or_insert(i);
            ix.norm.push(nm);
            ix.by_base
                .entry(basename(&img.filename))
                .or_default()
                .push(i);
            if let Some(id) = img
                .info()
                .and_then(|i| i.identity.as_ref())
                .and_then(|d| d.id.as_deref())
            {
                ix.by_id.entry(id).or_default().push(i);
            }
        }
        ix
    }
}

/// Build the forest with default options (dropped files: fuzzy matching).
pub fn build(images: Vec<Image>) -> Forest {
    build_with(images, &BuildOptions::default())
}

/// Build the forest.
pub fn build_with(images: Vec<Image>, opts: &BuildOptions) -> Forest {
    let n = images.len();
    let mut links = Vec::with_capacity(n);
    let mut link_diagnostics = Vec::with_capacity(n);
    let mut diagnostics = Vec::new();
    {
        let index = Index::new(&images);
        let by_name: HashMap<&str, usize> = images
            .iter()
            .enumerate()
            .map(|(i, m)| (m.filename.as_str(), i))
            .collect();
        let mut mapping: HashMap<&str, (usize, bool)> = HashMap::new();
        let pairs = opts
            .same_files
            .iter()
            .map(|p| (p, true))
            .chain(opts.mapping.iter().map(|p| (p, false)));
        for ((from, to), same) in pairs {
            match by_name.get(to.as_str()) {
                Some(&t) => {
                    mapping.insert(from.as_str(), (t, same));
                }
                None => diagnostics.push(Diagnostic::warning(
                    "mapping-unknown-image",
                    format!("the mapping names '{to}' as the backing of '{from}', but no such image was given"),
                )),
            }
        }
        for (i, img) in images.iter().enumerate() {
            let mut d = Vec::new();
            let link = link_of(i, &images, &index, &mapping, opts, &mut d);
            if let Link::Image { index: b, how, .. } = &link {
                // The user chose this backing over what the header names:
                // the fixes rebase onto the chosen image.
                let chosen = (*how == Match::Mapping
                    && mapping
                        .get(img.filename.as_str())
                        .is_some_and(|&(_, same)| !same)
                    && img.backing_name() != Some(images[*b].filename.as_str()))
                .then(|| images[*b].filename.as_str());
                layer_diagnostics(img, &images[*b], *how, chosen, &mut d);
            }
            image_diagnostics(img, &mut d);
            for x in &mut d {
                x.image.get_or_insert(i);
            }
            links.push(link);
            link_diagnostics.push(d);
        }
        // Duplicate basenames: matching by name may pick the wrong one.
        if !opts.exact_paths {
            let mut dups: Vec<(&&str, &Vec<usize>)> =
                index.by_base.iter().filter(|(_, v)| v.len() > 1).collect();
            dups.sort_by_key(|(_, v)| v[0]);
            for (b, v) in dups {
                diagnostics.push(Diagnostic::info(
                    "duplicate-basename",
                    format!(
                        "{} images are named '{b}' ({}): a backing reference by that name is matched by its directory, or is ambiguous",
                        v.len(),
                        v.iter()
                            .map(|&i| images[i].filename.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
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
        chain_of: vec![None; n],
    };

    // Tops: nobody's backing. Images reached by no top (loops) get a chain
    // of their own, starting at the first image of the loop not yet reached.
    let mut walker = Walker::new(n);
    let mut reached = vec![false; n];
    let mut chains: Vec<Chain> = Vec::new();
    for top in 0..n {
        if forest.overlays[top].is_empty() {
            let c = walker.walk(top, &forest, &chains);
            for &l in &c.layers {
                reached[l] = true;
            }
            walker.remember(chains.len(), &c);
            chains.push(c);
        }
    }
    for i in 0..n {
        if !reached[i] {
            let c = walker.walk(i, &forest, &chains);
            for &l in &c.layers {
                reached[l] = true;
            }
            walker.remember(chains.len(), &c);
            chains.push(c);
        }
    }
    for (c, ch) in chains.iter().enumerate() {
        forest.chain_of[ch.top].get_or_insert(c);
    }
    forest.chains = chains;
    forest
}

/// The path a file source's backing name stands for, seen from the image
/// `parent` (a local path): relative plain names joined to its directory.
pub fn backing_path(parent: &str, name: &str) -> Result<Option<String>, String> {
    let p = source::resolve_backing(&StorageSource::file(parent), name).map_err(|e| e.message)?;
    Ok(match p.source.kind {
        SourceType::File => p.source.path,
        _ => None,
    })
}

fn link_of(
    i: usize,
    images: &[Image],
    index: &Index,
    mapping: &HashMap<&str, (usize, bool)>,
    opts: &BuildOptions,
    d: &mut Vec<Diagnostic>,
) -> Link {
    let img = &images[i];
    let Some(info) = img.info() else {
        return Link::Unprobed;
    };
    let Some(name) = info.backing_filename.as_deref() else {
        return Link::None;
    };
    name_diagnostics(img, info, name, opts, d);
    if info.has_diagnostic("backing-name-too-long") {
        // qemu refuses to open the image: the name is never looked for.
        return Link::Unparsed {
            error: "it is longer than qemu reads".into(),
        };
    }
    let parsed = match source::resolve_backing(&StorageSource::file(img.filename.as_str()), name) {
        Ok(p) => p,
        Err(e) => return Link::Unparsed { error: e.message },
    };
    for mut pd in parsed.diagnostics {
        pd.message = format!("'{}': {}", img.filename, pd.message);
        d.push(pd);
    }
    if parsed.source.kind != SourceType::File {
        return Link::Remote {
            source: parsed.source,
        };
    }
    let resolved = parsed.source.path.clone().unwrap_or_default();
    if let Some(&(t, same)) = mapping.get(img.filename.as_str()) {
        let agrees = index.by_path.get(resolved.as_str()) == Some(&t);
        if same && !agrees {
            d.push(Diagnostic::info(
                "same-file",
                format!(
                    "the backing '{name}' of '{}' (resolved to '{resolved}') is the file '{}', spelt another way",
                    img.filename, images[t].filename
                ),
            ));
        } else if !agrees {
            d.push(Diagnostic::info(
                "matched-by-mapping",
                format!(
                    "the backing '{name}' of '{}' is '{}' by the given mapping",
                    img.filename, images[t].filename
                ),
            ));
        }
        return Link::Image {
            index: t,
            resolved,
            how: Match::Mapping,
        };
    }
    if let Some(&t) = index.by_path.get(resolved.as_str()) {
        return Link::Image {
            index: t,
            resolved,
            how: Match::Path,
        };
    }
    let norm = normalize(&resolved);
    if let Some(&t) = index.by_norm.get(norm.as_str()) {
        return Link::Image {
            index: t,
            resolved,
            how: Match::Path,
        };
    }
    let not_found = |resolved: String| {
        if opts.untrusted && untrusted_reason(name).is_some() {
            Link::NotOpened { resolved }
        } else {
            Link::Missing { resolved }
        }
    };
    if opts.exact_paths {
        return not_found(resolved);
    }
    if let Some(cands) = index.by_base.get(basename(&norm)) {
        let cands: Vec<usize> = cands.iter().copied().filter(|&c| c != i).collect();
        let mut best: Vec<usize> = Vec::new();
        let mut best_len = 0;
        for &c in &cands {
            let l = common_suffix_components(&index.norm[c], &norm);
            if l > best_len {
                best_len = l;
                best.clear();
            }
            if l == best_len {
                best.push(c);
            }
        }
        match best.len() {
            0 => {}
            1 => {
                let how = if cands.len() == 1 {
                    Match::Basename
                } else {
                    Match::Suffix
                };
                d.push(Diagnostic::info(
                    "matched-by-name",
                    format!(
                        "the backing '{name}' of '{}' (resolved to '{resolved}') is taken to be '{}', matched by {}",
                        img.filename,
                        images[best[0]].filename,
                        if how == Match::Basename { "its file name" } else { "the longest common path" }
                    ),
                ));
                return Link::Image {
                    index: best[0],
                    resolved,
                    how,
                };
            }
            _ => {
                return Link::Ambiguous {
                    resolved,
                    candidates: best,
                }
            }
        }
    }
    // Identity: the parent id recorded in the image.
    if let Some(pid) = info.identity.as_ref().and_then(|x| x.parent_id.as_deref()) {
        if let Some(c) = index.by_id.get(pid) {
            let c: Vec<usize> = c.iter().copied().filter(|&x| x != i).collect();
            match c.len() {
                0 => {}
                1 => {
                    d.push(Diagnostic::info(
                        "matched-by-identity",
                        format!(
                            "no image is named like the backing '{name}' of '{}'; '{}' is taken because its id {pid} is the recorded parent id",
                            img.filename, images[c[0]].filename
                        ),
                    ));
                    return Link::Image {
                        index: c[0],
                        resolved,
                        how: Match::Identity,
                    };
                }
                _ => {
                    return Link::Ambiguous {
                        resolved,
                        candidates: c,
                    }
                }
            }
        }
    }
    not_found(resolved)
}

/// Problems with the backing name itself.
fn name_diagnostics(
    img: &Image,
    info: &ImageInfo,
    name: &str,
    opts: &BuildOptions,
    d: &mut Vec<Diagnostic>,
) {
    let f = &img.filename;
    let max = match info.format {
        Format::Qcow2 | Format::Qcow => Some(limits::MAX_BACKING_NAME as usize),
        Format::Qed | Format::Vmdk => Some(limits::MAX_BACKING_NAME_PATH),
        _ => None,
    };
    // The probe says so itself when the header's length field is over the
    // limit (the name may be cut there); this is for facts from elsewhere.
    if let (Some(max), false) = (max, info.has_diagnostic("backing-name-too-long")) {
        if name.len() > max {
            d.push(Diagnostic::error(
                "backing-name-too-long",
                format!(
                    "the backing name of '{f}' is {} bytes long; {} allows at most {max}",
                    name.len(),
                    info.format
                ),
            ));
        }
    }
    if name.contains('\u{FFFD}') {
        d.push(Diagnostic::warning(
            "backing-name-not-utf8",
            format!("the backing name of '{f}' is not valid UTF-8; it was read with replacement characters and may not match the file"),
        ));
    }
    if !opts.untrusted {
        return;
    }
    let why = untrusted_reason(name);
    if let Some(why) = why {
        d.push(Diagnostic::warning(
            "untrusted-backing-name",
            format!("'{f}' comes from elsewhere and names its backing '{name}': {why}; check it before attaching it to a VM"),
        ));
    }
}

/// The files a VMDK descriptor's extents name, as qemu opens them: relative
/// names next to the descriptor, absolute ones as they are (`json:` and
/// protocol names, flagged by the probe, are left out). The caller checks
/// that each exists (`missing-extent`); the core does no I/O. Pairs of
/// (name as written, path).
pub fn extent_paths(img: &Image) -> Vec<(String, String)> {
    let Some(info) = img.info() else {
        return Vec::new();
    };
    info.vmdk_extents()
        .into_iter()
        .filter(|e| e.external)
        .filter_map(|e| {
            let name = e.file?;
            let path = backing_path(&img.filename, &name).ok().flatten()?;
            Some((name, path))
        })
        .collect()
}

/// Why a backing name from an untrusted image must not be opened without a
/// look: a `json:` name (any file, device or host), an absolute path outside
/// the usual image directories, a relative path climbing out of the image's
/// directory. `None` for a name that stays among images. Callers that open
/// backing files (the CLI with `--untrusted`, a console's host reader) do
/// not open a flagged name; the chain then ends there, `untrusted`.
pub fn untrusted_reason(name: &str) -> Option<String> {
    use crate::image::safety::NameKind;
    match NameKind::of(name) {
        NameKind::Protocol if name.starts_with("json:") => {
            Some("a json: name can point qemu at any file, device or host".to_string())
        }
        NameKind::Absolute | NameKind::Device => Some(format!(
            "the absolute path '{name}' is outside the usual image directories"
        )),
        NameKind::ClimbsOut => Some(format!(
            "the relative path '{name}' climbs out of the image's directory"
        )),
        _ => None,
    }
}

/// The image's own probe notes worth repeating in every chain through it.
fn image_diagnostics(img: &Image, d: &mut Vec<Diagnostic>) {
    let Some(info) = img.info() else { return };
    for pd in &info.diagnostics {
        let keep = pd.severity >= Severity::Warning
            || matches!(pd.code.as_str(), "encrypted" | "external-data-file");
        if keep {
            let mut pd = pd.clone();
            pd.message = format!("'{}': {}", img.filename, pd.message);
            d.push(pd);
        }
    }
}

/// Protocol names qemu accepts as a "format" and libvirt maps to raw.
const PROTOCOL_NAMES: [&str; 17] = [
    "file",
    "host_device",
    "host_cdrom",
    "nbd",
    "iscsi",
    "rbd",
    "gluster",
    "sheepdog",
    "vxhs",
    "nfs",
    "ssh",
    "http",
    "https",
    "ftp",
    "ftps",
    "tftp",
    "nvme",
];

/// Problems between an image and the backing image it names.
fn layer_diagnostics(
    img: &Image,
    backing: &Image,
    how: Match,
    chosen: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(info) = img.info() else { return };
    let Some(binfo) = backing.info() else { return };
    let name = info.backing_filename.as_deref().unwrap_or("");
    let detected = binfo.format;
    // Built only for a diagnostic that needs it (most layers have none).
    let fix = || {
        format!(
            "qemu-img rebase -u -f {} -F {} -b {} {}",
            info.format,
            detected,
            shell_quote(chosen.unwrap_or(name)),
            shell_quote(&img.filename)
        )
    };
    if let Some(c) = chosen {
        out.push(
            Diagnostic::info(
                "backing-chosen",
                format!(
                    "'{}' names '{name}' as its backing; '{c}' was chosen instead: the header still says '{name}' until it is rebased",
                    img.filename
                ),
            )
            .with_fix(fix()),
        );
    }
    // libvirt's rules for the backing's format (storage_file_probe.c,
    // virStorageSourceGetMetadataRecurse), which are not qemu's.
    match libvirt_backing_format(info) {
        LibvirtBacking::Recorded => {}
        LibvirtBacking::NotRead => out.push(Diagnostic::warning(
            "backing-not-read-by-libvirt",
            format!(
                "'{}' is a {} image backed by '{name}': libvirt reads backing names from qcow2, qcow, cow, qed and vmdk images only, so it sees '{}' as a single layer and gives qemu no backing for it",
                img.filename, info.format, img.filename
            ),
        )),
        how_probed => out.push(unrecorded_format(img, binfo, name, how_probed, fix)),
    }
    // qemu's rule: a recorded format is used as is (a vmdk's backing is
    // always opened as vmdk).
    match info.backing_filename_format.as_deref() {
        None => {}
        Some(recorded) => match Format::from_name(recorded) {
            Some(f) if f == detected => {}
            Some(Format::Raw) => out.push(
                Diagnostic::warning(
                    "backing-format-mismatch",
                    format!(
                        "'{}' records its backing '{name}' as raw, but that file starts with a {detected} header. A guest can write a {detected} header into a raw disk: if the backing is really raw, keep raw (treating it as {detected} would let the guest point qemu at other files); only if it really is {detected}, fix the metadata",
                        img.filename
                    ),
                )
                .with_fix(fix()),
            ),
            Some(f) => out.push(
                Diagnostic::error(
                    "backing-format-mismatch",
                    format!(
                        "'{}' records its backing '{name}' as {f}, but its header says {detected}: qemu will fail to open it",
                        img.filename
                    ),
                )
                .with_fix(fix()),
            ),
            None if PROTOCOL_NAMES.contains(&recorded) => out.push(
                Diagnostic::warning(
                    "backing-format-protocol",
                    format!(
                        "'{}' records backing format '{recorded}', which is a protocol, not a format: libvirt treats the backing '{name}' as raw{}",
                        img.filename,
                        if detected != Format::Raw {
                            format!(", but its header says {detected}")
                        } else {
                            String::new()
                        }
                    ),
                )
                .with_fix(fix()),
            ),
            None => out.push(
                Diagnostic::error(
                    "backing-format-unknown",
                    format!(
                        "'{}' records backing format '{recorded}', which is not an image format: qemu and libvirt refuse to open the backing '{name}'",
                        img.filename
                    ),
                )
                .with_fix(fix()),
            ),
        },
    }
    // Ids recorded for the parent (VMDK parentCID, VHD/VHDX parent ids).
    if how != Match::Identity {
        let pid = info.identity.as_ref().and_then(|x| x.parent_id.as_deref());
        let bid = binfo.identity.as_ref().and_then(|x| x.id.as_deref());
        if let (Some(pid), Some(bid)) = (pid, bid) {
            if !pid.eq_ignore_ascii_case(bid) {
                let what = match info.format {
                    Format::Vmdk => format!(
                        "its parentCID {pid} is not the CID {bid} of '{}': VMware refuses the chain (qemu does not check)",
                        backing.filename
                    ),
                    Format::Vhdx => format!(
                        "its parent linkage {pid} is not the data write GUID {bid} of '{}': the parent was changed after the differencing disk was made",
                        backing.filename
                    ),
                    _ => format!(
                        "its recorded parent id {pid} is not the id {bid} of '{}'",
                        backing.filename
                    ),
                };
                out.push(Diagnostic::warning(
                    "parent-id-mismatch",
                    format!("'{}': {what}", img.filename),
                ));
            }
        }
    }
}

/// What libvirt does with the format of an image's backing
/// (`storage_file_probe.c`: the `getBackingStore` of each format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LibvirtBacking {
    /// The format is recorded (qcow2's header extension; qed's no-probe flag
    /// means raw): used as is.
    Recorded,
    /// Not recorded (qcow2 without the extension; qcow v1, cow and vmdk
    /// always — `VIR_STORAGE_FILE_AUTO`): libvirt (6.1 and later) probes the
    /// backing and refuses it when the probed image has a backing of its own.
    Probed,
    /// qed without the no-probe flag (`VIR_STORAGE_FILE_AUTO_SAFE`): probed
    /// and followed, never refused for this.
    ProbedSafe,
    /// libvirt reads no backing name from this format (vpc, vhdx, vdi, …).
    NotRead,
}

fn libvirt_backing_format(info: &ImageInfo) -> LibvirtBacking {
    match info.format {
        Format::Qcow2 if info.backing_filename_format.is_some() => LibvirtBacking::Recorded,
        Format::Qcow2 | Format::Qcow | Format::Cow | Format::Vmdk => LibvirtBacking::Probed,
        Format::Qed if info.backing_filename_format.is_some() => LibvirtBacking::Recorded,
        Format::Qed => LibvirtBacking::ProbedSafe,
        _ => LibvirtBacking::NotRead,
    }
}

/// What libvirt's own format probe (`virStorageFileProbeFormatFromBuf`:
/// magic numbers at fixed offsets of the first bytes) makes of an image:
/// the format it finds, and whether it then sees a backing name.
fn libvirt_probe(info: &ImageInfo) -> (Format, bool) {
    let f = match info.format {
        f @ (Format::Qcow2
        | Format::Qcow
        | Format::Cow
        | Format::Qed
        | Format::Vdi
        | Format::Iso
        | Format::Parallels) => f,
        // "KDMV" at 0: a hosted sparse extent (a text descriptor or COWD
        // has no magic libvirt knows).
        Format::Vmdk if info.vmdk_grain_directory_offset().is_some() => Format::Vmdk,
        // "conectix" at 0: dynamic and differencing disks keep a footer
        // copy there; a fixed disk has its footer at the end only.
        Format::Vpc if info.vpc_footer_offset() == Some(0) => Format::Vpc,
        _ => Format::Raw,
    };
    let sees_backing = matches!(
        f,
        Format::Qcow2 | Format::Qcow | Format::Cow | Format::Qed | Format::Vmdk
    ) && info.backing_filename.is_some();
    (f, sees_backing)
}

/// The diagnostic for a backing whose format the image does not record.
fn unrecorded_format(
    img: &Image,
    binfo: &ImageInfo,
    name: &str,
    how: LibvirtBacking,
    fix: impl Fn() -> String,
) -> Diagnostic {
    let Some(info) = img.info() else {
        unreachable!("called for probed images only")
    };
    let f = &img.filename;
    let detected = binfo.format;
    let (probed, has_backing) = libvirt_probe(binfo);
    // Only qcow2 can record a backing format (`qemu-img rebase -F`).
    let can_record = info.format == Format::Qcow2;
    let why = match info.format {
        Format::Vmdk => format!("'{f}' is a vmdk, which never records its backing's format"),
        Format::Qcow | Format::Cow => format!(
            "'{f}' is a {} image, which cannot record its backing's format",
            info.format
        ),
        _ => format!("'{f}' does not record the format of its backing image '{name}'"),
    };
    let xml_way = "or give libvirt the whole chain in the domain XML (the XML this tool writes records every layer's format in <backingStore>; libvirt uses a given chain as is)";
    let d = if how == LibvirtBacking::ProbedSafe {
        let sev = if probed == detected {
            Severity::Info
        } else {
            Severity::Warning
        };
        Diagnostic::new(
            sev,
            "backing-format-not-recorded",
            format!(
                "{why}: qed without the no-probe flag lets libvirt probe it (AUTO_SAFE) — libvirt finds {probed}{} and follows its chain, never refusing it for this",
                if probed != detected {
                    format!(" although it is {detected}: the guest would see the {detected} metadata as data")
                } else {
                    String::new()
                }
            ),
        )
    } else if has_backing {
        Diagnostic::error(
            "backing-format-not-recorded",
            format!(
                "{why}, and that image ({probed}) has a backing file of its own: libvirt 6.1 and later refuses to start the VM (\"format of backing image '{name}' of image '{f}' was not specified in the image metadata\"); libvirt 6.0 and earlier used it as raw. Fix: {}{xml_way}",
                if can_record { "record the format (the command), " } else { "" }
            ),
        )
    } else if probed != Format::Raw {
        Diagnostic::warning(
            "backing-format-not-recorded",
            format!(
                "{why}: libvirt 6.1 and later probes it, finds {probed} with no backing of its own and uses it (the VM starts); libvirt 6.0 and earlier used it as raw. Probing is what the format field exists to avoid: a guest that can write to a raw image could make it look like {probed}"
            ),
        )
    } else if detected != Format::Raw {
        Diagnostic::warning(
            "backing-format-not-recorded",
            format!(
                "{why}: libvirt probes it and, not knowing {detected} by its first bytes, uses it as raw: the guest sees the {detected} metadata as data"
            ),
        )
    } else {
        Diagnostic::info(
            "backing-format-not-recorded",
            format!("{why} (raw, as libvirt probes it); recording it avoids format probing"),
        )
    };
    if can_record {
        d.with_fix(fix())
    } else {
        d
    }
}

impl Forest {
    /// The chain that starts at image `idx` (any image, not only a top).
    pub fn chain_from(&self, idx: usize) -> Chain {
        // A top's chain was walked when the forest was built; walking again
        // would cost O(images) per call (the walker's arrays).
        match self.chain_of.get(idx).copied().flatten() {
            Some(c) => self.chains[c].clone(),
            None => Walker::new(self.images.len()).walk(idx, self, &[]),
        }
    }

    /// Every image whose chain passes through image `idx` (direct and
    /// indirect overlays), breadth first.
    pub fn dependents(&self, idx: usize) -> Vec<usize> {
        let mut seen = vec![false; self.images.len()];
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::new();
        seen[idx] = true;
        queue.push_back(idx);
        while let Some(i) = queue.pop_front() {
            for &o in &self.overlays[i] {
                if !seen[o] {
                    seen[o] = true;
                    out.push(o);
                    queue.push_back(o);
                }
            }
        }
        out
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
        let overlay = &self.images[chain.layers[pos - 1]];
        match overlay
            .info()
            .and_then(|i| i.backing_filename_format.as_deref())
        {
            Some(f) if Format::from_name(f).is_some() => Some(f.to_string()),
            Some(f) if PROTOCOL_NAMES.contains(&f) => Some("raw".to_string()),
            _ => detected,
        }
    }

    /// What was noticed about image `idx` and its backing link.
    pub fn link_diagnostics(&self, idx: usize) -> &[Diagnostic] {
        &self.link_diagnostics[idx]
    }
}

/// Walks chains with a generation-stamped visited array (no per-walk
/// allocation beyond the chain itself), reusing the suffix of an earlier
/// chain as soon as the walk reaches an image that chain went through: many
/// tops over one long base cost a copy of the base's layers each, not a
/// walk.
struct Walker {
    stamp: Vec<u32>,
    pos: Vec<usize>,
    gen: u32,
    /// `memo[v]`: (chain, position) where image `v`'s own chain suffix
    /// starts in an earlier chain that ended without a loop.
    memo: Vec<Option<(usize, usize)>>,
    /// Per earlier chain: the index of the first diagnostic of each walked
    /// (not copied) position, and the end of the diagnostics that belong to
    /// the layers (before the whole-chain depth note).
    diag_at: Vec<Vec<usize>>,
    body_end: Vec<usize>,
    /// The same for the walk in progress.
    cur_diag_at: Vec<usize>,
    cur_body_end: usize,
}

impl Walker {
    fn new(n: usize) -> Self {
        Walker {
            stamp: vec![0; n],
            pos: vec![0; n],
            gen: 0,
            memo: vec![None; n],
            diag_at: Vec::new(),
            body_end: Vec::new(),
            cur_diag_at: Vec::new(),
            cur_body_end: 0,
        }
    }

    /// Record the chain just walked as chain `idx`, for reuse.
    fn remember(&mut self, idx: usize, c: &Chain) {
        let diag_at = std::mem::take(&mut self.cur_diag_at);
        let reusable = !matches!(c.end, Status::Loop | Status::TooLong);
        if reusable {
            for (q, &v) in c.layers.iter().enumerate().take(diag_at.len()) {
                if self.memo[v].is_none() {
                    self.memo[v] = Some((idx, q));
                }
            }
        }
        self.diag_at.resize(idx, Vec::new());
        self.body_end.resize(idx, 0);
        self.diag_at
            .push(if reusable { diag_at } else { Vec::new() });
        self.body_end.push(self.cur_body_end);
    }

    fn walk(&mut self, top: usize, f: &Forest, done: &[Chain]) -> Chain {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
        self.cur_diag_at.clear();
        let images = &f.images;
        let mut layers = vec![top];
        let mut diagnostics: Vec<Diagnostic> = Vec::new();
        self.stamp[top] = self.gen;
        self.pos[top] = 0;
        let mut cur = top;
        let end = loop {
            if cur != top {
                if let Some((c, p)) = self.memo[cur] {
                    let ch = &done[c];
                    let rest = ch.layers.len() - p - 1;
                    if layers.len() + rest <= limits::MAX_CHAIN_DEPTH {
                        layers.extend_from_slice(&ch.layers[p + 1..]);
                        diagnostics.extend_from_slice(
                            &ch.diagnostics[self.diag_at[c][p]..self.body_end[c]],
                        );
                        break ch.end;
                    }
                }
            }
            self.cur_diag_at.push(diagnostics.len());
            diagnostics.extend(f.link_diagnostics[cur].iter().cloned());
            if layers.len() > limits::MAX_CHAIN_DEPTH {
                diagnostics.push(Diagnostic::error(
                    "too-long",
                    format!(
                        "the chain from '{}' is deeper than {} layers; stopped there",
                        images[top].filename,
                        limits::MAX_CHAIN_DEPTH
                    ),
                ));
                break Status::TooLong;
            }
            let img = &images[cur];
            match &f.links[cur] {
                Link::None => break Status::Ok,
                Link::Unprobed => {
                    let msg = match &img.probe {
                        Probed::Error { error } => error.clone(),
                        Probed::Info(_) => String::new(),
                    };
                    diagnostics.push(Diagnostic::error(
                        "unprobed",
                        format!("'{}' could not be read: {msg}", img.filename),
                    ));
                    break Status::Unreadable;
                }
                Link::Unparsed { .. }
                    if img
                        .info()
                        .is_some_and(|i| i.has_diagnostic("backing-name-too-long")) =>
                {
                    // Said by the probe (in the link's diagnostics).
                    break Status::TooLong;
                }
                Link::Unparsed { error } => {
                    let mut d = Diagnostic::error(
                        "bad-backing-name",
                        format!(
                            "the backing name of '{}' cannot be used: {error}",
                            img.filename
                        ),
                    );
                    // `a:b.qcow2` meant as a file: qemu needs `./a:b.qcow2`.
                    let name = img.backing_name().unwrap_or("");
                    let info = img.info();
                    let looks_like_file = !name.contains("//")
                        && !name.starts_with("json:")
                        && !name.starts_with("nbd:")
                        && !name.starts_with("rbd:")
                        && !name.contains('\0');
                    if let (true, Some(i), Some(bf)) = (
                        looks_like_file,
                        info,
                        info.and_then(|i| i.backing_filename_format.as_deref()),
                    ) {
                        d = d.with_fix(format!(
                            "qemu-img rebase -u -f {} -F {} -b {} {}",
                            i.format,
                            shell_quote(bf),
                            shell_quote(&format!("./{name}")),
                            shell_quote(&img.filename)
                        ));
                    }
                    diagnostics.push(d);
                    break Status::BadName;
                }
                Link::Remote { source } => {
                    diagnostics.push(Diagnostic::info(
                        "remote-backing",
                        format!(
                            "'{}' is backed by a {} source ({}): never opened here, the chain ends there",
                            img.filename,
                            source.protocol.as_deref().unwrap_or(source.kind.name()),
                            describe(source)
                        ),
                    ));
                    break Status::Remote;
                }
                Link::Missing { resolved } => {
                    let name = img.backing_name().unwrap_or("");
                    diagnostics.push(Diagnostic::error(
                        "missing-backing",
                        format!(
                            "the backing file '{name}' of '{}' (resolved to '{resolved}') is missing",
                            img.filename
                        ),
                    ));
                    break Status::Missing;
                }
                Link::NotOpened { resolved } => {
                    let name = img.backing_name().unwrap_or("");
                    diagnostics.push(Diagnostic::warning(
                        "backing-not-opened",
                        format!(
                            "the backing '{name}' of '{}' (resolved to '{resolved}') is untrusted and was not opened: the chain is not checked beyond it",
                            img.filename
                        ),
                    ));
                    break Status::Untrusted;
                }
                Link::Ambiguous {
                    resolved,
                    candidates,
                } => {
                    let name = img.backing_name().unwrap_or("");
                    diagnostics.push(Diagnostic::error(
                        "ambiguous-backing",
                        format!(
                            "the backing '{name}' of '{}' (resolved to '{resolved}') matches {} images equally well ({}): choose one",
                            img.filename,
                            candidates.len(),
                            candidates
                                .iter()
                                .map(|&c| images[c].filename.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    break Status::Ambiguous;
                }
                Link::Image { index, .. } => {
                    let next = *index;
                    if self.stamp[next] == self.gen {
                        let at = self.pos[next];
                        let names: Vec<&str> = layers[at..]
                            .iter()
                            .map(|&l| images[l].filename.as_str())
                            .collect();
                        diagnostics.push(Diagnostic::error(
                            "backing-loop",
                            format!(
                                "backing loop of {} image{}: {} → {}",
                                names.len(),
                                if names.len() == 1 { "" } else { "s" },
                                names.join(" → "),
                                images[next].filename
                            ),
                        ));
                        break Status::Loop;
                    }
                    self.stamp[next] = self.gen;
                    self.pos[next] = layers.len();
                    layers.push(next);
                    // Recorded as raw (or as a protocol, which libvirt maps
                    // to raw): qemu and libvirt open it as raw, so whatever
                    // header it has is guest data and its backing name is
                    // never followed.
                    let as_raw = img
                        .info()
                        .and_then(|i| i.backing_filename_format.as_deref())
                        .is_some_and(|f| f == "raw" || PROTOCOL_NAMES.contains(&f));
                    if as_raw {
                        if let Some(b) = images[next].backing_name() {
                            diagnostics.push(Diagnostic::warning(
                                "backing-not-followed",
                                format!(
                                    "'{}' is used as raw (the format '{}' records for it), so the backing name '{b}' in its header is data, not followed",
                                    images[next].filename, img.filename
                                ),
                            ).at(next));
                        }
                        if images[next].info().is_some_and(|i| i.format != Format::Raw) {
                            break Status::Ok;
                        }
                    }
                    cur = next;
                }
            }
        };
        // What the walk noticed at its last image is about that image.
        for d in &mut diagnostics {
            d.image.get_or_insert(cur);
        }
        self.cur_body_end = diagnostics.len();
        if layers.len() > limits::LIBVIRT_MAX_DEPTH {
            let top_img = &images[top];
            let fmt = top_img.info().map_or(Format::Qcow2, |i| i.format);
            diagnostics.push(
                Diagnostic::error(
                    "too-deep-for-libvirt",
                    format!(
                        "the chain from '{}' has {} layers; libvirt's qemu driver refuses more than {}",
                        top_img.filename,
                        layers.len(),
                        limits::LIBVIRT_MAX_DEPTH
                    ),
                )
                .with_fix(format!(
                    "qemu-img convert -f {fmt} -O qcow2 {} {}",
                    shell_quote(&top_img.filename),
                    shell_quote(&format!("{}.flat.qcow2", top_img.filename))
                ))
                .at(top),
            );
        }
        // The first error from the top down is the verdict.
        let status = diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
            .map_or(end, |d| status_of(&d.code));
        Chain {
            top,
            layers,
            status,
            diagnostics,
            end,
        }
    }
}

/// A short human description of a non-file source.
fn describe(s: &StorageSource) -> String {
    let host = s.hosts.first().map(|h| match (&h.name, h.port, &h.socket) {
        (_, _, Some(sock)) => format!("unix:{sock}"),
        (Some(n), Some(p), _) => format!("{n}:{p}"),
        (Some(n), None, _) => n.clone(),
        _ => String::new(),
    });
    let what = s.name.as_deref().or(s.path.as_deref()).unwrap_or("");
    match host {
        Some(h) if !h.is_empty() => format!("{h} {what}"),
        _ => what.to_string(),
    }
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
mod tests {
    use super::*;
    use crate::image::Identity;

    fn img(name: &str, backing: Option<&str>) -> Image {
        let mut info = ImageInfo::new(Format::Qcow2);
        info.backing_filename = backing.map(str::to_string);
        info.backing_filename_format = backing.map(|_| "qcow2".into());
        Image {
            filename: name.into(),
            probe: Probed::Info(Box::new(info)),
            bytes_read: 0,
        }
    }

    fn names(f: &Forest, c: &Chain) -> Vec<String> {
        c.layers
            .iter()
            .map(|&l| f.images[l].filename.clone())
            .collect()
    }

    fn codes(c: &Chain) -> Vec<&str> {
        c.diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn normalize_folds_lexically() {
        assert_eq!(normalize("/v/sub/../base"), "/v/base");
        assert_eq!(normalize("./a/./b"), "a/b");
        assert_eq!(normalize("../x"), "../x");
        assert_eq!(normalize("/../x"), "/x");
    }

    #[test]
    fn relative_dotdot_and_sub_paths_match() {
        let f = build(vec![
            img("vm/sub/top.qcow2", Some("../base.qcow2")),
            img("vm/base.qcow2", Some("sub2/mid.qcow2")),
            img("vm/sub2/mid.qcow2", None),
        ]);
        assert_eq!(f.chains.len(), 1);
        assert_eq!(
            names(&f, &f.chains[0]),
            ["vm/sub/top.qcow2", "vm/base.qcow2", "vm/sub2/mid.qcow2"]
        );
        assert_eq!(f.chains[0].status, Status::Ok);
        // the link keeps the plain join
        assert_eq!(
            f.links[0],
            Link::Image {
                index: 1,
                resolved: "vm/sub/../base.qcow2".into(),
                how: Match::Path
            }
        );
    }

    #[test]
    fn suffix_then_basename_then_ambiguous() {
        // Absolute names recorded on another machine; dropped files are relative.
        let f = build(vec![
            img("a/top.qcow2", Some("/srv/images/a/base.qcow2")),
            img("a/base.qcow2", None),
            img("b/base.qcow2", None),
            img("c/top.qcow2", Some("/old/place/base.qcow2")),
            img("d/top.qcow2", Some("/old/place/only.qcow2")),
            img("x/only.qcow2", None),
        ]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 1,
                how: Match::Suffix,
                ..
            }
        ));
        assert!(
            matches!(&f.links[3], Link::Ambiguous { candidates, .. } if candidates == &vec![1, 2])
        );
        assert!(matches!(
            f.links[4],
            Link::Image {
                index: 5,
                how: Match::Basename,
                ..
            }
        ));
        let c = f.chains.iter().find(|c| c.top == 3).unwrap();
        assert_eq!(c.status, Status::Ambiguous);
        assert!(codes(c).contains(&"ambiguous-backing"));
        assert!(f.diagnostics.iter().any(|d| d.code == "duplicate-basename"));
        // The user's choice resolves it.
        let f2 = build_with(
            f.images.clone(),
            &BuildOptions {
                mapping: vec![("c/top.qcow2".into(), "b/base.qcow2".into())],
                ..Default::default()
            },
        );
        assert!(matches!(
            f2.links[3],
            Link::Image {
                index: 2,
                how: Match::Mapping,
                ..
            }
        ));
        // exact paths: no fuzzy matching at all
        let f3 = build_with(
            f.images.clone(),
            &BuildOptions {
                exact_paths: true,
                ..Default::default()
            },
        );
        assert!(matches!(f3.links[0], Link::Missing { .. }));
        assert!(matches!(f3.links[4], Link::Missing { .. }));
    }

    #[test]
    fn identity_matches_when_names_do_not() {
        let mut top = img("t.vmdk", Some("renamed-away.vmdk"));
        let mut base = img("b.vmdk", None);
        let mut other = img("o.vmdk", None);
        for (i, id, pid) in [
            (&mut top, "aaaa0001", Some("bbbb0002")),
            (&mut base, "bbbb0002", None),
            (&mut other, "cccc0003", None),
        ] {
            if let Probed::Info(info) = &mut i.probe {
                info.format = Format::Vmdk;
                info.backing_filename_format = None;
                info.identity = Some(Identity {
                    id: Some(id.into()),
                    parent_id: pid.map(str::to_string),
                });
            }
        }
        let f = build(vec![top.clone(), base.clone(), other.clone()]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 1,
                how: Match::Identity,
                ..
            }
        ));
        assert!(f
            .link_diagnostics(0)
            .iter()
            .any(|d| d.code == "matched-by-identity"));
        // Matched by name but the ids disagree: parentCID mismatch.
        if let Probed::Info(info) = &mut top.probe {
            info.backing_filename = Some("o.vmdk".into());
        }
        let f = build(vec![top, base, other]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 2,
                how: Match::Path,
                ..
            }
        ));
        assert!(f
            .link_diagnostics(0)
            .iter()
            .any(|d| d.code == "parent-id-mismatch"));
    }

    #[test]
    fn loops_of_one_two_three_name_their_images() {
        for k in 1..=3usize {
            let images: Vec<Image> = (0..k)
                .map(|i| img(&format!("/v/l{i}"), Some(&format!("./l{}", (i + 1) % k))))
                .collect();
            let f = build(images);
            assert_eq!(f.chains.len(), 1, "loop of {k}");
            let c = &f.chains[0];
            assert_eq!(c.status, Status::Loop);
            assert_eq!(c.layers.len(), k);
            let d = c
                .diagnostics
                .iter()
                .find(|d| d.code == "backing-loop")
                .unwrap();
            for i in 0..k {
                assert!(d.message.contains(&format!("/v/l{i}")), "{}", d.message);
            }
        }
        // A tail into a loop: the top is a top, the loop is reported once per chain.
        let f = build(vec![
            img("/v/t", Some("a")),
            img("/v/a", Some("b")),
            img("/v/b", Some("a")),
        ]);
        assert_eq!(f.chains.len(), 1);
        assert_eq!(f.chains[0].layers, vec![0, 1, 2]);
        assert_eq!(f.chains[0].status, Status::Loop);
        assert!(f.chains[0].diagnostics[0..]
            .iter()
            .any(|d| d.message.contains("/v/a → /v/b → /v/a")));
    }

    #[test]
    fn shared_base_is_a_tree() {
        let f = build(vec![
            img("/v/base", None),
            img("/v/mid", Some("base")),
            img("/v/t1", Some("mid")),
            img("/v/t2", Some("mid")),
            img("/v/t3", Some("base")),
        ]);
        let tops: Vec<usize> = f.chains.iter().map(|c| c.top).collect();
        assert_eq!(tops, vec![2, 3, 4]);
        assert_eq!(f.overlays[0], vec![1, 4]);
        assert_eq!(f.overlays[1], vec![2, 3]);
        let mut dep = f.dependents(0);
        dep.sort();
        assert_eq!(dep, vec![1, 2, 3, 4]);
        assert_eq!(f.chain_from(1).layers, vec![1, 0]);
    }

    #[test]
    fn format_diagnostics() {
        let mut top = img("/v/top", Some("mid"));
        let mut mid = img("/v/mid", Some("base"));
        let base = Image {
            filename: "/v/base".into(),
            probe: Probed::Info(Box::new(ImageInfo::new(Format::Raw))),
            bytes_read: 0,
        };
        if let Probed::Info(i) = &mut top.probe {
            i.backing_filename_format = None;
        }
        if let Probed::Info(i) = &mut mid.probe {
            i.backing_filename_format = Some("foo".into());
        }
        let f = build(vec![top, mid, base]);
        let c = &f.chains[0];
        let nr = c
            .diagnostics
            .iter()
            .find(|d| d.code == "backing-format-not-recorded")
            .unwrap();
        assert_eq!(nr.severity, Severity::Error);
        assert_eq!(
            nr.fix.as_deref(),
            Some("qemu-img rebase -u -f qcow2 -F qcow2 -b mid /v/top")
        );
        assert!(codes(c).contains(&"backing-format-unknown"));
    }

    #[test]
    fn image_notes_are_repeated_in_every_chain_through_it() {
        let mut base = img("/v/base", None);
        if let Probed::Info(i) = &mut base.probe {
            i.diagnostics
                .push(Diagnostic::warning("qcow2-dirty", "the dirty bit is set"));
            i.diagnostics
                .push(Diagnostic::info("encrypted", "needs a secret"));
            i.diagnostics
                .push(Diagnostic::info("no-header", "not repeated"));
        }
        let f = build(vec![
            base,
            img("/v/t1", Some("base")),
            img("/v/t2", Some("base")),
        ]);
        assert_eq!(f.chains.len(), 2);
        for c in &f.chains {
            let d: Vec<&Diagnostic> = c.diagnostics.iter().collect();
            assert!(d
                .iter()
                .any(|d| d.code == "qcow2-dirty" && d.message.starts_with("'/v/base'")));
            assert!(d.iter().any(|d| d.code == "encrypted"));
            assert!(!d.iter().any(|d| d.code == "no-header"));
        }
    }

    #[test]
    fn raw_recorded_backing_is_not_followed() {
        // A guest wrote a qcow2 header naming /etc/shadow into its raw disk.
        let mut top = img("/v/top", Some("disk.raw"));
        if let Probed::Info(i) = &mut top.probe {
            i.backing_filename_format = Some("raw".into());
        }
        let evil = img("/v/disk.raw", Some("/etc/shadow"));
        let shadow = img("/etc/shadow", None);
        let f = build(vec![top, evil, shadow]);
        let c = f.chains.iter().find(|c| c.top == 0).unwrap();
        assert_eq!(c.layers, vec![0, 1]);
        assert_eq!(c.status, Status::Ok);
        assert!(codes(c).contains(&"backing-format-mismatch"));
        assert!(codes(c).contains(&"backing-not-followed"));
        assert_eq!(f.layer_format(c, 1).as_deref(), Some("raw"));
        assert_eq!(f.layer_format(c, 0).as_deref(), Some("qcow2"));
    }

    #[test]
    fn untrusted_names_flagged_only_when_asked() {
        let images = vec![
            img("t1", Some("/etc/shadow")),
            img("t2", Some("../../x")),
            img(
                "t3",
                Some("json:{\"driver\":\"file\",\"filename\":\"/dev/sda\"}"),
            ),
            img("t4", Some("/var/lib/libvirt/images/ok.qcow2")),
        ];
        let f = build(images.clone());
        assert!(!f
            .chains
            .iter()
            .any(|c| codes(c).contains(&"untrusted-backing-name")));
        let f = build_with(
            images,
            &BuildOptions {
                untrusted: true,
                ..Default::default()
            },
        );
        let flagged: Vec<usize> = (0..4)
            .filter(|&i| {
                f.link_diagnostics(i)
                    .iter()
                    .any(|d| d.code == "untrusted-backing-name")
            })
            .collect();
        assert_eq!(flagged, vec![0, 1, 2]);
    }

    #[test]
    fn remote_and_unparsed_end_the_chain() {
        let f = build(vec![
            img("/v/a", Some("nbd://h:1234/e")),
            img("/v/b", Some("frob:x")),
            img("/v/c", Some("http://u:pw@h/x")),
        ]);
        assert_eq!(f.chains[0].status, Status::Remote);
        assert_eq!(f.chains[1].status, Status::BadName);
        assert!(codes(&f.chains[2]).contains(&"credentials-dropped"));
    }

    /// Chains built with shared suffixes are exactly the chains walked one
    /// by one (`chain_from` uses a fresh walker with nothing to reuse).
    #[test]
    fn reused_suffixes_equal_fresh_walks() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..20 {
            let n = 50 + 100 * round;
            let images: Vec<Image> = (0..n)
                .map(|i| {
                    let b = match next(10) {
                        0 => None,
                        1 => Some(format!("missing{i}")),
                        2 => Some("nbd://h/e".to_string()),
                        // mostly point further down, sometimes back up (loops)
                        3 => Some(format!("i{}", next(n as u64))),
                        _ => Some(format!("i{}", (i as u64 + 1 + next(5)).min(n as u64 - 1))),
                    };
                    let mut m = img(&format!("/v/i{i}"), b.as_deref());
                    if let Probed::Info(info) = &mut m.probe {
                        match next(6) {
                            0 => info.backing_filename_format = Some("raw".into()),
                            1 => info.backing_filename_format = None,
                            2 => info
                                .diagnostics
                                .push(Diagnostic::warning("qcow2-dirty", "dirty")),
                            _ => {}
                        }
                    }
                    m
                })
                .collect();
            let f = build(images);
            for c in &f.chains {
                let fresh = f.chain_from(c.top);
                assert_eq!(c.layers, fresh.layers, "round {round} top {}", c.top);
                assert_eq!(c.status, fresh.status, "round {round} top {}", c.top);
                assert_eq!(
                    c.diagnostics, fresh.diagnostics,
                    "round {round} top {}",
                    c.top
                );
            }
        }
    }

    #[test]
    fn deeper_than_the_core_follows_is_too_long() {
        let n = limits::MAX_CHAIN_DEPTH + 5;
        let images: Vec<Image> = (0..n)
            .map(|i| {
                let b = (i + 1 < n).then(|| format!("x{}", i + 1));
                img(&format!("/v/x{i}"), b.as_deref())
            })
            .collect();
        let f = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || build(images))
            .unwrap()
            .join()
            .unwrap();
        let c = &f.chains[0];
        assert_eq!(c.status, Status::TooLong);
        assert_eq!(c.layers.len(), limits::MAX_CHAIN_DEPTH + 1);
        assert!(codes(c).contains(&"too-long"));
        assert!(codes(c).contains(&"too-deep-for-libvirt"));
    }

    #[test]
    fn ten_thousand_images_many_tops_one_long_base() {
        // A 9,900-deep base with 100 tops on its top layer: 10,000 images.
        let depth = 9_900;
        let mut images: Vec<Image> = (0..depth)
            .map(|i| {
                let b = (i + 1 < depth).then(|| format!("b{}", i + 1));
                img(&format!("/v/b{i}"), b.as_deref())
            })
            .collect();
        for t in 0..100 {
            images.push(img(&format!("/v/t{t}"), Some("b0")));
        }
        let start = std::time::Instant::now();
        let f = build(images);
        let took = start.elapsed();
        assert_eq!(f.chains.len(), 100);
        assert!(f
            .chains
            .iter()
            .all(|c| c.layers.len() == depth + 1 && c.end == Status::Ok));
        // Complete chains, but deeper than libvirt's qemu driver accepts.
        assert!(f.chains.iter().all(|c| c.status == Status::TooDeep));
        assert_eq!(f.overlays[0].len(), 100);
        eprintln!("10,000 images, 100 tops over a 9,900-deep base: {took:?}");
    }
}
