//! Benchmark 1 (native): headers probed per second, per format.
//!
//! Every format this qemu-img can create (and a few variants) is made in a
//! temp dir; each image is probed once from disk to record the reads, then
//! the probe is replayed from memory under criterion. A format the core does
//! not recognise yet shows up as "→ raw" (new probes are picked up without
//! editing this file).
//!
//! Target (derived, not in the issue): ≥ 10,000 headers/s, so that probing
//! 1,000 dropped images costs at most a tenth of the 1 s drop → tree budget.

mod common;

use std::time::Duration;

use backing_chain::image::Format;
use criterion::{Criterion, Throughput};

const TARGET_PER_SEC: f64 = 10_000.0;

fn main() {
    if !common::qemu_img_available() {
        common::report("probe native", "skipped: no qemu-img", "-", None);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let images = common::format_images(dir.path());
    let mut rows = Vec::new();
    for (label, fmt, path) in &images {
        let (len, log) = common::record(path);
        let probed = common::replay(len, &log);
        rows.push((label.clone(), fmt.clone(), len, log, probed));
    }

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("probe");
        g.throughput(Throughput::Elements(1));
        for (label, _, len, log, _) in &rows {
            g.bench_function(label.as_str(), |b| {
                b.iter(|| common::replay(*len, std::hint::black_box(log)))
            });
        }
        g.finish();
    }
    c.final_summary();

    for (label, fmt, len, log, probed) in &rows {
        let (detected, bytes) = match probed {
            Ok((info, bytes)) => (info.format, *bytes),
            Err(e) => {
                common::report(
                    &format!("probe native {label}"),
                    &format!("error: {e}"),
                    "-",
                    Some(false),
                );
                continue;
            }
        };
        let recognised = detected.name() == fmt.as_str()
            || (detected != Format::Raw && fmt.starts_with(detected.name()));
        // Criterion's mean when it ran (cargo bench), else a quick own timing.
        let criterion = common::full().then(|| common::criterion_mean("probe", label));
        let secs = criterion.flatten().unwrap_or_else(|| {
            let n = common::calibrate(
                || {
                    let _ = common::replay(*len, log);
                },
                Duration::from_millis(20),
            );
            common::per_call(n, || {
                let _ = common::replay(*len, log);
            })
        });
        let rate = 1.0 / secs;
        let note = if recognised {
            format!("{bytes} B read")
        } else {
            format!("NOT RECOGNISED (→ {detected}), {bytes} B read")
        };
        common::report(
            &format!("probe native {label}"),
            &format!("{rate:.0} headers/s ({note})"),
            &format!("≥ {TARGET_PER_SEC:.0}/s"),
            Some(rate >= TARGET_PER_SEC),
        );
    }
}
