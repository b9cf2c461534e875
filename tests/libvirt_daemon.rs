//! The real libvirt daemon as the judge (`qemu:///system`, QEMU TCG guests
//! with no OS, started and destroyed in about a second each): images made
//! with qemu-img, a domain with bare `<disk>`s, and what libvirt does with it
//! — whether it starts, and the chains, formats and `index` numbers of its
//! live XML — compared with what `backing-chain chain --json` and
//! `backing-chain xml --domain` say.
//!
//! The daemon is started when it is not running (see `common::libvirtd`);
//! without it (or without root) the tests skip visibly, and fail under
//! `BACKING_CHAIN_REQUIRE_ORACLES=1`. The findings behind these tests (the
//! index rule, the verdicts, data stores) were written down with libvirt
//! 11.3.0 and QEMU 10.0.2: `docs/libvirt-findings/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::libvirtd::{self, chain_view, disks, Daemon, Vm};
use common::qemu_img;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

fn daemon(what: &str) -> Option<&'static Daemon> {
    if !common::have_qemu_img() {
        return None;
    }
    libvirtd::daemon(what)
}

/// `qemu-img create -q -f FMT [-b BACKING -F BFMT] NAME 16M` in `dir`.
fn create(dir: &Path, fmt: &str, name: &str, backing: Option<(&str, &str)>) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", fmt];
    if let Some((b, bf)) = backing {
        args.extend(["-b", b, "-F", bf]);
    }
    args.extend([name, "16M"]);
    qemu_img(dir, &args);
    dir.join(name)
}

/// A scratch directory for images, or `None` (skipped visibly) without qemu-img.
fn scratch() -> Option<tempfile::TempDir> {
    if !common::tool("qemu-img") {
        common::skip("qemu-img not found");
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

fn cli(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A file disk element.
fn disk(dev: &str, bus: &str, fmt: &str, file: &Path) -> String {
    format!(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{}'/>
      <target dev='{dev}' bus='{bus}'/>
    </disk>
",
        file.display()
    )
}

// ---------------------------------------------------------------------------
// (a) Verdicts: does libvirt start a chain whose backing format is not
// recorded, and does `chain --json` say the same?

/// `chain --json TOP`: the status and the (code, severity) of each diagnostic.
fn our_chain(top: &Path) -> (String, Vec<(String, String)>) {
    let (out, err, _) = cli(&["chain", "--json", top.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("chain --json: {e}\n{out}\n{err}"));
    let c = &v[0];
    let status = c["status"].as_str().expect("a status").to_string();
    let diags = c["diagnostics"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["code"].as_str().unwrap_or("").to_string(),
                        d["severity"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (status, diags)
}

/// Start a guest whose only disk is `top` (format `fmt`, no `<backingStore>`:
/// libvirt detects the chain), and hold our verdict against libvirt's: the
/// status is `ok` exactly when libvirt starts the guest, and there is an
/// error diagnostic `backing-format-not-recorded` exactly when libvirt
/// refuses it for an unrecorded backing format.
fn verdict(case: &str, top: &Path, fmt: &str, libvirt_starts: bool) {
    let Some(d) = daemon(case) else {
        return;
    };
    let theirs = libvirtd::start_and_dump(d, case, &disk("vda", "virtio", fmt, top));
    // The oracle first: this case is what the findings say it is.
    match (&theirs, libvirt_starts) {
        (Ok(_), true) => {}
        (Err(e), false) => assert!(
            e.contains("was not specified in the image metadata"),
            "{case}: libvirt refused for another reason: {e}"
        ),
        (Ok(_), false) => panic!("{case}: libvirt ({}) now starts it", d.version),
        (Err(e), true) => panic!("{case}: libvirt ({}) now refuses it: {e}", d.version),
    }
    let (status, diags) = our_chain(top);
    let refused_by_us = diags
        .iter()
        .any(|(c, s)| c == "backing-format-not-recorded" && s == "error");
    let mut wrong = Vec::new();
    if (status == "ok") != libvirt_starts {
        wrong.push(format!(
            "status is {status:?}, but libvirt {}",
            if libvirt_starts {
                "starts the guest"
            } else {
                "refuses it"
            }
        ));
    }
    if refused_by_us == libvirt_starts {
        wrong.push(format!(
            "{} error diagnostic backing-format-not-recorded, but libvirt {}",
            if refused_by_us { "an" } else { "no" },
            if libvirt_starts {
                "starts the guest"
            } else {
                "refuses it"
            }
        ));
    }
    assert!(
        wrong.is_empty(),
        "{case}: {}\n(diagnostics: {diags:?}; libvirt: {})",
        wrong.join("; "),
        match &theirs {
            Ok(_) => "started".to_string(),
            Err(e) => e.clone(),
        }
    );
}

#[test]
fn verdict_vmdk_vmdk_vmdk_is_refused() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "vmdk", "base.vmdk", None);
    create(d, "vmdk", "mid.vmdk", Some(("base.vmdk", "vmdk")));
    let top = create(d, "vmdk", "top.vmdk", Some(("mid.vmdk", "vmdk")));
    verdict("vmdk3", &top, "vmdk", false);
}

#[test]
fn verdict_vmdk_vmdk_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "vmdk", "base.vmdk", None);
    let top = create(d, "vmdk", "top.vmdk", Some(("base.vmdk", "vmdk")));
    verdict("vmdk2", &top, "vmdk", true);
}

#[test]
fn verdict_unrecorded_qcow2_to_base_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "qcow2", "base.qcow2", None);
    let top = create(d, "qcow2", "top.qcow2", Some(("base.qcow2", "qcow2")));
    common::forget_backing_format(&top);
    verdict("q2-unrec", &top, "qcow2", true);
}

#[test]
fn verdict_unrecorded_qcow2_to_mid_is_refused() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "qcow2", "base.qcow2", None);
    create(d, "qcow2", "mid.qcow2", Some(("base.qcow2", "qcow2")));
    let top = create(d, "qcow2", "top.qcow2", Some(("mid.qcow2", "qcow2")));
    common::forget_backing_format(&top);
    verdict("q3-unrec", &top, "qcow2", false);
}

#[test]
fn verdict_qed_unrecorded_over_qcow2_chain_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "qcow2", "base.qcow2", None);
    create(d, "qcow2", "mid.qcow2", Some(("base.qcow2", "qcow2")));
    // QED records only "raw" (a feature bit); any other format is probed —
    // by libvirt too, which follows it without refusing (AUTO_SAFE).
    let top = create(d, "qed", "top.qed", Some(("mid.qcow2", "qcow2")));
    verdict("qed", &top, "qed", true);
}

#[test]
fn verdict_qcow1_to_qcow2_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "qcow2", "base.qcow2", None);
    let top = create(d, "qcow", "top.qcow", Some(("base.qcow2", "qcow2")));
    verdict("qcow1", &top, "qcow", true);
}

#[test]
fn verdict_unrecorded_qcow2_to_raw_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    create(d, "raw", "base.raw", None);
    let top = create(d, "qcow2", "top.qcow2", Some(("base.raw", "raw")));
    common::forget_backing_format(&top);
    verdict("raw-unrec", &top, "qcow2", true);
}

/// What libvirt refuses from the images alone it starts from our populated
/// XML: every layer's format is given, nothing is probed.
#[test]
fn populated_xml_starts_what_libvirt_refuses() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    let Some(daemon) = daemon("populated xml vs refused chains") else {
        return;
    };
    create(d, "qcow2", "base.qcow2", None);
    create(d, "qcow2", "mid.qcow2", Some(("base.qcow2", "qcow2")));
    let q3 = create(d, "qcow2", "top.qcow2", Some(("mid.qcow2", "qcow2")));
    common::forget_backing_format(&q3);
    create(d, "vmdk", "base.vmdk", None);
    create(d, "vmdk", "mid.vmdk", Some(("base.vmdk", "vmdk")));
    let vk = create(d, "vmdk", "top.vmdk", Some(("mid.vmdk", "vmdk")));
    let bare = libvirtd::domain_xml(
        "bc-refused",
        &(disk("vda", "virtio", "qcow2", &q3) + &disk("vdb", "virtio", "vmdk", &vk)),
    );
    let err = Vm::start_domain(daemon, "refused-bare", &bare, false)
        .err()
        .expect("libvirt refuses these chains from the images alone");
    assert!(
        err.contains("was not specified in the image metadata"),
        "{err}"
    );

    let dom = d.join("dom.xml");
    std::fs::write(&dom, &bare).unwrap();
    let (ours, err, _) = cli(&[
        "xml",
        "--domain",
        dom.to_str().unwrap(),
        q3.to_str().unwrap(),
        vk.to_str().unwrap(),
    ]);
    assert!(ours.contains("<domain"), "no XML from us: {err}");
    let vm = Vm::start_domain(daemon, "refused-populated", &ours, false)
        .unwrap_or_else(|e| panic!("our populated XML does not start: {e}\n{ours}"));
    // libvirt kept our chains: three layers each, ending in a terminator.
    for (dev, disk) in disks(&vm.live_xml()) {
        let v = chain_view(&disk);
        assert_eq!(v.matches("<backingStore ").count(), 2, "{dev}:\n{v}");
        assert_eq!(
            v.matches("<backingStore>").count(),
            1,
            "{dev}: terminator\n{v}"
        );
    }
}

// ---------------------------------------------------------------------------
// (b) Populate: our `xml --domain` against libvirt's live view of the same
// bare domain.

/// A `qemu-nbd` export of `file` (raw) on a unix socket, killed on drop.
struct Nbd {
    child: Child,
    socket: PathBuf,
}

impl Nbd {
    fn serve(dir: &Path, file: &Path, export: &str) -> Nbd {
        let socket = dir.join(format!("{export}.sock"));
        let child = Command::new("qemu-nbd")
            .args(["--persistent", "-f", "raw", "-x", export])
            .arg(format!("--socket={}", socket.display()))
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-nbd runs (qemu-utils)");
        let t = Instant::now();
        while !socket.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "qemu-nbd did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nbd { child, socket }
    }
}

impl Drop for Nbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The images of the several-disks domain: returns (bare `<disk>`s, the
/// images to give `xml`, the nbd server to keep alive).
fn several_disks(d: &Path) -> (String, Vec<PathBuf>, Nbd) {
    // vda: qcow2 top → mid → base.
    create(d, "qcow2", "a-base.qcow2", None);
    create(d, "qcow2", "a-mid.qcow2", Some(("a-base.qcow2", "qcow2")));
    let a = create(d, "qcow2", "a-top.qcow2", Some(("a-mid.qcow2", "qcow2")));
    // sda (sata, between virtio disks in the XML: libvirt moves it): qcow2 → raw.
    create(d, "raw", "s-base.raw", None);
    let s = create(d, "qcow2", "s-top.qcow2", Some(("s-base.raw", "raw")));
    // vdb: a raw disk.
    let r = create(d, "raw", "r.img", None);
    // sdb: a cdrom with media; sdc: an empty cdrom.
    let iso = create(d, "raw", "cd.iso", None);
    // vdc: nbd (raw export).
    let n = create(d, "raw", "n.img", None);
    let nbd = Nbd::serve(d, &n, "exp");
    // vdd: qcow2 top → base whose data is in an external file (relative name).
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=b-df.data",
            "b-df.qcow2",
            "16M",
        ],
    );
    let bdf = create(d, "qcow2", "bdf-top.qcow2", Some(("b-df.qcow2", "qcow2")));
    // sdd (scsi): a qcow2 top with its own external data file.
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=t-df.data",
            "t-df.qcow2",
            "16M",
        ],
    );
    let tdf = d.join("t-df.qcow2");
    let disks = [
        disk("vda", "virtio", "qcow2", &a),
        disk("sda", "sata", "qcow2", &s),
        disk("vdb", "virtio", "raw", &r),
        format!(
            "    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdc' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd' name='exp'>
        <host transport='unix' socket='{}'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>
",
            iso.display(),
            nbd.socket.display()
        ),
        disk("vdd", "virtio", "qcow2", &bdf),
        disk("sdd", "scsi", "qcow2", &tdf),
    ]
    .concat();
    (disks, vec![a, s, r, iso, bdf, tdf], nbd)
}

/// Compare libvirt's disks with ours by target; every difference in one
/// message.
fn compare(theirs: &str, ours: &str, ignore_index: bool) -> Vec<String> {
    let ours = disks(ours);
    let mut wrong = Vec::new();
    for (dev, their) in disks(theirs) {
        let Some((_, our)) = ours.iter().find(|(d, _)| *d == dev) else {
            wrong.push(format!("{dev}: not in our XML"));
            continue;
        };
        let (t, o) = if ignore_index {
            (
                chain_view(&their.without_attr("index")),
                chain_view(&our.without_attr("index")),
            )
        } else {
            (chain_view(&their), chain_view(our))
        };
        if t != o {
            wrong.push(format!("{dev}:\n--- libvirt\n{t}--- ours\n{o}"));
        }
    }
    wrong
}

/// Our populated disks are libvirt's live disks for the same bare domain:
/// same layers, types, formats, sources, data stores, terminators and
/// `index` numbers (the top's `<source index>` too).
#[test]
fn populated_disks_equal_libvirts_live_view() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    let Some(daemon) = daemon("populate vs libvirt's live XML") else {
        return;
    };
    let (bare_disks, images, _nbd) = several_disks(d);
    let bare = libvirtd::domain_xml("bc-populate", &bare_disks);
    let theirs = Vm::start(daemon, "populate", &bare_disks)
        .unwrap_or_else(|e| panic!("libvirt does not start the bare domain: {e}"))
        .live_xml();

    let dom = d.join("dom.xml");
    std::fs::write(&dom, &bare).unwrap();
    let mut args = vec!["xml", "--domain", dom.to_str().unwrap()];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let (ours, err, code) = cli(&args);
    assert_eq!(code, 0, "xml --domain: {err}");
    let wrong = compare(&theirs, &ours, false);
    assert!(
        wrong.is_empty(),
        "{} of our disks differ from libvirt's live view ({}):\n{}",
        wrong.len(),
        daemon.version,
        wrong.join("\n")
    );
}

/// libvirt starts our populated domain and keeps our chains as we wrote
/// them (indexes aside: libvirt renumbers on every start).
#[test]
fn libvirt_keeps_the_chains_we_write() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    let Some(daemon) = daemon("libvirt keeps our chains") else {
        return;
    };
    let (bare_disks, images, _nbd) = several_disks(d);
    let dom = d.join("dom.xml");
    std::fs::write(&dom, libvirtd::domain_xml("bc-keep", &bare_disks)).unwrap();
    let mut args = vec!["xml", "--domain", dom.to_str().unwrap()];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let (ours, err, code) = cli(&args);
    assert_eq!(code, 0, "xml --domain: {err}");
    let vm = Vm::start_domain(daemon, "keep", &ours, false)
        .unwrap_or_else(|e| panic!("libvirt does not start our populated domain: {e}\n{ours}"));
    let wrong = compare(&vm.live_xml(), &ours, true);
    assert!(
        wrong.is_empty(),
        "libvirt changed our chains:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// (c) Data stores.

/// A qcow2 backing file, a top, and a top over a backing file, each with an
/// external data file (relative names, as `qemu-img create -o
/// data_file=NAME` writes them): a `<backingStore/>` ends libvirt's
/// detection, so without `<dataStore>` QEMU looks for the name in its own
/// working directory and fails; our populated XML starts — also the third,
/// which libvirt cannot start from the images alone.
#[test]
fn populated_data_store_chain_starts() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    let Some(daemon) = daemon("data stores") else {
        return;
    };
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=base.data",
            "base.qcow2",
            "16M",
        ],
    );
    let top = create(d, "qcow2", "top.qcow2", Some(("base.qcow2", "qcow2")));
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=solo.data",
            "solo.qcow2",
            "16M",
        ],
    );
    let solo = d.join("solo.qcow2");
    // A top with a backing file (format recorded) and a data file: libvirt
    // 11.3 does not find that data file (its qcow2 extension reader does not
    // round lengths up to 8), so the bare disk does not start either.
    create(d, "qcow2", "under.qcow2", None);
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=both.data",
            "-b",
            "under.qcow2",
            "-F",
            "qcow2",
            "both.qcow2",
            "16M",
        ],
    );
    let both = d.join("both.qcow2");
    let err = Vm::start(daemon, "both-bare", &disk("vda", "virtio", "qcow2", &both))
        .err()
        .expect("libvirt misses the data file of a layer that records its backing format");
    assert!(err.contains("Could not open 'both.data'"), "{err}");

    // The oracle: the chain given without <dataStore> does not start.
    let no_store = format!(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{}'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
        top.display(),
        d.join("base.qcow2").display()
    );
    let err = Vm::start(daemon, "no-datastore", &no_store)
        .err()
        .expect("a given chain without <dataStore> does not start");
    assert!(err.contains("Could not open 'base.data'"), "{err}");

    let bare = libvirtd::domain_xml(
        "bc-datastore",
        &[
            disk("vda", "virtio", "qcow2", &top),
            disk("vdb", "virtio", "qcow2", &solo),
            disk("vdc", "virtio", "qcow2", &both),
        ]
        .concat(),
    );
    let dom = d.join("dom.xml");
    std::fs::write(&dom, &bare).unwrap();
    let (ours, err, _) = cli(&[
        "xml",
        "--domain",
        dom.to_str().unwrap(),
        top.to_str().unwrap(),
        solo.to_str().unwrap(),
        both.to_str().unwrap(),
    ]);
    assert!(ours.contains("<domain"), "no XML from us: {err}");
    let vm = Vm::start_domain(daemon, "datastore", &ours, false)
        .unwrap_or_else(|e| panic!("our populated XML does not start: {e}\n{ours}"));
    let live = vm.live_xml();
    for (dev, disk) in disks(&live) {
        assert!(
            chain_view(&disk).contains("<dataStore type='file'>"),
            "{dev}: no <dataStore> in libvirt's view:\n{}",
            disk.canon()
        );
    }
}

// ---------------------------------------------------------------------------
// The oracle itself: libvirt numbers the layers as libvirt-index.md says,
// so the rule our writer follows is checked against every libvirt CI runs.

/// Index of every file in a live XML: the top's `<source index>`, a layer's
/// `<backingStore index>`, a data store's `<source index>`.
fn indexes(live: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    fn walk(e: &libvirtd::Elem, holder_index: Option<&str>, v: &mut Vec<(String, String)>) {
        let mine = e.attr("index").or(holder_index);
        if e.name == "source" {
            if let (Some(f), Some(i)) = (e.attr("file"), e.attr("index").or(holder_index)) {
                v.push((f.to_string(), i.to_string()));
            }
        }
        for c in &e.children {
            let pass = if e.name == "backingStore" { mine } else { None };
            walk(c, pass, v);
        }
    }
    for (_, d) in disks(live) {
        walk(&d, None, &mut v);
    }
    v
}

#[test]
fn libvirt_numbers_layers_as_documented() {
    let Some(tmp) = scratch() else { return };
    let d = tmp.path();
    let Some(daemon) = daemon("libvirt's index rule") else {
        return;
    };
    for c in ["a", "b", "c"] {
        create(d, "qcow2", &format!("{c}-base.qcow2"), None);
        create(
            d,
            "qcow2",
            &format!("{c}-mid.qcow2"),
            Some((&format!("{c}-base.qcow2"), "qcow2")),
        );
        create(
            d,
            "qcow2",
            &format!("{c}-top.qcow2"),
            Some((&format!("{c}-mid.qcow2"), "qcow2")),
        );
    }
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=df.data",
            "df-base.qcow2",
            "16M",
        ],
    );
    create(d, "qcow2", "df-top.qcow2", Some(("df-base.qcow2", "qcow2")));
    let p = |n: &str| d.join(n).display().to_string();
    // XML order: vda (bare), sda (sata, bare, with a detected data file in
    // its base), sdb (empty cdrom), vdb (the whole chain given), vdc (top
    // and mid given, no terminator). libvirt's order: vda, vdb, vdc, sda, sdb.
    let disks_xml = format!(
        "{}{}    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{}'/>
        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='{}'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{}'/>
      </backingStore>
      <target dev='vdc' bus='virtio'/>
    </disk>
",
        disk("vda", "virtio", "qcow2", &d.join("a-top.qcow2")),
        disk("sda", "sata", "qcow2", &d.join("df-top.qcow2")),
        p("b-top.qcow2"),
        p("b-mid.qcow2"),
        p("b-base.qcow2"),
        p("c-top.qcow2"),
        p("c-mid.qcow2"),
    );
    let live = Vm::start(daemon, "index-rule", &disks_xml)
        .unwrap_or_else(|e| panic!("{e}"))
        .live_xml();
    let order: Vec<String> = disks(&live).into_iter().map(|(dev, _)| dev).collect();
    assert_eq!(
        order,
        ["vda", "vdb", "vdc", "sda", "sdb"],
        "libvirt's disk order"
    );
    // Pass 1, last disk first: sdb (empty: takes 1, prints nothing), sda 2,
    // vdc 3 + given mid 4, vdb 5 + given 6, 7, vda 8. Pass 2, last disk
    // first: sda's base 9 and its data file 10, vdc's base 11, vda's mid 12
    // and base 13.
    let want = [
        ("a-top.qcow2", 8),
        ("a-mid.qcow2", 12),
        ("a-base.qcow2", 13),
        ("b-top.qcow2", 5),
        ("b-mid.qcow2", 6),
        ("b-base.qcow2", 7),
        ("c-top.qcow2", 3),
        ("c-mid.qcow2", 4),
        ("c-base.qcow2", 11),
        ("df-top.qcow2", 2),
        ("df-base.qcow2", 9),
        ("df.data", 10),
    ];
    let mut got = indexes(&live);
    got.sort();
    let mut want: Vec<(String, String)> = want.iter().map(|(f, i)| (p(f), i.to_string())).collect();
    want.sort();
    assert_eq!(got, want, "libvirt {}:\n{live}", daemon.version);

    // The inactive XML has no index at all (a persistent guest, running).
    let dom = libvirtd::domain_xml("bc-inactive", &disks_xml);
    let vm = Vm::start_domain(daemon, "inactive", &dom, true).unwrap_or_else(|e| panic!("{e}"));
    let inactive = vm.inactive_xml();
    for (dev, disk) in disks(&inactive) {
        assert!(
            !disk.canon().contains(" index='"),
            "{dev}: {}",
            disk.canon()
        );
    }
    // Detected layers are not in it; the given chain is, as given.
    assert!(!inactive.contains("a-mid.qcow2"), "{inactive}");
    assert!(inactive.contains("b-base.qcow2"), "{inactive}");
}
