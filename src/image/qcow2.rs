//! qcow2 (versions 2 and 3), after qemu's `docs/interop/qcow2.rst`.
//!
//! Reads the fixed header, walks the header extensions (each length padded to
//! 8, bounded by the backing name or the end of cluster 0), then the backing
//! name. Only the bytes of cluster 0 that these need are asked for.

use bitflags::bitflags;
use serde::Serialize;

use super::safety::NameKind;
use super::{Format, FormatSpecific, ImageInfo, ProbeOptions, Range, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};
use crate::limits;
use crate::limits::{
    QCOW2_MAX_BITMAPS as MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY as MAX_BITMAP_DIRECTORY,
    QCOW2_MAX_SNAPSHOTS as MAX_SNAPSHOTS, QCOW2_MAX_SNAPSHOT_EXTRA as MAX_SNAPSHOT_EXTRA,
};

const MAGIC: &[u8; 4] = b"QFI\xfb";
const F: Format = Format::Qcow2;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_FDE: u32 = 0x0537_be77;
const EXT_BITMAPS: u32 = 0x2385_2875;

/// Offsets of the fixed header's fields (qcow2.rst "Header").
mod at {
    pub const VERSION: usize = 4;
    pub const BACKING_FILE_OFFSET: usize = 8;
    pub const BACKING_FILE_SIZE: usize = 16;
    pub const CLUSTER_BITS: usize = 20;
    pub const SIZE: usize = 24;
    pub const CRYPT_METHOD: usize = 32;
    pub const L1_SIZE: usize = 36;
    pub const L1_TABLE_OFFSET: usize = 40;
    pub const REFCOUNT_TABLE_OFFSET: usize = 48;
    pub const REFCOUNT_TABLE_CLUSTERS: usize = 56;
    pub const NB_SNAPSHOTS: usize = 60;
    pub const SNAPSHOTS_OFFSET: usize = 64;
    /// Version 2 ends here (72 bytes).
    pub const V2_END: usize = 72;
    pub const INCOMPATIBLE_FEATURES: usize = 72;
    pub const COMPATIBLE_FEATURES: usize = 80;
    pub const AUTOCLEAR_FEATURES: usize = 88;
    pub const REFCOUNT_ORDER: usize = 96;
    pub const HEADER_LENGTH: usize = 100;
    /// Version 3's fixed part ends here (104 bytes); `compression_type`
    /// is there when `header_length` says so.
    pub const V3_END: usize = 104;
    pub const COMPRESSION_TYPE: usize = 104;
}

bitflags! {
    /// Incompatible feature bits: qemu refuses an image with one it does not know.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Incompatible: u64 {
        /// Refcounts may be inconsistent (lazy refcounts, not closed cleanly).
        const DIRTY = 1 << 0;
        /// Metadata may be corrupt: qemu opens the image read-only.
        const CORRUPT = 1 << 1;
        /// Guest data lives in an external data file.
        const DATA_FILE = 1 << 2;
        /// `compression_type` is not zlib.
        const COMPRESSION = 1 << 3;
        /// L2 entries of 128 bits with subclusters.
        const EXTENDED_L2 = 1 << 4;
    }

    /// Compatible feature bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Compatible: u64 {
        /// Refcount updates may be deferred (the dirty bit then says so).
        const LAZY_REFCOUNTS = 1 << 0;
    }

    /// Autoclear feature bits: cleared by writers that do not know them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Autoclear: u64 {
        /// The bitmaps extension is consistent with the image.
        const BITMAPS = 1 << 0;
        /// The external data file is a valid raw image on its own.
        const DATA_FILE_RAW = 1 << 1;
    }
}

/// The magic `QFI\xfb` at the start of `head` (shared with qcow version 1:
/// see [`crate::image::detect_head`]).
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// The fixed part of a qcow2 header.
#[derive(Debug, Clone)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// Where the backing name is (0: no backing file).
    pub backing_file_offset: u64,
    /// Bytes of the backing name (no NUL).
    pub backing_file_size: u32,
    /// log2 of the cluster size (9..=21).
    pub cluster_bits: u32,
    /// Virtual size in bytes.
    pub size: u64,
    /// 0 none, 1 AES (legacy), 2 LUKS.
    pub crypt_method: u32,
    /// Entries of the active L1 table.
    pub l1_size: u32,
    /// Where the active L1 table starts.
    pub l1_table_offset: u64,
    /// Where the refcount table starts.
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u32,
    /// Internal snapshots.
    pub nb_snapshots: u32,
    /// Where the snapshot table starts.
    pub snapshots_offset: u64,
    /// Incompatible feature bits (version 3; empty for 2).
    pub incompatible_features: Incompatible,
    /// Compatible feature bits (version 3; empty for 2).
    pub compatible_features: Compatible,
    /// Autoclear feature bits (version 3; empty for 2).
    pub autoclear_features: Autoclear,
    /// log2 of the refcount width in bits (4 for version 2).
    pub refcount_order: u32,
    /// Bytes of the header before the extensions (72 for version 2).
    pub header_length: u32,
    /// 0 zlib, 1 zstd (when `header_length` holds it; else 0).
    pub compression_type: u8,
}

impl Header {
    /// `1 << cluster_bits`.
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }
}

fn parse_header(reads: &Reads) -> Result<Header, Stop> {
    let b = reads.view::<{ at::V2_END }>(F, 0)?;
    let version = b.be_u32::<{ at::VERSION }>();
    if version != 2 && version != 3 {
        return Err(Stop::bad(
            F,
            at::VERSION as u64,
            format!("unsupported version {version} (qcow2 has 2 and 3)"),
        ));
    }
    let cluster_bits = b.be_u32::<{ at::CLUSTER_BITS }>();
    if !(9..=21).contains(&cluster_bits) {
        return Err(Stop::bad(
            F,
            at::CLUSTER_BITS as u64,
            format!("cluster_bits {cluster_bits} outside 9..=21"),
        ));
    }
    let mut h = Header {
        version,
        backing_file_offset: b.be_u64::<{ at::BACKING_FILE_OFFSET }>(),
        backing_file_size: b.be_u32::<{ at::BACKING_FILE_SIZE }>(),
        cluster_bits,
        size: b.be_u64::<{ at::SIZE }>(),
        crypt_method: b.be_u32::<{ at::CRYPT_METHOD }>(),
        l1_size: b.be_u32::<{ at::L1_SIZE }>(),
        l1_table_offset: b.be_u64::<{ at::L1_TABLE_OFFSET }>(),
        refcount_table_offset: b.be_u64::<{ at::REFCOUNT_TABLE_OFFSET }>(),
        refcount_table_clusters: b.be_u32::<{ at::REFCOUNT_TABLE_CLUSTERS }>(),
        nb_snapshots: b.be_u32::<{ at::NB_SNAPSHOTS }>(),
        snapshots_offset: b.be_u64::<{ at::SNAPSHOTS_OFFSET }>(),
        incompatible_features: Incompatible::empty(),
        compatible_features: Compatible::empty(),
        autoclear_features: Autoclear::empty(),
        refcount_order: 4,
        header_length: at::V2_END as u32,
        compression_type: 0,
    };
    if version == 3 {
        let b = reads.view::<{ at::V3_END }>(F, 0)?;
        h.incompatible_features =
            Incompatible::from_bits_retain(b.be_u64::<{ at::INCOMPATIBLE_FEATURES }>());
        h.compatible_features =
            Compatible::from_bits_retain(b.be_u64::<{ at::COMPATIBLE_FEATURES }>());
        h.autoclear_features =
            Autoclear::from_bits_retain(b.be_u64::<{ at::AUTOCLEAR_FEATURES }>());
        h.refcount_order = b.be_u32::<{ at::REFCOUNT_ORDER }>();
        h.header_length = b.be_u32::<{ at::HEADER_LENGTH }>();
        if h.header_length < at::V3_END as u32 {
            return Err(Stop::bad(
                F,
                at::HEADER_LENGTH as u64,
                format!("header_length {} below 104", h.header_length),
            ));
        }
        if u64::from(h.header_length) > h.cluster_size() {
            return Err(Stop::bad(
                F,
                at::HEADER_LENGTH as u64,
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
                at::REFCOUNT_ORDER as u64,
                format!("refcount_order {} above 6", h.refcount_order),
            ));
        }
        if h.header_length > at::V3_END as u32 {
            h.compression_type = reads.view::<1>(F, at::COMPRESSION_TYPE as u64)?.u8::<0>();
        }
    }
    Ok(h)
}

struct Extensions {
    backing_format: Option<String>,
    feature_names: Vec<FeatureName>,
    data_file: Option<String>,
    /// Full disk encryption header.
    fde: Option<Region>,
    bitmaps: Option<BitmapsExtension>,
    unknown: Vec<u32>,
}

/// One entry of the feature name table extension.
struct FeatureName {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    kind: u8,
    bit: u8,
    name: String,
}

/// The bitmaps extension (qcow2.rst "Bitmaps extension").
#[derive(Debug, Clone, Copy)]
struct BitmapsExtension {
    count: u32,
    directory_size: u64,
    directory_offset: u64,
}

use super::Region;

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
        let eh: View<8> = match reads.view(F, off) {
            Ok(b) => b,
            Err(Stop::Need(_)) => {
                let want = end.min(limits::MAX_READ);
                return Err(Stop::Need(vec![super::Range::new(0, want)]));
            }
            Err(e) => return Err(e),
        };
        let kind = eh.be_u32::<0>();
        let len = u64::from(eh.be_u32::<4>());
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
                    ext.feature_names.push(FeatureName {
                        kind: e[0],
                        bit: e[1],
                        name,
                    });
                }
            }
            EXT_DATA_FILE => {
                ext.data_file = Some(lossy_name(data, info, "external data file name"))
            }
            EXT_FDE => {
                if let Some(d) = data.first_chunk::<16>() {
                    let d = super::View(d);
                    ext.fde = Some(Region {
                        offset: d.be_u64::<0>(),
                        length: d.be_u64::<8>(),
                    });
                }
            }
            EXT_BITMAPS => {
                // nb_bitmaps (0), reserved (4), directory size (8), offset (16).
                if let Some(d) = data.first_chunk::<24>() {
                    let d = super::View(d);
                    ext.bitmaps = Some(BitmapsExtension {
                        count: d.be_u32::<0>(),
                        directory_size: d.be_u64::<8>(),
                        directory_offset: d.be_u64::<16>(),
                    });
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

/// Read the header, its extensions and the backing name (all in cluster
/// 0): size, cluster size, backing name and format, dirty and encrypted
/// flags, `format-specific` and [`HeaderFacts`], or the bytes still needed.
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
    let incompat = h.incompatible_features;
    info.dirty_flag = Some(incompat.contains(Incompatible::DIRTY));

    let unknown_incompat = incompat.bits() & !Incompatible::all().bits();
    if unknown_incompat != 0 {
        let names = bit_names(unknown_incompat, 0, &ext.feature_names);
        info.diagnostics.push(Diagnostic::error(
            Code::Qcow2UnknownIncompatible,
            format!(
                "unknown incompatible feature bits set ({names}): qemu refuses to open this image"
            ),
        ));
    }
    if incompat.contains(Incompatible::CORRUPT) {
        info.diagnostics.push(
            Diagnostic::error(
                Code::Qcow2Corrupt,
                "the image is marked corrupt: qemu opens it read-only only",
            )
            .with_fix("qemu-img check -r all IMAGE"),
        );
    }
    if incompat.contains(Incompatible::DIRTY) {
        info.diagnostics.push(
            Diagnostic::warning(
                Code::Qcow2Dirty,
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
            Code::Encrypted,
            format!("encrypted ({how}): opening it needs a secret (<encryption> in the disk XML)"),
        ));
    }
    data_file_diagnostics(&h, &ext, &mut info);

    for (kind, bits, what) in [
        (
            1u8,
            h.compatible_features.bits() & !Compatible::all().bits(),
            "compatible",
        ),
        (
            2u8,
            h.autoclear_features.bits() & !Autoclear::all().bits(),
            "autoclear",
        ),
    ] {
        if bits != 0 {
            info.diagnostics.push(Diagnostic::info(
                Code::Qcow2UnknownFeature,
                format!(
                    "unknown {what} feature bits set ({})",
                    bit_names(bits, kind, &ext.feature_names)
                ),
            ));
        }
    }
    let mut fs = format_specific(&h, &ext);
    fs.encrypt = match h.crypt_method {
        1 => Some(Encrypt::Aes { format: "aes" }),
        2 => Some(Encrypt::Luks(Box::new(luks_facts(reads, &ext)?))),
        _ => None,
    };
    // qemu uses the bitmaps extension only while the autoclear bit says it
    // is valid, and then lists the bitmaps.
    if let (Some(b), true) = (
        ext.bitmaps,
        h.autoclear_features.contains(Autoclear::BITMAPS),
    ) {
        fs.bitmaps = Some(bitmaps(reads, b)?);
    }
    info.format_specific = Some(FormatSpecific::Qcow2(Box::new(fs)));
    info.header = Some(super::Header::Qcow2(Box::new(header_facts(&h, &ext))));
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
    let bit = h.incompatible_features.contains(Incompatible::DATA_FILE);
    let raw = h.autoclear_features.contains(Autoclear::DATA_FILE_RAW);
    let d = match (&ext.data_file, bit) {
        (None, false) => return,
        (None, true) => Diagnostic::warning(
            Code::ExternalDataFile,
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
            Diagnostic::new(kind.severity(), Code::ExternalDataFile, m)
        }
    };
    info.diagnostics.push(d);
}

fn bit_names(bits: u64, kind: u8, table: &[FeatureName]) -> String {
    (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            table
                .iter()
                .find(|f| f.kind == kind && u32::from(f.bit) == b)
                .map_or_else(|| format!("bit {b}"), |f| format!("bit {b} '{}'", f.name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The LUKS header a `crypt_method` 2 image keeps in the clusters the full
/// disk encryption extension points to: its facts as qemu prints them under
/// `encrypt`.
fn luks_facts(reads: &Reads, ext: &Extensions) -> Result<super::luks::Specific, Stop> {
    let Some(Region {
        offset: off,
        length: len,
    }) = ext.fde
    else {
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
    let v1 = super::luks::parse_v1(b).map_err(|(at, m)| Stop::bad(F, off + at, m))?;
    Ok(super::luks::Specific {
        format: Some("luks"),
        ..v1.facts
    })
}

/// The bitmap directory (qcow2.rst "Bitmap directory"), as `qemu-img info`
/// lists it: name, granularity, flags. Entries: bitmap table offset (u64),
/// table size (u32), flags (u32: bit 0 in-use, bit 1 auto), type (u8),
/// granularity bits (u8), name size (u16), extra data size (u32), extra
/// data, name, padding to 8.
fn bitmaps(reads: &Reads, ext: BitmapsExtension) -> Result<Vec<Bitmap>, Stop> {
    let (n, size, off) = (ext.count, ext.directory_size, ext.directory_offset);
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
        let e =
            View::<24>::at(dir, at).ok_or_else(|| bad("entry runs past the directory".into()))?;
        let flags = e.be_u32::<12>();
        let gran_bits = u32::from(e.u8::<17>());
        let name_len = usize::from(e.be_u16::<18>());
        let extra_len = e.be_u32::<20>() as usize;
        let total = 24usize
            .checked_add(extra_len)
            .and_then(|t| t.checked_add(name_len))
            .filter(|&t| at + t <= dir.len())
            .ok_or_else(|| bad("name or extra data runs past the directory".into()))?;
        if gran_bits > 63 {
            return Err(bad(format!("granularity bits {gran_bits} above 63")));
        }
        let name = String::from_utf8_lossy(&dir[at + 24 + extra_len..at + total]).into_owned();
        let flags = BitmapFlags::from_bits_retain(flags);
        let mut names = Vec::new();
        if flags.contains(BitmapFlags::IN_USE) {
            names.push("in-use");
        }
        if flags.contains(BitmapFlags::AUTO) {
            names.push("auto");
        }
        out.push(Bitmap {
            flags: names,
            name,
            granularity: 1u64 << gran_bits,
        });
        at += total.div_ceil(8) * 8;
    }
    Ok(out)
}

/// The internal snapshot table, as `qemu-img info` lists it. Read in windows
/// that grow with the entries still to read, each at most `MAX_READ`.
fn snapshots(reads: &Reads, h: &Header) -> Result<Vec<Snapshot>, Stop> {
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
        // The fixed part of an entry (qcow2.rst "Snapshot table").
        let e = get(off, 40)?;
        let Some(e) = View::<40>::of(e) else {
            return Err(Stop::bad(F, off, "short snapshot entry"));
        };
        let id_len = u64::from(e.be_u16::<12>());
        let name_len = u64::from(e.be_u16::<14>());
        let extra_len = u64::from(e.be_u32::<36>());
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
        let date_sec = e.be_u32::<16>();
        let date_nsec = e.be_u32::<20>();
        let vm_clock = e.be_u64::<24>();
        let mut vm_state = u64::from(e.be_u32::<32>());
        let e = get(off, total)?;
        let extra = &e[40..40 + extra_len as usize];
        // Extra data: the 64-bit VM state size (0), the virtual disk size
        // (8), the instruction count (16), each there when long enough.
        if let Some(x) = View::<8>::of(extra) {
            vm_state = x.be_u64::<0>();
        }
        let icount = View::<24>::of(extra)
            .map(|x| x.be_u64::<16>())
            .filter(|&c| c != u64::MAX);
        let ids = &e[40 + extra_len as usize..];
        let id = String::from_utf8_lossy(&ids[..id_len as usize]).into_owned();
        let name = String::from_utf8_lossy(&ids[id_len as usize..]).into_owned();
        out.push(Snapshot {
            icount,
            vm_state_size: vm_state,
            date_sec,
            date_nsec,
            vm_clock_sec: vm_clock / 1_000_000_000,
            vm_clock_nsec: vm_clock % 1_000_000_000,
            id,
            name,
        });
        off = off
            .checked_add(total.div_ceil(8) * 8)
            .ok_or_else(|| Stop::bad(F, off, "snapshot table offset overflows"))?;
    }
    Ok(out)
}

/// `format-specific.data` of a qcow2, as `qemu-img info --output=json`
/// prints it. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Specific {
    /// The persistent bitmaps, when the bitmaps extension is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmaps: Option<Vec<Bitmap>>,
    /// `0.10` (version 2) or `1.1` (version 3).
    pub compat: &'static str,
    /// `zlib` or `zstd`.
    pub compression_type: &'static str,
    /// Version 3 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<bool>,
    /// The external data file's name, when the image records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file: Option<String>,
    /// With `data_file`: guest data is kept as a raw image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file_raw: Option<bool>,
    /// How the image is encrypted, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<Encrypt>,
    /// Version 3 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_l2: Option<bool>,
    /// Version 3 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy_refcounts: Option<bool>,
    /// Width of a refcount entry (16 unless the image was made otherwise).
    pub refcount_bits: u64,
}

/// `format-specific.data.encrypt`: `{"format": "aes"}` or the LUKS
/// header's facts with `"format": "luks"`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Encrypt {
    /// The legacy AES-CBC encryption (`crypt_method` 1).
    Aes {
        /// Always `aes`.
        format: &'static str,
    },
    /// A LUKS header in the clusters of the full disk encryption extension.
    Luks(Box<super::luks::Specific>),
}

bitflags! {
    /// A bitmap directory entry's flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct BitmapFlags: u32 {
        const IN_USE = 1 << 0;
        const AUTO = 1 << 1;
    }
}

/// One persistent bitmap, as `qemu-img info` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bitmap {
    /// `in-use`, `auto`.
    pub flags: Vec<&'static str>,
    /// Bytes of guest data one bit stands for.
    pub granularity: u64,
    /// The bitmap's name.
    pub name: String,
}

/// One internal snapshot, as `qemu-img info` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    /// Nanoseconds part of `date_sec`.
    pub date_nsec: u32,
    /// When the snapshot was taken, host wall clock in Unix seconds.
    pub date_sec: u32,
    /// The guest's instruction count (record/replay), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icount: Option<u64>,
    /// The snapshot's unique id string.
    pub id: String,
    /// The snapshot's name.
    pub name: String,
    /// Nanoseconds part of `vm_clock_sec`.
    pub vm_clock_nsec: u64,
    /// The guest clock when the snapshot was taken, in seconds.
    pub vm_clock_sec: u64,
    /// Bytes of saved VM state (0 for a disk-only snapshot).
    pub vm_state_size: u64,
}

/// `header` of a qcow2: the facts `qemu-img info` does not print.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// The autoclear bit of the bitmaps extension.
    pub autoclear_bitmaps: bool,
    /// Autoclear feature bits as a number.
    pub autoclear_features: u64,
    /// The real length of a backing name too long to keep whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_name_length: Option<u64>,
    /// Where the bitmap directory starts (bitmaps extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmap_directory_offset: Option<u64>,
    /// Bytes of the bitmap directory (bitmaps extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmap_directory_size: Option<u64>,
    /// Compatible feature bits as a number.
    pub compatible_features: u64,
    /// The compression type bit is set (not zlib).
    pub compressed: bool,
    /// 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// `null` when there is no such extension.
    pub full_disk_encryption_header: Option<Region>,
    /// See [`Header::header_length`].
    pub header_length: u32,
    /// Incompatible feature bits as a number.
    pub incompatible_features: u64,
    /// See [`Header::l1_size`].
    pub l1_size: u32,
    /// See [`Header::l1_table_offset`].
    pub l1_table_offset: u64,
    /// Persistent bitmaps (bitmaps extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nb_bitmaps: Option<u32>,
    /// See [`Header::nb_snapshots`].
    pub nb_snapshots: u32,
    /// See [`Header::refcount_table_clusters`].
    pub refcount_table_clusters: u32,
    /// See [`Header::refcount_table_offset`].
    pub refcount_table_offset: u64,
    /// See [`Header::snapshots_offset`].
    pub snapshots_offset: u64,
    /// Header extension types this reader does not know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_extensions: Vec<u32>,
    /// 2 or 3.
    pub version: u32,
}

/// `format-specific` as `qemu-img info --output=json` prints it (without
/// `encrypt` and `bitmaps`, which need more reads).
fn format_specific(h: &Header, ext: &Extensions) -> Specific {
    let v3 = h.version == 3;
    let incompat = h.incompatible_features;
    Specific {
        compat: if v3 { "1.1" } else { "0.10" },
        compression_type: if h.compression_type == 1 {
            "zstd"
        } else {
            "zlib"
        },
        lazy_refcounts: v3.then(|| h.compatible_features.contains(Compatible::LAZY_REFCOUNTS)),
        data_file: ext.data_file.clone(),
        data_file_raw: ext
            .data_file
            .as_ref()
            .map(|_| h.autoclear_features.contains(Autoclear::DATA_FILE_RAW)),
        refcount_bits: 1u64 << h.refcount_order,
        corrupt: v3.then(|| incompat.contains(Incompatible::CORRUPT)),
        extended_l2: v3.then(|| incompat.contains(Incompatible::EXTENDED_L2)),
        encrypt: None,
        bitmaps: None,
    }
}

/// The header facts `qemu-img info` does not print, kept for the page and
/// diagnostics.
fn header_facts(h: &Header, ext: &Extensions) -> HeaderFacts {
    HeaderFacts {
        version: h.version,
        crypt_method: h.crypt_method,
        header_length: h.header_length,
        l1_size: h.l1_size,
        l1_table_offset: h.l1_table_offset,
        refcount_table_offset: h.refcount_table_offset,
        refcount_table_clusters: h.refcount_table_clusters,
        nb_snapshots: h.nb_snapshots,
        snapshots_offset: h.snapshots_offset,
        incompatible_features: h.incompatible_features.bits(),
        compatible_features: h.compatible_features.bits(),
        autoclear_features: h.autoclear_features.bits(),
        compressed: h.incompatible_features.contains(Incompatible::COMPRESSION),
        full_disk_encryption_header: ext.fde,
        autoclear_bitmaps: h.autoclear_features.contains(Autoclear::BITMAPS),
        backing_name_length: None,
        nb_bitmaps: ext.bitmaps.map(|b| b.count),
        bitmap_directory_size: ext.bitmaps.map(|b| b.directory_size),
        bitmap_directory_offset: ext.bitmaps.map(|b| b.directory_offset),
        unknown_extensions: ext.unknown.clone(),
    }
}
