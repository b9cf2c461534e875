//! Populate, trust and validate (the 2014 RFC's modes), volume XML and
//! qemu-img JSON input, and names XML cannot carry.

mod common;

use backing_chain::diag::{Code, Severity};
use backing_chain::image::Format;
use backing_chain::xml::{self, Layout, Mode, Options};
use common::*;

const D: &str = "/var/lib/libvirt/images";

fn validate(doc: &str, f: &backing_chain::chain::Forest) -> xml::Output {
    xml::validate(doc, f, &Options::default()).unwrap()
}

fn codes(o: &xml::Output) -> Vec<(Code, Severity)> {
    o.diagnostics.iter().map(|d| (d.code, d.severity)).collect()
}

fn mismatches(o: &xml::Output) -> Vec<&str> {
    o.diagnostics
        .iter()
        .filter(|d| d.code == Code::ChainMismatch)
        .map(|d| d.message.as_str())
        .collect()
}

#[test]
fn populate_fills_a_bare_disk_from_the_headers() {
    let out = xml::populate(
        &fixture("disk.xml"),
        &three_layer_forest(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(
        out.xml,
        "<disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source file='/var/lib/libvirt/images/top.qcow2' index='1'/>
  <backingStore type='file' index='2'>
    <format type='qcow2'/>
    <source file='/var/lib/libvirt/images/mid.qcow2'/>
    <backingStore type='file' index='3'>
      <format type='qcow2'/>
      <source file='/var/lib/libvirt/images/base.qcow2'/>
      <backingStore/>
    </backingStore>
  </backingStore>
  <target dev='vda' bus='virtio'/>
</disk>
"
    );
}

#[test]
fn dropped_basenames_are_made_absolute_with_the_disk_directory() {
    // Browser drops: only basenames are known.
    let f = forest(vec![
        img("top.qcow2", Format::Qcow2, Some(("base.qcow2", "qcow2"))),
        img("base.qcow2", Format::Qcow2, None),
    ]);
    let out = xml::populate(&fixture("disk.xml"), &f, &Options::default()).unwrap();
    assert!(out
        .xml
        .contains("<source file='/var/lib/libvirt/images/base.qcow2'/>"));
    assert!(!out.diagnostics.iter().any(|d| d.code == Code::RelativePath));
    // A base directory set by the user wins; a relative one is flagged.
    let o = Options {
        base_dir: Some("relative/dir".into()),
        ..Default::default()
    };
    let out = xml::populate(&fixture("disk.xml"), &f, &o).unwrap();
    assert!(out.xml.contains("<source file='relative/dir/base.qcow2'/>"));
    assert!(out.diagnostics.iter().any(|d| d.code == Code::RelativePath));
}

#[test]
fn index_numbers_avoid_those_the_disk_uses() {
    // status.xml's vdb has <source index='4'>; a one-layer chain gets 5.
    let f = forest(vec![
        img(
            &format!("{D}/data.qcow2"),
            Format::Qcow2,
            Some(("data-base.qcow2", "qcow2")),
        ),
        img(&format!("{D}/data-base.qcow2"), Format::Qcow2, None),
    ]);
    let out = xml::populate(&fixture("status.xml"), &f, &Options::default()).unwrap();
    assert!(out.xml.contains(
        "\n        <backingStore type='file' index='5'>\n          <format type='qcow2'/>\n          <source file='/var/lib/libvirt/images/data-base.qcow2'/>\n          <backingStore/>\n        </backingStore>\n        <target dev='vdb' bus='virtio'/>"
    ));
    // The first disk's existing chain (with privateData) is untouched.
    let doc = fixture("status.xml");
    let end = doc.find("<alias name='virtio-disk0'/>").unwrap();
    assert_eq!(&out.xml[..end], &doc[..end]);
}

#[test]
fn trust_keeps_a_chain_even_when_the_images_disagree() {
    let doc = fixture("flat.xml");
    let f = three_layer_forest(); // says base.qcow2, the XML says nbd
    let out = xml::populate(
        &doc,
        &f,
        &Options {
            layout: Layout::Flat,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.xml, doc);
    assert!(codes(&out).contains(&(Code::ChainTrusted, Severity::Info)));
    assert!(!out.mismatch);
}

#[test]
fn validate_accepts_a_matching_chain() {
    let out = validate(&fixture("domain-all-disks.xml"), &three_layer_forest());
    assert!(!out.mismatch, "{:?}", out.diagnostics);
    assert!(mismatches(&out).is_empty());
    assert_eq!(out.xml, fixture("domain-all-disks.xml"));
}

#[test]
fn validate_reports_each_divergence() {
    // flat.xml: layer 2 is nbd in the XML, base.qcow2 (file, qcow2) in the images.
    let out = validate(&fixture("flat.xml"), &three_layer_forest());
    assert!(out.mismatch);
    let m = mismatches(&out);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].contains("layer 2") && m[0].contains("type 'network'") && m[0].contains("'file'"));
    assert!(m[1].contains("format 'raw'") && m[1].contains("'qcow2'"));
    assert!(
        m[2].contains("nbd:base on [nbd.example.org:10809]")
            && m[2].contains("/var/lib/libvirt/images/base.qcow2")
    );
    assert!(out
        .diagnostics
        .iter()
        .all(|d| d.code != Code::ChainMismatch || d.fix.is_some()));
    assert_eq!(
        out.xml,
        fixture("flat.xml"),
        "validate without replace changes nothing"
    );
}

#[test]
fn validate_depth_and_terminator() {
    let doc = fixture("domain-all-disks.xml");
    // Images have one more layer below base: the XML's terminator is early.
    let f = forest(vec![
        img(
            &format!("{D}/top.qcow2"),
            Format::Qcow2,
            Some(("mid.qcow2", "qcow2")),
        ),
        img(
            &format!("{D}/mid.qcow2"),
            Format::Qcow2,
            Some(("base.qcow2", "qcow2")),
        ),
        img(
            &format!("{D}/base.qcow2"),
            Format::Qcow2,
            Some(("root.img", "raw")),
        ),
        img(&format!("{D}/root.img"), Format::Raw, None),
    ]);
    let out = validate(&doc, &f);
    let m = mismatches(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("layer 3") && m[0].contains("after 2") && m[0].contains("have 3"));
    // Images have one layer less: the XML lists too many.
    let f = forest(vec![
        img(
            &format!("{D}/top.qcow2"),
            Format::Qcow2,
            Some(("mid.qcow2", "qcow2")),
        ),
        img(&format!("{D}/mid.qcow2"), Format::Qcow2, None),
    ]);
    let m2 = validate(&doc, &f);
    let m = mismatches(&m2);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("lists 2") && m[0].contains("have 1"));
}

#[test]
fn an_unterminated_prefix_is_not_a_mismatch() {
    // odd-chains.xml vda: mid (children in another order) then a block
    // base, no terminator. Images: same two layers, then one more.
    let f = forest(vec![
        img(
            "/images/top.qcow2",
            Format::Qcow2,
            Some(("/images/mid.qcow2", "qcow2")),
        ),
        img(
            "/images/mid.qcow2",
            Format::Qcow2,
            Some(("/dev/vg0/base", "raw")),
        ),
        img("/dev/vg0/base", Format::Raw, None),
    ]);
    let out = validate(&fixture("odd-chains.xml"), &f);
    // The images give /dev/vg0/base as a file, the XML as a block device.
    let m = mismatches(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("type 'block'"));
    let f = forest(vec![
        img(
            "/images/top.qcow2",
            Format::Qcow2,
            Some(("/images/mid.qcow2", "qcow2")),
        ),
        img("/images/mid.qcow2", Format::Qcow2, None),
    ]);
    let out = validate(&fixture("odd-chains.xml"), &f);
    assert!(
        mismatches(&out).len() == 1,
        "XML longer than a terminated image chain"
    );
    // A chain the XML leaves open after the first layer.
    let doc = "<disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source file='/var/lib/libvirt/images/top.qcow2'/>
  <backingStore type='file'>
    <source file='/var/lib/libvirt/images/mid.qcow2'/>
    <format type='qcow2'/>
  </backingStore>
  <target dev='vda' bus='virtio'/>
</disk>";
    let out = validate(doc, &three_layer_forest());
    assert!(!out.mismatch, "{:?}", out.diagnostics);
    assert!(codes(&out).contains(&(Code::ChainOpen, Severity::Info)));
}

#[test]
fn replace_writes_what_the_images_say() {
    let o = Options {
        mode: Mode::Validate,
        replace: true,
        ..Default::default()
    };
    let out = xml::populate(&fixture("flat.xml"), &three_layer_forest(), &o).unwrap();
    assert!(out.mismatch);
    let populated = xml::populate(
        &fixture("flat.xml").replace(
            &fixture("flat.xml")[fixture("flat.xml").find("      <backingStore").unwrap()
                ..fixture("flat.xml").find("      <target").unwrap()],
            "",
        ),
        &three_layer_forest(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(out.xml, populated.xml);
    assert!(codes(&out).contains(&(Code::ChainReplaced, Severity::Info)));
    // Validating the replaced document: no mismatch left.
    let again = validate(&out.xml, &three_layer_forest());
    assert!(!again.mismatch, "{:?}", again.diagnostics);
}

#[test]
fn quorum_siblings_and_flat_orphans_are_kept_and_flagged() {
    let doc = fixture("quorum.xml");
    let out = xml::convert(&doc, &Options::default()).unwrap();
    assert_eq!(out.xml, doc);
    assert!(codes(&out).contains(&(Code::QuorumSiblings, Severity::Warning)));
    let orphan = fixture("flat.xml").replace("parent='vda[1]'", "parent='nobody'");
    let out = xml::convert(&orphan, &Options::default()).unwrap();
    assert!(codes(&out).contains(&(Code::FlatOrphan, Severity::Warning)));
    assert_eq!(
        out.xml.matches("<backingStore").count(),
        3,
        "nothing dropped"
    );
}

#[test]
fn volumes_become_disks_and_gluster_urls_network_sources() {
    let out = xml::populate(
        &fixture("volume-gluster.xml"),
        &forest(vec![]),
        &Options::default(),
    )
    .unwrap();
    // The RFC's gluster volume as a disk: each URL becomes the source libvirt
    // makes of the same URL as a backing name (gluster's default port 24007,
    // as in tests/backing_names.rs), in libvirt's disk layout.
    assert_eq!(
        out.xml,
        "<disk type='network' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source protocol='gluster' name='vol1/img3' index='1'>
    <host name='localhost' port='24007'/>
  </source>
  <backingStore type='network' index='2'>
    <format type='qcow2'/>
    <source protocol='gluster' name='vol1/img2'>
      <host name='localhost' port='24007'/>
    </source>
  </backingStore>
  <target dev='vda' bus='virtio'/>
</disk>
"
    );
    // A file volume whose image was dropped: the whole chain from the headers.
    let out = xml::populate(
        &fixture("volume-file.xml"),
        &three_layer_forest(),
        &Options::default(),
    )
    .unwrap();
    assert!(out
        .xml
        .contains("<source file='/var/lib/libvirt/images/base.qcow2'/>"));
    assert!(out.xml.contains("<backingStore/>"));
}

#[test]
fn qemu_img_json_is_an_input() {
    let images = xml::qemu_json::images(&fixture("qemu-img-chain.json")).unwrap();
    assert_eq!(images.len(), 3);
    let f = forest(images);
    let out = xml::populate(&fixture("disk.xml"), &f, &Options::default()).unwrap();
    let expected = xml::populate(
        &fixture("disk.xml"),
        &three_layer_forest(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(out.xml, expected.xml);
    let e = xml::qemu_json::images("[{\"filename\": 1}").unwrap_err();
    assert!(e.message.contains("qemu-img JSON"));
}

#[test]
fn names_xml_cannot_carry_are_diagnosed_not_mangled() {
    for bad in [
        "/var/lib/libvirt/images/ba\0se.qcow2",
        "/var/lib/libvirt/images/ba\u{1}se.qcow2",
    ] {
        let f = forest(vec![
            img(
                &format!("{D}/top.qcow2"),
                Format::Qcow2,
                Some((bad, "qcow2")),
            ),
            img(bad, Format::Qcow2, None),
        ]);
        let out = xml::populate(&fixture("disk.xml"), &f, &Options::default()).unwrap();
        assert_eq!(out.xml, fixture("disk.xml"), "nothing written for {bad:?}");
        // NUL never reaches the writer: the name parser refuses it and the
        // chain says so; a control character is refused by the writer.
        let top_chain = f.chains.iter().find(|c| c.top == 0).expect("top chain");
        let (code, codes): (Code, Vec<Code>) = if bad.contains('\0') {
            let codes = top_chain.diagnostics.iter().map(|d| d.code).collect();
            (Code::BadBackingName, codes)
        } else {
            let codes = out.diagnostics.iter().map(|d| d.code).collect();
            (Code::UnrepresentableName, codes)
        };
        assert!(codes.contains(&code), "{bad:?}: {codes:?}");
    }
    // Lossy UTF-8 (U+FFFD from the probe) is written but flagged.
    let lossy = "/var/lib/libvirt/images/ba\u{FFFD}se.qcow2";
    let f = forest(vec![
        img(
            &format!("{D}/top.qcow2"),
            Format::Qcow2,
            Some((lossy, "qcow2")),
        ),
        img(lossy, Format::Qcow2, None),
    ]);
    let out = xml::populate(&fixture("disk.xml"), &f, &Options::default()).unwrap();
    assert!(out.diagnostics.iter().any(|d| d.code == Code::LossyName));
}

#[test]
fn every_disk_type_is_read() {
    let doc = fixture("domain-all-disks.xml");
    let d = xml::read::document(&doc).unwrap();
    let infos: Vec<_> = d
        .disks
        .iter()
        .map(|n| xml::model::disk_info(&n.elem, &doc))
        .collect();
    let by_dev = |dev: &str| {
        infos
            .iter()
            .find(|i| i.target_dev.as_deref() == Some(dev))
            .unwrap()
    };
    assert_eq!(infos.len(), 15);
    assert_eq!(
        by_dev("vdb").source.as_ref().unwrap().path.as_deref(),
        Some("/var/lib/libvirt/images/data & logs.qcow2")
    );
    let lun = by_dev("sda");
    assert_eq!((lun.device.as_deref(), lun.shareable), (Some("lun"), true));
    assert_eq!(
        by_dev("fda").source.as_ref().unwrap().path.as_deref(),
        Some("/srv/floppy")
    );
    assert!(by_dev("fda").readonly);
    let rbd = by_dev("vdc").source.clone().unwrap();
    assert_eq!(rbd.protocol.as_deref(), Some("rbd"));
    assert_eq!(rbd.hosts.len(), 2);
    assert_eq!(rbd.hosts[1].port, Some(6789));
    assert_eq!(rbd.extra("snapshot"), Some("snap1"));
    assert_eq!(rbd.extra("config"), Some("/etc/ceph/ceph.conf"));
    let https = by_dev("sdb").source.clone().unwrap();
    assert_eq!(https.extra("query"), Some("token=a&b"));
    assert_eq!(https.extra("sslverify"), Some("no"));
    assert_eq!(https.extra("cookie:session"), Some("abc123"));
    assert_eq!(https.extra("readahead"), Some("65536"));
    assert_eq!(https.extra("timeout"), Some("10"));
    assert_eq!(
        by_dev("vde").source.as_ref().unwrap().extra("tls"),
        Some("yes")
    );
    let vol = by_dev("sdd").source.clone().unwrap();
    assert_eq!(
        (vol.extra("pool"), vol.extra("volume"), vol.extra("mode")),
        (Some("iscsi-pool"), Some("unit:0:0:1"), Some("host"))
    );
    let nvme = by_dev("vdh").source.clone().unwrap();
    assert_eq!(
        (
            nvme.extra("pci"),
            nvme.extra("namespace"),
            nvme.extra("managed")
        ),
        (Some("0000:01:00.0"), Some("1"), Some("yes"))
    );
    assert_eq!(
        by_dev("vdi").other_source.as_deref(),
        Some("/tmp/vhost-blk.sock")
    );
    assert!(by_dev("sde").source.is_none(), "empty cdrom");
    let newer = fixture("domain-newer-disks.xml");
    let d = xml::read::document(&newer).unwrap();
    let infos: Vec<_> = d
        .disks
        .iter()
        .map(|n| xml::model::disk_info(&n.elem, &newer))
        .collect();
    let ssh = infos[1].source.clone().unwrap();
    assert_eq!(ssh.extra("knownhosts"), Some("/root/.ssh/known_hosts"));
    assert_eq!(infos[2].other_source.as_deref(), Some("/dev/vhost-vdpa-0"));
    let nfs = infos[3].source.clone().unwrap();
    assert_eq!(
        (nfs.extra("user"), nfs.extra("group")),
        (Some("qemu"), Some("kvm"))
    );
}

#[test]
fn describe_reads_chains_in_both_layouts_alike() {
    let nested = xml::describe(&fixture("odd-chains.xml")).unwrap();
    let vda = &nested[0];
    assert_eq!(vda.name, "vda");
    assert_eq!(vda.layers.len(), 2);
    assert_eq!(
        vda.layers[0].format.as_deref(),
        Some("qcow2"),
        "format after source is read"
    );
    assert_eq!(
        vda.layers[0].source.as_ref().unwrap().path.as_deref(),
        Some("/images/mid.qcow2")
    );
    assert_eq!(
        (
            vda.layers[1].kind.as_deref(),
            vda.layers[1].depth,
            vda.layers[1].parent
        ),
        (Some("block"), 2, Some(0))
    );
    assert_eq!(
        vda.layers[1].source.as_ref().unwrap().path.as_deref(),
        Some("/dev/vg0/base")
    );
    assert!(!vda.terminated, "no terminator: libvirt probes on");
    assert!(
        nested[1].terminated && nested[1].layers.len() == 1 && nested[1].layers[0].kind.is_none()
    );
    assert_eq!(
        nested[2].layers[0].source.as_ref().unwrap().extra("offset"),
        Some("1048576")
    );

    let flat = xml::describe(&fixture("flat.xml")).unwrap();
    assert_eq!(flat[0].layout, Layout::Flat);
    assert!(flat[0].terminated);
    let depths: Vec<_> = flat[0].layers.iter().map(|l| (l.depth, l.parent)).collect();
    assert_eq!(depths, [(1, None), (2, Some(0)), (3, Some(1))]);
    let net = flat[0].layers[1].source.as_ref().unwrap();
    assert_eq!(
        (net.protocol.as_deref(), net.name.as_deref()),
        (Some("nbd"), Some("base"))
    );
    // The same chain in nested form describes the same layers.
    let as_nested = xml::convert(&fixture("flat.xml"), &Options::default()).unwrap();
    let again = xml::describe(&as_nested.xml).unwrap();
    assert_eq!(again[0].layers, flat[0].layers);
    assert_eq!(again[0].layout, Layout::Nested);
}
