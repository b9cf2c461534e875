//! Shared by the benches: alternated ratio timing, the result lines `.ci/bench`
//! collects, and test images made with qemu-img.
//!
//! Absolute times on a shared machine are noise; every figure a bench reports
//! against a target is a ratio of two contenders timed alternately (A, B, A,
//! B, …) in one run, the median of the per-round ratios.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backing_chain::chain::{Image, Probed};
use backing_chain::image::{Format, ImageInfo};

/// `cargo bench` passes `--bench`; without it (`cargo test --benches`) or
/// with criterion's `--test` (`cargo bench -- --test`, `.ci/bench --quick`)
/// the benches run once, quickly, as a smoke test.
pub fn full() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Rounds of alternation: more in a real run.
pub fn rounds(full_rounds: usize) -> usize {
    if full() {
        full_rounds
    } else {
        1
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How many calls of `f` make a batch of at least `min` (at least one).
pub fn calibrate(mut f: impl FnMut(), min: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        if t.elapsed() >= min || n >= 1 << 24 {
            return n;
        }
        n *= 2;
    }
}

/// Seconds per call of `f`, timed over `n` calls.
pub fn per_call(n: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// Alternate A and B for `rounds` rounds (the order flips every round).
/// Returns the median seconds per call of A and of B and the median of the
/// per-round ratios `B / A`.
pub struct Alternated {
    pub a: f64,
    pub b: f64,
    pub b_over_a: f64,
}

pub fn alternate(
    rounds: usize,
    batch: Duration,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> Alternated {
    let na = calibrate(&mut a, batch);
    let nb = calibrate(&mut b, batch);
    let (mut ta, mut tb, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds.max(1) {
        let (x, y) = if i % 2 == 0 {
            let x = per_call(na, &mut a);
            (x, per_call(nb, &mut b))
        } else {
            let y = per_call(nb, &mut b);
            (per_call(na, &mut a), y)
        };
        ta.push(x);
        tb.push(y);
        r.push(y / x);
    }
    Alternated {
        a: median(&mut ta),
        b: median(&mut tb),
        b_over_a: median(&mut r),
    }
}

/// One row of the table `.ci/bench` prints: `@@ name | figure | target | verdict`.
/// `pass` is `None` for a figure without a target (reported only).
pub fn report(name: &str, figure: &str, target: &str, pass: Option<bool>) {
    let verdict = match pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "-",
    };
    println!("@@\t{name}\t{figure}\t{target}\t{verdict}");
}

pub fn fmt_time(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}

pub fn qemu_img_available() -> bool {
    Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run qemu-img; `Err` with its stderr when it fails.
pub fn qemu_img(args: &[&str], cwd: &Path) -> Result<(), String> {
    let out = Command::new("qemu-img")
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The image formats this qemu-img says it supports (`qemu-img --help`).
pub fn qemu_img_formats() -> Vec<String> {
    let out = Command::new("qemu-img")
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut lines = out.lines().skip_while(|l| !l.starts_with("Supported"));
    lines.next();
    lines
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .flat_map(|l| l.split_whitespace())
        .map(str::to_string)
        .collect()
}

/// One test image per format (and a few variants) that this qemu-img can
/// create, with a backing file where the format takes one. A format qemu-img
/// learns later is picked up without edits. Returns `(label, format, path)`.
pub fn format_images(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    if qemu_img(
        "create -q -f qcow2 base.qcow2 1G"
            .split(' ')
            .collect::<Vec<_>>()
            .as_slice(),
        dir,
    )
    .is_err()
    {
        return out;
    }
    // Variants worth their own row: other header versions and layouts.
    let variants: &[(&str, &str, &[&str])] = &[
        ("qcow2-v2", "qcow2", &["-o", "compat=0.10"]),
        (
            "vmdk-streamOptimized",
            "vmdk",
            &["-o", "subformat=streamOptimized"],
        ),
        ("vpc-fixed", "vpc", &["-o", "subformat=fixed"]),
    ];
    let mut todo: Vec<(String, String, Vec<String>)> = qemu_img_formats()
        .into_iter()
        .filter(|f| f != "file") // the protocol, not a format: same bytes as raw
        .map(|f| (f.clone(), f, Vec::new()))
        .collect();
    for (label, fmt, opts) in variants {
        todo.push((
            label.to_string(),
            fmt.to_string(),
            opts.iter().map(|s| s.to_string()).collect(),
        ));
    }
    for (label, fmt, opts) in todo {
        let name = format!("img-{label}.{fmt}");
        let mut base_args: Vec<String> =
            vec!["create".into(), "-q".into(), "-f".into(), fmt.clone()];
        if fmt == "luks" {
            base_args.splice(
                1..1,
                ["--object".into(), "secret,id=s0,data=benchpass".into()],
            );
            base_args.extend(["-o".into(), "key-secret=s0,iter-time=10".into()]);
        }
        base_args.extend(opts);
        let tries: [&[&str]; 3] = [
            &["-b", "base.qcow2", "-F", "qcow2"],
            &["-b", "base.qcow2"],
            &[],
        ];
        for t in tries {
            let mut args = base_args.clone();
            args.extend(t.iter().map(|s| s.to_string()));
            args.push(name.clone());
            args.push("1G".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            if qemu_img(&a, dir).is_ok() {
                out.push((label.clone(), fmt.clone(), dir.join(&name)));
                break;
            }
        }
    }
    out
}

/// One recorded read: offset, length asked, bytes got.
pub type Recorded = (u64, u64, Vec<u8>);

/// Probe `path` with positioned reads and record every read (offset, length
/// asked, bytes got), so the same probe can be replayed from memory.
pub fn record(path: &Path) -> (u64, Vec<Recorded>) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).expect("open image");
    let len = f.metadata().expect("stat image").len();
    let mut log = Vec::new();
    let _ = backing_chain::image::probe_with(Some(len), |off, n| -> std::io::Result<Vec<u8>> {
        f.seek(SeekFrom::Start(off))?;
        let mut buf = Vec::with_capacity(n as usize);
        (&mut f).take(n).read_to_end(&mut buf)?;
        log.push((off, n, buf.clone()));
        Ok(buf)
    });
    (len, log)
}

/// Replay a recorded probe from memory: the probe's work only.
pub fn replay(
    len: u64,
    log: &[Recorded],
) -> Result<(backing_chain::image::ImageInfo, u64), String> {
    backing_chain::image::probe_with(Some(len), |off, n| -> Result<Vec<u8>, String> {
        log.iter()
            .find(|(o, asked, _)| *o == off && *asked == n)
            .map(|(_, _, b)| b.clone())
            .ok_or_else(|| format!("read of {n} bytes at {off} not recorded"))
    })
    .map_err(|e| e.to_string())
}

/// Where criterion writes its results (as criterion finds it).
pub fn criterion_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return h.into();
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    // target/<profile>/deps/<bench-binary>
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion's mean estimate (seconds) for `group/id`, if it ran.
pub fn criterion_mean(group: &str, id: &str) -> Option<f64> {
    let p = criterion_home()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    Some(v.pointer("/mean/point_estimate")?.as_f64()? * 1e-9)
}

/// A probed qcow2 image (10 GiB, 64 KiB clusters) named `filename`,
/// backed by `backing` when given: the benches' synthetic stores.
pub fn qcow2_image(filename: String, backing: Option<String>) -> Image {
    let mut info = ImageInfo::new(Format::Qcow2);
    info.virtual_size = Some(10 << 30);
    info.cluster_size = Some(65536);
    if backing.is_some() {
        info.backing_filename_format = Some("qcow2".into());
    }
    info.backing_filename = backing;
    Image {
        filename,
        probe: Probed::Info(Box::new(info)),
        bytes_read: 4096,
    }
}

/// Where image `k` of group `g` lives in [`forest_images`]: 37 pool
/// directories, names relative to them in the backing names.
pub fn group_path(g: usize, k: usize) -> String {
    format!("/var/lib/libvirt/images/pool{}/g{g}-{k}.qcow2", g % 37)
}

/// Groups of ten: base ← l1 ← l2 ← l3 ← l4, and five overlays on l2.
/// Backing names are relative (as `qemu-img create -b name` writes them).
pub fn forest_images(n: usize) -> Vec<Image> {
    (0..n)
        .map(|i| {
            let g = i / 10;
            let k = i % 10;
            let name = |k: usize| format!("g{g}-{k}.qcow2");
            let backing = match k {
                0 => None,
                1..=4 => Some(name(k - 1)),
                _ => Some(name(2)),
            };
            qcow2_image(group_path(g, k), backing)
        })
        .collect()
}
