//! Writing `<backingStore>` chains, nested as libvirt formats them or flat,
//! from the images ([`chain`]) or from the entries already in a document
//! ([`entries`], the layout conversion).

use std::collections::HashMap;

use super::model::Entries;
use super::tree::{copy_reindented, indent_of, push_reindented_ws, Elem, Node};
use super::{BackingChain, Layer, Layout, Options};
use crate::source::{SourceType, StorageSource};

/// Can `s` be written in XML 1.0 at all? NUL and the other C0 controls
/// (except tab, LF, CR) and U+FFFE/U+FFFF cannot, not even as references.
pub fn unrepresentable(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    })
}

/// Escape for a single-quoted attribute value (libvirt escapes the same
/// five characters; tab, LF and CR become references so they survive
/// attribute-value normalisation).
pub fn escape_attr(s: &str) -> String {
    escape(s, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'\'' => Some("&apos;"),
        b'"' => Some("&quot;"),
        b'\t' => Some("&#9;"),
        b'\n' => Some("&#10;"),
        b'\r' => Some("&#13;"),
        _ => None,
    })
}

/// `s` with each byte that `by` has a replacement for replaced; the rest is
/// copied in runs. Only ASCII bytes are replaced, so runs end on character
/// boundaries.
fn escape(s: &str, by: impl Fn(u8) -> Option<&'static str>) -> String {
    let mut o = String::with_capacity(s.len());
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        if let Some(r) = by(b) {
            o.push_str(&s[from..i]);
            o.push_str(r);
            from = i + 1;
        }
    }
    o.push_str(&s[from..]);
    o
}

/// `<tag name='value'/>`, the value escaped.
pub(crate) fn empty_with(tag: &str, name: &str, value: &str) -> String {
    let mut e = format!("<{tag}");
    attr(&mut e, name, value);
    e + "/>"
}

/// Escape text content.
pub fn escape_text(s: &str) -> String {
    escape(s, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'\r' => Some("&#13;"),
        _ => None,
    })
}

pub(crate) fn attr(o: &mut String, k: &str, v: &str) {
    o.push(' ');
    o.push_str(k);
    o.push_str("='");
    o.push_str(&escape_attr(v));
    o.push('\'');
}

/// The `<source>` element of a layer, one line per element as libvirt
/// writes it; `pad` is the indentation of the `<source>` line itself and
/// `unit` one level.
/// An nvme source's `<address domain bus slot function/>` from its `pci`
/// extra (`DDDD:BB:SS.F`).
pub fn nvme_address(s: &StorageSource) -> Option<String> {
    let pci = s.extra("pci")?;
    let parts: Vec<&str> = pci.split([':', '.']).collect();
    if parts.len() != 4 {
        return None;
    }
    let mut e = String::from("<address");
    for (k, v) in ["domain", "bus", "slot", "function"].iter().zip(&parts) {
        attr(&mut e, k, &format!("0x{v}"));
    }
    Some(e + "/>")
}

pub fn source_element(s: &StorageSource, pad: &str, unit: &str) -> String {
    source_element_full(s, None, None, pad, unit)
}

/// `<dataStore type='…'>` with `<format type='raw'/>` (libvirt writes no
/// other) and the data file's `<source>` (its number on it), as libvirt
/// writes it inside the owner's `<source>`; `pad` is the `<dataStore>`
/// line's indentation.
pub fn data_store_element(
    ds: &StorageSource,
    index: Option<usize>,
    pad: &str,
    unit: &str,
) -> String {
    let inner = format!("{pad}{unit}");
    let mut o = String::from("<dataStore");
    attr(&mut o, "type", ds.kind.name());
    o.push_str(&format!(
        ">\n{inner}<format type='raw'/>\n{inner}{}\n{pad}</dataStore>",
        source_element_full(ds, index, None, &inner, unit)
    ));
    o
}

/// What says where a `<source>` is: its location attributes (`file`,
/// `dev`, `dir`; `protocol`, `name`, `query`, `tls`; `pool`, `volume`,
/// `mode`; nvme's `type`, `managed`, `namespace`), given to `at` in
/// libvirt's order, and its location children (`<host>`s, `<snapshot>`,
/// `<config>`, nvme's `<address>`) pushed on `kids`. The one writer of
/// these, for [`source_element_full`] and the editor's `<source>`.
pub(crate) fn source_location(
    s: &StorageSource,
    at: &mut dyn FnMut(&str, &str),
    kids: &mut Vec<String>,
) {
    let ex = |k: &str| s.extra(k);
    match s.kind {
        SourceType::File => at("file", s.path.as_deref().unwrap_or("")),
        SourceType::Block => at("dev", s.path.as_deref().unwrap_or("")),
        SourceType::Dir => at("dir", s.path.as_deref().unwrap_or("")),
        SourceType::Network => {
            if let Some(p) = &s.protocol {
                at("protocol", p);
            }
            if let Some(n) = &s.name {
                at("name", n);
            }
            if let Some(q) = ex("query") {
                at("query", q);
            }
            if let Some(t) = ex("tls") {
                at("tls", t);
            }
            for h in &s.hosts {
                let mut e = String::from("<host");
                if let Some(t) = &h.transport {
                    attr(&mut e, "transport", t);
                }
                if let Some(n) = &h.name {
                    attr(&mut e, "name", n);
                }
                if let Some(p) = h.port {
                    attr(&mut e, "port", &p.to_string());
                }
                if let Some(sk) = &h.socket {
                    attr(&mut e, "socket", sk);
                }
                e.push_str("/>");
                kids.push(e);
            }
            if let Some(v) = ex("snapshot") {
                kids.push(empty_with("snapshot", "name", v));
            }
            if let Some(v) = ex("config") {
                kids.push(empty_with("config", "file", v));
            }
        }
        SourceType::Volume => {
            for k in ["pool", "volume", "mode"] {
                if let Some(v) = ex(k) {
                    at(k, v);
                }
            }
        }
        SourceType::Nvme => {
            at("type", "pci");
            for k in ["managed", "namespace"] {
                if let Some(v) = ex(k) {
                    at(k, v);
                }
            }
            kids.extend(nvme_address(s));
        }
    }
}

/// [`source_element`] with an `index` attribute (the last, as libvirt
/// writes it) and a `<dataStore>` (the last child) when given.
pub fn source_element_full(
    s: &StorageSource,
    index: Option<usize>,
    data: Option<(&StorageSource, Option<usize>)>,
    pad: &str,
    unit: &str,
) -> String {
    let mut o = String::from("<source");
    let ex = |k: &str| s.extra(k);
    let mut kids: Vec<String> = Vec::new();
    source_location(s, &mut |k, v| attr(&mut o, k, v), &mut kids);
    if let (Some(off), Some(size)) = (ex("offset"), ex("size")) {
        let mut e = String::from("<slice type='storage'");
        attr(&mut e, "offset", off);
        attr(&mut e, "size", size);
        kids.push(format!(
            "<slices>\n{pad}{unit}{unit}{e}/>\n{pad}{unit}</slices>"
        ));
    }
    if let (Some(u), g) = (ex("user"), ex("group")) {
        let mut e = String::from("<identity");
        attr(&mut e, "user", u);
        if let Some(g) = g {
            attr(&mut e, "group", g);
        }
        kids.push(e + "/>");
    }
    if let Some(v) = ex("sslverify") {
        kids.push(empty_with("ssl", "verify", v));
    }
    let cookies: Vec<_> = s
        .extras
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("cookie:").map(|n| (n, v)))
        .collect();
    if !cookies.is_empty() {
        let mut e = String::from("<cookies>\n");
        for (n, v) in cookies {
            e.push_str(&format!("{pad}{unit}{unit}<cookie"));
            attr(&mut e, "name", n);
            e.push_str(&format!(">{}</cookie>\n", escape_text(v)));
        }
        e.push_str(&format!("{pad}{unit}</cookies>"));
        kids.push(e);
    }
    if let Some(v) = ex("readahead") {
        kids.push(empty_with("readahead", "size", v));
    }
    if let Some(v) = ex("timeout") {
        kids.push(empty_with("timeout", "seconds", v));
    }
    if let Some(v) = ex("knownhosts") {
        kids.push(empty_with("knownHosts", "path", v));
    }
    if let Some(i) = index {
        attr(&mut o, "index", &i.to_string());
    }
    if let Some((ds, di)) = data {
        kids.push(data_store_element(ds, di, &format!("{pad}{unit}"), unit));
    }
    if kids.is_empty() {
        o.push_str("/>");
    } else {
        o.push_str(">\n");
        for k in kids {
            o.push_str(&format!("{pad}{unit}{k}\n"));
        }
        o.push_str(&format!("{pad}</source>"));
    }
    o
}

/// Every string a layer would write, for the representability check.
pub fn layer_strings(l: &Layer) -> Vec<&str> {
    let s = &l.source;
    let mut v: Vec<&str> = Vec::new();
    v.extend(s.path.as_deref());
    v.extend(s.protocol.as_deref());
    v.extend(s.name.as_deref());
    for h in &s.hosts {
        v.extend(h.name.as_deref());
        v.extend(h.socket.as_deref());
        v.extend(h.transport.as_deref());
    }
    for (k, x) in &s.extras {
        v.push(k);
        v.push(x);
    }
    v.extend(l.format.as_deref());
    if let Some(ds) = &l.data_store {
        v.extend(ds.path.as_deref());
        v.extend(ds.protocol.as_deref());
        v.extend(ds.name.as_deref());
        for h in &ds.hosts {
            v.extend(h.name.as_deref());
            v.extend(h.socket.as_deref());
            v.extend(h.transport.as_deref());
        }
        for (k, x) in &ds.extras {
            v.push(k);
            v.push(x);
        }
    }
    v
}

/// Append the chain below a disk, each line starting with `indent` (the
/// indentation of the disk's children), one `unit` more per nesting level.
/// `numbers[i]` is the index of layer `i` and of its data store; a layer
/// without one is written without `index` (as is every layer with
/// `opts.no_index`). Ends without a newline.
pub fn chain(
    out: &mut String,
    bc: &BackingChain,
    indent: &str,
    unit: &str,
    dev: &str,
    numbers: &[(usize, Option<usize>)],
    opts: &Options,
) {
    let no = (0, None);
    let num = |i: usize| -> (Option<usize>, Option<usize>) {
        let (l, d) = numbers.get(i).copied().unwrap_or(no);
        if opts.no_index {
            (None, None)
        } else {
            ((l > 0).then_some(l), d)
        }
    };
    let mut lines = String::new();
    match opts.layout {
        Layout::Nested => nested(&mut lines, bc, indent, unit, &num),
        Layout::Flat => flat(&mut lines, bc, indent, unit, dev, &num),
    }
    out.push_str(lines.trim_end_matches('\n'));
}

type Num<'a> = &'a dyn Fn(usize) -> (Option<usize>, Option<usize>);

fn open_tag(out: &mut String, l: &Layer, index: Option<usize>) {
    out.push_str("<backingStore");
    attr(out, "type", l.source.kind.name());
    if let Some(i) = index {
        attr(out, "index", &i.to_string());
    }
    out.push_str(">\n");
}

fn body(out: &mut String, l: &Layer, data_index: Option<usize>, pad: &str, unit: &str) {
    // libvirt always writes <format>; a layer whose format nobody knows is
    // written as raw, which is what libvirt would assume.
    let f = l.format.as_deref().unwrap_or("raw");
    out.push_str(&format!("{pad}{}\n", empty_with("format", "type", f)));
    let data = l.data_store.as_ref().map(|d| (d, data_index));
    out.push_str(&format!(
        "{pad}{}\n",
        source_element_full(&l.source, None, data, pad, unit)
    ));
}

fn nested(out: &mut String, bc: &BackingChain, indent: &str, unit: &str, num: Num) {
    let mut pad = indent.to_string();
    for (i, l) in bc.layers.iter().enumerate() {
        let (li, di) = num(i);
        out.push_str(&pad);
        open_tag(out, l, li);
        pad.push_str(unit);
        body(out, l, di, &pad, unit);
    }
    if bc.terminated {
        out.push_str(&format!("{pad}<backingStore/>\n"));
    }
    for _ in &bc.layers {
        pad.truncate(pad.len() - unit.len());
        out.push_str(&format!("{pad}</backingStore>\n"));
    }
}

fn flat(out: &mut String, bc: &BackingChain, indent: &str, unit: &str, dev: &str, num: Num) {
    let inner = format!("{indent}{unit}");
    let mut parent = dev.to_string();
    for (i, l) in bc.layers.iter().enumerate() {
        let (li, di) = num(i);
        // Named after the index, else the depth (the flat grammar's names).
        let name = format!("{dev}[{}]", li.unwrap_or(i + 1));
        out.push_str(indent);
        open_tag(out, l, li);
        out.push_str(&format!(
            "{inner}<alias name='{}' parent='{}'/>\n",
            escape_attr(&name),
            escape_attr(&parent)
        ));
        body(out, l, di, &inner, unit);
        out.push_str(&format!("{indent}</backingStore>\n"));
        parent = name;
    }
    if bc.terminated {
        out.push_str(&format!(
            "{indent}<backingStore>\n{inner}<alias parent='{}'/>\n{indent}</backingStore>\n",
            escape_attr(&parent)
        ));
    }
}

/// Start tag of `el` as a non-empty element (`<x a='1'/>` → `<x a='1'>`).
fn open_form(doc: &str, el: &Elem) -> String {
    format!("{}>", tag_inner(doc, el))
}

/// Start tag of `el` as an empty element (`<x a='1'>` → `<x a='1'/>`).
fn empty_form(doc: &str, el: &Elem) -> String {
    format!("{}/>", tag_inner(doc, el))
}

/// A start tag without its `>` or `/>` and the whitespace before it: both
/// forms are written from it, so converting back and forth is stable.
fn tag_inner<'a>(doc: &'a str, el: &Elem) -> &'a str {
    let raw = &doc[el.start.0..el.start.1];
    let cut = if el.empty { 2 } else { 1 };
    raw[..raw.len().saturating_sub(cut)].trim_end()
}

fn end_tag(doc: &str, el: &Elem) -> String {
    if el.empty {
        format!("</{}>", el.name)
    } else {
        doc[el.end.0..el.end.1].to_string()
    }
}

/// Text without the blanks and line ends around it: those are layout where
/// text is written on a line of its own.
pub fn trim_layout(text: &str) -> &str {
    text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Names of the entries in the flat form: the name a flat alias gave, else
/// `dev[index]`, else `dev[k]` with the lowest free `k`.
pub fn flat_names(en: &Entries, dev: &str) -> Vec<Option<String>> {
    // Name → the entry that has it. (A map of the kind the flat reader
    // uses, not a set: each kind of hash table is ~1.3 KB of wasm.)
    let mut used: HashMap<String, usize> = en
        .list
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.name.clone().map(|n| (n, i)))
        .collect();
    let mut names = Vec::with_capacity(en.list.len());
    let mut k = 1usize;
    let mut has_kids = vec![false; en.list.len()];
    for e in &en.list {
        if let Some(p) = e.parent {
            has_kids[p] = true;
        }
    }
    for (i, e) in en.list.iter().enumerate() {
        // A bare terminator needs no name; one with content or entries
        // below it (not libvirt's form, but kept) needs one to be a parent.
        if e.is_terminator()
            && e.name.is_none()
            && !has_kids[i]
            && !e
                .elem
                .children
                .iter()
                .enumerate()
                .any(|(k, n)| is_payload(n, k, e.flat_alias))
        {
            names.push(None);
            continue;
        }
        if let Some(n) = &e.name {
            names.push(Some(n.clone()));
            continue;
        }
        let by_index = e
            .elem
            .attr("index")
            .map(|i| format!("{dev}[{i}]"))
            .filter(|n| !used.contains_key(n));
        let n = match by_index {
            Some(n) => n,
            None => loop {
                let n = format!("{dev}[{k}]");
                k += 1;
                if !used.contains_key(&n) {
                    break n;
                }
            },
        };
        used.insert(n.clone(), i);
        names.push(Some(n));
    }
    names
}

/// Is `n` one of an entry's own children that the layouts carry as they
/// are (not whitespace, not a `<backingStore>`, not the flat alias)?
fn is_payload(n: &Node, i: usize, flat_alias: Option<usize>) -> bool {
    match n {
        Node::Other { ws, .. } => !ws,
        Node::Elem(e) => e.name != "backingStore" && Some(i) != flat_alias,
    }
}

/// Where entry `i` sits among its parent's payload children (see
/// [`is_payload`]): the flat alias's `at`, else its place when it is
/// nested in its parent; `None` when last (libvirt's place, the default).
fn position(doc: &str, en: &Entries, i: usize) -> Option<usize> {
    let e = &en.list[i];
    let p = &en.list[e.parent?];
    let kids = &p.elem.children;
    // Under a parent with text (regenerated layout), texts do not count:
    // texts that come together merge.
    let texts = has_text(doc, p.elem);
    let count = |upto: usize| {
        kids[..upto]
            .iter()
            .enumerate()
            .filter(|&(k, n)| is_payload(n, k, p.flat_alias) && !(texts && is_text(doc, n)))
            .count()
    };
    let total = count(kids.len());
    let at = match e.at {
        Some(at) => at,
        None => {
            let j = kids
                .iter()
                .position(|n| matches!(n, Node::Elem(c) if c.start == e.elem.start))?;
            count(j)
        }
    };
    (at < total).then_some(at)
}

/// A byte span of the document.
type Span = (usize, usize);

/// The span of a whitespace node, if `n` is one.
fn ws_span(n: Option<&Node>) -> Option<(usize, usize)> {
    match n {
        Some(Node::Other { span, ws: true }) => Some(*span),
        _ => None,
    }
}

/// An entry's children without its `<backingStore>` children and flat
/// alias, each taken out with the whitespace just before it: what both
/// layouts write as it is (re-indented). Also the whitespace that was
/// before the flat alias.
fn remaining(el: &Elem, flat_alias: Option<usize>) -> (Vec<&Node>, Option<Span>) {
    let kids = &el.children;
    let mut cut = vec![false; kids.len()];
    let mut alias_lead = None;
    for (i, n) in kids.iter().enumerate() {
        let structural = match n {
            Node::Elem(e) => e.name == "backingStore" || Some(i) == flat_alias,
            Node::Other { .. } => false,
        };
        if structural {
            cut[i] = true;
            if i > 0 && ws_span(kids.get(i - 1)).is_some() && !cut[i - 1] {
                cut[i - 1] = true;
                if Some(i) == flat_alias {
                    alias_lead = ws_span(kids.get(i - 1));
                }
            }
        }
    }
    let rest = kids
        .iter()
        .zip(&cut)
        .filter(|(_, &c)| !c)
        .map(|(n, _)| n)
        .collect();
    (rest, alias_lead)
}

/// Where a child entry at payload position `p` (`None`: last) goes among
/// its parent's kept children `rest` (see [`remaining`]), and the
/// whitespace copied before it: before the `p`-th payload child, after the
/// whitespace that precedes it; last, after the last payload child, with a
/// copy of the whitespace before that one; with no payload, before the
/// closing whitespace, with the whitespace that was before the flat alias.
fn slot(
    rest: &[&Node],
    alias_lead: Option<(usize, usize)>,
    p: Option<usize>,
) -> (usize, Option<(usize, usize)>) {
    let payload: Vec<usize> = rest
        .iter()
        .enumerate()
        .filter(|(_, n)| !matches!(n, Node::Other { ws: true, .. }))
        .map(|(k, _)| k)
        .collect();
    let ws_before = |k: usize| k.checked_sub(1).and_then(|j| ws_span(rest.get(j).copied()));
    match (p, payload.last()) {
        (Some(p), _) if p < payload.len() => {
            let k = payload[p];
            match ws_before(k) {
                Some(w) => (k - 1, Some(w)),
                None => (k, None),
            }
        }
        (_, Some(&last)) => (last + 1, ws_before(last)),
        (_, None) => {
            let at = match rest.last() {
                Some(Node::Other { ws: true, .. }) => rest.len() - 1,
                _ => rest.len(),
            };
            (at, alias_lead)
        }
    }
}

/// Does the element hold character data (text that is not whitespace)?
/// Such an entry's layout is regenerated (one child a line, the blanks
/// around the text dropped): taking a `<backingStore>` out from between two
/// texts would merge them, and the layout could not come back. libvirt's
/// schema has no text in a `<backingStore>`.
fn has_text(doc: &str, el: &Elem) -> bool {
    el.children.iter().any(|n| is_text(doc, n))
}

/// Is `n` character data other than whitespace (not a comment, PI, CDATA)?
fn is_text(doc: &str, n: &Node) -> bool {
    match n {
        Node::Other { span, ws: false } => {
            let raw = &doc[span.0..span.1];
            !(raw.starts_with("<!--") || raw.starts_with("<?") || raw.starts_with("<![CDATA["))
        }
        _ => false,
    }
}

/// The kept children of an entry written one a line at `pad` (regenerated
/// layout, see [`has_text`]), each element re-indented from the
/// indentation it had (else `guess`).
fn canonical_kept<'a>(
    doc: &str,
    el: &'a Elem,
    flat_alias: Option<usize>,
) -> Vec<(&'a Node, Option<String>)> {
    let ind = super::model::child_indents(el, doc);
    el.children
        .iter()
        .enumerate()
        .filter(|&(i, n)| is_payload(n, i, flat_alias))
        .map(|(i, n)| (n, ind[i].map(str::to_string)))
        .collect()
}

fn push_canonical(
    out: &mut String,
    doc: &str,
    n: &Node,
    own: Option<&str>,
    guess: &str,
    pad: &str,
) {
    out.push('\n');
    out.push_str(pad);
    match n {
        Node::Elem(e) => copy_reindented(out, doc, e, own.unwrap_or(guess), pad),
        Node::Other { span, .. } => out.push_str(trim_layout(&doc[span.0..span.1])),
    }
}

/// Copy one kept child, its whitespace re-indented from `from` to `to`.
fn push_kept(out: &mut String, doc: &str, n: &Node, from: &str, to: &str) {
    match n {
        Node::Elem(e) => copy_reindented(out, doc, e, from, to),
        Node::Other { span, ws: true } => push_reindented_ws(out, &doc[span.0..span.1], from, to),
        Node::Other { span, .. } => out.push_str(&doc[span.0..span.1]),
    }
}

/// Write the entries of a disk in `layout`, the disk's child indentation
/// being `indent`: the text replaces the span from the first disk-level
/// entry to the last, so it starts with the first entry itself (its
/// indentation is the document's). Ends without a newline.
///
/// Each entry's own children are kept with the whitespace between them
/// (re-indented with the entry), so a conversion and its inverse give the
/// same bytes whatever the formatting:
///
/// * nested → flat: an entry's `<backingStore>` children go, each with the
///   whitespace before it; the alias comes first, after a copy of the
///   whitespace that began the entry's children (a `<backingStore/>` gets
///   libvirt's layout, one line each); a child that was not the last of its
///   parent's children says where it was: `<alias … at='N'/>`, N other
///   children before it.
/// * flat → nested: the alias goes with the whitespace before it; each
///   child entry comes back at its place (last, or `at`), after a copy of
///   the whitespace before the child it follows (or precedes).
pub fn entries(
    out: &mut String,
    doc: &str,
    en: &Entries,
    layout: Layout,
    indent: &str,
    unit: &str,
    dev: &str,
) {
    let n = en.list.len();
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, e) in en.list.iter().enumerate() {
        match e.parent {
            Some(p) => kids[p].push(i),
            None => roots.push(i),
        }
    }
    let names = flat_names(en, dev);
    let mut first = true;
    // The indentation an entry was written at; one that did not start a
    // line is taken to be where it is written now.
    let from_of = |i: usize, to: &str| -> String {
        let e = &en.list[i];
        if e.line_start {
            e.indent.clone()
        } else {
            to.to_string()
        }
    };
    // How much deeper than its place gives (see [`slot`]) a child entry is
    // indented: a nested one, against the whitespace it would be given;
    // a flat one, against the disk's children. The flat form writes the
    // entry that much deeper, so nesting it again gives it back.
    let extra_of = |i: usize| -> String {
        let e = &en.list[i];
        let Some(pi) = e.parent else {
            return String::new();
        };
        let p = &en.list[pi];
        if has_text(doc, p.elem) {
            return String::new();
        }
        let nested = p
            .elem
            .children
            .iter()
            .any(|n| matches!(n, Node::Elem(c) if c.start == e.elem.start));
        // A parent with no child of its own to take the place from: the
        // child entries all go where its alias went, with no extra depth.
        if !p
            .elem
            .children
            .iter()
            .enumerate()
            .any(|(k, n)| is_payload(n, k, p.flat_alias))
        {
            return String::new();
        }
        let base = if nested {
            let (rest, lead) = remaining(p.elem, p.flat_alias);
            let (_, ws) = slot(&rest, lead, position(doc, en, i));
            match ws.and_then(|sp| indent_of(&doc[sp.0..sp.1])) {
                Some(b) => b,
                None => return String::new(),
            }
        } else {
            indent
        };
        e.indent.strip_prefix(base).unwrap_or_default().to_string()
    };
    // The region written starts at the first entry, after the document's
    // own whitespace: the first entry is at that indentation (its own), and
    // its indentation is not written.
    let first_to = roots
        .first()
        .filter(|&&r| en.list[r].line_start)
        .map(|&r| en.list[r].indent.clone())
        .unwrap_or_else(|| indent.to_string());
    // The line ends of the whitespace before an entry (up to its last
    // line end), when it has one.
    let lead_head = |i: usize| -> Option<&str> {
        let e = &en.list[i];
        if e.parent.is_some_and(|p| has_text(doc, en.list[p].elem)) {
            return None;
        }
        let (a, b) = e.lead?;
        let w = &doc[a..b];
        w.rfind('\n').map(|j| &w[..=j])
    };
    match layout {
        Layout::Flat => {
            // Depth-first from each root.
            let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
            while let Some(i) = stack.pop() {
                let e = &en.list[i];
                let parent = match e.parent {
                    Some(p) => names[p].clone().unwrap_or_default(),
                    None => dev.to_string(),
                };
                let here = if first {
                    first_to.clone()
                } else {
                    format!("{indent}{}", extra_of(i))
                };
                let from = from_of(i, &here);
                // Line ends before a child entry as they were (blank lines
                // kept); "\n" between roots.
                if !first {
                    match (e.parent, lead_head(i)) {
                        (Some(_), Some(h)) => out.push_str(h),
                        _ => out.push('\n'),
                    }
                }
                if !first {
                    out.push_str(&here);
                }
                first = false;
                out.push_str(&open_form(doc, e.elem));
                let mut alias = String::from("<alias");
                if let Some(nm) = &names[i] {
                    attr(&mut alias, "name", nm);
                }
                attr(&mut alias, "parent", &parent);
                if let Some(at) = position(doc, en, i) {
                    attr(&mut alias, "at", &at.to_string());
                }
                alias.push_str("/>");
                if e.elem.empty {
                    out.push_str(&format!("\n{here}{unit}{alias}\n{here}"));
                } else if has_text(doc, e.elem) {
                    let inner = format!("{here}{unit}");
                    let guess = format!("{from}{unit}");
                    out.push_str(&format!("\n{inner}{alias}"));
                    for (node, own) in canonical_kept(doc, e.elem, e.flat_alias) {
                        push_canonical(out, doc, node, own.as_deref(), &guess, &inner);
                    }
                    out.push('\n');
                    out.push_str(&here);
                } else {
                    let (rest, _) = remaining(e.elem, e.flat_alias);
                    if let Some(sp) = ws_span(e.elem.children.first()) {
                        push_reindented_ws(out, &doc[sp.0..sp.1], &from, &here);
                    }
                    out.push_str(&alias);
                    for node in rest {
                        push_kept(out, doc, node, &from, &here);
                    }
                }
                out.push_str(&end_tag(doc, e.elem));
                for &c in kids[i].iter().rev() {
                    stack.push(c);
                }
            }
        }
        Layout::Nested => {
            enum Step {
                /// An entry, its indentation, and whether to write it.
                Open(usize, String, bool),
                Text(String),
            }
            let mut stack: Vec<Step> = Vec::new();
            for (k, &r) in roots.iter().enumerate().rev() {
                stack.push(if k == 0 {
                    Step::Open(r, first_to.clone(), false)
                } else {
                    Step::Open(r, indent.to_string(), true)
                });
                stack.push(Step::Text("\n".into()));
            }
            // The first separator is not written (the text starts at the
            // first entry).
            stack.pop();
            while let Some(step) = stack.pop() {
                let (i, to, write_to) = match step {
                    Step::Text(t) => {
                        out.push_str(&t);
                        continue;
                    }
                    Step::Open(i, to, w) => (i, to, w),
                };
                let e = &en.list[i];
                // A regenerated layout in mid-line: its lines at the disk's
                // children's indentation (where it came from is no guide).
                let to = if !write_to && has_text(doc, e.elem) {
                    indent.to_string()
                } else {
                    to
                };
                let from = from_of(i, &to);
                let (rest, alias_lead) = remaining(e.elem, e.flat_alias);
                let raw = |sp: (usize, usize)| &doc[sp.0..sp.1];
                let ws_only = rest
                    .iter()
                    .all(|n| matches!(n, Node::Other { ws: true, .. }));
                let empty = e.elem.empty
                    || (kids[i].is_empty()
                        && e.flat_alias.is_some()
                        && ws_only
                        && match (rest.as_slice(), alias_lead) {
                            ([], Some(_)) => true,
                            ([Node::Other { span, .. }], Some(l)) => raw(*span) != raw(l),
                            _ => false,
                        });
                if write_to {
                    out.push_str(&to);
                }
                if empty {
                    out.push_str(&empty_form(doc, e.elem));
                    continue;
                }
                out.push_str(&open_form(doc, e.elem));
                if has_text(doc, e.elem) {
                    // Regenerated layout: one child a line, the child
                    // entries at their places.
                    let inner = format!("{to}{unit}");
                    let guess = format!("{from}{unit}");
                    let kept = canonical_kept(doc, e.elem, e.flat_alias);
                    // Before the p-th child that is not text (after the
                    // texts before it), else last.
                    let anchors: Vec<usize> = kept
                        .iter()
                        .enumerate()
                        .filter(|(_, (n, _))| !is_text(doc, n))
                        .map(|(k, _)| k)
                        .collect();
                    let mut at: Vec<(usize, usize)> = kids[i]
                        .iter()
                        .map(|&c| {
                            let k = position(doc, en, c)
                                .and_then(|p| anchors.get(p).copied())
                                .unwrap_or(kept.len());
                            (k, c)
                        })
                        .collect();
                    super::sort_small(&mut at, |x| (x.0, 0));
                    let mut steps: Vec<Step> = Vec::new();
                    let mut text = String::new();
                    let mut next = at.iter().peekable();
                    for k in 0..=kept.len() {
                        while let Some(&&(p, c)) = next.peek() {
                            if p != k {
                                break;
                            }
                            next.next();
                            text.push('\n');
                            steps.push(Step::Text(std::mem::take(&mut text)));
                            steps.push(Step::Open(c, inner.clone(), true));
                        }
                        if let Some((node, own)) = kept.get(k) {
                            push_canonical(&mut text, doc, node, own.as_deref(), &guess, &inner);
                        }
                    }
                    text.push('\n');
                    text.push_str(&to);
                    text.push_str(&end_tag(doc, e.elem));
                    steps.push(Step::Text(text));
                    for s in steps.into_iter().rev() {
                        stack.push(s);
                    }
                    continue;
                }
                // Where each child entry goes in `rest`, and the
                // whitespace copied before it.
                let mut inserts: Vec<(usize, Option<Span>, usize)> = kids[i]
                    .iter()
                    .map(|&c| {
                        let (at, ws) = slot(&rest, alias_lead, position(doc, en, c));
                        (at, ws, c)
                    })
                    .collect();
                super::sort_small(&mut inserts, |x| (x.0, 0));
                // Emit: kept children and child entries in order; the end
                // tag last. Pushed in reverse onto the stack.
                let mut steps: Vec<Step> = Vec::new();
                let mut text = String::new();
                let mut next = inserts.iter().peekable();
                // The indentation the first child entry of a place started
                // its line at (siblings at the same place follow it).
                let mut group: Option<String> = None;
                for k in 0..=rest.len() {
                    let mut first_here = true;
                    while let Some(&&(at, ws, c)) = next.peek() {
                        if at != k {
                            break;
                        }
                        next.next();
                        let mut w = String::new();
                        // What comes before may end a line already (text
                        // ending in a line end and blanks): no copy then.
                        let line_ready = first_here && indent_of(&text).is_some();
                        if let (Some(sp), false) = (ws, line_ready) {
                            push_reindented_ws(&mut w, raw(sp), &from, &to);
                        } else if let (false, Some(g)) = (first_here, &group) {
                            w = format!("\n{g}");
                        }
                        {
                            if let Some(j) = w.rfind('\n') {
                                w.push_str(&extra_of(c));
                                // The line ends it had (a flat entry's).
                                if let Some(h) = lead_head(c) {
                                    w.replace_range(..=j, h);
                                }
                            }
                        }
                        // The kid starts a line when what comes before it
                        // ends with a line end and blanks (whitespace, or
                        // text: the reader takes either as its
                        // indentation); then it writes those blanks itself
                        // and is re-indented to them. Else it goes on the
                        // line as it is, not re-indented.
                        text.push_str(&w);
                        let line = indent_of(&text).map(str::to_string);
                        if first_here {
                            group = line.clone();
                            first_here = false;
                        }
                        let step = match line {
                            Some(ind) => {
                                text.truncate(text.len() - ind.len());
                                Step::Open(c, ind, true)
                            }
                            None => {
                                // In mid-line: laid out as the flat form
                                // lays it (the disk's children's
                                // indentation and its extra depth).
                                Step::Open(c, format!("{indent}{}", extra_of(c)), false)
                            }
                        };
                        steps.push(Step::Text(std::mem::take(&mut text)));
                        steps.push(step);
                    }
                    if let Some(node) = rest.get(k) {
                        push_kept(&mut text, doc, node, &from, &to);
                    }
                }
                text.push_str(&end_tag(doc, e.elem));
                steps.push(Step::Text(text));
                for s in steps.into_iter().rev() {
                    stack.push(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Host;

    fn ex(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Expected text: what `virsh -c test:///default dumpxml` (libvirt 9.0)
    // printed for these sources inside a <backingStore> at this depth.
    #[test]
    fn network_sources_as_libvirt_prints_them() {
        let https = StorageSource {
            kind: SourceType::Network,
            protocol: Some("https".into()),
            name: Some("/x/y.qcow2".into()),
            hosts: vec![Host {
                name: Some("web".into()),
                port: Some(443),
                ..Default::default()
            }],
            extras: ex(&[
                ("timeout", "5"),
                ("tls", "yes"),
                ("readahead", "65536"),
                ("sslverify", "no"),
                ("query", "a=b"),
            ]),
            ..Default::default()
        };
        assert_eq!(
            source_element(&https, "        ", "  "),
            "<source protocol='https' name='/x/y.qcow2' query='a=b' tls='yes'>
          <host name='web' port='443'/>
          <ssl verify='no'/>
          <readahead size='65536'/>
          <timeout seconds='5'/>
        </source>"
        );
        let rbd = StorageSource {
            kind: SourceType::Network,
            protocol: Some("rbd".into()),
            name: Some("p/i".into()),
            hosts: vec![Host {
                name: Some("m".into()),
                port: Some(6789),
                ..Default::default()
            }],
            extras: ex(&[("config", "/etc/ceph.conf"), ("snapshot", "s")]),
            ..Default::default()
        };
        assert_eq!(
            source_element(&rbd, "          ", "  "),
            "<source protocol='rbd' name='p/i'>
            <host name='m' port='6789'/>
            <snapshot name='s'/>
            <config file='/etc/ceph.conf'/>
          </source>"
        );
        let unix = StorageSource {
            kind: SourceType::Network,
            protocol: Some("nbd".into()),
            name: Some("exp".into()),
            hosts: vec![Host {
                transport: Some("unix".into()),
                socket: Some("/run/nbd.sock".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            source_element(&unix, "      ", "  "),
            "<source protocol='nbd' name='exp'>
        <host transport='unix' socket='/run/nbd.sock'/>
      </source>"
        );
        let sliced = StorageSource {
            kind: SourceType::File,
            path: Some("/b.img".into()),
            extras: ex(&[("offset", "512"), ("size", "1024")]),
            ..Default::default()
        };
        assert_eq!(
            source_element(&sliced, "            ", "  "),
            "<source file='/b.img'>
              <slices>
                <slice type='storage' offset='512' size='1024'/>
              </slices>
            </source>"
        );
    }

    #[test]
    fn escaping_and_unrepresentable_characters() {
        assert_eq!(
            escape_attr("a'b\"c&d<e>f\tg\nh"),
            "a&apos;b&quot;c&amp;d&lt;e&gt;f&#9;g&#10;h"
        );
        assert_eq!(escape_text("x<y&z>"), "x&lt;y&amp;z&gt;");
        // Runs of other characters (any UTF-8) are copied whole.
        assert_eq!(escape_attr("&é☃\r𝄞'"), "&amp;é☃&#13;𝄞&apos;");
        assert_eq!(escape_text("\r☃ x"), "&#13;☃ x");
        assert_eq!(escape_attr(""), "");
        assert_eq!(unrepresentable("ok\tfine\n"), None);
        assert_eq!(unrepresentable("no\0"), Some('\0'));
        assert_eq!(unrepresentable("no\u{1b}"), Some('\u{1b}'));
        assert_eq!(unrepresentable("no\u{FFFE}"), Some('\u{FFFE}'));
    }
}
