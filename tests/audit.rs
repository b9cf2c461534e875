//! The image-store audit (`backing-chain audit`, `audit::audit`) on a
//! realistic store made with qemu-img at test time: three VMs (one on a
//! 4-deep snapshot chain, two linked clones on one shared base), an orphan
//! overlay, an unused base, a missing base, a loop, a chain libvirt refuses
//! (an unrecorded backing format over a backing with a backing of its own),
//! a raw data disk two VMs claim, a network disk, names with spaces, quotes,
//! `$` and a newline. Every verdict is asserted from what the test built.
//! The fix script is run (sh) in a copy of the store and `qemu-img info`
//! shows the recorded formats afterwards; its dry run changes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

// The files of the store (names relative to its directory).
const V1_BASE: &str = "vm1-base.qcow2";
const V1_S1: &str = "vm1-snap1.qcow2";
const V1_S2: &str = "vm1 snap2.qcow2";
const V1_TOP: &str = "vm1 \"it's\" $snap3.qcow2";
const GOLDEN: &str = "golden.qcow2";
const CLONE_A: &str = "clone-a.qcow2";
const CLONE_B: &str = "clone-b.qcow2";
const ORPHAN: &str = "orphan.qcow2";
const OLD_BASE: &str = "old-base.qcow2";
const OLD_OVER: &str = "old-overlay.qcow2";
const DANGLING: &str = "dangling.qcow2";
const GONE: &str = "gone.qcow2";
const LOOP_A: &str = "loop-a.qcow2";
const LOOP_B: &str = "loop-b.qcow2";
const UNREC_TOP: &str = "unrec top 'q' $x.qcow2";
const UNREC_MID: &str = "unrec-mid.qcow2";
const UNREC_BASE: &str = "unrec-base.qcow2";
const NL_TOP: &str = "nl\nover.qcow2";
const NL_MID: &str = "nl mid.qcow2";
const NL_BASE: &str = "nl base.qcow2";
const DATA: &str = "data.raw";
const LONE: &str = "lone.qcow2";
const LONE_LINK: &str = "lone link.qcow2";
const VMDK: &str = "disk.vmdk";
const OVER_VMDK: &str = "over-vmdk.qcow2";

fn create(dir: &Path, name: &str, backing: Option<&str>) {
    match backing {
        Some(b) => qemu_img(
            dir,
            &["create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", name],
        ),
        None => qemu_img(dir, &["create", "-q", "-f", "qcow2", name, "16M"]),
    };
}

/// Make the store in `dir`.
fn make_store(dir: &Path) {
    create(dir, V1_BASE, None);
    create(dir, V1_S1, Some(V1_BASE));
    create(dir, V1_S2, Some(V1_S1));
    create(dir, V1_TOP, Some(V1_S2));
    create(dir, GOLDEN, None);
    create(dir, CLONE_A, Some(GOLDEN));
    create(dir, CLONE_B, Some(GOLDEN));
    create(dir, ORPHAN, Some(GOLDEN));
    create(dir, OLD_BASE, None);
    create(dir, OLD_OVER, Some(OLD_BASE));
    create(dir, GONE, None);
    create(dir, DANGLING, Some(GONE));
    std::fs::remove_file(dir.join(GONE)).unwrap();
    create(dir, LOOP_B, None);
    create(dir, LOOP_A, Some(LOOP_B));
    qemu_img(dir, &["rebase", "-u", "-b", LOOP_A, "-F", "qcow2", LOOP_B]);
    for (top, mid, base) in [
        (UNREC_TOP, UNREC_MID, UNREC_BASE),
        (NL_TOP, NL_MID, NL_BASE),
    ] {
        create(dir, base, None);
        create(dir, mid, Some(base));
        create(dir, top, Some(mid));
        forget_backing_format(&dir.join(top));
    }
    qemu_img(dir, &["create", "-q", "-f", "raw", DATA, "8M"]);
    // One file under two names (a hard link).
    create(dir, LONE, None);
    std::fs::hard_link(dir.join(LONE), dir.join(LONE_LINK)).unwrap();
    // A chain mixing formats: qcow2 over vmdk.
    qemu_img(dir, &["create", "-q", "-f", "vmdk", VMDK, "16M"]);
    qemu_img(
        dir,
        &[
            "create", "-q", "-f", "qcow2", "-b", VMDK, "-F", "vmdk", OVER_VMDK,
        ],
    );
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('\n', "&#10;")
}

fn disk(dev: &str, fmt: &str, path: &Path) -> String {
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='{fmt}'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='virtio'/>\n    </disk>\n",
        xml_attr(path.to_str().unwrap())
    )
}

fn domain(name: &str, disks: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='KiB'>65536</memory>\n  <os><type arch='x86_64'>hvm</type></os>\n  <devices>\n{disks}  </devices>\n</domain>\n"
    )
}

const BAD_DOMAIN: &str = "<domain type='kvm'>\n  <name>broken</name>\n  <devices>\n    <disk type='file'>\n  </devices>\n</domain>\n";

/// Write vm1.xml (vm1) and others.xml (vm2, a broken domain, vm3) for the
/// store in `dir`, into `xdir`; returns their paths.
fn write_domains(dir: &Path, xdir: &Path) -> (PathBuf, PathBuf) {
    let vm1 = domain("vm1", &disk("vda", "qcow2", &dir.join(V1_TOP)));
    let vm2 = domain(
        "vm2",
        &(disk("vda", "qcow2", &dir.join(CLONE_A))
            + &disk("vdb", "raw", &dir.join(DATA))
            + "    <disk type='network' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source protocol='nbd' name='export'>\n        <host name='nbd.example' port='10809'/>\n      </source>\n      <target dev='vdc' bus='virtio'/>\n    </disk>\n"),
    );
    let vm3 = domain(
        "vm3",
        &(disk("vda", "qcow2", &dir.join(CLONE_B))
            + &disk("vdb", "qcow2", &dir.join(UNREC_TOP))
            + &disk("vdc", "raw", &dir.join(DATA))),
    );
    let p1 = xdir.join("vm1.xml");
    let p2 = xdir.join("others.xml");
    std::fs::write(&p1, vm1).unwrap();
    std::fs::write(&p2, format!("{vm2}{BAD_DOMAIN}{vm3}")).unwrap();
    (p1, p2)
}

fn audit_cli(dir: &Path, domains: &[&Path], kind: &str) -> (String, i32) {
    audit_cli_with(dir, domains, &[kind])
}

fn audit_cli_with(dir: &Path, domains: &[&Path], args: &[&str]) -> (String, i32) {
    let mut c = Command::new(BIN);
    c.arg("audit");
    for d in domains {
        c.arg("--domain").arg(d);
    }
    c.args(args.iter().filter(|a| !a.is_empty()));
    let o = c.arg(dir).output().unwrap();
    assert!(
        o.status.code() != Some(2),
        "usage error: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8(o.stdout).unwrap(),
        o.status.code().unwrap_or(-1),
    )
}

struct Store {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    xdir: PathBuf,
}

fn store() -> Option<Store> {
    if !have_qemu_img() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images store");
    let xdir = tmp.path().join("xml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&xdir).unwrap();
    make_store(&dir);
    Some(Store {
        _tmp: tmp,
        dir,
        xdir,
    })
}

/// The JSON audit, with images by file name (relative to the store).
struct View {
    v: Value,
    by_name: BTreeMap<String, usize>,
    dir: PathBuf,
}

impl View {
    fn new(json: &str, dir: &Path) -> View {
        let v: Value = serde_json::from_str(json).unwrap();
        let mut by_name = BTreeMap::new();
        for (i, e) in v["images"].as_array().unwrap().iter().enumerate() {
            let f = e["filename"].as_str().unwrap();
            let rel = Path::new(f).strip_prefix(dir).unwrap();
            by_name.insert(rel.to_str().unwrap().to_string(), i);
        }
        View {
            v,
            by_name,
            dir: dir.to_path_buf(),
        }
    }
    fn idx(&self, name: &str) -> usize {
        *self
            .by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name:?} not audited"))
    }
    fn img(&self, name: &str) -> &Value {
        &self.v["images"][self.idx(name)]
    }
    fn names(&self, list: &Value) -> Vec<String> {
        let mut v: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let f = self.v["images"][i.as_u64().unwrap() as usize]["filename"]
                    .as_str()
                    .unwrap();
                Path::new(f)
                    .strip_prefix(&self.dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }
    fn users(&self, name: &str) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self.img(name)["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap().to_string(),
                    u["disk"].as_str().unwrap().to_string(),
                    u["depth"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }
    fn vm(&self, name: &str) -> &Value {
        self.v["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("VM {name} not read"))
    }
    fn codes(&self) -> Vec<String> {
        self.v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect()
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn u(vm: &str, disk: &str, depth: u64) -> (String, String, u64) {
    (vm.into(), disk.into(), depth)
}

#[test]
fn the_store_every_verdict() {
    let Some(s) = store() else { return };
    let (d1, d2) = write_domains(&s.dir, &s.xdir);
    let (json, code) = audit_cli(&s.dir, &[&d1, &d2], "--json");
    assert_eq!(code, 1, "broken images and a broken domain: exit 1");
    let a = View::new(&json, &s.dir);

    // Every file of the store is audited, the deleted one is not.
    let on_disk = std::fs::read_dir(&s.dir).unwrap().count();
    assert_eq!(a.by_name.len(), on_disk);
    assert!(!a.by_name.contains_key(GONE));

    // Formats and sizes as qemu-img and the file system say.
    for (name, fmt, vsize) in [(V1_TOP, "qcow2", 16u64 << 20), (DATA, "raw", 8 << 20)] {
        let e = a.img(name);
        assert_eq!(e["format"], fmt, "{name}");
        assert_eq!(e["virtual-size"], vsize, "{name}");
        let len = std::fs::metadata(s.dir.join(name)).unwrap().len();
        assert_eq!(e["file-size"], len, "{name}");
    }

    // Roles.
    let role = |n: &str| a.img(n)["role"].as_str().unwrap().to_string();
    for n in [V1_TOP, CLONE_A, CLONE_B, DATA, UNREC_TOP] {
        assert_eq!(role(n), "in-use", "{n}");
    }
    for n in [V1_S2, V1_S1, V1_BASE, GOLDEN, UNREC_MID, UNREC_BASE] {
        assert_eq!(role(n), "layer", "{n}");
    }
    for n in [
        ORPHAN, OLD_OVER, DANGLING, NL_TOP, LONE, LONE_LINK, OVER_VMDK,
    ] {
        assert_eq!(role(n), "orphan-top", "{n}");
    }
    for n in [OLD_BASE, NL_BASE, VMDK] {
        assert_eq!(role(n), "unused-base", "{n}");
    }
    assert_eq!(role(NL_MID), "unused-layer");

    // Users, through overlays, with depths.
    assert_eq!(a.users(V1_BASE), [u("vm1", "vda", 3)]);
    assert_eq!(a.users(V1_S1), [u("vm1", "vda", 2)]);
    assert_eq!(a.users(GOLDEN), [u("vm2", "vda", 1), u("vm3", "vda", 1)]);
    assert_eq!(a.users(DATA), [u("vm2", "vdb", 0), u("vm3", "vdc", 0)]);
    assert_eq!(a.users(UNREC_BASE), [u("vm3", "vdb", 2)]);
    assert!(a.users(ORPHAN).is_empty() && a.users(OLD_BASE).is_empty());

    // Dependents, transitive.
    let deps = |n: &str| a.names(&a.img(n)["dependents"]);
    assert_eq!(deps(V1_BASE), sorted(&[V1_S1, V1_S2, V1_TOP]));
    assert_eq!(a.img(V1_BASE)["dependents-count"], 3);
    assert_eq!(deps(GOLDEN), sorted(&[CLONE_A, CLONE_B, ORPHAN]));
    assert_eq!(deps(OLD_BASE), sorted(&[OLD_OVER]));
    assert!(deps(V1_TOP).is_empty());

    // Depth in each chain of the forest.
    let places = a.img(V1_BASE)["chains"].as_array().unwrap();
    assert_eq!(places.len(), 1);
    assert_eq!(places[0]["depth"], 3);
    assert_eq!(a.img(GOLDEN)["chains"].as_array().unwrap().len(), 3);

    // Broken: missing base, loop, the chain libvirt refuses.
    let broken = |n: &str| a.img(n)["broken"]["status"].as_str().map(str::to_string);
    assert_eq!(broken(DANGLING).as_deref(), Some("missing"));
    assert_eq!(broken(LOOP_A).as_deref(), Some("loop"));
    assert_eq!(broken(LOOP_B).as_deref(), Some("loop"));
    assert_eq!(broken(UNREC_TOP).as_deref(), Some("unprobed-format"));
    assert_eq!(broken(NL_TOP).as_deref(), Some("unprobed-format"));
    for n in [V1_TOP, GOLDEN, CLONE_A, ORPHAN, OLD_BASE, DATA, UNREC_MID] {
        assert_eq!(broken(n), None, "{n}");
    }
    // The missing base is outside the drop and known not to exist.
    let ext = a.v["external"].as_array().unwrap();
    let gone = ext
        .iter()
        .find(|x| x["path"] == s.dir.join(GONE).to_str().unwrap())
        .expect("the missing base is listed");
    assert_eq!(gone["state"], "missing");
    assert_eq!(a.names(&gone["backing-of"]), [DANGLING]);

    // Can I delete X?
    let del = |n: &str| a.img(n)["delete"]["verdict"].as_str().unwrap().to_string();
    assert_eq!(del(ORPHAN), "safe");
    assert_eq!(del(OLD_OVER), "safe");
    assert_eq!(del(CLONE_A), "in-use");
    assert_eq!(del(GOLDEN), "breaks-others");
    assert_eq!(del(OLD_BASE), "breaks-others");
    assert_eq!(
        a.names(&a.img(GOLDEN)["delete"]["breaks-images"]),
        sorted(&[CLONE_A, CLONE_B, ORPHAN])
    );
    assert_eq!(
        a.img(GOLDEN)["delete"]["breaks-disks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(a.img(OLD_BASE)["delete"]["breaks-disks"]
        .as_array()
        .unwrap()
        .is_empty());

    // Commit clone-a into the shared base: the hazard names the other
    // clone and the orphan, and vm3's disk; vm2's XML changes.
    let c = &a.img(CLONE_A)["commit"];
    assert_eq!(c["into"].as_u64().unwrap() as usize, a.idx(GOLDEN));
    assert_eq!(a.names(&c["hazard-images"]), sorted(&[CLONE_B, ORPHAN]));
    assert_eq!(c["hazard-count"], 2);
    // One disk uses the base not through clone-a: vm3's vda (golden's
    // users less clone-a's).
    assert_eq!(c["hazard-disks-count"], 1);
    assert!(c["check-first"]
        .as_str()
        .unwrap()
        .contains("2 other image(s) and 1 VM disk(s)"));
    let xc = c["xml-changes"].as_array().unwrap();
    assert_eq!(xc.len(), 1);
    assert_eq!(xc[0]["name"], "vm2");
    let running = c["running"][0].as_str().unwrap();
    assert!(
        running.starts_with("virsh blockcommit vm2 vda --active --base "),
        "{running}"
    );
    assert!(c["offline"][0]
        .as_str()
        .unwrap()
        .starts_with("qemu-img commit "));
    assert!(c["check-first"].as_str().unwrap().contains("DO NOT commit"));
    // Committing a snapshot of vm1 into the one below: no other chain
    // stands there; vm1's disk has the layer right below its top (depth 1).
    let c = &a.img(V1_S2)["commit"];
    assert_eq!(c["hazard-count"], 0);
    assert_eq!(c["hazard-disks-count"], 0);
    assert_eq!(c["xml-changes"][0]["depth"], 1);
    assert!(c["running"][0].as_str().unwrap().contains("--top "));
    // The overlay of the committed layer is rebased onto the backing.
    assert!(c["offline"][1]
        .as_str()
        .unwrap()
        .starts_with("qemu-img rebase -u "));
    // Flatten of vm1's top: blockpull for the running VM.
    let f = &a.img(V1_TOP)["flatten"];
    assert_eq!(f["running"][0], "virsh blockpull vm1 vda --verbose --wait");
    assert!(
        a.img(V1_BASE)["flatten"].is_null(),
        "a base has nothing to pull"
    );

    // Per VM: disks, chains, sizes, files it alone uses.
    let size = |n: &str| std::fs::metadata(s.dir.join(n)).unwrap().len();
    let vm1 = a.vm("vm1");
    assert_eq!(vm1["disks"][0]["chain"].as_array().unwrap().len(), 4);
    assert_eq!(
        a.names(&vm1["exclusive"]),
        sorted(&[V1_TOP, V1_S2, V1_S1, V1_BASE])
    );
    let total: u64 = [V1_TOP, V1_S2, V1_S1, V1_BASE]
        .iter()
        .map(|n| size(n))
        .sum();
    assert_eq!(vm1["total-file-size"], total);
    assert_eq!(vm1["exclusive-file-size"], total);
    let vm2 = a.vm("vm2");
    assert_eq!(a.names(&vm2["exclusive"]), [CLONE_A]);
    let total2: u64 = [CLONE_A, GOLDEN, DATA].iter().map(|n| size(n)).sum();
    assert_eq!(vm2["total-file-size"], total2);
    assert_eq!(vm2["disks"][2]["network"], true);
    assert_eq!(vm2["disks"][2]["source"], "nbd:export");
    let vm3 = a.vm("vm3");
    assert_eq!(
        a.names(&vm3["exclusive"]),
        sorted(&[CLONE_B, UNREC_TOP, UNREC_MID, UNREC_BASE])
    );
    assert_eq!(vm3["disks"][1]["status"], "unprobed-format");
    // The disk libvirt refuses gets its <disk> with the chain the images give.
    let nx = vm3["disks"][1]["new-xml"]
        .as_str()
        .expect("new XML for vm3 vdb");
    assert!(nx.contains("<backingStore type='file'>"), "{nx}");
    assert!(nx.contains(&xml_attr(s.dir.join(UNREC_MID).to_str().unwrap())));
    assert!(vm3["disks"][0]["new-xml"].is_null());
    // libvirt's schema takes it (xmllint with libvirt's RelaxNG).
    assert_libvirt_valid(&test_domain("vm3", nx), "vm3 vdb with its chain");
    // libvirt itself (its test driver) keeps the chain as given.
    if tool("virsh") {
        let dumped = virsh_define_dump(&s.xdir, &test_domain("vm3", nx), "vm3");
        let mid = xml_attr(s.dir.join(UNREC_MID).to_str().unwrap());
        let base = xml_attr(s.dir.join(UNREC_BASE).to_str().unwrap());
        let (m, b) = (dumped.find(&mid), dumped.find(&base));
        assert!(m.is_some() && b.is_some() && m < b, "{dumped}");
        assert_eq!(
            dumped.matches("<backingStore type='file'>").count(),
            2,
            "{dumped}"
        );
    } else {
        skip("virsh not found: the new <disk> is not defined in libvirt's test driver");
    }

    // Store-level findings.
    let codes = a.codes();
    for c in [
        "shared-disk",
        "network-disk",
        "domain-not-well-formed",
        "backing-format-not-recorded",
    ] {
        assert!(codes.iter().any(|x| x == c), "{c} in {codes:?}");
    }
    let shared = a.v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "shared-disk")
        .unwrap();
    assert_eq!(shared["image"].as_u64().unwrap() as usize, a.idx(DATA));

    // The broken domain: reported with its position; vm2 and vm3, before
    // and after it in the same file, were read.
    let errs = a.v["domain-errors"].as_array().unwrap();
    assert_eq!(errs.len(), 1);
    let text = std::fs::read_to_string(&d2).unwrap();
    let bad_at = text.find(BAD_DOMAIN).unwrap();
    let pos = errs[0]["position"].as_u64().unwrap() as usize;
    let devices_end = bad_at + BAD_DOMAIN.find("</devices>").unwrap();
    assert!(
        pos >= bad_at && pos <= devices_end + "</devices>".len(),
        "{pos}"
    );
    let line = text[..pos].matches('\n').count() + 1;
    assert_eq!(errs[0]["line"], line);
    assert_eq!(a.v["vms"].as_array().unwrap().len(), 3);

    // One file under two names; a chain mixing qcow2 and vmdk.
    let finding = |code: &str| -> Vec<&Value> {
        a.v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["code"] == code)
            .collect()
    };
    let dup = finding("duplicate-image");
    assert_eq!(dup.len(), 1);
    let first = dup[0]["image"].as_u64().unwrap() as usize;
    assert!(first == a.idx(LONE) || first == a.idx(LONE_LINK));
    let mixed = finding("mixed-formats");
    assert_eq!(mixed.len(), 1);
    assert_eq!(
        mixed[0]["image"].as_u64().unwrap() as usize,
        a.idx(OVER_VMDK)
    );
    // No chain is deeper than the default threshold (100).
    assert!(finding("deep-chain").is_empty());
}

#[test]
fn deep_chain_threshold() {
    let Some(s) = store() else { return };
    let (d1, _) = write_domains(&s.dir, &s.xdir);
    // vm1's chain has 4 layers, every other chain of the store 3 or fewer.
    let (json, _) = audit_cli_with(&s.dir, &[&d1], &["--json", "--deep-chain", "3"]);
    let a = View::new(&json, &s.dir);
    let deep: Vec<usize> = a.v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "deep-chain")
        .map(|d| d["image"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(deep, [a.idx(V1_TOP)]);
}

#[test]
fn csv_one_row_per_image() {
    let Some(s) = store() else { return };
    let (d1, d2) = write_domains(&s.dir, &s.xdir);
    let (csv, _) = audit_cli(&s.dir, &[&d1, &d2], "--csv");
    let on_disk = std::fs::read_dir(&s.dir).unwrap().count();
    // One header, one row per image; the name with a newline is quoted,
    // so its row spans two physical lines.
    let rows = csv.split("\r\n").filter(|l| !l.is_empty()).count();
    assert_eq!(rows, on_disk + 1, "{csv}");
    assert!(csv.starts_with("filename,format,virtual-size,file-size,role,"));
    let top = s.dir.join(V1_TOP);
    let quoted = format!("\"{}\"", top.to_str().unwrap().replace('"', "\"\""));
    assert!(csv.contains(&quoted), "{csv}");
}

fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                (std::fs::read(&p).unwrap(), m.modified().unwrap()),
            )
        })
        .collect()
}

fn recorded_format(path: &Path) -> Option<String> {
    let o = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["backing-filename-format"].as_str().map(str::to_string)
}

#[test]
fn the_fix_script_runs_and_its_dry_run_changes_nothing() {
    let Some(s) = store() else { return };
    // A copy of the store: the script fixes the copy.
    let copy = s.dir.parent().unwrap().join("copy of store");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&s.dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
    }
    let (d1, d2) = write_domains(&copy, &s.xdir);
    let (script, _) = audit_cli(&copy, &[&d1, &d2], "--script");
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains("\nset -eu\n"));
    assert!(!script.contains("rm "), "nothing destructive:\n{script}");
    // The <disk> of the VM disk libvirt refuses, commented, with its chain.
    let at = script
        .find("# ---- VM 'vm3' disk 'vdb'")
        .expect("vm3 vdb's new <disk> in the script");
    assert!(script[at..].contains("\n#   <disk type='file' device='disk'>\n"));
    assert!(script[at..].contains("\n#     <backingStore type='file'>\n"));
    assert!(script[at..].contains("\n#   </disk>\n"));
    let path = s.xdir.join("fix.sh");
    std::fs::write(&path, &script).unwrap();
    // Before: the two tops record no backing format.
    for top in [UNREC_TOP, NL_TOP] {
        assert_eq!(recorded_format(&copy.join(top)), None, "{top:?}");
    }

    // Dry run: prints the rebases, changes no byte and no mtime.
    let before = snapshot(&copy);
    let o = Command::new("sh").arg(&path).arg("-n").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        printed.matches("qemu-img rebase -u").count(),
        2,
        "{printed}"
    );
    let o = Command::new("sh")
        .arg(&path)
        .env("DRY_RUN", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(snapshot(&copy), before, "the dry run changed the store");

    // The real run, from another directory: the recorded formats are set.
    let o = Command::new("sh")
        .arg(&path)
        .current_dir(s.xdir.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&o.stderr)
    );
    for top in [UNREC_TOP, NL_TOP] {
        assert_eq!(
            recorded_format(&copy.join(top)).as_deref(),
            Some("qcow2"),
            "{top:?}"
        );
    }
    // The loop and the missing base are still what they were (no fix runs
    // for them); nothing was deleted.
    assert_eq!(snapshot(&copy).len(), before.len());
    // Audited again: the refused chains are no longer broken.
    let (json, _) = audit_cli(&copy, &[&d1, &d2], "--json");
    let a = View::new(&json, &copy);
    assert!(a.img(UNREC_TOP)["broken"].is_null());
    assert!(a.img(NL_TOP)["broken"].is_null());
    assert_eq!(a.img(DANGLING)["broken"]["status"], "missing");
}

#[test]
fn text_output_and_exit_codes() {
    let Some(s) = store() else { return };
    let (d1, _) = write_domains(&s.dir, &s.xdir);
    let (text, code) = audit_cli(&s.dir, &[&d1], "");
    assert_eq!(code, 1);
    assert!(text.contains("VM 'vm1'"), "{text}");
    // A clean store: exit 0.
    let clean = s.dir.parent().unwrap().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    create(&clean, "b.qcow2", None);
    create(&clean, "t.qcow2", Some("b.qcow2"));
    let x = s.xdir.join("clean.xml");
    std::fs::write(
        &x,
        domain("c", &disk("vda", "qcow2", &clean.join("t.qcow2"))),
    )
    .unwrap();
    let (_, code) = audit_cli(&clean, &[&x], "");
    assert_eq!(code, 0);
    // Domain XML found under the PATH is read as such, not probed.
    std::fs::copy(&x, clean.join("c.xml")).unwrap();
    let (json, code) = audit_cli(&clean, &[], "--json");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["vms"][0]["name"], "c");
    assert_eq!(
        v["vms"][0]["disks"][0]["chain"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn a_backing_outside_the_drop_is_not_broken() {
    let Some(s) = store() else { return };
    // Only a sub-directory is audited; the base lives beside it.
    let sub = s.dir.join("vm4");
    std::fs::create_dir_all(&sub).unwrap();
    qemu_img(
        &sub,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "../golden.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
    );
    let x = s.xdir.join("vm4.xml");
    std::fs::write(
        &x,
        domain("vm4", &disk("vda", "qcow2", &sub.join("top.qcow2"))),
    )
    .unwrap();
    let (json, code) = audit_cli(&sub, &[&x], "--json");
    assert_eq!(code, 0, "{json}");
    let v: Value = serde_json::from_str(&json).unwrap();
    let golden = s.dir.join(GOLDEN);
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert!(v["images"][0]["broken"].is_null());
    assert_eq!(v["images"][0]["backing-outside"], golden.to_str().unwrap());
    assert_eq!(v["external"][0]["state"], "outside-drop");
    assert_eq!(
        v["vms"][0]["disks"][0]["ends-outside"],
        golden.to_str().unwrap()
    );
    // The same with the base deleted: missing, broken, exit 1.
    std::fs::remove_file(&golden).unwrap();
    let (json, code) = audit_cli(&sub, &[&x], "--json");
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["images"][0]["broken"]["status"], "missing");
    assert_eq!(v["external"][0]["state"], "missing");
}

mod random_stores {
    //! The audit's linear walks against brute force, on random stores: any
    //! backing links (loops, missing files, shared bases) and any VMs.
    use super::*;
    use backing_chain::audit::{self, AuditOptions, Deletable, DomainText, Role};
    use backing_chain::image::Format;
    use proptest::prelude::*;

    /// The chain from `t` following the audit's own backing links (a loop
    /// ends at the first repeat).
    fn chain(backing: &[Option<usize>], t: usize) -> Vec<usize> {
        let mut out = vec![t];
        let mut cur = t;
        while let Some(b) = backing[cur] {
            if out.contains(&b) {
                break;
            }
            out.push(b);
            cur = b;
        }
        out
    }

    /// Does following the backing links from `x` come back to `x`?
    fn on_loop(backing: &[Option<usize>], x: usize) -> bool {
        let mut cur = backing[x];
        for _ in 0..backing.len() {
            match cur {
                Some(c) if c == x => return true,
                Some(c) => cur = backing[c],
                None => return false,
            }
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn dependents_users_roles_and_verdicts_match_brute_force(
            links in prop::collection::vec(prop::option::of(0usize..40), 1..30),
            vms in prop::collection::vec(prop::collection::vec(0usize..34, 0..4), 0..6),
        ) {
            let n = links.len();
            // Image k backs on image links[k] when it exists, else on a
            // file that is not there.
            let images: Vec<_> = (0..n)
                .map(|k| {
                    let b = links[k].map(|j| format!("i{j}.qcow2"));
                    img(&format!("/s/i{k}.qcow2"), Format::Qcow2, b.as_deref().map(|b| (b, "qcow2")))
                })
                .collect();
            let mut text = String::new();
            for (v, disks) in vms.iter().enumerate() {
                let d: String = disks
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| format!("<disk type='file' device='disk'><source file='/s/i{i}.qcow2'/><target dev='vd{}'/></disk>", (b'a' + k as u8) as char))
                    .collect();
                text.push_str(&format!("<domain><name>v{v}</name><devices>{d}</devices></domain>"));
            }
            let a = audit::audit(
                images,
                &[],
                &[DomainText { label: "x".into(), text }],
                &AuditOptions::default(),
            );
            prop_assert_eq!(a.images.len(), n);
            let backing: Vec<Option<usize>> = a.images.iter().map(|e| e.backing).collect();
            let chains: Vec<Vec<usize>> = (0..n).map(|t| chain(&backing, t)).collect();
            for i in 0..n {
                let e = &a.images[i];
                // Dependents: every other image whose chain holds i.
                let mut want: Vec<usize> = (0..n).filter(|&j| j != i && chains[j].contains(&i)).collect();
                want.sort_unstable();
                let mut got = e.dependents.clone();
                got.sort_unstable();
                prop_assert_eq!(e.dependents_count, want.len(), "image {}", i);
                prop_assert_eq!(got, want, "image {}", i);
                // Users: every VM disk whose file's chain holds i, at its depth.
                let mut want_users = Vec::new();
                for (v, disks) in vms.iter().enumerate() {
                    for (k, &t) in disks.iter().enumerate() {
                        if t < n {
                            if let Some(d) = chains[t].iter().position(|&x| x == i) {
                                want_users.push((v, k, d));
                            }
                        }
                    }
                }
                let got_users: Vec<(usize, usize, usize)> = e
                    .users
                    .iter()
                    .map(|u| (u.vm, (u.disk.as_bytes()[2] - b'a') as usize, u.depth))
                    .collect();
                prop_assert_eq!(&got_users, &want_users, "users of {}", i);
                // Committing into the backing: the hazard is every other
                // image on the backing and every disk using it not through i.
                if let (Some(b), Some(c)) = (e.backing, &e.commit) {
                    if !on_loop(&backing, b) {
                        let want = (0..n)
                            .filter(|&j| j != b && chains[j].contains(&b) && !chains[j].contains(&i))
                            .count();
                        prop_assert_eq!(c.hazard_count, want, "hazard of {}", i);
                        let through: Vec<(usize, &str)> =
                            e.users.iter().map(|u| (u.vm, u.disk.as_str())).collect();
                        let want_disks = a.images[b]
                            .users
                            .iter()
                            .filter(|u| !through.contains(&(u.vm, u.disk.as_str())))
                            .count();
                        prop_assert_eq!(c.hazard_disks_count, want_disks, "hazard disk count of {}", i);
                    }
                }
                // Roles and the delete verdict follow.
                let unused = matches!(e.role, Role::OrphanTop | Role::UnusedBase | Role::UnusedLayer);
                prop_assert_eq!(unused, want_users.is_empty());
                prop_assert_eq!(
                    e.delete.verdict == Deletable::Safe,
                    want_users.is_empty() && e.dependents_count == 0
                );
            }
            // Files a VM alone uses: exactly those only its disks use, with
            // nothing unused standing on them (an image on a loop is never
            // counted: deleting it breaks the loop's other images).
            for (v, vm) in a.vms.iter().enumerate() {
                let mut want: Vec<usize> = (0..n)
                    .filter(|&x| {
                        let e = &a.images[x];
                        !e.users.is_empty()
                            && e.users.iter().all(|u| u.vm == v)
                            && e.dependents.iter().all(|&d| !a.images[d].users.is_empty())
                            && !on_loop(&backing, x)
                    })
                    .collect();
                let mut got = vm.exclusive.clone();
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(got, want, "VM {}", v);
            }
        }
    }
}

/// A 10,000-deep chain used by one VM, audited on a 256 KiB stack: no
/// recursion anywhere; the base's dependents are counted exactly and listed
/// up to the cap.
#[test]
fn a_deep_chain_on_a_small_stack() {
    use backing_chain::audit::{self, AuditOptions, DomainText};
    use backing_chain::image::Format;
    const N: usize = 10_000;
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let images: Vec<_> = (0..N)
                .map(|i| {
                    let b = (i > 0).then(|| format!("l{}.qcow2", i - 1));
                    img(&format!("/d/l{i}.qcow2"), Format::Qcow2, b.as_deref().map(|b| (b, "qcow2")))
                })
                .collect();
            let text = format!(
                "<domain><name>deep</name><devices><disk type='file' device='disk'><source file='/d/l{}.qcow2'/><target dev='vda'/></disk></devices></domain>",
                N - 1
            );
            let a = audit::audit(
                images,
                &[],
                &[DomainText { label: "d".into(), text }],
                &AuditOptions::default(),
            );
            let base = &a.images[0];
            assert_eq!(base.dependents_count, N - 1);
            assert_eq!(base.dependents.len(), backing_chain::limits::AUDIT_MAX_LISTED);
            assert_eq!(base.users[0].depth, N - 1);
            assert_eq!(a.vms[0].disks[0].status.map(|s| s.name()), Some("too-deep"));
            assert!(a.findings.iter().any(|d| d.code == "deep-chain"));
            assert_eq!(a.vms[0].exclusive.len(), N);
        })
        .unwrap()
        .join()
        .expect("audited on a 256 KiB stack");
}
