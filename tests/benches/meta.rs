//! Benchmark of issue 17: a 100 GiB qcow2 with half of its clusters
//! allocated (made sparse: `preallocation=metadata` for 50 GiB, then grown to
//! 100 GiB), made with qemu-img.
//!
//! * allocation + map, in process (probe, walk of L1 and L2 tables, chain
//!   map): bytes read and time. Targets: under 1 s, under 0.1 % of the file.
//! * `backing-chain check --json` versus `qemu-img check --output=json` on
//!   the same image, whole processes, alternated; the figure is the median
//!   of the per-round ratios qemu-img time / ours. Target: ≥ 1× (at least as
//!   fast). Both give the same figures (checked first).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use backing_chain::{image, meta};

const OURS: &str = env!("CARGO_BIN_EXE_backing-chain");

fn read_at(f: &std::fs::File, off: u64, n: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; n as usize];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64)? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Probe, walk and map `path` in process: (bytes read, allocated bytes).
fn alloc_and_map(path: &Path) -> (u64, u64) {
    let f = std::fs::File::open(path).expect("open");
    let len = f.metadata().expect("stat").len();
    let (info, probe_bytes) =
        image::probe_with(Some(len), |o, n| read_at(&f, o, n)).expect("probe");
    let layer = meta::walk_with(&info, len, meta::WalkOptions::default(), |o, n| {
        read_at(&f, o, n)
    })
    .expect("walk");
    let map = meta::chain_map(&[&layer]);
    std::hint::black_box(&map);
    (probe_bytes + layer.bytes_read, layer.allocation.allocated())
}

fn run(cmd: &mut Command) -> Vec<u8> {
    cmd.stderr(Stdio::null()).output().expect("spawn").stdout
}

fn main() {
    if !common::qemu_img_available() {
        common::report("meta: 100 GiB qcow2", "skipped: no qemu-img", "-", None);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    common::qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "preallocation=metadata",
            "big.qcow2",
            "50G",
        ],
        d,
    )
    .expect("qemu-img create");
    common::qemu_img(&["resize", "-q", "big.qcow2", "100G"], d).expect("qemu-img resize");
    let img = d.join("big.qcow2");
    let file_len = std::fs::metadata(&img).expect("stat").len();

    // Allocation + map: time (median of rounds) and bytes read.
    let rounds = common::rounds(7);
    let (bytes, allocated) = alloc_and_map(&img);
    assert_eq!(allocated, 50 << 30, "half of the clusters allocated");
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(alloc_and_map(&img));
        times.push(t.elapsed().as_secs_f64());
    }
    let t = common::median(&mut times);
    let virtual_size = 100u64 << 30;
    let pct = bytes as f64 * 100.0 / virtual_size as f64;
    common::report(
        "meta: allocation + map of a 100 GiB qcow2 (50 % allocated), native",
        &format!(
            "{} ; read {:.2} MiB = {pct:.4} % of the virtual size ({:.4} % of the {:.1} GiB file)",
            common::fmt_time(t),
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 * 100.0 / file_len as f64,
            file_len as f64 / (1u64 << 30) as f64
        ),
        "< 1 s, < 0.1 %",
        Some(t < 1.0 && pct < 0.1),
    );

    // check: same figures, then alternated whole-process timing.
    let name = img.to_string_lossy().into_owned();
    let ours = || run(Command::new(OURS).args(["check", "--json", &name]));
    let qemu = || run(Command::new("qemu-img").args(["check", "--output=json", &name]));
    let a: serde_json::Value = serde_json::from_slice(&ours()).expect("our JSON");
    let b: serde_json::Value = serde_json::from_slice(&qemu()).expect("qemu-img JSON");
    for (k, v) in b.as_object().expect("object") {
        assert_eq!(a[0].get(k), Some(v), "check {k}");
    }
    let (mut to, mut tq, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..common::rounds(9) {
        let time = |f: &dyn Fn() -> Vec<u8>| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        };
        let (o, q) = if i % 2 == 0 {
            let o = time(&ours);
            (o, time(&qemu))
        } else {
            let q = time(&qemu);
            (time(&ours), q)
        };
        to.push(o);
        tq.push(q);
        r.push(q / o);
    }
    let (o, q, ratio) = (
        common::median(&mut to),
        common::median(&mut tq),
        common::median(&mut r),
    );
    common::report(
        "meta: check of a 100 GiB qcow2 vs qemu-img check",
        &format!(
            "{ratio:.2}× qemu-img's speed (ours {}, qemu-img {})",
            common::fmt_time(o),
            common::fmt_time(q)
        ),
        "≥ 1×",
        Some(ratio >= 1.0),
    );
}
