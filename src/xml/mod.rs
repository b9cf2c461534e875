//! Domain XML in, domain XML with `<backingStore>` chains out.
//!
//! # Reading
//!
//! [`read::document`] reads a `<domain>`, libvirt's status XML
//! (`<domstatus>` around a `<domain>`), a bare `<disk>` or a `<volume>` with
//! quick-xml's event reader. It checks well-formedness (matching tags,
//! attributes, entity references, comments, one root), refuses a DOCTYPE with
//! an internal subset (entities are never expanded nor fetched), bounds the
//! size ([`crate::limits::MAX_XML_BYTES`]) and the depth
//! ([`crate::limits::MAX_XML_DEPTH`]; everything is iterative). Only the
//! `<disk>` subtrees under `<domain><devices>` (or the root `<disk>` /
//! `<volume>`) are kept, as [`tree::Elem`]s holding byte spans; the rest is
//! scanned and left alone. [`model`] reads a disk's facts (every disk type,
//! sources into [`StorageSource`] with the `extras` table of
//! [`crate::source`]) and its `<backingStore>` entries, nested or flat, with
//! children in any order.
//!
//! # Writing: edit in place
//!
//! Output is the input with only some byte spans replaced: a chain inserted
//! after a disk's `<source>`, or the span from a disk's first to its last
//! disk-level `<backingStore>` rewritten. Everything else — declaration,
//! comments, PIs, namespaces, CDATA, entity references, whitespace,
//! attribute order and quotes — is copied. A document already in the
//! requested layout with nothing to populate comes back byte-identical.
//!
//! Chains from the images are written as libvirt formats them:
//! `<backingStore type='…' index='N'>`, `<format type='…'/>` (always;
//! `raw` when nobody knows), `<source …/>` (network hosts one per line), the
//! nested element, and `<backingStore/>` where the images say the chain ends.
//! Indentation follows the disk (its child indentation, and the difference
//! between that and the disk's own as the unit). `index` numbering: see
//! `indices_for` — depth order `1..n` when the disk carries no index, above
//! the largest index in use otherwise; `no_index` leaves them out, which is
//! exactly libvirt's inactive XML.
//!
//! # The flat form
//!
//! Daniel Berrange's reply in the 2014 RFC thread: the layers as sibling
//! `<backingStore>` elements of the `<disk>`, in depth-first order, each
//! with an `<alias>` naming itself and its parent, so that
//! `//disk/backingStore/source/@file` lists every file. **libvirt does not
//! accept this form** (its schema allows one nested `<backingStore>` per
//! level and no `<alias>` in it): convert back to nested before giving it
//! to libvirt.
//!
//! Grammar (children of `<disk>`; `ROOT` is the disk's `<target dev>`, else
//! its `<alias name>`, else `diskN`):
//!
//! ```text
//! flat-chain := entry*                       (contiguous, depth-first order)
//! entry      := layer | terminator
//! layer      := <backingStore type=T [index=N] ...>
//!                 <alias name=NAME parent=PARENT/>    (first child)
//!                 child*                             (format, source, anything
//!                                                    else, kept as written)
//!               </backingStore>
//! terminator := <backingStore [attrs without type]>
//!                 <alias parent=PARENT/>
//!               </backingStore>
//! PARENT     := ROOT | the NAME of an earlier entry
//! NAME       := ROOT '[' N ']'     (written by us: N = index, else the lowest
//!                                   free number; any unique name is read)
//! ```
//!
//! * A terminator under `P` says `P` has no backing (nested:
//!   `<backingStore/>` inside `P`).
//! * A layer no entry names as parent is an open end: libvirt would probe on.
//! * Several entries with the same parent are siblings (the RFC's quorum
//!   idea; not libvirt-valid in either form): kept, flagged
//!   `quorum-siblings`.
//! * An entry whose parent names no earlier entry is kept under the disk and
//!   flagged `flat-orphan` / `flat-order`.
//! * Every child other than the structural `<alias parent>` — including an
//!   `<alias>` without `parent`, comments, unknown elements — is kept in
//!   order; only whitespace between children is regenerated.
//!
//! Round trips: nested → flat → nested and flat → nested → flat give back
//! the same elements, attributes, text and order, and the same bytes for
//! XML in libvirt's formatting (one element per line, consistent indent).
//! Known differences outside that: whitespace between a chain's children is
//! regenerated (a one-line chain becomes one element per line); an empty
//! `<backingStore></backingStore>` comes back as `<backingStore/>`; a nested
//! `<backingStore>` that is not the last child of its parent comes back
//! last (libvirt's order); names not of the form `ROOT[N]` do not survive a
//! trip through nested (nested has nowhere to keep them).
//!
//! # Modes (the 2014 RFC)
//!
//! [`Mode::Populate`]: a disk without `<backingStore>` whose source matches
//! an image (same path, else the only image with that basename) gets the
//! chain from the headers; a disk with one keeps it (trust, `chain-trusted`)
//! and is only converted to the requested layout. [`Mode::Validate`]:
//! [`validate::compare`] goes layer by layer; `replace` writes what the
//! images say into each diverging disk.

use serde::Serialize;

use crate::chain::{self, Forest};
use crate::diag::Diagnostic;
use crate::image::Format;
use crate::source::{self, StorageSource};

pub mod edit;
pub mod model;
pub mod qemu_json;
pub mod read;
pub mod tree;
pub mod validate;
pub mod volume;
pub mod write;

pub use read::Root;

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
    /// Populate (default) or validate.
    pub mode: Mode,
    /// Validate mode: replace each chain that diverges with what the images
    /// say (the RFC's "delete the element and define again", in one step).
    pub replace: bool,
}

/// What to do with the disks (the 2014 RFC's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Disks without `<backingStore>` get the chain from the images; disks
    /// with one keep it (trust), converted to the requested layout.
    #[default]
    Populate,
    /// Compare each disk's chain with the images, layer by layer.
    Validate,
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
    /// Validate mode: did any chain diverge from the images?
    pub mismatch: bool,
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
    chain_layers(forest, &forest.chains[chain_idx], base_dir)
}

/// The chain below the top of `ch`, as XML layers.
pub fn chain_layers(forest: &Forest, ch: &chain::Chain, base_dir: Option<&str>) -> BackingChain {
    let mut layers = Vec::with_capacity(ch.layers.len().saturating_sub(1));
    for (pos, &idx) in ch.layers.iter().enumerate().skip(1) {
        let (mut src, _) = chain::layer_source(&forest.images, idx);
        if let Some(p) = src.path.take() {
            src.path = Some(absolutize(&p, base_dir));
        }
        // The format qemu opens it with: the one its overlay records (a
        // raw-recorded file with a qcow2 header is raw), else its header's.
        layers.push(Layer {
            source: src,
            format: forest.layer_format(ch, pos),
        });
    }
    // A remote end is a layer too (never opened: format unknown, chain open).
    let last = *ch.layers.last().unwrap_or(&ch.top);
    let mut terminated = ch.end == chain::Status::Ok;
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
        flag_schema_gaps(&top_path, &bc, &mut diagnostics);
        let top_layer = Layer {
            source: StorageSource::file(top_path.clone()),
            format: None,
        };
        if !representable(&dev, &top_layer, &bc, &mut diagnostics) {
            continue;
        }
        xml.push_str("<disk type='file' device='disk'>\n");
        xml.push_str(&format!("  <driver name='qemu' type='{}'/>\n", fmt.name()));
        xml.push_str(&format!(
            "  <source file='{}'/>\n",
            write::escape_attr(&top_path)
        ));
        let indices: Vec<usize> = (1..=bc.layers.len()).collect();
        let mut text = String::new();
        if nestable(&dev, bc.layers.len(), opts.layout, &mut diagnostics) {
            write::chain(&mut text, &bc, "  ", "  ", &dev, &indices, opts);
        }
        if !text.is_empty() {
            xml.push_str(&text);
            xml.push('\n');
        }
        xml.push_str(&format!("  <target dev='{dev}' bus='virtio'/>\n"));
        xml.push_str("</disk>\n");
    }
    Output {
        xml,
        diagnostics,
        mismatch: false,
    }
}

/// What libvirt's parser takes but its RelaxNG schema (so `virsh define
/// --validate`) refuses: relative paths, `ssh` layers (the schema has no ssh
/// disks; libvirt writes them in status XML), `nfs` layers without an
/// `<identity>` (the schema requires one; libvirt's own output omits it).
fn flag_schema_gaps(top: &str, bc: &BackingChain, out: &mut Vec<Diagnostic>) {
    for l in &bc.layers {
        let s = &l.source;
        let name = s.name.as_deref().unwrap_or("");
        match s.protocol.as_deref() {
            Some("ssh") if s.kind == source::SourceType::Network => out.push(Diagnostic::warning(
                "schema-refuses-ssh",
                format!("the layer ssh '{name}': libvirt's schema has no ssh disk source, so `virsh define --validate` refuses this chain (libvirt's parser takes it)"),
            )),
            Some("nfs")
                if s.kind == source::SourceType::Network
                    && s.extra("user").is_none()
                    && s.extra("group").is_none() =>
            {
                out.push(Diagnostic::warning(
                    "schema-needs-nfs-identity",
                    format!("the layer nfs '{name}' has no <identity user group>: libvirt's schema requires one, so `virsh define --validate` refuses this chain (libvirt's parser takes it)"),
                ))
            }
            _ => {}
        }
    }
    flag_relative(top, bc, out);
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

/// Are all names of the chain writable in XML? If not, say which and why.
fn representable(dev: &str, top: &Layer, bc: &BackingChain, out: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    for l in std::iter::once(top).chain(&bc.layers) {
        for s in write::layer_strings(l) {
            if let Some(c) = write::unrepresentable(s) {
                ok = false;
                out.push(Diagnostic::error(
                    "unrepresentable-name",
                    format!(
                        "the chain of '{dev}' has the name {s:?}, whose character U+{:04X} cannot be written in XML: the chain is not written",
                        c as u32
                    ),
                ));
            } else if s.contains('\u{FFFD}') {
                out.push(Diagnostic::warning(
                    "lossy-name",
                    format!(
                        "the chain of '{dev}' has the name {s:?}, which holds U+FFFD: the image header probably has bytes that are not UTF-8, and libvirt would not find this file by that name"
                    ),
                ));
            }
        }
    }
    ok
}

/// Can a chain of `depth` layers be written in `layout`? Nested chains are
/// capped by [`crate::limits::MAX_NESTED_CHAIN`]; if not, say so.
fn nestable(dev: &str, depth: usize, layout: Layout, out: &mut Vec<Diagnostic>) -> bool {
    if layout == Layout::Flat || depth <= crate::limits::MAX_NESTED_CHAIN {
        return true;
    }
    out.push(Diagnostic::error(
        "nested-too-deep",
        format!(
            "'{dev}': a chain of {depth} layers is too deep for the nested layout (at most {}); left as it was — use the flat layout",
            crate::limits::MAX_NESTED_CHAIN
        ),
    ));
    false
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

/// Populate (or validate, per `opts.mode`) a domain, bare `<disk>` or
/// status XML; a `<volume>` becomes a domain-style `<disk>`.
///
/// * populate: every disk without a `<backingStore>` whose source matches a
///   dropped image gets the chain from the headers; disks that have a chain
///   keep it (trust), written in the requested layout.
/// * validate: each disk's chain is compared with the images, layer by layer
///   (path, type, format, depth, terminator); each divergence is an error
///   diagnostic and `mismatch` is set; with `replace`, diverging chains are
///   replaced by what the images say.
///
/// Every byte outside the rewritten `<backingStore>` spans is copied.
pub fn populate(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    rewrite(doc, forest, opts)
}

/// [`populate`] in validate mode.
pub fn validate(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    let mut o = opts.clone();
    o.mode = Mode::Validate;
    rewrite(doc, forest, &o)
}

/// Convert every chain of the document to `opts.layout` without images.
pub fn convert(doc: &str, opts: &Options) -> Result<Output, XmlError> {
    let forest = chain::build(Vec::new());
    let mut o = opts.clone();
    o.mode = Mode::Populate;
    rewrite(doc, &forest, &o)
}

/// Images by path and by basename, to match disk sources.
struct ImageIndex<'a> {
    forest: &'a Forest,
    by_path: std::collections::HashMap<&'a str, usize>,
    /// basename → the image, or `None` when several share it; made when a
    /// source is first not found by its path.
    by_base: Option<std::collections::HashMap<&'a str, Option<usize>>>,
}

impl<'a> ImageIndex<'a> {
    fn new(forest: &'a Forest) -> Self {
        let mut by_path = std::collections::HashMap::with_capacity(forest.images.len());
        for (i, im) in forest.images.iter().enumerate() {
            by_path.entry(im.filename.as_str()).or_insert(i);
        }
        ImageIndex {
            forest,
            by_path,
            by_base: None,
        }
    }

    /// The image whose name matches a disk source: same path, else the only
    /// image with the same basename.
    fn find(&mut self, src: &str) -> Option<usize> {
        if let Some(&i) = self.by_path.get(src) {
            return Some(i);
        }
        let images = &self.forest.images;
        let by_base = self.by_base.get_or_insert_with(|| {
            let mut by_base = std::collections::HashMap::with_capacity(images.len());
            for (i, im) in images.iter().enumerate() {
                let b = im.filename.rsplit('/').next().unwrap_or(&im.filename);
                by_base
                    .entry(b)
                    .and_modify(|v: &mut Option<usize>| *v = None)
                    .or_insert(Some(i));
            }
            by_base
        });
        let base = src.rsplit('/').next().unwrap_or(src);
        by_base.get(base).copied().flatten()
    }
}

/// Index scheme for a chain written into a disk: when the disk carries no
/// `index` (inactive XML), layer `i` (1 = the first backing image) gets index
/// `i`, as libvirt numbered backing stores before blockdev; when it carries
/// some (live XML: `<source index='N'>`), the new ones continue above the
/// largest in use, so every index of the disk stays unique. Indices inside
/// `replaced` (the chain being replaced) do not count. Existing indices are
/// never renumbered.
fn indices_for(disk: &tree::Elem, n: usize, replaced: Option<(usize, usize)>) -> Vec<usize> {
    let mut max = None;
    let mut stack = vec![disk];
    while let Some(e) = stack.pop() {
        if replaced.is_some_and(|(s, end)| e.start.0 >= s && e.end.1 <= end) {
            continue;
        }
        if let Some(i) = e.attr("index").and_then(|v| v.parse::<usize>().ok()) {
            max = max.max(Some(i));
        }
        stack.extend(e.elems());
    }
    match max {
        None => (1..=n).collect(),
        Some(m) => (m + 1..=m + n).collect(),
    }
}

/// A UTF-8 byte order mark is kept in the output but not parsed: positions
/// in errors still count it.
const BOM: &str = "\u{feff}";

fn rewrite(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    if let Some(body) = doc.strip_prefix(BOM) {
        let mut out = rewrite_body(body, forest, opts).map_err(|mut e| {
            e.position += BOM.len();
            e
        })?;
        out.xml.insert_str(0, BOM);
        return Ok(out);
    }
    rewrite_body(doc, forest, opts)
}

fn rewrite_body(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    let d = read::document(doc)?;
    if d.root == Root::Volume {
        let vol = d.volume.as_ref().expect("volume root");
        return volume::to_disk(doc, vol, forest, opts);
    }
    let infos: Vec<model::DiskInfo> = d
        .disks
        .iter()
        .map(|disk| model::disk_info(&disk.elem, doc))
        .collect();
    // Duplicate target devs are an error: the chains could not be told apart.
    let mut seen = std::collections::HashMap::new();
    for (disk, info) in d.disks.iter().zip(&infos) {
        if let Some(dev) = &info.target_dev {
            if let Some(first) = seen.insert(dev.as_str(), disk.elem.start.0) {
                return Err(XmlError::at(
                    disk.elem.start.0,
                    format!("two disks have the target dev '{dev}' (the first at byte {first})"),
                ));
            }
        }
    }
    let mut diagnostics = Vec::new();
    let mut mismatch = false;
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut index = ImageIndex::new(forest);
    for (di, (disk, info)) in d.disks.iter().zip(infos).enumerate() {
        let el = &disk.elem;
        let dev = info
            .target_dev
            .clone()
            .or_else(|| info.alias.clone())
            .unwrap_or_else(|| format!("disk{di}"));
        let en = model::entries(el, doc, &dev);
        if let Some(e) = en.error {
            return Err(e);
        }
        diagnostics.extend(en.diagnostics.iter().cloned());
        let (child_indent, unit) = model::child_indent_and_unit(el, doc, &disk.indent);
        // A disk written with CRLF line ends gets CRLF in what we write.
        let crlf = doc[el.start.0..el.end.1].contains("\r\n");
        let src_path = info
            .source
            .as_ref()
            .filter(|s| s.is_local())
            .and_then(|s| s.path.clone());
        let matched = src_path.as_deref().and_then(|p| index.find(p));
        let base_dir = opts.base_dir.clone().unwrap_or_else(|| {
            src_path
                .as_deref()
                .map(|p| source::dir_of(p).trim_end_matches('/').to_string())
                .unwrap_or_default()
        });
        let images_chain =
            matched.map(|m| chain_layers(forest, &forest.chain_from(m), Some(&base_dir)));
        let write_images = |bc: &BackingChain,
                            replaced: Option<(usize, usize)>,
                            diags: &mut Vec<Diagnostic>|
         -> Option<String> {
            let top = Layer {
                source: info.source.clone().unwrap_or_default(),
                format: info.driver_type.clone(),
            };
            if !representable(&dev, &top, bc, diags)
                || !nestable(&dev, bc.layers.len(), opts.layout, diags)
            {
                return None;
            }
            flag_schema_gaps(src_path.as_deref().unwrap_or("/"), bc, diags);
            let mut text = String::new();
            let idx = indices_for(el, bc.layers.len(), replaced);
            write::chain(&mut text, bc, &child_indent, &unit, &dev, &idx, opts);
            Some(text)
        };
        match opts.mode {
            Mode::Populate => {
                if en.list.is_empty() {
                    let Some(bc) = &images_chain else {
                        if let Some(p) = &src_path {
                            if !forest.images.is_empty() {
                                diagnostics.push(Diagnostic::info(
                                    "disk-not-matched",
                                    format!("'{dev}': no image matches the disk source '{p}'"),
                                ));
                            }
                        }
                        continue;
                    };
                    let Some(src_el) = el.child("source") else {
                        continue;
                    };
                    if let Some(text) = write_images(bc, None, &mut diagnostics) {
                        if !text.is_empty() {
                            let at = src_el.end.1;
                            edits.push((at, at, eol(crlf, format!("\n{text}"))));
                        }
                    }
                } else {
                    if matched.is_some() {
                        diagnostics.push(Diagnostic::info(
                            "chain-trusted",
                            format!("'{dev}' already has a <backingStore> chain: kept as it is"),
                        ));
                    }
                    if en.flat != (opts.layout == Layout::Flat)
                        && nestable(&dev, en.depth(), opts.layout, &mut diagnostics)
                    {
                        let (s, e) = en.region.expect("entries have a region");
                        let mut text = String::new();
                        write::entries(
                            &mut text,
                            doc,
                            &en,
                            opts.layout,
                            &child_indent,
                            &unit,
                            &dev,
                        );
                        let text = text
                            .strip_prefix(child_indent.as_str())
                            .unwrap_or(&text)
                            .to_string();
                        edits.push((
                            s,
                            e,
                            eol(crlf, keep_between(doc, el, (s, e), text, &child_indent)),
                        ));
                    }
                }
            }
            Mode::Validate => {
                if en.list.is_empty() {
                    diagnostics.push(Diagnostic::info(
                        "no-chain",
                        format!("'{dev}' has no <backingStore>: nothing to validate (libvirt will probe the images)"),
                    ));
                    continue;
                }
                let Some(bc) = &images_chain else {
                    if src_path.is_some() {
                        diagnostics.push(Diagnostic::info(
                            "disk-not-matched",
                            format!("'{dev}': no image matches the disk source: its chain is not validated"),
                        ));
                    }
                    continue;
                };
                let found = validate::compare(doc, &en, bc, &dev);
                let bad = found
                    .iter()
                    .any(|d| d.severity == crate::diag::Severity::Error);
                diagnostics.extend(found);
                if bad {
                    mismatch = true;
                    if opts.replace {
                        let (s, e) = en.region.expect("entries have a region");
                        if let Some(text) = write_images(bc, Some((s, e)), &mut diagnostics) {
                            let text = text
                                .strip_prefix(child_indent.as_str())
                                .unwrap_or(&text)
                                .to_string();
                            edits.push((
                                s,
                                e,
                                eol(crlf, keep_between(doc, el, (s, e), text, &child_indent)),
                            ));
                            diagnostics.push(Diagnostic::info(
                                "chain-replaced",
                                format!("'{dev}': the chain was replaced with what the images say"),
                            ));
                        }
                    }
                }
            }
        }
    }
    let mut xml = String::with_capacity(doc.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
    let mut at = 0;
    for (s, e, t) in edits {
        xml.push_str(&doc[at..s]);
        xml.push_str(&t);
        at = e;
    }
    xml.push_str(&doc[at..]);
    Ok(Output {
        xml,
        diagnostics,
        mismatch,
    })
}

/// Line ends of written text: LF, or CRLF for a disk written with CRLF.
fn eol(crlf: bool, text: String) -> String {
    if crlf {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        text
    }
}

/// Anything that is not a `<backingStore>` between the first and the last
/// disk-level `<backingStore>` (a comment, another element, text) is kept:
/// written after the new chain, each on its own line, verbatim — but for the
/// blanks and line ends around text, which are layout: kept, a line end at
/// the end of such text would indent the element after the chain, which
/// the chain's indentation is taken from (and would change at every round).
fn keep_between(
    doc: &str,
    disk: &tree::Elem,
    region: (usize, usize),
    mut text: String,
    child_indent: &str,
) -> String {
    for n in &disk.children {
        let (span, keep) = match n {
            tree::Node::Elem(e) => (e.span(), e.name != "backingStore"),
            tree::Node::Other { span, ws } => (*span, !ws),
        };
        if keep && span.0 >= region.0 && span.1 <= region.1 {
            let raw = &doc[span.0..span.1];
            text.push('\n');
            text.push_str(child_indent);
            text.push_str(match n {
                tree::Node::Other { .. } => write::trim_layout(raw),
                tree::Node::Elem(_) => raw,
            });
        }
    }
    text
}

/// One layer of a chain as a document states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct XmlLayer {
    /// The `type` attribute (`None` for a terminator).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub index: Option<String>,
    pub format: Option<String>,
    pub source: Option<StorageSource>,
    /// Depth below the disk (1 = the first backing layer).
    pub depth: usize,
    /// Position of the parent in `layers` (`None`: the disk).
    pub parent: Option<usize>,
}

/// What a document says about one disk and its chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskSummary {
    /// The disk's name in flat aliases (`target dev`, else `alias`, else `diskN`).
    pub name: String,
    #[serde(flatten)]
    pub info: model::DiskInfo,
    /// Every `<backingStore>` in depth-first order, terminators included.
    pub layers: Vec<XmlLayer>,
    /// Does the chain libvirt would follow end with `<backingStore/>`?
    pub terminated: bool,
    pub layout: Layout,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read a domain, status or bare `<disk>` XML and say what each disk and
/// its chain are, without images (for a page or a console to show).
pub fn describe(doc: &str) -> Result<Vec<DiskSummary>, XmlError> {
    if let Some(body) = doc.strip_prefix(BOM) {
        return describe_body(body).map_err(|mut e| {
            e.position += BOM.len();
            e
        });
    }
    describe_body(doc)
}

fn describe_body(doc: &str) -> Result<Vec<DiskSummary>, XmlError> {
    let d = read::document(doc)?;
    let mut out = Vec::with_capacity(d.disks.len());
    for (di, disk) in d.disks.iter().enumerate() {
        let info = model::disk_info(&disk.elem, doc);
        let name = info
            .target_dev
            .clone()
            .or_else(|| info.alias.clone())
            .unwrap_or_else(|| format!("disk{di}"));
        let en = model::entries(&disk.elem, doc, &name);
        if let Some(e) = en.error {
            return Err(e);
        }
        let mut layers: Vec<XmlLayer> = Vec::with_capacity(en.list.len());
        for e in &en.list {
            let kind = e.elem.attr("type").map(str::to_string);
            let st = kind.as_deref().and_then(source::SourceType::from_name);
            let depth = e.parent.map_or(1, |p| layers[p].depth + 1);
            layers.push(XmlLayer {
                source: match (e.elem.child("source"), st) {
                    (Some(s), Some(k)) => Some(model::source_of(s, k, doc)),
                    _ => None,
                },
                format: e
                    .elem
                    .child("format")
                    .or(e.elem.child("driver"))
                    .and_then(|f| f.attr("type"))
                    .map(str::to_string),
                index: e.elem.attr("index").map(str::to_string),
                kind,
                depth,
                parent: e.parent,
            });
        }
        let path = model::main_path(&en);
        out.push(DiskSummary {
            name,
            info,
            terminated: path.last().is_some_and(|&i| en.list[i].is_terminator()),
            layout: if en.flat {
                Layout::Flat
            } else {
                Layout::Nested
            },
            diagnostics: en.diagnostics.clone(),
            layers,
        });
    }
    Ok(out)
}
