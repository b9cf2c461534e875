//! A known layer that is not here — a backing file the user did not drop or
//! that is missing on disk, a network backing — is still written: the name
//! (resolved), type and the format its overlay records, as the last layer
//! and without a terminator (libvirt probes on from there, as for a chain
//! the user gives). libvirt's schema and test driver judge the output.

mod common;

use backing_chain::image::Format;
use backing_chain::xml::{self, Options};
use common::*;

const D: &str = "/var/lib/libvirt/images";

fn disk(top: &str) -> String {
    format!(
        "<domain type='test'>
  <name>absent</name>
  <memory unit='KiB'>1024</memory>
  <os>
    <type>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{top}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"
    )
}

fn populate(doc: &str, images: Vec<backing_chain::chain::Image>, opts: &Options) -> String {
    xml::populate(doc, &forest(images), opts).unwrap().xml
}

fn no_index() -> Options {
    Options {
        no_index: true,
        ..Default::default()
    }
}

/// The chain part of the one disk (from the first `<backingStore` to the
/// `<target`).
fn chain_of(xml: &str) -> &str {
    let s = xml
        .find("      <backingStore")
        .unwrap_or(xml.find("      <target").unwrap());
    let e = xml.find("      <target").unwrap();
    &xml[s..e]
}

#[test]
fn a_missing_backing_file_is_the_last_layer_without_terminator() {
    let top = format!("{D}/top.qcow2");
    let doc = disk(&top);
    let out = populate(
        &doc,
        vec![img(&top, Format::Qcow2, Some(("mid.qcow2", "qcow2")))],
        &no_index(),
    );
    assert_eq!(
        chain_of(&out),
        "      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/mid.qcow2'/>
      </backingStore>
"
    );
    assert_libvirt_valid(&out, "missing layer");
    // libvirt's test driver reads it as the same chain (it opens no file).
    if tool("virsh") {
        let tmp = tempfile::tempdir().unwrap();
        let theirs = virsh_define_dump(tmp.path(), &out, "absent");
        assert_eq!(disk_elements(&theirs), disk_elements(&out));
    } else {
        skip("virsh is not installed");
    }
    // Below a layer that is here: mid is here, base is not.
    let out = populate(
        &doc,
        vec![
            img(&top, Format::Qcow2, Some(("mid.qcow2", "qcow2"))),
            img(
                &format!("{D}/mid.qcow2"),
                Format::Qcow2,
                Some(("/srv/base.raw", "raw")),
            ),
        ],
        &no_index(),
    );
    assert!(chain_of(&out).contains(
        "          <format type='raw'/>
          <source file='/srv/base.raw'/>
        </backingStore>
      </backingStore>"
    ));
    assert!(!out.contains("<backingStore/>"));
}

#[test]
fn json_file_names_protocol_formats_and_unknown_formats() {
    let top = format!("{D}/top.qcow2");
    let doc = disk(&top);
    let json = r#"json:{"driver":"file","filename":"/nowhere/c.qcow2"}"#;
    let out = populate(
        &doc,
        vec![img(&top, Format::Qcow2, Some((json, "qcow2")))],
        &no_index(),
    );
    assert_eq!(
        chain_of(&out),
        "      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/nowhere/c.qcow2'/>
      </backingStore>
"
    );
    assert_libvirt_valid(&out, "json: layer");
    // A protocol recorded as the format: raw, as qemu and libvirt open it.
    let out = populate(
        &doc,
        vec![img(&top, Format::Qcow2, Some(("/nowhere/d.img", "file")))],
        &no_index(),
    );
    assert!(chain_of(&out).contains("<format type='raw'/>"), "{out}");
    // A format nobody knows, or none: not written (libvirt would refuse
    // to guess it).
    for fmt in ["qcow9", ""] {
        let mut im = img(&top, Format::Qcow2, Some(("/nowhere/e.img", "x")));
        if let backing_chain::chain::Probed::Info(i) = &mut im.probe {
            i.backing_filename_format = (!fmt.is_empty()).then(|| fmt.to_string());
        }
        let out = populate(&doc, vec![im], &no_index());
        assert_eq!(out, doc, "{fmt:?}");
    }
}

#[test]
fn relative_names_are_made_absolute_like_the_other_layers() {
    // Browser drops: names only. The disk's directory, or the base dir.
    let doc = disk(&format!("{D}/top.qcow2"));
    let images = || {
        vec![img(
            "top.qcow2",
            Format::Qcow2,
            Some(("sub/base.qcow2", "qcow2")),
        )]
    };
    let out = populate(&doc, images(), &no_index());
    assert!(
        out.contains(&format!("<source file='{D}/sub/base.qcow2'/>")),
        "{out}"
    );
    let out = populate(
        &doc,
        images(),
        &Options {
            no_index: true,
            base_dir: Some("/srv/vm".into()),
            ..Default::default()
        },
    );
    assert!(
        out.contains("<source file='/srv/vm/sub/base.qcow2'/>"),
        "{out}"
    );
}

#[test]
fn a_network_backing_is_libvirts_network_source() {
    let top = format!("{D}/top.qcow2");
    let doc = disk(&top);
    let out = populate(
        &doc,
        vec![img(
            &top,
            Format::Qcow2,
            Some(("nbd://nbd.example:10809/exp", "raw")),
        )],
        &Options::default(),
    );
    assert_eq!(
        chain_of(&out),
        "      <backingStore type='network' index='2'>
        <format type='raw'/>
        <source protocol='nbd' name='exp'>
          <host name='nbd.example' port='10809'/>
        </source>
      </backingStore>
"
    );
    assert_libvirt_valid(&out, "network layer");
}

#[test]
fn validate_agrees_with_a_chain_that_names_the_absent_layer() {
    let top = format!("{D}/top.qcow2");
    let images = || vec![img(&top, Format::Qcow2, Some(("mid.qcow2", "qcow2")))];
    let populated = populate(&disk(&top), images(), &no_index());
    let out = xml::validate(&populated, &forest(images()), &Options::default()).unwrap();
    assert!(!out.mismatch, "{:?}", out.diagnostics);
    // With a terminator below it: not verifiable, not a mismatch.
    let ended = populated.replace(
        "        <source file='/var/lib/libvirt/images/mid.qcow2'/>\n",
        "        <source file='/var/lib/libvirt/images/mid.qcow2'/>\n        <backingStore/>\n",
    );
    assert_ne!(ended, populated);
    let out = xml::validate(&ended, &forest(images()), &Options::default()).unwrap();
    assert!(!out.mismatch, "{:?}", out.diagnostics);
    // Another file there: a mismatch.
    let other = populated.replace("mid.qcow2'/>", "other.qcow2'/>");
    let out = xml::validate(&other, &forest(images()), &Options::default()).unwrap();
    assert!(out.mismatch);
}
