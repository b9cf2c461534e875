//! Header probes against `qemu-img info --output=json` (the oracle) on
//! images `qemu-img` creates in a temp dir, plus spec-built headers for the
//! formats it cannot create, plus truncated / hostile headers.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::image::{probe_with, probe_with_opts, Format, ImageInfo, ProbeOptions, ProbeOrIo, Reads, Step};
use serde_json::{json, Value};

fn have_qemu_img() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: qemu-img not found");
    }
    ok
}

fn run(args: &[&str], dir: &Path) {
    let out = Command::new("qemu-img").args(args).current_dir(dir).output().expect("qemu-img runs");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `qemu-img info --output=json [-f fmt] file`, run in `dir`.
fn oracle(dir: &Path, file: &str, fmt: Option<&str>) -> Value {
    let mut args = vec!["info", "--output=json"];
    if let Some(f) = fmt {
        args.extend(["-f", f]);
    }
    args.push(file);
    let out = Command::new("qemu-img").args(&args).current_dir(dir).output().expect("qemu-img runs");
    assert!(out.status.success(), "qemu-img info {file}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("qemu-img prints JSON")
}

fn read_at(f: &File, off: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], off + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// Probe a file through `probe_with` with positioned reads: (facts, bytes read).
fn probe_file(path: &Path, opts: ProbeOptions) -> (ImageInfo, u64) {
    let f = File::open(path).expect("open");
    let len = f.metadata().expect("metadata").len();
    match probe_with_opts(Some(len), &opts, |o, l| read_at(&f, o, l)) {
        Ok(x) => x,
        Err(ProbeOrIo::Probe(e)) => panic!("{}: {e}", path.display()),
        Err(ProbeOrIo::Io(e)) => panic!("{}: {e}", path.display()),
    }
}

/// The keys both print must be equal (absent = absent; `encrypted` absent = false).
fn assert_same(ours: &ImageInfo, qemu: &Value, what: &str) {
    let o = serde_json::to_value(ours).expect("serialize");
    for key in ["format", "virtual-size", "cluster-size", "backing-filename", "backing-filename-format", "dirty-flag"] {
        assert_eq!(o.get(key), qemu.get(key), "{what}: key {key}\nours: {o}\nqemu: {qemu}");
    }
    let enc = |v: &Value| v.get("encrypted").and_then(Value::as_bool).unwrap_or(false);
    assert_eq!(enc(&o), enc(qemu), "{what}: encrypted");
}

/// `format-specific` equal to qemu's, with extent file names compared by
/// base name (qemu prints the path it opened).
fn assert_same_specific(ours: &ImageInfo, qemu: &Value, what: &str) {
    let mut o = serde_json::to_value(ours).expect("serialize")["format-specific"].clone();
    let mut q = qemu["format-specific"].clone();
    for v in [&mut o, &mut q] {
        if let Some(exts) = v.pointer_mut("/data/extents").and_then(Value::as_array_mut) {
            for e in exts {
                if let Some(f) = e.get("filename").and_then(Value::as_str) {
                    let base = Path::new(f).file_name().map(|s| s.to_string_lossy().into_owned());
                    e["filename"] = json!(base);
                }
            }
        }
    }
    assert_eq!(o, q, "{what}: format-specific");
}

struct Case {
    /// File created, and the `qemu-img create` arguments after `create`.
    file: &'static str,
    args: &'static [&'static str],
    /// Compare `format-specific` too.
    specific: bool,
    /// Budget of bytes read.
    budget: u64,
}

fn check_cases(cases: &[Case]) {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "raw", "base.raw", "64M"], dir.path());
    run(&["create", "-q", "-f", "qcow2", "base.qcow2", "64M"], dir.path());
    for c in cases {
        let mut args = vec!["create", "-q"];
        args.extend(c.args);
        run(&args, dir.path());
        let path: PathBuf = dir.path().join(c.file);
        let (info, read) = probe_file(&path, ProbeOptions::default());
        let q = oracle(dir.path(), c.file, None);
        assert_same(&info, &q, c.file);
        if c.specific {
            assert_same_specific(&info, &q, c.file);
        }
        assert!(read <= c.budget, "{}: read {read} bytes, budget {}", c.file, c.budget);
        eprintln!("{}: {} bytes read", c.file, read);
    }
}

#[test]
fn qcow2_against_qemu_img() {
    let k4 = 4096 + 1024;
    check_cases(&[
        Case { file: "v2.qcow2", args: &["-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "100G"], specific: true, budget: 4096 },
        Case { file: "v3.qcow2", args: &["-f", "qcow2", "-o", "compat=1.1", "v3.qcow2", "100G"], specific: true, budget: 4096 },
        Case { file: "c512.qcow2", args: &["-f", "qcow2", "-o", "cluster_size=512", "c512.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "c2m.qcow2", args: &["-f", "qcow2", "-o", "cluster_size=2M", "c2m.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "lazy.qcow2", args: &["-f", "qcow2", "-o", "lazy_refcounts=on", "lazy.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "l2.qcow2", args: &["-f", "qcow2", "-o", "extended_l2=on", "l2.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "zstd.qcow2", args: &["-f", "qcow2", "-o", "compression_type=zstd", "zstd.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "rc1.qcow2", args: &["-f", "qcow2", "-o", "refcount_bits=1", "rc1.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "rc64.qcow2", args: &["-f", "qcow2", "-o", "refcount_bits=64", "rc64.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "df.qcow2", args: &["-f", "qcow2", "-o", "data_file=df.raw", "df.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "dfr.qcow2", args: &["-f", "qcow2", "-o", "data_file=dfr.raw,data_file_raw=on", "dfr.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "prealloc.qcow2", args: &["-f", "qcow2", "-o", "preallocation=metadata", "prealloc.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "aes.qcow2", args: &["-f", "qcow2", "--object", "secret,id=sec0,data=abc", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", "aes.qcow2", "1G"], specific: true, budget: 4096 },
        Case { file: "luks.qcow2", args: &["-f", "qcow2", "--object", "secret,id=sec0,data=abc", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "luks.qcow2", "1G"], specific: true, budget: k4 },
        Case { file: "b.qcow2", args: &["-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "b.qcow2"], specific: true, budget: 4096 },
        Case { file: "braw.qcow2", args: &["-f", "qcow2", "-b", "base.raw", "-F", "raw", "braw.qcow2"], specific: true, budget: 4096 },
        Case { file: "b512.qcow2", args: &["-f", "qcow2", "-o", "cluster_size=512", "-b", "base.qcow2", "-F", "qcow2", "b512.qcow2"], specific: true, budget: 4096 },
    ]);
}

#[test]
fn qcow2_snapshots_only_when_asked() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "qcow2", "s.qcow2", "1G"], dir.path());
    run(&["snapshot", "-c", "first", "s.qcow2"], dir.path());
    run(&["snapshot", "-c", "second-with-a-longer-name", "s.qcow2"], dir.path());
    let path = dir.path().join("s.qcow2");
    let (plain, plain_read) = probe_file(&path, ProbeOptions::default());
    assert!(plain.snapshots.is_none());
    let (info, read) = probe_file(&path, ProbeOptions { snapshots: true });
    let q = oracle(dir.path(), "s.qcow2", None);
    assert_eq!(info.snapshots.as_ref().map(|s| json!(s)), q.get("snapshots").cloned());
    assert!(read > plain_read, "the snapshot table costs a read");
    assert!(read <= 4096 + 4096, "snapshot table read {read} bytes");
}

/// VHDX: the first 4 KiB, the two 4 KiB headers, then under 512 bytes of
/// region table, metadata table and items — never the megabytes between.
const VHDX_BUDGET: u64 = 3 * 4096 + 512;

#[test]
fn other_formats_against_qemu_img() {
    check_cases(&[
        Case { file: "a.qcow", args: &["-f", "qcow", "a.qcow", "100G"], specific: false, budget: 4096 },
        Case { file: "b.qcow", args: &["-f", "qcow", "-b", "base.qcow2", "-F", "qcow2", "b.qcow"], specific: false, budget: 4096 },
        Case { file: "a.qed", args: &["-f", "qed", "a.qed", "100G"], specific: false, budget: 4096 },
        Case { file: "b.qed", args: &["-f", "qed", "-b", "base.qcow2", "-F", "qcow2", "b.qed"], specific: false, budget: 4096 },
        Case { file: "braw.qed", args: &["-f", "qed", "-b", "base.raw", "-F", "raw", "braw.qed"], specific: false, budget: 4096 },
        Case { file: "a.vdi", args: &["-f", "vdi", "a.vdi", "100G"], specific: false, budget: 4096 },
        Case { file: "s.vdi", args: &["-f", "vdi", "-o", "static=on", "s.vdi", "16M"], specific: false, budget: 4096 },
        Case { file: "a.parallels", args: &["-f", "parallels", "a.parallels", "100G"], specific: false, budget: 4096 },
        Case { file: "a.luks", args: &["-f", "luks", "--object", "secret,id=sec0,data=abc", "-o", "key-secret=sec0,iter-time=10", "a.luks", "16M"], specific: true, budget: 4096 },
        Case { file: "a.vpc", args: &["-f", "vpc", "a.vpc", "100G"], specific: false, budget: 4096 },
        Case { file: "a.vhdx", args: &["-f", "vhdx", "a.vhdx", "100G"], specific: false, budget: VHDX_BUDGET },
        Case { file: "f.vhdx", args: &["-f", "vhdx", "-o", "subformat=fixed", "f.vhdx", "16M"], specific: false, budget: VHDX_BUDGET },
        Case { file: "r.raw", args: &["-f", "raw", "r.raw", "64M"], specific: false, budget: 4096 + 512 + 2048 },
    ]);
}

#[test]
fn vmdk_against_qemu_img() {
    check_cases(&[
        Case { file: "sparse.vmdk", args: &["-f", "vmdk", "sparse.vmdk", "100G"], specific: true, budget: 4096 },
        Case { file: "flat.vmdk", args: &["-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "64M"], specific: true, budget: 4096 },
        Case { file: "tgf.vmdk", args: &["-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat", "tgf.vmdk", "64M"], specific: true, budget: 4096 },
        Case { file: "stream.vmdk", args: &["-f", "vmdk", "-o", "subformat=streamOptimized", "stream.vmdk", "100G"], specific: true, budget: 4096 + 1536 },
        Case { file: "child.vmdk", args: &["-f", "vmdk", "-b", "sparse.vmdk", "-F", "vmdk", "child.vmdk"], specific: true, budget: 4096 },
    ]);
}

/// twoGbMaxExtentSparse: qemu opens the extents to learn their grain size;
/// a header probe reads only the descriptor, so `cluster-size` (top level and
/// per extent) is the one deliberate difference. Everything else matches.
#[test]
fn vmdk_two_gb_sparse_extents() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "t.vmdk", "5G"], dir.path());
    let (info, _) = probe_file(&dir.path().join("t.vmdk"), ProbeOptions::default());
    let q = oracle(dir.path(), "t.vmdk", None);
    assert_eq!(info.cluster_size, None);
    let ours = serde_json::to_value(&info).expect("json");
    let qe = q.pointer("/format-specific/data/extents").and_then(Value::as_array).expect("qemu extents");
    let oe = ours.pointer("/format-specific/data/extents").and_then(Value::as_array).expect("our extents");
    assert_eq!(qe.len(), oe.len());
    for (a, b) in qe.iter().zip(oe) {
        assert_eq!(a["virtual-size"], b["virtual-size"]);
        assert_eq!(a["format"], b["format"]);
    }
    assert_eq!(ours.pointer("/format-specific/data/cid"), q.pointer("/format-specific/data/cid"));
}

/// A fixed VHD keeps its footer only at the end: qemu-img probes it as raw
/// (deliberate difference: we say vpc); with `-f vpc` the facts must match.
#[test]
fn vpc_fixed_from_the_footer() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, opts) in [("f.vpc", "subformat=fixed"), ("fs.vpc", "subformat=fixed,force_size=on")] {
        run(&["create", "-q", "-f", "vpc", "-o", opts, file, "1G"], dir.path());
        let (info, read) = probe_file(&dir.path().join(file), ProbeOptions::default());
        let probed = oracle(dir.path(), file, None);
        assert_eq!(probed["format"], "raw", "qemu-img probes a fixed VHD as raw");
        let q = oracle(dir.path(), file, Some("vpc"));
        assert_same(&info, &q, file);
        // The first 4 KiB (nothing there), then the last 512 bytes and the ISO sector.
        assert!(read <= 4096 + 512 + 2048, "{file}: read {read}");
        eprintln!("{file}: {read} bytes read");
    }
}

#[test]
fn vmdk_backing_identity() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "vmdk", "p.vmdk", "1G"], dir.path());
    run(&["create", "-q", "-f", "vmdk", "-b", "p.vmdk", "-F", "vmdk", "c.vmdk"], dir.path());
    let (p, _) = probe_file(&dir.path().join("p.vmdk"), ProbeOptions::default());
    let (c, _) = probe_file(&dir.path().join("c.vmdk"), ProbeOptions::default());
    let pid = p.identity.and_then(|i| i.id).expect("parent CID");
    let qp = oracle(dir.path(), "p.vmdk", None);
    let cid = qp.pointer("/format-specific/data/cid").and_then(Value::as_u64).expect("qemu cid");
    assert_eq!(pid, format!("{cid:08x}"));
    assert_eq!(c.identity.and_then(|i| i.parent_id), Some(pid));
}
