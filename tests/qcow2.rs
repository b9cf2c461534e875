//! Foundation tests: qcow2 headers against qemu-img, chains, XML for libvirt.
//!
//! The fixture tests always run; the live tests make images with qemu-img in a
//! temp dir and skip (visibly) when it is missing.

mod common;
use common::{have_qemu_img, relaxng};
use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::chain::{self, Image, Probed, Status};
use backing_chain::diag::Code;
use backing_chain::image::{self, Format};
use backing_chain::xml::{self, Options};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/qcow2");

fn probe_bytes(bytes: &[u8], file_len: Option<u64>) -> (image::ImageInfo, u64) {
    image::probe_with(
        file_len,
        |off, len| -> Result<Vec<u8>, std::convert::Infallible> {
            let s = (off as usize).min(bytes.len());
            let e = (off.saturating_add(len) as usize).min(bytes.len());
            Ok(bytes[s..e].to_vec())
        },
    )
    .unwrap_or_else(|e| panic!("probe failed: {e}"))
}

/// The keys both tools print, from our JSON.
fn overlap(ours: &Value, oracle: &Value) -> Vec<(String, Value, Value)> {
    let keys = [
        "format",
        "virtual-size",
        "cluster-size",
        "backing-filename",
        "backing-filename-format",
        "encrypted",
        "dirty-flag",
    ];
    let mut diffs = Vec::new();
    for k in keys {
        let a = ours.get(k).cloned().unwrap_or(Value::Null);
        let b = oracle.get(k).cloned().unwrap_or(Value::Null);
        // qemu-img omits "encrypted" when false; we omit it too.
        if a != b {
            diffs.push((k.to_string(), a, b));
        }
    }
    let a = ours.pointer("/format-specific/data").cloned();
    let b = oracle.pointer("/format-specific/data").cloned();
    if a != b {
        diffs.push((
            "format-specific.data".into(),
            a.unwrap_or_default(),
            b.unwrap_or_default(),
        ));
    }
    diffs
}

#[test]
fn fixture_headers_match_qemu_img() {
    for name in ["base", "mid", "top", "noformat"] {
        let head = std::fs::read(format!("{FIXTURES}/{name}.qcow2.head")).unwrap();
        let oracle: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURES}/{name}.qemu-img.json")).unwrap(),
        )
        .unwrap();
        // The fixture is only the head of the file: the length is unknown.
        let (info, read) = probe_bytes(&head, None);
        let ours = serde_json::to_value(&info).unwrap();
        assert_eq!(overlap(&ours, &oracle), vec![], "{name}");
        assert!(read <= 4096, "{name}: read {read} bytes");
    }
}

fn fixture_image(name: &str) -> Image {
    let head = std::fs::read(format!("{FIXTURES}/{name}.qcow2.head")).unwrap();
    let (info, bytes_read) = probe_bytes(&head, None);
    Image {
        filename: format!("{name}.qcow2"),
        probe: Probed::Info(Box::new(info)),
        bytes_read,
    }
}

#[test]
fn fixture_chain_and_diagnostics() {
    let forest = chain::build(
        ["top", "mid", "base", "noformat"]
            .iter()
            .map(|n| fixture_image(n))
            .collect(),
    );
    let names = |c: &chain::Chain| {
        c.layers
            .iter()
            .map(|&l| forest.images[l].filename.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(forest.chains.len(), 2, "tops: top.qcow2 and noformat.qcow2");
    let top = forest
        .chains
        .iter()
        .find(|c| forest.images[c.top].filename == "top.qcow2")
        .unwrap();
    assert_eq!(names(top), ["top.qcow2", "mid.qcow2", "base.qcow2"]);
    assert_eq!(top.status, Status::Ok);
    assert!(top.diagnostics.is_empty(), "{:?}", top.diagnostics);
    // base.qcow2 is shared: two overlays depend on it.
    let base = forest
        .images
        .iter()
        .position(|i| i.filename == "base.qcow2")
        .unwrap();
    let mut overlays: Vec<_> = forest.overlays[base]
        .iter()
        .map(|&i| forest.images[i].filename.as_str())
        .collect();
    overlays.sort();
    assert_eq!(overlays, ["mid.qcow2", "noformat.qcow2"]);
    // noformat.qcow2 does not record its backing format; base.qcow2 is qcow2.
    let nf = forest
        .chains
        .iter()
        .find(|c| forest.images[c.top].filename == "noformat.qcow2")
        .unwrap();
    let d = nf
        .diagnostics
        .iter()
        .find(|d| d.code == Code::BackingFormatNotRecorded)
        .expect("diagnostic");
    // It is about noformat.qcow2 (the image that fails to record it).
    let nf_idx = forest
        .images
        .iter()
        .position(|i| i.filename == "noformat.qcow2");
    assert_eq!(d.image, nf_idx);
    assert_eq!(
        d.fix.as_deref(),
        Some("qemu-img rebase -u -f qcow2 -F qcow2 -b base.qcow2 noformat.qcow2")
    );
}

#[test]
fn fixture_nested_xml_is_libvirts_form() {
    let forest = chain::build(
        ["top", "mid", "base"]
            .iter()
            .map(|n| fixture_image(n))
            .collect(),
    );
    let opts = Options {
        base_dir: Some("/var/lib/libvirt/images".into()),
        ..Default::default()
    };
    let out = xml::disks(&forest, &opts);
    // libvirt's documented nested form (formatdomain.rst, backingStore),
    // numbered as libvirt 11.3 numbers a freshly started VM (the top 1).
    let expected = "\
<disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source file='/var/lib/libvirt/images/top.qcow2' index='1'/>
  <backingStore type='file' index='2'>
    <format type='qcow2'/>
    <source file='/var/lib/libvirt/images/mid.qcow2'/>
    <backingStore type='file' index='3'>
      <format type='qcow2'/>
      <source file='/var/lib/libvirt/images/base.qcow2'/>
      <backingStore/>
    </backingStore>
  </backingStore>
  <target dev='vda' bus='virtio'/>
</disk>
";
    assert_eq!(out.xml, expected);
    assert!(out.diagnostics.is_empty());
}

#[test]
fn truncated_headers_never_panic() {
    let head = std::fs::read(format!("{FIXTURES}/top.qcow2.head")).unwrap();
    let (full, _) = probe_bytes(&head, None);
    // The header is complete once the backing name (the last thing read) is in.
    let off = u64::from_be_bytes(head[8..16].try_into().unwrap()) as usize;
    let len = u32::from_be_bytes(head[16..20].try_into().unwrap()) as usize;
    let complete = off + len;
    for cut in 0..head.len() {
        let bytes = &head[..cut];
        let r = image::probe_with(
            Some(cut as u64),
            |off, len| -> Result<Vec<u8>, std::convert::Infallible> {
                let s = (off as usize).min(bytes.len());
                let e = (off.saturating_add(len) as usize).min(bytes.len());
                Ok(bytes[s..e].to_vec())
            },
        );
        match r {
            Ok((info, _)) if cut < 4 => {
                assert_eq!(info.format, Format::Raw, "cut {cut}: no magic, no header")
            }
            Ok((info, _)) => {
                assert!(
                    cut >= complete,
                    "cut {cut}: facts from a header cut before byte {complete}"
                );
                assert_eq!(info, full, "cut {cut}");
            }
            Err(e) => {
                assert!(cut < complete, "cut {cut}: {e}");
                assert!(e.to_string().contains("truncated"), "cut {cut}: {e}");
            }
        }
    }
}

// ---- live tests with qemu-img ----

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn qimg(dir: &Path, args: &[&str]) {
    let out = run(Command::new("qemu-img").current_dir(dir).args(args));
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new(env!("CARGO_BIN_EXE_backing-chain")).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn three_deep(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let base = dir.join("base.qcow2");
    let mid = dir.join("mid.qcow2");
    let top = dir.join("top.qcow2");
    qimg(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            base.to_str().unwrap(),
            "100G",
        ],
    );
    qimg(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            mid.to_str().unwrap(),
        ],
    );
    // top names mid relatively.
    qimg(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            "mid.qcow2",
            top.to_str().unwrap(),
        ],
    );
    (base, mid, top)
}

#[test]
fn live_probe_matches_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, mid, top) = three_deep(dir.path());
    for p in [&base, &mid, &top] {
        let (code, out, err) = cli(&["probe", "--json", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let ours: Value = serde_json::from_str(&out).unwrap();
        let ours = &ours[0];
        let oracle =
            run(Command::new("qemu-img").args(["info", "--output=json", p.to_str().unwrap()]));
        let oracle: Value = serde_json::from_slice(&oracle.stdout).unwrap();
        assert_eq!(overlap(ours, &oracle), vec![], "{}", p.display());
        // A 100 GB image costs a few KiB.
        assert!(ours["bytes-read"].as_u64().unwrap() <= 8192, "{ours}");
    }
}

#[test]
fn live_chain_matches_qemu_img_backing_chain() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, _, top) = three_deep(dir.path());
    let (code, out, err) = cli(&["chain", "--json", top.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let ours: Value = serde_json::from_str(&out).unwrap();
    let oracle = run(Command::new("qemu-img").args([
        "info",
        "--backing-chain",
        "--output=json",
        top.to_str().unwrap(),
    ]));
    let oracle: Value = serde_json::from_slice(&oracle.stdout).unwrap();
    let oracle_names: Vec<&str> = oracle
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap())
        .collect();
    let ours_names: Vec<&str> = ours[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap())
        .collect();
    assert_eq!(ours_names, oracle_names);
    assert_eq!(ours[0]["status"], "ok");
}

#[test]
fn live_missing_base_exits_1() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, _, top) = three_deep(dir.path());
    std::fs::remove_file(&base).unwrap();
    let (code, out, _) = cli(&["chain", "--json", top.to_str().unwrap()]);
    assert_eq!(code, 1);
    let ours: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ours[0]["status"], "missing");
    assert_eq!(ours[0]["images"].as_array().unwrap().len(), 2);
    assert!(ours[0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["code"] == "missing-backing"));
}

#[test]
fn unreadable_input_exits_2() {
    let (code, _, err) = cli(&["probe", "/nonexistent/x.qcow2"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.qcow2"), "{err}");
    let (code, _, err) = cli(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("'frobnicate'"), "{err}");
    assert!(err.contains("Usage: backing-chain"), "{err}");
}

#[test]
fn live_xml_passes_libvirt_schema() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, _, top) = three_deep(dir.path());
    let domain = format!(
        "<domain type='kvm'>\n  <name>t</name>\n  <memory>1048576</memory>\n  <os>\n    <type>hvm</type>\n  </os>\n  <devices>\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>\n</domain>\n",
        top.display()
    );
    let dpath = dir.path().join("domain.xml");
    std::fs::write(&dpath, &domain).unwrap();
    let (code, out, err) = cli(&[
        "xml",
        "--domain",
        dpath.to_str().unwrap(),
        top.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("<backingStore type='file'").count(), 2, "{out}");
    assert!(
        out.contains(&format!(
            "<source file='{}'/>",
            dir.path().join("base.qcow2").display()
        )),
        "{out}"
    );
    // libvirt's RelaxNG schema (skipped, visibly, without xmllint or schemas).
    relaxng(&out, "domain.rng", "populated domain").unwrap_or_else(|e| panic!("{e}\n{out}"));
}

/// A guest can write a qcow2 header into its raw disk (libvirt's docs warn of
/// it). An overlay that records its backing as raw must get `<format
/// type='raw'/>` and the backing name inside that "header" is not followed.
#[test]
fn live_raw_recorded_backing_with_qcow2_header_stays_raw() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("secret.qcow2");
    let disk = d.join("disk.img");
    let top = d.join("top.qcow2");
    qimg(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            secret.to_str().unwrap(),
            "1G",
        ],
    );
    // "disk.img" is a raw disk whose guest wrote a qcow2 header naming secret.qcow2.
    qimg(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            secret.to_str().unwrap(),
            disk.to_str().unwrap(),
        ],
    );
    qimg(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            disk.to_str().unwrap(),
            top.to_str().unwrap(),
        ],
    );
    let (_, out, err) = cli(&[
        "xml",
        "--no-index",
        top.to_str().unwrap(),
        secret.to_str().unwrap(),
    ]);
    let top_disk = out
        .split("</disk>")
        .find(|d| d.contains(&format!("<source file='{}'/>", top.display())))
        .unwrap();
    assert_eq!(
        top_disk.matches("<backingStore type='file'>").count(),
        1,
        "{out}\n{err}"
    );
    assert!(top_disk.contains("<format type='raw'/>"), "{out}");
    assert!(!top_disk.contains("secret.qcow2"), "{out}");
    // secret.qcow2 is not part of top's chain: qemu-img agrees (it opens disk.img as raw).
    let oracle = run(Command::new("qemu-img").args([
        "info",
        "--backing-chain",
        "--output=json",
        top.to_str().unwrap(),
    ]));
    let oracle: Value = serde_json::from_slice(&oracle.stdout).unwrap();
    assert_eq!(oracle.as_array().unwrap().len(), 2);
    let (_, out, _) = cli(&["chain", "--json", top.to_str().unwrap()]);
    let ours: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ours[0]["images"].as_array().unwrap().len(), 2, "{ours}");
    assert!(
        ours[0]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "backing-not-followed"),
        "{ours}"
    );
}

/// Reparenting (the user's mapping) overrides the header, and the fix
/// command rebases onto the chosen image, not the name the header records.
#[test]
fn fixture_mapping_reparents_and_the_fix_names_the_chosen_image() {
    let images: Vec<Image> = ["top", "mid", "base"]
        .iter()
        .map(|n| fixture_image(n))
        .collect();
    let opts = chain::BuildOptions {
        mapping: vec![("top.qcow2".into(), "base.qcow2".into())],
        ..Default::default()
    };
    let forest = chain::build_with(images, &opts);
    let top = forest
        .chains
        .iter()
        .find(|c| forest.images[c.top].filename == "top.qcow2")
        .unwrap();
    let names: Vec<&str> = top
        .layers
        .iter()
        .map(|&l| forest.images[l].filename.as_str())
        .collect();
    assert_eq!(names, ["top.qcow2", "base.qcow2"]);
    let d = top
        .diagnostics
        .iter()
        .find(|d| d.code == Code::BackingChosen)
        .expect("backing-chosen");
    assert_eq!(
        d.fix.as_deref(),
        Some("qemu-img rebase -u -f qcow2 -F qcow2 -b base.qcow2 top.qcow2")
    );
    // mid.qcow2 is now a top of its own.
    assert!(forest
        .chains
        .iter()
        .any(|c| forest.images[c.top].filename == "mid.qcow2"));
}
