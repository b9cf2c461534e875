//! What a `<disk>` says: its type, source, target, and the `<backingStore>`
//! entries it holds, in either layout, as one tree of [`Entry`]s.

use super::XmlError;
use serde::Serialize;

use super::read::DiskNode;
use super::tree::{indent_of, Elem, Node};
use crate::diag::{Code, Diagnostic};
use crate::source::{Host, SourceType, StorageSource};

/// The facts of a `<disk>` the rewriter uses (the element itself stays as
/// written: these are read-only views).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskInfo {
    /// `type`: file, block, dir, network, volume, nvme, vhostuser, vhostvdpa.
    pub disk_type: Option<String>,
    /// `device`: disk, cdrom, floppy, lun.
    pub device: Option<String>,
    /// `<driver type>`: the format of the disk's own source.
    pub driver_type: Option<String>,
    /// The disk's own `<source>` (none for vhostuser / vhostvdpa, whose
    /// source the model has no type for, and for empty cdroms).
    pub source: Option<StorageSource>,
    /// For vhostuser / vhostvdpa: the socket path / device as written.
    pub other_source: Option<String>,
    pub target_dev: Option<String>,
    pub alias: Option<String>,
    pub readonly: bool,
    pub shareable: bool,
}

/// The name of disk `i` (its position among the document's disks) in flat
/// aliases and messages: its `<target dev>`, else its `<alias name>`, else
/// `diskN`.
pub fn disk_name(info: &DiskInfo, i: usize) -> String {
    info.target_dev
        .clone()
        .or_else(|| info.alias.clone())
        .unwrap_or_else(|| format!("disk{i}"))
}

/// One `<disk>` of a document as populate, describe and the editor use it,
/// read once: its facts, its name, its `<backingStore>` entries, its
/// layout (children's indentation and unit, line ends) and the chain
/// libvirt follows.
#[derive(Debug)]
pub struct Disk<'a> {
    pub elem: &'a Elem,
    pub info: DiskInfo,
    /// The name in flat aliases and messages ([`disk_name`]).
    pub name: String,
    /// The entries; their `error` is the caller's to report.
    pub entries: Entries<'a>,
    /// Indentation of the disk's children, and one level
    /// ([`child_indent_and_unit`]).
    pub child_indent: String,
    pub unit: String,
    /// Written with CRLF line ends ([`crlf`]).
    pub crlf: bool,
    /// Entry indices of the layers on the main path ([`main_path`]),
    /// terminator excluded.
    pub layers: Vec<usize>,
    /// Entry index of the terminator ending the main path.
    pub terminator: Option<usize>,
}

impl<'a> Disk<'a> {
    /// Read disk `i` of a document (`node`: its element and indentation).
    pub fn read(node: &'a DiskNode, doc: &str, i: usize) -> Self {
        let elem = &node.elem;
        let info = disk_info(elem, doc);
        let name = disk_name(&info, i);
        let entries = entries(elem, doc, &name);
        let (child_indent, unit) = child_indent_and_unit(elem, doc, &node.indent);
        let mut layers = main_path(&entries);
        let terminator = layers
            .last()
            .copied()
            .filter(|&t| entries.list[t].is_terminator());
        if terminator.is_some() {
            layers.pop();
        }
        Disk {
            elem,
            info,
            name,
            child_indent,
            unit,
            crlf: crlf(elem, doc),
            layers,
            terminator,
            entries,
        }
    }

    /// The next `index` for a new layer, or none when the disk carries no
    /// index (inactive XML): above `largest`, the largest of the whole
    /// document, as the numbers of a running VM are its QEMU node names,
    /// unique in the VM (see [`super::number`]).
    pub fn next_index(&self, largest: Option<usize>) -> Option<usize> {
        largest_index(self.elem, None)?;
        largest.map(|m| m + 1)
    }
}

pub use crate::source::is_pci_address;

/// Is a disk's chain in the flat form (an entry with an `<alias parent>`)?
/// The answer of [`entries`]`(…).flat`, without reading the entries: what
/// the editor asks of every disk before it reads the one it edits.
pub fn is_flat(disk: &Elem) -> bool {
    let mut todo: Vec<&Elem> = disk.elems().filter(|e| e.name == "backingStore").collect();
    while let Some(e) = todo.pop() {
        for c in e.elems() {
            if c.name == "alias" && c.attr("parent").is_some() {
                return true;
            }
            if c.name == "backingStore" {
                todo.push(c);
            }
        }
    }
    false
}

/// The largest `index` on a `<source>` or `<backingStore>` in `el`'s
/// subtree (`el` included), leaving out the elements inside `skip` (a
/// region being replaced).
pub fn largest_index(el: &Elem, skip: Option<(usize, usize)>) -> Option<usize> {
    let mut max = None;
    let mut stack = vec![el];
    while let Some(e) = stack.pop() {
        if skip.is_some_and(|(s, end)| e.start.0 >= s && e.end.1 <= end) {
            continue;
        }
        if e.name == "source" || e.name == "backingStore" {
            if let Some(i) = e.attr("index").and_then(|v| v.parse::<usize>().ok()) {
                max = max.max(Some(i));
            }
        }
        stack.extend(e.elems());
    }
    max
}

/// Is `el` written with CRLF line ends (so what is written into it gets
/// them too)?
pub fn crlf(el: &Elem, doc: &str) -> bool {
    crate::text::contains(&doc[el.start.0..el.end.1], "\r\n")
}

/// Parse the `<source>` element of something of type `kind` into a
/// [`StorageSource`], filling `extras` per the table in [`crate::source`].
pub fn source_of(el: &Elem, kind: SourceType, doc: &str) -> StorageSource {
    let mut s = StorageSource {
        kind,
        ..Default::default()
    };
    let mut push = |k: &str, v: &str| s.extras.push((k.to_string(), v.to_string()));
    match kind {
        SourceType::File => s.path = el.attr("file").map(str::to_string),
        SourceType::Block => s.path = el.attr("dev").map(str::to_string),
        SourceType::Dir => s.path = el.attr("dir").map(str::to_string),
        SourceType::Network => {
            s.protocol = el.attr("protocol").map(str::to_string);
            s.name = el.attr("name").map(str::to_string);
            for k in ["query", "tls"] {
                if let Some(v) = el.attr(k) {
                    push(k, v);
                }
            }
        }
        SourceType::Volume => {
            for k in ["pool", "volume", "mode"] {
                if let Some(v) = el.attr(k) {
                    push(k, v);
                }
            }
        }
        SourceType::Nvme => {
            if let Some(v) = el.attr("managed") {
                push("managed", v);
            }
            if let Some(v) = el.attr("namespace") {
                push("namespace", v);
            }
            if let Some(a) = el.child("address") {
                // `trim_start_matches("0x")` without the two-way searcher
                // a `&str` pattern brings (`crate::text`).
                let num = |k: &str| {
                    let mut v = a.attr(k)?;
                    while let Some(rest) = v.strip_prefix("0x") {
                        v = rest;
                    }
                    u32::from_str_radix(v, 16).ok()
                };
                if let (Some(d), Some(b), Some(sl), Some(f)) =
                    (num("domain"), num("bus"), num("slot"), num("function"))
                {
                    push("pci", &format!("{d:04x}:{b:02x}:{sl:02x}.{f:x}"));
                }
            }
        }
    }
    let mut extras = Vec::new();
    let mut hosts = Vec::new();
    for c in el.elems() {
        let get = |k: &str| c.attr(k).map(str::to_string);
        match c.name.as_str() {
            "host" => hosts.push(Host {
                name: get("name"),
                port: c.attr("port").and_then(|p| p.parse().ok()),
                transport: get("transport"),
                socket: get("socket"),
            }),
            "snapshot" => extras.extend(get("name").map(|v| ("snapshot".to_string(), v))),
            "config" => extras.extend(get("file").map(|v| ("config".to_string(), v))),
            "identity" => {
                extras.extend(get("user").map(|v| ("user".to_string(), v)));
                extras.extend(get("group").map(|v| ("group".to_string(), v)));
            }
            "slices" => {
                if let Some(sl) = c.elems().find(|x| x.attr("type") == Some("storage")) {
                    extras.extend(sl.attr("offset").map(|v| ("offset".into(), v.into())));
                    extras.extend(sl.attr("size").map(|v| ("size".into(), v.into())));
                }
            }
            "readahead" => extras.extend(get("size").map(|v| ("readahead".to_string(), v))),
            "timeout" => extras.extend(get("seconds").map(|v| ("timeout".to_string(), v))),
            "ssl" => extras.extend(get("verify").map(|v| ("sslverify".to_string(), v))),
            "knownHosts" => extras.extend(get("path").map(|v| ("knownhosts".to_string(), v))),
            "cookies" => {
                for ck in c.elems().filter(|x| x.name == "cookie") {
                    if let Some(n) = ck.attr("name") {
                        extras.push((format!("cookie:{n}"), ck.text(doc).unwrap_or_default()));
                    }
                }
            }
            _ => {}
        }
    }
    s.hosts = hosts;
    s.extras.extend(extras);
    s
}

/// Read the facts of a disk.
pub fn disk_info(disk: &Elem, doc: &str) -> DiskInfo {
    let disk_type = disk.attr("type").map(str::to_string);
    let src_el = disk.child("source");
    let kind = disk_type.as_deref().and_then(SourceType::from_name);
    let (source, other_source) = match (src_el, kind) {
        (Some(el), Some(k)) => (Some(source_of(el, k, doc)), None),
        (Some(el), None) => (None, el.attr("path").or(el.attr("dev")).map(str::to_string)),
        (None, _) => (None, None),
    };
    DiskInfo {
        disk_type,
        device: disk.attr("device").map(str::to_string),
        driver_type: disk
            .child("driver")
            .and_then(|d| d.attr("type"))
            .map(str::to_string),
        source,
        other_source,
        target_dev: disk
            .child("target")
            .and_then(|t| t.attr("dev"))
            .map(str::to_string),
        alias: disk
            .child("alias")
            .and_then(|t| t.attr("name"))
            .map(str::to_string),
        readonly: disk.child("readonly").is_some(),
        shareable: disk.child("shareable").is_some(),
    }
}

/// One `<backingStore>` element of a disk, wherever it sits.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub elem: &'a Elem,
    /// Parent entry (`None`: the disk itself).
    pub parent: Option<usize>,
    /// Index of the `<alias parent>` child that gives the flat nesting.
    pub flat_alias: Option<usize>,
    /// Name from the flat alias (`vda[1]`), when given.
    pub name: Option<String>,
    /// The flat alias's `at`: where the entry goes among its parent's
    /// children when nested (see the flat grammar).
    pub at: Option<usize>,
    /// Indentation the element was written at.
    pub indent: String,
    /// Does the element start a line (then `indent` is its indentation,
    /// maybe empty)?
    pub line_start: bool,
    /// The whitespace just before the element in its parent, if any.
    pub lead: Option<(usize, usize)>,
}

impl Entry<'_> {
    /// libvirt: a `<backingStore>` without `type` ends the chain.
    pub fn is_terminator(&self) -> bool {
        self.elem.attr("type").is_none()
    }
}

/// All `<backingStore>` entries of a disk, depth-first in document order,
/// with their parents resolved from nesting and from flat aliases.
#[derive(Debug, Clone, Default)]
pub struct Entries<'a> {
    pub list: Vec<Entry<'a>>,
    /// The chain cannot be read (e.g. two flat aliases on one entry).
    pub error: Option<XmlError>,
    /// Is any entry in the flat form (has an `<alias parent>`)?
    pub flat: bool,
    /// Span covering the disk-level `<backingStore>` elements.
    pub region: Option<(usize, usize)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The indentation of `el`'s element children (the first one whose line
/// starts with only blanks before it) and the unit of one level (that minus
/// `own`, the element's own indentation; two spaces when that says nothing).
/// A child other than `<backingStore>` gives it when there is one, else the
/// first `<backingStore>`.
/// With no such child, one unit more than `own`: a value that what we write
/// into the element does not change, so conversions are stable.
pub fn child_indent_and_unit(el: &Elem, doc: &str, own: &str) -> (String, String) {
    // Children other than <backingStore> first: the chain is what gets
    // rewritten, so an indentation taken from it could differ between the
    // layouts (a flat entry starting a line that nesting folds into one
    // written after text) and move at every conversion. Failing those, the
    // first entry's, which a rewrite keeps (the text before it stays), or
    // none when it does not start a line.
    let ind = child_indents(el, doc);
    let is_chain = |n: &Node| matches!(n, Node::Elem(e) if e.name == "backingStore");
    let others = el.children.iter().zip(&ind).find_map(|(n, i)| match n {
        Node::Elem(_) if !is_chain(n) => *i,
        _ => None,
    });
    let found = others.or_else(|| {
        let first = el.children.iter().position(is_chain)?;
        ind[first]
    });
    let Some(child) = found else {
        return (format!("{own}  "), "  ".to_string());
    };
    let unit = match child.strip_prefix(own) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => "  ".to_string(),
    };
    (child.to_string(), unit)
}

/// Indentation of each child: the whitespace text just before it.
pub fn child_indents<'a>(el: &Elem, doc: &'a str) -> Vec<Option<&'a str>> {
    let mut out = Vec::with_capacity(el.children.len());
    let mut prev: Option<&str> = None;
    for n in &el.children {
        match n {
            // Whitespace, or text with other characters that ends in a line
            // break and indentation: either indents the next element (else
            // the indentation found would change with what a conversion
            // moves around it).
            Node::Other { span, .. } => {
                prev = indent_of(&doc[span.0..span.1]);
                out.push(None);
            }
            _ => {
                out.push(prev.take());
            }
        }
    }
    out
}

/// An entry to read: the element, its parent entry, its indentation and
/// the whitespace before it.
type Todo<'a> = (
    &'a Elem,
    Option<usize>,
    Option<String>,
    Option<(usize, usize)>,
);

/// The span of the whitespace child just before child `i` of `el`.
fn ws_before(el: &Elem, i: usize) -> Option<(usize, usize)> {
    match i.checked_sub(1).and_then(|j| el.children.get(j)) {
        Some(Node::Other { span, ws: true }) => Some(*span),
        _ => None,
    }
}

/// Collect the entries of a disk. `root` names the disk in flat aliases.
pub fn entries<'a>(disk: &'a Elem, doc: &str, root: &str) -> Entries<'a> {
    let mut out = Entries::default();
    // (element, parent entry, indent) to visit, in document order.
    let mut todo: Vec<Todo<'a>> = Vec::new();
    let ind = child_indents(disk, doc);
    let mut region: Option<(usize, usize)> = None;
    for (i, n) in disk.children.iter().enumerate() {
        if let Node::Elem(e) = n {
            if e.name == "backingStore" {
                let sp = e.span();
                region = Some(match region {
                    None => sp,
                    Some((a, _)) => (a, sp.1),
                });
                todo.push((e, None, ind[i].map(str::to_string), ws_before(disk, i)));
            }
        }
    }
    out.region = region;
    todo.reverse();
    while let Some((e, parent, indent, lead)) = todo.pop() {
        let me = out.list.len();
        let mut flat_alias = None;
        let mut name = None;
        let mut at = None;
        let mut kids = Vec::new();
        let ind = child_indents(e, doc);
        for (i, n) in e.children.iter().enumerate() {
            if let Node::Elem(c) = n {
                if c.name == "alias" && c.attr("parent").is_some() && flat_alias.is_some() {
                    // Which one gives the nesting? Guessing would move or
                    // lose an element on the next conversion.
                    out.error.get_or_insert_with(|| {
                        XmlError::at(
                            c.start.0,
                            "a <backingStore> has two <alias parent=…> children; the flat form allows one",
                        )
                    });
                } else if c.name == "alias" && c.attr("parent").is_some() {
                    flat_alias = Some(i);
                    name = c.attr("name").map(str::to_string);
                    at = c.attr("at").and_then(|v| v.parse::<usize>().ok());
                } else if c.name == "backingStore" {
                    kids.push((c, Some(me), ind[i].map(str::to_string), ws_before(e, i)));
                }
            }
        }
        out.flat |= flat_alias.is_some();
        out.list.push(Entry {
            elem: e,
            parent,
            flat_alias,
            name,
            at,
            line_start: indent.is_some(),
            indent: indent.unwrap_or_default(),
            lead,
        });
        for k in kids.into_iter().rev() {
            todo.push(k);
        }
    }
    // Resolve flat parents by name.
    let names: std::collections::HashMap<String, usize> = out
        .list
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.name.clone().map(|n| (n, i)))
        .collect();
    for i in 0..out.list.len() {
        let Some(ai) = out.list[i].flat_alias else {
            continue;
        };
        let Node::Elem(alias) = &out.list[i].elem.children[ai] else {
            continue;
        };
        let p = alias.attr("parent").unwrap_or("");
        if out.list[i].parent.is_some() {
            continue; // nested inside another entry: nesting wins
        }
        if p == root {
            continue;
        }
        match names.get(p) {
            Some(&j) if j < i => out.list[i].parent = Some(j),
            Some(_) => out.diagnostics.push(Diagnostic::warning(
                Code::FlatOrder,
                format!("the flat <backingStore> of parent '{p}' comes before its parent: kept under the disk"),
            )),
            None => out.diagnostics.push(Diagnostic::warning(
                Code::FlatOrphan,
                format!("no <backingStore> is named '{p}' (the parent of a flat entry under '{root}'): kept under the disk"),
            )),
        }
    }
    let mut nkids = vec![0usize; out.list.len()];
    let mut roots = 0;
    for e in &out.list {
        match e.parent {
            Some(p) => nkids[p] += 1,
            None => roots += 1,
        }
    }
    if roots > 1 || nkids.iter().any(|&k| k > 1) {
        out.diagnostics.push(Diagnostic::warning(
            Code::QuorumSiblings,
            format!("'{root}' has sibling <backingStore> elements (the RFC's quorum idea): kept, but libvirt's schema accepts only one per level"),
        ));
    }
    out
}

impl Entries<'_> {
    /// Deepest nesting of the entries (1 for a single layer).
    pub fn depth(&self) -> usize {
        // Parents come before their children in `list`.
        let mut d = vec![0usize; self.list.len()];
        for (i, e) in self.list.iter().enumerate() {
            d[i] = e.parent.filter(|&p| p < i).map_or(1, |p| d[p] + 1);
        }
        d.into_iter().max().unwrap_or(0)
    }
}

/// The first-child path through the entries: the chain libvirt would use.
/// Returns the entry indices, terminator included when present.
pub fn main_path(e: &Entries) -> Vec<usize> {
    // First child of each entry (and of the disk), in one pass: linear.
    let mut first_root = None;
    let mut first_kid: Vec<Option<usize>> = vec![None; e.list.len()];
    for (i, x) in e.list.iter().enumerate() {
        let slot = match x.parent {
            Some(p) if p < first_kid.len() => &mut first_kid[p],
            Some(_) => continue,
            None => &mut first_root,
        };
        slot.get_or_insert(i);
    }
    let mut seen = vec![false; e.list.len()];
    let mut path = Vec::new();
    let mut next = first_root;
    while let Some(n) = next {
        if seen[n] {
            break;
        }
        seen[n] = true;
        path.push(n);
        if e.list[n].is_terminator() {
            break;
        }
        next = first_kid[n];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::is_pci_address;

    // libvirt's virPCIDeviceAddressIsValid: bus <= 0xFF, slot <= 0x1F,
    // function <= 7; the string form is DDDD:BB:SS.F.
    #[test]
    fn pci_address_rule_is_libvirts() {
        for ok in [
            "0000:01:00.0",
            "ffff:ff:1f.7",
            "0000:00:00.0",
            "00aB:0c:1F.3",
        ] {
            assert!(is_pci_address(ok), "{ok}");
        }
        for bad in [
            "0000:00:20.0", // slot > 0x1f
            "0000:01:00.8", // function > 7
            "0000:01:00.f",
            "01:00.0", // no domain
            "00000:01:00.0",
            "0000:1:00.0",
            "0000:01:00",
            "0000:01:00.00",
            "0000:01:00:00.0",
            "0000:0g:00.0",
            "",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
    }

    // is_flat answers what entries() finds, for every shape of chain.
    #[test]
    fn is_flat_agrees_with_the_entries() {
        let bs = |inner: &str| {
            format!("<backingStore type='file'><source file='/b'/>{inner}</backingStore>")
        };
        let shapes = [
            (String::new(), false),
            (bs(""), false),
            (bs(&bs("<backingStore/>")), false),
            (bs("<alias name='x'/>"), false),
            (bs("<alias name='vda[1]' parent='vda'/>"), true),
            (bs(&bs("<alias name='vda[2]' parent='vda[1]'/>")), true),
            (format!("{}{}", bs(""), bs("<alias parent='vda'/>")), true),
            ("<source><alias parent='vda'/></source>".to_string(), false),
        ];
        for (chain, flat) in shapes {
            let doc =
                format!("<disk type='file'><source file='/t'/>{chain}<target dev='vda'/></disk>");
            let d = super::super::read::document(&doc).unwrap();
            let el = &d.disks[0].elem;
            assert_eq!(super::entries(el, &doc, "vda").flat, flat, "{doc}");
            assert_eq!(super::is_flat(el), flat, "{doc}");
        }
    }

    // The editor and qemu's json: nvme names use the same rule.
    #[test]
    fn json_nvme_names_follow_the_same_rule() {
        let name = |dev: &str| {
            format!(
                "json:{{\"file\":{{\"driver\":\"nvme\",\"device\":\"{dev}\",\"namespace\":1}}}}"
            )
        };
        assert!(crate::source::parse_backing_name(&name("0000:01:1f.7")).is_ok());
        assert!(crate::source::parse_backing_name(&name("0000:01:20.0")).is_err());
        assert!(crate::source::parse_backing_name(&name("0000:01:00.8")).is_err());
    }
}
