//! Reading a document with quick-xml: checks well-formedness, refuses
//! entity definitions, bounds depth and size, and hands back the `<disk>`
//! (or `<volume>`) subtrees with their byte spans. Everything else is only
//! scanned, never kept.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::tree::{self, Elem};
use super::XmlError;
use crate::limits;

/// What the document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Root {
    /// `<domain>` (from `virsh dumpxml`).
    Domain,
    /// libvirt's status XML: `<domstatus>` around a `<domain>`.
    DomStatus,
    /// A bare `<disk>`.
    Disk,
    /// A storage volume (`virsh vol-dumpxml`).
    Volume,
}

/// A `<disk>` element of the document and the indentation it sits at.
#[derive(Debug, Clone)]
pub struct DiskNode {
    pub elem: Elem,
    /// Whitespace after the last newline before `<disk>` (empty if none).
    pub indent: String,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub root: Root,
    pub disks: Vec<DiskNode>,
    /// The whole `<volume>` element when the root is a volume.
    pub volume: Option<Elem>,
}

impl XmlError {
    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        XmlError {
            position,
            message: message.into(),
        }
    }
    pub(crate) fn from_qx(reader: &Reader<&[u8]>, e: &quick_xml::Error) -> Self {
        XmlError::at(
            reader.error_position() as usize,
            format!("not well-formed: {e}"),
        )
    }
    pub(crate) fn depth(position: usize) -> Self {
        XmlError::at(
            position,
            format!(
                "elements nested deeper than {} levels are refused",
                limits::MAX_XML_DEPTH
            ),
        )
    }
}

/// Read the document.
pub fn document(doc: &str) -> Result<Document, XmlError> {
    if doc.starts_with('\u{feff}') {
        // The public entry points strip one leading BOM; anywhere else a
        // U+FEFF before the root is not XML.
        return Err(XmlError::at(
            0,
            "not well-formed: a byte order mark (U+FEFF) where markup was expected",
        ));
    }
    if doc.len() > limits::MAX_XML_BYTES {
        return Err(XmlError::at(
            0,
            format!(
                "the document has {} bytes, over the limit of {} bytes",
                doc.len(),
                limits::MAX_XML_BYTES
            ),
        ));
    }
    // XML 1.0 allows no C0 control but tab, LF and CR anywhere (libxml2,
    // and so libvirt, refuses them); one pass over the bytes.
    if let Some(at) = first_control(doc.as_bytes()) {
        return Err(XmlError::at(
            at,
            format!(
                "not well-formed: control character U+{:04X} is not allowed in XML",
                doc.as_bytes()[at]
            ),
        ));
    }
    let mut reader = Reader::from_str(doc);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_comments = true;
    // Element names on the path from the root (only what is needed to know
    // whether a `<disk>` is a domain device).
    // Per open element: its start offset and whether it is `domain` (1),
    // `devices` (2) or anything else (0).
    let mut path: Vec<(usize, u8)> = Vec::new();
    let mut root: Option<Root> = None;
    let mut root_done = false;
    let mut disks = Vec::new();
    let mut volume = None;
    // The text just read, if the last event was one: a `<disk>` after it
    // gets its indentation (worked out only then).
    let mut last_text = "";
    loop {
        let before = reader.buffer_position() as usize;
        // Matched by reference: moving the event out of the result costs
        // two copies of it per event.
        let read = reader.read_event();
        let ev = match &read {
            Ok(ev) => ev,
            Err(e) => return Err(XmlError::from_qx(&reader, e)),
        };
        let after = reader.buffer_position() as usize;
        match ev {
            Event::DocType(ref t) => {
                let t = String::from_utf8_lossy(t.as_ref());
                if crate::text::contains(&t, "<!ENTITY") || t.as_bytes().contains(&b'[') {
                    return Err(XmlError::at(
                        before,
                        "a DOCTYPE with an internal subset (entity definitions) is refused: entities are neither expanded nor fetched",
                    ));
                }
                if root.is_some() {
                    return Err(XmlError::at(before, "DOCTYPE after the root element"));
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name();
                let name = name.as_ref();
                if path.is_empty() {
                    if root_done {
                        return Err(XmlError::at(before, "a second root element"));
                    }
                    let r = match name {
                        b"domain" => Root::Domain,
                        b"domstatus" => Root::DomStatus,
                        b"disk" => Root::Disk,
                        b"volume" => Root::Volume,
                        other => {
                            return Err(XmlError::at(
                                before,
                                format!(
                                "the root element is <{}>: expected <domain>, <disk> or <volume>",
                                String::from_utf8_lossy(other)
                            ),
                            ))
                        }
                    };
                    root = Some(r);
                    if matches!(r, Root::Disk | Root::Volume) {
                        let el =
                            tree::read_subtree(&mut reader, doc, e, (before, after), empty, 0)?;
                        if r == Root::Disk {
                            disks.push(DiskNode {
                                elem: el,
                                indent: tree::indent_of(last_text).unwrap_or("").to_string(),
                            });
                        } else {
                            volume = Some(el);
                        }
                        root_done = true;
                        continue;
                    }
                }
                // Check the attributes (duplicates, quoting, references)
                // without keeping them.
                tree::scan_attributes(e, name.len(), before, |_, _| Ok(()))?;
                let is_device_disk = path.len() >= 2
                    && path[path.len() - 1].1 == 2
                    && path[path.len() - 2].1 == 1
                    && name == b"disk";
                if is_device_disk {
                    let el = tree::read_subtree(
                        &mut reader,
                        doc,
                        e,
                        (before, after),
                        empty,
                        path.len(),
                    )?;
                    disks.push(DiskNode {
                        elem: el,
                        indent: tree::indent_of(last_text).unwrap_or("").to_string(),
                    });
                    last_text = "";
                    continue;
                }
                if !empty {
                    if path.len() + 1 > limits::MAX_XML_DEPTH {
                        return Err(XmlError::depth(before));
                    }
                    // (Told by the first byte first: a call to compare
                    // the names, else, for every name of the same length.)
                    let tag = match name {
                        [b'd', ..] if name == b"domain" => 1,
                        [b'd', ..] if name == b"devices" => 2,
                        _ => 0,
                    };
                    path.push((before, tag));
                } else if path.is_empty() {
                    root_done = true;
                }
                last_text = "";
            }
            Event::End(_) => {
                path.pop();
                if path.is_empty() {
                    root_done = true;
                }
                last_text = "";
            }
            Event::Text(ref t) => {
                let raw = &doc[before..after];
                if path.is_empty() {
                    if !raw.bytes().all(|b| b.is_ascii_whitespace()) {
                        return Err(XmlError::at(
                            before,
                            "not well-formed: text outside the root element",
                        ));
                    }
                } else {
                    tree::check_text(raw, before)?;
                }
                let _ = t;
                last_text = raw;
            }
            Event::CData(_) if path.is_empty() => {
                return Err(XmlError::at(
                    before,
                    "not well-formed: CDATA outside the root element",
                ));
            }
            Event::Eof => {
                if let Some(&(open, _)) = path.last() {
                    let name: String = doc[open + 1..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
                        .collect();
                    return Err(XmlError::at(
                        doc.len(),
                        format!("not well-formed: the document ends inside <{name}> (opened at byte {open})"),
                    ));
                }
                break;
            }
            Event::Decl(_) if before != 0 => {
                return Err(XmlError::at(
                    before,
                    "not well-formed: an XML declaration is allowed only at the very start",
                ));
            }
            Event::Decl(ref d) => tree::check_decl(d, before)?,
            Event::PI(_) => {
                tree::check_pi(&doc[before..after], before)?;
                last_text = "";
            }
            _ => last_text = "",
        }
    }
    let Some(root) = root else {
        return Err(XmlError::at(0, "no root element: the document is empty"));
    };
    Ok(Document {
        root,
        disks,
        volume,
    })
}

/// Offset of the first C0 control character other than tab, LF and CR.
/// Eight bytes at a time: a word with no byte below 0x20 is skipped whole
/// (most words of a document); in the others (a line end, mostly) the
/// control characters are picked out by the same arithmetic, exactly.
fn first_control(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` that is zero (no carry between bytes).
    let zero = |v: u64| !(((v & LOW) + LOW) | v) & HIGH;
    let (words, rest) = b.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*w);
        // Some byte < 0x20 (bytes ≥ 0x80 never set the flag).
        if (w.wrapping_sub(ONES * 0x20) & !w & HIGH) != 0 {
            let below_space = !(((w & LOW) + ONES * 0x60) | w) & HIGH;
            let allowed = zero(w ^ (ONES * u64::from(b'\t')))
                | zero(w ^ (ONES * u64::from(b'\n')))
                | zero(w ^ (ONES * u64::from(b'\r')));
            let bad = below_space & !allowed;
            if bad != 0 {
                return Some(k * 8 + bad.trailing_zeros() as usize / 8);
            }
        }
    }
    rest.iter()
        .position(|&x| x < 0x20 && !matches!(x, b'\t' | b'\n' | b'\r'))
        .map(|i| words.len() * 8 + i)
}

#[cfg(test)]
mod control_tests {
    use super::first_control;

    #[test]
    fn finds_the_first_control_character_anywhere() {
        assert_eq!(first_control(b"<a>\t\n\r</a>"), None);
        assert_eq!(first_control("é ü ☃ <a/>".as_bytes()), None);
        for len in 0..40 {
            for pos in 0..len {
                let mut v = vec![b'x'; len];
                v[pos] = 0x01;
                assert_eq!(first_control(&v), Some(pos), "len {len} pos {pos}");
                v[pos] = 0x1f;
                if pos > 0 {
                    v[pos - 1] = b'\n';
                }
                assert_eq!(first_control(&v), Some(pos), "len {len} pos {pos}");
            }
        }
        // Every byte value, alone in a word of spaces and line ends, and in
        // the last bytes.
        for x in 0..=255u8 {
            let control = x < 0x20 && !matches!(x, b'\t' | b'\n' | b'\r');
            for v in [*b"\n\t \r\n  x\n", *b"abc\ndefgh"] {
                for pos in [0, 3, 7, 8] {
                    let mut v = v.to_vec();
                    v[pos] = x;
                    let expected = control.then_some(pos);
                    assert_eq!(first_control(&v), expected, "{x:#x} at {pos}");
                    assert_eq!(first_control(&v[..pos + 1]), expected, "{x:#x} last");
                }
            }
        }
    }
}
