//! Helpers shared by the integration tests: fixtures, fake images, external
//! tools (qemu-img, xmllint with libvirt's schemas).
#![allow(dead_code)]

pub mod fuzz_input;
pub mod libvirtd;

use std::path::{Path, PathBuf};
use std::process::Command;

use backing_chain::chain::{self, Forest, Image, Probed};
use backing_chain::image::{Format, ImageInfo};

pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/xml")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An image as a probe would describe it.
pub fn img(name: &str, fmt: Format, backing: Option<(&str, &str)>) -> Image {
    let mut info = ImageInfo::new(fmt);
    if let Some((b, f)) = backing {
        info.backing_filename = Some(b.to_string());
        info.backing_filename_format = Some(f.to_string());
    }
    Image {
        filename: name.to_string(),
        probe: Probed::Info(Box::new(info)),
        bytes_read: 0,
    }
}

pub fn forest(images: Vec<Image>) -> Forest {
    chain::build(images)
}

/// top.qcow2 → mid.qcow2 → base.qcow2 in /var/lib/libvirt/images.
pub fn three_layer_forest() -> Forest {
    let d = "/var/lib/libvirt/images";
    forest(vec![
        img(
            &format!("{d}/top.qcow2"),
            Format::Qcow2,
            Some((&format!("{d}/mid.qcow2"), "qcow2")),
        ),
        img(
            &format!("{d}/mid.qcow2"),
            Format::Qcow2,
            Some((&format!("{d}/base.qcow2"), "qcow2")),
        ),
        img(&format!("{d}/base.qcow2"), Format::Qcow2, None),
    ])
}

/// A test cannot run its oracle here: say so visibly — or fail, when
/// `BACKING_CHAIN_REQUIRE_ORACLES` is set (`.ci/test` sets it, so CI never
/// passes a test that did not run).
pub fn skip(why: &str) {
    if std::env::var_os("BACKING_CHAIN_REQUIRE_ORACLES").is_some() {
        panic!("{why} (BACKING_CHAIN_REQUIRE_ORACLES is set: every oracle must run)");
    }
    eprintln!("skipped: {why}");
}

pub fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// libvirt's schema directory: CI's unpacked Debian libvirt0 first, then the
/// system's.
pub fn schema_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/libvirt-schemas");
    let cands = [
        root.clone(),
        root.join("usr/share/libvirt/schemas"),
        PathBuf::from("/usr/share/libvirt/schemas"),
    ];
    cands.into_iter().find(|d| d.join("domain.rng").is_file())
}

/// Validate `xml` against libvirt's `rng` (e.g. "domain.rng"). `Ok(false)`
/// when xmllint or the schemas are absent (a "skipped" line is printed).
pub fn relaxng(xml: &str, rng: &str, what: &str) -> Result<bool, String> {
    let Some(dir) = schema_dir() else {
        skip(&format!("{what}: libvirt schemas not found in target/libvirt-schemas or /usr/share/libvirt/schemas"));
        return Ok(false);
    };
    if !tool("xmllint") {
        skip(&format!("{what}: xmllint is not installed (libxml2-utils)"));
        return Ok(false);
    }
    let tmp = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(tmp.path(), xml).map_err(|e| e.to_string())?;
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(dir.join(rng))
        .arg(tmp.path())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "{what} is not valid against {rng}:\n{}\n---\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `xmllint --xpath EXPR` over `xml`; `None` when xmllint is absent.
pub fn xpath(xml: &str, expr: &str) -> Option<String> {
    if !tool("xmllint") {
        skip(&format!("xpath {expr}: xmllint is not installed"));
        return None;
    }
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--xpath")
        .arg(expr)
        .arg(tmp.path())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

/// A canonical, independent view of a document's elements: one line per
/// start/end/text/comment/PI/CDATA event, whitespace-only text dropped,
/// attributes in written order with unescaped values.
pub fn canon(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event().expect("well-formed") {
            Event::Start(e) | Event::Empty(e) => {
                let mut s = format!("<{}", String::from_utf8_lossy(e.name().as_ref()));
                for a in e.attributes() {
                    let a = a.unwrap();
                    s.push_str(&format!(
                        " {}={:?}",
                        String::from_utf8_lossy(a.key.as_ref()),
                        a.unescape_value().unwrap()
                    ));
                }
                out.push(s);
                // Empty elements close at once.
                if xml.as_bytes()[r.buffer_position() as usize - 2] == b'/' {
                    out.push("</>".into());
                }
            }
            Event::End(_) => out.push("</>".into()),
            Event::Text(t) => {
                let t = t.unescape().unwrap();
                if !t.trim().is_empty() {
                    out.push(format!("text {t:?}"));
                }
            }
            Event::CData(c) => out.push(format!("cdata {:?}", String::from_utf8_lossy(&c))),
            Event::Comment(c) => out.push(format!("comment {:?}", String::from_utf8_lossy(&c))),
            Event::PI(p) => out.push(format!("pi {:?}", String::from_utf8_lossy(&p))),
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// Every `<disk …>…</disk>` in `xml`, by plain text search.
pub fn disk_elements(xml: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut at = 0;
    while let Some(s) = xml[at..].find("<disk ") {
        let s = at + s;
        let e = s + xml[s..].find("</disk>").expect("closed disk") + "</disk>".len();
        v.push(xml[s..e].to_string());
        at = e;
    }
    v
}

/// `qemu-img ARGS` run in `dir`; fails the test (with qemu-img's stderr)
/// when it fails. Returns what it printed.
pub fn qemu_img(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("qemu-img")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("qemu-img prints UTF-8")
}

/// Is qemu-img here? Prints a visible "skipped" line when not.
pub fn have_qemu_img() -> bool {
    let ok = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("qemu-img not found");
    }
    ok
}

/// Assert `xml` passes libvirt's domain schema (skipped, visibly, without
/// xmllint or the schemas).
pub fn assert_libvirt_valid(xml: &str, what: &str) {
    match relaxng(xml, "domain.rng", what) {
        Ok(true) => eprintln!("schema ok: {what}"),
        Ok(false) => {}
        Err(e) => panic!("{e}"),
    }
}

/// A virsh to run: the system's, or one unpacked with its libraries.
pub struct Virsh {
    pub bin: PathBuf,
    /// `LD_LIBRARY_PATH` for an unpacked libvirt.
    pub lib: Option<PathBuf>,
    /// Its RelaxNG schemas.
    pub schemas: PathBuf,
}

/// libvirt ≥ 10.10 (it knows `<dataStore>`): the system's `virsh` when it is
/// that new (`.ci/setup` installs libvirt 11.3 for the daemon tests; its
/// schemas are copied into `target/libvirt-schemas`), else one unpacked from
/// Debian's bookworm-backports `libvirt0`, `libvirt-common` and
/// `libvirt-clients` into `target/libvirt-11` (`dpkg-deb -x`; no daemon).
/// `None`, with a visible "skipped", when neither is there.
pub fn libvirt11(what: &str) -> Option<Virsh> {
    let new_enough = |out: &[u8]| {
        let v = String::from_utf8_lossy(out);
        let mut it = v.trim().split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        (maj, min) >= (10, 10)
    };
    if let (Ok(o), Some(schemas)) = (
        Command::new("virsh").arg("--version").output(),
        schema_dir(),
    ) {
        if o.status.success() && new_enough(&o.stdout) && schemas.join("domain.rng").is_file() {
            return Some(Virsh {
                bin: PathBuf::from("virsh"),
                lib: None,
                schemas,
            });
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/libvirt-11");
    let v = Virsh {
        bin: root.join("usr/bin/virsh"),
        lib: Some(root.join("usr/lib/x86_64-linux-gnu")),
        schemas: root.join("usr/share/libvirt/schemas"),
    };
    let runs = v.bin.is_file()
        && v.schemas.join("domain.rng").is_file()
        && Command::new(&v.bin)
            .arg("--version")
            .env("LD_LIBRARY_PATH", v.lib.as_ref().unwrap())
            .output()
            .is_ok_and(|o| o.status.success() && new_enough(&o.stdout));
    if !runs {
        skip(&format!(
            "{what}: no libvirt ≥ 10.10: neither the system's virsh nor one unpacked in target/libvirt-11"
        ));
        return None;
    }
    Some(v)
}

/// `define` then `dumpxml` of `xml` (a domain named `name`) in `virsh -c
/// test:///default` (libvirt's in-process test driver); the domain printed.
pub fn virsh_define_dump_with(v: &Virsh, dir: &Path, xml: &str, name: &str) -> String {
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    let script = format!("define {}\ndumpxml {name}\n", file.display());
    let mut cmd = Command::new(&v.bin);
    if let Some(l) = &v.lib {
        cmd.env("LD_LIBRARY_PATH", l);
    }
    let out = cmd
        .args(["-q", "-c", "test:///default"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("virsh runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("<domain"),
        "virsh did not print the domain:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = text.find("<domain").unwrap();
    let e = text.rfind("</domain>").unwrap() + "</domain>".len();
    format!("{}\n", &text[s..e])
}

/// A test-driver domain named `name` around `disks` (indented for `<devices>`).
pub fn test_domain(name: &str, disks: &str) -> String {
    format!(
        "<domain type='test'>
  <name>{name}</name>
  <memory unit='KiB'>1024</memory>
  <os>
    <type>hvm</type>
  </os>
  <devices>
{disks}  </devices>
</domain>
"
    )
}

/// [`virsh_define_dump_with`] the system's virsh.
pub fn virsh_define_dump(dir: &Path, xml: &str, name: &str) -> String {
    let v = Virsh {
        bin: PathBuf::from("virsh"),
        lib: None,
        schemas: schema_dir().unwrap_or_default(),
    };
    virsh_define_dump_with(&v, dir, xml, name)
}

/// `xmllint --relaxng` against `rng` in the schema directory `dir`.
pub fn relaxng_in(dir: &Path, xml: &str, rng: &str, what: &str) -> Result<(), String> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(tmp.path(), xml).map_err(|e| e.to_string())?;
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(dir.join(rng))
        .arg(tmp.path())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} is not valid against {}:\n{}\n---\n{xml}",
            dir.join(rng).display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Turn a qcow2's backing-format header extension (type 0xE2792ACA) into the
/// end of the extensions: qemu-img 10 refuses to write a backing name
/// without a format, and qemu-img, libvirt and we then see none recorded.
pub fn forget_backing_format(img: &Path) {
    let mut b = std::fs::read(img).unwrap();
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let mut at = if be32(&b, 4) >= 3 {
        be32(&b, 100) as usize
    } else {
        72
    };
    loop {
        let (ty, len) = (be32(&b, at), be32(&b, at + 4) as usize);
        assert_ne!(ty, 0, "{}: no backing-format extension", img.display());
        if ty == 0xE279_2ACA {
            b[at..at + 4].fill(0);
            break;
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    std::fs::write(img, b).unwrap();
}

/// `v` as the wasm answers it (`backing_chain::json_out`, issue 18),
/// required to be what `serde_json::to_string` writes.
pub fn same_json<T: serde::Serialize + ?Sized>(v: &T, what: &str) {
    let ours = backing_chain::json_out::to_string(v)
        .unwrap_or_else(|e| panic!("{what}: json_out refused it: {e}"));
    let oracle = serde_json::to_string(v).unwrap_or_else(|e| panic!("{what}: serde_json: {e}"));
    assert!(
        ours == oracle,
        "{what}: json_out wrote\n{ours}\nserde_json wrote\n{oracle}"
    );
}
