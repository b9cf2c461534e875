//! qcow2 external data files: `<dataStore>` (libvirt ≥ 10.10). Real images
//! made with qemu-img, the CLI writes the chain, and libvirt 11.3's own
//! parser and formatter (`virsh -c test:///default`, unpacked from Debian's
//! bookworm-backports into target/libvirt-11) and its RelaxNG schema judge
//! it; the installed libvirt (9.0) does not know the element.

mod common;

use std::path::Path;
use std::process::Command;

use backing_chain::xml::{self, Layout, Options};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

fn qemu_img(dir: &Path, args: &[&str]) {
    let st = Command::new("qemu-img")
        .current_dir(dir)
        .args(args)
        .status()
        .expect("qemu-img runs");
    assert!(st.success(), "qemu-img {args:?}");
}

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
