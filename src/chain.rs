//! From probed images to chains: match every backing reference to an image,
//! find the tops, walk each chain top → base, and say what is wrong.
//!
//! Everything here is iterative and linear in the number of images plus the
//! total chain length: no recursion, so a 10,000-deep chain is fine.

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
}

/// What a layer's backing reference points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Link {
    /// The image records no backing file.
    None,
    /// Another image of the set (index into `Forest::images`).
    Image { index: usize, resolved: String },
    /// A local file that is not in the set.
    Missing { resolved: String },
    /// A network or other non-local source: never opened, the chain ends here.
    Remote { source: StorageSource },
    /// The backing name could not be parsed.
    Unparsed { error: String },
    /// The image itself could not be probed.
    Unprobed,
}

/// How a chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The base has no backing file.
    Ok,
    Missing,
    Loop,
    UnprobedFormat,
    Remote,
    TooLong,
    BadName,
}

/// One chain from a top to its base.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub top: usize,
    /// Image indices, top first.
    pub layers: Vec<usize>,
    pub status: Status,
    pub diagnostics: Vec<Diagnostic>,
}

/// All images, how they link, and the chains from every top.
#[derive(Debug, Clone, Serialize)]
pub struct Forest {
    pub images: Vec<Image>,
    /// `links[i]`: what image `i`'s backing reference points at.
    pub links: Vec<Link>,
    /// Images nobody references, each with its chain.
    pub chains: Vec<Chain>,
    /// `overlays[i]`: images whose backing is image `i` (answers "who
    /// depends on this base?").
    pub overlays: Vec<Vec<usize>>,
    /// Diagnostics about the set as a whole (ambiguous names, …).
    pub diagnostics: Vec<Diagnostic>,
}

/// Index of images by the names a reference may match.
struct Index<'a> {
    by_path: HashMap<&'a str, usize>,
    by_base: HashMap<&'a str, Vec<usize>>,
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

impl<'a> Index<'a> {
    fn new(images: &'a [Image]) -> Self {
        let mut by_path = HashMap::with_capacity(images.len());
        let mut by_base: HashMap<&str, Vec<usize>> = HashMap::with_capacity(images.len());
        for (i, img) in images.iter().enumerate() {
            by_path.entry(img.filename.as_str()).or_insert(i);
            by_base.entry(basename(&img.filename)).or_default().push(i);
        }
        Index { by_path, by_base }
    }

    /// Find the image a resolved path names: exact, then the candidate whose
    /// path shares the longest suffix (by whole components), then basename.
    fn find(&self, resolved: &str) -> Result<Option<usize>, Vec<usize>> {
        if let Some(&i) = self.by_path.get(resolved) {
            return Ok(Some(i));
        }
        let Some(cands) = self.by_base.get(basename(resolved)) else {
            return Ok(None);
        };
        if cands.len() == 1 {
            return Ok(Some(cands[0]));
        }
        Err(cands.clone())
    }
}

/// Longest common suffix of two paths, counted in whole components.
fn common_suffix_components(a: &str, b: &str) -> usize {
    a.rsplit('/')
        .zip(b.rsplit('/'))
        .take_while(|(x, y)| x == y)
        .count()
}

/// Build the forest.
pub fn build(images: Vec<Image>) -> Forest {
    let n = images.len();
    let mut links = Vec::with_capacity(n);
    let mut diagnostics = Vec::new();
    {
        let index = Index::new(&images);
        for img in &images {
            links.push(link_of(img, &index, &images, &mut diagnostics));
        }
    }

    let mut overlays = vec![Vec::new(); n];
    for (i, l) in links.iter().enumerate() {
        if let Link::Image { index, .. } = l {
            overlays[*index].push(i);
        }
    }

    // Tops: nobody's backing. Images only reachable through a loop get a
    // chain of their own too (a cycle has no top).
    let mut tops: Vec<usize> = (0..n).filter(|&i| overlays[i].is_empty()).collect();
    let mut reached = vec![false; n];
    let mut chains = Vec::with_capacity(tops.len());
    let mut t = 0;
    loop {
        while t < tops.len() {
            let chain = walk(tops[t], &images, &links);
            for &l in &chain.layers {
                reached[l] = true;
            }
            chains.push(chain);
            t += 1;
        }
        match reached.iter().position(|r| !r) {
            Some(i) => tops.push(i),
            None => break,
        }
    }

    Forest {
        images,
        links,
        chains,
        overlays,
        diagnostics,
    }
}

fn link_of(img: &Image, index: &Index, images: &[Image], diags: &mut Vec<Diagnostic>) -> Link {
    let Some(info) = img.info() else {
        return Link::Unprobed;
    };
    let Some(name) = info.backing_filename.as_deref() else {
        return Link::None;
    };
    let parsed = match source::parse_backing_name(name) {
        Ok(p) => p,
        Err(e) => return Link::Unparsed { error: e.message },
    };
    if !parsed.source.is_local() {
        return Link::Remote {
            source: parsed.source,
        };
    }
    let raw = parsed.source.path.clone().unwrap_or_default();
    let resolved = source::resolve_relative(&img.filename, &raw);
    match index.find(&resolved) {
        Ok(Some(i)) => Link::Image { index: i, resolved },
        Ok(None) => Link::Missing { resolved },
        Err(cands) => {
            // Several images share the basename: prefer the longest suffix match.
            let mut best: Vec<usize> = Vec::new();
            let mut best_len = 0;
            for &c in &cands {
                let l = common_suffix_components(&images[c].filename, &resolved);
                if l > best_len {
                    best_len = l;
                    best.clear();
                }
                if l == best_len {
                    best.push(c);
                }
            }
            if best.len() > 1 {
                diags.push(Diagnostic::warning(
                    "ambiguous-backing",
                    format!(
                        "'{}' names '{}', which matches {} dropped files ({}); the first is used",
                        img.filename,
                        name,
                        best.len(),
                        best.iter()
                            .map(|&b| images[b].filename.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Link::Image {
                index: best[0],
                resolved,
            }
        }
    }
}

impl Forest {
    /// The chain that starts at image `idx` (any image, not only a top).
    pub fn chain_from(&self, idx: usize) -> Chain {
        walk(idx, &self.images, &self.links)
    }
}

fn walk(top: usize, images: &[Image], links: &[Link]) -> Chain {
    let mut layers = vec![top];
    let mut on_chain: HashMap<usize, usize> = HashMap::new();
    on_chain.insert(top, 0);
    let mut diagnostics = Vec::new();
    let mut cur = top;
    let status = loop {
        if layers.len() > limits::MAX_CHAIN_DEPTH {
            diagnostics.push(Diagnostic::error(
                "too-long",
                format!(
                    "the chain is deeper than {} layers; stopped there",
                    limits::MAX_CHAIN_DEPTH
                ),
            ));
            break Status::TooLong;
        }
        let img = &images[cur];
        match &links[cur] {
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
                break Status::UnprobedFormat;
            }
            Link::Unparsed { error } => {
                diagnostics.push(Diagnostic::error(
                    "bad-backing-name",
                    format!(
                        "the backing name of '{}' cannot be used: {error}",
                        img.filename
                    ),
                ));
                break Status::BadName;
            }
            Link::Remote { source } => {
                diagnostics.push(Diagnostic::info(
                    "remote-backing",
                    format!(
                        "'{}' is backed by a {} source ({}): not opened, the chain ends there",
                        img.filename,
                        source.protocol.as_deref().unwrap_or(source.kind.name()),
                        source
                            .name
                            .as_deref()
                            .or(source.path.as_deref())
                            .unwrap_or("")
                    ),
                ));
                break Status::Remote;
            }
            Link::Missing { resolved } => {
                let name = img
                    .info()
                    .and_then(|i| i.backing_filename.as_deref())
                    .unwrap_or("");
                diagnostics.push(Diagnostic::error(
                    "missing-backing",
                    format!(
                        "the backing file '{name}' of '{}' (resolved to '{resolved}') is missing",
                        img.filename
                    ),
                ));
                break Status::Missing;
            }
            Link::Image { index, .. } => {
                let next = *index;
                if let Some(&at) = on_chain.get(&next) {
                    let names: Vec<&str> = layers[at..]
                        .iter()
                        .map(|&l| images[l].filename.as_str())
                        .collect();
                    diagnostics.push(Diagnostic::error(
                        "backing-loop",
                        format!(
                            "backing loop: {} → {}",
                            names.join(" → "),
                            images[next].filename
                        ),
                    ));
                    break Status::Loop;
                }
                layer_diagnostics(img, &images[next], &mut diagnostics);
                on_chain.insert(next, layers.len());
                layers.push(next);
                cur = next;
            }
        }
    };
    if layers.len() > limits::LIBVIRT_MAX_DEPTH {
        diagnostics.push(Diagnostic::error(
            "too-deep-for-libvirt",
            format!(
                "the chain has {} layers; libvirt's qemu driver refuses more than {}",
                layers.len(),
                limits::LIBVIRT_MAX_DEPTH
            ),
        ));
    }
    Chain {
        top,
        layers,
        status,
        diagnostics,
    }
}

/// Problems between an image and the backing image it names.
fn layer_diagnostics(img: &Image, backing: &Image, out: &mut Vec<Diagnostic>) {
    let Some(info) = img.info() else { return };
    let Some(binfo) = backing.info() else { return };
    let name = info.backing_filename.as_deref().unwrap_or("");
    let detected = binfo.format;
    match info.backing_filename_format.as_deref() {
        None => {
            let fix = format!(
                "qemu-img rebase -u -f {} -F {} -b {} {}",
                info.format,
                detected,
                shell_quote(name),
                shell_quote(&img.filename)
            );
            if binfo.backing_filename.is_some() {
                out.push(
                    Diagnostic::error(
                        "backing-format-not-recorded",
                        format!(
                            "'{}' does not record the format of its backing image '{name}', which has a backing file of its own: libvirt (6.0 and later) refuses to start the VM (\"format of backing image '{name}' of image '{}' was not specified in the image metadata\")",
                            img.filename, img.filename
                        ),
                    )
                    .with_fix(fix),
                );
            } else if detected != Format::Raw {
                out.push(
                    Diagnostic::warning(
                        "backing-format-not-recorded",
                        format!(
                            "'{}' does not record the format of its backing image '{name}' ({detected}); libvirt will treat it as raw",
                            img.filename
                        ),
                    )
                    .with_fix(fix),
                );
            }
        }
        Some(recorded) => match Format::from_name(recorded) {
            Some(f) if f == detected => {}
            Some(f) => {
                let sev = if f == Format::Raw {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                out.push(
                    Diagnostic::new(
                        sev,
                        "backing-format-mismatch",
                        format!(
                            "'{}' records its backing '{name}' as {recorded}, but its header says {detected}{}",
                            img.filename,
                            if f == Format::Raw {
                                " (a guest may have written that header into a raw disk: keep it raw unless you know better)"
                            } else {
                                ""
                            }
                        ),
                    )
                    .with_fix(format!(
                        "qemu-img rebase -u -f {} -F {} -b {} {}",
                        info.format,
                        detected,
                        shell_quote(name),
                        shell_quote(&img.filename)
                    )),
                );
            }
            None => out.push(Diagnostic::error(
                "backing-format-unknown",
                format!(
                    "'{}' records backing format '{recorded}', which is not an image format",
                    img.filename
                ),
            )),
        },
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
