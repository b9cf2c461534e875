//! Metadata walks (`backing_chain::meta`) against qemu-img: every figure of
//! `backing-chain map|measure|check --json` is compared with `qemu-img map
//! --output=json`, `qemu-img measure --output=json -O qcow2` and `qemu-img
//! check --output=json` on the same images, made here with qemu-img and
//! written with qemu-io (data, zeroes, compressed writes, discards), and on
//! images broken on purpose. Nothing expected is copied from our output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::image;
use backing_chain::meta::{self, Kind, Layer, Walk, WalkOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

fn need_tools() -> bool {
    if common::have_qemu_img() && common::tool("qemu-io") {
        true
    } else {
        common::skip("qemu-img or qemu-io is not installed");
        false
    }
}

fn run(cmd: &str, args: &[&str], dir: &Path) -> String {
    let o = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn create(dir: &Path, name: &str, opts: &str, size: &str, backing: Option<(&str, &str)>) {
    let mut a = vec!["create", "-q", "-f", "qcow2"];
    if !opts.is_empty() {
        a.extend(["-o", opts]);
    }
    if let Some((b, f)) = backing {
        a.extend(["-b", b, "-F", f]);
    }
    a.extend([name, size]);
    run("qemu-img", &a, dir);
}

/// qemu-io commands on one image (`-f FORMAT`).
fn io(dir: &Path, name: &str, fmt: &str, cmds: &[&str]) {
    let mut a = vec!["-f", fmt];
    for c in cmds {
        a.extend(["-c", c]);
    }
    a.push(name);
    run("qemu-io", &a, dir);
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn ours(dir: &Path, cmd: &str, name: &str) -> Value {
    let o = Command::new(BIN)
        .args([cmd, "--json", name])
        .current_dir(dir)
        .output()
        .expect("backing-chain runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.is_empty(),
        "backing-chain {cmd} {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&out)[0].clone()
}

/// Our map of `name`'s chain equals qemu-img's, entry for entry.
fn same_map(dir: &Path, name: &str) -> Value {
    let theirs = json(&run("qemu-img", &["map", "--output=json", name], dir));
    let o = ours(dir, "map", name);
    assert_eq!(o["map"], theirs, "map of {name}");
    o
}

/// Our measure equals qemu-img's (required, fully-allocated, bitmaps).
fn same_measure(dir: &Path, name: &str) {
    let theirs = json(&run(
        "qemu-img",
        &["measure", "--output=json", "-O", "qcow2", name],
        dir,
    ));
    let o = ours(dir, "measure", name);
    for k in ["required", "fully-allocated", "bitmaps"] {
        assert_eq!(o.get(k), theirs.get(k), "measure {k} of {name}");
    }
}

/// qemu-img check's JSON (it exits 2 for corruptions, 3 for leaks).
fn qemu_check(dir: &Path, name: &str) -> Value {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", name])
        .current_dir(dir)
        .output()
        .expect("qemu-img check runs");
    json(&String::from_utf8_lossy(&o.stdout))
}

/// Every key qemu-img check prints, with the same value in ours; and ours
/// prints no figure qemu-img leaves out (it omits zeroes).
fn same_check(dir: &Path, name: &str) -> Value {
    let theirs = qemu_check(dir, name);
    let o = ours(dir, "check", name);
    let t = theirs.as_object().expect("object");
    for (k, v) in t {
        assert_eq!(o.get(k), Some(v), "check {k} of {name}: ours {o:#}");
    }
    for k in [
        "corruptions",
        "leaks",
        "image-end-offset",
        "total-clusters",
        "allocated-clusters",
        "fragmented-clusters",
        "compressed-clusters",
    ] {
        assert_eq!(
            o.get(k).is_some(),
            t.contains_key(k),
            "check key {k} of {name}: ours {o:#}, qemu-img {theirs:#}"
        );
    }
    o
}

fn all_three(dir: &Path, name: &str) -> Value {
    let m = same_map(dir, name);
    same_measure(dir, name);
    same_check(dir, name);
    m
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn chain_of_three_v3_with_data_zeroes_compressed_and_discards() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "base.qcow2", "", "8M", None);
    io(
        d,
        "base.qcow2",
        "qcow2",
        &[
            "write -P 1 0 2M",
            "write -z 2M 256k",
            "write -c -P 2 3M 192k",
            "write -P 3 5M 64k",
            "discard 5M 64k",
            "write -P 4 7M 128k",
        ],
    );
    create(d, "mid.qcow2", "", "8M", Some(("base.qcow2", "qcow2")));
    io(
        d,
        "mid.qcow2",
        "qcow2",
        &[
            "write -P 5 1M 512k",
            "write -z 3M 64k",
            "discard 0 64k",
            "write -c -P 6 6M 64k",
        ],
    );
    create(d, "top.qcow2", "", "12M", Some(("mid.qcow2", "qcow2")));
    io(
        d,
        "top.qcow2",
        "qcow2",
        &["write -P 7 1200k 8k", "write -z 4M 1M", "write -P 8 10M 1M"],
    );
    for n in ["base.qcow2", "mid.qcow2", "top.qcow2"] {
        all_three(d, n);
    }
    // Each layer provides something; the sums tile the disk.
    let m = same_map(d, "top.qcow2");
    let s = &m["summary"];
    let provided: u64 = s["provides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        provided + s["never-written"].as_u64().unwrap(),
        12 << 20,
        "{s:#}"
    );
    for p in s["provides"].as_array().unwrap() {
        assert!(p["bytes"].as_u64().unwrap() > 0, "{s:#}");
    }
}

#[test]
fn version_2_images() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "base.qcow2", "compat=0.10", "4M", None);
    io(
        d,
        "base.qcow2",
        "qcow2",
        &[
            "write -P 1 0 1M",
            "write -c -P 2 2M 128k",
            "write -z 3M 64k",
        ],
    );
    create(
        d,
        "top.qcow2",
        "compat=0.10",
        "4M",
        Some(("base.qcow2", "qcow2")),
    );
    io(
        d,
        "top.qcow2",
        "qcow2",
        &["write -P 3 512k 64k", "write -z 0 64k"],
    );
    all_three(d, "base.qcow2");
    all_three(d, "top.qcow2");
}

#[test]
fn extended_l2_subclusters() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "base.qcow2", "extended_l2=on", "4M", None);
    io(
        d,
        "base.qcow2",
        "qcow2",
        &[
            "write -P 1 0 4k",
            "write -P 1 8k 12k",
            "write -z 64k 6k",
            "write -P 2 1M 64k",
            "write -z 1M 2k",
            "write -c -P 3 2M 64k",
        ],
    );
    create(
        d,
        "top.qcow2",
        "extended_l2=on,cluster_size=128k",
        "4M",
        Some(("base.qcow2", "qcow2")),
    );
    io(
        d,
        "top.qcow2",
        "qcow2",
        &["write -P 4 4k 4k", "write -z 1M 16k", "discard 2M 4k"],
    );
    all_three(d, "base.qcow2");
    all_three(d, "top.qcow2");
}

#[test]
fn external_data_file_raw_and_not() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    for (name, raw) in [("a.qcow2", "on"), ("b.qcow2", "off")] {
        create(
            d,
            name,
            &format!("data_file={name}.data,data_file_raw={raw}"),
            "4M",
            None,
        );
        io(
            d,
            name,
            "qcow2",
            &["write -P 1 64k 1M", "write -z 2M 64k", "discard 3M 64k"],
        );
        same_map(d, name);
        same_check(d, name);
        same_measure(d, name);
    }
}

#[test]
fn cluster_sizes_and_refcount_widths() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    // Writes cover whole clusters: without a backing, qemu leaves the rest
    // of a partly written cluster as a hole in the host file, and when the
    // file has fewer blocks than allocated clusters `qemu-img map` reports
    // those holes as zeroes (qcow2's metadata-preallocation heuristic, a
    // host file system fact no metadata holds).
    for (i, (opts, data, cs)) in [
        ("cluster_size=512", "write -P 1 1000k 1100k", "512"),
        ("cluster_size=2M", "write -P 1 0 2M", "2M"),
        ("refcount_bits=1", "write -P 1 960k 1152k", "64k"),
        ("refcount_bits=64", "write -P 1 960k 1152k", "64k"),
        (
            "cluster_size=4k,refcount_bits=2",
            "write -P 1 1000k 1100k",
            "4k",
        ),
    ]
    .iter()
    .enumerate()
    {
        let n = format!("i{i}.qcow2");
        create(d, &n, opts, "6M", None);
        io(
            d,
            &n,
            "qcow2",
            &[
                data,
                "write -z 2304k 512k",
                &format!("write -c -P 2 4M {cs}"),
            ],
        );
        all_three(d, &n);
    }
}

#[test]
fn internal_snapshots_and_bitmaps() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "s.qcow2", "", "4M", None);
    io(d, "s.qcow2", "qcow2", &["write -P 1 0 1M"]);
    run("qemu-img", &["snapshot", "-c", "one", "s.qcow2"], d);
    io(d, "s.qcow2", "qcow2", &["write -P 2 512k 1M"]);
    run("qemu-img", &["snapshot", "-c", "two", "s.qcow2"], d);
    io(
        d,
        "s.qcow2",
        "qcow2",
        &["write -P 3 0 64k", "write -c -P 4 3M 64k"],
    );
    run(
        "qemu-img",
        &["bitmap", "--add", "-g", "64k", "s.qcow2", "b1"],
        d,
    );
    run("qemu-img", &["bitmap", "--add", "s.qcow2", "second"], d);
    let c = same_check(d, "s.qcow2");
    assert!(c.get("corruptions").is_none(), "{c:#}");
    same_map(d, "s.qcow2");
    same_measure(d, "s.qcow2");
}

#[test]
fn raw_base_fully_written() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", "base.raw", "2M"],
        d,
    );
    // Every byte written: no holes, so qemu-img sees what we see.
    io(d, "base.raw", "raw", &["write -P 9 0 2M"]);
    create(d, "top.qcow2", "", "3M", Some(("base.raw", "raw")));
    io(d, "top.qcow2", "qcow2", &["write -P 1 64k 64k"]);
    let m = same_map(d, "top.qcow2");
    same_measure(d, "top.qcow2");
    assert_eq!(
        m["layers"][1]["allocation"]["fully-allocated-by-definition"],
        true
    );
}

// ---- Images broken on purpose ----

fn be64_at(f: &Path, at: u64) -> u64 {
    let b = std::fs::read(f).unwrap();
    u64::from_be_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

fn put64(f: &Path, at: u64, v: u64) {
    let mut b = std::fs::read(f).unwrap();
    b[at as usize..at as usize + 8].copy_from_slice(&v.to_be_bytes());
    std::fs::write(f, b).unwrap();
}

fn put16(f: &Path, at: u64, v: u16) {
    let mut b = std::fs::read(f).unwrap();
    b[at as usize..at as usize + 2].copy_from_slice(&v.to_be_bytes());
    std::fs::write(f, b).unwrap();
}

const OFF: u64 = 0x00ff_ffff_ffff_fe00;

/// (L2 table offset of L1 entry 0, file offset of L2 entry `j`).
fn l2_entry_at(f: &Path, j: u64) -> (u64, u64) {
    let l1 = be64_at(f, 40);
    let l2 = be64_at(f, l1) & OFF;
    (l2, l2 + j * 8)
}

/// File offset of the 16-bit refcount of host cluster `k` (64 KiB clusters).
fn refcount_at(f: &Path, k: u64) -> u64 {
    let rt = be64_at(f, 48);
    let block = be64_at(f, rt + (k >> 15) * 8) & !0x1ff;
    block + (k & 0x7fff) * 2
}

/// A fresh image with 4 data clusters at guest 0..256k.
fn victim(d: &Path, name: &str) -> PathBuf {
    create(d, name, "", "4M", None);
    io(d, name, "qcow2", &["write -P 1 0 256k"]);
    d.join(name)
}

#[test]
fn broken_images_check_like_qemu_img() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();

    // A leaked cluster: the L2 entry cleared after the write.
    let f = victim(d, "leak.qcow2");
    let (_, e) = l2_entry_at(&f, 1);
    put64(&f, e, 0);
    let c = same_check(d, "leak.qcow2");
    assert_eq!(c["leaks"], 1, "{c:#}");
    assert!(c["advice"].as_str().unwrap().contains("-r leaks"));

    // Refcount 0 for a used cluster.
    let f = victim(d, "rc0.qcow2");
    let (_, e) = l2_entry_at(&f, 2);
    let host = be64_at(&f, e) & OFF;
    put16(&f, refcount_at(&f, host >> 16), 0);
    let c = same_check(d, "rc0.qcow2");
    assert!(c["corruptions"].as_u64().unwrap() >= 1, "{c:#}");
    assert!(c["advice"].as_str().unwrap().contains("-r all"));

    // Refcount 2 for a cluster used once: a leak and a wrong COPIED flag.
    let f = victim(d, "rc2.qcow2");
    let (_, e) = l2_entry_at(&f, 0);
    let host = be64_at(&f, e) & OFF;
    put16(&f, refcount_at(&f, host >> 16), 2);
    same_check(d, "rc2.qcow2");

    // Two L2 entries pointing to one cluster.
    let f = victim(d, "twice.qcow2");
    let (_, e0) = l2_entry_at(&f, 0);
    let (_, e3) = l2_entry_at(&f, 3);
    put64(&f, e3, be64_at(&f, e0));
    same_check(d, "twice.qcow2");

    // An L2 entry past the end of the file.
    let f = victim(d, "eof.qcow2");
    let (_, e) = l2_entry_at(&f, 1);
    let len = std::fs::metadata(&f).unwrap().len();
    put64(&f, e, (1 << 63) | (len + (10 << 16)));
    same_check(d, "eof.qcow2");

    // Reserved bits in an L2 entry, and an unaligned data offset.
    let f = victim(d, "reserved.qcow2");
    let (_, e) = l2_entry_at(&f, 1);
    put64(&f, e, be64_at(&f, e) | 0x2);
    let (_, e) = l2_entry_at(&f, 2);
    put64(&f, e, be64_at(&f, e) | 0x1000);
    same_check(d, "reserved.qcow2");

    // An L1 entry with reserved bits and without its COPIED flag.
    let f = victim(d, "l1.qcow2");
    let l1 = be64_at(&f, 40);
    put64(&f, l1, (be64_at(&f, l1) & !(1 << 63)) | (1 << 60));
    same_check(d, "l1.qcow2");
}

// ---- The core, without qemu ----

fn layer_of(bytes: &[u8], opts: WalkOptions) -> Result<Layer, String> {
    let len = bytes.len() as u64;
    let read = |o: u64, n: u64| -> Result<Vec<u8>, std::convert::Infallible> {
        let s = (o as usize).min(bytes.len());
        let e = (o.saturating_add(n) as usize).min(bytes.len());
        Ok(bytes[s..e].to_vec())
    };
    let (info, _) = image::probe_with(Some(len), read).map_err(|e| e.to_string())?;
    meta::walk_with(&info, len, opts, read).map_err(|e| e.to_string())
}

#[test]
fn plan_is_an_upper_bound_then_exact() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "p.qcow2", "", "1G", None);
    io(
        d,
        "p.qcow2",
        "qcow2",
        &["write -P 1 0 1M", "write -P 1 600M 1M"],
    );
    let bytes = std::fs::read(d.join("p.qcow2")).unwrap();
    let len = bytes.len() as u64;
    let read = |o: u64, n: u64| -> Result<Vec<u8>, std::convert::Infallible> {
        Ok(bytes[o as usize..(o + n).min(len) as usize].to_vec())
    };
    let (info, _) = image::probe_with(Some(len), read).unwrap();
    for check in [false, true] {
        let mut w = Walk::new(&info, len, WalkOptions { check }).unwrap();
        let before = w.plan();
        assert!(!before.exact);
        let mut rounds = 0;
        let mut exact_seen = None;
        loop {
            let need = w.need().unwrap();
            if need.is_empty() {
                break;
            }
            rounds += 1;
            let p = w.plan();
            if p.exact && exact_seen.is_none() {
                exact_seen = Some(p.bytes_total);
            }
            for r in need {
                assert!(r.len <= backing_chain::limits::MAX_READ);
                w.feed(r, &read(r.offset, r.len).unwrap()).unwrap();
            }
        }
        let read_total = w.plan().bytes_read;
        let layer = w.finish().unwrap();
        assert_eq!(exact_seen, Some(read_total), "check={check}");
        assert!(before.bytes_total >= read_total);
        // One L1 round, then the two L2 tables (and, with check, a round of
        // refcount blocks between).
        assert_eq!(rounds, if check { 3 } else { 2 });
        assert_eq!(layer.allocation.data, 2 << 20);
        assert_eq!(layer.bytes_read, read_total);
        // Metadata only: a tiny part of the file.
        assert!(read_total < len / 4, "{read_total} of {len}");
    }
}

#[test]
fn hostile_tables_give_errors_not_hangs() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "h.qcow2", "", "64M", None);
    io(d, "h.qcow2", "qcow2", &["write -P 1 0 128k"]);
    let good = std::fs::read(d.join("h.qcow2")).unwrap();
    // An L1 table of 2^32-1 entries.
    let mut b = good.clone();
    b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = layer_of(&b, WalkOptions::default()).unwrap_err();
    assert!(e.contains("L1"), "{e}");
    // The L1 table past the end of the file: zeroes, with a diagnostic.
    let mut b = good.clone();
    b[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes());
    let l = layer_of(&b, WalkOptions { check: true }).unwrap();
    assert_eq!(l.allocation.unallocated, 64 << 20);
    assert!(l.diagnostics.iter().any(|d| d.code == "meta-past-eof"));
    // Every L1 entry pointing at the L1 table itself (a "loop").
    let mut b = good.clone();
    let l1 = u64::from_be_bytes(b[40..48].try_into().unwrap());
    for i in 0..1u64 {
        let at = (l1 + i * 8) as usize;
        b[at..at + 8].copy_from_slice(&l1.to_be_bytes());
    }
    let l = layer_of(&b, WalkOptions { check: true }).unwrap();
    assert!(l.check.unwrap().corruptions > 0);
}

/// A small deterministic generator (xorshift), for the property tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_tables_never_panic_and_allocation_fits_the_disk() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "r.qcow2", "cluster_size=4k", "16M", None);
    io(
        d,
        "r.qcow2",
        "qcow2",
        &["write -P 1 0 64k", "write -P 2 8M 64k"],
    );
    let good = std::fs::read(d.join("r.qcow2")).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut b = good.clone();
        // Scribble over metadata clusters (after the header).
        for _ in 0..(1 + rng.next() % 24) {
            let at = 4096 + (rng.next() % (b.len() as u64 - 4104)) as usize;
            let v = match rng.next() % 4 {
                0 => rng.next(),
                1 => rng.next() & 0x00ff_ffff_ffff_fe00,
                2 => (rng.next() % (b.len() as u64 * 2)) & !0xfff,
                _ => 0,
            };
            b[at..at + 8].copy_from_slice(&v.to_be_bytes());
        }
        for check in [false, true] {
            if let Ok(l) = layer_of(&b, WalkOptions { check }) {
                let a = &l.allocation;
                assert_eq!(
                    a.data + a.zero + a.compressed + a.unallocated,
                    a.virtual_size,
                    "round {round}"
                );
                let mut pos = 0;
                for e in &l.extents {
                    assert_eq!(e.start, pos, "round {round}");
                    pos += e.length;
                }
                assert_eq!(pos, l.virtual_size, "round {round}");
            }
        }
    }
}

#[test]
fn chain_maps_tile_the_disk() {
    let mut rng = Rng(42);
    for _ in 0..500 {
        let depth = 1 + (rng.next() % 4) as usize;
        let layers: Vec<Layer> = (0..depth)
            .map(|_| {
                let size = 1 + rng.next() % 5000;
                let mut ext = Vec::new();
                let mut pos = 0;
                while pos < size {
                    let len = (1 + rng.next() % 700).min(size - pos);
                    let kind = match rng.next() % 4 {
                        0 => Kind::Data,
                        1 => Kind::Zero,
                        2 => Kind::Compressed,
                        _ => Kind::Unallocated,
                    };
                    let offset = (kind == Kind::Data).then(|| rng.next() % 100_000);
                    ext.push(meta::Extent {
                        start: pos,
                        length: len,
                        kind,
                        offset,
                    });
                    pos += len;
                }
                Layer {
                    format: image::Format::Qcow2,
                    virtual_size: size,
                    cluster_size: None,
                    allocation: Default::default(),
                    extents: ext,
                    check: None,
                    bytes_read: 0,
                    diagnostics: Vec::new(),
                }
            })
            .collect();
        let refs: Vec<&Layer> = layers.iter().collect();
        let map = meta::chain_map(&refs);
        let mut pos = 0;
        for e in &map {
            assert_eq!(e.start, pos);
            assert!(e.length > 0);
            assert!(e.depth < depth);
            pos += e.length;
        }
        assert_eq!(pos, layers[0].virtual_size);
        let s = meta::summary(depth, &map);
        let sum: u64 = s.provides.iter().map(|p| p.bytes).sum();
        assert_eq!(sum + s.never_written, layers[0].virtual_size);
        let m = meta::measure(layers[0].virtual_size, &map, None);
        assert!(m.required <= m.fully_allocated);
    }
}

/// Every input the `meta` fuzz target found failing, through what it
/// checks (`tests/fixtures/meta-regressions/`, the fuzz input layout).
#[test]
fn fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta-regressions");
    for e in std::fs::read_dir(&dir).expect("regressions dir") {
        let data = std::fs::read(e.expect("entry").path()).expect("read");
        let Some(file) = common::fuzz_input::FuzzFile::parse(&data) else {
            continue;
        };
        let Ok((info, _)) = image::probe_with(Some(file.len), |o, n| {
            Ok::<_, std::convert::Infallible>(file.read(o, n))
        }) else {
            continue;
        };
        for check in [false, true] {
            if let Ok(l) = meta::walk_with(&info, file.len, WalkOptions { check }, |o, n| {
                Ok::<_, std::convert::Infallible>(file.read(o, n))
            }) {
                let pos: u64 = l.extents.iter().map(|e| e.length).sum();
                assert_eq!(pos, l.virtual_size);
            }
        }
    }
}

/// A LUKS-encrypted qcow2: qemu-img needs the secret to map and check it;
/// the tables are not encrypted, so we need none. Same figures, no offsets
/// in the map (qemu gives none for encrypted clusters).
#[test]
fn encrypted_image_without_its_secret() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    let secret = "--object=secret,id=s0,data=pw";
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            secret,
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
            "e.qcow2",
            "4M",
        ],
        d,
    );
    let opts = "driver=qcow2,file.filename=e.qcow2,encrypt.key-secret=s0";
    run(
        "qemu-io",
        &[
            secret,
            "--image-opts",
            "-c",
            "write -P 1 0 1M",
            "-c",
            "write -z 2M 64k",
            opts,
        ],
        d,
    );
    let theirs = json(&run(
        "qemu-img",
        &["map", "--output=json", secret, "--image-opts", opts],
        d,
    ));
    assert_eq!(ours(d, "map", "e.qcow2")["map"], theirs);
    let theirs = json(&run(
        "qemu-img",
        &["check", "--output=json", secret, "--image-opts", opts],
        d,
    ));
    let o = ours(d, "check", "e.qcow2");
    for (k, v) in theirs.as_object().unwrap() {
        if k != "filename" {
            assert_eq!(o.get(k), Some(v), "check {k}: ours {o:#}");
        }
    }
}

/// qed (L1/L2), vdi (block map) and vpc (BAT), alone and in chains with
/// qcow2: map and measure as qemu-img gives them.
#[test]
fn qed_vdi_vpc_alone_and_in_chains() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    for (fmt, opts) in [
        ("qed", ""),
        ("qed", "cluster_size=16384,table_size=2"),
        ("vdi", ""),
        ("vpc", ""),
        ("vpc", "force_size=on"),
        ("vpc", "subformat=fixed"),
    ] {
        let n = format!("b-{}.{fmt}", opts.len());
        let mut a = vec!["create", "-q", "-f", fmt];
        if !opts.is_empty() {
            a.extend(["-o", opts]);
        }
        a.extend([n.as_str(), "8M"]);
        run("qemu-img", &a, d);
        if opts.contains("fixed") {
            // Every byte written: a fixed VHD's holes in the host file are
            // zeroes to qemu-img map and invisible to us (as for raw).
            io(d, &n, fmt, &["write -P 9 0 8M", "write -P 9 8M 2k"]);
        }
        io(
            d,
            &n,
            fmt,
            &[
                "write -P 1 0 1M",
                "write -P 2 3M 100k",
                "write -z 5M 64k",
                "write -P 3 7M 4k",
            ],
        );
        if opts.contains("fixed") {
            // qemu-img probes a fixed VHD as raw; we read it as vpc, as
            // `qemu-img -f vpc` does.
            let theirs = json(&run(
                "qemu-img",
                &["map", "--output=json", "-f", "vpc", &n],
                d,
            ));
            assert_eq!(ours(d, "map", &n)["map"], theirs, "map of {n}");
        } else {
            same_map(d, &n);
            same_measure(d, &n);
        }
        // Under a qcow2 overlay.
        let top = format!("top-{n}.qcow2");
        create(d, &top, "", "10M", Some((&n, fmt)));
        io(d, &top, "qcow2", &["write -P 4 512k 1M", "write -z 3M 64k"]);
        same_map(d, &top);
        same_measure(d, &top);
    }
    // A qed overlay over a qcow2 base.
    create(d, "base.qcow2", "", "8M", None);
    io(
        d,
        "base.qcow2",
        "qcow2",
        &["write -P 1 0 4M", "write -c -P 2 6M 64k"],
    );
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qed",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qed",
            "8M",
        ],
        d,
    );
    io(
        d,
        "top.qed",
        "qed",
        &["write -P 3 1M 1M", "write -z 2M 64k"],
    );
    same_map(d, "top.qed");
    same_measure(d, "top.qed");
}

/// An interrupted writer with lazy refcounts: qemu-io aborts after its
/// writes, the dirty bit stays set and the refcounts were never written.
#[test]
fn interrupted_write_with_lazy_refcounts() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "l.qcow2", "lazy_refcounts=on", "4M", None);
    let st = Command::new("sh")
        .args([
            "-c",
            "ulimit -c 0; qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 2M 64k' -c abort l.qcow2",
        ])
        .current_dir(d)
        .output()
        .expect("sh");
    assert!(!st.status.success(), "qemu-io aborted");
    let c = same_check(d, "l.qcow2");
    assert!(c["corruptions"].as_u64().unwrap() > 0, "{c:#}");
    same_map(d, "l.qcow2");
}

/// VMDK sparse extents in one file (monolithicSparse, streamOptimized, with
/// zero grains), alone, under a qcow2 overlay, and a vmdk overlay over a
/// vmdk base: map and measure as qemu-img gives them.
#[test]
fn vmdk_sparse_alone_and_in_chains() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    for (i, opts) in ["", "subformat=streamOptimized", "zeroed_grain=on"]
        .iter()
        .enumerate()
    {
        let n = format!("v{i}.vmdk");
        let mut a = vec!["create", "-q", "-f", "vmdk"];
        if !opts.is_empty() {
            a.extend(["-o", opts]);
        }
        a.extend([n.as_str(), "8M"]);
        run("qemu-img", &a, d);
        // streamOptimized is written front to back, whole grains, no zero
        // writes.
        let cmds: &[&str] = if opts.contains("stream") {
            &["write -P 1 0 1M", "write -P 2 3M 128k"]
        } else {
            &["write -P 1 0 1M", "write -P 2 3M 100k", "write -z 5M 64k"]
        };
        io(d, &n, "vmdk", cmds);
        same_map(d, &n);
        same_measure(d, &n);
        let top = format!("top{i}.qcow2");
        create(d, &top, "", "8M", Some((&n, "vmdk")));
        io(d, &top, "qcow2", &["write -P 4 512k 1M"]);
        same_map(d, &top);
        same_measure(d, &top);
    }
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "v0.vmdk",
            "-F",
            "vmdk",
            "over.vmdk",
        ],
        d,
    );
    io(
        d,
        "over.vmdk",
        "vmdk",
        &["write -P 5 2M 128k", "write -z 6M 64k"],
    );
    same_map(d, "over.vmdk");
    same_measure(d, "over.vmdk");
}

/// vhdx: qemu reports every byte as data (its driver has no block status),
/// so map and measure follow; the allocation is the BAT's, checked against
/// the blocks the writes touched (block size from `qemu-img info`).
#[test]
fn vhdx_map_measure_and_bat_allocation() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    run(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "h.vhdx", "64M"],
        d,
    );
    io(
        d,
        "h.vhdx",
        "vhdx",
        &["write -P 1 0 1M", "write -P 2 40M 4k"],
    );
    same_map(d, "h.vhdx");
    same_measure(d, "h.vhdx");
    let info = json(&run("qemu-img", &["info", "--output=json", "h.vhdx"], d));
    let bs = info["cluster-size"].as_u64().unwrap();
    let m = ours(d, "map", "h.vhdx");
    let a = &m["layers"][0]["allocation"];
    let touched = if (40 << 20) / bs == 0 { 1 } else { 2 };
    assert_eq!(a["data"].as_u64().unwrap(), touched * bs, "{a:#}");
    assert_eq!(
        a["data"].as_u64().unwrap()
            + a["zero"].as_u64().unwrap()
            + a["unallocated"].as_u64().unwrap(),
        64 << 20
    );
}

/// More images broken on purpose: extended L2 bitmaps that contradict
/// themselves, a compressed entry with the COPIED flag, a refcount block
/// outside the file, one not aligned, and a refcount table entry cleared.
#[test]
fn more_broken_images_check_like_qemu_img() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();

    // Extended L2: a subcluster both allocated and zero; an unallocated
    // cluster with allocated subclusters.
    create(d, "x.qcow2", "extended_l2=on", "4M", None);
    io(
        d,
        "x.qcow2",
        "qcow2",
        &["write -P 1 0 64k", "write -P 1 64k 4k"],
    );
    let f = d.join("x.qcow2");
    let l1 = be64_at(&f, 40);
    let l2 = be64_at(&f, l1) & OFF;
    // Entry 0's bitmap: also "zero" for subcluster 0.
    put64(&f, l2 + 8, be64_at(&f, l2 + 8) | (1 << 32));
    // Entry 5 (unallocated): subcluster 3 "allocated".
    put64(&f, l2 + 5 * 16 + 8, 1 << 3);
    same_check(d, "x.qcow2");
    // qemu-img map refuses it ("Invalid cluster entry found"); we say so.
    let m = ours(d, "map", "x.qcow2");
    assert!(
        m["layers"][0]["diagnostics"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["code"] == "meta-corrupt")),
        "{m:#}"
    );

    // A compressed cluster with COPIED set.
    create(d, "c.qcow2", "", "4M", None);
    io(d, "c.qcow2", "qcow2", &["write -c -P 1 0 64k"]);
    let f = d.join("c.qcow2");
    let (_, e) = l2_entry_at(&f, 0);
    put64(&f, e, be64_at(&f, e) | (1 << 63));
    same_check(d, "c.qcow2");

    // Refcount table entries: one past the end of the file, one not
    // aligned (a second entry, so the image still opens), one cleared.
    for (name, v) in [
        ("rt-eof.qcow2", Some(1u64 << 40)),
        ("rt-unaligned.qcow2", Some(0x10200)),
        ("rt-cleared.qcow2", None),
    ] {
        let f = victim(d, name);
        let rt = be64_at(&f, 48);
        match v {
            Some(v) => put64(&f, rt + 8, v),
            None => put64(&f, rt, 0),
        }
        let theirs = qemu_check(d, name);
        if theirs.get("check-errors").is_none() {
            // qemu-img refused to open it (an error on stderr): nothing to compare.
            continue;
        }
        same_check(d, name);
    }
}

/// qed check (qemu's `qed_check`): clean, then with a cleared L2 entry (a
/// leak), one cluster named twice and an unaligned offset (corruptions).
#[test]
fn qed_check_like_qemu_img() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    run("qemu-img", &["create", "-q", "-f", "qed", "x.qed", "8M"], d);
    io(
        d,
        "x.qed",
        "qed",
        &["write -P 1 0 1M", "write -P 2 3M 100k", "write -z 5M 64k"],
    );
    let c = same_check(d, "x.qed");
    assert!(c.get("corruptions").is_none() && c.get("leaks").is_none());
    let f = d.join("x.qed");
    let mut b = std::fs::read(&f).unwrap();
    let le = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let l1 = le(&b, 40) as usize;
    let l2 = le(&b, l1) as usize;
    let e0 = le(&b, l2);
    b[l2 + 8..l2 + 16].copy_from_slice(&0u64.to_le_bytes());
    b[l2 + 24..l2 + 32].copy_from_slice(&e0.to_le_bytes());
    b[l2 + 32..l2 + 40].copy_from_slice(&(e0 + 77).to_le_bytes());
    std::fs::write(d.join("y.qed"), b).unwrap();
    let c = same_check(d, "y.qed");
    assert!(c["corruptions"].as_u64().unwrap() >= 2, "{c:#}");
    assert!(c["leaks"].as_u64().unwrap() >= 1, "{c:#}");
}

/// An L1 table larger than one read (2 MiB: 512-byte clusters, 8 GiB) and
/// L2 tables spread over the disk: read in pieces of at most MAX_READ.
#[test]
fn l1_table_larger_than_one_read() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "big.qcow2", "cluster_size=512", "8G", None);
    io(
        d,
        "big.qcow2",
        "qcow2",
        &[
            "write -P 1 0 64k",
            "write -P 2 3G 4k",
            "write -z 5G 1k",
            "write -c -P 3 7G 512",
            "write -P 4 8191M 1M",
        ],
    );
    all_three(d, "big.qcow2");
}

/// vdi and vmdk checks (qemu's `vdi_co_check`, `vmdk_co_check`): clean
/// images, a vdi block map with a block index used twice and one too large,
/// a VMDK grain past the end of the file (qemu-img stops there: "Check
/// failed").
#[test]
fn vdi_and_vmdk_check_like_qemu_img() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    run("qemu-img", &["create", "-q", "-f", "vdi", "v.vdi", "8M"], d);
    io(d, "v.vdi", "vdi", &["write -P 1 0 3M"]);
    same_check(d, "v.vdi");
    run(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "k.vmdk", "8M"],
        d,
    );
    io(d, "k.vmdk", "vmdk", &["write -P 1 0 1M"]);
    same_check(d, "k.vmdk");

    // vdi: the block map at offset-bmap (from qemu-img's own info).
    let info = json(&run("qemu-img", &["info", "--output=json", "v.vdi"], d));
    assert_eq!(info["format"], "vdi");
    let mut b = std::fs::read(d.join("v.vdi")).unwrap();
    let bmap = u32::from_le_bytes(b[0x154..0x158].try_into().unwrap()) as usize;
    b[bmap + 8..bmap + 12].copy_from_slice(&0u32.to_le_bytes());
    b[bmap + 16..bmap + 20].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(d.join("w.vdi"), b).unwrap();
    let c = same_check(d, "w.vdi");
    assert_eq!(c["corruptions"], 2, "{c:#}");

    // vmdk: grain 1 of the first grain table past the end of the file.
    let f = d.join("k.vmdk");
    let mut b = std::fs::read(&f).unwrap();
    let gd = u64::from_le_bytes(b[56..64].try_into().unwrap()) as usize * 512;
    let gt = u32::from_le_bytes(b[gd..gd + 4].try_into().unwrap()) as usize * 512;
    let past = (b.len() / 512 + 100) as u32;
    b[gt + 4..gt + 8].copy_from_slice(&past.to_le_bytes());
    std::fs::write(d.join("j.vmdk"), b).unwrap();
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", "j.vmdk"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("points after EOF").count(), 1, "{err}");
    let c = ours(d, "check", "j.vmdk");
    assert_eq!(c["corruptions"], 1, "{c:#}");
}

/// Snapshot table entries broken on purpose: an L1 table offset not
/// aligned, an L1 size above qemu's limit, an L1 table past the end of the
/// file. qemu-img check drops the snapshot's references (leaks) and counts
/// a corruption; so do we.
#[test]
fn broken_snapshot_entries_check_like_qemu_img() {
    if !need_tools() {
        return;
    }
    let t = tmp();
    let d = t.path();
    create(d, "s.qcow2", "", "4M", None);
    io(d, "s.qcow2", "qcow2", &["write -P 1 0 1M"]);
    run("qemu-img", &["snapshot", "-c", "one", "s.qcow2"], d);
    io(d, "s.qcow2", "qcow2", &["write -P 2 0 64k"]);
    same_check(d, "s.qcow2");
    let good = std::fs::read(d.join("s.qcow2")).unwrap();
    let so = u64::from_be_bytes(good[64..72].try_into().unwrap()) as usize;
    let l1 = u64::from_be_bytes(good[so..so + 8].try_into().unwrap());
    for (name, at, bytes) in [
        ("a.qcow2", so, (l1 + 8).to_be_bytes().to_vec()),
        ("b.qcow2", so + 8, 0x0100_0000u32.to_be_bytes().to_vec()),
        ("c.qcow2", so, (1u64 << 40).to_be_bytes().to_vec()),
    ] {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(&bytes);
        std::fs::write(d.join(name), b).unwrap();
        let c = same_check(d, name);
        assert!(c["corruptions"].as_u64().unwrap() >= 1, "{name}: {c:#}");
    }
}

/// `chain --json --allocation`: each layer's allocation is what qemu-img map
/// says that layer provides (depth 0 of a map of the layer opened alone:
/// `data` and present `zero` bytes), for a chain of three with data at each
/// level and zeroes in the top.
#[test]
fn chain_allocation_is_what_each_layer_provides_per_qemu_img_map() {
    if !need_tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    create(dir, "base.qcow2", "", "64M", None);
    io(
        dir,
        "base.qcow2",
        "qcow2",
        &["write -P 0x11 0 4M", "write -c -P 0x12 8M 1M"],
    );
    create(dir, "mid.qcow2", "", "64M", Some(("base.qcow2", "qcow2")));
    io(dir, "mid.qcow2", "qcow2", &["write -P 0x21 2M 2M"]);
    create(dir, "top.qcow2", "", "64M", Some(("mid.qcow2", "qcow2")));
    io(
        dir,
        "top.qcow2",
        "qcow2",
        &["write -P 0x31 1M 512k", "write -z 16M 1M"],
    );
    let o = Command::new(BIN)
        .args(["chain", "--json", "--allocation", "top.qcow2"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let images = v[0]["images"].as_array().expect("images");
    assert_eq!(images.len(), 3);
    for im in images {
        let name = im["filename"].as_str().unwrap();
        // The layer alone: qemu-img map of it with its backing cut off.
        let alone = format!(
            "json:{{\"driver\":\"qcow2\",\"backing\":null,\"file\":{{\"driver\":\"file\",\"filename\":\"{}\"}}}}",
            dir.join(name).display()
        );
        let map = json(&run("qemu-img", &["map", "--output=json", &alone], dir));
        let (mut data, mut zero) = (0u64, 0u64);
        for e in map.as_array().unwrap() {
            let len = e["length"].as_u64().unwrap();
            if e["depth"] == 0 && e["present"] == true {
                if e["data"] == true {
                    data += len;
                } else if e["zero"] == true {
                    zero += len;
                }
            }
        }
        let a = &im["allocation"];
        let compressed = a["compressed"].as_u64().unwrap();
        assert_eq!(
            a["data"].as_u64().unwrap() + compressed,
            data,
            "{name}: {a}"
        );
        assert_eq!(a["zero"].as_u64().unwrap(), zero, "{name}: {a}");
        assert_eq!(a["virtual-size"].as_u64().unwrap(), 64 << 20);
    }
    // Something of each kind, so the comparison compares something.
    assert!(images[0]["allocation"]["zero"].as_u64().unwrap() > 0);
    assert!(images[2]["allocation"]["compressed"].as_u64().unwrap() > 0);
}
