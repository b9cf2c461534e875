//! Chains made with qemu-img, followed by the CLI, checked against
//! `qemu-img info --backing-chain --output=json` run on the same files (the
//! oracle): when qemu-img lists a chain, ours must be `ok` with the same
//! images and formats, top → base; when qemu-img fails, ours must not be
//! `ok`. Then the expected diagnostic codes.
//!
//! Without qemu-img every test prints "skipped" and returns.

mod common;
use common::{forget_backing_format, have_qemu_img};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 test path")
}

fn qimg(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img create -f FMT [-F BFMT -b BACKING] PATH [1M]`.
fn create(path: &Path, fmt: &str, backing: Option<(&str, &str)>) {
    let mut a = vec!["create", "-q", "-f", fmt];
    if let Some((b, bf)) = backing {
        a.extend(["-u", "-F", bf, "-b", b]);
    }
    a.push(s(path));
    a.push("1M");
    qimg(&a);
}

/// `qemu-img rebase -u -f qcow2 -F BFMT -b NAME IMAGE`.
fn rebase(img: &Path, name: &str, bfmt: &str) {
    qimg(&[
        "rebase",
        "-u",
        "-f",
        "qcow2",
        "-F",
        bfmt,
        "-b",
        name,
        s(img),
    ]);
}

/// The oracle: (filename, format) top → base, or None when qemu-img fails.
fn oracle(top: &Path) -> Option<Vec<(String, String)>> {
    let out = Command::new("qemu-img")
        .args(["info", "--backing-chain", "--output=json", s(top)])
        .output()
        .expect("qemu-img runs");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("qemu-img JSON");
    let list = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    Some(
        list.iter()
            .map(|i| {
                (
                    i["filename"].as_str().unwrap_or("").to_string(),
                    i["format"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

/// Run `backing-chain chain --json TOPS…`: exit code and one entry per top.
fn ours(tops: &[&Path]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_backing-chain"))
        .arg("chain")
        .arg("--json")
        .args(tops)
        .output()
        .expect("CLI runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "CLI JSON: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        v.as_array().cloned().unwrap_or_default(),
    )
}

fn layers(entry: &Value) -> Vec<(String, String)> {
    entry["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["filename"].as_str().unwrap_or("").to_string(),
                i["format"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn codes(entry: &Value) -> Vec<String> {
    entry["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Compare our chain from `top` with the oracle's; return our entry and exit code.
fn agree(top: &Path) -> (i32, Value) {
    let expect = oracle(top);
    let (code, v) = ours(&[top]);
    assert_eq!(v.len(), 1);
    let e = v[0].clone();
    match expect {
        Some(list) => {
            // qemu-img follows the whole chain: ok, unless libvirt refuses
            // what qemu opens (its own rules: an unrecorded format over a
            // backing with a backing, more than 200 layers).
            assert!(
                ["ok", "unprobed-format", "too-deep"].contains(&e["status"].as_str().unwrap_or("")),
                "qemu-img follows {top:?}; we say {e:#}"
            );
            assert_eq!(layers(&e), list, "chain from {top:?}");
        }
        None => assert_ne!(
            e["status"], "ok",
            "qemu-img fails on {top:?}; we say ok: {e:#}"
        ),
    }
    (code, e)
}

#[test]
fn three_deep_relative_names() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (base, mid, top) = (
        d.path().join("base.qcow2"),
        d.path().join("mid.qcow2"),
        d.path().join("top.qcow2"),
    );
    create(&base, "qcow2", None);
    create(&mid, "qcow2", Some(("base.qcow2", "qcow2")));
    create(&top, "qcow2", Some(("mid.qcow2", "qcow2")));
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    assert_eq!(layers(&e).len(), 3);
    assert!(codes(&e).is_empty(), "{e:#}");
}

#[test]
fn shared_base_two_tops() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.qcow2");
    let t1 = d.path().join("t1.qcow2");
    let t2 = d.path().join("t2.qcow2");
    create(&base, "qcow2", None);
    create(&t1, "qcow2", Some((s(&base), "qcow2")));
    create(&t2, "qcow2", Some(("base.qcow2", "qcow2")));
    agree(&t1);
    agree(&t2);
    let (code, v) = ours(&[&t1, &t2]);
    assert_eq!(code, 0);
    assert_eq!(v.len(), 2);
    assert_eq!(layers(&v[0])[1].0, s(&base));
    assert_eq!(layers(&v[1])[1].0, s(&base));
}

#[test]
fn relative_dotdot_and_sub_directories_and_absolute() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("vm/sub")).unwrap();
    std::fs::create_dir_all(d.path().join("vm/sub2")).unwrap();
    std::fs::create_dir_all(d.path().join("abs")).unwrap();
    let base = d.path().join("abs/base.qcow2");
    let low = d.path().join("vm/sub2/low.qcow2");
    let mid = d.path().join("vm/mid.qcow2");
    let top = d.path().join("vm/sub/top.qcow2");
    create(&base, "qcow2", None);
    create(&low, "qcow2", Some((s(&base), "qcow2")));
    create(&mid, "qcow2", Some(("sub2/low.qcow2", "qcow2")));
    create(&top, "qcow2", Some(("../mid.qcow2", "qcow2")));
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    // The plain join, as qemu-img shows it: no `..` folding.
    assert!(layers(&e)[1].0.ends_with("vm/sub/../mid.qcow2"), "{e:#}");
    assert_eq!(layers(&e).len(), 4);
}

#[test]
fn names_with_spaces_quotes_ampersands_angles_unicode() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base image 'q' \"d\" & <x> ü€.qcow2");
    let top = d.path().join("top $(x) `y` ; é.qcow2");
    create(&base, "qcow2", None);
    create(
        &top,
        "qcow2",
        Some((base.file_name().unwrap().to_str().unwrap(), "qcow2")),
    );
    let (code, _) = agree(&top);
    assert_eq!(code, 0);

    // Without a recorded backing format under a backing that has its own
    // backing: the libvirt refusal, and a fix that works when run by a shell.
    let low = d.path().join("low & 'base'.qcow2");
    create(&low, "qcow2", None);
    rebase(&base, low.file_name().unwrap().to_str().unwrap(), "qcow2");
    forget_backing_format(&top);
    let (code, e) = agree(&top);
    assert_eq!(code, 1);
    let diags = e["diagnostics"].as_array().unwrap();
    let nr = diags
        .iter()
        .find(|d| d["code"] == "backing-format-not-recorded")
        .unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(nr["severity"], "error");
    assert!(nr["message"]
        .as_str()
        .unwrap()
        .contains("was not specified in the image metadata"));
    let fix = nr["fix"].as_str().unwrap();
    let out = Command::new("sh").arg("-c").arg(fix).output().unwrap();
    assert!(
        out.status.success(),
        "fix `{fix}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, e) = agree(&top);
    assert_eq!(code, 0, "after the fix: {e:#}");
    assert!(!codes(&e).contains(&"backing-format-not-recorded".to_string()));
}

#[test]
fn name_of_1023_bytes() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // 4 directories of 200 bytes + a file name, 1023 bytes in all (no
    // component over the 255 bytes a file system allows).
    let dir = "d".repeat(200);
    let rel_dir = format!("{dir}/{dir}/{dir}/{dir}");
    let file = format!("{}.qcow2", "b".repeat(1023 - rel_dir.len() - 1 - 6));
    let rel = format!("{rel_dir}/{file}");
    assert_eq!(rel.len(), 1023);
    std::fs::create_dir_all(d.path().join(&rel_dir)).unwrap();
    let base = d.path().join(&rel);
    let top = d.path().join("top.qcow2");
    create(&base, "qcow2", None);
    create(&top, "qcow2", Some((&rel, "qcow2")));
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    assert_eq!(
        e["images"][0]["backing-filename"].as_str().unwrap().len(),
        1023
    );
}

/// qed and vmdk keep a backing name in a PATH_MAX buffer: qemu opens one of
/// 4,095 bytes and refuses 4,096 (qcow2 and qcow stop at 1,023). The base is
/// not there (no file system takes such a path), so only the top is opened.
#[test]
fn backing_name_limits_of_qed_and_vmdk() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let flat = d.path().join("f.vmdk");
    qimg(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicFlat",
        s(&flat),
        "1M",
    ]);
    let descriptor = std::fs::read_to_string(&flat).unwrap();
    for fmt in ["qed", "vmdk"] {
        for len in [2000, 4095, 4096] {
            let name = format!("{}{}", "d/".repeat((len - 1) / 2), "b".repeat(2 - len % 2));
            assert_eq!(name.len(), len);
            let top = d.path().join(format!("top-{len}.{fmt}"));
            if fmt == "qed" {
                create(&top, "qed", Some((&name, "qcow2")));
            } else {
                let text = descriptor.replace(
                    "parentCID=ffffffff",
                    &format!("parentCID=12345678\nparentFileNameHint=\"{name}\""),
                );
                std::fs::write(&top, text).unwrap();
            }
            let opened = Command::new("qemu-img")
                .args(["info", "--output=json", s(&top)])
                .output()
                .unwrap()
                .status
                .success();
            let (_, v) = ours(&[&top]);
            // Either the chain's diagnostic or the probe's own refusal.
            let too_long = v[0]["diagnostics"].as_array().unwrap().iter().any(|d| {
                d["code"] == "backing-name-too-long"
                    || (d["code"] == "unprobed"
                        && d["message"]
                            .as_str()
                            .unwrap()
                            .contains("backing name of 4096 bytes"))
            });
            assert_eq!(
                opened,
                len <= 4095,
                "{fmt} {len}: qemu-img opened it: {opened}"
            );
            assert_eq!(too_long, !opened, "{fmt} {len}: {:#}", v[0]["diagnostics"]);
        }
    }
}

fn linear(dir: &Path, depth: usize) -> PathBuf {
    let p = |i: usize| dir.join(format!("l{i}.qcow2"));
    create(&p(depth - 1), "qcow2", None);
    for i in (0..depth - 1).rev() {
        create(
            &p(i),
            "qcow2",
            Some((&format!("l{}.qcow2", i + 1), "qcow2")),
        );
    }
    p(0)
}

#[test]
fn depth_50() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let top = linear(d.path(), 50);
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    assert_eq!(layers(&e).len(), 50);
}

#[test]
fn depth_300_is_too_deep_for_libvirt() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let top = linear(d.path(), 300);
    let (code, e) = agree(&top);
    assert_eq!(code, 1, "libvirt's limit is an error");
    assert_eq!(layers(&e).len(), 300);
    assert!(codes(&e).contains(&"too-deep-for-libvirt".to_string()));
    assert_eq!(e["status"], "too-deep", "an error is never ok: {e:#}");
}

#[test]
fn qcow2_on_raw_and_on_other_formats() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("base.raw");
    create(&raw, "raw", None);
    let top = d.path().join("on-raw.qcow2");
    create(&top, "qcow2", Some(("base.raw", "raw")));
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    assert!(codes(&e).is_empty(), "{e:#}");

    for fmt in ["qcow", "qed", "vmdk", "vpc", "vhdx", "vdi", "parallels"] {
        let base = d.path().join(format!("base.{fmt}"));
        let top = d.path().join(format!("on-{fmt}.qcow2"));
        create(&base, fmt, None);
        assert!(probes_as(&base, fmt), "{fmt} base not read as {fmt}");
        create(&top, "qcow2", Some((&format!("base.{fmt}"), fmt)));
        let (code, e) = agree(&top);
        assert_eq!(code, 0, "{e:#}");
    }
}

/// Does our probe read `path` as `fmt`?
fn probes_as(path: &Path, fmt: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_backing-chain"))
        .args(["probe", "--json", s(path)])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0]["format"] == fmt
}

#[test]
fn vmdk_on_vmdk() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.vmdk");
    let top = d.path().join("top.vmdk");
    create(&base, "vmdk", None);
    assert!(probes_as(&base, "vmdk"), "vmdk base not read as vmdk");
    create(&top, "vmdk", Some(("base.vmdk", "vmdk")));
    let (code, e) = agree(&top);
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(layers(&e).len(), 2);
    assert!(
        !codes(&e).contains(&"parent-id-mismatch".to_string()),
        "{e:#}"
    );
    // A new base under the same name: a new CID, no longer the parentCID.
    create(&base, "vmdk", None);
    let (_, e) = agree(&top);
    assert!(
        codes(&e).contains(&"parent-id-mismatch".to_string()),
        "{e:#}"
    );
}

/// The one diagnostic of `code` in a chain entry, with its severity.
fn severity_of(e: &Value, code: &str) -> Option<String> {
    e["diagnostics"]
        .as_array()?
        .iter()
        .find(|d| d["code"] == code)
        .map(|d| d["severity"].as_str().unwrap_or("").to_string())
}

/// libvirt (6.1 and later, `virStorageSourceGetMetadataRecurse`) probes a
/// backing whose format the image does not record, accepts it when the
/// probed image has no backing of its own and refuses the VM when it has
/// one; a qed's backing without the no-probe flag (AUTO_SAFE) is probed and
/// followed, never refused. Images made by qemu-img (the format extension
/// patched out where qemu-img insists on writing it); `tests/libvirt_daemon.rs`
/// checks the same verdicts against a running libvirt.
#[test]
fn unrecorded_formats_follow_libvirts_rules() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    // top(no format) → base: accepted with the probed format (a warning).
    create(&p("base.qcow2"), "qcow2", None);
    create(&p("top1.qcow2"), "qcow2", Some(("base.qcow2", "qcow2")));
    forget_backing_format(&p("top1.qcow2"));
    let (code, e) = agree(&p("top1.qcow2"));
    assert_eq!(e["status"], "ok", "{e:#}");
    assert_eq!(code, 0);
    assert_eq!(
        severity_of(&e, "backing-format-not-recorded").as_deref(),
        Some("warning"),
        "{e:#}"
    );

    // top(no format) → mid → base: refused.
    create(&p("mid.qcow2"), "qcow2", Some(("base.qcow2", "qcow2")));
    create(&p("top2.qcow2"), "qcow2", Some(("mid.qcow2", "qcow2")));
    forget_backing_format(&p("top2.qcow2"));
    let (code, e) = agree(&p("top2.qcow2"));
    assert_eq!(e["status"], "unprobed-format", "{e:#}");
    assert_eq!(code, 1);
    assert_eq!(
        severity_of(&e, "backing-format-not-recorded").as_deref(),
        Some("error")
    );
    assert_eq!(layers(&e).len(), 3, "the chain is still shown whole");
    // Both ways out: the rebase command, and the whole chain in the domain
    // XML (tests/libvirt_daemon.rs starts such a VM from our XML).
    let nr = e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "backing-format-not-recorded")
        .unwrap();
    assert!(nr["fix"]
        .as_str()
        .unwrap()
        .starts_with("qemu-img rebase -u"));
    assert!(
        nr["message"].as_str().unwrap().contains("<backingStore>"),
        "{nr:#}"
    );

    // top → mid(no format) → base: refused at the second link.
    create(&p("mid3.qcow2"), "qcow2", Some(("base.qcow2", "qcow2")));
    forget_backing_format(&p("mid3.qcow2"));
    create(&p("top3.qcow2"), "qcow2", Some(("mid3.qcow2", "qcow2")));
    let (_, e) = agree(&p("top3.qcow2"));
    // mid3 → base: the probed base has no backing: accepted.
    assert_eq!(e["status"], "ok", "{e:#}");

    // top(no format) → raw base: raw either way (a note).
    create(&p("base.raw"), "raw", None);
    create(&p("top4.qcow2"), "qcow2", Some(("base.raw", "raw")));
    forget_backing_format(&p("top4.qcow2"));
    let (code, e) = agree(&p("top4.qcow2"));
    assert_eq!((code, e["status"].as_str()), (0, Some("ok")), "{e:#}");
    assert_eq!(
        severity_of(&e, "backing-format-not-recorded").as_deref(),
        Some("info")
    );

    // vmdk → vmdk → vmdk: a vmdk never records its backing's format (qemu
    // reports "vmdk", libvirt probes): refused.
    create(&p("v0.vmdk"), "vmdk", None);
    create(&p("v1.vmdk"), "vmdk", Some(("v0.vmdk", "vmdk")));
    create(&p("v2.vmdk"), "vmdk", Some(("v1.vmdk", "vmdk")));
    let (code, e) = agree(&p("v2.vmdk"));
    assert_eq!(e["status"], "unprobed-format", "{e:#}");
    assert_eq!(code, 1);
    // No header can record it: no rebase command is offered.
    let nr = e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "backing-format-not-recorded")
        .unwrap();
    assert!(nr["fix"].is_null(), "{nr:#}");
    // vmdk → vmdk: accepted.
    let (_, e) = agree(&p("v1.vmdk"));
    assert_eq!(e["status"], "ok", "{e:#}");

    // qed(format unrecorded) → qcow2 → qcow2: AUTO_SAFE, starts.
    let top5 = p("top5.qed");
    let a = [
        "create",
        "-q",
        "-f",
        "qed",
        "-u",
        "-F",
        "qcow2",
        "-b",
        "mid.qcow2",
        s(&top5),
        "1M",
    ];
    qimg(&a);
    let (code, e) = agree(&p("top5.qed"));
    assert_eq!((code, e["status"].as_str()), (0, Some("ok")), "{e:#}");
    assert_eq!(
        severity_of(&e, "backing-format-not-recorded").as_deref(),
        Some("info")
    );

    // qcow (v1) → qcow2 → qcow2: refused, as any unrecorded format.
    let top6 = p("top6.qcow");
    let a = [
        "create",
        "-q",
        "-f",
        "qcow",
        "-u",
        "-F",
        "qcow2",
        "-b",
        "mid.qcow2",
        s(&top6),
        "1M",
    ];
    qimg(&a);
    let (_, e) = agree(&p("top6.qcow"));
    assert_eq!(e["status"], "unprobed-format", "{e:#}");
}

#[test]
fn qed_and_qcow_without_recorded_format() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for fmt in ["qed", "qcow"] {
        let low = d.path().join(format!("low-{fmt}.qcow2"));
        let base = d.path().join(format!("base-{fmt}.qcow2"));
        let top = d.path().join(format!("top.{fmt}"));
        create(&low, "qcow2", None);
        create(&base, "qcow2", Some((s(&low), "qcow2")));
        // Neither qcow (v1) nor qed stores a backing format other than
        // "raw": qemu-img wants -F, then keeps only the name.
        let bname = base.file_name().unwrap().to_str().unwrap().to_string();
        let a = [
            "create",
            "-q",
            "-f",
            fmt,
            "-u",
            "-F",
            "qcow2",
            "-b",
            &bname,
            s(&top),
            "1M",
        ];
        qimg(&a);
        assert!(probes_as(&top, fmt), "{fmt} top not read as {fmt}");
        let (_, e) = agree(&top);
        assert_eq!(layers(&e).len(), 3);
        assert!(e["images"][0]["backing-filename-format"].is_null(), "{e:#}");
        assert!(
            codes(&e).contains(&"backing-format-not-recorded".to_string()),
            "{e:#}"
        );
    }
}

#[test]
fn missing_base_and_missing_middle() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let top = linear(d.path(), 3);
    std::fs::remove_file(d.path().join("l2.qcow2")).unwrap();
    let (code, e) = agree(&top);
    assert_eq!(code, 1);
    assert_eq!(e["status"], "missing");
    assert_eq!(layers(&e).len(), 2);
    assert!(codes(&e).contains(&"missing-backing".to_string()));

    let d = tempfile::tempdir().unwrap();
    let top = linear(d.path(), 3);
    std::fs::remove_file(d.path().join("l1.qcow2")).unwrap();
    let (code, e) = agree(&top);
    assert_eq!(code, 1);
    assert_eq!(e["status"], "missing");
    assert_eq!(layers(&e).len(), 1);
    let missing = e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "missing-backing")
        .unwrap_or_else(|| panic!("{e:#}"));
    let msg = missing["message"].as_str().unwrap();
    assert!(
        msg.contains("l1.qcow2") && msg.contains("l0.qcow2"),
        "{msg}"
    );
}

#[test]
fn loops_of_one_two_three_including_dot_slash() {
    if !have_qemu_img() {
        return;
    }
    for k in 1..=3usize {
        for dotted in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let p = |i: usize| d.path().join(format!("c{i}.qcow2"));
            for i in 0..k {
                create(&p(i), "qcow2", None);
            }
            for i in 0..k {
                let name = format!("{}c{}.qcow2", if dotted { "./" } else { "" }, (i + 1) % k);
                rebase(&p(i), &name, "qcow2");
            }
            let (code, e) = agree(&p(0));
            assert_eq!(code, 1);
            assert_eq!(e["status"], "loop", "k={k} dotted={dotted}: {e:#}");
            assert_eq!(layers(&e).len(), k, "k={k} dotted={dotted}");
            let lp = e["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["code"] == "backing-loop")
                .unwrap_or_else(|| panic!("{e:#}"));
            let msg = lp["message"].as_str().unwrap();
            for i in 0..k {
                assert!(msg.contains(&format!("c{i}.qcow2")), "{msg}");
            }
            // qemu-img compares strings: `./c0` grows until the name is too
            // long. We see the same file.
            assert_eq!(
                codes(&e).contains(&"same-file".to_string()),
                dotted,
                "{e:#}"
            );
        }
    }
}

#[test]
fn json_and_url_names_written_with_rebase() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.qcow2");
    let top = d.path().join("top.qcow2");
    create(&base, "qcow2", None);
    create(&top, "qcow2", None);
    let json = format!(
        "json:{{\"file\":{{\"driver\":\"file\",\"filename\":{}}}}}",
        serde_json::to_string(s(&base)).unwrap()
    );
    rebase(&top, &json, "qcow2");
    let (code, e) = agree(&top);
    assert_eq!(code, 0);
    assert_eq!(layers(&e)[1].0, s(&base));

    // Remote names: never opened by us; qemu-img cannot reach them either.
    for (url, extra) in [
        ("nbd://127.0.0.1:1/export", None),
        ("nbd+unix:///export?socket=/nonexistent.sock", None),
        (
            "http://user:pw@127.0.0.1:1/disk.img",
            Some("credentials-dropped"),
        ),
        (
            "json:{\"file\":{\"driver\":\"nbd\",\"host\":\"127.0.0.1\",\"port\":\"1\"}}",
            None,
        ),
    ] {
        rebase(&top, url, "qcow2");
        let (code, e) = agree(&top);
        assert_eq!(code, 0, "{url}: {e:#}");
        assert_eq!(e["status"], "remote", "{url}");
        let c = codes(&e);
        assert!(c.contains(&"remote-backing".to_string()), "{url}: {c:?}");
        if let Some(x) = extra {
            assert!(c.contains(&x.to_string()), "{url}: {c:?}");
            // The password stays in the header dump, never in a diagnostic.
            assert!(!e["diagnostics"].to_string().contains("pw@"), "{e:#}");
        }
    }
}

#[test]
fn format_mismatch_raw_recorded_qcow2_header() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.qcow2");
    let top = d.path().join("top.qcow2");
    create(&base, "qcow2", None);
    create(&top, "qcow2", Some(("base.qcow2", "raw")));
    let (_, v) = ours(&[&top]);
    let e = &v[0];
    let m = e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "backing-format-mismatch")
        .unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(m["severity"], "warning");
    assert!(m["message"].as_str().unwrap().contains("guest"));
    // qemu-img opens it as raw: a chain of 2, the base shown as raw.
    let o = oracle(&top).expect("qemu-img follows it");
    assert_eq!(o.len(), 2);
    assert_eq!(o[1].1, "raw");
}

#[test]
fn unreadable_backing_header_and_encrypted_base() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // A backing file with a qcow2 magic and a header cut short.
    let bad = d.path().join("bad.qcow2");
    std::fs::write(&bad, b"QFI\xfb\0\0\0\x03short").unwrap();
    let top = d.path().join("top.qcow2");
    create(&top, "qcow2", Some(("bad.qcow2", "qcow2")));
    let (code, e) = agree(&top);
    assert_eq!(code, 1);
    // Unreadable, not "unprobed-format" (libvirt's refusal of a probed format).
    assert_eq!(e["status"], "unreadable", "{e:#}");
    assert!(codes(&e).contains(&"unprobed".to_string()));

    // An encrypted base: qemu-img info lists it without the secret (it reads
    // the headers only), and so do we, with a note that it needs one.
    let enc = d.path().join("enc.qcow2");
    qimg(&[
        "create",
        "-q",
        "--object",
        "secret,id=sec0,data=123456",
        "-f",
        "qcow2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=sec0",
        s(&enc),
        "1M",
    ]);
    let top2 = d.path().join("top2.qcow2");
    create(&top2, "qcow2", Some(("enc.qcow2", "qcow2")));
    let (code, e) = agree(&top2);
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(layers(&e).len(), 2);
    assert!(codes(&e).contains(&"encrypted".to_string()), "{e:#}");
}

#[test]
fn colon_in_a_relative_name_needs_dot_slash() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("a:b.qcow2");
    let top = d.path().join("top.qcow2");
    create(&base, "qcow2", None);
    create(&top, "qcow2", None);
    rebase(&top, "a:b.qcow2", "qcow2");
    let (code, e) = agree(&top);
    assert_eq!(code, 1);
    assert_eq!(e["status"], "bad-name");
    let bad = e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "bad-backing-name")
        .unwrap_or_else(|| panic!("{e:#}"));
    let fix = bad["fix"].as_str().expect("a fix");
    let out = Command::new("sh").arg("-c").arg(fix).output().unwrap();
    assert!(
        out.status.success(),
        "{fix}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, e) = agree(&top);
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(layers(&e).len(), 2);
}

/// `chain --untrusted` never opens a backing name it flags: here a FIFO
/// outside the image's directory, which would block the CLI if opened.
#[test]
fn untrusted_backing_is_never_opened() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("a")).unwrap();
    std::fs::create_dir(d.path().join("b")).unwrap();
    let fifo = d.path().join("b/trap");
    let st = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(st.success());
    let top = d.path().join("a/top.qcow2");
    create(&top, "qcow2", Some(("../b/trap", "raw")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_backing-chain"))
        .args(["chain", "--json", "--untrusted", s(&top)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("CLI runs");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            // Unblock it for good measure, then fail.
            panic!("the CLI opened the untrusted FIFO (still blocked after 20 s)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let e = &v[0];
    assert_eq!(status.code(), Some(1));
    assert_eq!(e["status"], "untrusted", "{e:#}");
    assert_eq!(layers(e).len(), 1);
    let c = codes(e);
    assert!(c.contains(&"untrusted-backing-name".to_string()), "{e:#}");
    assert!(c.contains(&"backing-not-opened".to_string()), "{e:#}");
}
