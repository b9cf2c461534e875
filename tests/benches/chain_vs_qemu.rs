//! Benchmark 2: `backing-chain chain --json TOP` versus
//! `qemu-img info --backing-chain --output=json TOP` on 50- and 300-deep
//! qcow2 chains made with qemu-img. Both are whole processes (start-up
//! included), run alternately; the figure is the median of the per-round
//! ratios qemu-img time / backing-chain time. Target: ≥ 10×.
//!
//! Both outputs are checked to name the same chain first.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TARGET: f64 = 10.0;
const OURS: &str = env!("CARGO_BIN_EXE_backing-chain");

fn make_chain(dir: &Path, depth: usize) -> String {
    common::qemu_img(&["create", "-q", "-f", "qcow2", "l0000.qcow2", "10G"], dir)
        .expect("qemu-img create");
    for i in 1..depth {
        let b = format!("l{:04}.qcow2", i - 1);
        let t = format!("l{i:04}.qcow2");
        common::qemu_img(
            &["create", "-q", "-f", "qcow2", "-b", &b, "-F", "qcow2", &t],
            dir,
        )
        .expect("qemu-img create overlay");
    }
    dir.join(format!("l{:04}.qcow2", depth - 1))
        .to_string_lossy()
        .into_owned()
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::null()).output().expect("spawn");
    out.stdout
}

fn ours(top: &str) -> Vec<u8> {
    run(Command::new(OURS).args(["chain", "--json", top]))
}

fn qemu(top: &str) -> Vec<u8> {
    run(Command::new("qemu-img").args(["info", "--backing-chain", "--output=json", top]))
}

fn main() {
    if !common::qemu_img_available() {
        common::report("chain vs qemu-img", "skipped: no qemu-img", "-", None);
        return;
    }
    let rounds = common::rounds(11);
    for depth in [50usize, 300] {
        let dir = tempfile::tempdir().expect("temp dir");
        let top = make_chain(dir.path(), depth);

        // Same chain from both.
        let a: serde_json::Value = serde_json::from_slice(&ours(&top)).expect("our JSON");
        let b: serde_json::Value = serde_json::from_slice(&qemu(&top)).expect("qemu-img JSON");
        let names_a: Vec<_> = a[0]["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| i["filename"].as_str().unwrap_or("").to_string())
            .collect();
        let names_b: Vec<_> = b
            .as_array()
            .expect("qemu-img array")
            .iter()
            .map(|i| i["filename"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(names_a.len(), depth, "our chain depth");
        assert_eq!(names_a, names_b, "same chain as qemu-img");

        let (mut to, mut tq, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            let time = |f: &dyn Fn() -> Vec<u8>| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            };
            let (o, q) = if i % 2 == 0 {
                let o = time(&|| ours(&top));
                (o, time(&|| qemu(&top)))
            } else {
                let q = time(&|| qemu(&top));
                (time(&|| ours(&top)), q)
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
            &format!("chain --json vs qemu-img, {depth} deep"),
            &format!(
                "{ratio:.1}× faster (ours {}, qemu-img {})",
                common::fmt_time(o),
                common::fmt_time(q)
            ),
            &format!("≥ {TARGET}×"),
            Some(ratio >= TARGET),
        );
    }
}
