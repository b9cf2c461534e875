//! Chain edits (`xml::edit`): each operation changes only its span; the
//! nested results are checked against libvirt's RelaxNG schema
//! (`xmllint --relaxng domain.rng`; skipped, visibly, without them).

mod common;

use backing_chain::image::Format;
use backing_chain::xml::edit::{self, HostSpec, LayerSpec, Op, SeclabelSpec};
use backing_chain::xml::{self, Options};
use common::*;

const DOM: &str = "<domain type='kvm'>
  <name>t</name>
  <memory unit='KiB'>524288</memory>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <!-- keep me -->
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/i/mid.qcow2'>
          <seclabel model='selinux' relabel='yes'>
            <label>system_u:object_r:svirt_image_t:s0:c1,c2</label>
          </seclabel>
          <seclabel model='dac' relabel='no'/>
        </source>
        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='/i/base.qcow2'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
";

fn file(p: &str, fmt: Option<&str>) -> LayerSpec {
    LayerSpec {
        kind: "file".into(),
        path: Some(p.into()),
        format: fmt.map(str::to_string),
        ..Default::default()
    }
}

/// The text outside the `<disk>` element is untouched.
fn same_outside(a: &str, b: &str) {
    let pre = |s: &str| s[..s.find("<disk ").unwrap()].to_string();
    let post = |s: &str| s[s.find("</disk>").unwrap()..].to_string();
    assert_eq!(pre(a), pre(b));
    assert_eq!(post(a), post(b));
}

#[test]
fn set_layer_changes_path_and_format_and_keeps_seclabels() {
    let out = edit::set_layer(DOM, 0, 1, &file("/i/other.qcow2", Some("raw"))).unwrap();
    let want = DOM
        .replace(
            "<source file='/i/mid.qcow2'>",
            "<source file='/i/other.qcow2'>",
        )
        .replacen(
            "        <format type='qcow2'/>\n        <source file='/i/other",
            "        <format type='raw'/>\n        <source file='/i/other",
            1,
        );
    assert_eq!(out, want);
    assert_libvirt_valid(&out, "set_layer");
}

#[test]
fn set_layer_to_network_writes_protocol_name_and_hosts() {
    let spec = LayerSpec {
        kind: "network".into(),
        protocol: Some("nbd".into()),
        name: Some("export".into()),
        hosts: vec![HostSpec {
            name: Some("nbd.example".into()),
            port: Some(10809),
            ..Default::default()
        }],
        format: None,
        ..Default::default()
    };
    let out = edit::set_layer(DOM, 0, 2, &spec).unwrap();
    let want = DOM
        .replace(
            "        <backingStore type='file'>\n          <format type='qcow2'/>\n          <source file='/i/base.qcow2'/>",
            "        <backingStore type='network'>\n          <format type='qcow2'/>\n          <source protocol='nbd' name='export'>\n            <host name='nbd.example' port='10809'/>\n          </source>",
        );
    assert_eq!(out, want);
    assert_libvirt_valid(&out, "set_layer network");
    // And back to a file: hosts go, the file attribute comes back.
    let back = edit::set_layer(&out, 0, 2, &file("/i/base.qcow2", None)).unwrap();
    assert_eq!(back, DOM);
}

#[test]
fn insert_layer_moves_the_rest_down() {
    let out = edit::insert_layer(DOM, 0, 2, &file("/i/new.qcow2", Some("qcow2"))).unwrap();
    let want = DOM.replace(
        "        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='/i/base.qcow2'/>
          <backingStore/>
        </backingStore>
",
        "        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='/i/new.qcow2'/>
          <backingStore type='file'>
            <format type='qcow2'/>
            <source file='/i/base.qcow2'/>
            <backingStore/>
          </backingStore>
        </backingStore>
",
    );
    assert_eq!(out, want);
    assert_libvirt_valid(&out, "insert_layer");
    // Removing it again gives the document back, byte for byte.
    assert_eq!(edit::remove_layer(&out, 0, 2).unwrap(), DOM);
}

#[test]
fn insert_at_the_end_goes_above_the_terminator() {
    let out = edit::insert_layer(DOM, 0, 3, &file("/i/older.raw", Some("raw"))).unwrap();
    let d = xml::describe(&out).unwrap();
    let files: Vec<_> = d[0]
        .layers
        .iter()
        .map(|l| l.source.as_ref().and_then(|s| s.path.clone()))
        .collect();
    assert_eq!(
        files,
        vec![
            Some("/i/mid.qcow2".to_string()),
            Some("/i/base.qcow2".to_string()),
            Some("/i/older.raw".to_string()),
            None
        ]
    );
    assert!(d[0].terminated);
    assert_eq!(d[0].layers[2].depth, 3);
    assert_eq!(d[0].layers[3].depth, 4);
    assert_libvirt_valid(&out, "insert at end");
}

#[test]
fn remove_the_first_layer_moves_the_base_up() {
    let out = edit::remove_layer(DOM, 0, 1).unwrap();
    same_outside(DOM, &out);
    assert!(out.contains(
        "      <source file='/i/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/i/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>"
    ));
    assert!(!out.contains("mid.qcow2"));
    assert_libvirt_valid(&out, "remove_layer 1");
    // Remove the last one too: the terminator moves up to the disk.
    let out2 = edit::remove_layer(&out, 0, 1).unwrap();
    assert!(out2.contains(
        "      <source file='/i/top.qcow2'/>\n      <backingStore/>\n      <target dev='vda'"
    ));
    assert_libvirt_valid(&out2, "remove_layer to terminator");
}

#[test]
fn terminator_off_and_on() {
    let off = edit::set_terminator(DOM, 0, false).unwrap();
    assert_eq!(off, DOM.replace("          <backingStore/>\n", ""));
    assert!(!xml::describe(&off).unwrap()[0].terminated);
    assert_libvirt_valid(&off, "terminator off");
    let on = edit::set_terminator(&off, 0, true).unwrap();
    assert_eq!(on, DOM);
    // Setting what is already there changes nothing.
    assert_eq!(edit::set_terminator(DOM, 0, true).unwrap(), DOM);
}

#[test]
fn seclabel_edit_keeps_other_children_and_labels() {
    let spec = SeclabelSpec {
        model: "selinux".into(),
        relabel: Some(true),
        label: Some("system_u:object_r:svirt_image_t:s0:c5,c6".into()),
    };
    let out = edit::set_seclabel(DOM, 0, 1, &spec).unwrap();
    assert_eq!(out, DOM.replace("c1,c2", "c5,c6"));
    // relabel='no' and no label: the label element goes, dac stays.
    let spec = SeclabelSpec {
        model: "selinux".into(),
        relabel: Some(false),
        label: None,
    };
    let out = edit::set_seclabel(DOM, 0, 1, &spec).unwrap();
    assert_eq!(
        out,
        DOM.replace(
            "          <seclabel model='selinux' relabel='yes'>
            <label>system_u:object_r:svirt_image_t:s0:c1,c2</label>
          </seclabel>",
            "          <seclabel model='selinux' relabel='no'/>"
        )
    );
    assert_libvirt_valid(&out, "seclabel relabel=no");
}

#[test]
fn seclabel_keeps_unknown_children_and_is_added_where_missing() {
    let with_extra = DOM.replace(
        "            <label>system_u:object_r:svirt_image_t:s0:c1,c2</label>\n",
        "            <label>system_u:object_r:svirt_image_t:s0:c1,c2</label>\n            <!-- note -->\n            <x:extra xmlns:x='urn:x'/>\n",
    );
    let spec = SeclabelSpec {
        model: "selinux".into(),
        relabel: Some(true),
        label: Some("a<b".into()),
    };
    let out = edit::set_seclabel(&with_extra, 0, 1, &spec).unwrap();
    assert!(out.contains("<label>a&lt;b</label>\n            <!-- note -->\n            <x:extra xmlns:x='urn:x'/>\n          </seclabel>"), "{out}");
    // On the base, which has none: an empty <source/> grows one.
    let spec = SeclabelSpec {
        model: "dac".into(),
        relabel: Some(false),
        label: None,
    };
    let out = edit::set_seclabel(DOM, 0, 2, &spec).unwrap();
    assert!(out.contains(
        "          <source file='/i/base.qcow2'>
            <seclabel model='dac' relabel='no'/>
          </source>"
    ));
    assert_libvirt_valid(&out, "seclabel added");
    let back = edit::remove_seclabel(&out, 0, 2, "dac").unwrap();
    assert!(back.contains("<source file='/i/base.qcow2'>\n          </source>"));
    assert_libvirt_valid(&back, "seclabel removed");
}

/// A layer moved to a storage-pool volume, then to an NVMe namespace, then
/// back to its file: the `<source>` forms are those of libvirt's
/// formatdomain documentation (`pool`/`volume`/`mode`; `type='pci'`,
/// `managed`, `namespace` and the PCI `<address>`).
#[test]
fn set_layer_to_volume_and_nvme_and_back() {
    let vol = LayerSpec {
        kind: "volume".into(),
        pool: Some("blk-pool0".into()),
        volume: Some("blk-pool0-vol0".into()),
        mode: Some("host".into()),
        ..Default::default()
    };
    let out = edit::set_layer(DOM, 0, 2, &vol).unwrap();
    let want = DOM.replace(
        "        <backingStore type='file'>\n          <format type='qcow2'/>\n          <source file='/i/base.qcow2'/>",
        "        <backingStore type='volume'>\n          <format type='qcow2'/>\n          <source pool='blk-pool0' volume='blk-pool0-vol0' mode='host'/>",
    );
    assert_eq!(out, want);
    assert_libvirt_valid(&out, "set_layer volume");

    let nvme = LayerSpec {
        kind: "nvme".into(),
        pci: Some("0000:01:00.0".into()),
        namespace: Some(1),
        managed: Some(true),
        ..Default::default()
    };
    let out = edit::set_layer(&out, 0, 2, &nvme).unwrap();
    let want = DOM.replace(
        "        <backingStore type='file'>\n          <format type='qcow2'/>\n          <source file='/i/base.qcow2'/>",
        "        <backingStore type='nvme'>\n          <format type='qcow2'/>\n          <source type='pci' managed='yes' namespace='1'>\n            <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n          </source>",
    );
    assert_eq!(out, want);
    assert_libvirt_valid(&out, "set_layer nvme");
    // The same layer, another namespace: the address is replaced, not doubled.
    let other = LayerSpec {
        namespace: Some(2),
        managed: None,
        ..nvme.clone()
    };
    let again = edit::set_layer(&out, 0, 2, &other).unwrap();
    assert_eq!(again.matches("<address").count(), 1, "{again}");
    assert!(
        again.contains("<source type='pci' namespace='2'>"),
        "{again}"
    );

    let back = edit::set_layer(&out, 0, 2, &file("/i/base.qcow2", None)).unwrap();
    assert_eq!(back, DOM);

    // What libvirt would refuse is refused here, with the reason.
    for (bad, why) in [
        (
            LayerSpec {
                pool: None,
                ..vol.clone()
            },
            "pool",
        ),
        (
            LayerSpec {
                mode: Some("fast".into()),
                ..vol.clone()
            },
            "mode",
        ),
        (
            LayerSpec {
                pci: Some("01:00.0".into()),
                ..nvme.clone()
            },
            "PCI",
        ),
        (
            LayerSpec {
                pci: Some("0000:01:20.0".into()),
                ..nvme.clone()
            },
            "PCI",
        ),
        (
            LayerSpec {
                pci: Some("0000:01:00.8".into()),
                ..nvme.clone()
            },
            "PCI",
        ),
        (
            LayerSpec {
                namespace: None,
                ..nvme.clone()
            },
            "namespace",
        ),
    ] {
        let e = edit::set_layer(DOM, 0, 2, &bad).expect_err(why);
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
}

#[test]
fn ops_as_data_and_errors() {
    let op: Op = serde_json::from_str(r#"{"op":"remove-layer","disk":0,"depth":2}"#).unwrap();
    let out = edit::apply(DOM, &op).unwrap();
    assert!(!out.contains("base.qcow2"));
    assert!(edit::remove_layer(DOM, 0, 5).is_err());
    assert!(edit::remove_layer(DOM, 3, 1).is_err());
    assert!(edit::set_layer(DOM, 0, 1, &file("", None)).is_err());
    assert!(edit::set_layer(DOM, 0, 1, &file("/a\u{1}b", None)).is_err());
    let bad = LayerSpec {
        kind: "volume".into(),
        ..Default::default()
    };
    assert!(edit::insert_layer(DOM, 0, 1, &bad).is_err());
}

#[test]
fn flat_chains_are_edited_in_nested_form() {
    let flat = xml::convert(
        DOM,
        &Options {
            layout: xml::Layout::Flat,
            ..Default::default()
        },
    )
    .unwrap()
    .xml;
    assert!(flat.contains("<alias name='vda["));
    let out = edit::remove_layer(&flat, 0, 2).unwrap();
    assert!(!out.contains("<alias name="));
    assert!(!out.contains("base.qcow2"));
    assert_libvirt_valid(&out, "flat edited");
}

#[test]
fn adopt_chain_takes_a_populated_chain() {
    let bare = DOM.replace(
        &DOM[DOM.find("      <backingStore type='file'>").unwrap()
            ..DOM.find("      <target").unwrap()],
        "",
    );
    assert!(!bare.contains("backingStore"));
    let out = edit::adopt_chain(&bare, DOM, 0).unwrap();
    assert_eq!(out, DOM);
}

#[test]
fn diff_puts_the_xml_chain_next_to_the_images() {
    let f = forest(vec![
        img("/i/top.qcow2", Format::Qcow2, Some(("mid.qcow2", "qcow2"))),
        img("/i/mid.qcow2", Format::Qcow2, Some(("base.qcow2", "qcow2"))),
        img("/i/base.qcow2", Format::Qcow2, None),
    ]);
    let same = backing_chain::xml::diff::diff(DOM, &f, &Options::default()).unwrap();
    assert_eq!(same.len(), 1);
    assert!(same[0].matched && same[0].xml_terminated && same[0].images_terminated);
    assert_eq!(same[0].rows.len(), 2);
    assert!(
        same[0].rows.iter().all(|r| r.differs.is_empty()),
        "{same:?}"
    );
    // The XML says raw for mid and names another base.
    let wrong = DOM
        .replacen("<format type='qcow2'/>", "<format type='raw'/>", 1)
        .replace("/i/base.qcow2", "/i/old.qcow2");
    let d = backing_chain::xml::diff::diff(&wrong, &f, &Options::default()).unwrap();
    assert_eq!(d[0].rows[0].differs, vec!["format"]);
    assert_eq!(
        d[0].rows[0].xml.as_ref().unwrap().format.as_deref(),
        Some("raw")
    );
    assert_eq!(
        d[0].rows[0].images.as_ref().unwrap().format.as_deref(),
        Some("qcow2")
    );
    assert_eq!(d[0].rows[1].differs, vec!["place"]);
    assert_eq!(d[0].rows[1].images.as_ref().unwrap().place, "/i/base.qcow2");
    // One layer short, terminated: a depth mismatch.
    let short = edit::remove_layer(DOM, 0, 2).unwrap();
    let d = backing_chain::xml::diff::diff(&short, &f, &Options::default()).unwrap();
    assert_eq!(d[0].rows.len(), 2);
    assert_eq!(d[0].rows[1].differs, vec!["depth"]);
    assert!(d[0].rows[1].xml.is_none());
}

#[test]
fn seclabels_are_listed_per_layer() {
    let all = edit::seclabels(DOM).unwrap();
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(s.len(), 3); // the disk's own source, mid, base
    assert!(s[0].is_empty() && s[2].is_empty());
    assert_eq!(s[1].len(), 2);
    assert_eq!(s[1][0].model.as_deref(), Some("selinux"));
    assert_eq!(s[1][0].relabel.as_deref(), Some("yes"));
    assert_eq!(
        s[1][0].label.as_deref(),
        Some("system_u:object_r:svirt_image_t:s0:c1,c2")
    );
    assert_eq!(s[1][1].model.as_deref(), Some("dac"));
    assert_eq!(s[1][1].label, None);
}

#[test]
fn a_type_change_drops_what_belongs_to_the_old_type() {
    let net = DOM
        .replace(
            "          <source file='/i/base.qcow2'/>",
            "          <source protocol='rbd' name='pool/img'>
            <host name='mon1' port='6789'/>
            <auth username='admin'>
              <secret type='ceph' usage='ceph-admin'/>
            </auth>
          </source>",
        )
        .replace(
            "        <backingStore type='file'>\n          <format type='qcow2'/>\n          <source protocol",
            "        <backingStore type='network'>\n          <format type='qcow2'/>\n          <source protocol",
        );
    assert!(net.contains("<backingStore type='network'>"));
    assert_libvirt_valid(&net, "rbd layer");
    // Same type: only the place changes; <auth> stays.
    let spec = LayerSpec {
        kind: "network".into(),
        protocol: Some("rbd".into()),
        name: Some("pool/img2".into()),
        hosts: vec![HostSpec {
            name: Some("mon2".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = edit::set_layer(&net, 0, 2, &spec).unwrap();
    assert!(
        out.contains(
            "<source protocol='rbd' name='pool/img2'>
            <host name='mon2'/>
            <auth username='admin'>
              <secret type='ceph' usage='ceph-admin'/>
            </auth>
          </source>"
        ),
        "{out}"
    );
    assert_libvirt_valid(&out, "rbd edited");
    // To a file: hosts and auth go.
    let out = edit::set_layer(&net, 0, 2, &file("/i/base.qcow2", None)).unwrap();
    assert_eq!(out, DOM);
    // file → block: the seclabels of mid stay (every type may have them).
    let spec = LayerSpec {
        kind: "block".into(),
        path: Some("/dev/vg/mid".into()),
        ..Default::default()
    };
    let out = edit::set_layer(DOM, 0, 1, &spec).unwrap();
    assert_eq!(
        out,
        DOM.replace("<backingStore type='file'>\n        <format type='qcow2'/>\n        <source file='/i/mid.qcow2'>", "<backingStore type='block'>\n        <format type='qcow2'/>\n        <source dev='/dev/vg/mid'>")
    );
    assert_libvirt_valid(&out, "file made a block device");
}

/// A document with a nested disk, a flat one written with CRLF line ends
/// (a comment between its entries) and a flat one with an index, for the
/// test below.
fn mixed_doc() -> String {
    let second = DOM[DOM.find("    <disk ").unwrap()..DOM.find("  </devices>").unwrap()]
        .replace("'vda'", "'vdb'")
        .replace(
            "<source file='/i/top.qcow2'/>",
            "<source file='/i/top.qcow2' index='3'/>",
        )
        .replace(
            "<backingStore type='file'>\n        <format",
            "<backingStore type='file' index='2'>\n        <format",
        );
    let third = DOM[DOM.find("    <disk ").unwrap()..DOM.find("  </devices>").unwrap()]
        .replace("'vda'", "'vdc'");
    let doc = DOM.replace("  </devices>", &format!("{second}{third}  </devices>"));
    let flat = xml::convert(
        &doc,
        &Options {
            layout: xml::Layout::Flat,
            ..Default::default()
        },
    )
    .unwrap()
    .xml;
    // Disk 0 back to nested; disk 1 with CRLF and a comment between entries.
    let starts: Vec<usize> = flat.match_indices("    <disk ").map(|(i, _)| i).collect();
    let ends: Vec<usize> = flat.match_indices("</disk>").map(|(i, _)| i + 7).collect();
    let disk0 = &DOM[DOM.find("    <disk ").unwrap()..DOM.find("</disk>").unwrap() + 7];
    let disk1 = flat[starts[1]..ends[1]]
        .replacen("\n      <backingStore type='file'>\n        <alias name='vdb[1]'", "\n      <!-- between -->\n      <backingStore type='file'>\n        <alias name='vdb[1]'", 1)
        .replace('\n', "\r\n");
    assert!(disk1.contains("<!-- between -->"), "{disk1}");
    format!(
        "{}{disk0}{}{disk1}{}",
        &flat[..starts[0]],
        &flat[ends[0]..starts[1]],
        &flat[ends[1]..]
    )
}

// An edit reads the document once and converts only what it must; the
// result is the same as converting the whole document to nested first and
// editing that (what `xml::convert` gives, the editor's old first step), for
// every operation on every disk and depth, errors included.
#[test]
fn an_edit_of_a_flat_document_is_the_edit_of_its_nested_form() {
    let doc = mixed_doc();
    let nested = xml::convert(&doc, &Options::default()).unwrap().xml;
    assert_ne!(doc, nested);
    assert!(!nested.contains("<alias name="));
    let label = SeclabelSpec {
        model: "selinux".into(),
        relabel: Some(false),
        label: Some("x".into()),
    };
    let mut ops = Vec::new();
    for disk in 0..4 {
        for depth in 0..4 {
            ops.push(Op::SetLayer {
                disk,
                depth,
                layer: file("/n/set.qcow2", Some("raw")),
            });
            ops.push(Op::InsertLayer {
                disk,
                depth,
                layer: file("/n/new.qcow2", Some("qcow2")),
            });
            ops.push(Op::RemoveLayer { disk, depth });
            ops.push(Op::SetSeclabel {
                disk,
                depth,
                seclabel: label.clone(),
            });
            ops.push(Op::RemoveSeclabel {
                disk,
                depth,
                model: "dac".into(),
            });
        }
        ops.push(Op::SetTerminator { disk, on: false });
        ops.push(Op::SetTerminator { disk, on: true });
    }
    let mut changed = 0;
    for op in &ops {
        let direct = edit::apply(&doc, op);
        assert_eq!(direct, edit::apply(&nested, op), "{op:?}");
        if let Ok(out) = direct {
            changed += usize::from(out != nested);
            // Disk 1 keeps its CRLF line ends, the others have none.
            let disks: Vec<&str> = out.split("<disk ").skip(1).collect();
            let disk1 = &disks[1][..disks[1].find("</disk>").unwrap()];
            assert_eq!(
                disk1.matches('\n').count(),
                disk1.matches("\r\n").count(),
                "{op:?}"
            );
            assert!(disk1.contains("\r\n"));
            assert!(
                !disks[0].contains('\r') && !disks[2].contains('\r'),
                "{op:?}"
            );
        }
    }
    assert!(changed > 20, "{changed}");
    assert_eq!(edit::seclabels(&doc), edit::seclabels(&nested));
    assert_eq!(edit::seclabels(&doc).unwrap().len(), 3);
}

// The same, over every document of the XML fixtures (hand-written chains,
// libvirt's own test inputs, regressions the fuzzers found) in both layouts:
// an edit reads the document once and gives what converting it to nested
// and editing that gave.
#[test]
fn every_fixture_edits_as_its_nested_form_does() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("regressions")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let mut compared = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let flat = xml::convert(
            &text,
            &Options {
                layout: xml::Layout::Flat,
                ..Default::default()
            },
        );
        for doc in std::iter::once(text.clone()).chain(flat.ok().map(|o| o.xml)) {
            // A <volume> has no disk to edit (convert would make it one).
            if xml::read::document(&doc).is_ok_and(|d| d.root == xml::Root::Volume) {
                continue;
            }
            let nested = match xml::convert(&doc, &Options::default()) {
                Ok(o) => o.xml,
                Err(_) => continue,
            };
            let disks = xml::describe(&nested).map_or(0, |d| d.len());
            for disk in 0..=disks {
                for depth in 0..=3 {
                    for op in [
                        Op::SetLayer {
                            disk,
                            depth,
                            layer: file("/n/set.qcow2", Some("raw")),
                        },
                        Op::InsertLayer {
                            disk,
                            depth,
                            layer: file("/n/new.qcow2", None),
                        },
                        Op::RemoveLayer { disk, depth },
                        Op::SetSeclabel {
                            disk,
                            depth,
                            seclabel: SeclabelSpec {
                                model: "dac".into(),
                                relabel: Some(true),
                                label: None,
                            },
                        },
                        Op::RemoveSeclabel {
                            disk,
                            depth,
                            model: "selinux".into(),
                        },
                        Op::SetTerminator {
                            disk,
                            on: depth % 2 == 0,
                        },
                    ] {
                        let direct = edit::apply(&doc, &op);
                        let before = edit::apply(&nested, &op);
                        // Errors may name a byte of the document each was given.
                        match (&direct, &before) {
                            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}: {op:?}", f.display()),
                            (Err(a), Err(b)) => {
                                assert_eq!(a.message, b.message, "{}: {op:?}", f.display())
                            }
                            _ => panic!("{}: {op:?}: {direct:?} / {before:?}", f.display()),
                        }
                        compared += 1;
                    }
                }
            }
            assert_eq!(
                edit::seclabels(&doc),
                edit::seclabels(&nested),
                "{}",
                f.display()
            );
        }
    }
    assert!(compared > 500, "{compared}");
}

/// A numbered chain (live XML) keeps its numbers increasing downwards: a
/// layer inserted above a numbered one takes no number (libvirt numbers every
/// layer again when it starts the VM), one added at the end takes the next
/// number of the document; the result is valid for libvirt's schema.
#[test]
fn an_inserted_layer_keeps_the_numbers_increasing_downwards() {
    let numbered = DOM
        .replace(
            "<source file='/i/top.qcow2'/>",
            "<source file='/i/top.qcow2' index='1'/>",
        )
        .replacen("<backingStore type='file'>", "<backingStore type='file' index='2'>", 1)
        .replacen(
            "<backingStore type='file'>\n          <format type='qcow2'/>\n          <source file='/i/base.qcow2'/>",
            "<backingStore type='file' index='3'>\n          <format type='qcow2'/>\n          <source file='/i/base.qcow2'/>",
            1,
        );
    assert_eq!(numbered.matches(" index='").count(), 3, "{numbered}");
    // Each layer's number, top → base, in document order (a nested chain).
    let numbers = |doc: &str| -> Vec<Option<u32>> {
        doc.lines()
            .filter_map(|l| {
                if l.contains("<backingStore type=") || l.contains("<source file='/i/top.qcow2'") {
                    Some(
                        l.split(" index='")
                            .nth(1)
                            .map(|r| r[..r.find('\'').unwrap()].parse().unwrap()),
                    )
                } else {
                    None
                }
            })
            .collect()
    };
    assert_eq!(numbers(&numbered), [Some(1), Some(2), Some(3)]);
    for depth in 1..=2 {
        let out =
            edit::insert_layer(&numbered, 0, depth, &file("/i/new.qcow2", Some("qcow2"))).unwrap();
        let mut want = vec![Some(1), Some(2), Some(3)];
        want.insert(depth, None);
        assert_eq!(numbers(&out), want, "depth {depth}:\n{out}");
        assert_libvirt_valid(&out, "inserted above a numbered layer");
    }
    // At the end (before the terminator): the next number of the document.
    let out = edit::insert_layer(&numbered, 0, 3, &file("/i/new.qcow2", Some("qcow2"))).unwrap();
    assert_eq!(numbers(&out), [Some(1), Some(2), Some(3), Some(4)], "{out}");
    assert_libvirt_valid(&out, "added at the end of a numbered chain");
}

/// Every operation reads back what it writes as data (`op` tag and fields),
/// and a missing field or an unknown `op` is an error that names it.
#[test]
fn ops_as_data_round_trip() {
    let layer = file("/var/lib/libvirt/images/b.qcow2", Some("qcow2"));
    let seclabel = edit::SeclabelSpec {
        model: "dac".into(),
        relabel: Some(false),
        label: None,
    };
    let ops = [
        Op::SetLayer {
            disk: 1,
            depth: 2,
            layer: layer.clone(),
        },
        Op::InsertLayer {
            disk: 0,
            depth: 1,
            layer,
        },
        Op::RemoveLayer { disk: 2, depth: 3 },
        Op::SetTerminator { disk: 0, on: true },
        Op::SetSeclabel {
            disk: 0,
            depth: 1,
            seclabel,
        },
        Op::RemoveSeclabel {
            disk: 0,
            depth: 0,
            model: "selinux".into(),
        },
    ];
    for op in ops {
        let text = serde_json::to_string(&op).unwrap();
        let back: Op = serde_json::from_str(&text).unwrap();
        assert_eq!(back, op, "{text}");
    }
    for (text, want) in [
        (
            r#"{"op":"set-layer","disk":0,"depth":1}"#,
            "missing field `layer`",
        ),
        (r#"{"op":"remove-layer","depth":1}"#, "missing field `disk`"),
        (r#"{"disk":0}"#, "missing field `op`"),
        (
            r#"{"op":"frobnicate","disk":0}"#,
            "unknown variant `frobnicate`",
        ),
    ] {
        let e = serde_json::from_str::<Op>(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
