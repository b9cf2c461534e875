//! The page's diff view model: per disk and per depth, the chain the XML
//! states next to the chain the images give (what [`super::populate`]
//! would write into the disk without a chain) — validate mode's data, for a
//! side-by-side view.

use serde::Serialize;

use super::edit::{ws_before, Nested};
use super::read;
use super::tree::Elem;
use super::{
    describe, populate, summary, DiskSummary, Forest, Layout, Mode, Options, XmlError, XmlLayer,
};

/// One layer, for the side-by-side view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffSide {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The path, or `protocol:name on [hosts]` for a network layer.
    pub place: String,
    pub format: Option<String>,
}

/// One depth of a disk's chain: what the XML says, what the images say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    pub depth: usize,
    pub xml: Option<DiffSide>,
    pub images: Option<DiffSide>,
    /// What differs: `type`, `place`, `format`; `depth` (one side ends
    /// the chain before the other); `unstated` (the XML lists fewer layers
    /// and leaves the chain open: libvirt probes the rest); `unverified`
    /// (the images could not be followed that far).
    pub differs: Vec<&'static str>,
}

/// A disk's chain, side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskDiff {
    pub disk: usize,
    pub name: String,
    /// Does an image match the disk's source (else there is nothing to compare)?
    pub matched: bool,
    /// Does the XML state a chain (else libvirt probes)?
    pub has_chain: bool,
    pub rows: Vec<DiffRow>,
    pub xml_terminated: bool,
    pub images_terminated: bool,
}

fn side(l: &XmlLayer) -> DiffSide {
    let place = match &l.source {
        Some(s) if s.is_local() => s.path.clone().unwrap_or_default(),
        Some(s) => {
            let hosts: Vec<String> = s
                .hosts
                .iter()
                .map(|h| match (&h.name, h.port) {
                    (Some(n), Some(p)) => format!("{n}:{p}"),
                    (Some(n), None) => n.clone(),
                    (None, _) => h.socket.clone().unwrap_or_default(),
                })
                .collect();
            format!(
                "{}:{} on [{}]",
                s.protocol.as_deref().unwrap_or(s.kind.name()),
                s.name.as_deref().unwrap_or(""),
                hosts.join(", ")
            )
        }
        None => String::new(),
    };
    DiffSide {
        kind: l.kind.clone(),
        place,
        format: l.format.clone(),
    }
}

/// The main path of a described disk: its layers (terminator excluded) and
/// whether it ends with one.
fn main_layers(s: &DiskSummary) -> (Vec<&XmlLayer>, bool) {
    let mut out = Vec::with_capacity(s.main.len());
    for &i in &s.main {
        out.push(&s.layers[i]);
    }
    (out, s.terminated)
}

/// Each disk's chain as the document states it next to the chain the
/// images give (what [`super::populate`] would write into the disk without
/// a chain), per depth. The core's validate diagnostics say the same in
/// words; this is the data for a side-by-side view.
pub fn diff(doc: &str, forest: &Forest, opts: &Options) -> Result<Vec<DiskDiff>, XmlError> {
    // The document read once: each disk in the nested form, described,
    // and the document with every chain removed (then populated).
    let d = read::document(doc)?;
    let nested = Nested::new(doc, &d)?;
    let mut stated = Vec::with_capacity(nested.len());
    for i in 0..nested.len() {
        nested.with_disk(i, &mut |doc, dk| {
            stated.push(summary(doc, dk)?);
            Ok(())
        })?;
    }
    let bare = nested.edit(None, &mut |_, dk| {
        Ok(match dk.entries.region {
            Some((s, e)) => vec![(ws_before(dk.elem, first_at(dk.elem, s)), e, String::new())],
            None => Vec::new(),
        })
    })?;
    let o = Options {
        layout: Layout::Nested,
        mode: Mode::Populate,
        replace: false,
        ..opts.clone()
    };
    let from_images = describe(&populate(&bare, forest, &o)?.xml)?;
    let mut out = Vec::new();
    for (i, (x, m)) in stated.iter().zip(&from_images).enumerate() {
        let (xl, xt) = main_layers(x);
        let (il, it) = main_layers(m);
        let matched = !il.is_empty() || it;
        let mut rows = Vec::new();
        let n = if matched {
            xl.len().max(il.len())
        } else {
            xl.len()
        };
        for k in 0..n {
            let a = xl.get(k).map(|l| side(l));
            let b = if matched {
                il.get(k).map(|l| side(l))
            } else {
                None
            };
            let mut differs = Vec::new();
            match (&a, &b) {
                (Some(a), Some(b)) => {
                    if a.kind != b.kind {
                        differs.push("type");
                    }
                    if a.place != b.place {
                        differs.push("place");
                    }
                    if a.format.is_some() && a.format != b.format {
                        differs.push("format");
                    }
                }
                (None, Some(_)) if xt => differs.push("depth"),
                (None, Some(_)) => differs.push("unstated"),
                (Some(_), None) if matched && it => differs.push("depth"),
                (Some(_), None) if matched => differs.push("unverified"),
                _ => {}
            }
            rows.push(DiffRow {
                depth: k + 1,
                xml: a,
                images: b,
                differs,
            });
        }
        out.push(DiskDiff {
            disk: i,
            name: x.name.clone(),
            matched,
            has_chain: !x.layers.is_empty(),
            rows,
            xml_terminated: xt,
            images_terminated: it,
        });
    }
    Ok(out)
}

fn first_at(disk: &Elem, start: usize) -> &Elem {
    disk.elems().find(|c| c.start.0 == start).unwrap_or(disk)
}
