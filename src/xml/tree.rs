//! A small element tree over the original bytes, for the few subtrees the
//! rewriter looks into (`<disk>`, `<volume>`). Every node keeps its byte span
//! in the document, so anything copied out of it is copied verbatim.
//!
//! Building is iterative (an explicit stack), bounded by
//! [`crate::limits::MAX_XML_DEPTH`].

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
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::at(pos, format!("bad attribute: {err}")))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let v = a
            .unescape_value()
            .map_err(|err| XmlError::at(pos, format!("attribute '{key}': {err}")))?;
        out.push((key, v.into_owned()));
    }
    Ok(out)
}

/// Check a text event for undefined entity references (well-formedness):
/// only `&lt;` `&gt;` `&amp;` `&apos;` `&quot;` and character references
/// are defined (DOCTYPE subsets are refused). No allocation.
pub(crate) fn check_text(raw: &str, pos: usize) -> Result<(), XmlError> {
    check_refs(raw.as_bytes())
        .map_err(|(at, why)| XmlError::at(pos + at, format!("not well-formed: {why}")))
}

fn char_ref(digits: &[u8], radix: u32) -> bool {
    !digits.is_empty()
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|h| u32::from_str_radix(h, radix).ok())
            .and_then(char::from_u32)
            .is_some_and(xml_char)
}

/// See [`check_text`]; on error, the offset in `raw` and the reason.
pub(crate) fn check_refs(raw: &[u8]) -> Result<(), (usize, String)> {
    let mut i = 0;
    while let Some(off) = raw[i..].iter().position(|&b| b == b'&') {
        let at = i + off;
        let Some(len) = raw[at..].iter().take(40).position(|&b| b == b';') else {
            return Err((at, "'&' that starts no reference (write &amp;)".into()));
        };
        let name = &raw[at + 1..at + len];
        let ok = match name {
            b"lt" | b"gt" | b"amp" | b"apos" | b"quot" => true,
            [b'#', b'x', hex @ ..] => char_ref(hex, 16),
            [b'#', dec @ ..] => char_ref(dec, 10),
            _ => false,
        };
        if !ok {
            return Err((
                at,
                format!(
                    "undefined or invalid reference '&{};'",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        i = at + len + 1;
    }
    Ok(())
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
            .map_err(|e| XmlError::from_qx(reader, e))?;
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
    ws.rfind('\n').map(|i| &ws[i + 1..])
}

/// Copy `doc[span]` of an element subtree to `out`, re-indenting
/// whitespace-only text nodes that hold a newline: an indentation starting
/// with `from` gets `to` in place of that prefix. Everything else verbatim.
pub fn copy_reindented(out: &mut String, doc: &str, el: &Elem, from: &str, to: &str) {
    if from == to {
        out.push_str(&doc[el.start.0..el.end.1]);
        return;
    }
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
        // keep their offset and a conversion back restores them.
        let n = (ind.len() + to.len()).saturating_sub(from.len());
        out.push_str(head);
        out.extend(std::iter::repeat_n(' ', n));
    } else if let Some(rest) = ind.strip_prefix(from) {
        out.push_str(head);
        out.push_str(to);
        out.push_str(rest);
    } else {
        out.push_str(raw);
    }
}
