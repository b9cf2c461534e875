//! qcow2 (versions 2 and 3), after qemu's `docs/interop/qcow2.rst`.
//!
//! Reads the fixed header, walks the header extensions (each length padded to
//! 8, bounded by the backing name or the end of cluster 0), then the backing
//! name. Only the bytes of cluster 0 that these need are asked for.

use serde_json::{json, Map, Value};

use super::safety::NameKind;
use super::{be_u16, be_u32, be_u64, Format, ImageInfo, ProbeOptions, Range, Reads, Stop};
use crate::diag::Diagnostic;
use crate::limits;

const MAGIC: &[u8; 4] = b"QFI\xfb";
const F: Format = Format::Qcow2;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_FDE: u32 = 0x0537_be77;
const EXT_BITMAPS: u32 = 0x2385_2875;

/// Incompatible feature bits.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 = 0x1f;
const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;
const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

pub fn matches(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// The fixed part of a qcow2 header.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible_features: u64,
    pub compatible_features: u64,
    pub autoclear_features: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    pub compression_type: u8,
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }
}

fn parse_header(reads: &Reads) -> Result<Header, Stop> {
    let b = reads.bytes(F, 0, 72)?;
    let version = be_u32(b, 4);
    if version != 2 && version != 3 {
        return Err(Stop::bad(
            F,
            4,
            format!("unsupported version {version} (qcow2 has 2 and 3)"),
        ));
    }
    let cluster_bits = be_u32(b, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(Stop::bad(
            F,
            20,
            format!("cluster_bits {cluster_bits} outside 9..=21"),
        ));
    }
    let mut h = Header {
        version,
        backing_file_offset: be_u64(b, 8),
        backing_file_size: be_u32(b, 16),
        cluster_bits,
        size: be_u64(b, 24),
        crypt_method: be_u32(b, 32),
        l1_size: be_u32(b, 36),
        l1_table_offset: be_u64(b, 40),
        refcount_table_offset: be_u64(b, 48),
        refcount_table_clusters: be_u32(b, 56),
        nb_snapshots: be_u32(b, 60),
        snapshots_offset: be_u64(b, 64),
        incompatible_features: 0,
        compatible_features: 0,
        autoclear_features: 0,
        refcount_order: 4,
        header_length: 72,
        compression_type: 0,
    };
    if version == 3 {
        let b = reads.bytes(F, 0, 104)?;
        h.incompatible_features = be_u64(b, 72);
        h.compatible_features = be_u64(b, 80);
        h.autoclear_features = be_u64(b, 88);
        h.refcount_order = be_u32(b, 96);
        h.header_length = be_u32(b, 100);
        if h.header_length < 104 {
            return Err(Stop::bad(
                F,
                100,
                format!("header_length {} below 104", h.header_length),
            ));
        }
        if u64::from(h.header_length) > h.cluster_size() {
            return Err(Stop::bad(
                F,
                100,
                format!(
                    "header_length {} beyond cluster 0 ({} bytes)",
                    h.header_length,
                    h.cluster_size()
                ),
            ));
        }
        if h.refcount_order > 6 {
            return Err(Stop::bad(
                F,
                96,
                format!("refcount_order {} above 6", h.refcount_order),
            ));
        }
        if h.header_length > 104 {
            h.compression_type = reads.bytes(F, 104, 1)?[0];
        }
    }
    Ok(h)
}

struct Extensions {
    backing_format: Option<String>,
    feature_names: Vec<(u8, u8, String)>,
    data_file: Option<String>,
    /// Full disk encryption header: offset and length.
    fde: Option<(u64, u64)>,
    /// Bitmaps extension: count, directory size, directory offset.
    bitmaps: Option<(u32, u64, u64)>,
    unknown: Vec<u32>,
}

/// Walk header extensions from `header_length` (or 72 for v2) up to `end`.
fn walk_extensions(reads: &Reads, h: &Header, info: &mut ImageInfo) -> Result<Extensions, Stop> {
    let cs = h.cluster_size();
    let end = if h.backing_file_offset > u64::from(h.header_length) && h.backing_file_offset < cs {
        h.backing_file_offset
    } else {
        cs
    };
    let mut ext = Extensions {
        backing_format: None,
        feature_names: Vec::new(),
        data_file: None,
        fde: None,
        bitmaps: None,
        unknown: Vec::new(),
    };
    let mut off = u64::from(h.header_length);
    // Ask for the whole area at once when it reaches beyond what was read,
    // rather than one round per extension.
    while off + 8 <= end {
        let eh = match reads.bytes(F, off, 8) {
            Ok(b) => b,
            Err(Stop::Need(_)) => {
                let want = end.min(limits::MAX_READ);
                return Err(Stop::Need(vec![super::Range::new(0, want)]));
            }
            Err(e) => return Err(e),
        };
        let kind = be_u32(eh, 0);
        let len = u64::from(be_u32(eh, 4));
        if kind == EXT_END {
            return Ok(ext);
        }
        let data_off = off + 8;
        let padded = len.div_ceil(8) * 8;
        if data_off + padded > end {
            return Err(Stop::bad(
                F,
                off,
                format!("header extension 0x{kind:08x} of {len} bytes runs past the end of the extension area at {end}"),
            ));
        }
        let data = reads.bytes(F, data_off, len)?;
        match kind {
            EXT_BACKING_FORMAT => {
                ext.backing_format = Some(lossy_name(data, info, "backing format"))
            }
            EXT_FEATURE_NAMES => {
                for e in data.chunks_exact(48) {
                    let name_end = e[2..].iter().position(|&c| c == 0).map_or(46, |p| p);
                    let name = String::from_utf8_lossy(&e[2..2 + name_end]).into_owned();
                    ext.feature_names.push((e[0], e[1], name));
                }
            }
            EXT_DATA_FILE => {
                ext.data_file = Some(lossy_name(data, info, "external data file name"))
            }
            EXT_FDE => {
                if data.len() >= 16 {
                    ext.fde = Some((be_u64(data, 0), be_u64(data, 8)));
                }
            }
            EXT_BITMAPS => {
                if data.len() >= 4 {
                    ext.bitmaps = (data.len() >= 24)
                        .then(|| (be_u32(data, 0), be_u64(data, 8), be_u64(data, 16)));
                }
            }
            other => ext.unknown.push(other),
        }
        off = data_off + padded;
    }
    Ok(ext)
}

fn lossy_name(data: &[u8], info: &mut ImageInfo, what: &str) -> String {
    super::lossy(data, &mut info.diagnostics, what)
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    probe_opts(reads, &ProbeOptions::default())
}

/// [`probe`], reading the internal snapshot table when `opts.snapshots`.
pub fn probe_opts(reads: &Reads, opts: &ProbeOptions) -> Result<ImageInfo, Stop> {
    let h = parse_header(reads)?;
    let mut info = ImageInfo::new(F);
    let ext = walk_extensions(reads, &h, &mut info)?;

    let mut long_name = None;
    if h.backing_file_offset != 0 && u64::from(h.backing_file_size) > limits::MAX_BACKING_NAME {
        // qemu refuses the image ("Backing file name too long"), but it is
        // still a qcow2 of this size: keep the facts and flag the name.
        let len = u64::from(h.backing_file_size);
        super::too_long_name(
            reads,
            F,
            h.backing_file_offset,
            len,
            limits::MAX_BACKING_NAME,
            &mut info,
        )?;
        info.backing_filename_format = ext.backing_format.clone();
        long_name = Some(len);
    } else if h.backing_file_offset != 0 {
        let len = u64::from(h.backing_file_size);
        let end = h.backing_file_offset.checked_add(len);
        if end.is_none_or(|e| e > h.cluster_size()) {
            return Err(Stop::bad(
                F,
                8,
                format!(
                    "backing name at {}+{len} lies outside cluster 0 ({} bytes)",
                    h.backing_file_offset,
                    h.cluster_size()
                ),
            ));
        }
        let name = reads.bytes(F, h.backing_file_offset, len)?;
        info.backing_filename = Some(lossy_name(name, &mut info, "backing name"));
        info.backing_filename_format = ext.backing_format.clone();
    }

    info.virtual_size = Some(h.size);
    info.cluster_size = Some(h.cluster_size());
    info.encrypted = h.crypt_method != 0;
    info.dirty_flag = Some(h.incompatible_features & INCOMPAT_DIRTY != 0);

    let unknown_incompat = h.incompatible_features & !INCOMPAT_KNOWN;
    if unknown_incompat != 0 {
        let names = bit_names(unknown_incompat, 0, &ext.feature_names);
        info.diagnostics.push(Diagnostic::error(
            "qcow2-unknown-incompatible",
            format!(
                "unknown incompatible feature bits set ({names}): qemu refuses to open this image"
            ),
        ));
    }
    if h.incompatible_features & INCOMPAT_CORRUPT != 0 {
        info.diagnostics.push(
            Diagnostic::error(
                "qcow2-corrupt",
                "the image is marked corrupt: qemu opens it read-only only",
            )
            .with_fix("qemu-img check -r all IMAGE"),
        );
    }
    if h.incompatible_features & INCOMPAT_DIRTY != 0 {
        info.diagnostics.push(
            Diagnostic::warning(
                "qcow2-dirty",
                "the dirty bit is set: refcounts may be stale (lazy refcounts)",
            )
            .with_fix("qemu-img check -r all IMAGE"),
        );
    }
    if h.crypt_method != 0 {
        let how = match h.crypt_method {
            1 => "aes",
            2 => "luks",
            _ => "unknown",
        };
        info.diagnostics.push(Diagnostic::info(
            "encrypted",
            format!("encrypted ({how}): opening it needs a secret (<encryption> in the disk XML)"),
        ));
    }
    data_file_diagnostics(&h, &ext, &mut info);

    for (kind, bits, what) in [
        (
            1u8,
            h.compatible_features & !COMPAT_LAZY_REFCOUNTS,
            "compatible",
        ),
        (
            2u8,
            h.autoclear_features & !(AUTOCLEAR_BITMAPS | AUTOCLEAR_DATA_FILE_RAW),
            "autoclear",
        ),
    ] {
        if bits != 0 {
            info.diagnostics.push(Diagnostic::info(
                "qcow2-unknown-feature",
                format!(
                    "unknown {what} feature bits set ({})",
                    bit_names(bits, kind, &ext.feature_names)
                ),
            ));
        }
    }
    let encrypt = match h.crypt_method {
        0 => None,
        1 => Some(json!({ "format": "aes" })),
        2 => Some(luks_facts(reads, &ext)?),
        _ => None,
    };
    let (mut fs, header) = format_specific(&h, &ext);
    if let (Some(e), Some(d)) = (encrypt, fs.get_mut("data").and_then(Value::as_object_mut)) {
        d.insert("encrypt".into(), e);
    }
    // qemu uses the bitmaps extension only while the autoclear bit says it
    // is valid, and then lists the bitmaps.
    if let (Some(b), true) = (ext.bitmaps, h.autoclear_features & AUTOCLEAR_BITMAPS != 0) {
        let list = bitmaps(reads, b)?;
        if let Some(d) = fs.get_mut("data").and_then(Value::as_object_mut) {
            d.insert("bitmaps".into(), Value::Array(list));
        }
    }
    info.format_specific = Some(fs);
    info.header = Some(header);
    if let Some(len) = long_name {
        super::note_name_length(&mut info, len);
    }
    if opts.snapshots && h.nb_snapshots > 0 {
        info.snapshots = Some(snapshots(reads, &h)?);
    }
    Ok(info)
}

/// The external data file (qcow2.rst "External data file"): qemu opens it
/// with the image and reads and writes guest data there (OpenStack refuses
/// such images outright). Any name is a warning; one that reaches outside
/// the usual image directories, a device or a `json:`/protocol name (which
/// qemu parses into a driver, the CVE-2024-4467 class) is an error.
fn data_file_diagnostics(h: &Header, ext: &Extensions, info: &mut ImageInfo) {
    let bit = h.incompatible_features & INCOMPAT_DATA_FILE != 0;
    let raw = h.autoclear_features & AUTOCLEAR_DATA_FILE_RAW != 0;
    let d = match (&ext.data_file, bit) {
        (None, false) => return,
        (None, true) => Diagnostic::warning(
            "external-data-file",
            "guest data lives in an external data file whose name the image does not record: \
             qemu opens it only when the data file is given as an option (data-file=…, \
             <dataStore> in libvirt)",
        ),
        (Some(name), _) => {
            let kind = NameKind::of(name);
            let mut m = format!(
                "guest data lives in the external data file '{name}' ({}){}: qemu opens it \
                 with this image and reads and writes the guest's data there",
                kind.reason(),
                if raw {
                    ", kept as a raw image (data-file-raw)"
                } else {
                    ""
                },
            );
            if !bit {
                m.push_str("; the incompatible bit 'external data file' is not set, so qemu ignores the name");
            }
            Diagnostic::new(kind.severity(), "external-data-file", m)
        }
    };
    info.diagnostics.push(d);
}

fn bit_names(bits: u64, kind: u8, table: &[(u8, u8, String)]) -> String {
    (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            table
                .iter()
                .find(|(k, bit, _)| *k == kind && u32::from(*bit) == b)
                .map_or_else(|| format!("bit {b}"), |(_, _, n)| format!("bit {b} '{n}'"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The LUKS header a `crypt_method` 2 image keeps in the clusters the full
/// disk encryption extension points to: its facts as qemu prints them under
/// `encrypt`.
fn luks_facts(reads: &Reads, ext: &Extensions) -> Result<Value, Stop> {
    let Some((off, len)) = ext.fde else {
        return Err(Stop::bad(
            F,
            32,
            "LUKS encryption without a full disk encryption header extension",
        ));
    };
    if len < super::luks::V1_HEADER_LEN {
        return Err(Stop::bad(
            F,
            off,
            format!("full disk encryption header of {len} bytes is too short"),
        ));
    }
    let b = reads.bytes(F, off, super::luks::V1_HEADER_LEN)?;
    let (mut data, _, _) = super::luks::parse_v1(b).map_err(|(at, m)| Stop::bad(F, off + at, m))?;
    data.insert("format".into(), json!("luks"));
    data.insert("detached-header".into(), json!(false));
    Ok(Value::Object(data))
}

/// qemu's caps on persistent bitmaps: count and directory size.
const MAX_BITMAPS: u32 = 65535;
const MAX_BITMAP_DIRECTORY: u64 = 64 << 20;

/// The bitmap directory (qcow2.rst "Bitmap directory"), as `qemu-img info`
/// lists it: name, granularity, flags. Entries: bitmap table offset (u64),
/// table size (u32), flags (u32: bit 0 in-use, bit 1 auto), type (u8),
/// granularity bits (u8), name size (u16), extra data size (u32), extra
/// data, name, padding to 8.
fn bitmaps(reads: &Reads, (n, size, off): (u32, u64, u64)) -> Result<Vec<Value>, Stop> {
    if n > MAX_BITMAPS {
        return Err(Stop::bad(
            F,
            off,
            format!("{n} bitmaps, above qemu's limit of {MAX_BITMAPS}"),
        ));
    }
    if size > MAX_BITMAP_DIRECTORY.min(limits::MAX_READ) {
        return Err(Stop::bad(
            F,
            off,
            format!(
                "bitmap directory of {size} bytes, above the limit of {}",
                limits::MAX_READ
            ),
        ));
    }
    let dir = reads.bytes(F, off, size)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    for i in 0..n {
        let bad = |m: String| Stop::bad(F, off + at as u64, format!("bitmap {i}: {m}"));
        let e = dir
            .get(at..at + 24)
            .ok_or_else(|| bad("entry runs past the directory".into()))?;
        let flags = be_u32(e, 12);
        let gran_bits = u32::from(e[17]);
        let name_len = usize::from(be_u16(e, 18));
        let extra_len = be_u32(e, 20) as usize;
        let total = 24usize
            .checked_add(extra_len)
            .and_then(|t| t.checked_add(name_len))
            .filter(|&t| at + t <= dir.len())
            .ok_or_else(|| bad("name or extra data runs past the directory".into()))?;
        if gran_bits > 63 {
            return Err(bad(format!("granularity bits {gran_bits} above 63")));
        }
        let name = String::from_utf8_lossy(&dir[at + 24 + extra_len..at + total]).into_owned();
        let mut f = Vec::new();
        if flags & 1 != 0 {
            f.push("in-use");
        }
        if flags & 2 != 0 {
            f.push("auto");
        }
        out.push(json!({ "flags": f, "name": name, "granularity": 1u64 << gran_bits }));
        at += total.div_ceil(8) * 8;
    }
    Ok(out)
}

/// qemu's cap on the number of internal snapshots.
const MAX_SNAPSHOTS: u32 = 65536;
/// qemu's cap on a snapshot entry's extra data.
const MAX_SNAPSHOT_EXTRA: u64 = 1024;

/// The internal snapshot table, as `qemu-img info` lists it. Read in windows
/// that grow with the entries still to read, each at most `MAX_READ`.
fn snapshots(reads: &Reads, h: &Header) -> Result<Vec<Value>, Stop> {
    if h.nb_snapshots > MAX_SNAPSHOTS {
        return Err(Stop::bad(
            F,
            60,
            format!(
                "{} snapshots, above qemu's limit of {MAX_SNAPSHOTS}",
                h.nb_snapshots
            ),
        ));
    }
    let mut out = Vec::new();
    let mut off = h.snapshots_offset;
    for i in 0..h.nb_snapshots {
        let left = u64::from(h.nb_snapshots - i);
        let window = (left * 256).clamp(4096, limits::MAX_READ);
        let window = reads
            .file_len()
            .map_or(window, |l| window.min(l.saturating_sub(off)));
        let get = |at: u64, len: u64| -> Result<&[u8], Stop> {
            match reads.bytes(F, at, len) {
                Err(Stop::Need(_)) if at >= off && at + len <= off + window => {
                    Err(Stop::Need(vec![Range::new(off, window)]))
                }
                other => other,
            }
        };
        let e = get(off, 40)?;
        let id_len = u64::from(be_u16(e, 12));
        let name_len = u64::from(be_u16(e, 14));
        let extra_len = u64::from(be_u32(e, 36));
        if extra_len > MAX_SNAPSHOT_EXTRA {
            return Err(Stop::bad(
                F,
                off + 36,
                format!(
                    "snapshot {i}: {extra_len} bytes of extra data, above {MAX_SNAPSHOT_EXTRA}"
                ),
            ));
        }
        let total = 40 + extra_len + id_len + name_len;
        let e = get(off, total)?;
        let date_sec = be_u32(e, 16);
        let date_nsec = be_u32(e, 20);
        let vm_clock = be_u64(e, 24);
        let mut vm_state = u64::from(be_u32(e, 32));
        let extra = &e[40..40 + extra_len as usize];
        if extra.len() >= 8 {
            vm_state = be_u64(extra, 0);
        }
        let icount = (extra.len() >= 24)
            .then(|| be_u64(extra, 16))
            .filter(|&c| c != u64::MAX);
        let ids = &e[40 + extra_len as usize..];
        let id = String::from_utf8_lossy(&ids[..id_len as usize]).into_owned();
        let name = String::from_utf8_lossy(&ids[id_len as usize..]).into_owned();
        let mut s = Map::new();
        if let Some(c) = icount {
            s.insert("icount".into(), json!(c));
        }
        s.insert("vm-state-size".into(), json!(vm_state));
        s.insert("date-sec".into(), json!(date_sec));
        s.insert("date-nsec".into(), json!(date_nsec));
        s.insert("vm-clock-sec".into(), json!(vm_clock / 1_000_000_000));
        s.insert("vm-clock-nsec".into(), json!(vm_clock % 1_000_000_000));
        s.insert("id".into(), json!(id));
        s.insert("name".into(), json!(name));
        out.push(Value::Object(s));
        off = off
            .checked_add(total.div_ceil(8) * 8)
            .ok_or_else(|| Stop::bad(F, off, "snapshot table offset overflows"))?;
    }
    Ok(out)
}

/// `format-specific` as `qemu-img info --output=json` prints it, and the
/// header facts it does not print.
fn format_specific(h: &Header, ext: &Extensions) -> (Value, Value) {
    let mut data = Map::new();
    data.insert(
        "compat".into(),
        json!(if h.version == 2 { "0.10" } else { "1.1" }),
    );
    data.insert(
        "compression-type".into(),
        json!(if h.compression_type == 1 {
            "zstd"
        } else {
            "zlib"
        }),
    );
    if h.version == 3 {
        data.insert(
            "lazy-refcounts".into(),
            json!(h.compatible_features & COMPAT_LAZY_REFCOUNTS != 0),
        );
    }
    if let Some(df) = &ext.data_file {
        data.insert("data-file".into(), json!(df));
        data.insert(
            "data-file-raw".into(),
            json!(h.autoclear_features & AUTOCLEAR_DATA_FILE_RAW != 0),
        );
    }
    data.insert("refcount-bits".into(), json!(1u32 << h.refcount_order));
    if h.version == 3 {
        data.insert(
            "corrupt".into(),
            json!(h.incompatible_features & INCOMPAT_CORRUPT != 0),
        );
        data.insert(
            "extended-l2".into(),
            json!(h.incompatible_features & INCOMPAT_EXTL2 != 0),
        );
    }
    // Not printed by qemu-img, kept for the page and diagnostics.
    let mut extra = Map::new();
    extra.insert("version".into(), json!(h.version));
    extra.insert("crypt-method".into(), json!(h.crypt_method));
    extra.insert("header-length".into(), json!(h.header_length));
    extra.insert("l1-size".into(), json!(h.l1_size));
    extra.insert("l1-table-offset".into(), json!(h.l1_table_offset));
    extra.insert(
        "refcount-table-offset".into(),
        json!(h.refcount_table_offset),
    );
    extra.insert(
        "refcount-table-clusters".into(),
        json!(h.refcount_table_clusters),
    );
    extra.insert("nb-snapshots".into(), json!(h.nb_snapshots));
    extra.insert("snapshots-offset".into(), json!(h.snapshots_offset));
    extra.insert(
        "incompatible-features".into(),
        json!(h.incompatible_features),
    );
    extra.insert("compatible-features".into(), json!(h.compatible_features));
    extra.insert("autoclear-features".into(), json!(h.autoclear_features));
    extra.insert(
        "compressed".into(),
        json!(h.incompatible_features & INCOMPAT_COMPRESSION != 0),
    );
    extra.insert(
        "full-disk-encryption-header".into(),
        json!(ext.fde.map(|(o, l)| json!({ "offset": o, "length": l }))),
    );
    extra.insert(
        "autoclear-bitmaps".into(),
        json!(h.autoclear_features & AUTOCLEAR_BITMAPS != 0),
    );
    if let Some((n, size, off)) = ext.bitmaps {
        extra.insert("nb-bitmaps".into(), json!(n));
        extra.insert("bitmap-directory-size".into(), json!(size));
        extra.insert("bitmap-directory-offset".into(), json!(off));
    }
    if !ext.unknown.is_empty() {
        extra.insert("unknown-extensions".into(), json!(ext.unknown));
    }
    (
        json!({ "type": "qcow2", "data": data }),
        Value::Object(extra),
    )
}
