//! Domain XML for the audit: any number of inputs, each holding one or more
//! `<domain>` (or `<domstatus>`) documents one after another (several
//! `virsh dumpxml` outputs concatenated). Each document is read with
//! [`xml::describe`]; one that is not well-formed is reported with its
//! position (byte, line, column in its input) and the others still load.
//!
//! Splitting uses quick-xml's event reader over the whole text: a document
//! is a top-level element from its start tag to its matching end tag. After
//! an error the reader starts again at the next `<domain` or `<domstatus`
//! after the broken document's start. Iterative, one pass per document.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;

use crate::xml::{self, DiskSummary};

/// One domain XML input: a label (its file name) and its text.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DomainText {
    pub label: String,
    pub text: String,
}

/// A document read from an input.
#[derive(Debug, Clone)]
pub struct DomainDoc {
    /// Which input (index into the caller's list) and where in it.
    pub input: usize,
    pub start: usize,
    pub end: usize,
    /// `<name>`, when the document has one.
    pub name: Option<String>,
    pub disks: Vec<DiskSummary>,
}

/// A document that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DomainError {
    /// The input's label.
    pub input: String,
    /// Byte offset in the input (UTF-8).
    pub position: usize,
    /// 1-based line and column (in characters) of `position`.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Read every document of every input.
pub fn read_all(inputs: &[DomainText]) -> (Vec<DomainDoc>, Vec<DomainError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        read_input(i, inp, &mut docs, &mut errors);
    }
    (docs, errors)
}

fn error_at(inp: &DomainText, position: usize, message: String) -> DomainError {
    let position = position.min(inp.text.len());
    let mut p = position;
    while !inp.text.is_char_boundary(p) {
        p -= 1;
    }
    let before = &inp.text[..p];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    DomainError {
        input: inp.label.clone(),
        position,
        line,
        column,
        message,
    }
}

/// The next document start (`<domain` or `<domstatus` followed by a space,
/// `>` or `/`) at or after `from`.
fn next_start(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut at = from;
    while let Some(k) = crate::text::find(text.get(at..)?, "<dom") {
        let p = at + k;
        for tag in ["<domain", "<domstatus"] {
            if b[p..].starts_with(tag.as_bytes()) {
                let after = b.get(p + tag.len()).copied();
                if matches!(after, Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/')) {
                    return Some(p);
                }
            }
        }
        at = p + 4;
    }
    None
}

fn read_input(
    input: usize,
    inp: &DomainText,
    docs: &mut Vec<DomainDoc>,
    errors: &mut Vec<DomainError>,
) {
    let text = inp.text.as_str();
    let mut base = 0usize;
    if text.trim().is_empty() {
        errors.push(error_at(inp, 0, "no domain document".into()));
        return;
    }
    'restart: loop {
        let Some(rest) = text.get(base..) else { return };
        let mut reader = Reader::from_str(rest);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_comments = true;
        // Per open element: is it `domain`, `domstatus`, `name`, other.
        let mut depth = 0usize;
        let mut doc_start: Option<usize> = None;
        let mut in_name = false;
        let mut name: Option<String> = None;
        let mut domain_depth: Option<usize> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let ev = reader.read_event();
            match ev {
                Err(e) => {
                    let pos = base + reader.error_position() as usize;
                    let start = base + doc_start.unwrap_or(before);
                    errors.push(error_at(inp, pos, format!("not well-formed: {e}")));
                    match next_start(text, start + 1) {
                        Some(n) => {
                            base = n;
                            continue 'restart;
                        }
                        None => return,
                    }
                }
                Ok(Event::Eof) => {
                    if let Some(s) = doc_start {
                        errors.push(error_at(
                            inp,
                            base + s,
                            "not well-formed: the document ends before its root element is closed"
                                .into(),
                        ));
                    } else if docs.iter().all(|d| d.input != input)
                        && errors.iter().all(|e| e.input != inp.label)
                    {
                        errors.push(error_at(inp, base, "no domain document".into()));
                    }
                    return;
                }
                Ok(Event::Start(e)) => {
                    if depth == 0 {
                        doc_start = Some(before);
                        name = None;
                        domain_depth = None;
                    }
                    depth += 1;
                    let local = e.local_name();
                    if local.as_ref() == b"domain" && domain_depth.is_none() && depth <= 2 {
                        domain_depth = Some(depth);
                    } else if local.as_ref() == b"name"
                        && domain_depth.is_some_and(|d| d + 1 == depth)
                        && name.is_none()
                    {
                        in_name = true;
                    }
                }
                Ok(Event::Empty(_)) if depth == 0 => {
                    // An empty root: a document with nothing in it.
                    let end = reader.buffer_position() as usize;
                    push_doc(inp, input, base, before, end, None, docs, errors);
                }
                Ok(Event::Text(t)) if in_name => {
                    let s = t.unescape().map(|c| c.into_owned());
                    if let Ok(s) = s {
                        name = Some(s.trim().to_string());
                    }
                }
                Ok(Event::End(_)) => {
                    in_name = false;
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        let end = reader.buffer_position() as usize;
                        let start = doc_start.take().unwrap_or(0);
                        push_doc(inp, input, base, start, end, name.take(), docs, errors);
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn push_doc(
    inp: &DomainText,
    input: usize,
    base: usize,
    start: usize,
    end: usize,
    name: Option<String>,
    docs: &mut Vec<DomainDoc>,
    errors: &mut Vec<DomainError>,
) {
    let (start, end) = (base + start, base + end);
    let Some(slice) = inp.text.get(start..end) else {
        return;
    };
    match xml::describe(slice) {
        Ok(disks) => docs.push(DomainDoc {
            input,
            start,
            end,
            name,
            disks,
        }),
        Err(e) => errors.push(error_at(inp, start + e.position, e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(label: &str, text: &str) -> DomainText {
        DomainText {
            label: label.into(),
            text: text.into(),
        }
    }

    #[test]
    fn several_documents_and_a_broken_one() {
        let text = "<domain type='kvm'><name>a</name><devices/></domain>\n\
                    <domain type='kvm'><name>b</name><devices><disk></devices></domain>\n\
                    <domain type='kvm'><name>c &amp; d</name></domain>\n";
        let (docs, errs) = read_all(&[t("x.xml", text)]);
        let names: Vec<_> = docs.iter().map(|d| d.name.clone().unwrap()).collect();
        assert_eq!(names, ["a", "c & d"]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].position > text.find("<disk>").unwrap());
    }

    #[test]
    fn hostile_inputs_are_reported_not_panicked_on() {
        let deep = format!(
            "<domain>{}{}</domain>",
            "<a>".repeat(5000),
            "</a>".repeat(5000)
        );
        let inputs = [
            "<domain",
            "<<<>>>",
            "</domain>",
            "<domain><name>",
            "\u{feff}<domain/>",
            "<domain/><domain/>",
            "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain><name>&x;</name></domain>",
            "<domain><name>\u{1}</name></domain>",
            "<domainx/><domstatus><domain><name>s</name></domain></domstatus>",
            "<domain>\u{e9}\u{1F600}<devices><disk type='file'><source file='a'/>",
            &deep,
        ];
        for text in inputs {
            let (docs, errs) = read_all(&[t("h", text)]);
            for e in &errs {
                assert!(
                    e.position <= text.len() && e.line >= 1 && e.column >= 1,
                    "{text:?}"
                );
            }
            assert!(docs.len() + errs.len() >= 1, "{text:?}: nothing said");
        }
        // A status XML: the name is the inner domain's.
        let (docs, _) = read_all(&[t(
            "s",
            "<domstatus state='running'><domain><name>s</name></domain></domstatus>",
        )]);
        assert_eq!(docs[0].name.as_deref(), Some("s"));
    }

    #[test]
    fn unclosed_and_empty() {
        let (docs, errs) = read_all(&[t("a", "<domain><name>x</name>"), t("b", "  ")]);
        assert!(docs.is_empty());
        assert_eq!(errs.len(), 2);
    }
}
