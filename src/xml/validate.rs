//! Validate mode: the chain a disk's XML states against the chain the image
//! headers give, layer by layer — path (or network name and hosts), type,
//! format, depth and terminator. Every divergence is one diagnostic.

use super::model::{self, Disk};
use super::tree::Elem;
use super::BackingChain;
use crate::diag::{Code, Diagnostic};
use crate::source::{SourceType, StorageSource};

const FIX: &str = "replace the chain with what the images say (CLI: xml --mode validate --replace; libvirt: delete the <backingStore> element and define again)";

fn mismatch(dev: &str, depth: usize, what: String) -> Diagnostic {
    Diagnostic::error(
        Code::ChainMismatch,
        format!("'{dev}' layer {depth}: {what}"),
    )
    .with_fix(FIX)
}

fn describe(s: &StorageSource) -> String {
    if s.is_local() {
        return s.path.clone().unwrap_or_default();
    }
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

/// Same place? Local: same path. Network: same protocol, name and hosts
/// (a missing port matches any).
fn same_place(a: &StorageSource, b: &StorageSource) -> bool {
    if a.is_local() && b.is_local() {
        return a.path == b.path;
    }
    a.protocol == b.protocol
        && a.name == b.name
        && a.hosts.len() == b.hosts.len()
        && a.hosts.iter().zip(&b.hosts).all(|(x, y)| {
            x.name == y.name
                && x.socket == y.socket
                && (x.port.is_none() || y.port.is_none() || x.port == y.port)
        })
}

/// The `<dataStore>` of a `<source>`, read (`None` when there is none).
fn data_store_of(src: Option<&Elem>, doc: &str) -> Option<StorageSource> {
    let ds = src?.child("dataStore")?;
    let kind = ds
        .attr("type")
        .and_then(SourceType::from_name)
        .unwrap_or(SourceType::File);
    Some(
        ds.child("source")
            .map(|s| model::source_of(s, kind, doc))
            .unwrap_or_default(),
    )
}

/// A qcow2's external data file: the XML's `<dataStore>` against the one
/// the header names. libvirt uses a given chain as it is, so a data file
/// the XML leaves out is one QEMU is not told about (a relative name then
/// fails to open).
fn compare_data(xml: Option<StorageSource>, img: Option<&StorageSource>) -> Option<String> {
    match (xml, img) {
        (None, None) => None,
        (Some(x), Some(i)) if same_place(&x, i) => None,
        (Some(x), Some(i)) => Some(format!(
            "the XML's <dataStore> names '{}', the image header names the data file '{}'",
            describe(&x),
            describe(i)
        )),
        (None, Some(i)) => Some(format!(
            "the XML gives no <dataStore> for the data file '{}' the image header names (libvirt uses a given chain as it is: QEMU is not told of the data file)",
            describe(i)
        )),
        (Some(x), None) => Some(format!(
            "the XML gives the <dataStore> '{}', the image header names no data file",
            describe(&x)
        )),
    }
}

/// Compare the XML chain of a disk (the chain libvirt follows, as read in
/// `disk`) with the images' chain (`bc`), data files included.
pub fn compare(doc: &str, disk: &Disk, bc: &BackingChain) -> Vec<Diagnostic> {
    let (en, dev) = (&disk.entries, disk.name.as_str());
    let mut out = Vec::new();
    if let Some(why) = compare_data(
        data_store_of(disk.elem.child("source"), doc),
        bc.top_data_store.as_ref(),
    ) {
        out.push(
            Diagnostic::error(
                Code::ChainMismatch,
                format!("'{dev}' (its own source): {why}"),
            )
            .with_fix(FIX),
        );
    }
    let xml_term = disk.terminator.is_some();
    let layers: Vec<_> = disk.layers.iter().map(|&i| &en.list[i]).collect();
    for (i, e) in layers.iter().enumerate() {
        let depth = i + 1;
        let Some(img) = bc.layers.get(i) else { break };
        let ty = e.elem.attr("type").unwrap_or("");
        if ty != img.source.kind.name() {
            out.push(mismatch(
                dev,
                depth,
                format!(
                    "the XML says type '{ty}', the images say '{}'",
                    img.source.kind.name()
                ),
            ));
        }
        let fmt = e
            .elem
            .child("format")
            .or(e.elem.child("driver"))
            .and_then(|f| f.attr("type"));
        match (fmt, img.format.as_deref()) {
            (Some(x), Some(y)) if x != y => out.push(mismatch(
                dev,
                depth,
                format!("the XML says format '{x}', the image header says '{y}'"),
            )),
            (None, Some(y)) => out.push(Diagnostic::warning(
                Code::ChainNoFormat,
                format!("'{dev}' layer {depth}: the XML gives no <format> (libvirt assumes raw); the image is {y}"),
            )),
            _ => {}
        }
        let kind = SourceType::from_name(ty).unwrap_or(img.source.kind);
        let xsrc = e
            .elem
            .child("source")
            .map(|s| model::source_of(s, kind, doc))
            .unwrap_or_default();
        if let Some(why) = compare_data(
            data_store_of(e.elem.child("source"), doc),
            img.data_store.as_ref(),
        ) {
            out.push(mismatch(dev, depth, why));
        }
        if !same_place(&xsrc, &img.source) {
            out.push(mismatch(
                dev,
                depth,
                format!(
                    "the XML names '{}', the images name '{}'",
                    describe(&xsrc),
                    describe(&img.source)
                ),
            ));
        }
    }
    let (nx, ni) = (layers.len(), bc.layers.len());
    if nx < ni {
        if xml_term {
            out.push(mismatch(
                dev,
                nx + 1,
                format!("the XML ends the chain after {nx} backing layer(s) (<backingStore/>), the images have {ni}"),
            ));
        } else {
            out.push(Diagnostic::info(
                Code::ChainOpen,
                format!("'{dev}': the XML lists {nx} of the {ni} backing layers and does not end the chain: libvirt probes the rest from the images"),
            ));
        }
    } else if nx > ni {
        if bc.terminated {
            out.push(mismatch(
                dev,
                ni + 1,
                format!("the XML lists {nx} backing layer(s), the images have {ni}"),
            ));
        } else {
            out.push(Diagnostic::warning(
                Code::ChainUnverified,
                format!("'{dev}': the XML lists {nx} backing layers, the images could be followed for {ni} only: the rest is not verified"),
            ));
        }
    } else if bc.terminated && !xml_term {
        out.push(Diagnostic::info(
            Code::ChainUnterminated,
            format!("'{dev}': the chain matches but has no terminator <backingStore/>: libvirt probes the last image again"),
        ));
    } else if !bc.terminated && xml_term {
        out.push(Diagnostic::warning(
            Code::ChainUnverified,
            format!("'{dev}': the XML ends the chain after layer {nx}; the images could not be followed that far to confirm"),
        ));
    }
    out
}
