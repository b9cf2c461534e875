//! Domain XML in, domain XML with `<backingStore>` chains out.
//!
//! The document is read with quick-xml's event reader, keeping the byte span
//! of each element of interest; output is the original bytes with only the
//! inserted or replaced `<backingStore>` spans changed. Nothing else is
//! re-serialised, so comments, namespaces, quoting and whitespace survive.

use serde::Serialize;

use crate::chain::{self, Forest};
use crate::diag::Diagnostic;
use crate::image::Format;
use crate::source::{self, StorageSource};

pub mod read;
pub mod write;

/// Nested (libvirt's form) or flat (the RFC reply's proposal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nested,
    Flat,
}

/// Output options.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Options {
    pub layout: Layout,
    /// Write `index='N'` on each `<backingStore>` (libvirt's live XML does;
    /// its inactive XML drops them).
    pub no_index: bool,
    /// Directory used to make relative image names absolute. Default: the
    /// directory of the disk's own `<source>`.
    pub base_dir: Option<String>,
}

/// One layer of a chain as the XML writer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    pub source: StorageSource,
    pub format: Option<String>,
}

/// A chain below a disk's own source: layers from the first backing down,
/// and whether the end is known (a terminator `<backingStore/>` is written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackingChain {
    pub layers: Vec<Layer>,
    pub terminated: bool,
}

/// Result of a rewrite: the XML and what was noticed.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub xml: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Error reading an XML document: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XmlError {
    /// Byte offset in the input.
    pub position: usize,
    pub message: String,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "XML error at byte {}: {}", self.position, self.message)
    }
}

impl std::error::Error for XmlError {}

/// Make `path` absolute with `base_dir` when it is relative.
fn absolutize(path: &str, base_dir: Option<&str>) -> String {
    match base_dir {
        Some(dir) if !source::is_absolute(path) && !dir.is_empty() => {
            if dir.ends_with('/') {
                format!("{dir}{path}")
            } else {
                format!("{dir}/{path}")
            }
        }
        _ => path.to_string(),
    }
}

/// The chain below the top of `forest.chains[chain_idx]`, as XML layers.
pub fn backing_chain(forest: &Forest, chain_idx: usize, base_dir: Option<&str>) -> BackingChain {
    let ch = &forest.chains[chain_idx];
    let mut layers = Vec::with_capacity(ch.layers.len().saturating_sub(1));
    for &idx in ch.layers.iter().skip(1) {
        let (mut src, fmt) = chain::layer_source(&forest.images, idx);
        if let Some(p) = src.path.take() {
            src.path = Some(absolutize(&p, base_dir));
        }
        layers.push(Layer {
            source: src,
            format: fmt.map(|f| f.name().to_string()),
        });
    }
    // A remote end is a layer too (never opened: format unknown, chain open).
    let last = *ch.layers.last().unwrap_or(&ch.top);
    let mut terminated = ch.status == chain::Status::Ok;
    if let chain::Link::Remote { source } = &forest.links[last] {
        let fmt = forest.images[last]
            .info()
            .and_then(|i| i.backing_filename_format.clone());
        layers.push(Layer {
            source: source.clone(),
            format: fmt,
        });
        terminated = false;
    }
    BackingChain { layers, terminated }
}

/// Bare `<disk>` elements, one per chain top, for callers without a domain.
pub fn disks(forest: &Forest, opts: &Options) -> Output {
    let mut xml = String::new();
    let mut diagnostics = Vec::new();
    for (ci, ch) in forest.chains.iter().enumerate() {
        let top = &forest.images[ch.top];
        let dev = target_name(ci);
        let fmt = top.info().map_or(Format::Raw, |i| i.format);
        let top_path = absolutize(&top.filename, opts.base_dir.as_deref());
        let bc = backing_chain(forest, ci, opts.base_dir.as_deref());
        flag_relative(&top_path, &bc, &mut diagnostics);
        xml.push_str("<disk type='file' device='disk'>\n");
        xml.push_str(&format!("  <driver name='qemu' type='{}'/>\n", fmt.name()));
        xml.push_str(&format!(
            "  <source file='{}'/>\n",
            write::escape_attr(&top_path)
        ));
        write::chain(&mut xml, &bc, "  ", &dev, opts);
        xml.push_str(&format!("  <target dev='{dev}' bus='virtio'/>\n"));
        xml.push_str("</disk>\n");
    }
    Output { xml, diagnostics }
}

fn flag_relative(top: &str, bc: &BackingChain, out: &mut Vec<Diagnostic>) {
    let paths = std::iter::once(top).chain(
        bc.layers
            .iter()
            .filter(|l| l.source.is_local())
            .filter_map(|l| l.source.path.as_deref()),
    );
    for p in paths {
        if !source::is_absolute(p) {
            out.push(Diagnostic::warning(
                "relative-path",
                format!("'{p}' is not an absolute path: libvirt's schema needs one (set the base directory)"),
            ));
        }
    }
}

/// `vda`, `vdb`, … `vdz`, `vdaa`, …
pub fn target_name(i: usize) -> String {
    let mut n = i;
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    format!("vd{}", String::from_utf8_lossy(&s))
}

/// Populate a domain (or bare `<disk>`) XML: every disk without a
/// `<backingStore>` whose source matches a chain top gets the chain from the
/// headers; disks that have a chain keep it (trust).
pub fn populate(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    let disks = read::disks(doc)?;
    let mut diagnostics = Vec::new();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for d in &disks {
        let Some(src_path) = d.source_path.as_deref() else {
            continue;
        };
        let Some(ci) = match_top(forest, src_path) else {
            diagnostics.push(Diagnostic::info(
                "disk-not-matched",
                format!("no dropped image matches the disk source '{src_path}'"),
            ));
            continue;
        };
        if d.has_backing_store {
            diagnostics.push(Diagnostic::info(
                "chain-trusted",
                format!("the disk '{src_path}' already has a <backingStore> chain: kept as it is"),
            ));
            continue;
        }
        let base_dir = opts.base_dir.clone().unwrap_or_else(|| {
            let d = source::dir_of(src_path);
            d.trim_end_matches('/').to_string()
        });
        let bc = backing_chain(forest, ci, Some(&base_dir));
        flag_relative(src_path, &bc, &mut diagnostics);
        let mut text = String::new();
        let dev = d.target_dev.clone().unwrap_or_else(|| "disk".into());
        write::chain(&mut text, &bc, &d.child_indent, &dev, opts);
        // Insert after the `<source>` element, on its own line.
        edits.push((
            d.insert_at,
            d.insert_at,
            format!("\n{}", text.trim_end_matches('\n')),
        ));
    }
    let mut xml = String::with_capacity(doc.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
    let mut at = 0;
    for (s, e, t) in edits {
        xml.push_str(&doc[at..s]);
        xml.push_str(&t);
        at = e;
    }
    xml.push_str(&doc[at..]);
    Ok(Output { xml, diagnostics })
}

/// The chain whose top matches a disk source: same path, else same basename.
fn match_top(forest: &Forest, src: &str) -> Option<usize> {
    let by_path = forest
        .chains
        .iter()
        .position(|c| forest.images[c.top].filename == src);
    by_path.or_else(|| {
        let base = src.rsplit('/').next().unwrap_or(src);
        forest
            .chains
            .iter()
            .position(|c| forest.images[c.top].filename.rsplit('/').next() == Some(base))
    })
}
