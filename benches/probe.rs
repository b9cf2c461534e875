//! Time per header probe, per format, on images `qemu-img` creates (run with
//! `cargo bench --bench probe`). The bytes a probe needs are read once; the
//! timed loop is the core alone (`probe` on a complete `Reads`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Instant;

use backing_chain::image::{probe, Range, Reads, Step};

fn main() {
    if Command::new("qemu-img").arg("--version").output().is_err() {
        println!("skipped: qemu-img not found");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, &[&str])] = &[
        ("raw", "x.raw", &["-f", "raw", "x.raw", "64M"]),
        (
            "qcow2",
            "x.qcow2",
            &["-f", "qcow2", "-b", "x.raw", "-F", "raw", "x.qcow2"],
        ),
        ("qcow", "x.qcow", &["-f", "qcow", "x.qcow", "1G"]),
        ("qed", "x.qed", &["-f", "qed", "x.qed", "1G"]),
        ("vmdk", "x.vmdk", &["-f", "vmdk", "x.vmdk", "1G"]),
        (
            "vmdk-flat",
            "xf.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "xf.vmdk",
                "1M",
            ],
        ),
        ("vpc", "x.vpc", &["-f", "vpc", "x.vpc", "1G"]),
        (
            "vpc-fixed",
            "xf.vpc",
            &["-f", "vpc", "-o", "subformat=fixed", "xf.vpc", "1M"],
        ),
        ("vhdx", "x.vhdx", &["-f", "vhdx", "x.vhdx", "1G"]),
        ("vdi", "x.vdi", &["-f", "vdi", "x.vdi", "1G"]),
        ("parallels", "x.hdd", &["-f", "parallels", "x.hdd", "1G"]),
    ];
    for (name, file, args) in cases {
        let mut a = vec!["create", "-q"];
        a.extend(*args);
        let ok = Command::new("qemu-img")
            .args(&a)
            .current_dir(dir.path())
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            println!("{name}: qemu-img create failed");
            continue;
        }
        let f = File::open(dir.path().join(file)).expect("open");
        let len = f.metadata().expect("metadata").len();
        let mut reads = Reads::new(Some(len));
        loop {
            match probe(&reads).expect("probe") {
                Step::Done(_) => break,
                Step::Need(ranges) => {
                    for r in ranges {
                        let n = r.len.min(len.saturating_sub(r.offset));
                        let mut buf = vec![0u8; n as usize];
                        f.read_exact_at(&mut buf, r.offset).expect("read");
                        reads.insert(Range::new(r.offset, r.len), buf);
                    }
                }
            }
        }
        let iters = 20_000u32;
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(probe(std::hint::black_box(&reads)).expect("probe"));
        }
        let per = t.elapsed() / iters;
        println!(
            "{name:>10}: {per:?} per probe ({} bytes held)",
            reads.bytes_held()
        );
    }
}
