//! `index` numbers of a populated domain against those libvirt 11.3 gave
//! the same VMs when it started them (QEMU 10.0, `virsh dumpxml` of the
//! running VM; the cases and numbers are those of
//! `docs/libvirt-findings/libvirt-index.md`: t1, e1, e2, nbd, ds1). The images are the
//! same chains, described as a probe would; the domains are the same disks.

mod common;

use backing_chain::chain::Probed;
use backing_chain::image::Format;
use backing_chain::xml::{self, Options};
use common::*;

const D: &str = "/srv/vm";

fn q(name: &str, backing: Option<&str>) -> backing_chain::chain::Image {
    img(
        &format!("{D}/{name}"),
        Format::Qcow2,
        backing.map(|b| (b, "qcow2")),
    )
}

fn raw(name: &str) -> backing_chain::chain::Image {
    img(&format!("{D}/{name}"), Format::Raw, None)
}

/// A qcow2 with an external data file, as the probe reports it.
fn with_data_file(mut im: backing_chain::chain::Image, data: &str) -> backing_chain::chain::Image {
    if let Probed::Info(info) = &mut im.probe {
        let text = serde_json::json!({
            "type": "qcow2",
            "data": {"compat": "1.1", "data-file": data, "data-file-raw": false}
        })
        .to_string();
        let limits = backing_chain::json::Limits {
            depth: 8,
            bytes: 1 << 20,
        };
        info.format_specific = Some(backing_chain::image::FormatSpecific::Other(
            backing_chain::json::parse(&text, limits).unwrap(),
        ));
    }
    im
}

/// top → mid → base, qcow2, named `{p}-top.qcow2` …
fn three(p: &str) -> Vec<backing_chain::chain::Image> {
    vec![
        q(&format!("{p}-top.qcow2"), Some(&format!("{p}-mid.qcow2"))),
        q(&format!("{p}-mid.qcow2"), Some(&format!("{p}-base.qcow2"))),
        q(&format!("{p}-base.qcow2"), None),
    ]
}

fn file_disk(dev: &str, bus: &str, file: &str, fmt: &str, chain: &str) -> String {
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='{fmt}'/>\n      <source file='{D}/{file}'/>\n{chain}      <target dev='{dev}' bus='{bus}'/>\n    </disk>\n"
    )
}

fn domain(disks: &str) -> String {
    format!(
        "<domain type='qemu'>\n  <name>idx</name>\n  <memory unit='KiB'>131072</memory>\n  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n  </os>\n  <devices>\n{disks}  </devices>\n</domain>\n"
    )
}

/// The numbers of the disk with target `dev`: its `<source index>`, then
/// every `index` below it in document order (layers and data stores).
fn numbers(xml: &str, dev: &str) -> Vec<usize> {
    let disk = disk_elements(xml)
        .into_iter()
        .find(|d| d.contains(&format!("<target dev='{dev}'")))
        .unwrap_or_else(|| panic!("no disk {dev}"));
    disk.match_indices("index='")
        .map(|(i, _)| {
            let v = &disk[i + 7..];
            v[..v.find('\'').unwrap()].parse().unwrap()
        })
        .collect()
}

fn populate(doc: &str, images: Vec<backing_chain::chain::Image>) -> xml::Output {
    let out = xml::populate(doc, &forest(images), &Options::default()).unwrap();
    assert_libvirt_valid(&out.xml, "populated with numbers");
    out
}

#[test]
fn t1_three_bare_disks() {
    let doc = domain(&format!(
        "{}{}{}",
        file_disk("vda", "virtio", "a-top.qcow2", "qcow2", ""),
        file_disk("vdb", "virtio", "b-top.qcow2", "qcow2", ""),
        file_disk("vdc", "virtio", "c-top.qcow2", "qcow2", "")
    ));
    let mut images = three("a");
    images.extend(three("b"));
    images.extend(three("c"));
    let out = populate(&doc, images);
    assert_eq!(numbers(&out.xml, "vda"), [3, 8, 9]);
    assert_eq!(numbers(&out.xml, "vdb"), [2, 6, 7]);
    assert_eq!(numbers(&out.xml, "vdc"), [1, 4, 5]);
    // As libvirt printed it for vdc.
    let vdc = disk_elements(&out.xml).remove(2);
    assert_eq!(
        vdc,
        "<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/vm/c-top.qcow2' index='1'/>
      <backingStore type='file' index='4'>
        <format type='qcow2'/>
        <source file='/srv/vm/c-mid.qcow2'/>
        <backingStore type='file' index='5'>
          <format type='qcow2'/>
          <source file='/srv/vm/c-base.qcow2'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vdc' bus='virtio'/>
    </disk>"
    );
}

#[test]
fn e1_mixed_kinds_and_empty_drives() {
    let doc = domain(&format!(
        "{}    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{D}/cd.iso'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdc' bus='sata'/>
      <readonly/>
    </disk>
{}    <disk type='file' device='disk'>
      <driver name='qemu'/>
      <source file='{D}/noformat.img'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
{}    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/>
      <target dev='fda' bus='fdc'/>
    </disk>
",
        file_disk("sda", "sata", "s-top.qcow2", "qcow2", ""),
        file_disk("vda", "virtio", "raw1.img", "raw", ""),
        file_disk("sdd", "scsi", "q-top.qcow2", "qcow2", ""),
    ));
    let images = vec![
        q("s-top.qcow2", Some("s-base.qcow2")),
        q("s-base.qcow2", None),
        raw("cd.iso"),
        raw("raw1.img"),
        raw("noformat.img"),
        q("q-top.qcow2", Some("q-base.qcow2")),
        q("q-base.qcow2", None),
    ];
    let out = populate(&doc, images);
    // Pass 1 from the last: fda 1 (empty, not printed), sdd 2, vdb 3,
    // vda 4, sdc 5 (empty), sdb 6, sda 7; pass 2: sdd's base 8, sda's 9.
    assert_eq!(numbers(&out.xml, "sda"), [7, 9]);
    assert_eq!(numbers(&out.xml, "sdb"), [6]);
    assert_eq!(numbers(&out.xml, "sdc"), Vec::<usize>::new());
    assert_eq!(numbers(&out.xml, "vda"), [4]);
    assert_eq!(numbers(&out.xml, "vdb"), [3]);
    assert_eq!(numbers(&out.xml, "sdd"), [2, 8]);
    assert_eq!(numbers(&out.xml, "fda"), Vec::<usize>::new());
    assert!(out.xml.contains(&format!(
        "<source file='{D}/cd.iso' index='6'/>\n      <backingStore/>\n      <target dev='sdb'"
    )));
}

#[test]
fn e2_given_chains_and_libvirt_disk_order() {
    let given_full = |p: &str| {
        format!(
            "      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{D}/{p}-mid.qcow2'/>
        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='{D}/{p}-base.qcow2'/>
          <backingStore/>
        </backingStore>
      </backingStore>
"
        )
    };
    let vdc_given = format!(
        "      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='{D}/c-mid.qcow2'/>
      </backingStore>
"
    );
    let vde_given = given_full("e").replace("          <backingStore/>\n", "");
    let doc = domain(&format!(
        "{}{}{}{}{}{}",
        file_disk("vda", "virtio", "a-top.qcow2", "qcow2", ""),
        file_disk("sda", "sata", "s-top.qcow2", "qcow2", ""),
        file_disk("vdb", "virtio", "b-top.qcow2", "qcow2", &given_full("b")),
        file_disk("vdc", "virtio", "c-top.qcow2", "qcow2", &vdc_given),
        file_disk(
            "vdd",
            "virtio",
            "d-top.qcow2",
            "qcow2",
            "      <backingStore/>\n"
        ),
        file_disk("vde", "virtio", "e-top.qcow2", "qcow2", &vde_given),
    ));
    let mut images = Vec::new();
    for p in ["a", "b", "c", "d", "e"] {
        images.extend(three(p));
    }
    images.push(q("s-top.qcow2", Some("s-base.qcow2")));
    images.push(q("s-base.qcow2", None));
    let out = populate(&doc, images);
    // libvirt's order vda vdb vdc vdd vde sda. Pass 1: sda 1; vde 2, 3, 4;
    // vdd 5; vdc 6, 7; vdb 8, 9, 10; vda 11. Pass 2: sda's base 12, vdc's
    // base 13, vda's mid and base 14, 15. Given chains are kept as written.
    assert_eq!(numbers(&out.xml, "vda"), [11, 14, 15]);
    assert_eq!(numbers(&out.xml, "sda"), [1, 12]);
    for dev in ["vdb", "vdc", "vdd", "vde"] {
        assert_eq!(numbers(&out.xml, dev), Vec::<usize>::new(), "{dev}");
    }
    let kept = disk_elements(&doc);
    let now = disk_elements(&out.xml);
    for k in 2..6 {
        assert_eq!(now[k], kept[k]);
    }
}

#[test]
fn nbd_disks_take_a_number_and_detect_nothing() {
    let nbd = |dev: &str, name: &str, fmt: &str, sock: &str| {
        format!(
            "    <disk type='network' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source protocol='nbd' name='{name}'>
        <host transport='unix' socket='{D}/{sock}'/>
      </source>
      <target dev='{dev}' bus='virtio'/>
    </disk>
"
        )
    };
    let doc = domain(&format!(
        "{}{}{}{}",
        file_disk("vda", "virtio", "a-top.qcow2", "qcow2", ""),
        nbd("vdb", "rawexp", "raw", "nbd1.sock"),
        nbd("vdc", "qexp", "qcow2", "nbd2.sock"),
        file_disk("vdd", "virtio", "b-top.qcow2", "qcow2", ""),
    ));
    let mut images = three("a");
    images.extend(three("b"));
    let out = populate(&doc, images);
    assert_eq!(numbers(&out.xml, "vda"), [4, 7, 8]);
    assert_eq!(numbers(&out.xml, "vdd"), [1, 5, 6]);
}

#[test]
fn ds1_data_files_take_numbers_after_their_layer() {
    let doc = domain(&format!(
        "{}{}",
        file_disk("vda", "virtio", "t-df.qcow2", "qcow2", ""),
        file_disk("vdb", "virtio", "bdf-top.qcow2", "qcow2", ""),
    ));
    let images = vec![
        with_data_file(q("t-df.qcow2", None), &format!("{D}/t-df.data")),
        q("bdf-top.qcow2", Some("bdf-base.qcow2")),
        with_data_file(q("bdf-base.qcow2", None), &format!("{D}/b-df.data")),
    ];
    let out = xml::populate(&doc, &forest(images), &Options::default()).unwrap();
    // Pass 1: vdb 1, vda 2. Pass 2: vdb's base 3, its data file 4; vda's
    // own data file 5.
    assert_eq!(numbers(&out.xml, "vda"), [2, 5]);
    assert_eq!(numbers(&out.xml, "vdb"), [1, 3, 4]);
    let disks = disk_elements(&out.xml);
    assert_eq!(
        disks[0],
        "<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/vm/t-df.qcow2' index='2'>
        <dataStore type='file'>
          <format type='raw'/>
          <source file='/srv/vm/t-df.data' index='5'/>
        </dataStore>
      </source>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>"
    );
    assert_eq!(
        disks[1],
        "<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/vm/bdf-top.qcow2' index='1'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/srv/vm/bdf-base.qcow2'>
          <dataStore type='file'>
            <format type='raw'/>
            <source file='/srv/vm/b-df.data' index='4'/>
          </dataStore>
        </source>
        <backingStore/>
      </backingStore>
      <target dev='vdb' bus='virtio'/>
    </disk>"
    );
    // libvirt ≥ 10.10's schema takes it (9.0's has no <dataStore>).
    if let Some(v) = libvirt11("ds1 schema") {
        relaxng_in(&v.schemas, &out.xml, "domain.rng", "ds1").unwrap();
    }
}

#[test]
fn no_index_writes_none_and_live_documents_continue_above_their_numbers() {
    let doc = domain(&file_disk("vda", "virtio", "a-top.qcow2", "qcow2", ""));
    let out = xml::populate(
        &doc,
        &forest(three("a")),
        &Options {
            no_index: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!out.xml.contains("index="));
    // A live document: every number in use stays, new ones go above the
    // largest of the whole VM (not per disk: they are QEMU node names).
    let live = domain(&format!(
        "{}{}",
        file_disk("vda", "virtio", "a-top.qcow2", "qcow2", ""),
        file_disk("vdb", "virtio", "x.img", "raw", "").replace(
            &format!("<source file='{D}/x.img'/>"),
            &format!("<source file='{D}/x.img' index='7'/>")
        ),
    ));
    let out = xml::populate(&live, &forest(three("a")), &Options::default()).unwrap();
    assert_eq!(numbers(&out.xml, "vdb"), [7]);
    assert_eq!(numbers(&out.xml, "vda"), [8, 9, 10]);
}

#[test]
fn adopting_a_chain_takes_the_tops_number_and_data_file() {
    let doc = domain(&file_disk("vda", "virtio", "t-df.qcow2", "qcow2", ""));
    let images = vec![
        with_data_file(q("t-df.qcow2", Some("base.qcow2")), "t-df.data"),
        q("base.qcow2", None),
    ];
    let populated = xml::populate(&doc, &forest(images), &Options::default())
        .unwrap()
        .xml;
    assert!(populated.contains("<source file='/srv/vm/t-df.data' index='2'/>"));
    assert_eq!(
        xml::edit::adopt_chain(&doc, &populated, 0).unwrap(),
        populated
    );
}
