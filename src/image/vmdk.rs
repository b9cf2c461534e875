//! VMDK, after VMware's "Virtual Disk Format 5.0" and the fields qemu's
//! `block/vmdk.c` reads.
//!
//! * Hosted sparse extent (`KDMV`, little-endian): version (4), flags (8),
//!   capacity in sectors (u64, 12), grain size in sectors (u64, 20), embedded
//!   descriptor offset and size in sectors (u64, 28 / 36), grain table
//!   entries (44), redundant / primary grain directory (u64, 48 / 56), grain
//!   data offset (u64, 64), unclean-shutdown byte (72), newline check bytes
//!   (73..77), compression algorithm (u16, 77). The descriptor is found
//!   through its offset and size (not assumed at sector 1).
//!   streamOptimized images put the grain directory at the end
//!   (`gd_offset` = all ones) and repeat the header in a footer 1024 bytes
//!   before the end of the file, which is the one that counts.
//! * VMware 3 sparse extent (`COWD`): version (4), flags (8), capacity in
//!   sectors (u32, 12), grain (u32, 16); as qemu does, its `CID`,
//!   `parentCID` and `parentFileNameHint` are read from descriptor text at
//!   byte 512 (at most 10 KiB, up to a NUL).
//! * Text descriptor files (`# Disk DescriptorFile`, first non-comment line
//!   `version=N`): monolithicFlat, twoGbMaxExtent*, vmfs*, …
//!
//! The descriptor gives `CID`, `parentCID`, `createType`,
//! `parentFileNameHint` and the extent lines `ACCESS SECTORS TYPE "FILE" [OFFSET]`.

use serde::Serialize;

use super::safety::NameKind;
use super::{Format, FormatSpecific, Identity, ImageInfo, Reads, Stop, TextMap, View};
use crate::diag::{Code, Diagnostic, Severity};

const F: Format = Format::Vmdk;
pub use crate::limits::VMDK_MAX_DESCRIPTOR as MAX_DESCRIPTOR;
use crate::limits::VMDK_MAX_GRAIN_SECTORS as MAX_GRAIN_SECTORS;
const GD_AT_END: u64 = u64::MAX;

/// Offsets of a hosted sparse extent header's fields (`SparseExtentHeader`).
mod at {
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 8;
    /// Sectors (u64).
    pub const CAPACITY: usize = 12;
    /// Sectors (u64).
    pub const GRAIN_SIZE: usize = 20;
    /// Sectors (u64).
    pub const DESCRIPTOR_OFFSET: usize = 28;
    /// Sectors (u64).
    pub const DESCRIPTOR_SIZE: usize = 36;
    pub const GD_OFFSET: usize = 56;
    pub const COMPRESS_ALGORITHM: usize = 77;
    /// The header's fields end here.
    pub const END: usize = 79;
}

/// A hosted sparse extent header, read whole.
type SparseHeader<'a> = View<'a, { at::END }>;
/// The last 1536 bytes of a stream-optimized file: footer marker, footer
/// header, end-of-stream marker (512 bytes each).
type Footer<'a> = View<'a, 1536>;

bitflags::bitflags! {
    /// A hosted sparse extent header's flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Flags: u32 {
        const VALID_NEWLINE = 1 << 0;
        const REDUNDANT_GRAIN_TABLE = 1 << 1;
        const ZEROED_GTE = 1 << 2;
        const COMPRESSED = 1 << 16;
        const MARKERS = 1 << 17;
    }
}
const NO_PARENT: u32 = 0xffff_ffff;
/// Where qemu reads a COWD extent's descriptor text, and how much of it.
const COWD_DESCRIPTOR_AT: u64 = 512;
const COWD_DESCRIPTOR: u64 = 20 * 512;

/// A sparse extent header at the start of `head`: `KDMV` (hosted sparse)
/// or `COWD` (VMware 3 / ESX sparse).
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"KDMV") || head.starts_with(b"COWD")
}

/// A text descriptor: comment lines (`#`) and blank lines, then `version=N`.
pub fn matches_descriptor(head: &[u8]) -> bool {
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'#') {
            continue;
        }
        if line.iter().all(|&c| c == b' ') {
            continue;
        }
        return matches!(line, b"version=1" | b"version=2" | b"version=3");
    }
    false
}

#[derive(Debug, Default)]
struct Descriptor {
    version: Option<String>,
    cid: Option<u32>,
    parent_cid: Option<u32>,
    create_type: Option<String>,
    parent_hint: Option<String>,
    extents: Vec<Extent>,
    other: TextMap,
}

/// One extent line of a descriptor: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
/// Kept in `header.extents` and given by [`ImageInfo::vmdk_extents`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// `RW`, `RDONLY` or `NOACCESS` (qemu opens only `RW` extents).
    pub access: String,
    /// qemu opens `file` as a separate file when it opens this image: true
    /// for the extents of a descriptor file (and of a sparse header of
    /// capacity 0, whose embedded descriptor qemu reads as one); false for
    /// the extent line embedded in a monolithic sparse or stream-optimized
    /// file, which names the file itself and is not opened.
    pub external: bool,
    /// The file name exactly as written (relative names are relative to the
    /// descriptor's directory); `None` for `ZERO` extents and for the image
    /// itself.
    pub file: Option<String>,
    /// Offset in sectors into `file` (`FLAT` extents).
    pub offset: Option<u64>,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`, `VMFSSPARSE`, `VMFSRDM`, `VMFSRAW`,
    /// `SESPARSE`, or `COWD` for a VMware 3 sparse file itself.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `format-specific.data` of a VMDK, as `qemu-img info --output=json`
/// prints it. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Specific {
    /// The descriptor's content id `CID` (changes when the disk is written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<u32>,
    /// The descriptor's `createType` (`monolithicSparse`,
    /// `streamOptimized`, `twoGbMaxExtentFlat`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_type: Option<String>,
    /// The extents, as qemu-img lists them.
    pub extents: Vec<ExtentInfo>,
    /// The descriptor's `parentCID`: the parent's `CID` when this layer was
    /// made (`ffffffff`, no parent, is left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_cid: Option<u32>,
}

/// One extent in `format-specific.data.extents`, as qemu-img prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ExtentInfo {
    /// The grain, for a sparse extent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    /// Only `true` is printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed: Option<bool>,
    /// The extent's file name as the descriptor gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The extent type of a descriptor file's extent, `""` for the sparse
    /// extent the descriptor is embedded in.
    pub format: String,
    /// Bytes of the guest disk this extent holds.
    pub virtual_size: u64,
}

/// `header` of a VMDK: the descriptor and, for a sparse file, its binary
/// header (the `Option` fields: a hosted sparse extent, `KDMV`, has all
/// but `variant`; a VMware 3 one, `COWD`, `variant`, `version`, `flags`; a
/// descriptor file none).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// 0 none, 1 deflate (stream-optimized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress_algorithm: Option<u16>,
    /// The descriptor's other `key=value` lines (at most 64).
    pub descriptor: TextMap,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor_offset: Option<u64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor_size: Option<u64>,
    /// The descriptor's `version=` (`null` when absent).
    pub descriptor_version: Option<String>,
    /// The descriptor's extent lines.
    pub extents: Vec<Extent>,
    /// The sparse header's flags (bit 0 valid newline test, 1 redundant
    /// grain table, 16 compressed grains, 17 markers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    /// Sectors; all ones when the grain directory is at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grain_directory_offset: Option<u64>,
    /// Where the header used was read: 0, or the footer's near the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_offset: Option<u64>,
    /// Grains and tables are preceded by stream markers (flag bit 17).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markers: Option<bool>,
    /// `null` when absent.
    pub parent_file_name_hint: Option<String>,
    /// `COWD` for a VMware 3 sparse extent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
    /// The sparse extent header's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

fn parse_descriptor(text: &str, base: u64, info: &mut ImageInfo) -> Result<Descriptor, Stop> {
    let mut d = Descriptor::default();
    let mut pos = base;
    for raw in text.split('\n') {
        let at = pos;
        pos += raw.len() as u64 + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            d.extents.push(parse_extent(line, at)?);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            info.diagnostics.push(Diagnostic::warning(
                Code::VmdkDescriptorLine,
                format!(
                    "descriptor line at byte {at} is neither key=value nor an extent: {}",
                    crate::text::Quoted(line)
                ),
            ));
            continue;
        };
        let k = k.trim();
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        let hex = |v: &str| {
            u32::from_str_radix(v, 16).map_err(|_| {
                Stop::bad(
                    F,
                    at,
                    format!(
                        "{k}={} is not a 32-bit hexadecimal number",
                        crate::text::Quoted(v)
                    ),
                )
            })
        };
        match k {
            "version" => d.version = Some(v.to_string()),
            "CID" => d.cid = Some(hex(v)?),
            "parentCID" => d.parent_cid = Some(hex(v)?),
            "createType" => d.create_type = Some(v.to_string()),
            "parentFileNameHint" => d.parent_hint = Some(v.to_string()),
            _ => {
                if d.other.len() < 64 {
                    d.other.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    Ok(d)
}

fn parse_extent(line: &str, at: u64) -> Result<Extent, Stop> {
    let bad = |m: &str| {
        Stop::bad(
            F,
            at,
            format!("extent line {}: {m}", crate::text::Quoted(line)),
        )
    };
    let mut rest = line;
    let word = |rest: &mut &str| -> Option<String> {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        *rest = r;
        (!w.is_empty()).then(|| w.to_string())
    };
    let access = word(&mut rest).ok_or_else(|| bad("no access"))?;
    let sectors = word(&mut rest)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("size is not a number of sectors"))?;
    if sectors.checked_mul(512).is_none() {
        return Err(bad("size overflows"));
    }
    let kind = word(&mut rest).ok_or_else(|| bad("no extent type"))?;
    let t = rest.trim_start();
    let (file, rest) = if let Some(q) = t.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| bad("file name without closing quote"))?;
        (Some(q[..end].to_string()), &q[end + 1..])
    } else {
        (None, t)
    };
    let offset = match rest.split_whitespace().next() {
        Some(o) => Some(
            o.parse::<u64>()
                .map_err(|_| bad("offset is not a number"))?,
        ),
        None => None,
    };
    Ok(Extent {
        access,
        sectors,
        kind,
        file,
        offset,
        external: false,
    })
}

/// Read a sparse header (and its footer and embedded descriptor) or a
/// descriptor file: size, grain, `CID`/`parentCID` as [`Identity`],
/// `parentFileNameHint` as backing name, the extents, or the bytes still
/// needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let head = reads.bytes_upto(F, 0, 4)?;
    if head.starts_with(b"KDMV") {
        sparse(reads)
    } else if head.starts_with(b"COWD") {
        cowd(reads)
    } else {
        text(reads)
    }
}

/// The descriptor text up to its first NUL, as UTF-8 (lossy, flagged).
fn descriptor_text(bytes: &[u8], info: &mut ImageInfo) -> String {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    super::lossy(&bytes[..end], &mut info.diagnostics, "descriptor")
}

fn sparse(reads: &Reads) -> Result<ImageInfo, Stop> {
    let mut h: SparseHeader = reads.view(F, 0)?;
    let mut header_at = 0u64;
    let mut info = ImageInfo::new(F);
    if h.le_u64::<{ at::GD_OFFSET }>() == GD_AT_END {
        match reads.file_len() {
            Some(len) if len >= 1536 => {
                // Footer marker (512), footer header (512), end-of-stream marker (512).
                let footer: Footer = reads.view(F, len - 1536)?;
                let marker_size = footer.le_u32::<8>();
                let marker_type = footer.le_u32::<12>();
                if marker_size != 0 || marker_type != 3 || footer.bytes::<512, 4>() != b"KDMV" {
                    return Err(Stop::bad(
                        F,
                        len - 1536,
                        "grain directory at the end, but no footer marker and header 1536 bytes before the end",
                    ));
                }
                footer_diagnostics(h, footer, &mut info);
                h = footer.sub::<512, { at::END }>();
                header_at = len - 1024;
            }
            Some(len) => {
                return Err(Stop::bad(F, 56, format!("grain directory at the end, but the file has only {len} bytes")))
            }
            None => info.diagnostics.push(Diagnostic::warning(
                Code::VmdkFooterUnread,
                "stream-optimized: the footer header at the end was not read (file length unknown); the first header is used",
            )),
        }
    }
    // From the footer's header when there is one (it is the one qemu uses).
    let desc_sectors = h.le_u64::<{ at::DESCRIPTOR_OFFSET }>();
    let desc_len_sectors = h.le_u64::<{ at::DESCRIPTOR_SIZE }>();
    let version = h.le_u32::<{ at::VERSION }>();
    let flags = h.le_u32::<{ at::FLAGS }>();
    let capacity = h.le_u64::<{ at::CAPACITY }>();
    let grain = h.le_u64::<{ at::GRAIN_SIZE }>();
    let compress = h.le_u16::<{ at::COMPRESS_ALGORITHM }>();
    let flag_bits = Flags::from_bits_retain(flags);
    if version == 0 || version > 3 {
        return Err(Stop::bad(
            F,
            header_at + at::VERSION as u64,
            format!("unsupported sparse extent version {version}"),
        ));
    }
    if grain == 0 || grain > MAX_GRAIN_SECTORS {
        return Err(Stop::bad(
            F,
            header_at + at::GRAIN_SIZE as u64,
            format!("grain of {grain} sectors is outside 1..={MAX_GRAIN_SECTORS}"),
        ));
    }
    let Some(size) = capacity.checked_mul(512) else {
        return Err(Stop::bad(
            F,
            header_at + at::CAPACITY as u64,
            format!("capacity of {capacity} sectors overflows"),
        ));
    };
    info.virtual_size = Some(size);
    info.cluster_size = Some(grain * 512);
    info.dirty_flag = Some(false);

    let mut desc = Descriptor::default();
    let embedded_extents = capacity == 0 && desc_sectors != 0;
    if desc_sectors != 0 {
        let (Some(off), Some(len)) = (
            desc_sectors.checked_mul(512),
            desc_len_sectors.checked_mul(512),
        ) else {
            return Err(Stop::bad(
                F,
                header_at + at::DESCRIPTOR_OFFSET as u64,
                "descriptor offset or size overflows",
            ));
        };
        if len > MAX_DESCRIPTOR + 1 {
            return Err(Stop::bad(
                F,
                header_at + at::DESCRIPTOR_SIZE as u64,
                format!(
                    "embedded descriptor of {len} bytes, above the limit of {} bytes",
                    MAX_DESCRIPTOR + 1
                ),
            ));
        }
        // The descriptor is NUL-terminated: when the part already read (the
        // first 4 KiB) holds the NUL, do not ask for the rest.
        let first = reads.bytes_upto(F, 0, super::FIRST_READ.len)?;
        let early = (off < first.len() as u64)
            .then(|| &first[off as usize..first.len().min((off + len) as usize)])
            .filter(|b| b.contains(&0));
        let bytes = match early {
            Some(b) => b,
            None => reads.bytes(F, off, len)?,
        };
        let text = descriptor_text(bytes, &mut info);
        desc = parse_descriptor(&text, off, &mut info)?;
        if capacity == 0 {
            // qemu (vmdk_open_vmdk4) reads the embedded descriptor of a
            // sparse header of capacity 0 as a descriptor file: its
            // extents are opened as files and make the size.
            info.virtual_size = Some(extents_size(&desc, off)?);
            mark_external(&mut desc);
            info.diagnostics.push(Diagnostic::warning(
                Code::VmdkEmbeddedExtents,
                "sparse header of capacity 0: qemu reads the embedded descriptor as a descriptor \
                 file and opens the files its extent lines name",
            ));
        }
        extent_diagnostics(&desc, &mut info);
    } else {
        info.diagnostics.push(Diagnostic::warning(
            Code::VmdkNoDescriptor,
            "sparse extent without an embedded descriptor (an extent of a multi-file disk?)",
        ));
    }
    // Extents qemu opens as files are listed as a descriptor file's are.
    let sparse_extent = (!embedded_extents).then_some((
        grain * 512,
        flag_bits.contains(Flags::COMPRESSED) || compress != 0,
    ));
    let hosted = HeaderFacts {
        version: Some(version),
        flags: Some(flags),
        compress_algorithm: Some(compress),
        markers: Some(flag_bits.contains(Flags::MARKERS)),
        descriptor_offset: Some(desc_sectors.saturating_mul(512)),
        descriptor_size: Some(desc_len_sectors.saturating_mul(512)),
        grain_directory_offset: Some(h.le_u64::<{ at::GD_OFFSET }>()),
        header_offset: Some(header_at),
        ..HeaderFacts::default()
    };
    finish(&mut info, desc, sparse_extent, hosted);
    Ok(info)
}

/// The checks qemu (`vmdk_open_vmdk4`) and OpenStack's `format_inspector`
/// make on a stream-optimized footer. `first` is the header at offset 0,
/// `footer` the last 1536 bytes: footer marker, footer header, end-of-stream
/// marker.
fn footer_diagnostics(first: SparseHeader, footer: Footer, info: &mut ImageInfo) {
    let fh: SparseHeader = footer.sub::<512, { at::END }>();
    let eos = footer.sub::<1024, 16>();
    let mut bad = Vec::new();
    if eos.le_u64::<0>() != 0 || eos.le_u32::<8>() != 0 || eos.le_u32::<12>() != 0 {
        bad.push("the end-of-stream marker after it is not one (qemu: \"Invalid footer\")");
    }
    if fh.le_u64::<{ at::GD_OFFSET }>() == GD_AT_END {
        bad.push(
            "the footer's grain directory is 'at the end' again (a footer pointing to a footer)",
        );
    }
    if fh.le_u32::<{ at::VERSION }>() != first.le_u32::<{ at::VERSION }>() {
        bad.push("the header and the footer give different versions");
    }
    let desc = |h: SparseHeader| {
        (
            h.le_u64::<{ at::DESCRIPTOR_OFFSET }>(),
            h.le_u64::<{ at::DESCRIPTOR_SIZE }>(),
        )
    };
    if desc(fh) != desc(first) {
        bad.push("the header and the footer point to different descriptors (qemu reads the footer's, other tools the header's)");
    }
    if !bad.is_empty() {
        info.diagnostics.push(Diagnostic::error(
            Code::VmdkFooterMismatch,
            format!("stream-optimized footer: {}", bad.join("; ")),
        ));
    }
}

fn cowd(reads: &Reads) -> Result<ImageInfo, Stop> {
    let h: View<20> = reads.view(F, 0)?;
    let sectors = u64::from(h.le_u32::<12>());
    let grain = u64::from(h.le_u32::<16>());
    if grain == 0 || grain > MAX_GRAIN_SECTORS {
        return Err(Stop::bad(
            F,
            16,
            format!("grain of {grain} sectors is outside 1..={MAX_GRAIN_SECTORS}"),
        ));
    }
    let (version, flags) = (h.le_u32::<4>(), h.le_u32::<8>());
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(sectors * 512);
    info.cluster_size = Some(grain * 512);
    info.dirty_flag = Some(false);
    // qemu reads the CID, parentCID and parentFileNameHint of a COWD extent
    // from text at byte 512 (up to its NUL, at most COWD_DESCRIPTOR bytes):
    // the 4 KiB first read usually holds it all.
    let first = reads.bytes_upto(F, 0, super::FIRST_READ.len)?;
    let bytes = match first.get(COWD_DESCRIPTOR_AT as usize..) {
        Some(b) if b.contains(&0) || reads.file_len() == Some(first.len() as u64) => b,
        _ => reads.bytes_upto(F, COWD_DESCRIPTOR_AT, COWD_DESCRIPTOR)?,
    };
    let text = descriptor_text(bytes, &mut info);
    let mut desc = parse_descriptor(&text, COWD_DESCRIPTOR_AT, &mut info)?;
    // qemu looks for the first "CID" anywhere in that text (even inside
    // "parentCID") and refuses the image when there is none.
    if !crate::text::contains(&text, "CID") {
        info.diagnostics.push(Diagnostic::warning(
            Code::VmdkCowdNoCid,
            "no CID in the text at byte 512: qemu refuses to open this COWD image",
        ));
    }
    // The extent is the file itself; qemu gives a COWD image no create type.
    desc.create_type = Some(String::new());
    desc.extents = vec![Extent {
        access: "RW".into(),
        sectors,
        kind: "COWD".into(),
        file: None,
        offset: None,
        external: false,
    }];
    let cowd = HeaderFacts {
        variant: Some("COWD"),
        version: Some(version),
        flags: Some(flags),
        ..HeaderFacts::default()
    };
    finish(&mut info, desc, Some((grain * 512, false)), cowd);
    Ok(info)
}

fn text(reads: &Reads) -> Result<ImageInfo, Stop> {
    let want = reads
        .file_len()
        .map_or(MAX_DESCRIPTOR, |l| l.min(MAX_DESCRIPTOR));
    let first = reads.bytes_upto(F, 0, super::FIRST_READ.len)?;
    let bytes = if (first.len() as u64) >= want || first.contains(&0) {
        first
    } else {
        reads.bytes_upto(F, 0, want)?
    };
    let mut info = ImageInfo::new(F);
    if reads.file_len().is_none_or(|l| l > MAX_DESCRIPTOR) && !bytes.contains(&0) {
        info.diagnostics.push(Diagnostic::warning(
            Code::VmdkDescriptorCap,
            format!("descriptor file longer than the {MAX_DESCRIPTOR}-byte cap: only the first {MAX_DESCRIPTOR} bytes were read (as qemu does)"),
        ));
    }
    let text = descriptor_text(bytes, &mut info);
    let mut desc = parse_descriptor(&text, 0, &mut info)?;
    if desc.extents.is_empty() {
        return Err(Stop::bad(F, 0, "descriptor file without extent lines"));
    }
    info.virtual_size = Some(extents_size(&desc, 0)?);
    mark_external(&mut desc);
    extent_diagnostics(&desc, &mut info);
    info.dirty_flag = Some(false);
    finish(&mut info, desc, None, HeaderFacts::default());
    Ok(info)
}

/// The sum of the extents' sizes (bytes).
fn extents_size(d: &Descriptor, at: u64) -> Result<u64, Stop> {
    d.extents
        .iter()
        .try_fold(0u64, |acc, e| acc.checked_add(e.sectors.checked_mul(512)?))
        .ok_or_else(|| Stop::bad(F, at, "sum of the extent sizes overflows"))
}

/// The descriptor is one qemu reads as a descriptor file: every extent with
/// a file name is a file qemu opens.
fn mark_external(d: &mut Descriptor) {
    for e in &mut d.extents {
        e.external = e.file.is_some();
    }
}

/// Extent file names that are not plain names next to the descriptor
/// (OpenStack's `format_inspector` refuses any `/` in an extent line;
/// CVE-2024-4467: a `json:` extent made `qemu-img info` open anything).
/// An extent qemu opens: `vmdk-extent-protocol` (error) for `json:`, URLs
/// and protocol prefixes; `vmdk-extent-path` for paths (error when absolute
/// outside the usual image directories, a device or climbing out with `..`,
/// warning for a sub-directory or an image directory). An extent line
/// embedded in a sparse file names the file itself and qemu does not open
/// it: a strange name there is a warning only.
fn extent_diagnostics(d: &Descriptor, info: &mut ImageInfo) {
    for (i, e) in d.extents.iter().enumerate() {
        let Some(file) = &e.file else { continue };
        let kind = NameKind::of(file);
        if kind == NameKind::Plain {
            continue;
        }
        let code = if kind == NameKind::Protocol {
            Code::VmdkExtentProtocol
        } else {
            Code::VmdkExtentPath
        };
        let (severity, opened) = if e.external {
            (
                kind.severity(),
                if e.access == "RW" {
                    "qemu opens it with this image"
                } else {
                    "qemu skips it (not RW) but other tools open it"
                },
            )
        } else {
            (
                Severity::Warning,
                "the extent is this file itself and qemu does not open the name, other tools might",
            )
        };
        info.diagnostics.push(Diagnostic::new(
            severity,
            code,
            format!(
                "extent {} ({} {} sectors) names '{file}', {}: {opened}",
                i + 1,
                e.kind,
                e.sectors,
                kind.reason()
            ),
        ));
    }
}

/// Fill names, identity, `format-specific` and `header` from the
/// descriptor. `sparse` is (grain bytes, compressed) when the descriptor is
/// embedded in a hosted sparse extent: its one extent is the file itself;
/// `facts` the sparse file's binary header (the descriptor's facts are
/// filled in here).
fn finish(info: &mut ImageInfo, d: Descriptor, sparse: Option<(u64, bool)>, facts: HeaderFacts) {
    if let Some(hint) = &d.parent_hint {
        info.backing_filename = Some(hint.clone());
        // A vmdk's parent is a vmdk (qemu reports it so).
        info.backing_filename_format = Some("vmdk".into());
    }
    let parent = d.parent_cid.filter(|&p| p != NO_PARENT);
    info.identity = Some(Identity {
        id: d.cid.map(|c| format!("{c:08x}")),
        parent_id: parent.map(|c| format!("{c:08x}")),
    });
    if parent.is_some() && d.parent_hint.is_none() {
        info.diagnostics.push(Diagnostic::warning(
            Code::VmdkParentWithoutName,
            "parentCID is set but there is no parentFileNameHint: the parent can be matched only by CID",
        ));
    }
    let extents = d
        .extents
        .iter()
        .map(|e| {
            let (format, cluster_size, compressed) = match sparse {
                Some((grain, compressed)) => {
                    (String::new(), Some(grain), compressed.then_some(true))
                }
                None => (e.kind.clone(), None, None),
            };
            ExtentInfo {
                virtual_size: e.sectors * 512,
                filename: e.file.clone(),
                format,
                cluster_size,
                compressed,
            }
        })
        .collect();
    info.format_specific = Some(FormatSpecific::Vmdk(Specific {
        cid: d.cid,
        parent_cid: d.parent_cid,
        create_type: d.create_type,
        extents,
    }));
    info.header = Some(super::Header::Vmdk(Box::new(HeaderFacts {
        descriptor_version: d.version,
        parent_file_name_hint: d.parent_hint,
        extents: d.extents,
        descriptor: d.other,
        ..facts
    })));
}
