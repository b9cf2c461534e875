//! The `xml` command: modes, exit codes, stdin, volume and qemu-img JSON
//! inputs, usage errors. Needs qemu-img to make real images (skipped,
//! visibly, without it).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

fn run(args: &[&str], stdin: Option<&str>) -> (String, String, i32) {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = c.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    let o = c.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

fn make_chain(d: &Path) -> String {
    let q = |args: &[&str]| {
        assert!(Command::new("qemu-img")
            .current_dir(d)
            .args(args)
            .status()
            .unwrap()
            .success());
    };
    q(&["create", "-q", "-f", "qcow2", "base.qcow2", "1M"]);
    q(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        "base.qcow2",
        "top.qcow2",
    ]);
    d.join("top.qcow2").to_str().unwrap().to_string()
}

fn disk_doc(top: &str, backing: Option<&str>) -> String {
    let chain = backing.map_or(String::new(), |b| {
        format!("\n  <backingStore type='file'>\n    <format type='qcow2'/>\n    <source file='{b}'/>\n    <backingStore/>\n  </backingStore>")
    });
    format!("<disk type='file' device='disk'>\n  <driver name='qemu' type='qcow2'/>\n  <source file='{top}'/>{chain}\n  <target dev='vda' bus='virtio'/>\n</disk>\n")
}

#[test]
fn validate_exits_1_on_a_mismatch_and_0_on_a_match() {
    if !tool("qemu-img") {
        common::skip("xml CLI tests need qemu-img, which is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let top = make_chain(tmp.path());
    let base = format!("{}/base.qcow2", tmp.path().display());
    let good = disk_doc(&top, Some(&base));
    let bad = disk_doc(&top, Some("/elsewhere/base.qcow2"));

    let (out, err, code) = run(
        &["xml", "--mode", "validate", "--domain", "-", &top],
        Some(&good),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, good);

    let (out, err, code) = run(
        &["xml", "--mode", "validate", "--domain", "-", &top],
        Some(&bad),
    );
    assert_eq!(code, 1);
    assert_eq!(out, bad, "validate alone changes nothing");
    assert!(
        err.contains("chain-mismatch") && err.contains("/elsewhere/base.qcow2"),
        "{err}"
    );

    let (out, _, code) = run(
        &[
            "xml",
            "--mode",
            "validate",
            "--replace",
            "--no-index",
            "--domain",
            "-",
            &top,
        ],
        Some(&bad),
    );
    assert_eq!(code, 1, "a mismatch was found, even if replaced");
    assert_eq!(out, good);
}

#[test]
fn populate_flat_and_usage_errors() {
    if !tool("qemu-img") {
        common::skip("xml CLI tests need qemu-img, which is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let top = make_chain(tmp.path());
    let (out, err, code) = run(
        &["xml", "--layout", "flat", "--domain", "-", &top],
        Some(&disk_doc(&top, None)),
    );
    assert_eq!(code, 0, "{err}");
    // Named after the index (the top is 1, its backing 2).
    assert!(out.contains("<alias name='vda[2]' parent='vda'/>"), "{out}");
    assert!(out.contains("<alias parent='vda[2]'/>"), "{out}");

    // No domain: bare <disk> elements for every top.
    let (out, _, code) = run(&["xml", &top], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("<disk type='file' device='disk'>"));

    for args in [
        vec!["xml", "--mode", "check", &top],
        vec!["xml", "--layout", "sideways", &top],
        vec!["xml", "--replace", &top],
        vec!["xml", "--mode", "validate", &top],
    ] {
        let (_, err, code) = run(&args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty());
    }
    // Bad XML: exit 2 with the position.
    let (_, err, code) = run(
        &["xml", "--domain", "-", &top],
        Some("<domain><x></domain>"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("XML error at byte"), "{err}");
}

#[test]
fn volume_and_qemu_img_json_inputs() {
    let vol = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml/volume-gluster.xml");
    let (out, err, code) = run(&["xml", "--domain", vol.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<source protocol='gluster' name='vol1/img3' index='1'>"));
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml/qemu-img-chain.json");
    let disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml/disk.xml");
    let (out, err, code) = run(
        &[
            "xml",
            "--no-index",
            "--domain",
            disk.to_str().unwrap(),
            "--qemu-img-json",
            json.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("<source file='/var/lib/libvirt/images/base.qcow2'/>"),
        "{out}"
    );
}
