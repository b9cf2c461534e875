//! Round trips of hand-written XML in the shapes libvirt's own test inputs
//! have (`tests/qemuxmlconfdata`, `tests/domainschemadata`, …): a
//! `<backingStore/>` terminator before its sibling `<format>`, a
//! `<backingStore>` that is not the last of its siblings, chains indented
//! unlike libvirt's formatter, one-line chains, `<backingStore></backingStore>`.
//! The documents are our own text in those shapes. nested → flat → nested
//! gives the bytes back, and flat → nested → flat our flat form; every
//! input is checked against libvirt's schema with xmllint first, and
//! libvirt's test driver reads the nested form back as the same chain.

mod common;

use backing_chain::xml::{self, Layout, Options};
use common::*;

fn to(doc: &str, layout: Layout) -> String {
    xml::convert(
        doc,
        &Options {
            layout,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{doc}"))
    .xml
}

fn domain(disks: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>hand</name>\n  <memory unit='KiB'>524288</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n{disks}  </devices>\n</domain>\n"
    )
}

/// nested → flat → nested is the identity, flat → nested → flat too, and
/// the flat form has every layer under the disk.
fn round_trips(name: &str, doc: &str) {
    assert_libvirt_valid(doc, name);
    let flat = to(doc, Layout::Flat);
    assert_ne!(flat, doc, "{name}: nothing converted");
    let back = to(&flat, Layout::Nested);
    assert_eq!(
        back, doc,
        "{name}: nested → flat → nested\n--- flat:\n{flat}"
    );
    assert_eq!(
        to(&back, Layout::Flat),
        flat,
        "{name}: flat → nested → flat"
    );
    if let Some(n) = xpath(&flat, "count(//backingStore//backingStore)") {
        assert_eq!(n.trim(), "0", "{name}: flat has nested entries\n{flat}");
    }
    // The same elements, attributes and text, the flat aliases aside.
    let no_alias: Vec<String> = {
        let c = canon(&flat);
        let mut out = Vec::new();
        let mut skip = false;
        for l in c {
            if l.starts_with("<alias") && l.contains("parent=") {
                skip = true;
                continue;
            }
            if skip && l == "</>" {
                skip = false;
                continue;
            }
            out.push(l);
        }
        out
    };
    let mut a = no_alias.clone();
    let mut b = canon(doc);
    a.sort();
    b.sort();
    assert_eq!(a, b, "{name}: elements differ");
}

#[test]
fn terminator_before_its_sibling_format() {
    let doc = domain(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/t.qcow2'/>
      <backingStore type='file' index='1'>
        <backingStore/>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/b.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
    );
    round_trips("terminator first", &doc);
    let flat = to(&doc, Layout::Flat);
    // The terminator says where it was: before the one other child.
    assert!(flat.contains("<alias parent='vda[1]' at='0'/>"), "{flat}");
}

#[test]
fn backing_store_between_format_and_source() {
    let doc = domain(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/top.qcow2'/>
      <backingStore type='file' index='1'>
        <format type='qcow2'/>
        <backingStore type='block' index='2'>
          <source dev='/dev/vg/base'/>
          <backingStore/>
          <format type='raw'/>
        </backingStore>
        <source file='/i/mid.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
    );
    round_trips("backingStore in the middle", &doc);
    let flat = to(&doc, Layout::Flat);
    assert!(
        flat.contains("<alias name='vda[2]' parent='vda[1]' at='1'/>"),
        "{flat}"
    );
    assert!(flat.contains("<alias parent='vda[2]' at='1'/>"), "{flat}");
}

#[test]
fn chains_indented_unlike_libvirt() {
    // Four spaces a level; children at their parent's level; tabs; a
    // one-line chain; a mix of them in one disk.
    let shapes = [
        "    <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='/i/a.qcow2'/>
        <backingStore type='file'>
            <format type='qcow2'/>
            <source file='/i/b.qcow2'/>
            <backingStore type='file'>
                <format type='raw'/>
                <source file='/i/c.img'/>
                <backingStore/>
            </backingStore>
        </backingStore>
        <target dev='vda' bus='virtio'/>
    </disk>
",
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/a.qcow2'/>
      <backingStore type='file'>
      <format type='qcow2'/>
      <source file='/i/b.qcow2'/>
      <backingStore type='file'>
      <format type='raw'/>
      <source file='/i/c.img'/>
      <backingStore/>
      </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
        "\t<disk type='file' device='disk'>
\t\t<driver name='qemu' type='qcow2'/>
\t\t<source file='/i/a.qcow2'/>
\t\t<backingStore type='file'>
\t\t\t<format type='qcow2'/>
\t\t\t<source file='/i/b.qcow2'/>
\t\t\t<backingStore/>
\t\t</backingStore>
\t\t<target dev='vda' bus='virtio'/>
\t</disk>
",
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/a.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/i/b.qcow2'/><backingStore type='file'><format type='raw'/><source file='/i/c.img'/><backingStore></backingStore></backingStore></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/a.qcow2'/>
      <backingStore type='file'>
         <format type='qcow2'/>
         <source file='/i/b.qcow2'>
           <seclabel model='dac' relabel='no'/>
         </source>
         <backingStore type='file'><format type='raw'/><source file='/i/c.img'/></backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
    ];
    for (k, disk) in shapes.iter().enumerate() {
        round_trips(&format!("indentation {k}"), &domain(disk));
    }
}

#[test]
fn empty_and_whitespace_only_elements_keep_their_form() {
    let doc = domain(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/a.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/i/b.qcow2'/>
        <backingStore>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/x.qcow2'/>
      <backingStore></backingStore>
      <target dev='vdb' bus='virtio'/>
    </disk>
",
    );
    round_trips("empty forms", &doc);
}

#[test]
fn comments_and_odd_children_stay_where_they_were() {
    let doc = domain(
        "    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/a.qcow2'/>
      <backingStore type='file' index='3'>
        <!-- the base, moved in 2024 -->
        <format type='qcow2'/>
        <backingStore type='file' index='4'>
          <format type='raw'/>
          <source file='/i/c.img'/>
        </backingStore>
        <!-- after the chain -->
        <source file='/i/b.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
",
    );
    round_trips("comments", &doc);
}

/// Libvirt's test driver reads a hand-written chain and prints it in its
/// own formatting: that output round-trips too, and it states the same
/// chain (elements, attributes, order of layers) as the hand-written input
/// made nested by us.
#[test]
fn libvirt_reads_the_hand_written_shapes_as_we_do() {
    if !tool("virsh") {
        skip("virsh is not installed");
        return;
    }
    let doc = "<domain type='test'>
  <name>handwritten</name>
  <memory unit='KiB'>1024</memory>
  <os>
    <type>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/top.qcow2'/>
      <backingStore type='file'>
        <backingStore type='file'>
            <backingStore/>
            <source file='/i/base.img'/>
            <format type='raw'/>
        </backingStore>
        <format type='qcow2'/>
        <source file='/i/mid.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
";
    let tmp = tempfile::tempdir().unwrap();
    let theirs = virsh_define_dump(tmp.path(), doc, "handwritten");
    let theirs_disk = &disk_elements(&theirs)[0];
    // Ours, through flat and back: the input's bytes.
    let back = to(&to(doc, Layout::Flat), Layout::Nested);
    assert_eq!(back, doc);
    // libvirt's reading of our round-tripped document is its reading of
    // the original.
    let again = virsh_define_dump(
        tmp.path(),
        &back.replace("handwritten", "handwritten2"),
        "handwritten2",
    );
    assert_eq!(&disk_elements(&again)[0], theirs_disk);
    // And libvirt's formatting round-trips byte for byte.
    let theirs_back = to(&to(&theirs, Layout::Flat), Layout::Nested);
    assert_eq!(theirs_back, theirs);
    // The layers in the order libvirt lists them.
    let files: Vec<&str> = theirs_disk
        .match_indices("<source file='")
        .map(|(i, _)| &theirs_disk[i + 14..i + 14 + theirs_disk[i + 14..].find('\'').unwrap()])
        .collect();
    assert_eq!(files, ["/i/top.qcow2", "/i/mid.qcow2", "/i/base.img"]);
}

/// Random chains in the hand-written shapes: the child `<backingStore>` at
/// any place among its siblings (deeper than they are, after blank
/// lines), terminators
/// with or without `/>`, any indentation unit (none, spaces, tabs),
/// children indented at their parent's level, comments. nested → flat → nested gives the bytes back.
#[test]
fn generated_hand_written_shapes_round_trip() {
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }
    struct Style {
        unit: &'static str,
        nl: &'static str,
    }
    fn layer(r: &mut Lcg, st: &Style, pad: &str, depth: usize, out: &mut String) {
        let inner = if r.next(6) == 0 {
            pad.to_string() // children at the parent's level
        } else {
            format!("{pad}{}", st.unit)
        };
        let nl = st.nl;
        let mut kids: Vec<String> = vec![
            "<format type='qcow2'/>".to_string(),
            format!("<source file='/i/l{depth}.qcow2'/>"),
        ];
        if r.next(4) == 0 {
            kids.push(format!("<!-- note {depth} -->"));
        }
        // Sometimes indented deeper than its siblings.
        let deeper = if !nl.is_empty() && r.next(5) == 0 {
            "   "
        } else {
            ""
        };
        let kid_pad = format!("{inner}{deeper}");
        // Sometimes after a blank line.
        let kid_nl = if !nl.is_empty() && r.next(6) == 0 {
            "\n\n"
        } else {
            nl
        };
        // The child: another layer, a terminator, or none (open end).
        let child = match (depth > 5, r.next(4)) {
            (true, _) | (_, 0) => None,
            (_, 1) => Some(if r.next(2) == 0 {
                "<backingStore/>".to_string()
            } else {
                "<backingStore></backingStore>".to_string()
            }),
            _ => {
                let mut s = String::new();
                layer(r, st, &kid_pad, depth + 1, &mut s);
                Some(s)
            }
        };
        let at = r.next(kids.len() as u64 + 1) as usize;
        out.push_str("<backingStore type='file'>");
        for (k, kid) in kids.iter().enumerate() {
            if k == at {
                if let Some(c) = &child {
                    out.push_str(&format!("{kid_nl}{kid_pad}{c}"));
                }
            }
            out.push_str(&format!("{nl}{inner}{kid}"));
        }
        if at == kids.len() {
            if let Some(c) = &child {
                out.push_str(&format!("{kid_nl}{kid_pad}{c}"));
            }
        }
        out.push_str(&format!("{nl}{pad}</backingStore>"));
    }
    let styles = [
        Style {
            unit: "  ",
            nl: "\n",
        },
        Style {
            unit: "    ",
            nl: "\n",
        },
        Style {
            unit: "\t",
            nl: "\n",
        },
        Style { unit: "", nl: "" },
    ];
    let mut r = Lcg(0x4a4d);
    for case in 0..400 {
        let st = &styles[r.next(styles.len() as u64) as usize];
        let pad = "      ";
        let mut chain = String::new();
        layer(&mut r, st, pad, 1, &mut chain);
        let doc = domain(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='/i/top.qcow2'/>\n{pad}{chain}\n      <target dev='vda' bus='virtio'/>\n    </disk>\n"
        ));
        let flat = to(&doc, Layout::Flat);
        let back = to(&flat, Layout::Nested);
        assert_eq!(
            back, doc,
            "case {case}: nested → flat → nested\n--- flat:\n{flat}"
        );
        assert_eq!(
            to(&back, Layout::Flat),
            flat,
            "case {case}: flat → nested → flat"
        );
        if case < 8 {
            assert_libvirt_valid(&doc, &format!("generated case {case}"));
        }
    }
}

/// The `roundtrip` fuzz target's property over its seeds (regressions
/// included): once through our writer, both round trips give the same
/// bytes.
#[test]
fn fuzz_seeds_keep_the_round_trip_property() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/roundtrip");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        let Ok(doc) = std::fs::read_to_string(&p) else {
            continue;
        };
        let conv = |d: &str, layout| {
            xml::convert(
                d,
                &Options {
                    layout,
                    ..Default::default()
                },
            )
            .ok()
            .map(|o| o.xml)
        };
        let Some(flat0) = conv(&doc, Layout::Flat) else {
            continue;
        };
        let n1 = conv(&flat0, Layout::Nested).expect("our flat converts");
        let f1 = conv(&n1, Layout::Flat).expect("our nested converts");
        let n2 = conv(&f1, Layout::Nested).expect("our flat converts");
        assert_eq!(n2, n1, "{}", p.display());
        assert_eq!(conv(&n2, Layout::Flat).unwrap(), f1, "{}", p.display());
        n += 1;
    }
    assert!(n >= 10, "{n} seeds");
}
