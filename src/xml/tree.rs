//! A small element tree over the original bytes, for the few subtrees the
//! rewriter looks into (`<disk>`, `<volume>`). Every node keeps its byte span
//! in the document, so anything copied out of it is copied verbatim.
//!
//! Building is iterative (an explicit stack), bounded by
//! [`crate::limits::MAX_XML_DEPTH`].

use std::collections::BTreeMap;

use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::XmlError;
use crate::limits;

/// An element: its qualified name as written, attributes (unescaped values),
/// the span of its start tag (the whole element when empty), the span of its
/// end tag, and its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub start: (usize, usize),
    /// Span of `</name>`; equal to `(start.1, start.1)` for an empty element.
    pub end: (usize, usize),
    pub empty: bool,
    pub children: Vec<Node>,
}

/// A child: an element, or anything else (text, CDATA, comment, PI) as a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Elem(Elem),
    Other { span: (usize, usize), ws: bool },
}

impl Elem {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Whole span of the element.
    pub fn span(&self) -> (usize, usize) {
        (self.start.0, self.end.1)
    }
    pub fn elems(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|n| match n {
            Node::Elem(e) => Some(e),
            Node::Other { .. } => None,
        })
    }
    pub fn child(&self, name: &str) -> Option<&Elem> {
        self.elems().find(|e| e.name == name)
    }
    /// Text content (CDATA included), unescaped; `None` when there is none.
    pub fn text(&self, doc: &str) -> Option<String> {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Other { span, .. } = n {
                let raw = &doc[span.0..span.1];
                if let Some(c) = raw.strip_prefix("<![CDATA[") {
                    s.push_str(c.strip_suffix("]]>").unwrap_or(c));
                } else if raw.starts_with("<!--") || raw.starts_with("<?") {
                } else {
                    match quick_xml::escape::unescape(raw) {
                        Ok(t) => s.push_str(&t),
                        Err(_) => s.push_str(raw),
                    }
                }
            }
        }
        if s.is_empty() {
            None
        } else {
            Some(s)
        }
    }
}

pub(crate) fn attrs_of(e: &BytesStart, pos: usize) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    scan_attributes(e, e.name().as_ref().len(), pos, |key, value| {
        let key = String::from_utf8_lossy(key).into_owned();
        let value = quick_xml::escape::unescape(&String::from_utf8_lossy(value))
            .map_err(|err| XmlError::at(pos, format!("attribute '{key}': {err}")))?
            .into_owned();
        out.push((key, value));
        Ok(())
    })?;
    Ok(out)
}

/// Check a text event for undefined entity references (well-formedness):
/// only `&lt;` `&gt;` `&amp;` `&apos;` `&quot;` and character references
/// are defined (DOCTYPE subsets are refused), and for `]]>`. No allocation.
///
/// One pass for the two bytes that matter, `&` and `>` (most texts hold
/// neither and are passed over eight bytes at a time). A wrong reference
/// anywhere is reported before a `]]>`, as when the references were
/// checked first over the whole text.
pub(crate) fn check_text(raw: &str, pos: usize) -> Result<(), XmlError> {
    match scan_refs(raw.as_bytes(), b'>') {
        Err((at, why)) => Err(XmlError::at(pos + at, format!("not well-formed: {why}"))),
        Ok(Some(at)) => Err(XmlError::at(
            pos + at,
            "not well-formed: ']]>' in text (write ]]&gt;)",
        )),
        Ok(None) => Ok(()),
    }
}

/// The XML declaration `<?xml …?>` (its content, from `xml`) at `pos`:
/// `version` first, then `encoding`, then `standalone`, each optional but
/// the first, with the values XML 1.0 allows (VersionInfo, EncodingDecl,
/// SDDecl).
pub(crate) fn check_decl(content: &[u8], pos: usize) -> Result<(), XmlError> {
    // Through `attrs_of` (the scanner as the disk trees use it): a scanner
    // of its own would cost its code again in the wasm.
    let content = String::from_utf8_lossy(content);
    let attrs = attrs_of(&BytesStart::from_content(content.as_ref(), 3), pos)?;
    let mut seen = 0;
    for (name, value) in &attrs {
        let rank = match name.as_str() {
            // `1.` alone too: the grammar wants a digit, xmllint does not.
            "version"
                if value
                    .strip_prefix("1.")
                    .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())) =>
            {
                1
            }
            "encoding"
                if value.starts_with(|c: char| c.is_ascii_alphabetic())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
            {
                2
            }
            "standalone" if value == "yes" || value == "no" => 3,
            _ => 0,
        };
        if rank <= seen || (seen == 0 && rank != 1) {
            return Err(XmlError::at(pos, BAD_DECL));
        }
        seen = rank;
    }
    if seen == 0 {
        return Err(XmlError::at(pos, BAD_DECL));
    }
    Ok(())
}

const BAD_DECL: &str = "not well-formed: the XML declaration takes version='1.x', then encoding='name' and standalone='yes' or 'no' if any, in that order";

fn char_ref(digits: &[u8], radix: u32) -> bool {
    // Digits only: `from_str_radix` would also take a sign.
    !digits.is_empty()
        && digits.iter().all(|&d| char::from(d).is_digit(radix))
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|h| u32::from_str_radix(h, radix).ok())
            .and_then(char::from_u32)
            .is_some_and(xml_char)
}

/// See [`check_text`]; on error, the offset in `raw` and the reason.
pub(crate) fn check_refs(raw: &[u8]) -> Result<(), (usize, String)> {
    scan_refs(raw, b'&').map(|_| ())
}

/// Check the references of `raw` in one pass that also stops at each
/// `also` (`>` for a text, `&` again for nothing more): the offset of the
/// first `]]>` if there is one (`]]>` ends a CDATA section and may not
/// appear in text, XML 1.0 [14]); a wrong reference anywhere is the error.
fn scan_refs(raw: &[u8], also: u8) -> Result<Option<usize>, (usize, String)> {
    let mut cdata_end = None;
    let mut from = 0;
    while let Some(k) = raw
        .get(from..)
        .and_then(|rest| find_either(rest, b'&', also))
    {
        let at = from + k;
        from = at + 1;
        if raw.get(at) == Some(&b'&') {
            from = at + check_ref(raw.get(at..).unwrap_or_default()).map_err(|why| (at, why))?;
        } else if at >= 2 && raw.get(at - 2..at) == Some(b"]]") {
            cdata_end = cdata_end.or(Some(at - 2));
        }
    }
    Ok(cdata_end)
}

/// The reference at the start of `rest` (which starts with `&`): its length
/// with the `;`, or why it is refused.
fn check_ref(rest: &[u8]) -> Result<usize, String> {
    let Some(len) = rest.iter().take(40).position(|&b| b == b';') else {
        return Err("'&' that starts no reference (write &amp;)".into());
    };
    let name = rest.get(1..len).unwrap_or_default();
    let ok = match name {
        b"lt" | b"gt" | b"amp" | b"apos" | b"quot" => true,
        [b'#', b'x', hex @ ..] => char_ref(hex, 16),
        [b'#', dec @ ..] => char_ref(dec, 10),
        _ => false,
    };
    if !ok {
        return Err(format!(
            "undefined or invalid reference '&{};'",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(len + 1)
}

/// Offset of the first `a` or `b` in `s` (the same byte twice for one).
/// Eight bytes at a time, like `read::first_control`: a word without either
/// is passed over whole. The high bit of each byte equal to `a` is set, and
/// maybe of some bytes after one (through the borrow): the lowest is exact;
/// the same for `b`, so the lowest of both is.
fn find_either(s: &[u8], a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let hits = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let (sa, sb) = (ONES * u64::from(a), ONES * u64::from(b));
    let (words, rest) = s.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*w);
        let h = hits(w ^ sa) | hits(w ^ sb);
        if h != 0 {
            return Some(k * 8 + h.trailing_zeros() as usize / 8);
        }
    }
    rest.iter()
        .position(|&x| x == a || x == b)
        .map(|i| words.len() * 8 + i)
}

/// XML whitespace (the `S` of the grammar).
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Check the attributes of a start tag in one pass, allocating nothing for
/// the usual few, and hand each name and raw value to `each`: quoting, `=`,
/// whitespace between attributes, duplicate names, no `<` in a value and
/// each value's references ([`check_refs`]), in document order. `tag` is
/// what quick-xml's `BytesStart` holds: the element name (`name_len` bytes),
/// then the attributes. Errors are reported at `pos`, the tag's offset, and
/// name the position in `tag` the way quick-xml's `AttrError` does (they are
/// its errors, where it has one).
pub(crate) fn scan_attributes<'a>(
    tag: &'a [u8],
    name_len: usize,
    pos: usize,
    mut each: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), XmlError>,
) -> Result<(), XmlError> {
    let bad = |e: AttrError| XmlError::at(pos, format!("bad attribute: {e}"));
    let element = tag.get(..name_len).unwrap_or_default();
    if let Err(why) = check_name(element) {
        return Err(XmlError::at(
            pos,
            format!("not well-formed: element name {why}"),
        ));
    }
    if tag.len() <= name_len {
        // No attributes (most end-of-line elements).
        return Ok(());
    }
    // The names so far, for the duplicate check: the first few as spans in
    // `tag` (no allocation), any more in an ordered map (a tag with thousands
    // of attributes costs n log n whatever their names; quick-xml compared
    // each name with every earlier one, and a hash map's worst case is in
    // the hands of whoever wrote the names where hashing has no random seed,
    // as in wasm).
    let mut few = [(0, 0); 8];
    let mut count = 0;
    let mut more: Option<BTreeMap<&[u8], usize>> = None;
    let mut i = name_len;
    loop {
        while tag.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if i >= tag.len() {
            return Ok(());
        }
        // The name: its first byte, whatever it is, then up to `=` or space,
        // noting on the way whether it is a plain ASCII name.
        let start = i;
        if tag.get(i) == Some(&b'=') {
            return Err(XmlError::at(
                pos,
                "not well-formed: attribute name missing before '=' (an empty name is not an XML name)",
            ));
        }
        let mut plain = tag
            .get(i)
            .is_some_and(|&b| NAME_BYTES[usize::from(b)] & 1 != 0);
        i += 1;
        while let Some(c) = tag
            .get(i)
            .map(|&b| NAME_BYTES[usize::from(b)])
            .filter(|c| c & ENDS_NAME == 0)
        {
            plain &= c & 2 != 0;
            i += 1;
        }
        let name = tag.get(start..i).unwrap_or_default();
        while tag.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if tag.get(i) != Some(&b'=') {
            return Err(bad(AttrError::ExpectedEq(i)));
        }
        if let Err(why) = if plain { Ok(()) } else { check_name(name) } {
            return Err(XmlError::at(
                pos,
                format!("not well-formed: attribute name {why}"),
            ));
        }
        let seen = few
            .iter()
            .take(count)
            .find(|&&(s, e)| e - s == name.len() && tag.get(s..e).is_some_and(|n| n == name));
        if let Some(&(prev, _)) = seen {
            return Err(bad(AttrError::Duplicated(start, prev)));
        }
        if let Some(slot) = few.get_mut(count) {
            *slot = (start, start + name.len());
            count += 1;
        } else if let Some(prev) = more.get_or_insert_default().insert(name, start) {
            return Err(bad(AttrError::Duplicated(start, prev)));
        }
        i += 1;
        while tag.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let quote = match tag.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            Some(_) => return Err(bad(AttrError::UnquotedValue(i))),
            None => return Err(bad(AttrError::ExpectedValue(tag.len()))),
        };
        // The value, up to the closing quote, noting any `&` and `<`.
        let rest = tag.get(i + 1..).unwrap_or_default();
        let (mut amp, mut lt) = (false, false);
        let Some(end) = rest.iter().position(|&b| {
            amp |= b == b'&';
            lt |= b == b'<';
            b == quote
        }) else {
            return Err(bad(AttrError::ExpectedQuote(tag.len(), quote)));
        };
        let value = rest.get(..end).unwrap_or_default();
        let refused =
            |why: &str| XmlError::at(pos, format!("not well-formed: in an attribute: {why}"));
        if amp {
            check_refs(value).map_err(|(_, why)| refused(&why))?;
        }
        if lt {
            return Err(refused("'<' in a value (write &lt;)"));
        }
        each(name, value)?;
        i += end + 2;
        if tag.get(i).is_some_and(|&b| !is_space(b)) {
            return Err(XmlError::at(
                pos,
                format!("bad attribute: position {i}: attributes must be separated by whitespace"),
            ));
        }
    }
}

/// Is `name` an all-ASCII XML name (the usual case, told without a call
/// and without decoding)?
#[inline]
fn plain_name(name: &[u8]) -> bool {
    name.split_first().is_some_and(|(&f, rest)| {
        NAME_BYTES[usize::from(f)] & 1 != 0
            && rest.iter().all(|&b| NAME_BYTES[usize::from(b)] & 2 != 0)
    })
}

/// Is `name` an XML 1.0 (fifth edition) `Name`? The error quotes it and
/// names the first character that is not allowed where it stands.
fn check_name(name: &[u8]) -> Result<(), String> {
    let class = |b: u8, first: bool| NAME_BYTES[usize::from(b)] & if first { 1 } else { 2 } != 0;
    if plain_name(name) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(name);
    let mut first = true;
    for c in text.chars() {
        let ok = match u8::try_from(c) {
            Ok(b) if b.is_ascii() => class(b, first),
            _ => name_char(c, first),
        };
        if !ok {
            let place = if first { "start" } else { "be in" };
            return Err(format!(
                "'{text}' is not an XML name: '{c}' cannot {place} a name"
            ));
        }
        first = false;
    }
    if first {
        return Err("missing".into());
    }
    Ok(())
}

/// A processing instruction `raw` (`<?target …?>`) at `pos`: its target is
/// a name other than `xml` in any case (XML 1.0 `PITarget`).
pub(crate) fn check_pi(raw: &str, pos: usize) -> Result<(), XmlError> {
    let body = raw.strip_prefix("<?").unwrap_or(raw);
    let body = body.strip_suffix("?>").unwrap_or(body);
    let target = &body[..body
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(body.len())];
    if target.eq_ignore_ascii_case("xml") {
        return Err(XmlError::at(
            pos,
            format!(
                "not well-formed: '{target}' is reserved: no processing instruction may use it"
            ),
        ));
    }
    check_name(target.as_bytes()).map_err(|why| {
        XmlError::at(
            pos,
            format!("not well-formed: processing instruction target {why}"),
        )
    })
}

/// Per byte: 1 when an ASCII `NameStartChar`, 2 when an ASCII `NameChar`,
/// [`ENDS_NAME`] when it ends an attribute name (`=`, whitespace).
static NAME_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            3
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            2
        } else if c == b'=' || is_space(c) {
            ENDS_NAME
        } else {
            0
        };
        b += 1;
    }
    t
};
const ENDS_NAME: u8 = 4;

/// The non-ASCII characters of XML 1.0's `NameStartChar` (and, when not
/// `first`, `NameChar`).
fn name_char(c: char, first: bool) -> bool {
    matches!(c,
        '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}'
        | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
        || (!first && matches!(c, '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}'))
}

/// Is `c` allowed in an XML 1.0 document?
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Read the subtree of the element whose start event was just read
/// (`start`, spanning `span`, at element depth `depth` in the document).
/// Returns when its end tag has been read.
pub(crate) fn read_subtree(
    reader: &mut Reader<&[u8]>,
    doc: &str,
    start: &BytesStart,
    span: (usize, usize),
    empty: bool,
    depth: usize,
) -> Result<Elem, XmlError> {
    let root = Elem {
        name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
        attrs: attrs_of(start, span.0)?,
        start: span,
        end: (span.1, span.1),
        empty,
        children: Vec::new(),
    };
    if empty {
        return Ok(root);
    }
    let mut stack = vec![root];
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::from_qx(reader, &e))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(ev, Event::Empty(_));
                if !is_empty && depth + stack.len() + 1 > limits::MAX_XML_DEPTH {
                    return Err(XmlError::depth(before));
                }
                let el = Elem {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    attrs: attrs_of(e, before)?,
                    start: (before, after),
                    end: (after, after),
                    empty: is_empty,
                    children: Vec::new(),
                };
                if is_empty {
                    let top = stack.last_mut().expect("stack");
                    top.children.push(Node::Elem(el));
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().expect("stack");
                el.end = (before, after);
                match stack.last_mut() {
                    Some(p) => p.children.push(Node::Elem(el)),
                    None => return Ok(el),
                }
            }
            Event::Eof => {
                return Err(XmlError::at(
                    doc.len(),
                    format!(
                        "unexpected end of document: <{}> is not closed",
                        stack.last().map_or("", |e| e.name.as_str())
                    ),
                ))
            }
            Event::DocType(_) | Event::Decl(_) => {
                return Err(XmlError::at(before, "declaration inside an element"))
            }
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {
                let raw = &doc[before..after];
                if let Event::PI(_) = ev {
                    check_pi(raw, before)?;
                }
                let ws =
                    matches!(ev, Event::Text(_)) && raw.bytes().all(|b| b.is_ascii_whitespace());
                if let Event::Text(_) = ev {
                    check_text(raw, before)?;
                }
                let top = stack.last_mut().expect("stack");
                top.children.push(Node::Other {
                    span: (before, after),
                    ws,
                });
            }
        }
    }
}

/// The indentation after the last newline of a whitespace text, if it has one.
pub fn indent_of(ws: &str) -> Option<&str> {
    // Only blanks indent: a bare CR is a line end to an XML reader, and
    // taking it as indentation would make line ends of our own output.
    ws.rfind('\n')
        .map(|i| &ws[i + 1..])
        .filter(|i| i.bytes().all(|b| b == b' ' || b == b'\t'))
}

/// Copy `doc[span]` of an element subtree to `out`, re-indenting
/// whitespace-only text nodes that hold a newline: an indentation starting
/// with `from` gets `to` in place of that prefix. Everything else verbatim.
pub fn copy_reindented(out: &mut String, doc: &str, el: &Elem, from: &str, to: &str) {
    // Iterative walk over (element, next child index).
    let mut stack: Vec<(&Elem, usize)> = vec![(el, 0)];
    out.push_str(&doc[el.start.0..el.start.1]);
    while let Some((e, i)) = stack.pop() {
        if i < e.children.len() {
            stack.push((e, i + 1));
            match &e.children[i] {
                Node::Other { span, ws } => {
                    let raw = &doc[span.0..span.1];
                    if *ws {
                        push_reindented_ws(out, raw, from, to);
                    } else {
                        out.push_str(raw);
                    }
                }
                Node::Elem(c) => {
                    out.push_str(&doc[c.start.0..c.start.1]);
                    stack.push((c, 0));
                }
            }
        } else {
            out.push_str(&doc[e.end.0..e.end.1]);
        }
    }
}

pub fn push_reindented_ws(out: &mut String, raw: &str, from: &str, to: &str) {
    let Some(i) = raw.rfind('\n') else {
        out.push_str(raw);
        return;
    };
    let (head, ind) = (&raw[..=i], &raw[i + 1..]);
    let spaces = |t: &str| t.bytes().all(|b| b == b' ');
    if spaces(from) && spaces(to) && spaces(ind) {
        // Shift by the difference, so lines indented unlike their element
        // keep their offset and a conversion back restores them. A line
        // indented less than its element comes to the element's new
        // indentation: after one pass every line is at least as deep as its
        // element, and from then on the shifts undo each other.
        let n = if ind.len() >= from.len() {
            ind.len() + to.len() - from.len()
        } else {
            to.len()
        };
        out.push_str(head);
        out.extend(std::iter::repeat_n(' ', n));
    } else if let Some(rest) = ind.strip_prefix(from) {
        out.push_str(head);
        out.push_str(to);
        out.push_str(rest);
    } else {
        // Not under the element's indentation (shallower, or tabs against
        // spaces): to the element's new indentation, as for spaces above.
        out.push_str(head);
        out.push_str(to);
    }
}

#[cfg(test)]
mod attribute_tests {
    use super::{check_refs, check_text, find_either, scan_attributes, XmlError};
    use proptest::prelude::*;
    use quick_xml::events::BytesStart;

    fn check(tag: &str, name_len: usize) -> Result<(), XmlError> {
        scan_attributes(tag.as_bytes(), name_len, 7, |_, _| Ok(()))
    }

    /// What `read::document` did before the scanner: quick-xml's attribute
    /// iterator (duplicate checks on), then the reference check of each value.
    fn quick_xml(tag: &str, name_len: usize, pos: usize) -> Result<(), XmlError> {
        for a in BytesStart::from_content(tag, name_len).attributes() {
            let a = a.map_err(|err| XmlError::at(pos, format!("bad attribute: {err}")))?;
            check_refs(&a.value).map_err(|(_, why)| {
                XmlError::at(pos, format!("not well-formed: in an attribute: {why}"))
            })?;
        }
        Ok(())
    }

    /// The same result and error as quick-xml's iterator, except where one
    /// of the two checks it lacks (whitespace between attributes, `<` in a
    /// value) refuses the tag.
    fn same(tag: &str) -> Result<(), TestCaseError> {
        let name_len = tag.find(' ').unwrap_or(tag.len());
        let (new, old) = (check(tag, name_len), quick_xml(tag, name_len, 7));
        if new != old {
            let why = new
                .as_ref()
                .err()
                .map_or("accepted", |e| e.message.as_str());
            prop_assert!(
                why.contains("separated by whitespace")
                    || why.contains("'<' in a value")
                    || why.contains("is not an XML name"),
                "{:?}: {:?}, quick-xml: {:?}",
                tag,
                new,
                old
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Any mix of the bytes that matter.
        #[test]
        fn same_as_quick_xml_on_any_mix(parts in proptest::collection::vec(prop::sample::select(vec![
            "a", "b", "ab", "=", "'", "\"", " ", "\t", "\r\n", "\n", "&", ";", "#", "x", "1", "<", ">",
            "/", "é", "&amp;", "&lt;", "&#65;", "&#x41;", "&#0;", "&bogus;", " a='1'", " b=\"2\"",
            " a =", " b\t= ", "'v'", "\"v\"",
        ]), 0..24)) {
            same(&format!("e{}", parts.concat()))?;
        }

        /// Well-formed runs of attributes, some names repeated, past the
        /// eight the duplicate check keeps in place.
        #[test]
        fn same_as_quick_xml_on_many_attributes(attrs in proptest::collection::vec(
            (0usize..14, prop::sample::select(vec![" ", "  ", "\n  ", "\t"]), any::<bool>()), 0..20)) {
            let mut tag = String::from("elem");
            for (name, sep, dq) in attrs {
                let q = if dq { '"' } else { '\'' };
                tag.push_str(&format!("{sep}n{name}={q}v &amp; {name}{q}"));
            }
            same(&tag)?;
        }
    }

    /// What `check_text` did before it was one pass: every reference
    /// checked first, then the first `]]>` looked for.
    fn two_passes(raw: &str, pos: usize) -> Result<(), XmlError> {
        check_refs(raw.as_bytes())
            .map_err(|(at, why)| XmlError::at(pos + at, format!("not well-formed: {why}")))?;
        match raw.find("]]>") {
            Some(at) => Err(XmlError::at(
                pos + at,
                "not well-formed: ']]>' in text (write ]]&gt;)",
            )),
            None => Ok(()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The one pass refuses the same texts, with the same message at the
        /// same position, as the references-then-`]]>` passes.
        #[test]
        fn text_check_is_the_two_passes_in_one(parts in proptest::collection::vec(prop::sample::select(vec![
            "a", " ", "\n  ", "&", ";", "#", "x", "4", "1", ">", "]", "]]", "]]>", "]>", "é",
            "&amp;", "&lt;", "&gt;", "&#65;", "&#x41;", "&#0;", "&bogus;", "&amp", "&#xD800;",
            "0123456789abcdef",
        ]), 0..24)) {
            let raw = parts.concat();
            prop_assert_eq!(check_text(&raw, 5), two_passes(&raw, 5), "{:?}", raw);
        }
    }

    #[test]
    fn find_either_finds_the_first_of_two() {
        for len in 0..40 {
            for pos in 0..len {
                for later in pos..len {
                    for (first, second) in [(b'&', b'>'), (b'>', b'&'), (b'&', b'&')] {
                        let mut v = vec![b'x'; len];
                        v[later] = second;
                        v[pos] = first;
                        assert_eq!(
                            find_either(&v, b'&', b'>'),
                            Some(pos),
                            "{len} {pos} {later}"
                        );
                    }
                    let v = vec![b'%'; len];
                    assert_eq!(find_either(&v, b'&', b'>'), None);
                }
            }
        }
        // A byte one below either after a match is no match of its own.
        assert_eq!(find_either(b"x=&%%%%%%%=", b'&', b'>'), Some(2));
        assert_eq!(find_either(b"%%%%%%%%=%=", b'&', b'>'), None);
    }

    #[test]
    fn duplicates_are_found_among_the_first_names_and_beyond() {
        let names: Vec<String> = (0..12).map(|i| format!(" a{i}='x'")).collect();
        for dup in 0..12 {
            for at in dup + 1..=12 {
                let mut tag = String::from("e");
                for (i, n) in names.iter().enumerate() {
                    if i == at {
                        tag.push_str(&format!(" a{dup}='again'"));
                    }
                    tag.push_str(n);
                }
                if at == 12 {
                    tag.push_str(&format!(" a{dup}='again'"));
                }
                let e = check(&tag, 1).expect_err(&tag);
                assert_eq!(Err(e), quick_xml(&tag, 1, 7), "{tag}");
            }
        }
        // The name before a space and `=` is the name, not the space.
        let tag = "e a ='v' a='1'";
        assert_eq!(check(tag, 1), quick_xml(tag, 1, 7));
        assert!(check(tag, 1).is_err());
        let all: String = names.concat();
        assert_eq!(check(&format!("e{all}"), 1), Ok(()));
    }

    #[test]
    fn each_attribute_is_handed_out_with_its_raw_value() {
        let tag = "disk a='1'\n  b = \"x &amp; 'y'\" c=''";
        let mut seen = Vec::new();
        scan_attributes(tag.as_bytes(), 4, 0, |k, v| {
            seen.push((k, v));
            Ok(())
        })
        .unwrap();
        let expected: [(&[u8], &[u8]); 3] = [(b"a", b"1"), (b"b", b"x &amp; 'y'"), (b"c", b"")];
        assert_eq!(seen, expected);
    }

    #[test]
    fn find_either_finds_the_first_of_one_byte() {
        for len in 0..40 {
            for pos in 0..len {
                for later in pos..len {
                    let mut v = vec![b'x'; len];
                    v[later] = b'&';
                    v[pos] = b'&';
                    assert_eq!(
                        find_either(&v, b'&', b'&'),
                        Some(pos),
                        "{len} {pos} {later}"
                    );
                    assert_eq!(find_either(&v, b'"', b'"'), None);
                }
            }
        }
        // Bytes next to it are no match; one after a match may be flagged
        // too (the borrow), never one before it.
        assert_eq!(find_either(b"%'%'%'%'%'", b'&', b'&'), None);
        assert_eq!(find_either(b"xx&'''''", b'&', b'&'), Some(2));
    }
}
