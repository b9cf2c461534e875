//! Benchmark 4: rewriting a ~10 MB domain with 1,000 disks.
//!
//! The domain has 1,000 qcow2 disks (each the top of a four-layer chain of
//! the forest) and enough other content (a `<metadata>` section, other
//! devices) to weigh ~10 MB. `xml::populate` (nested, then flat) is timed
//! alternately against a bare quick-xml pass over the same bytes (read every
//! event, write it back). The figure is the median of per-round ratios
//! bare-pass time / populate time. Target: ≥ 0.5 (populate at most twice the
//! cost of just reading and writing the document).
//!
//! An edit (`xml::edit::apply`: a new layer inserted at depth 2 of disk 500,
//! between its first and second layers) on the populated document, nested
//! and flat, is timed the same way against the bare pass; the figure is the
//! edit's time and its ratio to the pass (no target: how much an edit of one
//! disk costs against reading and writing the whole document).

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use backing_chain::chain::{self, Forest, Image, Probed};
use backing_chain::image::{Format, ImageInfo};
use backing_chain::xml::edit::{self, LayerSpec, Op};
use backing_chain::xml::{self, Layout, Options};
use criterion::Criterion;
use quick_xml::events::Event;
use quick_xml::{Reader, Writer};

const DISKS: usize = 1_000;
const DEPTH: usize = 4;
const TARGET_BYTES: usize = 10 << 20;
const MIN_RATIO: f64 = 0.5;

fn top_path(d: usize) -> String {
    format!("/var/lib/libvirt/images/vm{}/disk{d}-top.qcow2", d % 50)
}

fn forest() -> Forest {
    let mut images = Vec::with_capacity(DISKS * DEPTH);
    for d in 0..DISKS {
        let dir = format!("/var/lib/libvirt/images/vm{}", d % 50);
        for k in 0..DEPTH {
            let name = if k == 0 {
                format!("{dir}/disk{d}-top.qcow2")
            } else {
                format!("{dir}/disk{d}-{k}.qcow2")
            };
            let mut info = ImageInfo::new(Format::Qcow2);
            info.virtual_size = Some(20 << 30);
            if k + 1 < DEPTH {
                info.backing_filename = Some(format!("disk{d}-{}.qcow2", k + 1));
                info.backing_filename_format = Some("qcow2".into());
            }
            images.push(Image {
                filename: name,
                probe: Probed::Info(Box::new(info)),
                bytes_read: 4096,
            });
        }
    }
    chain::build(images)
}

fn target_dev(i: usize) -> String {
    xml::target_name(i)
}

/// A domain of about `TARGET_BYTES` with `DISKS` disks.
fn domain() -> String {
    let mut s = String::with_capacity(TARGET_BYTES + (1 << 20));
    s.push_str("<domain type='kvm'>\n  <name>bench</name>\n  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\n");
    s.push_str("  <memory unit='KiB'>4194304</memory>\n  <vcpu placement='static'>4</vcpu>\n");
    s.push_str("  <os>\n    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>\n  </os>\n");
    let mut devices = String::new();
    devices.push_str("  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n");
    for d in 0..DISKS {
        let _ = write!(
            devices,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' cache='none' io='native'/>\n      <source file='{}'/>\n      <target dev='{}' bus='virtio'/>\n      <address type='pci' domain='0x0000' bus='0x{:02x}' slot='0x{:02x}' function='0x0'/>\n    </disk>\n",
            top_path(d),
            target_dev(d),
            d / 32 + 1,
            d % 32
        );
    }
    for i in 0..64 {
        let _ = write!(
            devices,
            "    <interface type='network'>\n      <mac address='52:54:00:00:00:{i:02x}'/>\n      <source network='default'/>\n      <model type='virtio'/>\n    </interface>\n"
        );
    }
    devices.push_str("  </devices>\n");
    // Fill up to the target size with metadata (text, attributes, comments
    // and escapes: what quick-xml has to get through).
    s.push_str("  <metadata>\n    <app:inventory xmlns:app='https://example.org/inventory/1'>\n");
    let mut i = 0;
    while s.len() + devices.len() + 32 < TARGET_BYTES {
        let _ = write!(
            s,
            "      <app:item id='{i}' owner='team-{}' note='a &amp; b'>\n        <app:label>item {i} &lt;important&gt;</app:label>\n        <!-- audit {i} -->\n        <app:tag k='env' v='prod'/><app:tag k='rack' v='r{}'/>\n      </app:item>\n",
            i % 97,
            i % 13
        );
        i += 1;
    }
    s.push_str("    </app:inventory>\n  </metadata>\n");
    s.push_str(&devices);
    s.push_str("</domain>\n");
    s
}

/// The baseline: read every event and write it back with quick-xml.
fn bare_pass(doc: &str) -> Vec<u8> {
    let mut r = Reader::from_str(doc);
    r.config_mut().trim_text(false);
    let mut w = Writer::new(Vec::with_capacity(doc.len()));
    loop {
        match r.read_event().expect("valid XML") {
            Event::Eof => break,
            e => w.write_event(e).expect("write"),
        }
    }
    w.into_inner()
}

fn main() {
    let doc = domain();
    let forest = forest();
    let nested = Options::default();
    let flat = Options {
        layout: Layout::Flat,
        ..Options::default()
    };
    // Sanity: the pass round-trips; populate fills every disk.
    assert_eq!(bare_pass(&doc).len(), doc.len());
    for opts in [&nested, &flat] {
        let out = xml::populate(&doc, &forest, opts).expect("populate");
        assert_eq!(
            out.xml.matches("<backingStore type='file'").count(),
            DISKS * (DEPTH - 1),
            "{:?}",
            opts.layout
        );
    }

    // The edit: a layer inserted above disk 500's second layer.
    let op = Op::InsertLayer {
        disk: DISKS / 2,
        depth: 2,
        layer: LayerSpec {
            kind: "file".into(),
            path: Some("/var/lib/libvirt/images/inserted.qcow2".into()),
            format: Some("qcow2".into()),
            ..LayerSpec::default()
        },
    };
    let populated: Vec<(&str, String)> = [("nested", &nested), ("flat", &flat)]
        .into_iter()
        .map(|(label, opts)| {
            (
                label,
                xml::populate(&doc, &forest, opts).expect("populate").xml,
            )
        })
        .collect();
    for (label, p) in &populated {
        let out = edit::apply(p, &op).expect("edit");
        assert!(
            out.contains("/var/lib/libvirt/images/inserted.qcow2"),
            "{label}"
        );
        // Edits work on the nested form: one more layer than the images give.
        assert_eq!(
            out.matches("<backingStore type='file'").count(),
            DISKS * (DEPTH - 1) + 1,
            "{label}"
        );
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("xml");
        g.bench_function("quick-xml-pass", |b| b.iter(|| bare_pass(&doc)));
        g.bench_function("populate-nested", |b| {
            b.iter(|| xml::populate(&doc, &forest, &nested))
        });
        g.bench_function("populate-flat", |b| {
            b.iter(|| xml::populate(&doc, &forest, &flat))
        });
        for (label, p) in &populated {
            g.bench_function(format!("edit-{label}"), |b| b.iter(|| edit::apply(p, &op)));
        }
        g.finish();
    }
    c.final_summary();

    let rounds = common::rounds(9);
    let mb = doc.len() as f64 / (1 << 20) as f64;
    for (label, opts) in [("nested", &nested), ("flat", &flat)] {
        let r = common::alternate(
            rounds,
            Duration::from_millis(50),
            || {
                std::hint::black_box(bare_pass(&doc));
            },
            || {
                std::hint::black_box(xml::populate(&doc, &forest, opts).expect("populate"));
            },
        );
        let ratio = r.a / r.b; // bare / populate
        common::report(
            &format!("xml populate {label}, {mb:.1} MB, {DISKS} disks"),
            &format!(
                "ratio {ratio:.2} (populate {}, quick-xml pass {})",
                common::fmt_time(r.b),
                common::fmt_time(r.a)
            ),
            &format!("≥ {MIN_RATIO}"),
            Some(ratio >= MIN_RATIO),
        );
    }
    for (label, p) in &populated {
        let r = common::alternate(
            rounds,
            Duration::from_millis(50),
            || {
                std::hint::black_box(bare_pass(p));
            },
            || {
                std::hint::black_box(edit::apply(p, &op).expect("edit"));
            },
        );
        common::report(
            &format!(
                "xml edit {label} (a layer inserted in 1 of {DISKS} disks), {:.1} MB",
                p.len() as f64 / (1 << 20) as f64
            ),
            &format!(
                "edit {} ({:.2}× the quick-xml pass, {})",
                common::fmt_time(r.b),
                r.b_over_a,
                common::fmt_time(r.a)
            ),
            "—",
            None,
        );
    }
}
