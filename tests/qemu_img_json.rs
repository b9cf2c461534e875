//! The `qemu-img info --backing-chain --output=json` import against the
//! probe of the same files, with qemu-img as the oracle: the same chain and
//! the same XML, the qcow2 external data file included.

mod common;

use std::path::Path;

use backing_chain::chain::{self, Image, Probed};
use backing_chain::image::probe_with;
use backing_chain::xml::{self, Options};
use common::*;

fn probed(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap();
    let len = bytes.len() as u64;
    let (info, read) = probe_with(Some(len), |o, l| -> Result<Vec<u8>, ()> {
        let s = o.min(len) as usize;
        let e = o.saturating_add(l).min(len) as usize;
        Ok(bytes[s..e].to_vec())
    })
    .unwrap();
    Image {
        filename: path.to_str().unwrap().to_string(),
        probe: Probed::Info(Box::new(info)),
        bytes_read: read,
    }
}

#[test]
fn the_import_writes_what_the_probe_writes_data_file_included() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "qcow2", "base.qcow2", "1M"]);
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=top.raw",
            "-F",
            "qcow2",
            "-b",
            "base.qcow2",
            "top.qcow2",
            "1M",
        ],
    );
    let top = d.join("top.qcow2");
    let json = qemu_img(
        d,
        &[
            "info",
            "--output=json",
            "--backing-chain",
            top.to_str().unwrap(),
        ],
    );
    let imported = xml::qemu_json::images(&json).unwrap();
    assert_eq!(imported.len(), 2);
    let probed = vec![probed(&top), probed(&d.join("base.qcow2"))];
    assert_eq!(
        imported[0].info().unwrap().data_file(),
        probed[0].info().unwrap().data_file()
    );
    assert_eq!(
        imported[0].info().unwrap().data_file(),
        Some(("top.raw", false))
    );
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
        top.display()
    );
    let from_json = xml::populate(&disk, &chain::build(imported), &Options::default()).unwrap();
    let from_probe = xml::populate(&disk, &chain::build(probed), &Options::default()).unwrap();
    assert_eq!(from_json.xml, from_probe.xml);
    assert!(
        from_json.xml.contains("<dataStore type='file'>"),
        "{}",
        from_json.xml
    );
    assert!(from_json.xml.contains("top.raw"), "{}", from_json.xml);
}
