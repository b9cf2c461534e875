//! Reading disks out of a domain / disk XML with quick-xml, keeping byte
//! positions so the writer can splice.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::XmlError;
use crate::limits;

/// A `<disk>` found in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRef {
    /// `type` attribute.
    pub disk_type: Option<String>,
    /// `file`, `dev` or `dir` of its `<source>`.
    pub source_path: Option<String>,
    pub target_dev: Option<String>,
    pub has_backing_store: bool,
    /// Byte offset just after the `<source>` element (or after the start tag
    /// of `<disk>` when there is no source).
    pub insert_at: usize,
    /// Whitespace that indents the disk's children.
    pub child_indent: String,
    /// Byte span of the whole `<disk>` element.
    pub span: (usize, usize),
}

fn attr(e: &BytesStart, name: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|err| err.to_string())?;
        if a.key.as_ref() == name {
            return a
                .unescape_value()
                .map(|v| Some(v.into_owned()))
                .map_err(|err| err.to_string());
        }
    }
    Ok(None)
}

fn err(reader: &Reader<&[u8]>, message: impl Into<String>) -> XmlError {
    XmlError {
        position: reader.buffer_position() as usize,
        message: message.into(),
    }
}

/// Every `<disk>` of the document (a `<domain>` or a bare `<disk>`).
pub fn disks(doc: &str) -> Result<Vec<DiskRef>, XmlError> {
    if doc.len() > limits::MAX_XML_BYTES {
        return Err(XmlError {
            position: 0,
            message: format!(
                "document of {} bytes is over the limit of {}",
                doc.len(),
                limits::MAX_XML_BYTES
            ),
        });
    }
    let mut reader = Reader::from_str(doc);
    reader.config_mut().trim_text(false);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut out = Vec::new();
    // The disk being read: (ref, depth of the disk element).
    let mut cur: Option<(DiskRef, usize)> = None;
    let mut last_text_indent = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| XmlError {
            position: reader.error_position() as usize,
            message: e.to_string(),
        })?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::DocType(t) => {
                let t = String::from_utf8_lossy(t.as_ref()).into_owned();
                if t.contains("<!ENTITY") {
                    return Err(err(
                        &reader,
                        "a DOCTYPE that defines entities is refused (no expansion, no fetch)",
                    ));
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name();
                let name = name.as_ref();
                if depth == 0 {
                    if root_seen {
                        return Err(err(&reader, "more than one root element"));
                    }
                    root_seen = true;
                    if !matches!(name, b"domain" | b"disk") {
                        return Err(XmlError {
                            position: before,
                            message: format!(
                                "the root element is <{}>; expected <domain> or <disk>",
                                String::from_utf8_lossy(name)
                            ),
                        });
                    }
                }
                if depth + 1 > limits::MAX_XML_DEPTH {
                    return Err(err(
                        &reader,
                        format!("elements nested deeper than {}", limits::MAX_XML_DEPTH),
                    ));
                }
                let a = |n: &[u8]| attr(e, n).map_err(|m| err(&reader, m));
                if name == b"disk" && cur.is_none() {
                    let d = DiskRef {
                        disk_type: a(b"type")?,
                        source_path: None,
                        target_dev: None,
                        has_backing_store: false,
                        insert_at: after,
                        child_indent: String::new(),
                        span: (before, after),
                    };
                    if empty {
                        out.push(d);
                    } else {
                        cur = Some((d, depth + 1));
                    }
                } else if let Some((d, ddepth)) = cur.as_mut() {
                    if depth == *ddepth {
                        match name {
                            b"source" => {
                                d.source_path = match a(b"file")? {
                                    Some(p) => Some(p),
                                    None => match a(b"dev")? {
                                        Some(p) => Some(p),
                                        None => a(b"dir")?,
                                    },
                                };
                                d.child_indent = last_text_indent.clone();
                                if empty {
                                    d.insert_at = after;
                                }
                            }
                            b"backingStore" => d.has_backing_store = true,
                            b"target" => d.target_dev = a(b"dev")?,
                            _ => {}
                        }
                        if d.child_indent.is_empty() {
                            d.child_indent = last_text_indent.clone();
                        }
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                if let Some((d, ddepth)) = cur.as_mut() {
                    if depth == *ddepth && e.name().as_ref() == b"source" {
                        d.insert_at = after;
                    }
                    if depth + 1 == *ddepth && e.name().as_ref() == b"disk" {
                        let (mut d, _) = cur.take().expect("current disk");
                        d.span.1 = after;
                        out.push(d);
                    }
                }
            }
            Event::Text(t) => {
                let raw = String::from_utf8_lossy(t.as_ref());
                last_text_indent = match raw.rfind('\n') {
                    Some(i) => raw[i + 1..].to_string(),
                    None => String::new(),
                };
                if !last_text_indent.chars().all(|c| c == ' ' || c == '\t') {
                    last_text_indent.clear();
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(XmlError {
            position: 0,
            message: "no root element: the document is empty".into(),
        });
    }
    Ok(out)
}
