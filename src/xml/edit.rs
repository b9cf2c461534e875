//! Edits to one disk's `<backingStore>` chain, for an editor: the document
//! is the state, each operation returns a new document in which only the
//! changed span differs (everything else copied byte for byte).
//!
//! A disk is addressed by its position among the document's disks (the
//! order of [`super::describe`]); a layer by its depth on the chain libvirt
//! follows (1 = the first backing layer; depth 0 = the disk's own source,
//! for [`set_seclabel`] only). Operations work on the nested form; a disk
//! whose chain is flat is converted to nested first (every flat disk of the
//! document is, with the text [`super::convert`] writes).
//!
//! An edit reads the document once (`Nested`): the disks are kept as
//! element trees over the original bytes, the edited disk is read into the
//! [`Disk`] model (a flat one is converted and its element alone read
//! again), the operation gives the spans it replaces, and the document is
//! written once, by one splice of those spans and the conversions.
//!
//! * [`set_layer`]: a layer's `type`, `<source>` (path, or protocol, name and
//!   hosts; every other attribute and child of `<source>` — `<seclabel>`,
//!   `<auth>`, … — is kept) and `<format>`.
//! * [`insert_layer`]: a new layer at a depth; what was there moves one
//!   level down (re-indented). Depth `n + 1` appends at the end (above the
//!   terminator, when there is one).
//! * [`remove_layer`]: what was below moves one level up.
//! * [`set_terminator`]: add or remove the `<backingStore/>` that ends the chain.
//! * [`set_seclabel`] / [`remove_seclabel`]: a `<seclabel model=…>` in a
//!   layer's `<source>`: `relabel` and `<label>` set, other attributes and
//!   children kept.
//! * [`adopt_chain`]: take a disk's chain from another version of the same
//!   document (the page uses it to keep a populated chain before editing it).

use serde::{Deserialize, Serialize};

use super::model::Disk;
use super::read::{self, DiskNode, Document};
use super::tree::{Elem, Node};
use super::write::{attr, empty_with, escape_text, source_element};
use super::{eol, splice};
use super::{Layout, XmlError};
use crate::source::{Host, SourceType, StorageSource};

/// A network host as the editor gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostSpec {
    pub name: Option<String>,
    pub port: Option<u16>,
    pub transport: Option<String>,
    pub socket: Option<String>,
}

/// A layer as the editor gives it: where it is and its format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayerSpec {
    /// `file`, `block`, `dir`, `network`, `volume` or `nvme`.
    #[serde(rename = "type")]
    pub kind: String,
    /// file / block / dir.
    pub path: Option<String>,
    /// network: `nbd`, `iscsi`, `rbd`, …
    pub protocol: Option<String>,
    /// network: the `name` attribute.
    pub name: Option<String>,
    pub hosts: Vec<HostSpec>,
    /// volume: the storage pool and the volume in it.
    pub pool: Option<String>,
    pub volume: Option<String>,
    /// volume (iSCSI pools): `host` or `direct`.
    pub mode: Option<String>,
    /// nvme: the controller's PCI address, `DDDD:BB:SS.F` (hexadecimal).
    pub pci: Option<String>,
    /// nvme: the namespace (1 or more).
    pub namespace: Option<u32>,
    /// nvme: `managed='yes'|'no'`; `None` writes none.
    pub managed: Option<bool>,
    /// `<format type>`; `None` leaves it as it is (a new layer: none written).
    pub format: Option<String>,
}

/// A `<seclabel>` of a `<source>` (libvirt's per-image sVirt override).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeclabelSpec {
    /// `selinux`, `dac`, `apparmor`: the seclabel edited is the one with
    /// this model (one is added when there is none).
    pub model: String,
    /// `relabel='yes'|'no'`; `None` removes the attribute.
    pub relabel: Option<bool>,
    /// The `<label>` text; `None` removes the `<label>` element.
    pub label: Option<String>,
}

/// One edit, for callers that pass operations as data (the wasm facade).
/// Read through a private struct of its fields (`op` and the rest), no
/// buffering of the whole object as serde's tagged-enum reader does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", try_from = "OpFields")]
pub enum Op {
    SetLayer {
        disk: usize,
        depth: usize,
        layer: LayerSpec,
    },
    InsertLayer {
        disk: usize,
        depth: usize,
        layer: LayerSpec,
    },
    RemoveLayer {
        disk: usize,
        depth: usize,
    },
    SetTerminator {
        disk: usize,
        on: bool,
    },
    SetSeclabel {
        disk: usize,
        depth: usize,
        seclabel: SeclabelSpec,
    },
    RemoveSeclabel {
        disk: usize,
        depth: usize,
        model: String,
    },
}

/// An [`Op`] as it comes in: its `op` and every field any operation has.
/// serde's own reading of an internally tagged enum buffers the object in a
/// generic `Content` tree before it knows the variant, about 38 KB of the
/// wasm for this one type (issue 18); this reads the fields once.
/// The wasm facade fills it by hand from a JS object (no serde there).
#[derive(Deserialize, Default)]
pub(crate) struct OpFields {
    pub(crate) op: String,
    pub(crate) disk: Option<usize>,
    pub(crate) depth: Option<usize>,
    pub(crate) layer: Option<LayerSpec>,
    pub(crate) on: Option<bool>,
    pub(crate) seclabel: Option<SeclabelSpec>,
    pub(crate) model: Option<String>,
}

impl TryFrom<OpFields> for Op {
    type Error = String;

    fn try_from(f: OpFields) -> Result<Op, String> {
        fn need<T>(v: Option<T>, name: &str) -> Result<T, String> {
            v.ok_or_else(|| format!("missing field `{name}`"))
        }
        let disk = need(f.disk, "disk")?;
        let depth = || need(f.depth, "depth");
        Ok(match f.op.as_str() {
            "set-layer" => Op::SetLayer {
                disk,
                depth: depth()?,
                layer: need(f.layer, "layer")?,
            },
            "insert-layer" => Op::InsertLayer {
                disk,
                depth: depth()?,
                layer: need(f.layer, "layer")?,
            },
            "remove-layer" => Op::RemoveLayer {
                disk,
                depth: depth()?,
            },
            "set-terminator" => Op::SetTerminator {
                disk,
                on: need(f.on, "on")?,
            },
            "set-seclabel" => Op::SetSeclabel {
                disk,
                depth: depth()?,
                seclabel: need(f.seclabel, "seclabel")?,
            },
            "remove-seclabel" => Op::RemoveSeclabel {
                disk,
                depth: depth()?,
                model: need(f.model, "model")?,
            },
            other => {
                return Err(format!(
                    "unknown variant `{other}`, expected one of `set-layer`, `insert-layer`, \
                     `remove-layer`, `set-terminator`, `set-seclabel`, `remove-seclabel`"
                ))
            }
        })
    }
}

/// Apply one [`Op`].
pub fn apply(doc: &str, op: &Op) -> Result<String, XmlError> {
    match op {
        Op::SetLayer { disk, depth, layer } => set_layer(doc, *disk, *depth, layer),
        Op::InsertLayer { disk, depth, layer } => insert_layer(doc, *disk, *depth, layer),
        Op::RemoveLayer { disk, depth } => remove_layer(doc, *disk, *depth),
        Op::SetTerminator { disk, on } => set_terminator(doc, *disk, *on),
        Op::SetSeclabel {
            disk,
            depth,
            seclabel,
        } => set_seclabel(doc, *disk, *depth, seclabel),
        Op::RemoveSeclabel { disk, depth, model } => remove_seclabel(doc, *disk, *depth, model),
    }
}

fn err(msg: impl Into<String>) -> XmlError {
    XmlError::at(0, msg)
}

/// A text edit: the span `[start, end)` of a text and what replaces it.
type Edit = (usize, usize, String);

/// An operation on one disk in the nested form: the edits of the text its
/// spans are in ([`Nested::with_disk`]).
type DiskOp<'f> = dyn FnMut(&str, &Disk<'_>) -> Result<Vec<Edit>, XmlError> + 'f;

/// A document read once, for the editor: its disks and, for each flat
/// one, the edit that writes its chain nested. Operations and views work
/// on the nested form, and every flat disk of the document is converted (as
/// [`super::convert`] would: the same checks, the same text). The document
/// is not read again; a disk is read ([`Disk::read`]) when it is used — all
/// of them only when one is flat — and a flat disk being edited is read
/// again alone, once converted.
pub(super) struct Nested<'a> {
    doc: &'a str,
    nodes: &'a [DiskNode],
    /// Per disk, when any is flat: the edit writing its chain nested.
    relayout: Vec<Option<Edit>>,
}

impl<'a> Nested<'a> {
    pub(super) fn new(doc: &'a str, d: &'a Document) -> Result<Self, XmlError> {
        let mut relayout = Vec::new();
        if d.disks.iter().any(|n| super::model::is_flat(&n.elem)) {
            let mut disks = Vec::with_capacity(d.disks.len());
            for (i, n) in d.disks.iter().enumerate() {
                disks.push(Disk::read(n, doc, i));
            }
            super::check_disks(&disks)?;
            // What convert would say (a chain too deep to nest stays flat)
            // is not the editor's to report.
            let mut unused = Vec::new();
            for k in &disks {
                relayout.push(super::relayout(doc, k, Layout::Nested, &mut unused));
            }
        }
        Ok(Nested {
            doc,
            nodes: &d.disks,
            relayout,
        })
    }

    /// Disk `i` as read, or an error naming how many there are.
    fn disk(&self, i: usize) -> Result<Disk<'a>, XmlError> {
        let node = self.nodes.get(i).ok_or_else(|| {
            err(format!(
                "there is no disk {i} (the document has {})",
                self.nodes.len()
            ))
        })?;
        Ok(Disk::read(node, self.doc, i))
    }

    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The largest `index` in the document.
    fn largest_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .filter_map(|x| super::model::largest_index(&x.elem, None))
            .max()
    }

    /// Run `f` on disk `i` in the nested form, with the text its spans are
    /// in: the document, or (a flat disk) the disk's element converted and
    /// read alone.
    pub(super) fn with_disk(
        &self,
        i: usize,
        f: &mut dyn FnMut(&str, &Disk<'_>) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        let Some((s, e, t)) = self.relayout.get(i).and_then(Option::as_ref) else {
            return f(self.doc, &self.disk(i)?);
        };
        let (ds, de) = self.nodes[i].elem.span();
        let text = splice(&self.doc[ds..de], vec![(s - ds, e - ds, t.clone())], false);
        let mut node = read::document(&text)?
            .disks
            .pop()
            .ok_or_else(|| err("internal: a converted disk is no <disk>"))?;
        node.indent.clone_from(&self.nodes[i].indent);
        let converted = Disk::read(&node, &text, i);
        f(&text, &converted)
    }

    /// The document with disk `only` (else every disk) edited by `f`
    /// (edits in the spans of the text it is given, see
    /// [`Nested::with_disk`]) and every disk nested: one splice of the
    /// document.
    pub(super) fn edit(&self, only: Option<usize>, f: &mut DiskOp<'_>) -> Result<String, XmlError> {
        let mut edits = Vec::new();
        for i in 0..self.nodes.len().max(only.map_or(0, |o| o + 1)) {
            let converted = self.relayout.get(i).and_then(Option::as_ref);
            if only.is_some_and(|o| o != i) {
                edits.extend(converted.cloned());
                continue;
            }
            self.with_disk(i, &mut |text, dk| {
                let mine = f(text, dk)?;
                if converted.is_some() {
                    let (ds, de) = self.nodes[i].elem.span();
                    edits.push((ds, de, splice(text, mine, dk.crlf)));
                } else {
                    for (s, e, t) in mine {
                        edits.push((s, e, eol(dk.crlf, t)));
                    }
                }
                Ok(())
            })?;
        }
        Ok(splice(self.doc, edits, false))
    }
}

/// Read `doc` once and edit disk `disk_i` with `f` ([`Nested::edit`]).
fn edit_disk(doc: &str, disk_i: usize, f: &mut DiskOp<'_>) -> Result<String, XmlError> {
    let d = read::document(doc)?;
    Nested::new(doc, &d)?.edit(Some(disk_i), f)
}

/// What the operations need of a disk, beyond [`Disk`].
impl Disk<'_> {
    /// The element a layer at `depth + 1` nests in: the disk for 0, else
    /// the layer at `depth`.
    fn owner(&self, depth: usize) -> &Elem {
        match depth {
            0 => self.elem,
            d => self.entries.list[self.layers[d - 1]].elem,
        }
    }
    /// Where a new element goes below the last layer: after the disk's
    /// `<source>` when there is no layer, else after the last layer's last
    /// child.
    fn open_end(&self) -> Result<usize, XmlError> {
        let n = self.layers.len();
        let last = if n == 0 {
            self.elem
                .child("source")
                .ok_or_else(|| err("the disk has no <source> to put a chain under"))?
        } else {
            self.owner(n)
                .elems()
                .last()
                .ok_or_else(|| err("the last layer is empty"))?
        };
        Ok(last.end.1)
    }
    fn layer(&self, depth: usize) -> Result<&Elem, XmlError> {
        if depth == 0 || depth > self.layers.len() {
            return Err(err(format!(
                "the disk has no backing layer {depth} (it has {})",
                self.layers.len()
            )));
        }
        Ok(self.entries.list[self.layers[depth - 1]].elem)
    }
    /// Indentation of the layer at `depth` (its start tag).
    fn pad(&self, depth: usize) -> String {
        if depth >= 1 && depth <= self.layers.len() {
            let e = &self.entries.list[self.layers[depth - 1]];
            if !e.indent.is_empty() || depth == 1 {
                return e.indent.clone();
            }
        }
        let mut p = self.child_indent.clone();
        for _ in 1..depth {
            p.push_str(&self.unit);
        }
        p
    }
}

fn start_tag(name: &str, attrs: &[(String, String)], empty: bool) -> String {
    let mut o = format!("<{name}");
    for (k, v) in attrs {
        attr(&mut o, k, v);
    }
    o.push_str(if empty { "/>" } else { ">" });
    o
}

/// The whitespace node just before child `c` of `parent` (to remove with it).
pub(super) fn ws_before(parent: &Elem, c: &Elem) -> usize {
    let mut start = c.start.0;
    for n in &parent.children {
        match n {
            Node::Other { span, ws: true } if span.1 == c.start.0 => start = span.0,
            _ => {}
        }
    }
    start
}

/// An element rebuilt with new start-tag attributes and children (each on
/// its own line, one unit below `pad`); `kids` are written verbatim.
fn rebuild(
    name: &str,
    attrs: &[(String, String)],
    kids: &[String],
    pad: &str,
    unit: &str,
) -> String {
    if kids.is_empty() {
        return start_tag(name, attrs, true);
    }
    let mut o = start_tag(name, attrs, false);
    for k in kids {
        o.push('\n');
        o.push_str(pad);
        o.push_str(unit);
        o.push_str(k);
    }
    o.push('\n');
    o.push_str(pad);
    o.push_str(&format!("</{name}>"));
    o
}

/// The verbatim text of every child of `el` except whitespace and those
/// `drop` refuses.
fn kept_children(doc: &str, el: &Elem, drop: impl Fn(&Elem) -> bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, n) in el.children.iter().enumerate() {
        match n {
            Node::Elem(c) if !drop(c) => out.push((i, doc[c.start.0..c.end.1].to_string())),
            Node::Other { span, ws: false } => out.push((i, doc[span.0..span.1].to_string())),
            _ => {}
        }
    }
    out
}

fn check_kind(spec: &LayerSpec) -> Result<SourceType, XmlError> {
    let k = SourceType::from_name(&spec.kind)
        .filter(|k| {
            matches!(
                k,
                SourceType::File
                    | SourceType::Block
                    | SourceType::Dir
                    | SourceType::Network
                    | SourceType::Volume
                    | SourceType::Nvme
            )
        })
        .ok_or_else(|| {
            err(format!(
                "layer type '{}': give file, block, dir, network, volume or nvme",
                spec.kind
            ))
        })?;
    let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    match k {
        SourceType::Network => {
            if !given(&spec.protocol) {
                return Err(err("a network layer needs a protocol"));
            }
        }
        SourceType::Volume => {
            if !given(&spec.pool) || !given(&spec.volume) {
                return Err(err("a volume layer needs a pool and a volume"));
            }
            if let Some(m) = spec.mode.as_deref().filter(|m| !m.is_empty()) {
                if m != "host" && m != "direct" {
                    return Err(err(format!("volume mode '{m}': give host or direct")));
                }
            }
        }
        SourceType::Nvme => {
            if !spec
                .pci
                .as_deref()
                .is_some_and(super::model::is_pci_address)
            {
                return Err(err(format!(
                    "nvme PCI address {}: give DDDD:BB:SS.F in hexadecimal (e.g. 0000:01:00.0)",
                    crate::text::Quoted(spec.pci.as_deref().unwrap_or(""))
                )));
            }
            if spec.namespace.unwrap_or(0) == 0 {
                return Err(err("an nvme layer needs a namespace (1 or more)"));
            }
        }
        _ => {
            if !given(&spec.path) {
                return Err(err("a file, block or dir layer needs a path"));
            }
        }
    }
    for s in [
        &spec.path,
        &spec.protocol,
        &spec.name,
        &spec.format,
        &spec.pool,
        &spec.volume,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(c) = super::write::unrepresentable(s) {
            return Err(err(format!(
                "{} holds U+{:04X}, which XML cannot hold",
                crate::text::Quoted(s),
                c as u32
            )));
        }
    }
    Ok(k)
}

fn storage_source(spec: &LayerSpec, kind: SourceType) -> StorageSource {
    let mut s = StorageSource {
        kind,
        ..Default::default()
    };
    if kind == SourceType::Network {
        s.protocol = spec.protocol.clone();
        s.name = spec.name.clone().filter(|n| !n.is_empty());
        s.hosts = spec
            .hosts
            .iter()
            .filter(|h| h.name.is_some() || h.socket.is_some())
            .map(|h| Host {
                name: h.name.clone().filter(|n| !n.is_empty()),
                port: h.port,
                transport: h.transport.clone().filter(|t| !t.is_empty() && t != "tcp"),
                socket: h.socket.clone().filter(|t| !t.is_empty()),
            })
            .collect();
    } else if kind == SourceType::Volume {
        let mode = spec.mode.clone().filter(|m| !m.is_empty());
        for (k, v) in [
            ("pool", &spec.pool),
            ("volume", &spec.volume),
            ("mode", &mode),
        ] {
            s.extras.extend(v.clone().map(|v| (k.to_string(), v)));
        }
    } else if kind == SourceType::Nvme {
        let managed = spec
            .managed
            .map(|m| if m { "yes" } else { "no" }.to_string());
        let namespace = spec.namespace.map(|n| n.to_string());
        for (k, v) in [
            ("managed", &managed),
            ("namespace", &namespace),
            ("pci", &spec.pci),
        ] {
            s.extras.extend(v.clone().map(|v| (k.to_string(), v)));
        }
    } else {
        s.path = spec.path.clone();
    }
    s
}

/// Attributes of `<source>` that say where the layer is (replaced by an
/// edit); any other attribute (`index`, `tls`, `query`, …) is kept while
/// the type stays the same.
const LOCATION_ATTRS: [&str; 11] = [
    "file",
    "dev",
    "dir",
    "protocol",
    "name",
    "pool",
    "volume",
    "mode",
    "type",
    "managed",
    "namespace",
];

/// Children of `<source>` that say where the layer is (replaced by an edit).
const LOCATION_CHILDREN: [&str; 2] = ["host", "address"];

/// What a `<source>` keeps when its layer changes type: the attributes and
/// children every type may have (the rest belongs to the old type: a
/// network source's `tls`, `<host>`, `<auth>`, `<snapshot>`, a volume's
/// `pool`, an nvme `<address>`, …).
const KEPT_ACROSS_TYPES: [&str; 5] = [
    "index",
    "seclabel",
    "encryption",
    "reservations",
    "privateData",
];

/// The new `<source>` for `spec`, keeping the old one's other attributes
/// and children (all but `<host>`); across a type change, only those in
/// [`KEPT_ACROSS_TYPES`].
fn new_source(
    doc: &str,
    old: Option<&Elem>,
    old_kind: Option<&str>,
    spec: &LayerSpec,
    kind: SourceType,
    pad: &str,
    unit: &str,
) -> String {
    let same_type = old_kind == Some(kind.name());
    let s = storage_source(spec, kind);
    let Some(old) = old else {
        return source_element(&s, pad, unit);
    };
    // Where it is, written as for a new layer; then what the old kept.
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut kids: Vec<String> = Vec::new();
    super::write::source_location(
        &s,
        &mut |k, v| attrs.push((k.to_string(), v.to_string())),
        &mut kids,
    );
    for (k, v) in &old.attrs {
        let keep = if same_type {
            !LOCATION_ATTRS.contains(&k.as_str())
        } else {
            KEPT_ACROSS_TYPES.contains(&k.as_str())
        };
        if keep {
            attrs.push((k.clone(), v.clone()));
        }
    }
    kids.extend(
        kept_children(doc, old, |c| {
            LOCATION_CHILDREN.contains(&c.name.as_str())
                || (!same_type && !KEPT_ACROSS_TYPES.contains(&c.name.as_str()))
        })
        .into_iter()
        .map(|(_, t)| t),
    );
    rebuild("source", &attrs, &kids, pad, unit)
}

/// A new `<backingStore>` element at indentation `pad`; `inner` (already
/// indented for one level down) goes last.
fn new_layer(
    spec: &LayerSpec,
    kind: SourceType,
    index: Option<usize>,
    pad: &str,
    unit: &str,
    inner: Option<&str>,
) -> String {
    let inpad = format!("{pad}{unit}");
    let mut o = String::from("<backingStore");
    attr(&mut o, "type", kind.name());
    if let Some(i) = index {
        attr(&mut o, "index", &i.to_string());
    }
    o.push_str(">\n");
    if let Some(f) = spec.format.as_deref().filter(|f| !f.is_empty()) {
        o.push_str(&format!("{inpad}{}\n", empty_with("format", "type", f)));
    }
    let s = storage_source(spec, kind);
    o.push_str(&format!("{inpad}{}\n", source_element(&s, &inpad, unit)));
    if let Some(t) = inner {
        o.push_str(&inpad);
        o.push_str(t);
        o.push('\n');
    }
    o.push_str(pad);
    o.push_str("</backingStore>");
    o
}

/// Copy an element re-indented by `from` → `to` (whitespace-only text only).
fn reindented(doc: &str, el: &Elem, from: &str, to: &str) -> String {
    let mut s = String::new();
    super::tree::copy_reindented(&mut s, doc, el, from, to);
    s
}

/// Change a layer's type, source and (when given) format.
pub fn set_layer(
    doc: &str,
    disk_i: usize,
    depth: usize,
    spec: &LayerSpec,
) -> Result<String, XmlError> {
    let kind = check_kind(spec)?;
    edit_disk(doc, disk_i, &mut |doc, dk| {
        set_layer_in(doc, dk, depth, spec, kind)
    })
}

fn set_layer_in(
    doc: &str,
    dk: &Disk<'_>,
    depth: usize,
    spec: &LayerSpec,
    kind: SourceType,
) -> Result<Vec<Edit>, XmlError> {
    let e = dk.layer(depth)?;
    let pad = dk.pad(depth);
    let inpad = format!("{pad}{}", dk.unit);
    let mut edits = Vec::new();
    if e.attr("type") != Some(kind.name()) {
        let attrs: Vec<(String, String)> = e
            .attrs
            .iter()
            .map(|(k, v)| {
                if k == "type" {
                    (k.clone(), kind.name().to_string())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        edits.push((
            e.start.0,
            e.start.1,
            start_tag("backingStore", &attrs, e.empty),
        ));
    }
    let src = e.child("source");
    let text = new_source(doc, src, e.attr("type"), spec, kind, &inpad, &dk.unit);
    match src {
        Some(s) => {
            if doc[s.start.0..s.end.1] != text {
                edits.push((s.start.0, s.end.1, text));
            }
        }
        None => {
            let at = e.child("format").map_or(e.start.1, |f| f.end.1);
            edits.push((at, at, format!("\n{inpad}{text}")));
        }
    }
    if let Some(f) = spec.format.as_deref() {
        match e.child("format").or(e.child("driver")) {
            Some(fe) if fe.attr("type") != Some(f) => {
                let mut attrs = fe.attrs.clone();
                match attrs.iter_mut().find(|(k, _)| k == "type") {
                    Some(a) => a.1 = f.to_string(),
                    None => attrs.insert(0, ("type".into(), f.to_string())),
                }
                edits.push((
                    fe.start.0,
                    fe.start.1,
                    start_tag(&fe.name, &attrs, fe.empty),
                ));
            }
            Some(_) => {}
            None if !f.is_empty() => {
                edits.push((
                    e.start.1,
                    e.start.1,
                    format!("\n{inpad}{}", empty_with("format", "type", f)),
                ));
            }
            None => {}
        }
    }
    if e.empty {
        return Err(err(format!("layer {depth} is an empty element")));
    }
    Ok(edits)
}

/// Insert a new layer at `depth` (1 ..= layers + 1).
pub fn insert_layer(
    doc: &str,
    disk_i: usize,
    depth: usize,
    spec: &LayerSpec,
) -> Result<String, XmlError> {
    let kind = check_kind(spec)?;
    let d = read::document(doc)?;
    let nested = Nested::new(doc, &d)?;
    let largest = nested.largest_index();
    nested.edit(Some(disk_i), &mut |doc, dk| {
        insert_layer_in(doc, dk, depth, spec, kind, largest)
    })
}

fn insert_layer_in(
    doc: &str,
    dk: &Disk<'_>,
    depth: usize,
    spec: &LayerSpec,
    kind: SourceType,
    largest: Option<usize>,
) -> Result<Vec<Edit>, XmlError> {
    let n = dk.layers.len();
    if depth == 0 || depth > n + 1 {
        return Err(err(format!(
            "a layer can be inserted at depth 1 to {} (the disk has {n})",
            n + 1
        )));
    }
    let pad = dk.pad(depth);
    let inpad = format!("{pad}{}", dk.unit);
    // A numbered chain keeps its numbers increasing downwards: a layer
    // added at the end takes the next number of the document (above every
    // other, unique in the VM); one inserted above a numbered layer takes
    // none — libvirt ignores given numbers and numbers every layer again
    // when it starts the VM (`xml::number`), and renumbering the layers
    // below would collide with other disks' numbers.
    let index = if depth > n {
        dk.next_index(largest)
    } else {
        None
    };
    // What moves one level down: the layer at `depth`, else the terminator.
    let below = if depth <= n {
        Some(dk.entries.list[dk.layers[depth - 1]].elem)
    } else {
        dk.terminator.map(|t| dk.entries.list[t].elem)
    };
    let edit = match below {
        Some(b) => {
            let inner = reindented(doc, b, &pad, &inpad);
            let text = new_layer(spec, kind, index, &pad, &dk.unit, Some(&inner));
            (b.start.0, b.end.1, text)
        }
        None => {
            // Open end: after the last child of the deepest layer, or after
            // the disk's <source>.
            let text = new_layer(spec, kind, index, &pad, &dk.unit, None);
            let at = dk.open_end()?;
            (at, at, format!("\n{pad}{text}"))
        }
    };
    Ok(vec![edit])
}

/// Remove the layer at `depth`; the rest of the chain moves up a level.
pub fn remove_layer(doc: &str, disk_i: usize, depth: usize) -> Result<String, XmlError> {
    edit_disk(doc, disk_i, &mut |doc, dk| {
        let e = dk.layer(depth)?;
        let pad = dk.pad(depth);
        let inpad = format!("{pad}{}", dk.unit);
        let child = e.elems().find(|c| c.name == "backingStore");
        Ok(vec![match child {
            Some(c) => (e.start.0, e.end.1, reindented(doc, c, &inpad, &pad)),
            None => (ws_before(dk.owner(depth - 1), e), e.end.1, String::new()),
        }])
    })
}

/// Say (`on`) or stop saying that the chain ends after its last layer.
pub fn set_terminator(doc: &str, disk_i: usize, on: bool) -> Result<String, XmlError> {
    edit_disk(doc, disk_i, &mut |_, dk| {
        let n = dk.layers.len();
        Ok(match (on, dk.terminator) {
            (true, Some(_)) | (false, None) => Vec::new(),
            (false, Some(t)) => {
                let te = dk.entries.list[t].elem;
                vec![(ws_before(dk.owner(n), te), te.end.1, String::new())]
            }
            (true, None) => {
                let at = dk.open_end()?;
                vec![(at, at, format!("\n{}<backingStore/>", dk.pad(n + 1)))]
            }
        })
    })
}

/// The `<source>` at `depth` (0: the disk's own) and its indentation.
fn source_at<'a>(dk: &'a Disk<'a>, depth: usize) -> Result<(&'a Elem, String), XmlError> {
    let (owner, pad) = if depth == 0 {
        (dk.elem, dk.child_indent.clone())
    } else {
        (dk.layer(depth)?, format!("{}{}", dk.pad(depth), dk.unit))
    };
    let s = owner
        .child("source")
        .ok_or_else(|| err(format!("layer {depth} has no <source>")))?;
    Ok((s, pad))
}

/// Set a `<seclabel>` of the source at `depth` (0: the disk's own source).
pub fn set_seclabel(
    doc: &str,
    disk_i: usize,
    depth: usize,
    spec: &SeclabelSpec,
) -> Result<String, XmlError> {
    if spec.model.trim().is_empty() {
        return Err(err("a seclabel needs a model (selinux, dac, apparmor)"));
    }
    for s in std::iter::once(&spec.model).chain(spec.label.as_ref()) {
        if let Some(c) = super::write::unrepresentable(s) {
            return Err(err(format!(
                "{} holds U+{:04X}, which XML cannot hold",
                crate::text::Quoted(s),
                c as u32
            )));
        }
    }
    edit_disk(doc, disk_i, &mut |doc, dk| {
        set_seclabel_in(doc, dk, depth, spec)
    })
}

fn set_seclabel_in(
    doc: &str,
    dk: &Disk<'_>,
    depth: usize,
    spec: &SeclabelSpec,
) -> Result<Vec<Edit>, XmlError> {
    let (src, pad) = source_at(dk, depth)?;
    let inpad = format!("{pad}{}", dk.unit);
    let found = src
        .elems()
        .find(|c| c.name == "seclabel" && c.attr("model") == Some(spec.model.as_str()));
    let mut attrs: Vec<(String, String)> = match found {
        Some(f) => f
            .attrs
            .iter()
            .filter(|(k, _)| k != "relabel")
            .cloned()
            .collect(),
        None => vec![("model".into(), spec.model.clone())],
    };
    if let Some(r) = spec.relabel {
        // relabel goes right after model, where libvirt writes it.
        let at = attrs
            .iter()
            .position(|(k, _)| k == "model")
            .map_or(0, |p| p + 1);
        attrs.insert(at, ("relabel".into(), if r { "yes" } else { "no" }.into()));
    }
    let label = spec
        .label
        .as_ref()
        .map(|l| format!("<label>{}</label>", escape_text(l)));
    let mut kids: Vec<String> = Vec::new();
    let mut placed = false;
    if let Some(f) = found {
        for (i, t) in kept_children(doc, f, |_| false) {
            if matches!(&f.children[i], Node::Elem(c) if c.name == "label") {
                if let (Some(l), false) = (&label, placed) {
                    kids.push(l.clone());
                    placed = true;
                }
            } else {
                kids.push(t);
            }
        }
    }
    if let (Some(l), false) = (&label, placed) {
        kids.insert(0, l.clone());
    }
    let text = rebuild("seclabel", &attrs, &kids, &inpad, &dk.unit);
    let edit = match found {
        Some(f) => (f.start.0, f.end.1, text),
        None if src.empty => {
            let kids = vec![text];
            (
                src.start.0,
                src.end.1,
                rebuild("source", &src.attrs, &kids, &pad, &dk.unit),
            )
        }
        None => {
            let at = src.elems().last().map_or(src.start.1, |c| c.end.1);
            (at, at, format!("\n{inpad}{text}"))
        }
    };
    Ok(vec![edit])
}

/// Remove the `<seclabel model=…>` of the source at `depth`.
pub fn remove_seclabel(
    doc: &str,
    disk_i: usize,
    depth: usize,
    model_name: &str,
) -> Result<String, XmlError> {
    edit_disk(doc, disk_i, &mut |_, dk| {
        let (src, _) = source_at(dk, depth)?;
        let found = src
            .elems()
            .find(|c| c.name == "seclabel" && c.attr("model") == Some(model_name));
        Ok(match found {
            Some(f) => vec![(ws_before(src, f), f.end.1, String::new())],
            None => Vec::new(),
        })
    })
}

/// A `<seclabel>` as written (for an editor to show and prefill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seclabel {
    pub model: Option<String>,
    pub relabel: Option<String>,
    pub label: Option<String>,
    /// Other children (not `<label>`), as written.
    pub others: usize,
}

/// The `<seclabel>`s of every source of every disk: `result[disk][depth]`
/// (depth 0: the disk's own source, then each layer of its chain).
pub fn seclabels(doc: &str) -> Result<Vec<Vec<Vec<Seclabel>>>, XmlError> {
    let d = read::document(doc)?;
    let nested = Nested::new(doc, &d)?;
    let mut all = Vec::with_capacity(nested.len());
    for i in 0..nested.len() {
        nested.with_disk(i, &mut |doc, dk| {
            all.push(disk_seclabels(doc, dk));
            Ok(())
        })?;
    }
    Ok(all)
}

/// The `<seclabel>`s of each source of a disk (depth 0: its own).
fn disk_seclabels(doc: &str, dk: &Disk<'_>) -> Vec<Vec<Seclabel>> {
    let mut out = Vec::with_capacity(dk.layers.len() + 1);
    for depth in 0..=dk.layers.len() {
        let mut list = Vec::new();
        if let Ok((src, _)) = source_at(dk, depth) {
            for c in src.elems().filter(|c| c.name == "seclabel") {
                list.push(Seclabel {
                    model: c.attr("model").map(str::to_string),
                    relabel: c.attr("relabel").map(str::to_string),
                    label: c.child("label").and_then(|l| l.text(doc)),
                    others: c.elems().filter(|x| x.name != "label").count(),
                });
            }
        }
        out.push(list);
    }
    out
}

/// `doc` with disk `disk_i`'s chain taken from `other` (another version of
/// the same document: same disks in the same order), re-indented to `doc`;
/// with it the `index` and `<dataStore>` of `other`'s top `<source>` when
/// `doc`'s has none.
pub fn adopt_chain(doc: &str, other: &str, disk_i: usize) -> Result<String, XmlError> {
    let d = read::document(doc)?;
    let o = read::document(other)?;
    let dk = nth_disk(&d, doc, disk_i)?;
    let ok = nth_disk(&o, other, disk_i)?;
    let Some((os, oe)) = ok.entries.region else {
        return Ok(doc.to_string());
    };
    let mut text = String::new();
    for n in &ok.elem.children {
        if let Node::Elem(c) = n {
            if c.name == "backingStore" && c.start.0 >= os && c.end.1 <= oe {
                if !text.is_empty() {
                    text.push('\n');
                    text.push_str(&dk.child_indent);
                }
                text.push_str(&reindented(other, c, &ok.child_indent, &dk.child_indent));
            }
        }
    }
    let edit = match dk.entries.region {
        Some((s, e)) => (s, e, text),
        None => {
            let at = dk
                .elem
                .child("source")
                .ok_or_else(|| err("the disk has no <source>"))?
                .end
                .1;
            (at, at, format!("\n{}{text}", dk.child_indent))
        }
    };
    let mut edits = vec![edit];
    // The top's number and data file go with the chain (a chain given
    // without the top's <dataStore> stops libvirt from finding it).
    if let (Some(mine), Some(theirs)) = (dk.elem.child("source"), ok.elem.child("source")) {
        let index = theirs.attr("index").and_then(|v| v.parse().ok());
        let ds = theirs.child("dataStore").map(|ds| {
            let from = super::model::child_indents(theirs, other)
                .into_iter()
                .zip(&theirs.children)
                .find_map(|(ind, n)| match n {
                    Node::Elem(c) if c.start == ds.start => ind,
                    _ => None,
                })
                .unwrap_or("")
                .to_string();
            reindented(other, ds, &from, &format!("{}{}", dk.child_indent, dk.unit))
        });
        edits.extend(super::source_edits(
            doc,
            mine,
            index,
            ds,
            &dk.child_indent,
            &dk.unit,
        ));
    }
    Ok(splice(doc, edits, dk.crlf))
}

/// Disk `i` of a read document, or an error naming how many there are.
fn nth_disk<'a>(d: &'a Document, doc: &str, i: usize) -> Result<Disk<'a>, XmlError> {
    let dn = d.disks.get(i).ok_or_else(|| {
        err(format!(
            "there is no disk {i} (the document has {})",
            d.disks.len()
        ))
    })?;
    Ok(Disk::read(dn, doc, i))
}
