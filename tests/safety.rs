//! The safety inspector (issue 13 §3a, §4): facts kept when a backing name
//! is too long; external data files, VMDK extents, stream-optimized
//! footers, second formats (ISO, MBR, GPT behind a header), partition
//! tables of raw disks — and no false alarm on any image qemu-img makes.
//!
//! Every image is generated here (qemu-img, or bytes written by hand after
//! the specs); where qemu-img has an opinion it is the oracle.

mod common;
use common::{have_qemu_img, qemu_img};

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use backing_chain::diag::{Code, Severity};
use backing_chain::image::{probe_with, Format, ImageInfo, ProbeOrIo};
use serde_json::Value;

/// The codes this inspector adds; none may appear on an ordinary image.
const SAFETY_CODES: [Code; 9] = [
    Code::BackingNameTooLong,
    Code::ExternalDataFile,
    Code::VmdkExtentPath,
    Code::VmdkExtentProtocol,
    Code::VmdkFooterMismatch,
    Code::VmdkEmbeddedExtents,
    Code::MultipleFormats,
    Code::PartitionTable,
    Code::PartitionTableInvalid,
];

/// `qemu-img info --output=json [-f fmt] file`: Ok(JSON) or Err(stderr).
fn qemu_info(dir: &Path, file: &str, fmt: Option<&str>) -> Result<Value, String> {
    let mut args = vec!["info", "--output=json"];
    if let Some(f) = fmt {
        args.extend(["-f", f]);
    }
    args.push(file);
    let out = Command::new("qemu-img")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("qemu-img runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn read_at(f: &File, off: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], off + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// Probe a file: (facts, bytes read).
fn probe(path: &Path) -> (ImageInfo, u64) {
    let f = File::open(path).expect("open");
    let len = f.metadata().expect("metadata").len();
    match probe_with(Some(len), |o, l| read_at(&f, o, l)) {
        Ok(x) => x,
        Err(ProbeOrIo::Probe(e)) => panic!("{}: {e}", path.display()),
        Err(ProbeOrIo::Io(e)) => panic!("{}: {e}", path.display()),
    }
}

fn diag(info: &ImageInfo, code: Code) -> Option<&backing_chain::diag::Diagnostic> {
    info.diagnostics.iter().find(|d| d.code == code)
}

fn codes(info: &ImageInfo) -> Vec<Code> {
    info.diagnostics.iter().map(|d| d.code).collect()
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------
// §3a: a backing name longer than qemu allows keeps the facts.
// ---------------------------------------------------------------------------

/// qemu-img refuses to write a 1024+ byte backing name; patch one into a
/// qcow2 (v3) and a qcow (v1) it made. qemu-img info then refuses the image
/// ("Backing file name too long"); we report the format and size qemu-img
/// gave before the patch, the whole name, and an error diagnostic.
#[test]
fn too_long_backing_name_keeps_format_size_and_name() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let name = format!("{}/base.qcow2", "d".repeat(1990));
    assert!(name.len() > 1023);
    for (fmt, file) in [("qcow2", "long.qcow2"), ("qcow", "long.qcow")] {
        qemu_img(d.path(), &["create", "-q", "-f", fmt, file, "64M"]);
        let before = qemu_info(d.path(), file, None).expect("qemu-img opens the fresh image");
        let path = d.path().join(file);
        // The name goes at the end of the file (qcow2: 4 KiB into cluster 0
        // of 64 KiB, which qemu-img leaves empty).
        let at: u64 = if fmt == "qcow2" {
            4096
        } else {
            std::fs::metadata(&path).unwrap().len()
        };
        patch(&path, at, name.as_bytes());
        patch(&path, 8, &at.to_be_bytes());
        patch(&path, 16, &(name.len() as u32).to_be_bytes());
        let err = qemu_info(d.path(), file, None).expect_err("qemu-img refuses it");
        assert!(err.contains("Backing file name too long"), "{fmt}: {err}");

        let (info, read) = probe(&path);
        assert_eq!(info.format.name(), before["format"], "{fmt}");
        assert_eq!(
            info.virtual_size,
            before["virtual-size"].as_u64(),
            "{fmt}: size"
        );
        assert_eq!(
            info.backing_filename.as_deref(),
            Some(name.as_str()),
            "{fmt}"
        );
        let dg = diag(&info, Code::BackingNameTooLong).expect("flagged");
        assert_eq!(dg.severity, Severity::Error);
        assert!(
            dg.message.contains(&name.len().to_string()),
            "{}",
            dg.message
        );
        assert_eq!(
            serde_json::json!(info.header)["backing-name-length"],
            name.len()
        );
        assert!(read <= 4096 + 4096 + 7, "{fmt}: read {read}");
    }
}

// ---------------------------------------------------------------------------
// §4.1: qcow2 external data file.
// ---------------------------------------------------------------------------

/// Replace the data file name in a qcow2's header extensions (rewriting the
/// extension area, which qemu-img leaves room for in cluster 0).
fn set_data_file(path: &Path, name: &str) {
    let b = std::fs::read(path).unwrap();
    let hl = be32(&b, 100) as usize;
    let mut off = hl;
    let mut out = Vec::new();
    loop {
        let (t, l) = (be32(&b, off), be32(&b, off + 4) as usize);
        if t == 0 {
            break;
        }
        let data: &[u8] = if t == 0x4441_5441 {
            name.as_bytes()
        } else {
            &b[off + 8..off + 8 + l]
        };
        out.extend((t).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
        off += 8 + l.div_ceil(8) * 8;
    }
    out.extend([0u8; 8]);
    assert!(hl + out.len() < 65536);
    patch(path, hl as u64, &out);
}

#[test]
fn qcow2_external_data_file_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_img(dir, &["create", "-q", "-f", "qcow2", "plain.qcow2", "1M"]);
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=df.raw",
            "df.qcow2",
            "1M",
        ],
    );
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=dfr.raw,data_file_raw=on",
            "dfr.qcow2",
            "1M",
        ],
    );
    let (plain, _) = probe(&dir.join("plain.qcow2"));
    assert_eq!(plain.data_file(), None);
    assert!(diag(&plain, Code::ExternalDataFile).is_none());

    // (file, name patched in or None, severity expected)
    let cases: [(&str, Option<&str>, Severity); 6] = [
        ("df.qcow2", None, Severity::Warning),
        ("dfr.qcow2", None, Severity::Warning),
        ("etc.qcow2", Some("/etc/hosts"), Severity::Error),
        ("dev.qcow2", Some("/dev/sda"), Severity::Error),
        (
            "json.qcow2",
            Some(r#"json:{"driver":"file","filename":"/etc/hosts"}"#),
            Severity::Error,
        ),
        (
            "nbd.qcow2",
            Some("nbd://localhost:10809/x"),
            Severity::Error,
        ),
    ];
    for (file, name, severity) in cases {
        let path = dir.join(file);
        if let Some(n) = name {
            std::fs::copy(dir.join("df.qcow2"), &path).unwrap();
            set_data_file(&path, n);
        }
        // qemu-img 8+ prints the recorded name without opening it (the
        // CVE-2024-4467 fix): it is the oracle for the name and the raw bit.
        let q = qemu_info(dir, file, None).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (info, _) = probe(&path);
        let (ours, raw) = info.data_file().expect("data file exposed");
        assert_eq!(
            Some(ours),
            q.pointer("/format-specific/data/data-file")
                .and_then(Value::as_str),
            "{file}"
        );
        assert_eq!(
            Some(raw),
            q.pointer("/format-specific/data/data-file-raw")
                .and_then(Value::as_bool),
            "{file}"
        );
        let dg = diag(&info, Code::ExternalDataFile).expect("flagged");
        assert_eq!(dg.severity, severity, "{file}: {}", dg.message);
        assert!(dg.message.contains(ours), "{}", dg.message);
        assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
    }
}

// ---------------------------------------------------------------------------
// §4.2: VMDK extents, URL backing, stream-optimized footer.
// ---------------------------------------------------------------------------

fn flat_descriptor(extent: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\n# Extent description\n{extent}\n"
    )
}

#[test]
fn vmdk_extent_names_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // A flat extent that is /etc/hosts: qemu-img opens it and lists it.
    std::fs::write(
        dir.join("etc.vmdk"),
        flat_descriptor("RW 2 FLAT \"/etc/hosts\" 0"),
    )
    .unwrap();
    let q = qemu_info(dir, "etc.vmdk", None).expect("qemu-img opens /etc/hosts as an extent");
    let (info, _) = probe(&dir.join("etc.vmdk"));
    assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
    let exts = info.vmdk_extents();
    assert_eq!(exts.len(), 1);
    let e = &exts[0];
    assert_eq!(
        (
            e.access.as_str(),
            e.sectors,
            e.kind.as_str(),
            e.file.as_deref(),
            e.offset,
            e.external
        ),
        ("RW", 2, "FLAT", Some("/etc/hosts"), Some(0), true)
    );
    assert_eq!(
        q.pointer("/format-specific/data/extents/0/filename")
            .and_then(Value::as_str),
        Some("/etc/hosts")
    );
    let dg = diag(&info, Code::VmdkExtentPath).expect("flagged");
    assert_eq!(dg.severity, Severity::Error);
    assert!(dg.message.contains("/etc/hosts"));

    // Protocol names (the CVE-2024-4467 class). qemu-img 10 takes an
    // nbd:// extent as a relative file name ("No such file"); a json: one
    // with quotes is not even an extent line to it ("Invalid extent line").
    for (file, extent) in [
        ("nbd.vmdk", "RW 2 FLAT \"nbd://localhost:10809/x\" 0"),
        ("json.vmdk", r#"RW 2 FLAT "json:{driver:file}" 0"#),
        ("http.vmdk", "RW 2 FLAT \"http://example.com/x.raw\" 0"),
    ] {
        std::fs::write(dir.join(file), flat_descriptor(extent)).unwrap();
        let (info, _) = probe(&dir.join(file));
        let dg = diag(&info, Code::VmdkExtentProtocol).unwrap_or_else(|| panic!("{file}"));
        assert_eq!(dg.severity, Severity::Error, "{file}");
        assert!(info.vmdk_extents()[0].external);
    }
    // A sub-directory is a warning; a climb out of the directory an error;
    // a ZERO extent has no file.
    std::fs::write(
        dir.join("sub.vmdk"),
        flat_descriptor("RW 2 FLAT \"sub/x.raw\" 0\nRW 4 FLAT \"../up.raw\" 0\nRW 8 ZERO"),
    )
    .unwrap();
    let (info, _) = probe(&dir.join("sub.vmdk"));
    let sev: Vec<Severity> = info
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::VmdkExtentPath)
        .map(|d| d.severity)
        .collect();
    assert_eq!(sev, vec![Severity::Warning, Severity::Error]);
    let exts = info.vmdk_extents();
    assert_eq!(exts.len(), 3);
    assert_eq!(
        (exts[2].kind.as_str(), exts[2].file.as_deref()),
        ("ZERO", None)
    );
    assert_eq!(info.virtual_size, Some(14 * 512));
}

/// A monolithic sparse VMDK whose header has capacity 0: qemu reads its
/// embedded descriptor as a descriptor file and opens the extents it names
/// — a way to make `qemu-img info` open /etc/hosts from a binary file.
#[test]
fn vmdk_sparse_capacity_zero_opens_its_extents() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_img(dir, &["create", "-q", "-f", "vmdk", "cap0.vmdk", "1G"]);
    let path = dir.join("cap0.vmdk");
    let b = std::fs::read(&path).unwrap();
    let (off, n) = (le64(&b, 28) * 512, le64(&b, 36) * 512);
    let mut text = flat_descriptor("RW 2 FLAT \"/etc/hosts\" 0").into_bytes();
    text.resize(n as usize, 0);
    patch(&path, off, &text);
    patch(&path, 12, &0u64.to_le_bytes());
    let q = qemu_info(dir, "cap0.vmdk", None).expect("qemu-img opens it");
    assert_eq!(
        q.pointer("/format-specific/data/extents/0/filename")
            .and_then(Value::as_str),
        Some("/etc/hosts"),
        "qemu-img opened /etc/hosts: {q}"
    );
    let (info, _) = probe(&path);
    assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
    assert!(diag(&info, Code::VmdkEmbeddedExtents).is_some());
    assert_eq!(
        diag(&info, Code::VmdkExtentPath).map(|d| d.severity),
        Some(Severity::Error)
    );
    assert!(info.vmdk_extents()[0].external);
}

/// A sparse VMDK whose parentFileNameHint is a URL: read like any other,
/// the name kept as written (qemu-img prints it the same).
#[test]
fn vmdk_url_backing_is_read_and_kept() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_img(dir, &["create", "-q", "-f", "vmdk", "base.vmdk", "1G"]);
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "url.vmdk",
        ],
    );
    let path = dir.join("url.vmdk");
    let b = std::fs::read(&path).unwrap();
    let (off, n) = (le64(&b, 28) as usize * 512, le64(&b, 36) as usize * 512);
    let text = String::from_utf8_lossy(&b[off..off + n]);
    let text = text.trim_end_matches('\0');
    let url = "http://example.com/images/base.vmdk";
    let mut new = text
        .replace(
            "parentFileNameHint=\"base.vmdk\"",
            &format!("parentFileNameHint=\"{url}\""),
        )
        .into_bytes();
    assert!(new.len() < n);
    new.resize(n, 0);
    patch(&path, off as u64, &new);
    let q = qemu_info(dir, "url.vmdk", None).expect("qemu-img opens it");
    assert_eq!(q["backing-filename"], url);
    let (info, _) = probe(&path);
    assert_eq!(info.backing_filename.as_deref(), Some(url));
    assert_eq!(info.backing_filename_format.as_deref(), Some("vmdk"));
    assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
    // The extent line names the file itself: not opened, not flagged.
    assert!(!info.vmdk_extents()[0].external);
    for c in SAFETY_CODES {
        assert!(diag(&info, c).is_none(), "{c}: {:?}", codes(&info));
    }
}

/// qemu-img writes stream-optimized VMDKs with the grain directory in the
/// header, no footer. Give one a footer as VMware does (grain directory
/// "at the end", footer marker, the header again, end-of-stream marker):
/// qemu-img reads it and so do we, quietly; break the end-of-stream marker
/// and qemu refuses ("Invalid footer"); make the footer's descriptor differ
/// and qemu reads the footer's while other tools read the header's.
#[test]
fn vmdk_stream_footer_checks_against_qemu_img() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.vmdk",
            "1G",
        ],
    );
    let mut b = std::fs::read(dir.join("s.vmdk")).unwrap();
    assert_ne!(
        le64(&b, 56),
        u64::MAX,
        "qemu-img now writes a footer itself"
    );
    let header = b[..512].to_vec();
    b[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut marker = vec![0u8; 512];
    marker[12..16].copy_from_slice(&3u32.to_le_bytes());
    let variants: [(&str, Vec<u8>, Vec<u8>); 3] = [
        ("good.vmdk", header.clone(), vec![0u8; 512]),
        ("eos.vmdk", header.clone(), {
            let mut e = vec![0u8; 512];
            e[12] = 1;
            e
        }),
        (
            "desc.vmdk",
            {
                let mut h = header.clone();
                h[36..44].copy_from_slice(&1u64.to_le_bytes());
                h
            },
            vec![0u8; 512],
        ),
    ];
    for (file, footer_header, eos) in variants {
        let mut f = b.clone();
        f.extend(&marker);
        f.extend(&footer_header);
        f.extend(&eos);
        std::fs::write(dir.join(file), &f).unwrap();
        let q = qemu_info(dir, file, None);
        let (info, _) = probe(&dir.join(file));
        match file {
            "good.vmdk" => {
                let q = q.expect("qemu-img reads the footer");
                assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
                assert_eq!(
                    serde_json::json!(info.header)["header-offset"],
                    f.len() - 1024
                );
                for c in SAFETY_CODES {
                    assert!(diag(&info, c).is_none(), "{c}: {:?}", codes(&info));
                }
            }
            "eos.vmdk" => {
                assert!(q.expect_err("refused").contains("Invalid footer"));
                let dg = diag(&info, Code::VmdkFooterMismatch).expect("flagged");
                assert!(dg.message.contains("end-of-stream"), "{}", dg.message);
            }
            _ => {
                // qemu-img reads the footer's (shorter) descriptor.
                q.expect("qemu-img reads it");
                let dg = diag(&info, Code::VmdkFooterMismatch).expect("flagged");
                assert!(
                    dg.message.contains("different descriptors"),
                    "{}",
                    dg.message
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// §4.3 and §4.4: second formats, partition tables.
// ---------------------------------------------------------------------------

/// An ISO 9660 image: an empty system area, a primary volume descriptor at
/// 32768 (volume of `blocks` 2048-byte blocks), the terminator.
fn iso_bytes(blocks: u32) -> Vec<u8> {
    let mut b = vec![0u8; blocks as usize * 2048];
    let pvd = 32768;
    b[pvd] = 1;
    b[pvd + 1..pvd + 7].copy_from_slice(b"CD001\x01");
    b[pvd + 40..pvd + 72].copy_from_slice(&[b' '; 32]);
    b[pvd + 40..pvd + 44].copy_from_slice(b"TEST");
    b[pvd + 80..pvd + 84].copy_from_slice(&blocks.to_le_bytes());
    b[pvd + 84..pvd + 88].copy_from_slice(&blocks.to_be_bytes());
    b[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    b[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
    let term = pvd + 2048;
    b[term] = 255;
    b[term + 1..term + 7].copy_from_slice(b"CD001\x01");
    b
}

/// CRC-32 (IEEE), written here independently of the crate's.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in data {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A raw disk of `sectors` 512-byte sectors with a protective MBR, a GPT
/// (128 entries) holding `parts` Linux partitions, and its backup at the end.
fn gpt_disk(sectors: u64, parts: u64) -> Vec<u8> {
    let mut b = vec![0u8; sectors as usize * 512];
    // Protective MBR.
    let e = 446;
    b[e + 1..e + 4].copy_from_slice(&[0, 2, 0]);
    b[e + 4] = 0xEE;
    b[e + 5..e + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    b[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
    b[e + 12..e + 16].copy_from_slice(&((sectors - 1) as u32).to_le_bytes());
    b[510] = 0x55;
    b[511] = 0xAA;
    let mut entries = vec![0u8; 128 * 128];
    for i in 0..parts as usize {
        let x = &mut entries[i * 128..(i + 1) * 128];
        // Linux filesystem data 0FC63DAF-8483-4772-8E79-3D69D8477DE4.
        x[..16].copy_from_slice(&[
            0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47,
            0x7D, 0xE4,
        ]);
        x[16] = i as u8 + 1;
        x[32..40].copy_from_slice(&(2048 + i as u64 * 2048).to_le_bytes());
        x[40..48].copy_from_slice(&(4095 + i as u64 * 2048).to_le_bytes());
        for (k, u) in "root".encode_utf16().enumerate() {
            x[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
        }
    }
    let ecrc = crc32(&entries);
    let header = |current: u64, backup: u64, entries_lba: u64| {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56..72].copy_from_slice(&[7u8; 16]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&ecrc.to_le_bytes());
        let c = crc32(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    let last = sectors - 1;
    b[512..1024].copy_from_slice(&header(1, last, 2));
    b[1024..1024 + entries.len()].copy_from_slice(&entries);
    let back_entries = (last - 32) as usize * 512;
    b[back_entries..back_entries + entries.len()].copy_from_slice(&entries);
    b[last as usize * 512..].copy_from_slice(&header(last, 1, last - 32));
    b
}

/// A raw disk with an MBR of two partitions (Linux 0x83 bootable, swap 0x82).
fn mbr_disk(sectors: u64) -> Vec<u8> {
    let mut b = vec![0u8; sectors as usize * 512];
    b[440..444].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    for (i, (boot, kind, start, len)) in [(0x80u8, 0x83u8, 2048u32, 2048u32), (0, 0x82, 4096, 1024)]
        .into_iter()
        .enumerate()
    {
        let e = 446 + 16 * i;
        b[e] = boot;
        b[e + 4] = kind;
        b[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        b[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    }
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

/// Partition tables, ISO, a qcow2 header over a GPT and their diagnostics,
/// as the wasm writes them (`json_out`, issue 18): what serde_json writes.
#[test]
fn partition_and_iso_facts_write_the_same_json() {
    let d = tempfile::tempdir().unwrap();
    let mut bad = gpt_disk(8192, 1);
    bad[512 + 40] ^= 1;
    let mut qcow2_over_gpt = gpt_disk(64, 0);
    qcow2_over_gpt[..4].copy_from_slice(b"QFI\xfb");
    qcow2_over_gpt[4..8].copy_from_slice(&3u32.to_be_bytes());
    let cases = [
        ("blank-gpt.img", gpt_disk(8192, 0)),
        ("gpt.img", gpt_disk(8192, 2)),
        ("mbr.img", mbr_disk(8192)),
        ("bad-gpt.img", bad),
        ("disk.iso", iso_bytes(40)),
        ("qcow2-over-gpt.img", qcow2_over_gpt),
    ];
    for (file, bytes) in cases {
        let path = d.path().join(file);
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        match probe_with(Some(bytes.len() as u64), |o, l| read_at(&f, o, l)) {
            Ok((info, _)) => common::same_json(&info, file),
            Err(ProbeOrIo::Probe(e)) => common::same_json(&e.to_string(), file),
            Err(ProbeOrIo::Io(e)) => panic!("{file}: {e}"),
        }
    }
}

#[test]
fn raw_disks_with_gpt_and_mbr_stay_raw() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cases: [(&str, Vec<u8>, &str, u64); 3] = [
        ("blank-gpt.img", gpt_disk(8192, 0), "gpt", 0),
        ("gpt.img", gpt_disk(8192, 2), "gpt", 2),
        ("mbr.img", mbr_disk(8192), "mbr", 2),
    ];
    for (file, bytes, scheme, parts) in cases {
        std::fs::write(dir.join(file), &bytes).unwrap();
        let q = qemu_info(dir, file, None).expect("qemu-img reads it");
        assert_eq!(q["format"], "raw", "{file}");
        let (info, read) = probe(&dir.join(file));
        assert_eq!(info.format, Format::Raw, "{file}");
        assert_eq!(info.virtual_size, q["virtual-size"].as_u64(), "{file}");
        let t = &serde_json::json!(info.header.as_ref().expect("facts"))["partition-table"];
        assert_eq!(t["scheme"], scheme, "{file}: {t}");
        assert_eq!(t["partitions"], parts, "{file}: {t}");
        let dg = diag(&info, Code::PartitionTable).expect("said");
        assert_eq!(dg.severity, Severity::Info);
        assert!(
            diag(&info, Code::PartitionTableInvalid).is_none(),
            "{:?}",
            info.diagnostics
        );
        assert!(diag(&info, Code::MultipleFormats).is_none());
        if scheme == "gpt" {
            // 4 KiB, the footer sector, the ISO descriptor, the entries.
            assert!(read <= 4096 + 512 + 2048 + 16384, "{file}: read {read}");
        } else {
            assert!(read <= 4096 + 512 + 2048, "{file}: read {read}");
        }
    }
    // A GPT whose header CRC is wrong: not taken as a GPT, and said.
    let mut bad = gpt_disk(8192, 1);
    bad[512 + 40] ^= 1;
    std::fs::write(dir.join("bad.img"), &bad).unwrap();
    let (info, _) = probe(&dir.join("bad.img"));
    let dg = diag(&info, Code::PartitionTableInvalid).expect("flagged");
    assert!(dg.message.contains("CRC"), "{}", dg.message);
}

/// An ISO stays iso (qemu-img: raw), quietly; a qcow2 written over its
/// system area is a qcow2 to qemu-img and an ISO to anything reading
/// sector 16: `multiple-formats`.
#[test]
fn qcow2_header_over_an_iso_is_multiple_formats() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let iso = iso_bytes(64);
    std::fs::write(dir.join("plain.iso"), &iso).unwrap();
    let q = qemu_info(dir, "plain.iso", None).unwrap();
    assert_eq!(q["format"], "raw");
    let (info, _) = probe(&dir.join("plain.iso"));
    assert_eq!(info.format, Format::Iso);
    assert!(diag(&info, Code::MultipleFormats).is_none());

    // A qcow2 of 512-byte clusters is a few KiB: it fits in the 32 KiB
    // system area.
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            "small.qcow2",
            "1M",
        ],
    );
    let q2 = std::fs::read(dir.join("small.qcow2")).unwrap();
    assert!(q2.len() < 32768, "{}", q2.len());
    let mut poly = iso.clone();
    poly[..q2.len()].copy_from_slice(&q2);
    std::fs::write(dir.join("poly.iso"), &poly).unwrap();
    let q = qemu_info(dir, "poly.iso", None).expect("qemu-img reads it");
    assert_eq!(q["format"], "qcow2");
    let (info, read) = probe(&dir.join("poly.iso"));
    assert_eq!(info.format, Format::Qcow2);
    assert_eq!(info.virtual_size, q["virtual-size"].as_u64());
    let dg = diag(&info, Code::MultipleFormats).expect("flagged");
    assert_eq!(dg.severity, Severity::Error);
    assert!(dg.message.contains("CD001"), "{}", dg.message);
    assert!(read <= 4096 + 7, "read {read}");
}

/// A qcow2 header at byte 0 of a file that also holds an MBR signature, or
/// a GPT header at 512: qemu-img says qcow2, OpenStack's inspector sees a
/// second format; so do we.
#[test]
fn qcow2_and_vmdk_headers_over_partition_tables() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let gpt = gpt_disk(64, 0);
    for (fmt, file) in [("qcow2", "a.qcow2"), ("vmdk", "a.vmdk"), ("vdi", "a.vdi")] {
        for (what, at, bytes) in [
            ("mbr", 510u64, vec![0x55u8, 0xAA]),
            ("gpt", 512, gpt[512..1024].to_vec()),
        ] {
            let name = format!("{what}-{file}");
            qemu_img(dir, &["create", "-q", "-f", fmt, &name, "1G"]);
            let path = dir.join(&name);
            patch(&path, at, &bytes);
            let (info, _) = probe(&path);
            if let Ok(q) = qemu_info(dir, &name, None) {
                assert_eq!(q["format"], fmt, "{name}");
                assert_eq!(info.virtual_size, q["virtual-size"].as_u64(), "{name}");
            }
            assert_eq!(info.format.name(), fmt, "{name}");
            let dg = diag(&info, Code::MultipleFormats).unwrap_or_else(|| panic!("{name}"));
            assert!(
                dg.message
                    .contains(if what == "mbr" { "MBR" } else { "GPT" }),
                "{name}: {}",
                dg.message
            );
        }
    }
}

// ---------------------------------------------------------------------------
// §4.5: no false alarm on what qemu-img makes.
// ---------------------------------------------------------------------------

#[test]
fn no_false_alarm_on_ordinary_images() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Guest data that is neither a partition table nor an ISO: converted
    // images carry data clusters too.
    let mut data = vec![0u8; 4 << 20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for (i, b) in data.iter_mut().enumerate() {
        if i % 4096 < 1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    data[510] = 0;
    std::fs::write(dir.join("data.raw"), &data).unwrap();
    let secret = ["--object", "secret,id=s,data=x"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("v2.qcow2", vec!["-f", "qcow2", "-o", "compat=0.10"]),
        ("v3.qcow2", vec!["-f", "qcow2", "-o", "compat=1.1"]),
        ("c4k.qcow2", vec!["-f", "qcow2", "-o", "cluster_size=4096"]),
        ("c512.qcow2", vec!["-f", "qcow2", "-o", "cluster_size=512"]),
        ("a.qcow", vec!["-f", "qcow"]),
        ("a.qed", vec!["-f", "qed"]),
        ("sparse.vmdk", vec!["-f", "vmdk"]),
        (
            "stream.vmdk",
            vec!["-f", "vmdk", "-o", "subformat=streamOptimized"],
        ),
        (
            "two.vmdk",
            vec!["-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"],
        ),
        (
            "flat.vmdk",
            vec!["-f", "vmdk", "-o", "subformat=monolithicFlat"],
        ),
        (
            "twoflat.vmdk",
            vec!["-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat"],
        ),
        ("dyn.vhd", vec!["-f", "vpc"]),
        ("fixed.vhd", vec!["-f", "vpc", "-o", "subformat=fixed"]),
        ("a.vhdx", vec!["-f", "vhdx"]),
        ("a.vdi", vec!["-f", "vdi"]),
        ("a.raw", vec!["-f", "raw"]),
        ("a.hdd", vec!["-f", "parallels"]),
        (
            "a.luks",
            [
                &secret[..],
                &["-f", "luks", "-o", "key-secret=s,iter-time=10"],
            ]
            .concat(),
        ),
    ];
    for (file, args) in &cases {
        for (how, name) in [
            ("create", format!("e-{file}")),
            ("convert", format!("d-{file}")),
        ] {
            let mut a: Vec<&str> = vec![how, "-q"];
            if how == "convert" {
                // convert takes -O for the output format and its options.
                let mut it = args.iter().peekable();
                while let Some(&s) = it.next() {
                    match s {
                        "-f" => {
                            a.push("-O");
                            a.push(it.next().unwrap());
                        }
                        _ => a.push(s),
                    }
                }
                a.push("data.raw");
                a.push(&name);
            } else {
                a.extend(args.iter().copied());
                a.push(&name);
                a.push("64M");
            }
            qemu_img(dir, &a);
            let fmt = args[args.iter().position(|&s| s == "-f").unwrap() + 1];
            let q = match fmt {
                "luks" => None,
                _ => {
                    Some(qemu_info(dir, &name, Some(fmt)).unwrap_or_else(|e| panic!("{name}: {e}")))
                }
            };
            let (info, _) = probe(&dir.join(&name));
            let expect = if name.ends_with("fixed.vhd") {
                "vpc"
            } else {
                fmt
            };
            assert_eq!(info.format.name(), expect, "{name}");
            if let Some(q) = q {
                assert_eq!(info.virtual_size, q["virtual-size"].as_u64(), "{name}");
            }
            for c in SAFETY_CODES {
                assert!(
                    diag(&info, c).is_none(),
                    "{name}: {c}: {:?}",
                    info.diagnostics
                );
            }
        }
    }
}

/// GPT headers with valid CRCs but hostile fields (huge entry counts and
/// sizes, entry arrays past the end, LBAs that overflow): never a panic,
/// never a read past the bounds, the disk stays raw.
#[test]
fn hostile_gpt_fields_are_bounded() {
    let base = gpt_disk(256, 1);
    let fields: [(usize, Vec<u8>); 6] = [
        (80, u32::MAX.to_le_bytes().to_vec()),
        (84, u32::MAX.to_le_bytes().to_vec()),
        (84, 100u32.to_le_bytes().to_vec()),
        (72, u64::MAX.to_le_bytes().to_vec()),
        (72, 1_000_000u64.to_le_bytes().to_vec()),
        (12, 512u32.to_le_bytes().to_vec()),
    ];
    for (at, v) in fields {
        let mut b = base.clone();
        let h = 512;
        b[h + at..h + at + v.len()].copy_from_slice(&v);
        b[h + 16..h + 20].fill(0);
        let size = u32::from_le_bytes(b[h + 12..h + 16].try_into().unwrap()) as usize;
        let c = crc32(&b[h..h + size]);
        b[h + 16..h + 20].copy_from_slice(&c.to_le_bytes());
        let len = b.len() as u64;
        let mut asked = 0u64;
        let r = probe_with(Some(len), |o, l| -> Result<Vec<u8>, ()> {
            asked += l;
            let s = o.min(len) as usize;
            let e = o.saturating_add(l).min(len) as usize;
            Ok(b[s..e].to_vec())
        });
        let (info, _) = r.unwrap_or_else(|_| panic!("field {at}"));
        assert_eq!(info.format, Format::Raw, "field {at}");
        assert!(
            asked <= 4096 + 512 + 2048 + 256 * 1024,
            "field {at}: asked {asked}"
        );
        assert!(diag(&info, Code::PartitionTable).is_some(), "field {at}");
    }
}

/// Run `backing-chain chain --json ARGS…`: exit code and the first entry.
fn chain_cli(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_backing-chain"))
        .arg("chain")
        .arg("--json")
        .args(args)
        .output()
        .expect("CLI runs");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v[0].clone())
}

fn chain_codes(e: &Value) -> Vec<String> {
    e["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

/// The verdicts of whole chains: a too-long name is `too-long` with the
/// image's facts kept; an unsafe image is `unsafe`; a missing VMDK extent
/// is `missing`; every one exits 1 — where qemu-img refuses the top too.
#[test]
fn chain_statuses_of_unsafe_and_broken_images() {
    if !have_qemu_img() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);

    // A qcow2 whose backing name is 1,500 bytes: qemu-img refuses it.
    qemu_img(
        d.path(),
        &["create", "-q", "-f", "qcow2", "long.qcow2", "64M"],
    );
    let name = format!("{}/base.qcow2", "d".repeat(1490));
    patch(&p("long.qcow2"), 4096, name.as_bytes());
    patch(&p("long.qcow2"), 8, &4096u64.to_be_bytes());
    patch(&p("long.qcow2"), 16, &(name.len() as u32).to_be_bytes());
    assert!(qemu_info(d.path(), "long.qcow2", None).is_err());
    let (code, e) = chain_cli(&[p("long.qcow2").to_str().unwrap()]);
    assert_eq!((code, e["status"].as_str()), (1, Some("too-long")), "{e:#}");
    assert_eq!(e["images"].as_array().unwrap().len(), 1);
    assert_eq!(e["images"][0]["format"], "qcow2");
    assert_eq!(e["images"][0]["virtual-size"], 64 << 20);
    assert_eq!(e["images"][0]["backing-filename"], name.as_str());
    let c = chain_codes(&e);
    assert_eq!(
        c.iter().filter(|c| *c == "backing-name-too-long").count(),
        1,
        "said once: {c:?}"
    );
    assert!(
        !c.contains(&"missing-backing".to_string()),
        "never looked for: {c:?}"
    );

    // A qcow2 whose external data file is /etc/hosts: qemu-img info names
    // it; the chain is unsafe.
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=df.raw",
            "dt.qcow2",
            "1M",
        ],
    );
    set_data_file(&p("dt.qcow2"), "/etc/hosts");
    let qi = qemu_info(d.path(), "dt.qcow2", None).unwrap();
    assert_eq!(qi["format-specific"]["data"]["data-file"], "/etc/hosts");
    let (code, e) = chain_cli(&[p("dt.qcow2").to_str().unwrap()]);
    assert_eq!((code, e["status"].as_str()), (1, Some("unsafe")), "{e:#}");
    // A plain data file next to it: a warning, the chain is ok.
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=ok.raw",
            "ok.qcow2",
            "1M",
        ],
    );
    let (code, e) = chain_cli(&[p("ok.qcow2").to_str().unwrap()]);
    assert_eq!((code, e["status"].as_str()), (0, Some("ok")), "{e:#}");
    assert!(chain_codes(&e).contains(&"external-data-file".to_string()));

    // A flat VMDK whose extent file is gone: qemu-img refuses it, and the
    // chain is missing.
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "flat.vmdk",
            "1M",
        ],
    );
    assert!(qemu_info(d.path(), "flat.vmdk", None).is_ok());
    std::fs::remove_file(p("flat-flat.vmdk")).unwrap();
    assert!(qemu_info(d.path(), "flat.vmdk", None).is_err());
    let (code, e) = chain_cli(&[p("flat.vmdk").to_str().unwrap()]);
    assert_eq!((code, e["status"].as_str()), (1, Some("missing")), "{e:#}");
    assert!(
        chain_codes(&e).contains(&"missing-extent".to_string()),
        "{e:#}"
    );

    // A flat VMDK whose extent is /etc/hosts: unsafe; with --untrusted the
    // extent is not even looked at (it is flagged, not reported missing).
    std::fs::write(
        p("hosts.vmdk"),
        flat_descriptor("RW 2 FLAT \"/etc/hosts\" 0"),
    )
    .unwrap();
    let (code, e) = chain_cli(&["--untrusted", p("hosts.vmdk").to_str().unwrap()]);
    assert_eq!((code, e["status"].as_str()), (1, Some("unsafe")), "{e:#}");
    assert!(!chain_codes(&e).contains(&"missing-extent".to_string()));
}
