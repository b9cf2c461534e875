//! Golden outputs (issue 14 §3): what `backing-chain probe --json`,
//! `chain --json` and `xml` print for a fixed set of images and domains,
//! committed under `tests/golden/` and compared byte for byte, so that any
//! change of output shows up as a diff in review.
//!
//! **The golden files are reviewed diffs, not oracles.** They say what the
//! code printed when someone last looked, nothing more; a wrong output that
//! was committed stays wrong here. Correctness is checked elsewhere, against
//! qemu-img, xmllint and libvirt (`tests/formats.rs`, `tests/chains.rs`,
//! `tests/xml_*.rs`, `tests/libvirt_daemon.rs`), and those tests stay as they
//! are. The one oracle check here is in the recorder: each probe golden's
//! keys that `qemu-img info --output=json` also prints must match it on the
//! image the fixture was recorded from, so a wrong probe cannot be committed
//! silently.
//!
//! # Inputs: "reads" fixtures
//!
//! `tests/golden/images/NAME.reads` holds, for one image made by qemu-img,
//! the file length and the byte ranges the probe read from it — never the
//! image (see `tests/golden/README.md` for the format). Images qemu-img
//! makes are not byte-for-byte reproducible (VMDK CIDs, VHD/VHDX/VDI GUIDs
//! and timestamps, LUKS salts), so they are recorded once and committed.
//! Replaying them through [`probe_with`] is exact by the sans-I/O contract:
//! the probe sees the same bytes, so it asks for the same ranges and reaches
//! the same facts. A probe that starts reading bytes a fixture does not hold
//! fails with a message that says so (re-record, then review the diff).
//! The fixtures form one virtual directory, `/var/lib/libvirt/images`: a
//! backing file or VMDK extent "exists" when a fixture has its name, so the
//! paths in every output are stable.
//!
//! Record them again (needs qemu-img; this rewrites every fixture with new
//! ids, so the probe goldens of VMDK, VHD, VHDX, VDI and LUKS images change):
//!
//! ```sh
//! cargo test --test golden record -- --ignored
//! BACKING_CHAIN_GOLDEN_UPDATE=1 cargo test --test golden
//! ```
//!
//! # Outputs: through the library, checked against the CLI
//!
//! Outputs are made through the library, with the same calls and the same
//! serialisation as `src/bin/backing-chain.rs` (its probe loop, its
//! `missing-extent` check, its on-disk walk for `chain` and `xml`, its
//! `ChainOut` for `chain --json`), with reads served from the fixtures. That
//! keeps the paths fixed (`/var/lib/libvirt/images/…`, where a temp dir
//! would differ each run), needs no files and no process per output, and
//! runs where the binary cannot. The price is that those few lines of CLI
//! glue are mirrored here; [`cli_prints_the_same`] closes that gap: it
//! writes each fixture as a sparse file into a temp dir, runs the real CLI
//! there and requires the same bytes (the temp dir's path put back to
//! `/var/lib/libvirt/images`). Backing names in the fixtures are relative,
//! so the images mean the same in either directory.
//!
//! # Comparing and regenerating
//!
//! Each output is compared with its golden file; a mismatch prints the
//! first differing lines and the command that rewrites them:
//!
//! ```sh
//! BACKING_CHAIN_GOLDEN_UPDATE=1 cargo test --test golden
//! ```
//!
//! A golden file that is missing fails (unless updating); one that no case
//! writes any more fails too (updating deletes it). Then `git diff
//! tests/golden` is the review.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::chain::{self, BuildOptions, Forest, Image, Probed, Status};
use backing_chain::diag::{Code, Diagnostic};
use backing_chain::image::{probe_with, ProbeOrIo};
use backing_chain::xml::{self, Layout, Options};
use serde_json::Value;

/// Where the fixtures live, as far as every output is concerned.
const DIR: &str = "/var/lib/libvirt/images";
/// Set to rewrite the golden files.
const UPDATE: &str = "BACKING_CHAIN_GOLDEN_UPDATE";
const REGENERATE: &str = "BACKING_CHAIN_GOLDEN_UPDATE=1 cargo test --test golden";
const RECORD: &str = "cargo test --test golden record -- --ignored";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

// ---------------------------------------------------------------- fixtures

/// One image as the probe saw it: file length and the reads made.
#[derive(Debug, Clone, PartialEq)]
struct Fixture {
    len: u64,
    /// `(offset, bytes)` in the order read.
    reads: Vec<(u64, Vec<u8>)>,
}

/// Bytes per row of hex in a fixture.
const ROW: usize = 32;

impl Fixture {
    /// The text form: `#` comments, `len N`, then per read `at OFFSET LEN`
    /// and its non-zero rows of 32 bytes as `+REL HEX` (rows left out are
    /// zero).
    fn to_text(&self, comments: &[String]) -> String {
        let mut s = String::new();
        for c in comments {
            s.push_str(&format!("# {c}\n"));
        }
        s.push_str(&format!("len {}\n", self.len));
        for (off, bytes) in &self.reads {
            s.push_str(&format!("at {off} {}\n", bytes.len()));
            for (i, row) in bytes.chunks(ROW).enumerate() {
                if row.iter().any(|&b| b != 0) {
                    let hex: String = row.iter().map(|b| format!("{b:02x}")).collect();
                    s.push_str(&format!("+{} {hex}\n", i * ROW));
                }
            }
        }
        s
    }

    fn parse(text: &str) -> Result<Fixture, String> {
        let mut len = None;
        let mut reads: Vec<(u64, Vec<u8>)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
            let num = |s: Option<&str>| -> Result<u64, String> {
                s.and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("a number"))
            };
            let mut w = line.split_whitespace();
            match w.next() {
                None => {}
                Some(c) if c.starts_with('#') => {}
                Some("len") => len = Some(num(w.next())?),
                Some("at") => {
                    let off = num(w.next())?;
                    let n = num(w.next())?;
                    reads.push((off, vec![0; n as usize]));
                }
                Some(rel) if rel.starts_with('+') => {
                    let rel = num(Some(&rel[1..]))? as usize;
                    let hex = w.next().ok_or_else(|| bad("hex"))?;
                    let (_, buf) = reads.last_mut().ok_or_else(|| bad("a row before `at`"))?;
                    if hex.len() % 2 != 0 || rel + hex.len() / 2 > buf.len() {
                        return Err(bad("a row past its read"));
                    }
                    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
                        let p = std::str::from_utf8(pair).map_err(|_| bad("hex"))?;
                        buf[rel + i] = u8::from_str_radix(p, 16).map_err(|_| bad("hex"))?;
                    }
                }
                Some(_) => return Err(bad("not a fixture line")),
            }
        }
        Ok(Fixture {
            len: len.ok_or("no `len` line")?,
            reads,
        })
    }

    /// The bytes `[off, off + n)` from one recorded read that covers them.
    fn serve(&self, off: u64, n: u64) -> Result<Vec<u8>, String> {
        self.reads
            .iter()
            .find_map(|(o, b)| {
                let rel = off.checked_sub(*o)?;
                let end = rel.checked_add(n)?;
                (end <= b.len() as u64).then(|| b[rel as usize..end as usize].to_vec())
            })
            .ok_or_else(|| {
                format!(
                    "the probe reads [{off}, +{n}), which the fixture does not hold: \
                     the probe reads differently now; re-record with `{RECORD}`, then review"
                )
            })
    }
}

/// The virtual image directory: full path → fixture.
struct Images(BTreeMap<String, Fixture>);

fn fixture_path(name: &str) -> PathBuf {
    root().join("images").join(format!("{name}.reads"))
}

fn load_images() -> Images {
    let dir = root().join("images");
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(name) = name.strip_suffix(".reads") else {
            continue;
        };
        let text = std::fs::read_to_string(&p).unwrap();
        let fx = Fixture::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        m.insert(format!("{DIR}/{name}"), fx);
    }
    Images(m)
}

// ------------------------------------------- the CLI's glue, over fixtures

/// `probe_open` of the CLI, reading from a fixture.
fn probe(images: &Images, path: &str) -> Result<Image, String> {
    let fx = images
        .0
        .get(path)
        .ok_or_else(|| format!("{path}: no fixture"))?;
    let counted = std::cell::Cell::new(0u64);
    let serve = |o, n| {
        let r = fx.serve(o, n);
        if let Ok(b) = &r {
            counted.set(counted.get() + b.len() as u64);
        }
        r
    };
    Ok(match probe_with(Some(fx.len), serve) {
        Ok((info, bytes_read)) => Image {
            filename: path.to_string(),
            probe: Probed::Info(Box::new(info)),
            bytes_read,
        },
        Err(ProbeOrIo::Probe(e)) => Image {
            filename: path.to_string(),
            probe: Probed::Error {
                error: e.to_string(),
            },
            bytes_read: counted.get(),
        },
        Err(ProbeOrIo::Io(e)) => return Err(format!("{path}: {e}")),
    })
}

/// `check_extents` of the CLI (not `--untrusted`): an extent exists when a
/// fixture has its path.
fn check_extents(images: &Images, img: &mut Image) {
    let missing: Vec<Diagnostic> = chain::extent_paths(img)
        .into_iter()
        .filter(|(_, path)| !images.0.contains_key(path))
        .map(|(name, path)| {
            Diagnostic::error(
                Code::MissingExtent,
                format!("the extent '{name}' of this VMDK (resolved to '{path}') is missing: qemu cannot open the image"),
            )
        })
        .collect();
    if let Probed::Info(info) = &mut img.probe {
        info.diagnostics.extend(missing);
    }
}

/// `collect_on_disk` of the CLI (not `--untrusted`): each top's backing
/// files, followed while a fixture has the path. (The CLI also notices the
/// same file under two spellings by inode; the fixtures have one spelling
/// per file.)
fn collect(images: &Images, tops: &[&str]) -> Result<(Vec<Image>, Vec<usize>), String> {
    let mut out: Vec<Image> = Vec::new();
    let mut top_idx = Vec::new();
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    for &t in tops {
        let mut path = t.to_string();
        let mut first = true;
        loop {
            if let Some(&i) = by_path.get(&path) {
                if first {
                    top_idx.push(i);
                }
                break;
            }
            if !images.0.contains_key(&path) {
                if first {
                    return Err(format!("{path}: No such file or directory"));
                }
                break;
            }
            let mut img = probe(images, &path)?;
            check_extents(images, &mut img);
            let next = img
                .info()
                .and_then(|i| i.backing_filename.as_deref())
                .and_then(|name| chain::backing_path(&path, name).ok().flatten());
            by_path.insert(path.clone(), out.len());
            if first {
                top_idx.push(out.len());
            }
            out.push(img);
            first = false;
            match next {
                Some(n) if out.len() <= backing_chain::limits::MAX_CHAIN_DEPTH => path = n,
                _ => break,
            }
        }
    }
    Ok((out, top_idx))
}

/// `backing-chain probe --json DIR/NAME`, as printed.
fn probe_output(images: &Images, name: &str) -> String {
    let path = format!("{DIR}/{name}");
    let mut img = probe(images, &path).unwrap_or_else(|e| panic!("{e}"));
    check_extents(images, &mut img);
    let v = vec![serde_json::to_value(&img).unwrap()];
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// `backing-chain chain --json DIR/TOP…`, as printed.
fn chain_output(images: &Images, tops: &[&str]) -> String {
    let paths: Vec<String> = tops.iter().map(|t| format!("{DIR}/{t}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (imgs, top_idx) = collect(images, &paths).unwrap_or_else(|e| panic!("{e}"));
    let forest = chain::build_with(
        imgs,
        &BuildOptions {
            exact_paths: true,
            ..Default::default()
        },
    );
    #[derive(serde::Serialize)]
    struct ChainOut<'a> {
        filename: &'a str,
        status: Status,
        images: Vec<&'a Image>,
        diagnostics: &'a [Diagnostic],
    }
    let chains: Vec<_> = top_idx.iter().map(|&t| (t, forest.chain_from(t))).collect();
    // Every chain diagnostic names the layer it is about (a page attaches it there).
    for (_, ch) in &chains {
        for d in &ch.diagnostics {
            assert!(d.image.is_some_and(|i| ch.layers.contains(&i)), "{d:?}");
        }
    }
    let v: Vec<ChainOut> = chains
        .iter()
        .map(|(t, ch)| ChainOut {
            filename: &forest.images[*t].filename,
            status: ch.status,
            images: ch.layers.iter().map(|&l| &forest.images[l]).collect(),
            diagnostics: &ch.diagnostics,
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// `backing-chain xml [--domain D] --layout L [--no-index] DIR/IMAGE…`:
/// its standard output.
fn xml_output(images: &Images, domain: Option<&str>, tops: &[&str], opts: &Options) -> String {
    let paths: Vec<String> = tops.iter().map(|t| format!("{DIR}/{t}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (imgs, _) = collect(images, &paths).unwrap_or_else(|e| panic!("{e}"));
    let forest: Forest = chain::build_with(imgs, &BuildOptions::default());
    match domain {
        Some(d) => xml::populate(d, &forest, opts).unwrap_or_else(|e| panic!("{e}")),
        None => xml::disks(&forest, opts),
    }
    .xml
}

// ------------------------------------------------------------------ cases

/// Every fixture gets a probe golden; these are the chain sets, as tops
/// given to `chain --json` (in this order).
const CHAIN_SETS: &[(&str, &[&str])] = &[
    // top → mid → base, all recording qcow2.
    ("three-layers", &["top.qcow2"]),
    // Three overlays of one base (one through mid), and a qcow2 v2 one.
    (
        "shared-base",
        &["top.qcow2", "data & logs.qcow2", "v2-backed.qcow2"],
    ),
    // The backing file is not there.
    ("missing", &["orphan.qcow2"]),
    // a → b → a.
    ("loop", &["loop-a.qcow2"]),
    // No backing format recorded: over a base (accepted, warning) and over
    // a layer with a backing of its own (libvirt refuses).
    (
        "unrecorded-format",
        &["noformat-base.qcow2", "noformat.qcow2"],
    ),
    // qcow2 → vmdk (CID-linked) → vmdk.
    ("vmdk", &["data.qcow2"]),
    // A qcow2 recording qcow2 for a raw backing.
    ("format-mismatch", &["mismatch.qcow2"]),
    // qcow (never records the format) and qed over qcow2.
    ("qcow-qed", &["b.qcow", "b.qed"]),
    // Hostile: a truncated header, a backing name longer than qemu reads.
    ("hostile", &["truncated.qcow2", "long-name.qcow2"]),
    // The qcow2 external data file, VMDKs whose flat extents are there, a
    // VMDK whose extent is not.
    (
        "data-file-extent",
        &["datafile.qcow2", "flat.vmdk", "tgf.vmdk", "noextent.vmdk"],
    ),
];

/// Domains (from `tests/fixtures/xml/`, or bare `<disk>`s when `None`) and
/// the images given to `xml`.
const XML_SETS: &[(&str, Option<&str>, &[&str])] = &[
    ("disk", Some("disk.xml"), &["top.qcow2"]),
    (
        "all-disks",
        Some("domain-all-disks.xml"),
        &["top.qcow2", "data & logs.qcow2", "encrypted.qcow2"],
    ),
    ("status", Some("status.xml"), &["data.qcow2"]),
    (
        "bare",
        None,
        &["top.qcow2", "b.qed", "noformat.qcow2", "datafile.qcow2"],
    ),
];

/// The four ways each XML set is written: (file suffix, layout, no-index).
const XML_MODES: [(&str, Layout, bool); 4] = [
    ("nested", Layout::Nested, false),
    ("nested.no-index", Layout::Nested, true),
    ("flat", Layout::Flat, false),
    ("flat.no-index", Layout::Flat, true),
];

fn xml_opts(layout: Layout, no_index: bool) -> Options {
    Options {
        layout,
        no_index,
        ..Default::default()
    }
}

/// Every golden output: (path under `tests/golden/`, the bytes).
fn probe_goldens(images: &Images) -> Vec<(String, String)> {
    images
        .0
        .keys()
        .map(|p| {
            let name = &p[DIR.len() + 1..];
            (format!("probe/{name}.json"), probe_output(images, name))
        })
        .collect()
}

fn chain_goldens(images: &Images) -> Vec<(String, String)> {
    CHAIN_SETS
        .iter()
        .map(|(set, tops)| (format!("chain/{set}.json"), chain_output(images, tops)))
        .collect()
}

fn xml_goldens(images: &Images) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (set, domain, tops) in XML_SETS {
        let doc = domain.map(common::fixture);
        for (suffix, layout, no_index) in XML_MODES {
            let out = xml_output(images, doc.as_deref(), tops, &xml_opts(layout, no_index));
            v.push((format!("xml/{set}.{suffix}.xml"), out));
        }
    }
    v
}

// ------------------------------------------------------------- comparing

/// The first differing lines of two texts, unified-diff style: the common
/// head and tail cut off, three lines of context, at most 40 lines shown.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let head = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let tail = e[head..]
        .iter()
        .rev()
        .zip(a[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let ctx = head.saturating_sub(3);
    let mut out = vec![format!(
        "@@ -{},{} +{},{} @@",
        ctx + 1,
        e.len() - tail - ctx,
        ctx + 1,
        a.len() - tail - ctx
    )];
    out.extend(e[ctx..head].iter().map(|l| format!(" {l}")));
    out.extend(e[head..e.len() - tail].iter().map(|l| format!("-{l}")));
    out.extend(a[head..a.len() - tail].iter().map(|l| format!("+{l}")));
    let after = e.len() - tail;
    out.extend(
        e[after..(after + 3).min(e.len())]
            .iter()
            .map(|l| format!(" {l}")),
    );
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push("\\ the two differ in the newline at the end".into());
    }
    let n = out.len();
    out.truncate(40);
    if n > 40 {
        out.push(format!("… {} more lines", n - 40));
    }
    out.join("\n")
}

/// Compare (or, with `BACKING_CHAIN_GOLDEN_UPDATE`, write) every output of
/// one kind, and flag golden files of that kind no case makes.
fn check_goldens(kind: &str, outputs: Vec<(String, String)>) {
    let update = std::env::var_os(UPDATE).is_some();
    let mut failures = Vec::new();
    let mut made = BTreeSet::new();
    for (rel, actual) in &outputs {
        let path = root().join(rel);
        made.insert(path.clone());
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == *actual => {}
            _ if update => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, actual).unwrap();
                eprintln!("wrote tests/golden/{rel}");
            }
            Ok(expected) => failures.push(format!(
                "tests/golden/{rel} differs (- golden, + now):\n{}",
                diff(&expected, actual)
            )),
            Err(e) => failures.push(format!("tests/golden/{rel}: {e} (a new case?)")),
        }
    }
    let dir = root().join(kind);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd {
            let p = e.unwrap().path();
            if made.contains(&p) {
                continue;
            }
            if update {
                std::fs::remove_file(&p).unwrap();
                eprintln!("removed {}", p.display());
            } else {
                failures.push(format!(
                    "{}: no case makes this golden file any more",
                    p.display()
                ));
            }
        }
    }
    eprintln!("{kind}: {} golden outputs", outputs.len());
    if !failures.is_empty() {
        panic!(
            "{kind}: {} golden files differ, are missing or are stale ({} outputs):\n\n{}\n\n\
             If the change is intended, regenerate them and review `git diff tests/golden`:\n    \
             {REGENERATE}",
            failures.len(),
            outputs.len(),
            failures.join("\n\n")
        );
    }
}

#[test]
fn probe_outputs() {
    let images = load_images();
    check_goldens("probe", probe_goldens(&images));
}

#[test]
fn chain_outputs() {
    let images = load_images();
    check_goldens("chain", chain_goldens(&images));
}

#[test]
fn xml_outputs() {
    let images = load_images();
    check_goldens("xml", xml_goldens(&images));
}

/// The wasm writes its answers with `json_out`, not serde_json (issue 18):
/// every value these fixtures give, written by both, is the same text. The
/// values: each probe (facts of every format, errors, diagnostics), each
/// chain set's forest, chains and data files, each XML set's output in
/// every mode, what `describe`, `images_of`, `seclabels` and `diff` say of
/// every domain fixture, the images of the `qemu-img info` JSON fixtures,
/// and an audit of it all with its CSV and script (the wasm's answer).
#[test]
fn json_out_writes_what_serde_json_writes() {
    use common::same_json;
    let images = load_images();
    let mut formats = BTreeSet::new();
    let mut all = Vec::new();
    for path in images.0.keys() {
        let mut img = probe(&images, path).unwrap_or_else(|e| panic!("{e}"));
        check_extents(&images, &mut img);
        same_json(&img, path);
        if let Some(info) = img.info() {
            formats.insert(info.format.to_string());
            same_json(info, path);
        }
        all.push(img);
    }
    // Not a vacuous pass: the fixtures hold this many formats, and errors.
    assert!(formats.len() >= 10, "{formats:?}");
    assert!(all.iter().any(|i| matches!(i.probe, Probed::Error { .. })));

    let names: Vec<String> = images.0.keys().cloned().collect();
    for (set, tops) in CHAIN_SETS {
        let paths: Vec<String> = tops.iter().map(|t| format!("{DIR}/{t}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let (imgs, top_idx) = collect(&images, &paths).unwrap_or_else(|e| panic!("{e}"));
        let forest = chain::build_with(
            imgs,
            &BuildOptions {
                exact_paths: true,
                ..Default::default()
            },
        );
        same_json(&forest, set);
        for t in top_idx {
            same_json(&forest.chain_from(t), set);
        }
        same_json(&forest.data_files(&names), set);
    }
    for (set, domain, tops) in XML_SETS {
        let doc = domain.map(common::fixture);
        let paths: Vec<String> = tops.iter().map(|t| format!("{DIR}/{t}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let (imgs, _) = collect(&images, &paths).unwrap_or_else(|e| panic!("{e}"));
        let forest = chain::build_with(imgs, &BuildOptions::default());
        for (suffix, layout, no_index) in XML_MODES {
            let opts = xml_opts(layout, no_index);
            let out = match &doc {
                Some(d) => xml::populate(d, &forest, &opts).unwrap_or_else(|e| panic!("{e}")),
                None => xml::disks(&forest, &opts),
            };
            same_json(&out, &format!("{set}.{suffix}"));
        }
    }

    // Every domain fixture against a forest of every image.
    let forest = chain::build_with(all.clone(), &BuildOptions::default());
    same_json(&forest, "every image");
    let xml_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml");
    let mut docs = Vec::new();
    for dir in [xml_dir.clone(), xml_dir.join("regressions")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "xml") {
                docs.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    docs.sort();
    let mut described = 0;
    for (name, doc) in &docs {
        if let Ok(d) = xml::describe(doc) {
            same_json(&d, name);
            described += 1;
        }
        if let Ok(d) = xml::images_of(doc, &forest) {
            same_json(&d, name);
        }
        if let Ok(d) = xml::edit::seclabels(doc) {
            same_json(&d, name);
        }
        if let Ok(d) = xml::diff::diff(doc, &forest, &Options::default()) {
            same_json(&d, name);
        }
        if let Ok(out) = xml::populate(doc, &forest, &Options::default()) {
            same_json(&out, name);
        }
    }
    assert!(described >= 10, "{described} of {} documents", docs.len());

    // A `qemu-img info --backing-chain --output=json` document: its
    // `format-specific` kept as JSON values.
    let qemu_docs = [xml_dir.join("qemu-img-chain.json")];
    for p in &qemu_docs {
        let text = std::fs::read_to_string(p).unwrap();
        let imgs = xml::qemu_json::images(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        same_json(&imgs, &p.display().to_string());
        let names: Vec<&str> = imgs.iter().map(|i| i.filename.as_str()).collect();
        same_json(&names, &p.display().to_string());
        same_json(&chain::build(imgs), &p.display().to_string());
    }

    // The audit answer: the report, its CSV and its script.
    #[derive(serde::Serialize)]
    struct AuditAnswer<'a> {
        report: &'a backing_chain::audit::Audit,
        csv: String,
        script: String,
    }
    let domains: Vec<backing_chain::audit::DomainText> = docs
        .iter()
        .map(|(label, text)| backing_chain::audit::DomainText {
            label: label.clone(),
            text: text.clone(),
        })
        .collect();
    let facts: Vec<backing_chain::audit::FileFacts> = all
        .iter()
        .map(|i| backing_chain::audit::FileFacts {
            size: images.0.get(&i.filename).map(|f| f.len),
            id: None,
        })
        .collect();
    let a = backing_chain::audit::audit(all, &facts, &domains, &Default::default());
    assert!(!a.findings.is_empty() && !a.vms.is_empty());
    same_json(
        &AuditAnswer {
            csv: backing_chain::audit::report::csv(&a),
            script: backing_chain::audit::report::script(&a),
            report: &a,
        },
        "audit",
    );
}

/// The fixtures' text form reads back to the same bytes.
#[test]
fn fixture_text_round_trips() {
    let fx = Fixture {
        len: 1 << 40,
        reads: vec![
            (0, (0..=255u8).cycle().take(100).collect()),
            (4096, vec![0; 64]),
            (65536, vec![0, 0, 0, 7]),
        ],
    };
    let text = fx.to_text(&["a comment".into()]);
    assert_eq!(Fixture::parse(&text).unwrap(), fx, "{text}");
    assert_eq!(fx.serve(10, 5).unwrap(), vec![10, 11, 12, 13, 14]);
    assert!(fx.serve(90, 20).is_err(), "past a read");
    assert!(fx.serve(200, 1).is_err(), "between reads");
}

// ---------------------------------------------- the CLI prints the same

/// Write every fixture as a sparse file (its length, its read bytes, zeros
/// elsewhere) into `dir`.
fn write_sparse(images: &Images, dir: &Path) {
    use std::os::unix::fs::FileExt;
    for (path, fx) in &images.0 {
        let f = std::fs::File::create(dir.join(&path[DIR.len() + 1..])).unwrap();
        f.set_len(fx.len).unwrap();
        for (off, bytes) in &fx.reads {
            f.write_all_at(bytes, *off).unwrap();
        }
    }
}

/// Run the CLI; its standard output with the temp dir's path put back.
fn cli(dir: &Path, args: &[String], stdin: Option<&str>) -> String {
    use std::io::Write;
    let tmp = dir.to_str().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backing-chain"));
    cmd.args(args.iter().map(|a| a.replace(DIR, tmp)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("the CLI runs");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").replace(DIR, tmp).as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "backing-chain {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().replace(tmp, DIR)
}

/// The library calls above print what the CLI prints: the CLI run on the
/// fixtures written out as sparse files in a temp dir.
#[test]
fn cli_prints_the_same() {
    let images = load_images();
    let d = tempfile::tempdir().unwrap();
    write_sparse(&images, d.path());
    let mut diffs = Vec::new();
    let mut same = |what: String, ours: String, theirs: String| {
        if ours != theirs {
            diffs.push(format!(
                "{what} (- library, + CLI):\n{}",
                diff(&ours, &theirs)
            ));
        }
    };
    let mut n = 0;
    for p in images.0.keys() {
        let name = &p[DIR.len() + 1..];
        let args = vec!["probe".into(), "--json".into(), p.clone()];
        same(
            format!("probe {name}"),
            probe_output(&images, name),
            cli(d.path(), &args, None),
        );
        n += 1;
    }
    for (set, tops) in CHAIN_SETS {
        let mut args = vec!["chain".to_string(), "--json".into()];
        args.extend(tops.iter().map(|t| format!("{DIR}/{t}")));
        same(
            format!("chain {set}"),
            chain_output(&images, tops),
            cli(d.path(), &args, None),
        );
        n += 1;
    }
    for (set, domain, tops) in XML_SETS {
        let doc = domain.map(common::fixture);
        for (suffix, layout, no_index) in XML_MODES {
            let mut args = vec!["xml".to_string()];
            if doc.is_some() {
                args.extend(["--domain".into(), "-".into()]);
            }
            args.extend([
                "--layout".into(),
                if layout == Layout::Flat {
                    "flat"
                } else {
                    "nested"
                }
                .into(),
            ]);
            if no_index {
                args.push("--no-index".into());
            }
            args.extend(tops.iter().map(|t| format!("{DIR}/{t}")));
            let ours = xml_output(&images, doc.as_deref(), tops, &xml_opts(layout, no_index));
            same(
                format!("xml {set}.{suffix}"),
                ours,
                cli(d.path(), &args, doc.as_deref()),
            );
            n += 1;
        }
    }
    eprintln!("{n} outputs compared with the CLI's");
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}

// --------------------------------------------------------------- recorder

/// What qemu-img info must say of a recorded image.
enum Oracle {
    /// Its keys that overlap ours must equal the probe golden's (`-f FMT`
    /// when given: a fixed VHD is raw to qemu's probe).
    Info(Option<&'static str>),
    /// qemu-img refuses to open it.
    Refuses,
    /// Not compared, and why.
    Not(&'static str),
}

/// What is done to an image after qemu-img made it.
enum Then {
    Nothing,
    /// Drop the qcow2 backing-format extension (qemu-img 10 always writes one).
    ForgetBackingFormat,
    /// Cut the file to this many bytes.
    Truncate(u64),
    /// Make the qcow2 backing name one byte longer than qemu reads (1024).
    LengthenBackingName,
    /// More qemu-img commands (same form as `make`).
    Also(&'static [&'static [&'static str]]),
}

struct Rec {
    name: &'static str,
    /// `qemu-img` arguments, run in the recording directory (none: a file
    /// another command makes).
    make: &'static [&'static str],
    then: Then,
    oracle: Oracle,
}

const fn rec(name: &'static str, make: &'static [&'static str]) -> Rec {
    Rec {
        name,
        make,
        then: Then::Nothing,
        oracle: Oracle::Info(None),
    }
}

const SECRET: &str = "secret,id=sec0,data=abc";

/// A 1,023-byte relative backing name, the longest qcow2 allows.
fn long_name() -> String {
    format!("{}.qcow2", "n".repeat(1023 - 6))
}

/// Every fixture, in the order made (backings first).
fn recordings() -> Vec<Rec> {
    vec![
        rec("base.qcow2", &["create", "-f", "qcow2", "base.qcow2", "1G"]),
        rec(
            "mid.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "mid.qcow2",
            ],
        ),
        rec(
            "top.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                "mid.qcow2",
                "-F",
                "qcow2",
                "top.qcow2",
            ],
        ),
        rec(
            "data & logs.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "data & logs.qcow2",
            ],
        ),
        rec(
            "v2.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-o",
                "compat=0.10",
                "v2.qcow2",
                "1G",
            ],
        ),
        rec(
            "v2-backed.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-o",
                "compat=0.10",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "v2-backed.qcow2",
            ],
        ),
        Rec {
            then: Then::ForgetBackingFormat,
            ..rec(
                "noformat.qcow2",
                &[
                    "create",
                    "-f",
                    "qcow2",
                    "-b",
                    "mid.qcow2",
                    "-F",
                    "qcow2",
                    "noformat.qcow2",
                ],
            )
        },
        Rec {
            then: Then::ForgetBackingFormat,
            ..rec(
                "noformat-base.qcow2",
                &[
                    "create",
                    "-f",
                    "qcow2",
                    "-b",
                    "base.qcow2",
                    "-F",
                    "qcow2",
                    "noformat-base.qcow2",
                ],
            )
        },
        rec(
            "datafile.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-o",
                "data_file=datafile.raw",
                "datafile.qcow2",
                "1G",
            ],
        ),
        rec("datafile.raw", &[]),
        rec(
            "encrypted.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "--object",
                SECRET,
                "-o",
                "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
                "encrypted.qcow2",
                "1G",
            ],
        ),
        rec(
            "orphan.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-u",
                "-b",
                "gone.qcow2",
                "-F",
                "qcow2",
                "orphan.qcow2",
                "1G",
            ],
        ),
        rec(
            "loop-a.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-u",
                "-b",
                "loop-b.qcow2",
                "-F",
                "qcow2",
                "loop-a.qcow2",
                "1G",
            ],
        ),
        rec(
            "loop-b.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-u",
                "-b",
                "loop-a.qcow2",
                "-F",
                "qcow2",
                "loop-b.qcow2",
                "1G",
            ],
        ),
        rec("disk.raw", &["create", "-f", "raw", "disk.raw", "64M"]),
        rec(
            "mismatch.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-u",
                "-b",
                "disk.raw",
                "-F",
                "qcow2",
                "mismatch.qcow2",
                "1G",
            ],
        ),
        rec("a.qcow", &["create", "-f", "qcow", "a.qcow", "1G"]),
        rec(
            "b.qcow",
            &[
                "create",
                "-f",
                "qcow",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "b.qcow",
            ],
        ),
        rec("a.qed", &["create", "-f", "qed", "a.qed", "1G"]),
        rec(
            "b.qed",
            &[
                "create",
                "-f",
                "qed",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "b.qed",
            ],
        ),
        rec(
            "sparse.vmdk",
            &["create", "-f", "vmdk", "sparse.vmdk", "1G"],
        ),
        rec(
            "child.vmdk",
            &[
                "create",
                "-f",
                "vmdk",
                "-b",
                "sparse.vmdk",
                "-F",
                "vmdk",
                "child.vmdk",
            ],
        ),
        rec(
            "data.qcow2",
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                "child.vmdk",
                "-F",
                "vmdk",
                "data.qcow2",
            ],
        ),
        rec(
            "stream.vmdk",
            &[
                "create",
                "-f",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "stream.vmdk",
                "1G",
            ],
        ),
        rec(
            "flat.vmdk",
            &[
                "create",
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "flat.vmdk",
                "64M",
            ],
        ),
        rec("flat-flat.vmdk", &[]),
        rec("dynamic.vpc", &["create", "-f", "vpc", "dynamic.vpc", "1G"]),
        Rec {
            oracle: Oracle::Info(Some("vpc")),
            ..rec(
                "fixed.vpc",
                &[
                    "create",
                    "-f",
                    "vpc",
                    "-o",
                    "subformat=fixed",
                    "fixed.vpc",
                    "16M",
                ],
            )
        },
        rec("a.vhdx", &["create", "-f", "vhdx", "a.vhdx", "1G"]),
        rec(
            "fixed.vhdx",
            &[
                "create",
                "-f",
                "vhdx",
                "-o",
                "subformat=fixed",
                "fixed.vhdx",
                "16M",
            ],
        ),
        rec("a.vdi", &["create", "-f", "vdi", "a.vdi", "1G"]),
        rec(
            "static.vdi",
            &[
                "create",
                "-f",
                "vdi",
                "-o",
                "static=on",
                "static.vdi",
                "16M",
            ],
        ),
        // A descriptor whose flat extent has no fixture: missing here.
        rec(
            "noextent.vmdk",
            &[
                "create",
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "noextent.vmdk",
                "1M",
            ],
        ),
        rec(
            "tgf.vmdk",
            &[
                "create",
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentFlat",
                "tgf.vmdk",
                "64M",
            ],
        ),
        rec("tgf-f001.vmdk", &[]),
        Rec {
            then: Then::Also(&[
                &["bitmap", "--add", "bitmaps.qcow2", "b0"],
                &[
                    "bitmap",
                    "--add",
                    "-g",
                    "131072",
                    "--disable",
                    "bitmaps.qcow2",
                    "second",
                ],
            ]),
            ..rec(
                "bitmaps.qcow2",
                &["create", "-f", "qcow2", "bitmaps.qcow2", "1G"],
            )
        },
        rec(
            "a.parallels",
            &["create", "-f", "parallels", "a.parallels", "1G"],
        ),
        rec(
            "a.luks",
            &[
                "create",
                "-f",
                "luks",
                "--object",
                SECRET,
                "-o",
                "key-secret=sec0,iter-time=10",
                "a.luks",
                "16M",
            ],
        ),
        Rec {
            then: Then::Truncate(100),
            oracle: Oracle::Not(
                "qemu-img info calls a 100-byte file raw; we say the qcow2 header is truncated",
            ),
            ..rec(
                "truncated.qcow2",
                &["create", "-f", "qcow2", "truncated.qcow2", "1G"],
            )
        },
        Rec {
            then: Then::LengthenBackingName,
            oracle: Oracle::Refuses,
            ..rec("long-name.qcow2", &[])
        },
    ]
}

fn qemu_img(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("qemu-img runs")
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Append one byte to the qcow2 backing name (its size field + 1).
fn lengthen_backing_name(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let off = u64::from_be_bytes(b[8..16].try_into().unwrap()) as usize;
    let size = be32(&b, 16) as usize;
    b[off + size] = b'n';
    b[16..20].copy_from_slice(&(size as u32 + 1).to_be_bytes());
    std::fs::write(p, b).unwrap();
}

/// Probe a real file, keeping every read.
fn record_file(path: &Path) -> Fixture {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut reads = Vec::new();
    let _ = probe_with(Some(len), |off, n| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], off + got as u64)? {
                0 => break,
                k => got += k,
            }
        }
        buf.truncate(got);
        reads.push((off, buf.clone()));
        Ok(buf)
    });
    Fixture { len, reads }
}

/// Keys both `qemu-img info --output=json` and our probe print.
const SHARED_KEYS: [&str; 5] = [
    "format",
    "virtual-size",
    "cluster-size",
    "backing-filename",
    "backing-filename-format",
];

/// Make every image with qemu-img, record its fixture, and check its probe
/// against `qemu-img info`. Rewrites `tests/golden/images/`; then
/// regenerate the goldens and review.
#[test]
#[ignore = "records the fixtures with qemu-img: cargo test --test golden record -- --ignored"]
fn record() {
    assert!(common::have_qemu_img(), "the recorder needs qemu-img");
    let version = String::from_utf8(qemu_img(Path::new("."), &["--version"]).stdout).unwrap();
    let version = version.lines().next().unwrap_or("").to_string();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut recorded = BTreeMap::new();
    let mut problems = Vec::new();
    for r in recordings() {
        let path = dir.join(r.name);
        let mut made = Vec::new();
        if !r.make.is_empty() {
            let mut args = vec![r.make[0], "-q"];
            args.extend(&r.make[1..]);
            let out = qemu_img(dir, &args);
            assert!(
                out.status.success(),
                "qemu-img {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            made.push(format!("qemu-img {}", shell_words(&args)));
        }
        match r.then {
            Then::Nothing if r.make.is_empty() => {
                made.push("made by the command of another fixture".into())
            }
            Then::Nothing => {}
            Then::Also(cmds) => {
                for c in cmds {
                    let out = qemu_img(dir, c);
                    assert!(
                        out.status.success(),
                        "qemu-img {c:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    made.push(format!("qemu-img {}", shell_words(c)));
                }
            }
            Then::ForgetBackingFormat => {
                common::forget_backing_format(&path);
                made.push("then the backing-format header extension's type set to 0 (end)".into());
            }
            Then::Truncate(n) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(n)
                    .unwrap();
                made.push(format!("then cut to {n} bytes"));
            }
            Then::LengthenBackingName => {
                let name = long_name();
                let args = [
                    "create", "-q", "-f", "qcow2", "-u", "-b", &name, "-F", "qcow2", r.name, "1G",
                ];
                let out = qemu_img(dir, &args);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                made.push(format!(
                    "qemu-img create -q -f qcow2 -u -b {{1,023-byte name: 'n' x 1017 + '.qcow2'}} -F qcow2 {} 1G",
                    r.name
                ));
                lengthen_backing_name(&path);
                made.push("then one 'n' appended to the backing name (1,024 bytes)".into());
            }
        }
        let fx = record_file(&path);
        let mut comments = vec![
            format!(
                "{}: the bytes backing-chain's probe read (tests/golden/README.md)",
                r.name
            ),
            format!("recorded with {version}:"),
        ];
        comments.extend(made);
        let text = fx.to_text(&comments);
        assert_eq!(Fixture::parse(&text).unwrap(), fx, "{}: round trip", r.name);
        std::fs::write(fixture_path(r.name), &text).unwrap();
        recorded.insert(format!("{DIR}/{}", r.name), fx);
        // The oracle, on the probe replayed from the fixture.
        let mut info = vec!["info", "--output=json"];
        match r.oracle {
            Oracle::Info(fmt) => {
                if let Some(f) = fmt {
                    info.extend(["-f", f]);
                }
                info.push(r.name);
                let out = qemu_img(dir, &info);
                if !out.status.success() {
                    problems.push(format!(
                        "{}: qemu-img info fails: {}",
                        r.name,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    continue;
                }
                let q: Value = serde_json::from_slice(&out.stdout).unwrap();
                let images = Images(recorded.clone());
                let ours: Value = serde_json::from_str(&probe_output(&images, r.name)).unwrap();
                for k in SHARED_KEYS {
                    if ours[0].get(k) != q.get(k) {
                        problems.push(format!(
                            "{}: {k}: ours {:?}, qemu-img info {:?}",
                            r.name,
                            ours[0].get(k),
                            q.get(k)
                        ));
                    }
                }
            }
            Oracle::Refuses => {
                info.push(r.name);
                if qemu_img(dir, &info).status.success() {
                    problems.push(format!("{}: qemu-img info opens it", r.name));
                }
            }
            Oracle::Not(why) => eprintln!("{}: not compared with qemu-img: {why}", r.name),
        }
    }
    // Fixtures no recording makes any more.
    for e in std::fs::read_dir(root().join("images")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if let Some(n) = name.strip_suffix(".reads") {
            if !recorded.contains_key(&format!("{DIR}/{n}")) {
                std::fs::remove_file(&p).unwrap();
                eprintln!("removed {}", p.display());
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "recorded {} fixtures; now run `{REGENERATE}` and review `git diff tests/golden`",
        recorded.len()
    );
}

/// Arguments as a shell would take them back.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| backing_chain::diag::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}
