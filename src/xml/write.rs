//! Writing `<backingStore>` chains, nested as libvirt formats them or flat.

use super::{BackingChain, Layer, Layout, Options};
use crate::source::SourceType;

/// Escape for a single-quoted attribute value.
pub fn escape_attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o
}

/// The `<source …/>` line of a layer.
pub fn source_element(l: &Layer) -> String {
    let s = &l.source;
    let path = s.path.as_deref().map(escape_attr).unwrap_or_default();
    match s.kind {
        SourceType::File => format!("<source file='{path}'/>"),
        SourceType::Block => format!("<source dev='{path}'/>"),
        SourceType::Dir => format!("<source dir='{path}'/>"),
        _ => {
            let mut o = String::from("<source");
            if let Some(p) = &s.protocol {
                o.push_str(&format!(" protocol='{}'", escape_attr(p)));
            }
            if let Some(n) = &s.name {
                o.push_str(&format!(" name='{}'", escape_attr(n)));
            }
            if s.hosts.is_empty() {
                o.push_str("/>");
                return o;
            }
            o.push('>');
            for h in &s.hosts {
                o.push_str("<host");
                if let Some(n) = &h.name {
                    o.push_str(&format!(" name='{}'", escape_attr(n)));
                }
                if let Some(p) = h.port {
                    o.push_str(&format!(" port='{p}'"));
                }
                if let Some(t) = &h.transport {
                    o.push_str(&format!(" transport='{}'", escape_attr(t)));
                }
                if let Some(sk) = &h.socket {
                    o.push_str(&format!(" socket='{}'", escape_attr(sk)));
                }
                o.push_str("/>");
            }
            o.push_str("</source>");
            o
        }
    }
}

/// Append the chain below a disk, each line starting with `indent` (the
/// indentation of the disk's children), one more level per nesting.
pub fn chain(out: &mut String, bc: &BackingChain, indent: &str, dev: &str, opts: &Options) {
    match opts.layout {
        Layout::Nested => nested(out, bc, indent, opts),
        Layout::Flat => flat(out, bc, indent, dev, opts),
    }
}

fn open_tag(out: &mut String, l: &Layer, index: usize, opts: &Options) {
    out.push_str(&format!("<backingStore type='{}'", l.source.kind.name()));
    if !opts.no_index {
        out.push_str(&format!(" index='{index}'"));
    }
    out.push_str(">\n");
}

fn nested(out: &mut String, bc: &BackingChain, indent: &str, opts: &Options) {
    let mut pad = indent.to_string();
    for (i, l) in bc.layers.iter().enumerate() {
        out.push_str(&pad);
        open_tag(out, l, i + 1, opts);
        pad.push_str("  ");
        if let Some(f) = &l.format {
            out.push_str(&format!("{pad}<format type='{}'/>\n", escape_attr(f)));
        }
        out.push_str(&format!("{pad}{}\n", source_element(l)));
    }
    if bc.terminated {
        out.push_str(&format!("{pad}<backingStore/>\n"));
    }
    for _ in &bc.layers {
        pad.truncate(pad.len() - 2);
        out.push_str(&format!("{pad}</backingStore>\n"));
    }
}

fn flat(out: &mut String, bc: &BackingChain, indent: &str, dev: &str, opts: &Options) {
    let inner = format!("{indent}  ");
    let mut parent = dev.to_string();
    for (i, l) in bc.layers.iter().enumerate() {
        let name = format!("{dev}[{}]", i + 1);
        out.push_str(indent);
        open_tag(out, l, i + 1, opts);
        out.push_str(&format!(
            "{inner}<alias name='{}' parent='{}'/>\n",
            escape_attr(&name),
            escape_attr(&parent)
        ));
        if let Some(f) = &l.format {
            out.push_str(&format!("{inner}<format type='{}'/>\n", escape_attr(f)));
        }
        out.push_str(&format!("{inner}{}\n", source_element(l)));
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
