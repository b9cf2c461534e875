//! Benchmark 8: the image-store audit (`audit::audit`).
//!
//! * 10,000 images (groups of ten: a base, a four-layer chain on it, five
//!   overlays on its second layer; relative backing names) and 500 domains
//!   in one text (two disks each: a group's chain top and one of its
//!   overlays), natively: time of one audit (target < 1 s).
//! * Linearity: 1,000 images with 50 domains vs 10,000 with 500, timed
//!   alternately in one run; the ratio of the per-image times is the median
//!   of the per-round ratios (target ≤ 1.5, linear ≈ 1). Twice: the groups
//!   above, and one base under all the other images as linked clones (the
//!   fan-out a golden image has; every clone's commit names that base).

mod common;

use std::time::{Duration, Instant};

use backing_chain::audit::{self, AuditOptions, DomainText, FileFacts};
use backing_chain::chain::Image;
use criterion::{BatchSize, Criterion};

const MAX_RATIO: f64 = 1.5;
const MAX_SECS: f64 = 1.0;

/// `n` images, `n / 20` domains (each group of twenty images: one VM).
fn store(n: usize) -> (Vec<Image>, Vec<FileFacts>, Vec<DomainText>) {
    let images = common::forest_images(n);
    let facts = (0..n)
        .map(|i| FileFacts {
            size: Some(196_608 + i as u64),
            id: None,
        })
        .collect();
    let mut text = String::new();
    for v in 0..n / 20 {
        let g = v * 2;
        text.push_str(&format!(
            "<domain type='kvm'>\n  <name>vm{v}</name>\n  <devices>\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='vdb' bus='virtio'/>\n    </disk>\n  </devices>\n</domain>\n",
            common::group_path(g, 4),
            common::group_path(g + 1, 5)
        ));
    }
    let domains = vec![DomainText {
        label: "all.xml".into(),
        text,
    }];
    (images, facts, domains)
}

/// One base under `n - 1` clones (linked clones of one golden image), `n /
/// 20` VMs each on a clone: the shared-base hazard of every clone's commit
/// names the same base, whose users are every VM.
fn wide(n: usize) -> (Vec<Image>, Vec<FileFacts>, Vec<DomainText>) {
    let dir = "/var/lib/libvirt/images";
    let images: Vec<Image> = (0..n)
        .map(|i| {
            let backing = (i > 0).then(|| "golden.qcow2".to_string());
            let name = if i == 0 {
                "golden.qcow2".to_string()
            } else {
                format!("clone{i}.qcow2")
            };
            common::qcow2_image(format!("{dir}/{name}"), backing)
        })
        .collect();
    let facts = vec![FileFacts::default(); n];
    let mut text = String::new();
    for v in 0..n / 20 {
        text.push_str(&format!(
            "<domain type='kvm'><name>vm{v}</name><devices><disk type='file' device='disk'><source file='{dir}/clone{}.qcow2'/><target dev='vda'/></disk></devices></domain>\n",
            v + 1
        ));
    }
    (
        images,
        facts,
        vec![DomainText {
            label: "wide.xml".into(),
            text,
        }],
    )
}

fn opts() -> AuditOptions {
    let mut o = AuditOptions::default();
    o.build.exact_paths = true;
    o
}

fn check(n: usize) {
    let (images, facts, domains) = store(n);
    let a = audit::audit(images, &facts, &domains, &opts());
    assert_eq!(a.images.len(), n);
    assert_eq!(a.vms.len(), n / 20);
    assert!(a.domain_errors.is_empty());
    // Every VM's two disks were found, with chains of 5 and 4 layers.
    assert!(a
        .vms
        .iter()
        .all(|v| v.disks[0].chain.len() == 5 && v.disks[1].chain.len() == 4));
    assert_eq!(a.summary.broken, 0);
}

fn main() {
    check(1_000);
    check(10_000);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("audit");
        for (label, n) in [("1k-50vms", 1_000), ("10k-500vms", 10_000)] {
            let (images, facts, domains) = store(n);
            let o = opts();
            g.bench_function(label, |b| {
                b.iter_batched(
                    || images.clone(),
                    |imgs| audit::audit(imgs, &facts, &domains, &o),
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
    c.final_summary();

    let rounds = common::rounds(9);
    let o = opts();
    type Store = (Vec<Image>, Vec<FileFacts>, Vec<DomainText>);
    let mut ratios: Vec<(&str, f64, f64, f64)> = Vec::new();
    for (label, make) in [
        ("groups of ten", store as fn(usize) -> Store),
        ("one base, many clones", wide),
    ] {
        let small = make(1_000);
        let large = make(10_000);
        let time = |s: &Store, reps: usize| {
            let mut total = 0.0;
            for _ in 0..reps {
                let v = s.0.clone();
                let t = Instant::now();
                let a = audit::audit(v, &s.1, &s.2, &o);
                total += t.elapsed().as_secs_f64();
                drop(a);
            }
            total / reps as f64
        };
        let (mut ts, mut tl, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            let (s, l) = if i % 2 == 0 {
                let s = time(&small, 10);
                (s, time(&large, 1))
            } else {
                let l = time(&large, 1);
                (time(&small, 10), l)
            };
            ts.push(s);
            tl.push(l);
            r.push((l / 10_000.0) / (s / 1_000.0));
        }
        ratios.push((
            label,
            common::median(&mut ts),
            common::median(&mut tl),
            common::median(&mut r),
        ));
    }
    let l = ratios[0].2;
    common::report(
        "audit 10,000 images, 500 domains",
        &format!("{} per audit", common::fmt_time(l)),
        &format!("< {MAX_SECS} s"),
        Some(l < MAX_SECS),
    );
    for (label, s, l, ratio) in ratios {
        common::report(
            &format!("audit 1k → 10k images (50 → 500 domains), {label}"),
            &format!(
                "{} / image at 1k, {} / image at 10k: ratio {ratio:.2}",
                common::fmt_time(s / 1_000.0),
                common::fmt_time(l / 10_000.0)
            ),
            &format!("≤ {MAX_RATIO} (linear ≈ 1)"),
            Some(ratio <= MAX_RATIO),
        );
    }
}
