//! Storage volume XML (`virsh vol-dumpxml`) → a domain-style `<disk>`.
//!
//! A volume has `<target><path>` and `<format type>`, and at most one level
//! of `<backingStore><path><format>`. A URL path such as the RFC's
//! `gluster://localhost/vol1/img3` becomes a network source
//! (`protocol='gluster' name='vol1/img3'` with a `<host>`), the form the
//! RFC reply wished volumes had used.

use super::tree::Elem;
use super::{chain_layers, number, write, BackingChain, Layer, Options, Output, XmlError};
use crate::chain::Forest;
use crate::diag::{Code, Diagnostic};
use crate::source::{self, Host, SourceType, StorageSource};

/// A volume path as a domain source. `vol_type` is the volume's `type`.
/// A URL path is read as libvirt reads the same URL as a backing name
/// (transports, default ports, IPv6, percent-decoding).
pub fn path_source(path: &str, vol_type: Option<&str>) -> StorageSource {
    if let Some((scheme, rest)) = crate::text::split_once(path, "://") {
        if let Ok(p) = source::parse_backing_name(path) {
            if p.source.kind == SourceType::Network {
                return p.source;
            }
        }
        // A URL libvirt would not take as a backing name: its parts as they are.
        let (authority, name) = rest.split_once('/').unwrap_or((rest, ""));
        return StorageSource {
            kind: SourceType::Network,
            protocol: Some(scheme.to_string()),
            name: Some(name.to_string()),
            hosts: (!authority.is_empty())
                .then(|| Host {
                    name: Some(authority.to_string()),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
    }
    let kind = match vol_type {
        Some("block") => SourceType::Block,
        Some("dir") => SourceType::Dir,
        _ => SourceType::File,
    };
    StorageSource {
        kind,
        path: Some(path.to_string()),
        ..Default::default()
    }
}

fn text_of(el: Option<&Elem>, doc: &str) -> Option<String> {
    el.and_then(|e| e.text(doc)).map(|t| t.trim().to_string())
}

/// Turn a `<volume>` into a `<disk>` with its chain: from the images when one
/// matches the volume's path, else the volume's own one-level backing store
/// (left open: libvirt would probe on from there).
pub fn to_disk(doc: &str, vol: &Elem, forest: &Forest, opts: &Options) -> Result<Output, XmlError> {
    let mut diagnostics = Vec::new();
    let target = vol
        .child("target")
        .ok_or_else(|| XmlError::at(vol.start.0, "<volume> has no <target>"))?;
    let path = text_of(target.child("path"), doc)
        .ok_or_else(|| XmlError::at(target.start.0, "<volume><target> has no <path>"))?;
    let vtype = vol.attr("type");
    let src = path_source(&path, vtype);
    let fmt = target
        .child("format")
        .and_then(|f| f.attr("type"))
        .map(str::to_string);
    let base_dir = opts
        .base_dir
        .clone()
        .unwrap_or_else(|| source::dir_of(&path).trim_end_matches('/').to_string());
    let from_images = src
        .is_local()
        .then(|| {
            forest
                .images
                .iter()
                .position(|im| im.filename == path)
                .or_else(|| {
                    let b = path.rsplit('/').next().unwrap_or(&path);
                    let c: Vec<_> = forest
                        .images
                        .iter()
                        .enumerate()
                        .filter(|(_, im)| im.filename.rsplit('/').next() == Some(b))
                        .collect();
                    (c.len() == 1).then(|| c[0].0)
                })
        })
        .flatten();
    let bc = match from_images {
        Some(i) => chain_layers(forest, &forest.chain_from(i), Some(&base_dir)),
        None => {
            let mut layers = Vec::new();
            if let Some(b) = vol.child("backingStore") {
                if let Some(bp) = text_of(b.child("path"), doc) {
                    layers.push(Layer::new(
                        path_source(&bp, None),
                        b.child("format")
                            .and_then(|f| f.attr("type"))
                            .map(str::to_string),
                    ));
                }
                diagnostics.push(Diagnostic::info(
                    Code::VolumeOneLevel,
                    "a volume lists one backing level only: the chain is left open (libvirt probes on from there)",
                ));
            }
            BackingChain {
                terminated: vol.child("backingStore").is_none(),
                layers,
                top_data_store: None,
                relative: Vec::new(),
            }
        }
    };
    let dev = "vda";
    let mut top = Layer::new(src.clone(), fmt.clone());
    top.data_store = bc.top_data_store.clone();
    for l in std::iter::once(&top).chain(&bc.layers) {
        for s in write::layer_strings(l) {
            if let Some(c) = write::unrepresentable(s) {
                return Err(XmlError::at(
                    vol.start.0,
                    format!(
                        "the name {} has U+{:04X}, which XML cannot carry",
                        crate::text::Quoted(s),
                        c as u32
                    ),
                ));
            }
        }
    }
    let mut xml = format!("<disk type='{}' device='disk'>\n", src.kind.name());
    xml.push_str(&format!(
        "  <driver name='qemu' type='{}'/>\n",
        write::escape_attr(fmt.as_deref().unwrap_or("raw"))
    ));
    // One disk, its chain detected: the top 1, then its data file and layers.
    let n = number::number(
        &[number::DiskFacts {
            numbered: true,
            top: true,
            detected: super::detected_from(&bc),
            ..Default::default()
        }],
        1,
    );
    let n = &n.disks[0];
    let (top_index, data_index) = if opts.no_index {
        (None, None)
    } else {
        (n.top, n.first_data)
    };
    let data = bc
        .top_data_store
        .as_ref()
        .filter(|_| super::WRITE_TOP_DATA_STORE)
        .map(|d| (d, data_index));
    xml.push_str(&format!(
        "  {}\n",
        write::source_element_full(&src, top_index, data, "  ", "  ")
    ));
    let mut text = String::new();
    write::chain(&mut text, &bc, "  ", "  ", dev, &n.detected, opts);
    if !text.is_empty() {
        xml.push_str(&text);
        xml.push('\n');
    }
    xml.push_str(&format!("  <target dev='{dev}' bus='virtio'/>\n</disk>\n"));
    Ok(Output {
        xml,
        diagnostics,
        mismatch: false,
        disks: 1,
        paths: Vec::new(),
        targets: Vec::new(),
    })
}
