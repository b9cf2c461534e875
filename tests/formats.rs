//! Header probes against `qemu-img info --output=json` (the oracle) on
//! images `qemu-img` creates in a temp dir, plus spec-built headers for the
//! formats it cannot create, plus truncated / hostile headers.

mod common;
use common::have_qemu_img;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::diag::Code;
use backing_chain::image::{
    probe_with, probe_with_opts, Format, ImageInfo, ProbeOptions, ProbeOrIo, Reads, Step,
};
use serde_json::{json, Value};

fn run(args: &[&str], dir: &Path) {
    let out = Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img info --output=json [-f fmt] file`, run in `dir`.
fn qemu_info(dir: &Path, file: &str, fmt: Option<&str>) -> std::process::Output {
    let mut args = vec!["info", "--output=json"];
    if let Some(f) = fmt {
        args.extend(["-f", f]);
    }
    args.push(file);
    Command::new("qemu-img")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("qemu-img runs")
}

/// What qemu-img info says of `file`; it must open it.
fn oracle(dir: &Path, file: &str, fmt: Option<&str>) -> Value {
    let out = qemu_info(dir, file, fmt);
    assert!(
        out.status.success(),
        "qemu-img info {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    for key in [
        "format",
        "virtual-size",
        "cluster-size",
        "backing-filename",
        "backing-filename-format",
        "dirty-flag",
    ] {
        assert_eq!(
            o.get(key),
            qemu.get(key),
            "{what}: key {key}\nours: {o}\nqemu: {qemu}"
        );
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
                    let base = Path::new(f)
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned());
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

/// Bytes of the look for an ISO 9660 / UDF volume descriptor at 32768.
const ISO_LOOK: u64 = 7;

fn check_cases(cases: &[Case]) {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        &["create", "-q", "-f", "raw", "base.raw", "64M"],
        dir.path(),
    );
    run(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "64M"],
        dir.path(),
    );
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
        // Every image with a header at byte 0 and long enough to hold an
        // ISO volume descriptor costs 7 more bytes: the look at byte 32768
        // for a second format (`multiple-formats`, tests/safety.rs).
        let budget = c.budget + ISO_LOOK;
        assert!(
            read <= budget,
            "{}: read {read} bytes, budget {budget}",
            c.file,
        );
        eprintln!("{}: {} bytes read", c.file, read);
    }
}

#[test]
fn qcow2_against_qemu_img() {
    let k4 = 4096 + 1024;
    check_cases(&[
        Case {
            file: "v2.qcow2",
            args: &["-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "100G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "v3.qcow2",
            args: &["-f", "qcow2", "-o", "compat=1.1", "v3.qcow2", "100G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "c512.qcow2",
            args: &["-f", "qcow2", "-o", "cluster_size=512", "c512.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "c2m.qcow2",
            args: &["-f", "qcow2", "-o", "cluster_size=2M", "c2m.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "lazy.qcow2",
            args: &["-f", "qcow2", "-o", "lazy_refcounts=on", "lazy.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "l2.qcow2",
            args: &["-f", "qcow2", "-o", "extended_l2=on", "l2.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "zstd.qcow2",
            args: &[
                "-f",
                "qcow2",
                "-o",
                "compression_type=zstd",
                "zstd.qcow2",
                "1G",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "rc1.qcow2",
            args: &["-f", "qcow2", "-o", "refcount_bits=1", "rc1.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "rc64.qcow2",
            args: &["-f", "qcow2", "-o", "refcount_bits=64", "rc64.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "df.qcow2",
            args: &["-f", "qcow2", "-o", "data_file=df.raw", "df.qcow2", "1G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "dfr.qcow2",
            args: &[
                "-f",
                "qcow2",
                "-o",
                "data_file=dfr.raw,data_file_raw=on",
                "dfr.qcow2",
                "1G",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "prealloc.qcow2",
            args: &[
                "-f",
                "qcow2",
                "-o",
                "preallocation=metadata",
                "prealloc.qcow2",
                "1G",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "aes.qcow2",
            args: &[
                "-f",
                "qcow2",
                "--object",
                "secret,id=sec0,data=abc",
                "-o",
                "encrypt.format=aes,encrypt.key-secret=sec0",
                "aes.qcow2",
                "1G",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "luks.qcow2",
            args: &[
                "-f",
                "qcow2",
                "--object",
                "secret,id=sec0,data=abc",
                "-o",
                "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
                "luks.qcow2",
                "1G",
            ],
            specific: true,
            budget: k4,
        },
        Case {
            file: "b.qcow2",
            args: &["-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "b.qcow2"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "braw.qcow2",
            args: &["-f", "qcow2", "-b", "base.raw", "-F", "raw", "braw.qcow2"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "b512.qcow2",
            args: &[
                "-f",
                "qcow2",
                "-o",
                "cluster_size=512",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "b512.qcow2",
            ],
            specific: true,
            budget: 4096,
        },
    ]);
}

/// Persistent bitmaps (`qemu-img bitmap --add`): qemu-img lists them in
/// `format-specific`; so must we, from the bitmap directory.
#[test]
fn qcow2_bitmaps_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        &["create", "-q", "-f", "qcow2", "bm.qcow2", "100G"],
        dir.path(),
    );
    run(&["bitmap", "--add", "bm.qcow2", "b0"], dir.path());
    run(
        &[
            "bitmap",
            "--add",
            "-g",
            "131072",
            "--disable",
            "bm.qcow2",
            "second-one",
        ],
        dir.path(),
    );
    let (info, read) = probe_file(&dir.path().join("bm.qcow2"), ProbeOptions::default());
    let q = oracle(dir.path(), "bm.qcow2", None);
    assert!(
        q.pointer("/format-specific/data/bitmaps").is_some(),
        "qemu lists bitmaps"
    );
    assert_same(&info, &q, "bm.qcow2");
    assert_same_specific(&info, &q, "bm.qcow2");
    assert!(read <= 4096 + 256, "read {read}");
}

#[test]
fn qcow2_snapshots_only_when_asked() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        &["create", "-q", "-f", "qcow2", "s.qcow2", "1G"],
        dir.path(),
    );
    run(&["snapshot", "-c", "first", "s.qcow2"], dir.path());
    run(
        &["snapshot", "-c", "second-with-a-longer-name", "s.qcow2"],
        dir.path(),
    );
    let path = dir.path().join("s.qcow2");
    let (plain, plain_read) = probe_file(&path, ProbeOptions::default());
    assert!(plain.snapshots.is_none());
    let (info, read) = probe_file(&path, ProbeOptions { snapshots: true });
    let q = oracle(dir.path(), "s.qcow2", None);
    assert_eq!(
        info.snapshots.as_ref().map(|s| json!(s)),
        q.get("snapshots").cloned()
    );
    assert!(read > plain_read, "the snapshot table costs a read");
    assert!(read <= 4096 + 4096, "snapshot table read {read} bytes");
}

/// VHDX: the first 4 KiB, the two 4 KiB headers, then under 512 bytes of
/// region table, metadata table and items — never the megabytes between.
const VHDX_BUDGET: u64 = 3 * 4096 + 512;

#[test]
fn other_formats_against_qemu_img() {
    check_cases(&[
        Case {
            file: "a.qcow",
            args: &["-f", "qcow", "a.qcow", "100G"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "b.qcow",
            args: &["-f", "qcow", "-b", "base.qcow2", "-F", "qcow2", "b.qcow"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "a.qed",
            args: &["-f", "qed", "a.qed", "100G"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "b.qed",
            args: &["-f", "qed", "-b", "base.qcow2", "-F", "qcow2", "b.qed"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "braw.qed",
            args: &["-f", "qed", "-b", "base.raw", "-F", "raw", "braw.qed"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "a.vdi",
            args: &["-f", "vdi", "a.vdi", "100G"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "s.vdi",
            args: &["-f", "vdi", "-o", "static=on", "s.vdi", "16M"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "a.parallels",
            args: &["-f", "parallels", "a.parallels", "100G"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "a.luks",
            args: &[
                "-f",
                "luks",
                "--object",
                "secret,id=sec0,data=abc",
                "-o",
                "key-secret=sec0,iter-time=10",
                "a.luks",
                "16M",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "a.vpc",
            args: &["-f", "vpc", "a.vpc", "100G"],
            specific: false,
            budget: 4096,
        },
        Case {
            file: "a.vhdx",
            args: &["-f", "vhdx", "a.vhdx", "100G"],
            specific: false,
            budget: VHDX_BUDGET,
        },
        Case {
            file: "f.vhdx",
            args: &["-f", "vhdx", "-o", "subformat=fixed", "f.vhdx", "16M"],
            specific: false,
            budget: VHDX_BUDGET,
        },
        Case {
            file: "r.raw",
            args: &["-f", "raw", "r.raw", "64M"],
            specific: false,
            budget: 4096 + 512 + 2048,
        },
    ]);
}

#[test]
fn vmdk_against_qemu_img() {
    check_cases(&[
        Case {
            file: "sparse.vmdk",
            args: &["-f", "vmdk", "sparse.vmdk", "100G"],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "flat.vmdk",
            args: &[
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "flat.vmdk",
                "64M",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "tgf.vmdk",
            args: &[
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentFlat",
                "tgf.vmdk",
                "64M",
            ],
            specific: true,
            budget: 4096,
        },
        Case {
            file: "stream.vmdk",
            args: &[
                "-f",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "stream.vmdk",
                "100G",
            ],
            specific: true,
            budget: 4096 + 1536,
        },
        Case {
            file: "child.vmdk",
            args: &[
                "-f",
                "vmdk",
                "-b",
                "sparse.vmdk",
                "-F",
                "vmdk",
                "child.vmdk",
            ],
            specific: true,
            budget: 4096,
        },
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
    run(
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=twoGbMaxExtentSparse",
            "t.vmdk",
            "5G",
        ],
        dir.path(),
    );
    let (info, _) = probe_file(&dir.path().join("t.vmdk"), ProbeOptions::default());
    let mut q = oracle(dir.path(), "t.vmdk", None);
    assert_eq!(info.cluster_size, None);
    // qemu's cluster sizes come from the extent files: take them out, and
    // everything else — top-level facts and format-specific — must match.
    q.as_object_mut().expect("object").remove("cluster-size");
    for e in q
        .pointer_mut("/format-specific/data/extents")
        .and_then(Value::as_array_mut)
        .expect("qemu extents")
    {
        e.as_object_mut().expect("extent").remove("cluster-size");
    }
    assert_same(&info, &q, "twoGbMaxExtentSparse");
    assert_same_specific(&info, &q, "twoGbMaxExtentSparse");
}

/// A fixed VHD keeps its footer only at the end: qemu-img probes it as raw
/// (deliberate difference: we say vpc); with `-f vpc` the facts must match.
#[test]
fn vpc_fixed_from_the_footer() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, opts) in [
        ("f.vpc", "subformat=fixed"),
        ("fs.vpc", "subformat=fixed,force_size=on"),
    ] {
        run(
            &["create", "-q", "-f", "vpc", "-o", opts, file, "1G"],
            dir.path(),
        );
        let (info, read) = probe_file(&dir.path().join(file), ProbeOptions::default());
        let probed = oracle(dir.path(), file, None);
        assert_eq!(
            probed["format"], "raw",
            "qemu-img probes a fixed VHD as raw"
        );
        let q = oracle(dir.path(), file, Some("vpc"));
        assert_same(&info, &q, file);
        // The first 4 KiB (nothing there) with the 7 bytes at 32768 where
        // an ISO's signature would be (asked together: one round), then the
        // last 512 bytes only.
        assert_eq!(read, 4096 + 7 + 512, "{file}");
        eprintln!("{file}: {read} bytes read");
    }
}

/// A VMware 3 sparse extent (`COWD`), built after the header qemu's
/// `block/vmdk.c` reads (`VMDK3Header` after the magic: version, flags,
/// disk sectors, granularity, L1 directory offset and size, …) with the
/// descriptor text qemu reads at byte 512. qemu-img info is the oracle;
/// without a `CID=` line qemu refuses the image and we warn.
#[test]
fn vmdk_cowd_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        &["create", "-q", "-f", "vmdk", "base.vmdk", "1G"],
        dir.path(),
    );
    let cowd = |text: &str| {
        let mut b = vec![0u8; 8192];
        put(&mut b, 0, b"COWD");
        // version 1, flags 3, 1 GiB in sectors, 64 KiB grains, L1 at
        // sector 4 with 4 entries (1 GiB / (4096 × 64 KiB) rounded up).
        for (i, v) in [1u32, 3, 2 << 20, 128, 4, 4].iter().enumerate() {
            put(&mut b, 4 + 4 * i, &v.to_le_bytes());
        }
        put(&mut b, 512, text.as_bytes());
        b
    };
    let text = "CID=12345678\nparentCID=87654321\nparentFileNameHint=\"base.vmdk\"\n";
    std::fs::write(dir.path().join("c.vmdk"), cowd(text)).expect("write");
    let mut qemu = oracle(dir.path(), "c.vmdk", Some("vmdk"));
    let (ours, read) = probe_file(&dir.path().join("c.vmdk"), ProbeOptions::default());
    assert_same(&ours, &qemu, "COWD");
    // qemu names the extent by the path it opened; a probe of bytes has none.
    if let Some(exts) = qemu
        .pointer_mut("/format-specific/data/extents")
        .and_then(Value::as_array_mut)
    {
        for e in exts {
            e.as_object_mut().map(|o| o.remove("filename"));
        }
    }
    assert_same_specific(&ours, &qemu, "COWD");
    let id = ours.identity.expect("identity");
    assert_eq!(id.id.as_deref(), Some("12345678"));
    assert_eq!(id.parent_id.as_deref(), Some("87654321"));
    assert!(read <= 4096, "read {read}");

    // No CID: qemu-img refuses it; we give the facts and say so.
    std::fs::write(
        dir.path().join("n.vmdk"),
        cowd("parentFileNameHint=\"base.vmdk\"\n"),
    )
    .expect("write");
    let out = qemu_info(dir.path(), "n.vmdk", Some("vmdk"));
    assert!(!out.status.success(), "qemu-img opened a COWD without CID");
    let (n, _) = probe_file(&dir.path().join("n.vmdk"), ProbeOptions::default());
    assert!(
        n.diagnostics.iter().any(|d| d.code == Code::VmdkCowdNoCid),
        "{:?}",
        n.diagnostics
    );
}

#[test]
fn vmdk_backing_identity() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "vmdk", "p.vmdk", "1G"], dir.path());
    run(
        &[
            "create", "-q", "-f", "vmdk", "-b", "p.vmdk", "-F", "vmdk", "c.vmdk",
        ],
        dir.path(),
    );
    let (p, _) = probe_file(&dir.path().join("p.vmdk"), ProbeOptions::default());
    let (c, _) = probe_file(&dir.path().join("c.vmdk"), ProbeOptions::default());
    let pid = p.identity.and_then(|i| i.id).expect("parent CID");
    let qp = oracle(dir.path(), "p.vmdk", None);
    let cid = qp
        .pointer("/format-specific/data/cid")
        .and_then(Value::as_u64)
        .expect("qemu cid");
    assert_eq!(pid, format!("{cid:08x}"));
    assert_eq!(c.identity.and_then(|i| i.parent_id), Some(pid));
}

// ---------------------------------------------------------------------------
// Spec-built headers for what qemu-img cannot create.
// ---------------------------------------------------------------------------

/// Probe an in-memory file; `known_len` false hides the length (short reads
/// at the end reveal it). Returns the facts or the error, and bytes read.
/// Probe `file` from memory; also the bytes the probe asked for (what it
/// would have read from a file long enough), whether it succeeds or not.
fn probe_mem(
    file: &[u8],
    known_len: bool,
) -> (Result<ImageInfo, backing_chain::image::ProbeError>, u64) {
    let len = file.len() as u64;
    let mut asked = 0u64;
    let r = probe_with(known_len.then_some(len), |o, l| -> Result<Vec<u8>, ()> {
        asked += l;
        let s = o.min(len) as usize;
        let e = o.saturating_add(l).min(len) as usize;
        Ok(file[s..e].to_vec())
    });
    match r {
        Ok((i, _)) => (Ok(i), asked),
        Err(ProbeOrIo::Probe(e)) => (Err(e), asked),
        Err(ProbeOrIo::Io(())) => unreachable!(),
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}
fn utf16be(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// A GUID string in Microsoft on-disk order (Data1..3 little-endian), as
/// [MS-VHDX] §2 and [MS-DTYP] §2.3.4 define it.
fn guid_bytes(s: &str) -> [u8; 16] {
    let h: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let mut b = [0u8; 16];
    for i in 0..16 {
        b[i] = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex");
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// CRC-32C (Castagnoli), as [MS-VHDX] §2.2.2 uses for the headers.
fn crc32c(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// VHD specification ("Virtual Hard Disk Image Format Specification"),
/// "Hard Disk Footer Format": one's complement of the byte sum.
fn vhd_checksum(b: &[u8]) -> u32 {
    !b.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)))
}

/// Differencing VHD: footer (spec "Hard Disk Footer Format"), dynamic disk
/// header ("Dynamic Disk Header Format") with parent unique id, parent
/// unicode name and two parent locators (W2ru relative, W2ku absolute).
fn differencing_vhd() -> Vec<u8> {
    let mut f = vec![0u8; 512];
    put(&mut f, 0, b"conectix");
    put(&mut f, 8, &2u32.to_be_bytes());
    put(&mut f, 12, &0x0001_0000u32.to_be_bytes());
    put(&mut f, 16, &512u64.to_be_bytes());
    put(&mut f, 28, b"win ");
    put(&mut f, 40, &(1u64 << 30).to_be_bytes());
    put(&mut f, 48, &(1u64 << 30).to_be_bytes());
    put(&mut f, 56, &2080u16.to_be_bytes());
    f[58] = 16;
    f[59] = 63;
    put(&mut f, 60, &4u32.to_be_bytes());
    put(&mut f, 68, &[0x11; 16]);
    let c = vhd_checksum(&f);
    put(&mut f, 64, &c.to_be_bytes());

    let mut d = vec![0u8; 1024];
    put(&mut d, 0, b"cxsparse");
    put(&mut d, 8, &u64::MAX.to_be_bytes());
    put(&mut d, 16, &1536u64.to_be_bytes());
    put(&mut d, 24, &0x0001_0000u32.to_be_bytes());
    put(&mut d, 28, &512u32.to_be_bytes());
    put(&mut d, 32, &(2u32 << 20).to_be_bytes());
    put(&mut d, 40, &[0x22; 16]);
    put(&mut d, 64, &utf16be("base.vhd"));
    let rel = utf16le(".\\base.vhd");
    let abs = utf16le("C:\\vms\\base.vhd");
    for (i, (code, data, off)) in [(b"W2ru", &rel, 2048u64), (b"W2ku", &abs, 2560u64)]
        .into_iter()
        .enumerate()
    {
        let e = 576 + 24 * i;
        put(&mut d, e, code);
        put(&mut d, e + 4, &512u32.to_be_bytes());
        put(&mut d, e + 8, &(data.len() as u32).to_be_bytes());
        put(&mut d, e + 16, &off.to_be_bytes());
    }
    let c = vhd_checksum(&d);
    put(&mut d, 36, &c.to_be_bytes());

    let mut file = vec![0u8; 3072];
    put(&mut file, 0, &f);
    put(&mut file, 512, &d);
    put(&mut file, 2048, &rel);
    put(&mut file, 2560, &abs);
    file.extend_from_slice(&f);
    file
}

#[test]
fn vhd_differencing_from_spec() {
    let (info, read) = probe_mem(&differencing_vhd(), true);
    let info = info.expect("probes");
    assert_eq!(info.format, Format::Vpc);
    // creator "win ": the size is the footer's current size, not the geometry.
    assert_eq!(info.virtual_size, Some(1 << 30));
    assert_eq!(info.cluster_size, Some(2 << 20));
    assert_eq!(info.backing_filename.as_deref(), Some(".\\base.vhd"));
    assert_eq!(info.backing_filename_format.as_deref(), Some("vpc"));
    let id = info.identity.expect("identity");
    assert_eq!(
        id.id.as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    assert_eq!(
        id.parent_id.as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    let h = json!(info.header.expect("header"));
    assert_eq!(h["parent-name"], "base.vhd");
    assert_eq!(h["parent-locators"][1]["path"], "C:\\vms\\base.vhd");
    assert!(
        !info.diagnostics.iter().any(|d| d.code == Code::VpcChecksum),
        "checksums written per spec verify"
    );
    assert!(read <= 4096 + 1024, "read {read}");
}

/// Differencing VHDX per [MS-VHDX]: §2.2.1 file type identifier, §2.2.2 two
/// headers (the second with the higher sequence number is current), §2.2.3
/// region table, §2.6.1 metadata table 8 MiB into the file, §2.6.2 items
/// including the parent locator (§2.6.2.6) with parent_linkage and paths.
fn differencing_vhdx(meta_at: usize) -> Vec<u8> {
    let mut file = vec![0u8; meta_at + 64 * 1024 + 4096];
    put(&mut file, 0, b"vhdxfile");
    put(&mut file, 8, &utf16le("spec-test"));
    for (at, seq, dw) in [
        (64 * 1024, 1u64, "aaaaaaaa-0000-0000-0000-000000000001"),
        (128 * 1024, 2, "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"),
    ] {
        let mut h = vec![0u8; 4096];
        put(&mut h, 0, b"head");
        put(&mut h, 8, &seq.to_le_bytes());
        put(&mut h, 32, &guid_bytes(dw));
        put(&mut h, 66, &1u16.to_le_bytes());
        put(&mut h, 68, &(1u32 << 20).to_le_bytes());
        put(&mut h, 72, &(1u64 << 20).to_le_bytes());
        let c = crc32c(&h);
        put(&mut h, 4, &c.to_le_bytes());
        put(&mut file, at, &h);
    }
    let rt = 192 * 1024;
    put(&mut file, rt, b"regi");
    put(&mut file, rt + 8, &2u32.to_le_bytes());
    put(
        &mut file,
        rt + 16,
        &guid_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08"),
    );
    put(&mut file, rt + 32, &(3u64 << 20).to_le_bytes());
    put(&mut file, rt + 40, &(1u32 << 20).to_le_bytes());
    put(&mut file, rt + 44, &1u32.to_le_bytes());
    put(
        &mut file,
        rt + 48,
        &guid_bytes("8B7CA206-4790-4B9A-B8FE-575F050F886E"),
    );
    put(&mut file, rt + 64, &(meta_at as u64).to_le_bytes());
    put(&mut file, rt + 72, &(1u32 << 20).to_le_bytes());
    put(&mut file, rt + 76, &1u32.to_le_bytes());

    // Parent locator item.
    let kv = [
        ("parent_linkage", "{0A1B2C3D-AAAA-BBBB-CCCC-DDDDEEEEFFFF}"),
        ("relative_path", "..\\base.vhdx"),
        ("absolute_win32_path", "C:\\vms\\base.vhdx"),
    ];
    let mut loc = vec![0u8; 20 + 12 * kv.len()];
    put(
        &mut loc,
        0,
        &guid_bytes("B04AEFB7-D19E-4A81-B789-25B8E9445913"),
    );
    put(&mut loc, 18, &(kv.len() as u16).to_le_bytes());
    for (i, (k, v)) in kv.iter().enumerate() {
        let (k, v) = (utf16le(k), utf16le(v));
        let ko = loc.len();
        loc.extend_from_slice(&k);
        let vo = loc.len();
        loc.extend_from_slice(&v);
        let e = 20 + 12 * i;
        put(&mut loc, e, &(ko as u32).to_le_bytes());
        put(&mut loc, e + 4, &(vo as u32).to_le_bytes());
        put(&mut loc, e + 8, &(k.len() as u16).to_le_bytes());
        put(&mut loc, e + 10, &(v.len() as u16).to_le_bytes());
    }
    let mut fp = (32u32 << 20).to_le_bytes().to_vec();
    fp.extend_from_slice(&2u32.to_le_bytes()); // HasParent
    let items: [(&str, Vec<u8>); 4] = [
        ("CAA16737-FA36-4D43-B3B6-33F0AA44E76B", fp),
        (
            "2FA54224-CD1B-4876-B211-5DBED83BF4B8",
            (10u64 << 30).to_le_bytes().to_vec(),
        ),
        (
            "8141BF1D-A96F-4709-BA47-F233A8FAAB5F",
            4096u32.to_le_bytes().to_vec(),
        ),
        ("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", loc),
    ];
    put(&mut file, meta_at, b"metadata");
    put(&mut file, meta_at + 10, &(items.len() as u16).to_le_bytes());
    let mut data_off = 64 * 1024;
    for (i, (g, data)) in items.iter().enumerate() {
        let e = meta_at + 32 + 32 * i;
        put(&mut file, e, &guid_bytes(g));
        put(&mut file, e + 16, &(data_off as u32).to_le_bytes());
        put(&mut file, e + 20, &(data.len() as u32).to_le_bytes());
        put(&mut file, e + 24, &4u32.to_le_bytes());
        put(&mut file, meta_at + data_off, data);
        data_off += data.len().div_ceil(8) * 8;
    }
    file
}

#[test]
fn vhdx_differencing_from_spec() {
    let (info, read) = probe_mem(&differencing_vhdx(8 << 20), true);
    let info = info.expect("probes");
    assert_eq!(info.format, Format::Vhdx);
    assert_eq!(info.virtual_size, Some(10 << 30));
    assert_eq!(info.cluster_size, Some(32 << 20));
    assert_eq!(info.backing_filename.as_deref(), Some("..\\base.vhdx"));
    assert_eq!(info.backing_filename_format.as_deref(), Some("vhdx"));
    let id = info.identity.expect("identity");
    // The current header is the one with sequence number 2.
    assert_eq!(
        id.id.as_deref(),
        Some("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")
    );
    assert_eq!(
        id.parent_id.as_deref(),
        Some("0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff")
    );
    let h = json!(info.header.expect("header"));
    assert_eq!(h["has-parent"], true);
    assert_eq!(h["logical-sector-size"], 4096);
    assert_eq!(
        h["parent-locator"]["entries"]["absolute_win32_path"],
        "C:\\vms\\base.vhdx"
    );
    // 8 MiB in, yet only the few ranges: 4 KiB + two 4 KiB headers + < 1 KiB.
    assert!(read < 3 * 4096 + 1024, "read {read}");
}

/// Probe `file` one step at a time, as the wasm's `probeStep` loop and the
/// page's `Probe` do: (facts, rounds of reads, ranges per round, bytes read).
fn probe_rounds(file: &[u8]) -> (ImageInfo, usize, Vec<usize>, u64) {
    let len = file.len() as u64;
    let mut reads = Reads::new(Some(len));
    let (mut rounds, mut per_round, mut bytes) = (0, Vec::new(), 0u64);
    loop {
        match backing_chain::image::probe(&reads).expect("probes") {
            Step::Done(info) => return (*info, rounds, per_round, bytes),
            Step::Need(ranges) => {
                rounds += 1;
                assert!(rounds <= 16, "too many rounds");
                per_round.push(ranges.len());
                for r in ranges {
                    let s = r.offset.min(len) as usize;
                    let e = r.offset.saturating_add(r.len).min(len) as usize;
                    bytes += (e - s) as u64;
                    reads.insert(r, file[s..e].to_vec());
                }
            }
        }
    }
}

/// Rounds and bytes of a VHDX probe ([MS-VHDX]): the first round reads the
/// first 4 KiB (and the 7 bytes at 32 KiB of the ISO check), the second both
/// 4 KiB headers and the region table's 16-byte header with the two entries
/// every VHDX has (BAT, metadata: 32 bytes each), the third the metadata
/// table's 32-byte header with the five entries every VHDX has (32 bytes
/// each), the fourth the items in one read (qemu writes them back to back:
/// file parameters 8, virtual disk size 8, page 83 data 16, logical and
/// physical sector size 4 each). Four rounds where it took six, one range
/// for the items where it took five; the facts as qemu-img's.
#[test]
fn vhdx_rounds_and_bytes_of_qemu_img_images() {
    if !have_qemu_img() {
        return;
    }
    let first = 4096 + 7;
    let round2 = 2 * 4096 + 16 + 2 * 32;
    let round3 = 32 + 5 * 32;
    let items = 8 + 8 + 16 + 4 + 4;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, opts) in [
        ("d.vhdx", &[][..]),
        ("f.vhdx", &["-o", "subformat=fixed"][..]),
    ] {
        let mut args = vec!["create", "-q", "-f", "vhdx"];
        args.extend(opts);
        args.extend([name, "64M"]);
        run(&args, dir.path());
        let file = std::fs::read(dir.path().join(name)).expect("read");
        let (info, rounds, per_round, bytes) = probe_rounds(&file);
        assert_eq!(rounds, 4, "{name}");
        assert_eq!(per_round, [2, 3, 1, 1], "{name}");
        assert_eq!(bytes, first + round2 + round3 + items, "{name}");
        let q = oracle(dir.path(), name, Some("vhdx"));
        assert_eq!(json!(info.virtual_size), q["virtual-size"], "{name}");
        assert_eq!(json!(info.cluster_size), q["cluster-size"], "{name}");
        // The same facts when the length is not known (short reads past
        // the end would reveal it).
        let (unknown, _) = probe_mem(&file, false);
        assert_eq!(unknown.expect("probes"), info, "{name}");
    }
}

/// A differencing VHDX (qemu-img cannot make one: "Backing file not
/// supported for file format 'vhdx'"), built per spec: four metadata
/// entries take the same four rounds, the items (8, 8, 4 bytes padded to 8,
/// then the parent locator) one read. With the page 83 and physical sector
/// items too (six entries, as Hyper-V writes), the entries past the five
/// read ahead cost one more round, and the facts stay the same.
#[test]
fn vhdx_rounds_of_a_differencing_disk() {
    let meta = 8usize << 20;
    let file = differencing_vhdx(meta);
    let (info, rounds, per_round, bytes) = probe_rounds(&file);
    assert_eq!((rounds, per_round.as_slice()), (4, &[2, 3, 1, 1][..]));
    // The items run from 64 KiB into the region to the locator's end.
    let loc_at = meta + 32 + 3 * 32;
    let loc_off = u32::from_le_bytes(file[loc_at + 16..loc_at + 20].try_into().unwrap()) as u64;
    let loc_len = u32::from_le_bytes(file[loc_at + 20..loc_at + 24].try_into().unwrap()) as u64;
    assert_eq!(loc_off, 64 * 1024 + 24);
    let items = loc_off + loc_len - 64 * 1024;
    assert_eq!(
        bytes,
        4096 + 7 + 2 * 4096 + 16 + 2 * 32 + 32 + 5 * 32 + items
    );
    assert_eq!(info.backing_filename.as_deref(), Some("..\\base.vhdx"));

    // Six entries: page 83 data (16 bytes) and physical sector size (4)
    // after the locator.
    let mut six = file.clone();
    put(&mut six, meta + 10, &6u16.to_le_bytes());
    let mut at = (loc_off + loc_len).div_ceil(8) * 8;
    for (i, (g, data)) in [
        ("BECA12AB-B2E6-4523-93EF-C309E000C746", &[7u8; 16][..]),
        (
            "CDA348C7-445D-4471-9CC9-E9885251C556",
            &4096u32.to_le_bytes()[..],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let e = meta + 32 + 32 * (4 + i);
        put(&mut six, e, &guid_bytes(g));
        put(&mut six, e + 16, &(at as u32).to_le_bytes());
        put(&mut six, e + 20, &(data.len() as u32).to_le_bytes());
        put(&mut six, e + 24, &4u32.to_le_bytes());
        put(&mut six, meta + at as usize, data);
        at += 16;
    }
    let (info6, rounds6, per_round6, _) = probe_rounds(&six);
    assert_eq!((rounds6, per_round6.as_slice()), (5, &[2, 3, 1, 1, 1][..]));
    let h = json!(info6.header.as_ref().expect("header"));
    assert_eq!(h["physical-sector-size"], 4096);
    assert_eq!(h["page83"], "07070707-0707-0707-0707-070707070707");
    assert_eq!(info6.backing_filename, info.backing_filename);
    assert_eq!(info6.identity, info.identity);
    let (unknown, _) = probe_mem(&six, false);
    assert_eq!(unknown.expect("probes"), info6);
}

/// Region table entries that overlap each other, the 1 MiB header section or
/// the log, or that list the BAT twice: edits of a qemu-img image with the
/// region table checksum redone, so qemu's only objection is the one made.
/// qemu-img info refuses each one; so must we, naming the entry's offset.
/// Moving the metadata region to a free place is accepted by both.
#[test]
fn vhdx_region_table_overlaps_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    const RT: usize = 192 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    run(&["create", "-q", "-f", "vhdx", "a.vhdx", "1G"], dir.path());
    let orig = std::fs::read(dir.path().join("a.vhdx")).expect("read");
    let entry = |b: &[u8], i: usize| -> (String, u64) {
        let e = &b[RT + 16 + 32 * i..RT + 48 + 32 * i];
        let guid = format!("{:02x}{:02x}", e[3], e[2]);
        (guid, u64::from_le_bytes(e[16..24].try_into().unwrap()))
    };
    // qemu-img's layout: log 1..2 MiB, then BAT and metadata, a MiB each.
    let bat = (0..2).find(|&i| entry(&orig, i).0 == "2dc2").expect("BAT");
    let meta = 1 - bat;
    let (_, meta_off) = entry(&orig, meta);
    let (_, bat_off) = entry(&orig, bat);
    let with_crc = |mut b: Vec<u8>| {
        put(&mut b, RT + 4, &[0; 4]);
        let c = crc32c(&b[RT..RT + 64 * 1024]);
        put(&mut b, RT + 4, &c.to_le_bytes());
        b
    };
    let set_off = |i: usize, off: u64| {
        let mut b = orig.clone();
        put(&mut b, RT + 16 + 32 * i + 16, &off.to_le_bytes());
        b
    };
    let mut dup = orig.clone();
    put(&mut dup, RT + 8, &3u32.to_le_bytes());
    let bat_entry = dup[RT + 16 + 32 * bat..RT + 48 + 32 * bat].to_vec();
    put(&mut dup, RT + 16 + 64, &bat_entry);
    put(&mut dup, RT + 16 + 64 + 16, &(8u64 << 20).to_le_bytes());
    let at = |i: usize| (RT + 16 + 32 * i) as u64;
    // The log is checked against the regions once a header is chosen: the
    // error names the current header's log length field (header 2, the one
    // with the higher sequence number, in a fresh image).
    let seq = |h: usize| u64::from_le_bytes(orig[h + 8..h + 16].try_into().unwrap());
    let current = if seq(128 * 1024) > seq(64 * 1024) {
        128
    } else {
        64
    };
    let bad: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        (
            "metadata over the BAT",
            set_off(meta, bat_off + (1 << 19)),
            at(meta),
            "overlaps",
        ),
        (
            "BAT over the log",
            set_off(bat, 3 << 19),
            current * 1024 + 68,
            "the log at",
        ),
        (
            "metadata in the header section",
            set_off(meta, 1 << 19),
            at(meta),
            "overlaps the region at 0..",
        ),
        ("BAT listed twice", dup, at(2), "listed twice"),
    ];
    for (what, b, off, msg) in bad {
        let b = with_crc(b);
        let path = dir.path().join("bad.vhdx");
        std::fs::write(&path, &b).expect("write");
        let out = qemu_info(dir.path(), "bad.vhdx", Some("vhdx"));
        assert!(!out.status.success(), "{what}: qemu-img info accepted it");
        let e = probe_mem(&b, true).0.expect_err(what);
        assert_eq!(e.offset, off, "{what}: {e}");
        assert!(e.message.contains(msg), "{what}: {e}");
    }

    // The metadata region moved to 6 MiB (its bytes with it): both accept it
    // and agree on the facts.
    let mut moved = set_off(meta, 6 << 20);
    moved.resize(7 << 20, 0);
    let m = meta_off as usize;
    let block = orig[m..m + (1 << 20)].to_vec();
    put(&mut moved, 6 << 20, &block);
    std::fs::write(dir.path().join("moved.vhdx"), with_crc(moved)).expect("write");
    let qemu = oracle(dir.path(), "moved.vhdx", Some("vhdx"));
    let (ours, read) = probe_file(&dir.path().join("moved.vhdx"), ProbeOptions::default());
    assert_same(&ours, &qemu, "moved metadata");
    assert!(read <= VHDX_BUDGET, "read {read}");
}

/// Differencing VDI per the header layout qemu's `block/vdi.c` documents:
/// type 4 at 0x4c, image UUID at 0x188, parent UUID at 0x1b8.
#[test]
fn vdi_differencing_from_spec() {
    let mut b = vec![0u8; 0x400];
    put(&mut b, 0, b"<<< Oracle VM VirtualBox Disk Image >>>\n");
    put(&mut b, 0x40, &0xbeda_107fu32.to_le_bytes());
    put(&mut b, 0x44, &0x0001_0001u32.to_le_bytes());
    put(&mut b, 0x48, &0x190u32.to_le_bytes());
    put(&mut b, 0x4c, &4u32.to_le_bytes());
    put(&mut b, 0x154, &0x200u32.to_le_bytes());
    put(&mut b, 0x158, &0x400u32.to_le_bytes());
    put(&mut b, 0x168, &512u32.to_le_bytes());
    put(&mut b, 0x170, &(1u64 << 30).to_le_bytes());
    put(&mut b, 0x178, &(1u32 << 20).to_le_bytes());
    put(&mut b, 0x180, &1024u32.to_le_bytes());
    let bytes: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
    put(&mut b, 0x188, &bytes);
    put(&mut b, 0x1b8, &[0xab; 16]);
    let (info, _) = probe_mem(&b, true);
    let info = info.expect("probes");
    assert_eq!(info.format, Format::Vdi);
    assert_eq!(info.virtual_size, Some(1 << 30));
    assert_eq!(info.cluster_size, Some(1 << 20));
    let id = info.identity.expect("identity");
    // 00 11 22 33 | 44 55 | 66 77 | 88 99 … as a GUID: first three fields little-endian.
    assert_eq!(
        id.id.as_deref(),
        Some("33221100-5544-7766-8899-aabbccddeeff")
    );
    assert_eq!(
        id.parent_id.as_deref(),
        Some("abababab-abab-abab-abab-abababababab")
    );
    assert!(info
        .diagnostics
        .iter()
        .any(|d| d.code == Code::VdiDifferencing));
}

/// UML cow version 2 (`cow_user.c` / libvirt's probe table): `OOOM`,
/// version 2, 1024-byte backing name at 8, size at 1036.
fn cow_v2() -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    put(&mut b, 0, b"OOOM");
    put(&mut b, 4, &2u32.to_be_bytes());
    put(&mut b, 8, b"/var/lib/uml/root_fs");
    put(&mut b, 1036, &(3u64 << 30).to_be_bytes());
    put(&mut b, 1044, &512u32.to_be_bytes());
    b
}

/// Apple UDIF: 512-byte `koly` trailer at the end (TN1150-era UDIF layout
/// as qemu's `block/dmg.c` reads it); sector count at 492.
fn dmg() -> Vec<u8> {
    let mut b = vec![0u8; 8192];
    let t = 8192 - 512;
    put(&mut b, t, b"koly");
    put(&mut b, t + 4, &4u32.to_be_bytes());
    put(&mut b, t + 8, &512u32.to_be_bytes());
    put(&mut b, t + 216, &4096u64.to_be_bytes());
    put(&mut b, t + 224, &1024u64.to_be_bytes());
    put(&mut b, t + 492, &20480u64.to_be_bytes());
    b
}

/// cloop per qemu's `block/cloop.c`: the shell preamble, then block size and
/// block count (big-endian) at 128.
fn cloop() -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    put(
        &mut b,
        0,
        b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n",
    );
    put(&mut b, 128, &65536u32.to_be_bytes());
    put(&mut b, 132, &16u32.to_be_bytes());
    b
}

/// Bochs growing image per qemu's `block/bochs.c` (version 2 layout).
fn bochs() -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    put(&mut b, 0, b"Bochs Virtual HD Image");
    put(&mut b, 32, b"Redolog");
    put(&mut b, 48, b"Growing");
    put(&mut b, 64, &0x0002_0000u32.to_le_bytes());
    put(&mut b, 68, &512u32.to_le_bytes());
    put(&mut b, 72, &512u32.to_le_bytes());
    put(&mut b, 76, &1u32.to_le_bytes());
    put(&mut b, 80, &4096u32.to_le_bytes());
    put(&mut b, 88, &(2u64 << 20).to_le_bytes());
    b
}

/// ISO 9660 (ECMA-119 §8.4): primary volume descriptor at sector 16 with
/// `CD001`, volume space size (both-endian) at 80, block size at 128.
fn iso() -> Vec<u8> {
    let mut b = vec![0u8; 40 * 2048];
    let d = 16 * 2048;
    b[d] = 1;
    put(&mut b, d + 1, b"CD001");
    b[d + 6] = 1;
    put(&mut b, d + 40, b"SPEC_TEST                       ");
    put(&mut b, d + 80, &40u32.to_le_bytes());
    put(&mut b, d + 84, &40u32.to_be_bytes());
    put(&mut b, d + 128, &2048u16.to_le_bytes());
    put(&mut b, d + 130, &2048u16.to_be_bytes());
    b
}

/// qemu reads bochs, cloop and dmg (it cannot create them): the spec-built
/// headers are checked against `qemu-img info -f FMT` too.
#[test]
fn bochs_cloop_dmg_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (fmt, bytes) in [("bochs", bochs()), ("cloop", cloop()), ("dmg", dmg())] {
        let file = format!("x.{fmt}");
        std::fs::write(dir.path().join(&file), &bytes).expect("write");
        let qemu = oracle(dir.path(), &file, Some(fmt));
        let (ours, _) = probe_file(&dir.path().join(&file), ProbeOptions::default());
        assert_same(&ours, &qemu, fmt);
    }
}

#[test]
fn cow_dmg_cloop_bochs_iso_from_spec() {
    let (i, _) = probe_mem(&cow_v2(), true);
    let i = i.expect("cow");
    assert_eq!((i.format, i.virtual_size), (Format::Cow, Some(3 << 30)));
    assert_eq!(i.backing_filename.as_deref(), Some("/var/lib/uml/root_fs"));
    assert_eq!(i.backing_filename_format, None);

    let (i, read) = probe_mem(&dmg(), true);
    let i = i.expect("dmg");
    assert_eq!((i.format, i.virtual_size), (Format::Dmg, Some(20480 * 512)));
    assert!(read <= 8192, "read {read}");

    let (i, _) = probe_mem(&cloop(), true);
    let i = i.expect("cloop");
    assert_eq!(
        (i.format, i.virtual_size),
        (Format::Cloop, Some(16 * 65536))
    );

    let (i, _) = probe_mem(&bochs(), true);
    let i = i.expect("bochs");
    // qemu-img gives bochs no cluster-size; the extent size is a header field.
    assert_eq!(
        (i.format, i.virtual_size, i.cluster_size),
        (Format::Bochs, Some(2 << 20), None)
    );
    assert_eq!(json!(i.header.expect("header"))["extent-size"], 4096);

    let (i, read) = probe_mem(&iso(), true);
    let i = i.expect("iso");
    assert_eq!(i.format, Format::Iso);
    assert_eq!(json!(i.header.expect("header"))["volume-space-size"], 40);
    // The first 4 KiB with the descriptor's 7-byte signature (one round),
    // the last 512 bytes, then the descriptor sector.
    assert_eq!(read, 4096 + 7 + 512 + 2048);
}

/// The spec-built images (cow, dmg, cloop, bochs, iso, differencing VHD
/// and VHDX), known length or not, as the wasm writes their facts or error
/// (`json_out`, issue 18): what serde_json writes.
#[test]
fn spec_built_facts_write_the_same_json() {
    let cases = [
        ("cow", cow_v2()),
        ("dmg", dmg()),
        ("cloop", cloop()),
        ("bochs", bochs()),
        ("iso", iso()),
        ("vhd", differencing_vhd()),
        ("vhdx", differencing_vhdx(8 << 20)),
    ];
    for (what, bytes) in cases {
        for known in [true, false] {
            match probe_mem(&bytes, known) {
                (Ok(info), _) => common::same_json(&info, what),
                (Err(e), _) => common::same_json(&e.to_string(), what),
            }
        }
    }
}

#[test]
fn unknown_length_footer_formats_say_so() {
    // No header at 0 and no file length: the end cannot be looked at.
    let (r, _) = probe_mem(&dmg(), false);
    let e = r.expect_err("length unknown");
    assert!(e.message.contains("file length is unknown"), "{e}");
    // A raw verdict names itself and never guesses.
    let (r, _) = probe_mem(&vec![0u8; 100_000], true);
    let i = r.expect("raw");
    assert_eq!(i.format, Format::Raw);
    assert!(i.diagnostics.iter().any(|d| d.code == Code::NoHeader));
}

// ---------------------------------------------------------------------------
// Truncated and hostile headers.
// ---------------------------------------------------------------------------

fn qemu_made(args: &[&str], file: &str, keep: usize) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().ok()?;
    run(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "1G"],
        dir.path(),
    );
    let mut a = vec!["create", "-q"];
    a.extend(args);
    run(&a, dir.path());
    let mut b = std::fs::read(dir.path().join(file)).ok()?;
    b.truncate(keep);
    Some(b)
}

/// Every truncation gives facts or an error, never a panic, with the length
/// known and unknown.
#[test]
fn truncated_anywhere_never_panics() {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("vhd".into(), differencing_vhd()),
        ("cow".into(), cow_v2()),
        ("cloop".into(), cloop()),
        ("bochs".into(), bochs()),
        ("dmg".into(), dmg()),
        ("vhdx".into(), differencing_vhdx(2 << 20)),
    ];
    if have_qemu_img() {
        for (name, args, file) in [
            (
                "qcow2",
                vec!["-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "c.qcow2"],
                "c.qcow2",
            ),
            (
                "qed",
                vec!["-f", "qed", "-b", "base.qcow2", "-F", "qcow2", "c.qed"],
                "c.qed",
            ),
            (
                "qcow",
                vec!["-f", "qcow", "-b", "base.qcow2", "-F", "qcow2", "c.qcow"],
                "c.qcow",
            ),
            ("vmdk", vec!["-f", "vmdk", "c.vmdk", "1G"], "c.vmdk"),
            ("vdi", vec!["-f", "vdi", "c.vdi", "1G"], "c.vdi"),
            ("parallels", vec!["-f", "parallels", "c.hdd", "1G"], "c.hdd"),
            (
                "luks",
                vec![
                    "-f",
                    "luks",
                    "--object",
                    "secret,id=s,data=x",
                    "-o",
                    "key-secret=s,iter-time=10",
                    "c.luks",
                    "1M",
                ],
                "c.luks",
            ),
            ("vpc", vec!["-f", "vpc", "c.vhd", "1G"], "c.vhd"),
        ] {
            if let Some(b) = qemu_made(&args, file, 8192) {
                files.push((name.into(), b));
            }
        }
    }
    let mut errors = 0;
    for (name, full) in &files {
        let cuts: Vec<usize> = (0..full.len().min(1200))
            .chain((1200..full.len()).step_by(509))
            .collect();
        for cut in cuts {
            for known in [true, false] {
                let (r, read) = probe_mem(&full[..cut], known);
                if r.is_err() {
                    errors += 1;
                }
                assert!(read <= 2 << 20, "{name} cut at {cut}: read {read}");
            }
        }
    }
    assert!(errors > 0, "truncation must be reported somewhere");
}

#[test]
fn hostile_headers_name_the_offset() {
    // qcow2 v3 with header_length 100 (< 104).
    let mut q = vec![0u8; 4096];
    put(&mut q, 0, b"QFI\xfb");
    put(&mut q, 4, &3u32.to_be_bytes());
    put(&mut q, 20, &16u32.to_be_bytes());
    put(&mut q, 24, &(1u64 << 30).to_be_bytes());
    put(&mut q, 96, &4u32.to_be_bytes());
    put(&mut q, 100, &100u32.to_be_bytes());
    let e = probe_mem(&q, true).0.expect_err("header_length");
    assert_eq!(e.offset, 100, "{e}");

    // qcow2 extension whose length runs past cluster 0.
    put(&mut q, 100, &104u32.to_be_bytes());
    put(&mut q, 104, &0xE279_2ACAu32.to_be_bytes());
    put(&mut q, 108, &0xffff_fff0u32.to_be_bytes());
    let e = probe_mem(&q, true).0.expect_err("extension");
    assert_eq!(e.offset, 104, "{e}");

    // qcow2 backing name longer than 1023 bytes: qemu refuses the image,
    // but it is still a qcow2 of its size with a (flagged) name.
    put(&mut q, 104, &[0; 8]);
    put(&mut q, 8, &512u64.to_be_bytes());
    put(&mut q, 16, &2000u32.to_be_bytes());
    let i = probe_mem(&q, true).0.expect("facts kept");
    assert_eq!(i.format, Format::Qcow2);
    assert_eq!(i.virtual_size, Some(1 << 30));
    let d = i
        .diagnostics
        .iter()
        .find(|d| d.code == Code::BackingNameTooLong)
        .expect("flagged");
    assert!(d.message.contains("1023"), "{}", d.message);
    // The header claims 4 GiB: at most MAX_FLAGGED_NAME bytes are read.
    put(&mut q, 16, &u32::MAX.to_be_bytes());
    let (i, asked) = probe_mem(&q, true);
    let i = i.expect("facts kept");
    assert!(asked <= 4096 + 4096 + 7, "asked {asked}");
    assert_eq!(json!(i.header)["backing-name-length"], json!(u32::MAX));

    // qcow2 claiming 70000 internal snapshots, table asked for.
    put(&mut q, 8, &0u64.to_be_bytes());
    put(&mut q, 16, &0u32.to_be_bytes());
    put(&mut q, 60, &70000u32.to_be_bytes());
    put(&mut q, 64, &(1u64 << 16).to_be_bytes());
    let len = q.len() as u64;
    let r = probe_with_opts(
        Some(len),
        &ProbeOptions { snapshots: true },
        |o, l| -> Result<Vec<u8>, ()> {
            Ok(q[o.min(len) as usize..o.saturating_add(l).min(len) as usize].to_vec())
        },
    );
    match r {
        Err(ProbeOrIo::Probe(e)) => assert_eq!(e.offset, 60, "{e}"),
        _ => panic!("70000 snapshots must be refused"),
    }

    // VHD whose dynamic header offset is past the end of the file.
    let mut v = differencing_vhd();
    put(&mut v, 16, &(1u64 << 40).to_be_bytes());
    let e = probe_mem(&v, true).0.expect_err("data offset");
    assert_eq!(e.offset, 1 << 40, "{e}");

    // VHDX metadata region offset absurd.
    let mut x = differencing_vhdx(2 << 20);
    put(&mut x, 192 * 1024 + 64, &u64::MAX.to_le_bytes());
    let e = probe_mem(&x, true).0.expect_err("metadata offset");
    assert!(e.message.contains("metadata"), "{e}");

    // VMDK sparse header whose descriptor is 1 TiB into a small file.
    let mut k = vec![0u8; 4096];
    put(&mut k, 0, b"KDMV");
    put(&mut k, 4, &1u32.to_le_bytes());
    put(&mut k, 12, &2048u64.to_le_bytes());
    put(&mut k, 20, &128u64.to_le_bytes());
    put(&mut k, 28, &(1u64 << 31).to_le_bytes());
    put(&mut k, 36, &20u64.to_le_bytes());
    let e = probe_mem(&k, true).0.expect_err("descriptor offset");
    assert_eq!(e.offset, 1 << 40, "{e}");

    // VMDK descriptor size above the 1 MiB cap.
    put(&mut k, 28, &1u64.to_le_bytes());
    put(&mut k, 36, &(1u64 << 20).to_le_bytes());
    let e = probe_mem(&k, true).0.expect_err("descriptor size");
    assert_eq!(e.offset, 36, "{e}");
}

/// A text descriptor with 1.5 MB of text: the read stops at qemu's 1 MiB cap
/// and says so.
#[test]
fn huge_text_descriptor_is_capped() {
    let mut t = b"# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"x-flat.vmdk\" 0\n".to_vec();
    while t.len() < 1_500_000 {
        t.extend_from_slice(b"# padding padding padding padding padding padding\n");
    }
    let (r, read) = probe_mem(&t, true);
    let i = r.expect("descriptor");
    assert_eq!((i.format, i.virtual_size), (Format::Vmdk, Some(2048 * 512)));
    assert!(i
        .diagnostics
        .iter()
        .any(|d| d.code == Code::VmdkDescriptorCap));
    // The first 4 KiB and the 7 bytes at 32768 asked with them, then the
    // descriptor up to the cap.
    assert!(read <= 4096 + 7 + (1 << 20), "read {read}");
}

#[test]
fn probe_step_contract_first_read() {
    let reads = Reads::new(Some(1 << 30));
    match backing_chain::image::probe(&reads).expect("step") {
        Step::Need(r) => assert_eq!((r[0].offset, r[0].len), (0, 4096)),
        Step::Done(_) => panic!("nothing read yet"),
    }
}

/// qemu-img 10 refuses to create a backing reference without a format, so
/// one is made with `-F` and its backing-format extension (0xE2792ACA) is
/// turned into the end marker: qemu-img then reports no format, as must we.
#[test]
fn qcow2_backing_without_recorded_format() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "1G"],
        dir.path(),
    );
    run(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "c.qcow2",
        ],
        dir.path(),
    );
    let path = dir.path().join("c.qcow2");
    let mut b = std::fs::read(&path).expect("read");
    let at = b[..4096]
        .windows(4)
        .position(|w| w == [0xE2, 0x79, 0x2A, 0xCA])
        .expect("backing format extension");
    b[at..at + 4].fill(0);
    std::fs::write(&path, &b).expect("write");
    let (info, _) = probe_file(&path, ProbeOptions::default());
    let q = oracle(dir.path(), "c.qcow2", None);
    assert_eq!(
        q.get("backing-filename-format"),
        None,
        "qemu sees no recorded format"
    );
    assert_same(&info, &q, "c.qcow2");
    assert_eq!(info.backing_filename.as_deref(), Some("base.qcow2"));
}

/// A `vmfs` descriptor (qemu-img cannot create one; it reads them): written
/// by hand after VMware's descriptor format, checked against qemu-img.
#[test]
fn vmdk_vmfs_descriptor_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let desc = "# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW 204800 VMFS \"disk-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = \"lsilogic\"\n";
    std::fs::write(dir.path().join("disk.vmdk"), desc).expect("write");
    let f = File::create(dir.path().join("disk-flat.vmdk")).expect("create");
    f.set_len(204800 * 512).expect("set_len");
    let (info, read) = probe_file(&dir.path().join("disk.vmdk"), ProbeOptions::default());
    let q = oracle(dir.path(), "disk.vmdk", None);
    assert_same(&info, &q, "vmfs");
    assert_same_specific(&info, &q, "vmfs");
    assert_eq!(read, desc.len() as u64);
}

/// qcow2 v3 with an unknown incompatible bit that the image's own
/// feature-name table (extension 0x6803f857, qcow2.rst "Feature name table")
/// names: the diagnostic uses that name.
#[test]
fn qcow2_unknown_bit_named_by_its_table() {
    let mut q = vec![0u8; 4096];
    put(&mut q, 0, b"QFI\xfb");
    put(&mut q, 4, &3u32.to_be_bytes());
    put(&mut q, 20, &16u32.to_be_bytes());
    put(&mut q, 24, &(1u64 << 30).to_be_bytes());
    put(&mut q, 72, &(1u64 << 9).to_be_bytes());
    put(&mut q, 96, &4u32.to_be_bytes());
    put(&mut q, 100, &104u32.to_be_bytes());
    put(&mut q, 104, &0x6803_f857u32.to_be_bytes());
    put(&mut q, 108, &48u32.to_be_bytes());
    q[112] = 0; // incompatible
    q[113] = 9;
    put(&mut q, 114, b"time-travel");
    let (r, _) = probe_mem(&q, true);
    let info = r.expect("probes");
    let d = info
        .diagnostics
        .iter()
        .find(|d| d.code == Code::Qcow2UnknownIncompatible)
        .expect("diagnostic");
    assert!(d.message.contains("bit 9 'time-travel'"), "{}", d.message);
}

/// LUKS2 binary header (LUKS2 On-Disk Format Specification §2: magic,
/// version 2, header size, sequence id, label, checksum algorithm, salt,
/// uuid, subsystem, header offset): recognised, qemu's limit stated.
#[test]
fn luks2_is_recognised_not_opened() {
    let mut b = vec![0u8; 16384];
    put(&mut b, 0, b"LUKS\xba\xbe");
    put(&mut b, 6, &2u16.to_be_bytes());
    put(&mut b, 8, &16384u64.to_be_bytes());
    put(&mut b, 16, &7u64.to_be_bytes());
    put(&mut b, 24, b"my-label");
    put(&mut b, 72, b"sha256");
    put(&mut b, 168, b"8d3e0a1c-7c2e-4f6b-9a0e-123456789abc");
    let (r, _) = probe_mem(&b, true);
    let i = r.expect("probes");
    assert_eq!(i.format, Format::Luks);
    assert!(i.encrypted);
    let h = json!(i.header.expect("header"));
    assert_eq!(
        (h["version"].clone(), h["label"].clone()),
        (json!(2), json!("my-label"))
    );
    assert!(i
        .diagnostics
        .iter()
        .any(|d| d.code == Code::Luks2Unsupported));
}

/// streamOptimized with the grain directory at the end (Virtual Disk Format
/// 5.0, "Stream-Optimized Compressed Sparse Extents": `gdOffset` =
/// GD_AT_END, and a footer — marker sector of type 3, then a copy of the
/// header, then the end-of-stream marker — in the last 1536 bytes, whose
/// header is authoritative). The footer here says 8 GiB, the first header 0.
#[test]
fn vmdk_stream_footer_header_wins() {
    let sparse_header = |capacity: u64| {
        let mut h = vec![0u8; 512];
        put(&mut h, 0, b"KDMV");
        put(&mut h, 4, &3u32.to_le_bytes());
        put(&mut h, 8, &0x0003_0001u32.to_le_bytes());
        put(&mut h, 12, &capacity.to_le_bytes());
        put(&mut h, 20, &128u64.to_le_bytes());
        put(&mut h, 28, &1u64.to_le_bytes());
        put(&mut h, 36, &2u64.to_le_bytes());
        put(&mut h, 44, &512u32.to_le_bytes());
        put(&mut h, 56, &u64::MAX.to_le_bytes());
        put(&mut h, 77, &1u16.to_le_bytes());
        h
    };
    let mut file = vec![0u8; 8192];
    put(&mut file, 0, &sparse_header(0));
    put(
        &mut file,
        512,
        b"# Disk DescriptorFile\nversion=1\nCID=0000abcd\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\nRW 16777216 SPARSE \"s.vmdk\"\n",
    );
    let mut marker = vec![0u8; 512];
    put(&mut marker, 12, &3u32.to_le_bytes());
    file.extend_from_slice(&marker);
    file.extend_from_slice(&sparse_header(16_777_216));
    file.extend_from_slice(&[0u8; 512]);
    let (r, read) = probe_mem(&file, true);
    let i = r.expect("probes");
    assert_eq!(i.virtual_size, Some(16_777_216 * 512));
    assert_eq!(i.cluster_size, Some(65536));
    assert_eq!(i.identity.and_then(|x| x.id).as_deref(), Some("0000abcd"));
    assert_eq!(read, 4096 + 1536);
    // Without the file length the footer cannot be found: said, not guessed.
    let (r, _) = probe_mem(&file, false);
    let i = r.expect("probes");
    assert!(i
        .diagnostics
        .iter()
        .any(|d| d.code == Code::VmdkFooterUnread));
}

/// A backing name that is not UTF-8 is kept byte for byte, the bad bytes
/// escaped, and flagged.
#[test]
fn non_utf8_backing_name_is_escaped_and_flagged() {
    let mut q = vec![0u8; 4096];
    put(&mut q, 0, b"QFI\xfb");
    put(&mut q, 4, &2u32.to_be_bytes());
    put(&mut q, 8, &512u64.to_be_bytes());
    put(&mut q, 16, &9u32.to_be_bytes());
    put(&mut q, 20, &16u32.to_be_bytes());
    put(&mut q, 24, &(1u64 << 30).to_be_bytes());
    put(&mut q, 512, b"base\xff.img");
    let (r, _) = probe_mem(&q, true);
    let i = r.expect("probes");
    assert_eq!(i.backing_filename.as_deref(), Some("base\\xff.img"));
    assert!(i.diagnostics.iter().any(|d| d.code == Code::NameNotUtf8));
}

/// Hostile: a VHD parent locator whose data lies 1 TiB in, far past the end
/// of the file. An error naming the locator, or facts without it; never a
/// read past what the file holds, never a panic.
#[test]
fn vhd_parent_locator_past_eof_is_bounded() {
    let mut file = differencing_vhd();
    // First locator entry (576 in the dynamic header at 512): data offset.
    put(&mut file, 512 + 576 + 16, &(1u64 << 40).to_be_bytes());
    let mut d = file[512..1536].to_vec();
    put(&mut d, 36, &[0; 4]);
    let c = vhd_checksum(&d);
    put(&mut file, 512 + 36, &c.to_be_bytes());
    for known in [true, false] {
        let (r, read) = probe_mem(&file, known);
        assert!(read <= file.len() as u64 + 4096, "read {read}");
        match r {
            Err(e) => assert!(e.to_string().contains("locator"), "{e}"),
            Ok(info) => assert_ne!(info.backing_filename.as_deref(), Some(".\\base.vhd")),
        }
    }
}
