//! What `xml::Output` and `xml::describe` say beside the XML, for a page
//! that should not read the XML again: the disk count, how relative image
//! names were written, the bare disks in one document (`Options.wrap`), each
//! disk's main path. Counts and paths are checked with xmllint's XPath over
//! the XML written (skipped, visibly, without it); the wrapped document
//! against libvirt's schema.

mod common;

use backing_chain::image::Format;
use backing_chain::xml::{self, edit, Options, WrittenPath};
use common::*;

/// Relative names, as dropped files have: two chains in a folder.
fn dropped() -> backing_chain::chain::Forest {
    forest(vec![
        img("vm/top.qcow2", Format::Qcow2, Some(("base.qcow2", "qcow2"))),
        img("vm/base.qcow2", Format::Qcow2, None),
        img("other.qcow2", Format::Qcow2, None),
    ])
}

const DOMAIN: &str = "<domain type='kvm'>
  <name>d</name>
  <memory unit='KiB'>524288</memory>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/images/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <!-- <disk type='file'> in a comment is no disk -->
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
    </disk>
  </devices>
</domain>
";

fn count(xml: &str) -> Option<usize> {
    xpath(xml, "count(//disk)").map(|c| c.parse().unwrap())
}

#[test]
fn the_disk_count_is_the_number_of_disk_elements() {
    let f = dropped();
    let bare = xml::disks(&f, &Options::default());
    assert_eq!(bare.disks, 2);
    let wrapped = xml::disks(
        &f,
        &Options {
            wrap: true,
            ..Options::default()
        },
    );
    assert_eq!(wrapped.disks, 2);
    let populated = xml::populate(DOMAIN, &f, &Options::default()).unwrap();
    assert_eq!(populated.disks, 2);
    assert_eq!(
        xml::populate(DOMAIN, &forest(vec![]), &Options::default())
            .unwrap()
            .disks,
        2
    );
    assert_eq!(xml::disks(&forest(vec![]), &Options::default()).disks, 0);
    if let (Some(w), Some(p)) = (count(&wrapped.xml), count(&populated.xml)) {
        assert_eq!(w, wrapped.disks);
        assert_eq!(p, populated.disks);
        assert_eq!(
            count(&format!("<disks>{}</disks>", bare.xml)),
            Some(bare.disks)
        );
    }
}

#[test]
fn relative_names_are_said_as_written() {
    let f = dropped();
    // No domain, no base directory: written relative.
    let out = xml::disks(&f, &Options::default());
    let rel = |image: &str| WrittenPath {
        image: image.into(),
        base_dir: None,
        guessed: false,
    };
    assert_eq!(
        out.paths,
        vec![
            rel("vm/base.qcow2"),
            rel("vm/top.qcow2"),
            rel("other.qcow2")
        ]
    );
    if let Some(files) = xpath(
        &format!("<disks>{}</disks>", out.xml),
        "string(//disk[1]/backingStore/source/@file)",
    ) {
        assert_eq!(files, "vm/base.qcow2");
    }
    // A base directory given: made absolute with it, no guess.
    let opts = Options {
        base_dir: Some("/var/lib/libvirt/images".into()),
        ..Options::default()
    };
    let out = xml::disks(&f, &opts);
    assert!(
        out.paths
            .iter()
            .all(|p| p.base_dir.as_deref() == Some("/var/lib/libvirt/images") && !p.guessed),
        "{:?}",
        out.paths
    );
    // A domain: the layer is made absolute with the directory of the disk's
    // source, a guess; the top is the domain's, not written.
    let out = xml::populate(DOMAIN, &f, &Options::default()).unwrap();
    assert_eq!(
        out.paths,
        vec![WrittenPath {
            image: "vm/base.qcow2".into(),
            base_dir: Some("/srv/images".into()),
            guessed: true
        }]
    );
    if let Some(file) = xpath(&out.xml, "string(//disk[1]/backingStore/source/@file)") {
        assert_eq!(file, "/srv/images/vm/base.qcow2");
    }
    // Absolute names: nothing to say.
    assert!(xml::disks(&three_layer_forest(), &Options::default())
        .paths
        .is_empty());
}

#[test]
fn several_bare_disks_come_in_one_domain_that_edits_apply_to() {
    let f = dropped();
    let opts = Options {
        wrap: true,
        base_dir: Some("/i".into()),
        ..Options::default()
    };
    let out = xml::disks(&f, &opts);
    assert!(out.xml.starts_with("<domain"), "{}", out.xml);
    assert_libvirt_valid(&out.xml, "bare disks in a domain");
    // The disks are the bare ones, each line four blanks deeper.
    let bare = xml::disks(
        &f,
        &Options {
            base_dir: Some("/i".into()),
            ..Options::default()
        },
    );
    for line in bare.xml.lines() {
        assert!(out.xml.contains(&format!("\n    {line}\n")), "{line}");
    }
    let desc = xml::describe(&out.xml).unwrap();
    assert_eq!(desc.len(), 2);
    let next = edit::remove_layer(&out.xml, 0, 1).unwrap();
    assert!(!next.contains("/i/vm/base.qcow2"));
    assert_libvirt_valid(&next, "an edit of the wrapped disks");
    // One disk stays bare.
    let one = forest(vec![img("/i/a.qcow2", Format::Qcow2, None)]);
    let out = xml::disks(
        &one,
        &Options {
            wrap: true,
            ..Options::default()
        },
    );
    assert!(out.xml.starts_with("<disk "), "{}", out.xml);
}

#[test]
fn describe_gives_the_main_path() {
    // A flat chain with a sibling (the first child is the one libvirt
    // follows) and a terminator.
    let doc = "<disk type='file' device='disk'>
  <source file='/i/top'/>
  <backingStore type='file'>
    <source file='/i/mid'/>
    <backingStore type='file'>
      <source file='/i/base'/>
      <backingStore/>
    </backingStore>
    <backingStore type='file'>
      <source file='/i/other'/>
    </backingStore>
  </backingStore>
  <target dev='vda'/>
</disk>
";
    let d = &xml::describe(doc).unwrap()[0];
    let files: Vec<&str> = d
        .main
        .iter()
        .map(|&i| {
            d.layers[i]
                .source
                .as_ref()
                .unwrap()
                .path
                .as_deref()
                .unwrap()
        })
        .collect();
    assert_eq!(files, ["/i/mid", "/i/base"]);
    assert!(d.terminated);
    assert_eq!(d.layers.len(), 4);
    // The same in the flat layout.
    let flat = xml::convert(
        doc,
        &Options {
            layout: xml::Layout::Flat,
            ..Options::default()
        },
    )
    .unwrap()
    .xml;
    let f = &xml::describe(&flat).unwrap()[0];
    assert_eq!(
        f.main.iter().map(|&i| &f.layers[i]).collect::<Vec<_>>(),
        d.main.iter().map(|&i| &d.layers[i]).collect::<Vec<_>>()
    );
}

/// Which disk each image is the source of, by the rule populate matches with:
/// the same path, else the only image with that basename; an image whose
/// basename two images share is matched by its full path only.
#[test]
fn targets_name_the_disk_each_image_is_the_source_of() {
    let f = forest(vec![
        img("vm/top.qcow2", Format::Qcow2, Some(("base.qcow2", "qcow2"))),
        img("vm/base.qcow2", Format::Qcow2, None),
        img("/srv/a/data.qcow2", Format::Qcow2, None),
        img("/srv/b/data.qcow2", Format::Qcow2, None),
        img("/srv/c/logs.qcow2", Format::Qcow2, None),
    ]);
    let doc = "<domain type='kvm'>
  <name>d</name>
  <memory unit='KiB'>524288</memory>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/b/data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/elsewhere/data.qcow2'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/logs.qcow2'/>
      <alias name='ua-logs'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd' name='top.qcow2'>
        <host name='example.org' port='10809'/>
      </source>
      <target dev='vde' bus='virtio'/>
    </disk>
  </devices>
</domain>
";
    type Rewrite =
        fn(&str, &backing_chain::chain::Forest, &Options) -> Result<xml::Output, xml::XmlError>;
    for (mode, rewrite) in [
        ("populate", xml::populate as Rewrite),
        ("validate", xml::validate),
    ] {
        let out = rewrite(doc, &f, &Options::default()).unwrap();
        let got: Vec<(&str, &str)> = out
            .targets
            .iter()
            .map(|t| (t.disk.as_str(), f.images[t.image].filename.as_str()))
            .collect();
        // vdc: two images are named data.qcow2, neither at /elsewhere: none.
        // The network disk's name is no local path: none.
        assert_eq!(
            got,
            [
                ("vda", "vm/top.qcow2"),
                ("vdb", "/srv/b/data.qcow2"),
                ("ua-logs", "/srv/c/logs.qcow2"),
            ],
            "{mode:?}"
        );
    }
}

/// Which image each layer of a stated chain is (`xml::images_of`), by the
/// rule populate matches a disk's source with; and the same answer as
/// `targets` for the sources. A network layer, a path no image has and a
/// basename two images share are no image; the terminator is no layer.
#[test]
fn images_of_names_the_image_of_each_stated_layer() {
    let f = forest(vec![
        img("vm/top.qcow2", Format::Qcow2, Some(("base.qcow2", "qcow2"))),
        img("vm/base.qcow2", Format::Qcow2, None),
        img("/srv/a/data.qcow2", Format::Qcow2, None),
        img("/srv/b/data.qcow2", Format::Qcow2, None),
        img("other.qcow2", Format::Qcow2, None),
    ]);
    let doc = "<domain type='kvm'>
  <name>d</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/other.qcow2'/>
        <backingStore type='network'>
          <format type='raw'/>
          <source protocol='nbd' name='base.qcow2'>
            <host name='example.org' port='10809'/>
          </source>
          <backingStore type='file'>
            <format type='qcow2'/>
            <source file='/elsewhere/data.qcow2'/>
            <backingStore type='file'>
              <format type='qcow2'/>
              <source file='/srv/b/data.qcow2'/>
              <backingStore type='file'>
                <format type='qcow2'/>
                <source file='/nowhere/gone.qcow2'/>
                <backingStore/>
              </backingStore>
            </backingStore>
          </backingStore>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/unknown.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>
";
    let name = |i: Option<usize>| i.map(|i| f.images[i].filename.as_str());
    let got = xml::images_of(doc, &f).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(name(got[0].source), Some("vm/top.qcow2"));
    let layers: Vec<Option<&str>> = got[0].layers.iter().map(|&i| name(i)).collect();
    assert_eq!(
        layers,
        [
            Some("other.qcow2"),
            None,
            None,
            Some("/srv/b/data.qcow2"),
            None
        ]
    );
    assert!(got[0].stated);
    assert_eq!((got[1].source, got[1].stated), (None, false));
    assert!(got[1].layers.is_empty());
    // A terminator alone states a chain (of no layer).
    let ended = doc.replacen(
        "<target dev='vdb'",
        "<backingStore/>\n      <target dev='vdb'",
        1,
    );
    let e = &xml::images_of(&ended, &f).unwrap()[1];
    assert!(e.stated && e.layers.is_empty());
    // The sources agree with what populate says (`targets`).
    let out = xml::populate(doc, &f, &Options::default()).unwrap();
    assert_eq!(out.targets.len(), 1);
    assert_eq!(Some(out.targets[0].image), got[0].source);
    // A malformed document is an error, not a panic.
    assert!(xml::images_of("<domain><devices><disk>", &f).is_err());
}
