//! qcow2 external data files: `<dataStore>` (libvirt ≥ 10.10). Real images
//! made with qemu-img, the CLI writes the chain, and libvirt 11.3's own
//! parser and formatter (`virsh -c test:///default`, unpacked from Debian's
//! bookworm-backports into target/libvirt-11) and its RelaxNG schema judge
//! it; the installed libvirt (9.0) does not know the element.

mod common;

use std::path::Path;
use std::process::Command;

use backing_chain::chain::{Image, Probed};
use backing_chain::image::{self, Range, Reads, Step};
use backing_chain::xml::{self, Layout, Options};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

fn cli(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// base.img (raw) ← mid.qcow2 (data file `mid.data`, a relative name) ←
/// top.qcow2 (data file by its absolute name), in `d`.
fn chain_with_data_files(d: &Path) -> String {
    qemu_img(d, &["create", "-q", "-f", "raw", "base.img", "1M"]);
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=mid.data",
            "-F",
            "raw",
            "-b",
            "base.img",
            "mid.qcow2",
        ],
    );
    let top_data = d.join("top.data");
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", top_data.display()),
            "-F",
            "qcow2",
            "-b",
            "mid.qcow2",
            "top.qcow2",
        ],
    );
    d.join("top.qcow2").display().to_string()
}

fn tools() -> bool {
    if !tool("qemu-img") {
        skip("the dataStore tests need qemu-img");
        return false;
    }
    true
}

#[test]
fn libvirt_prints_the_data_stores_we_write() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let top = chain_with_data_files(d);
    let dom = d.join("dom.xml");
    std::fs::write(
        &dom,
        test_domain(
            "ds",
            &format!(
                "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{top}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"
            ),
        ),
    )
    .unwrap();
    let (ours, err, code) = cli(&["xml", "--no-index", "--domain", dom.to_str().unwrap(), &top]);
    assert_eq!(code, 0, "{err}");
    let dir = d.display();
    // The relative data file name made absolute against its image, as
    // libvirt resolves it.
    assert!(
        ours.contains(&format!("<source file='{dir}/mid.data'/>")),
        "{ours}"
    );
    assert!(
        ours.contains(&format!("<source file='{dir}/top.data'/>")),
        "{ours}"
    );
    let Some(v) = libvirt11("dataStore through libvirt 11") else {
        return;
    };
    relaxng_in(
        &v.schemas,
        &ours,
        "domain.rng",
        "populated with data stores",
    )
    .unwrap();
    let theirs = virsh_define_dump_with(&v, d, &ours, "ds");
    assert_eq!(
        disk_elements(&theirs),
        disk_elements(&ours),
        "libvirt 11 prints the disk otherwise"
    );
    // With numbers (live form): valid, and the same disk once libvirt drops
    // them.
    let (indexed, _, code) = cli(&["xml", "--domain", dom.to_str().unwrap(), &top]);
    assert_eq!(code, 0);
    relaxng_in(&v.schemas, &indexed, "domain.rng", "with index").unwrap();
    let theirs = virsh_define_dump_with(&v, d, &indexed.replace(">ds<", ">ds2<"), "ds2");
    assert_eq!(disk_elements(&theirs), disk_elements(&ours));
    // Flat: each <dataStore> stays in its layer's <source>; one XPath lists
    // the data files of the backing layers.
    let (flat, _, code) = cli(&[
        "xml",
        "--layout",
        "flat",
        "--domain",
        dom.to_str().unwrap(),
        &top,
    ]);
    assert_eq!(code, 0);
    if let Some(files) = xpath(&flat, "//disk/backingStore/source/dataStore/source/@file") {
        assert_eq!(files.trim(), format!("file=\"{dir}/mid.data\""));
    }
    let back = xml::convert(&flat, &Options::default()).unwrap().xml;
    assert_eq!(back, indexed);
}

#[test]
fn a_given_data_store_is_kept_compared_and_restored() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let top = chain_with_data_files(d);
    let dir = d.display();
    // Hand-written (our text), in libvirt's schema.
    let given = test_domain(
        "given",
        &format!(
            "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{top}'>
        <dataStore type='file'>
          <format type='raw'/>
          <source file='{dir}/top.data'/>
        </dataStore>
      </source>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{dir}/mid.qcow2'>
          <dataStore type='file'>
            <format type='raw'/>
            <source file='{dir}/mid.data'/>
          </dataStore>
        </source>
        <backingStore type='file'>
          <format type='raw'/>
          <source file='{dir}/base.img'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
"
        ),
    );
    if let Some(v) = libvirt11("a given dataStore") {
        relaxng_in(&v.schemas, &given, "domain.rng", "given").unwrap();
    }
    // Round trips keep it.
    let flat = xml::convert(
        &given,
        &Options {
            layout: Layout::Flat,
            ..Default::default()
        },
    )
    .unwrap()
    .xml;
    assert_eq!(flat.matches("<dataStore").count(), 2);
    assert_eq!(xml::convert(&flat, &Options::default()).unwrap().xml, given);
    // Validate: it agrees with the images.
    let file = d.join("given.xml");
    std::fs::write(&file, &given).unwrap();
    let (_, err, code) = cli(&[
        "xml",
        "--mode",
        "validate",
        "--domain",
        file.to_str().unwrap(),
        &top,
    ]);
    assert_eq!(code, 0, "{err}");
    // Without the layer's <dataStore>: a mismatch (the VM would not start
    // with a relative data file name), which --replace writes back.
    let cut = given.replace(
        &format!(
            "<source file='{dir}/mid.qcow2'>
          <dataStore type='file'>
            <format type='raw'/>
            <source file='{dir}/mid.data'/>
          </dataStore>
        </source>"
        ),
        &format!("<source file='{dir}/mid.qcow2'/>"),
    );
    assert_ne!(cut, given);
    std::fs::write(&file, &cut).unwrap();
    let (_, err, code) = cli(&[
        "xml",
        "--mode",
        "validate",
        "--domain",
        file.to_str().unwrap(),
        &top,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gives no <dataStore>"), "{err}");
    let (fixed, _, code) = cli(&[
        "xml",
        "--mode",
        "validate",
        "--replace",
        "--no-index",
        "--domain",
        file.to_str().unwrap(),
        &top,
    ]);
    assert_eq!(code, 1);
    assert_eq!(fixed, given);
    // Without the top's: a mismatch too.
    let cut_top = given.replace(
        &format!(
            "<source file='{top}'>
        <dataStore type='file'>
          <format type='raw'/>
          <source file='{dir}/top.data'/>
        </dataStore>
      </source>"
        ),
        &format!("<source file='{top}'/>"),
    );
    std::fs::write(&file, &cut_top).unwrap();
    let (_, err, code) = cli(&[
        "xml",
        "--mode",
        "validate",
        "--domain",
        file.to_str().unwrap(),
        &top,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("(its own source)"), "{err}");
}

// The forest says where each data file is and which known file it is (the
// page parks a dropped data file instead of showing it as a disk): names
// as qemu-img itself prints them, a relative one resolved against its
// image, matched by path or by the end of it.
#[test]
fn the_forest_resolves_and_matches_data_files() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let top = chain_with_data_files(d);
    // Each image probed from its whole bytes (they are small).
    let images = ["top.qcow2", "mid.qcow2", "base.img"].map(|n| {
        let bytes = std::fs::read(d.join(n)).unwrap();
        let mut reads = Reads::new(Some(bytes.len() as u64));
        reads.insert(Range::new(0, bytes.len() as u64), bytes);
        let Ok(Step::Done(info)) = image::probe(&reads) else {
            panic!("{n} is probed in one step");
        };
        Image {
            filename: d.join(n).display().to_string(),
            probe: Probed::Info(info),
            bytes_read: 0,
        }
    });
    let f = backing_chain::chain::build(images.to_vec());
    // qemu-img says the same names.
    let out = Command::new("qemu-img")
        .args(["info", "--backing-chain", "--output=json", &top])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let said: Vec<&str> = info
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["format-specific"]["data"]["data-file"].as_str())
        .collect();
    assert_eq!(
        said,
        [format!("{}/top.data", d.display()).as_str(), "mid.data"]
    );
    let dir = d.display().to_string();
    let names = vec![format!("{dir}/mid.data"), "top.data".to_string()];
    let found = f.data_files(&names);
    assert_eq!(found.len(), 2, "{found:?}");
    let of = |n: &str| {
        found
            .iter()
            .find(|x| f.images[x.image].filename == format!("{dir}/{n}"))
            .unwrap()
    };
    let mid = of("mid.qcow2");
    assert_eq!(mid.name, "mid.data");
    assert_eq!(
        mid.resolved.as_deref(),
        Some(format!("{dir}/mid.data").as_str())
    );
    assert_eq!(mid.file.as_deref(), Some(names[0].as_str()));
    let top = of("top.qcow2");
    assert_eq!(top.name, format!("{dir}/top.data"));
    assert_eq!(top.file.as_deref(), Some("top.data"));
    // Nothing known by that name: no file.
    assert!(f.data_files(&[]).iter().all(|x| x.file.is_none()));
}
