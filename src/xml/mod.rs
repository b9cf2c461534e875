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
//! between that and the disk's own as the unit).
//!
//! * **Data files** (libvirt ≥ 10.10): a layer opened as qcow2 whose header
//!   names an external data file gets `<dataStore type='…'><format
//!   type='raw'/><source …/></dataStore>` as the last child of its
//!   `<source>`, at any depth, as libvirt 11.3 prints it; the name is
//!   resolved against the image like a backing name (a relative name joins
//!   the image's directory), then made absolute like the layers. The top
//!   image's data file goes into the disk's own `<source>` too
//!   ([`WRITE_TOP_DATA_STORE`]): a chain given in the XML stops libvirt's
//!   detection, the top's data file included, and QEMU then cannot open a
//!   relative data file name (observed on libvirt 11.3). A `<dataStore>`
//!   already in the document is kept; validate mode compares it.
//! * **Layers that are not here**: the backing of the last image that is a
//!   file not in the set, or a network source, is written as the last layer
//!   without a terminator, with the format its overlay records
//!   ([`chain_layers`]).
//! * **`index`**: the numbers libvirt gives when it starts the VM (one
//!   counter per VM, libvirt's disk order, tops first, then detected layers;
//!   the rule and where it comes from: [`number`]); the disk's own
//!   `<source index>` included. A document that already carries numbers
//!   (live XML) keeps them; what is written takes numbers above the largest
//!   in the VM. `no_index` writes none, which is exactly libvirt's inactive
//!   XML.
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
//!                 <alias name=NAME parent=PARENT [at=K]/>   (first child)
//!                 child*                             (format, source, anything
//!                                                    else, kept as written)
//!               </backingStore>
//! terminator := <backingStore [attrs without type]>
//!                 <alias parent=PARENT [at=K]/>
//!               </backingStore>
//! PARENT     := ROOT | the NAME of an earlier entry
//! NAME       := ROOT '[' N ']'     (written by us: N = index, else the lowest
//!                                   free number; any unique name is read)
//! K          := how many of the parent's own children (not whitespace, not
//!               <backingStore>, not the alias) come before this entry when
//!               nested; without it, after all of them (libvirt's place)
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
//!   order, and so is the whitespace between them (re-indented with the
//!   entry): a one-line layer stays one line.
//! * Layout: entries one per line at the disk's child indentation, after
//!   the line ends that were before them (blank lines kept); an entry
//!   indented deeper than its place in the nested form gives (the
//!   indentation of the child it follows) is that much deeper in the flat
//!   form. A `<backingStore/>` written with `/>` has its alias on a line of
//!   its own; one written `<backingStore></backingStore>` has it inline.
//!
//! Round trips: nested → flat → nested gives back the same bytes (libvirt's
//! formatting, and hand-written shapes: a terminator before its sibling
//! `<format>`, a `<backingStore>` between `<format>` and `<source>`, other
//! indentation units or none, children at their parent's level,
//! `<backingStore></backingStore>`, comments); flat → nested → flat gives
//! back the flat form this module writes (`tests/xml_roundtrip.rs`,
//! `tests/xml_handwritten.rs`, the `roundtrip` fuzz target).
//! What still changes, and why:
//! * the indentation of a nested `<backingStore>` is taken to be that of
//!   the child it follows (or precedes), plus any deeper indentation, after
//!   the line ends it had (blank lines are kept): less indentation than
//!   that child, or a line break where its siblings have none, are not kept
//!   (a flat entry starts its own line at the disk's indentation or
//!   deeper, so only the extra depth and the line ends can be carried);
//! * flat names not of the form `ROOT[N]` do not survive a trip through
//!   nested: libvirt's nested form has no place for them (an `<alias>` in a
//!   `<backingStore>` is refused by its schema), so they are made again
//!   from the indexes;
//! * hand-written flat forms come back in the form above: alias first,
//!   entries depth-first, one per line;
//! * a `<backingStore>` holding character data (text other than
//!   whitespace; libvirt's schema allows none there) gets a regenerated
//!   layout, one child a line and the blanks around the text dropped, and
//!   a child entry among texts comes after them: taking a child entry out
//!   from between two texts merges them when the document is read again, so
//!   neither the whitespace nor the place it had can come back.
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
use crate::diag::{Code, Diagnostic};
use crate::image::Format;
use crate::source::{self, StorageSource};

pub mod diff;
pub mod edit;
pub mod model;
pub mod number;
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
    /// Without a domain ([`disks`]): several bare disks come in a minimal
    /// `<domain>`, one document that edits ([`edit`]) apply to; one disk
    /// stays bare.
    pub wrap: bool,
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
    /// A qcow2's external data file (libvirt ≥ 10.10 `<dataStore>`, always
    /// raw), written as the last child of the layer's `<source>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_store: Option<StorageSource>,
}

impl Layer {
    /// A layer without a data file.
    pub fn new(source: StorageSource, format: Option<String>) -> Self {
        Layer {
            source,
            format,
            data_store: None,
        }
    }
}

/// A chain below a disk's own source: layers from the first backing down,
/// and whether the end is known (a terminator `<backingStore/>` is written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackingChain {
    pub layers: Vec<Layer>,
    pub terminated: bool,
    /// The data file of the top image itself (qcow2 with an external data
    /// file), made absolute like the layers. Whether it is written into the
    /// disk's own `<source>`: see [`WRITE_TOP_DATA_STORE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_data_store: Option<StorageSource>,
    /// The layers from images named by a relative name: the name and the
    /// directory it was made absolute with (none: left relative).
    #[serde(skip)]
    pub relative: Vec<(String, Option<String>)>,
}

/// Result of a rewrite: the XML and what was noticed.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub xml: String,
    pub diagnostics: Vec<Diagnostic>,
    /// Validate mode: did any chain diverge from the images?
    pub mismatch: bool,
    /// How many `<disk>` elements `xml` has.
    pub disks: usize,
    /// The paths written from images named by a relative name (a dropped
    /// file knows no directory), each once: how each was written.
    pub paths: Vec<WrittenPath>,
    /// The disks of the document whose source is one of the images (same
    /// path, else the only image with that basename: the rule populate and
    /// validate match with), in document order: which VM disk each chain
    /// top belongs to.
    pub targets: Vec<DiskTarget>,
}

/// A disk of the document and the image its source is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskTarget {
    /// The disk's name: its target dev, else its alias, else `diskN`.
    pub disk: String,
    /// Index into [`Forest::images`].
    pub image: usize,
}

/// A path written from an image named by a relative name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WrittenPath {
    /// The image's name.
    pub image: String,
    /// The directory it was made absolute with; none: written relative
    /// (libvirt's schema wants absolute paths).
    pub base_dir: Option<String>,
    /// `base_dir` is a guess, the directory of the disk's own source: no
    /// base directory was given.
    pub guessed: bool,
}

impl Output {
    /// Say how the relative names of a chain written were written, each once.
    fn wrote(&mut self, relative: &[(String, Option<String>)], guessed: bool) {
        for (image, base_dir) in relative {
            let w = WrittenPath {
                image: image.clone(),
                base_dir: base_dir.clone(),
                guessed: guessed && base_dir.is_some(),
            };
            if !self.paths.contains(&w) {
                self.paths.push(w);
            }
        }
    }
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
///
/// Every layer the images know is written, also one that is not here: when
/// the last image's backing is a file that is not in the set
/// ([`chain::Link::Missing`]) or a network source
/// ([`chain::Link::Remote`]), its name (resolved against the parent, made
/// absolute with `base_dir`), type and the format the parent records make
/// the last layer, without a terminator (libvirt probes on from there, as
/// for a chain the user gives). That layer is written only when the parent
/// records a format qemu knows (a protocol name such as `file` is raw, as in
/// [`Forest::layer_format`]); with no recorded format, or one nobody knows,
/// it is left out (libvirt would refuse to guess it).
pub fn chain_layers(forest: &Forest, ch: &chain::Chain, base_dir: Option<&str>) -> BackingChain {
    let mut layers = Vec::with_capacity(ch.layers.len());
    let mut relative = Vec::new();
    for (pos, &idx) in ch.layers.iter().enumerate().skip(1) {
        let (mut src, _) = chain::layer_source(&forest.images, idx);
        if let Some(p) = src.path.take() {
            let written = absolutize(&p, base_dir);
            if !source::is_absolute(&p) {
                let dir = (written != p).then(|| base_dir.unwrap_or("").to_string());
                relative.push((p, dir));
            }
            src.path = Some(written);
        }
        // The format qemu opens it with: the one its overlay records (a
        // raw-recorded file with a qcow2 header is raw), else its header's.
        let format = forest.layer_format(ch, pos);
        let data_store = data_store(forest, idx, format.as_deref(), base_dir);
        layers.push(Layer {
            source: src,
            format,
            data_store,
        });
    }
    let top_data_store = ch.layers.first().and_then(|&t| {
        let f = forest.layer_format(ch, 0);
        data_store(forest, t, f.as_deref(), base_dir)
    });
    // A known layer that is not here (missing file, network source).
    let last = *ch.layers.last().unwrap_or(&ch.top);
    let mut terminated = ch.end == chain::Status::Ok;
    // An untrusted name that was not opened (`Link::NotOpened`) is not
    // written: it is what the user was told not to trust.
    let absent = match forest.links.get(last) {
        Some(chain::Link::Missing { resolved }) => {
            Some(StorageSource::file(absolutize(resolved, base_dir)))
        }
        Some(chain::Link::Remote { source }) => Some(source.clone()),
        _ => None,
    };
    if let Some(source) = absent {
        terminated = false;
        if let Some(format) = forest.recorded_backing_format(last) {
            layers.push(Layer::new(source, Some(format)));
        }
    }
    BackingChain {
        layers,
        terminated,
        top_data_store,
        relative,
    }
}

/// The external data file image `idx` records, when it is opened as qcow2
/// (`format`): resolved against the image as libvirt resolves a backing
/// name (a relative name joins the image's directory), then made absolute
/// with `base_dir` like the layers.
fn data_store(
    forest: &Forest,
    idx: usize,
    format: Option<&str>,
    base_dir: Option<&str>,
) -> Option<StorageSource> {
    if format != Some("qcow2") {
        return None;
    }
    let (_, mut src) = chain::data_file_source(forest.images.get(idx)?)?;
    if src.is_local() {
        if let Some(p) = src.path.take() {
            src.path = Some(absolutize(&p, base_dir));
        }
    }
    Some(src)
}

/// Bare `<disk>` elements, one per chain top, for callers without a domain.
pub fn disks(forest: &Forest, opts: &Options) -> Output {
    let mut out = Output {
        xml: String::new(),
        diagnostics: Vec::new(),
        mismatch: false,
        disks: 0,
        paths: Vec::new(),
        targets: Vec::new(),
    };
    let chains: Vec<BackingChain> = (0..forest.chains.len())
        .map(|ci| backing_chain(forest, ci, opts.base_dir.as_deref()))
        .collect();
    // One VM: vda, vdb, … on virtio, every chain detected (nothing given).
    let facts: Vec<number::DiskFacts> = chains
        .iter()
        .enumerate()
        .map(|(ci, bc)| number::DiskFacts {
            bus: Some("virtio".into()),
            dev: Some(target_name(ci)),
            numbered: true,
            top: true,
            detected: detected_from(bc),
            ..Default::default()
        })
        .collect();
    let numbering = number::number(&facts, 1);
    for (ci, ch) in forest.chains.iter().enumerate() {
        let bc = &chains[ci];
        let top = &forest.images[ch.top];
        let dev = target_name(ci);
        let fmt = top.info().map_or(Format::Raw, |i| i.format);
        let top_path = absolutize(&top.filename, opts.base_dir.as_deref());
        flag_schema_gaps(&top_path, bc, &mut out.diagnostics);
        let mut top_layer = Layer::new(StorageSource::file(top_path.clone()), None);
        top_layer.data_store = bc.top_data_store.clone();
        if !representable(&dev, &top_layer, bc, &mut out.diagnostics) {
            continue;
        }
        let n = &numbering.disks[ci];
        let (top_index, data_index) = if opts.no_index {
            (None, None)
        } else {
            (n.top, n.first_data)
        };
        let data = bc
            .top_data_store
            .as_ref()
            .filter(|_| WRITE_TOP_DATA_STORE)
            .map(|d| (d, data_index));
        out.xml.push_str("<disk type='file' device='disk'>\n");
        out.xml
            .push_str(&format!("  <driver name='qemu' type='{}'/>\n", fmt.name()));
        out.xml.push_str(&format!(
            "  {}\n",
            write::source_element_full(&top_layer.source, top_index, data, "  ", "  ")
        ));
        let mut text = String::new();
        if nestable(&dev, bc.layers.len(), opts.layout, &mut out.diagnostics) {
            write::chain(&mut text, bc, "  ", "  ", &dev, &n.detected, opts);
        }
        if !text.is_empty() {
            out.xml.push_str(&text);
            out.xml.push('\n');
        }
        out.xml
            .push_str(&format!("  <target dev='{dev}' bus='virtio'/>\n"));
        out.xml.push_str("</disk>\n");
        out.disks += 1;
        out.wrote(&bc.relative, false);
        if !source::is_absolute(&top.filename) {
            let dir = opts.base_dir.clone().filter(|d| !d.is_empty());
            out.wrote(&[(top.filename.clone(), dir)], false);
        }
    }
    if opts.wrap && out.disks > 1 {
        out.xml = in_domain(&out.xml);
    }
    out
}

/// Bare disks in a minimal `<domain>` that libvirt's schema accepts (one
/// document an edit can apply to), each line of `disks` four blanks deeper
/// (no line break is in an attribute: they are written `&#10;`).
fn in_domain(disks: &str) -> String {
    let mut xml = String::from("<domain type='kvm'>\n  <name>backing-chain</name>\n  <memory unit='KiB'>524288</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n");
    for line in disks.lines() {
        if !line.is_empty() {
            xml.push_str("    ");
        }
        xml.push_str(line);
        xml.push('\n');
    }
    xml.push_str("  </devices>\n</domain>\n");
    xml
}

/// What libvirt detects of a chain written from the images (pass 2 of
/// [`number`]): the top's data file, then each layer and its data file.
pub(crate) fn detected_from(bc: &BackingChain) -> number::Detected {
    number::Detected::Known {
        first_data: bc.top_data_store.is_some(),
        layers: bc.layers.iter().map(|l| l.data_store.is_some()).collect(),
    }
}

/// What libvirt's parser takes but its RelaxNG schema (so `virsh define
/// --validate`) refuses: relative paths, `ssh` layers (the schema of older
/// releases — 9.0 — has no ssh disks; 11.3's has them), `nfs` layers without an
/// `<identity>` (9.0's schema requires one, 11.3's not; libvirt's own output
/// omits it).
fn flag_schema_gaps(top: &str, bc: &BackingChain, out: &mut Vec<Diagnostic>) {
    for l in &bc.layers {
        let s = &l.source;
        let name = s.name.as_deref().unwrap_or("");
        match s.protocol.as_deref() {
            Some("ssh") if s.kind == source::SourceType::Network => out.push(Diagnostic::info(
                Code::SchemaRefusesSsh,
                format!("the layer ssh '{name}': the schema of older libvirt releases (9.0) has no ssh disk source, so their `virsh define --validate` refuses this chain (their parser takes it; libvirt 11.3's schema accepts it)"),
            )),
            Some("nfs")
                if s.kind == source::SourceType::Network
                    && s.extra("user").is_none()
                    && s.extra("group").is_none() =>
            {
                out.push(Diagnostic::info(
                    Code::SchemaNeedsNfsIdentity,
                    format!("the layer nfs '{name}' has no <identity user group>: the schema of older libvirt releases (9.0) requires one, so their `virsh define --validate` refuses this chain (their parser takes it; libvirt 11.3's schema does not require it)"),
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
                Code::RelativePath,
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
                    Code::UnrepresentableName,
                    format!(
                        "the chain of '{dev}' has the name {}, whose character U+{:04X} cannot be written in XML: the chain is not written",
                        crate::text::Quoted(s),
                        c as u32
                    ),
                ));
            } else if crate::text::contains(s, "\u{FFFD}") {
                out.push(Diagnostic::warning(
                    Code::LossyName,
                    format!(
                        "the chain of '{dev}' has the name {}, which holds U+FFFD: the image header probably has bytes that are not UTF-8, and libvirt would not find this file by that name",
                        crate::text::Quoted(s)
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
        Code::NestedTooDeep,
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
    /// basename → the images that have it; made when a source is first
    /// not found by its path. (The kind of map the chain builder's index
    /// has: one kind of hash table less in the wasm.)
    by_base: Option<std::collections::HashMap<&'a str, Vec<usize>>>,
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
            let mut by_base: std::collections::HashMap<&str, Vec<usize>> =
                std::collections::HashMap::with_capacity(images.len());
            for (i, im) in images.iter().enumerate() {
                let b = im.filename.rsplit('/').next().unwrap_or(&im.filename);
                by_base.entry(b).or_default().push(i);
            }
            by_base
        });
        let base = src.rsplit('/').next().unwrap_or(src);
        match by_base.get(base).map(Vec::as_slice) {
            Some(&[i]) => Some(i),
            _ => None,
        }
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

/// One disk of a document, read, with what is to be done to it.
struct Prep<'a> {
    /// The disk as read (a disk written with CRLF line ends gets CRLF in
    /// what is written).
    disk: model::Disk<'a>,
    src_path: Option<String>,
    /// The chain the images give, when the disk's source matches one.
    images: Option<BackingChain>,
    /// Write the images' chain: `Some(None)` inserted after the source,
    /// `Some(Some(region))` in place of the chain in `region`.
    write: Option<Option<(usize, usize)>>,
    diagnostics: Vec<Diagnostic>,
}

/// Formats libvirt follows a backing chain from (`VIR_STORAGE_FILE_BACKING`
/// and above): cow, qcow, qcow2, qed, vmdk.
fn has_backing(format: Option<&str>) -> bool {
    matches!(format, Some("cow" | "qcow" | "qcow2" | "qed" | "vmdk"))
}

/// The numbering facts of a disk (see [`number`]). `live`: the document
/// already carries numbers, so only what is written takes new ones.
fn facts(p: &Prep, live: bool) -> number::DiskFacts {
    let (info, el) = (&p.disk.info, p.disk.elem);
    let bus = el
        .child("target")
        .and_then(|t| t.attr("bus"))
        .map(str::to_string)
        .or_else(|| {
            info.target_dev
                .as_deref()
                .and_then(number::default_bus)
                .map(str::to_string)
        });
    let mut f = number::DiskFacts {
        bus,
        dev: info.target_dev.clone(),
        numbered: info.disk_type.as_deref() != Some("vhostuser"),
        ..Default::default()
    };
    let src_el = el.child("source");
    let top_data_given = src_el.is_some_and(|s| s.child("dataStore").is_some());
    if live {
        // Only what is written takes a number: the top when it has none.
        f.numbered = p.write.is_some();
        f.top = src_el.is_some_and(|s| s.attr("index").is_none());
        if let (Some(_), Some(bc)) = (p.write, &p.images) {
            f.detected = detected_from(bc);
            if top_data_given {
                f.detected = number::Detected::Known {
                    first_data: false,
                    layers: bc.layers.iter().map(|l| l.data_store.is_some()).collect(),
                };
            }
        }
        return f;
    }
    f.top = f.numbered;
    // An empty drive: no <source>, or a local one naming no file
    // (libvirt's virStorageSourceIsEmpty).
    f.empty = match &info.source {
        Some(src) => src.is_local() && src.path.as_deref().is_none_or(str::is_empty),
        None => info.other_source.is_none(),
    };
    f.top_data_given = top_data_given;
    f.throttle = el.child("throttlefilters").map_or(0, |t| {
        t.elems().filter(|e| e.name == "throttlefilter").count()
    });
    // The chain the document gives (none when it is replaced).
    let replaced = matches!(p.write, Some(Some(_)));
    let terminated = !replaced && p.disk.terminator.is_some();
    let given: Vec<&model::Entry> = if replaced {
        Vec::new()
    } else {
        let en = &p.disk.entries;
        p.disk.layers.iter().map(|&i| &en.list[i]).collect()
    };
    f.given = given
        .iter()
        .map(|e| {
            e.elem
                .child("source")
                .is_some_and(|s| s.child("dataStore").is_some())
        })
        .collect();
    let last_given = given.last();
    // The last given layer's (else the top's) format and type.
    let (fmt, network) = match last_given {
        Some(e) => (
            e.elem
                .child("format")
                .and_then(|x| x.attr("type"))
                .map(str::to_string),
            e.elem.attr("type") == Some("network"),
        ),
        None => (
            info.driver_type.clone(),
            info.disk_type.as_deref() == Some("network"),
        ),
    };
    let last_data_given = match last_given {
        Some(e) => e
            .elem
            .child("source")
            .is_some_and(|s| s.child("dataStore").is_some()),
        None => top_data_given,
    };
    f.detected = if f.empty || terminated || network {
        number::Detected::Nothing
    } else if let (Some(_), Some(bc)) = (p.write, &p.images) {
        number::Detected::Known {
            first_data: bc.top_data_store.is_some() && !top_data_given,
            layers: bc.layers.iter().map(|l| l.data_store.is_some()).collect(),
        }
    } else if !has_backing(fmt.as_deref()) {
        number::Detected::Nothing
    } else if let Some(bc) = &p.images {
        let g = given.len();
        let data = match g {
            0 => bc.top_data_store.is_some(),
            _ => bc.layers.get(g - 1).is_some_and(|l| l.data_store.is_some()),
        };
        number::Detected::Known {
            first_data: data && !last_data_given,
            layers: bc
                .layers
                .iter()
                .skip(g)
                .map(|l| l.data_store.is_some())
                .collect(),
        }
    } else {
        number::Detected::Unknown
    };
    f
}

/// The largest `index` on any disk's `<source>` or `<backingStore>`,
/// outside the regions being replaced.
fn largest_index(preps: &[Prep]) -> Option<usize> {
    preps
        .iter()
        .filter_map(|p| {
            let skip = match p.write {
                Some(Some(r)) => Some(r),
                _ => None,
            };
            model::largest_index(p.disk.elem, skip)
        })
        .max()
}

fn rewrite_body(doc: &str, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    let d = read::document(doc)?;
    if d.root == Root::Volume {
        let vol = d.volume.as_ref().expect("volume root");
        return volume::to_disk(doc, vol, forest, opts);
    }
    let disks: Vec<model::Disk> = d
        .disks
        .iter()
        .enumerate()
        .map(|(di, disk)| model::Disk::read(disk, doc, di))
        .collect();
    check_disks(&disks)?;
    let mut mismatch = false;
    let mut index = ImageIndex::new(forest);
    let mut preps: Vec<Prep> = Vec::with_capacity(d.disks.len());
    let mut targets = Vec::new();
    for disk in disks {
        let (el, info, dev, en) = (disk.elem, &disk.info, &disk.name, &disk.entries);
        let mut diagnostics = en.diagnostics.clone();
        let src_path = info
            .source
            .as_ref()
            .filter(|s| s.is_local())
            .and_then(|s| s.path.clone());
        let matched = src_path.as_deref().and_then(|p| index.find(p));
        if let Some(image) = matched {
            targets.push(DiskTarget {
                disk: dev.to_string(),
                image,
            });
        }
        let base_dir = opts.base_dir.clone().unwrap_or_else(|| {
            src_path
                .as_deref()
                .map(|p| source::dir_of(p).trim_end_matches('/').to_string())
                .unwrap_or_default()
        });
        let images = matched.map(|m| chain_layers(forest, &forest.chain_from(m), Some(&base_dir)));
        let mut write = None;
        match opts.mode {
            Mode::Populate => {
                if en.list.is_empty() {
                    if images.is_none() {
                        if let Some(p) = &src_path {
                            if !forest.images.is_empty() {
                                diagnostics.push(Diagnostic::info(
                                    Code::DiskNotMatched,
                                    format!("'{dev}': no image matches the disk source '{p}'"),
                                ));
                            }
                        }
                    } else if el.child("source").is_some() {
                        write = Some(None);
                    }
                } else if matched.is_some() {
                    diagnostics.push(Diagnostic::info(
                        Code::ChainTrusted,
                        format!("'{dev}' already has a <backingStore> chain: kept as it is"),
                    ));
                }
            }
            Mode::Validate => {
                if en.list.is_empty() {
                    diagnostics.push(Diagnostic::info(
                        Code::NoChain,
                        format!("'{dev}' has no <backingStore>: nothing to validate (libvirt will probe the images)"),
                    ));
                } else if let Some(bc) = &images {
                    let found = validate::compare(doc, &disk, bc);
                    let bad = found
                        .iter()
                        .any(|d| d.severity == crate::diag::Severity::Error);
                    diagnostics.extend(found);
                    if bad {
                        mismatch = true;
                        if opts.replace {
                            write = Some(en.region);
                        }
                    }
                } else if src_path.is_some() {
                    diagnostics.push(Diagnostic::info(
                        Code::DiskNotMatched,
                        format!(
                            "'{dev}': no image matches the disk source: its chain is not validated"
                        ),
                    ));
                }
            }
        }
        preps.push(Prep {
            disk,
            src_path,
            images,
            write,
            diagnostics,
        });
    }
    // Numbers for what is written: a freshly started VM's, or above the
    // largest in use when the document already carries some (live XML).
    let numbering = if opts.no_index || preps.iter().all(|p| p.write.is_none()) {
        None
    } else {
        let max = largest_index(&preps);
        let facts: Vec<number::DiskFacts> = preps.iter().map(|p| facts(p, max.is_some())).collect();
        let n = number::number(&facts, max.map_or(1, |m| m + 1));
        Some(n)
    };
    let mut diagnostics = Vec::new();
    if let Some(n) = &numbering {
        for (u, affected) in &n.unsure {
            let written: Vec<&str> = affected
                .iter()
                .filter(|&&a| preps[a].write.is_some())
                .map(|&a| preps[a].disk.name.as_str())
                .collect();
            if !written.is_empty() {
                diagnostics.push(Diagnostic::info(
                    Code::IndexGuess,
                    format!(
                        "the index numbers of {} assume that libvirt finds no backing layer below '{}' (no image tells its chain)",
                        written.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", "),
                        preps[*u].disk.name
                    ),
                ));
            }
        }
    }
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut relative = Vec::new();
    for (di, p) in preps.iter().enumerate() {
        let dk = &p.disk;
        let (el, dev) = (dk.elem, dk.name.as_str());
        let (child_indent, unit, crlf) = (dk.child_indent.as_str(), dk.unit.as_str(), dk.crlf);
        diagnostics.extend(p.diagnostics.iter().cloned());
        if let (Some(replaced), Some(bc)) = (p.write, &p.images) {
            let top = Layer::new(
                dk.info.source.clone().unwrap_or_default(),
                dk.info.driver_type.clone(),
            );
            let layers_ok = representable(dev, &top, bc, &mut diagnostics)
                && nestable(dev, bc.layers.len(), opts.layout, &mut diagnostics);
            if !layers_ok {
                continue;
            }
            flag_schema_gaps(p.src_path.as_deref().unwrap_or("/"), bc, &mut diagnostics);
            let nums = numbering.as_ref().map(|n| &n.disks[di]);
            let layer_nums: Vec<(usize, Option<usize>)> = match nums {
                Some(n) => n.detected.clone(),
                None => Vec::new(),
            };
            let mut text = String::new();
            write::chain(&mut text, bc, child_indent, unit, dev, &layer_nums, opts);
            relative.extend(bc.relative.iter().cloned());
            // The top: its number and its data file, in the disk's <source>
            // (when a chain is written at all).
            if let Some(src_el) = el.child("source").filter(|_| !text.is_empty()) {
                let top_index = nums.and_then(|n| n.top);
                let top_data = bc
                    .top_data_store
                    .as_ref()
                    .filter(|_| WRITE_TOP_DATA_STORE && src_el.child("dataStore").is_none())
                    .map(|ds| (ds, nums.and_then(|n| n.first_data)));
                for (s, e, t) in
                    top_source_edits(doc, src_el, top_index, top_data, child_indent, unit)
                {
                    edits.push((s, e, eol(crlf, t)));
                }
            }
            match replaced {
                None => {
                    if !text.is_empty() {
                        let at = el.child("source").map_or(el.start.1, |s| s.end.1);
                        edits.push((at, at, eol(crlf, format!("\n{text}"))));
                    }
                }
                Some((s, e)) => {
                    let text = text.strip_prefix(child_indent).unwrap_or(&text).to_string();
                    edits.push((
                        s,
                        e,
                        eol(crlf, keep_between(doc, el, (s, e), text, child_indent)),
                    ));
                    diagnostics.push(Diagnostic::info(
                        Code::ChainReplaced,
                        format!("'{dev}': the chain was replaced with what the images say"),
                    ));
                }
            }
            continue;
        }
        // A disk with no chain nothing is written into still has its top
        // numbered, as libvirt numbers every disk's source (a network disk,
        // a raw one, a cdrom with media); an index already there is kept.
        // A given chain is kept as written, numbers and all.
        if let (Some(n), Some(src_el), true) =
            (&numbering, el.child("source"), dk.entries.list.is_empty())
        {
            if let Some(top_index) = n.disks[di].top {
                for (s, e, t) in
                    top_source_edits(doc, src_el, Some(top_index), None, child_indent, unit)
                {
                    edits.push((s, e, eol(crlf, t)));
                }
            }
        }
        if opts.mode == Mode::Populate {
            edits.extend(relayout(doc, dk, opts.layout, &mut diagnostics));
        }
    }
    let xml = splice(doc, edits, false);
    let mut out = Output {
        xml,
        diagnostics,
        mismatch,
        disks: preps.len(),
        paths: Vec::new(),
        targets,
    };
    out.wrote(&relative, opts.base_dir.is_none());
    Ok(out)
}

/// What makes a document's disks unusable for a rewrite or an edit: two
/// disks with the same target dev (their chains could not be told apart),
/// or a chain that cannot be read (the first, in document order).
pub(crate) fn check_disks(disks: &[model::Disk]) -> Result<(), XmlError> {
    let mut seen = std::collections::HashMap::new();
    for disk in disks {
        if let Some(dev) = &disk.info.target_dev {
            if let Some(first) = seen.insert(dev.as_str(), disk.elem.start.0) {
                return Err(XmlError::at(
                    disk.elem.start.0,
                    format!("two disks have the target dev '{dev}' (the first at byte {first})"),
                ));
            }
        }
    }
    match disks.iter().find_map(|d| d.entries.error.as_ref()) {
        Some(e) => Err(e.clone()),
        None => Ok(()),
    }
}

/// The edit that writes disk `dk`'s given chain in `layout` (the span of
/// its disk-level `<backingStore>`s and the new text, with the disk's line
/// ends), when it is written in the other layout; none when it already is,
/// or when it is too deep to nest (said in `diagnostics`).
pub(crate) fn relayout(
    doc: &str,
    dk: &model::Disk,
    layout: Layout,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(usize, usize, String)> {
    let en = &dk.entries;
    if en.list.is_empty()
        || en.flat == (layout == Layout::Flat)
        || !nestable(&dk.name, en.depth(), layout, diagnostics)
    {
        return None;
    }
    let (s, e) = en.region.expect("entries have a region");
    let mut text = String::new();
    write::entries(
        &mut text,
        doc,
        en,
        layout,
        &dk.child_indent,
        &dk.unit,
        &dk.name,
    );
    let text = keep_between(doc, dk.elem, (s, e), text, &dk.child_indent);
    Some((s, e, eol(dk.crlf, text)))
}

/// Write the top image's data file into the disk's own `<source>` when a
/// chain from the images is written. Decided by what libvirt 11.3 does
/// (`docs/libvirt-findings/libvirt-datastore.md`): a given chain —
/// ours ends in `<backingStore/>` or in a layer libvirt cannot open — stops
/// libvirt's detection, the top's data file included, and QEMU then fails to
/// open a relative data file name; libvirt itself prints the top's
/// `<dataStore>` when it detects it.
pub const WRITE_TOP_DATA_STORE: bool = true;

/// Edits of a disk's `<source>` for its number (` index='N'`, the last
/// attribute, as libvirt writes it) and its data file (`<dataStore>`, the
/// last child). An existing `index` is kept.
fn top_source_edits(
    doc: &str,
    src: &tree::Elem,
    index: Option<usize>,
    data: Option<(&StorageSource, Option<usize>)>,
    child_indent: &str,
    unit: &str,
) -> Vec<(usize, usize, String)> {
    let inner_pad = format!("{child_indent}{unit}");
    let ds_text = data.map(|(ds, di)| write::data_store_element(ds, di, &inner_pad, unit));
    source_edits(doc, src, index, ds_text, child_indent, unit)
}

/// [`top_source_edits`] with the `<dataStore>` element as text (its
/// lines indented for one level below `child_indent`).
pub(crate) fn source_edits(
    doc: &str,
    src: &tree::Elem,
    index: Option<usize>,
    ds_text: Option<String>,
    child_indent: &str,
    unit: &str,
) -> Vec<(usize, usize, String)> {
    let index = index.filter(|_| src.attr("index").is_none());
    let ds_text = ds_text.filter(|_| src.child("dataStore").is_none());
    if index.is_none() && ds_text.is_none() {
        return Vec::new();
    }
    let raw = &doc[src.start.0..src.start.1];
    let cut = if src.empty { 2 } else { 1 };
    let inner = raw[..raw.len().saturating_sub(cut)].trim_end();
    let mut start = inner.to_string();
    if let Some(i) = index {
        // In the tag's own quotes.
        if crate::text::contains(raw, "=\"") && !crate::text::contains(raw, "='") {
            start.push_str(&format!(" index=\"{i}\""));
        } else {
            start.push_str(&format!(" index='{i}'"));
        }
    }
    let Some(ds_text) = ds_text else {
        start.push_str(&raw[inner.len()..]);
        return vec![(src.start.0, src.start.1, start)];
    };
    let inner_pad = format!("{child_indent}{unit}");
    if src.empty {
        start.push_str(&format!(">\n{inner_pad}{ds_text}\n{child_indent}</source>"));
        return vec![(src.start.0, src.start.1, start)];
    }
    start.push('>');
    // Before `</source>`: after the layout that ends the last child.
    let before = &doc[src.start.1..src.end.0];
    let tail = if before.ends_with(&format!("\n{child_indent}")) {
        format!("{unit}{ds_text}\n{child_indent}")
    } else {
        format!("\n{inner_pad}{ds_text}\n{child_indent}")
    };
    vec![
        (src.start.0, src.start.1, start),
        (src.end.0, src.end.0, tail),
    ]
}

/// Sort a short, nearly sorted list by `key`, stably (insertion sort): the
/// standard sorts cost several KiB of wasm for each element type.
pub(crate) fn sort_small<T>(v: &mut [T], key: impl Fn(&T) -> (usize, usize)) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && key(&v[j - 1]) > key(&v[j]) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `doc` with spans replaced (`(start, end, text)`, not overlapping, in any
/// order; the same start keeps the given order), each text's line ends
/// made CRLF when `crlf`.
pub(crate) fn splice(doc: &str, mut edits: Vec<(usize, usize, String)>, crlf: bool) -> String {
    sort_small(&mut edits, |e| (e.0, e.1));
    let mut xml = String::with_capacity(doc.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
    let mut at = 0;
    for (s, e, t) in edits {
        xml.push_str(&doc[at..s]);
        xml.push_str(&eol(crlf, t));
        at = e;
    }
    xml.push_str(&doc[at..]);
    xml
}

/// Line ends of written text: LF, or CRLF for a disk written with CRLF.
pub(crate) fn eol(crlf: bool, text: String) -> String {
    if crlf {
        crate::text::replace(&text, "\r\n", "\n").replace('\n', "\r\n")
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

/// Which known image each place of a disk's chain is, as the document
/// states the chain: the disk's own source and each layer libvirt follows.
/// [`images_of`] gives one per disk, in [`describe`]'s order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskImages {
    /// Index into [`Forest::images`] of the image the disk's source is.
    pub source: Option<usize>,
    /// The same for each layer of the main path, depth 1 first (terminator
    /// excluded); `None` for a layer that is no known image (a network
    /// layer, a path no image has).
    pub layers: Vec<Option<usize>>,
    /// Does the document state a chain (a `<backingStore>`, a terminator
    /// alone too)? Else populate writes the images' chain.
    pub stated: bool,
}

/// For each disk of `doc`: which of `forest`'s images its source and each
/// layer of its stated chain are, matched as [`populate`] and [`validate()`]
/// match a disk's source (same path, else the only image with that
/// basename). An editor uses it to follow an edit of the chain in the
/// images' view (a reparent).
pub fn images_of(doc: &str, forest: &Forest) -> Result<Vec<DiskImages>, XmlError> {
    let disks = describe(doc)?;
    let mut index = ImageIndex::new(forest);
    let mut find = |s: Option<&StorageSource>| {
        s.filter(|s| s.is_local())
            .and_then(|s| s.path.as_deref())
            .and_then(|p| index.find(p))
    };
    let mut out = Vec::with_capacity(disks.len());
    for d in &disks {
        let source = find(d.info.source.as_ref());
        let layers = d
            .main
            .iter()
            .map(|&i| find(d.layers[i].source.as_ref()))
            .collect();
        out.push(DiskImages {
            source,
            layers,
            stated: !d.layers.is_empty(),
        });
    }
    Ok(out)
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
    /// The chain libvirt follows (the first child at each level), from the
    /// first backing layer down: positions in `layers`, terminator excluded.
    pub main: Vec<usize>,
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
    d.disks
        .iter()
        .enumerate()
        .map(|(di, disk)| summary(doc, &model::Disk::read(disk, doc, di)))
        .collect()
}

/// What a disk read from `doc` says ([`describe`]); an error when its
/// chain cannot be read.
pub(crate) fn summary(doc: &str, dk: &model::Disk) -> Result<DiskSummary, XmlError> {
    let en = &dk.entries;
    if let Some(e) = &en.error {
        return Err(e.clone());
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
    Ok(DiskSummary {
        name: dk.name.clone(),
        info: dk.info.clone(),
        main: dk.layers.clone(),
        terminated: dk.terminator.is_some(),
        layout: if en.flat {
            Layout::Flat
        } else {
            Layout::Nested
        },
        diagnostics: en.diagnostics.clone(),
        layers,
    })
}
