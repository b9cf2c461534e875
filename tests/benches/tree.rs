//! Benchmark 3: building the forest is linear.
//!
//! * A forest of N images in groups of ten sharing bases (a base, a
//!   four-layer chain on it, five overlays on its second layer), N = 1,000 and
//!   10,000: time per image at each size and the ratio (linear ≈ 1).
//! * One chain N deep, N = 1,000 and 10,000: the same ratio, and no stack
//!   overflow (the build runs on a thread with a 256 KiB stack to prove it).
//!
//! Sizes are timed alternately; the ratio is the median of per-round ratios of
//! the per-image times. Target: ratio ≤ 1.5 (linear within noise and cache
//! effects).

mod common;

use std::time::Duration;

use backing_chain::chain::{self, Image, Status};
use common::{forest_images, qcow2_image};
use criterion::{BatchSize, Criterion};

const MAX_RATIO: f64 = 1.5;

/// One chain: layer i is backed by layer i - 1.
pub fn deep_images(n: usize) -> Vec<Image> {
    (0..n)
        .map(|i| {
            let backing = (i > 0).then(|| format!("layer{:05}.qcow2", i - 1));
            qcow2_image(format!("/images/layer{i:05}.qcow2"), backing)
        })
        .collect()
}

fn check_forest(n: usize) {
    let f = chain::build(forest_images(n));
    // Tops: l3? no — l4 and the five overlays per group are tops.
    assert_eq!(f.chains.len(), n / 10 * 6, "tops of the forest");
    assert!(f.chains.iter().all(|c| c.status == Status::Ok));
}

fn check_deep(n: usize) {
    // A small stack: recursion anywhere in build would overflow it.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let f = chain::build(deep_images(n));
            assert_eq!(f.chains.len(), 1);
            assert_eq!(f.chains[0].layers.len(), n);
            // Deeper than libvirt accepts is `too-deep` (README's status
            // table), not a walk that stopped early: every layer is there.
            let want = if n > backing_chain::limits::LIBVIRT_MAX_DEPTH {
                Status::TooDeep
            } else {
                Status::Ok
            };
            assert_eq!(f.chains[0].status, want);
        })
        .expect("spawn")
        .join()
        .expect("deep chain built on a 256 KiB stack");
}

fn main() {
    check_forest(10_000);
    check_deep(10_000);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("tree");
        for (label, imgs) in [
            ("forest-1k", forest_images(1_000)),
            ("forest-10k", forest_images(10_000)),
            ("deep-1k", deep_images(1_000)),
            ("deep-10k", deep_images(10_000)),
        ] {
            g.bench_function(label, |b| {
                b.iter_batched(|| imgs.clone(), chain::build, BatchSize::LargeInput)
            });
        }
        g.finish();
    }
    c.final_summary();

    let rounds = common::rounds(9);
    for (label, make) in [
        ("forest", forest_images as fn(usize) -> Vec<Image>),
        ("deep chain", deep_images),
    ] {
        let small = make(1_000);
        let large = make(10_000);
        // Clone outside the timed part: each round times build() alone.
        let (mut ts, mut tl, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            let time = |imgs: &Vec<Image>, reps: usize| {
                let mut total = 0.0;
                for _ in 0..reps {
                    let v = imgs.clone();
                    let t = std::time::Instant::now();
                    let f = chain::build(v);
                    total += t.elapsed().as_secs_f64();
                    drop(f);
                }
                total / (reps * imgs.len()) as f64
            };
            let (s, l) = if i % 2 == 0 {
                let s = time(&small, 10);
                (s, time(&large, 1))
            } else {
                let l = time(&large, 1);
                (time(&small, 10), l)
            };
            ts.push(s);
            tl.push(l);
            r.push(l / s);
        }
        let (s, l, ratio) = (
            common::median(&mut ts),
            common::median(&mut tl),
            common::median(&mut r),
        );
        common::report(
            &format!("tree {label} 1k → 10k"),
            &format!(
                "{} / image at 1k, {} / image at 10k: ratio {ratio:.2}",
                common::fmt_time(s),
                common::fmt_time(l)
            ),
            &format!("≤ {MAX_RATIO} (linear ≈ 1)"),
            Some(ratio <= MAX_RATIO),
        );
    }
    common::report(
        "tree 10,000-deep chain, 256 KiB stack",
        "built, no overflow",
        "no stack overflow",
        Some(true),
    );
}
