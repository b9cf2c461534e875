//! VHDX, after Microsoft's [MS-VHDX] (all fields little-endian, GUIDs in
//! Microsoft byte order).
//!
//! * File type identifier at 0 (§2.2.1): `vhdxfile`, creator (UTF-16).
//! * Two headers at 64 KiB and 128 KiB (§2.2.2): `head`, CRC-32C checksum
//!   (4), sequence number (u64, 8), FileWriteGuid (16), DataWriteGuid (32),
//!   LogGuid (48), log version (64), version (66), log length (68), log
//!   offset (u64, 72). The current header is the valid one with the larger
//!   sequence number.
//! * Region table at 192 KiB (§2.2.3): `regi`, checksum, entry count (8),
//!   entries of 32 bytes from 16: GUID, file offset (u64, 16), length (24),
//!   required (28). BAT and metadata regions are found by GUID. Regions
//!   (and the current header's log) may not overlap each other or the 1 MiB
//!   header section, and BAT and metadata appear once: qemu refuses such an
//!   image, and the probe stops at the entry. The table's checksum covers
//!   64 KiB and is not verified (only the entries are read).
//! * Metadata table at the start of the metadata region (§2.6.1): `metadata`,
//!   entry count (u16, 10), entries of 32 bytes from 32: item GUID, offset
//!   (from the region start, 16), length (20), flags (24).
//! * Items (§2.6.2): file parameters (block size, bit 1 HasParent), virtual
//!   disk size, logical / physical sector size, page 83 id, parent locator
//!   (type GUID, key/value count at 18, entries of 12 bytes from 20: key
//!   offset, value offset, key length, value length; UTF-16 strings).
//!
//! Only these few ranges are read, wherever the metadata region lies, in
//! four rounds (issue 18: each round of the wasm's `probeStep` loop passes
//! every chunk again): the first 4 KiB; both headers with the region table
//! and the two entries every VHDX has; the metadata table with the five
//! entries every VHDX has; the items, in one read when they lie together.
//! A table of more entries costs one more round.

use serde::Serialize;

use super::{
    guid_le, utf16, Format, Identity, ImageInfo, Range, Reads, Region, Stop, TextMap, View,
};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Vhdx;
const HEADER1: u64 = 64 * 1024;
const HEADER2: u64 = 128 * 1024;
const HEADER_LEN: u64 = 4096;
const REGION_TABLE: u64 = 192 * 1024;
use crate::limits::{VHDX_MAX_METADATA_ENTRIES as MAX_ENTRIES, VHDX_MAX_METADATA_ITEM as MAX_ITEM};
/// Headers and region tables: the first 1 MiB of the file.
const HEADER_SECTION: u64 = 1 << 20;

const BAT: &str = "2dc27766-f623-4200-9d64-115e9bfd4a08";
const METADATA: &str = "8b7ca206-4790-4b9a-b8fe-575f050f886e";
const FILE_PARAMETERS: &str = "caa16737-fa36-4d43-b3b6-33f0aa44e76b";
const VIRTUAL_DISK_SIZE: &str = "2fa54224-cd1b-4876-b211-5dbed83bf4b8";
const PAGE83: &str = "beca12ab-b2e6-4523-93ef-c309e000c746";
const LOGICAL_SECTOR: &str = "8141bf1d-a96f-4709-ba47-f233a8faab5f";
const PHYSICAL_SECTOR: &str = "cda348c7-445d-4471-9cc9-e9885251c556";
const PARENT_LOCATOR: &str = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c";
const VHDX_PARENT_TYPE: &str = "b04aefb7-d19e-4a81-b789-25b8e9445913";

/// `header` of a VHDX. (Fields in the order of their keys, as every object
/// of the JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// The block allocation table region, from the region table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bat_region: Option<Region>,
    /// Bytes per payload block (file parameters item).
    pub block_size: u32,
    /// The file type identifier's creator (UTF-16).
    pub creator: String,
    /// The current header's DataWriteGuid: changes when guest data is
    /// written; a child's `parent_linkage` names it.
    pub data_write_guid: String,
    /// The current header's FileWriteGuid: changes when the file is first
    /// opened for writing.
    pub file_write_guid: String,
    /// A differencing disk (file parameters bit 1, HasParent).
    pub has_parent: bool,
    /// Blocks stay allocated (file parameters bit 0, a fixed VHDX).
    pub leave_blocks_allocated: bool,
    /// The current header's LogGuid: not nil when the log must be replayed.
    pub log_guid: String,
    /// `null` without the metadata item.
    pub logical_sector_size: Option<u32>,
    /// The metadata region, from the region table.
    pub metadata_region: Region,
    /// `null` without the metadata item.
    pub page83: Option<String>,
    /// Differencing disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_locator: Option<ParentLocator>,
    /// `null` without the metadata item.
    pub physical_sector_size: Option<u32>,
    /// The current header's sequence number (the larger of the two valid
    /// headers).
    pub sequence_number: u64,
    /// The current header's version (1).
    pub version: u16,
}

/// The parent locator metadata item: its type GUID and key/value pairs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParentLocator {
    /// The key/value pairs (`parent_linkage`, `relative_path`,
    /// `absolute_win32_path`, …), UTF-16 decoded.
    pub entries: TextMap,
    /// The locator type GUID (the VHDX one for a VHDX parent).
    #[serde(rename = "type")]
    pub kind: String,
}

/// The first `N` bytes of `b` (a metadata item of at least `N` bytes),
/// or an error at `at`.
fn fixed<const N: usize>(b: &[u8], at: u64) -> Result<View<'_, N>, Stop> {
    View::of(b).ok_or_else(|| short_item(b.len(), at))
}

#[cold]
fn short_item(len: usize, at: u64) -> Stop {
    Stop::bad(F, at, format!("metadata item of {len} bytes is too short"))
}

/// The file type identifier `vhdxfile` at the start of `head`.
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"vhdxfile")
}

/// CRC-32C (Castagnoli) tables for slicing by 8: `t[0]` is the byte-wise
/// table, `t[k]` the effect of a byte followed by `k` zero bytes. Made on
/// first use (8 KiB that would otherwise sit in the wasm file).
fn crc32c_tables() -> &'static [[u32; 256]; 8] {
    static TABLES: std::sync::OnceLock<Box<[[u32; 256]; 8]>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Box::new([[0u32; 256]; 8]);
        for i in 0..256 {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
            }
            t[0][i] = c;
        }
        for k in 1..8 {
            for i in 0..256 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            }
        }
        t
    })
}

/// Continue a CRC-32C (register form, not inverted) over `b`, eight bytes
/// at a time.
fn crc32c_update(mut crc: u32, b: &[u8]) -> u32 {
    let t = crc32c_tables();
    let (words, rest) = b.as_chunks::<8>();
    for w in words {
        let lo = crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][usize::from(w[4])]
            ^ t[2][usize::from(w[5])]
            ^ t[1][usize::from(w[6])]
            ^ t[0][usize::from(w[7])];
    }
    for &x in rest {
        crc = t[0][((crc ^ u32::from(x)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-32C (Castagnoli), over `b` with the 4 bytes at `skip` taken as zero.
pub(crate) fn crc32c(b: &[u8], skip: usize) -> u32 {
    let skip = skip.min(b.len());
    let end = (skip + 4).min(b.len());
    let crc = crc32c_update(!0u32, &b[..skip]);
    let crc = crc32c_update(crc, &[0u8; 4][..end - skip]);
    !crc32c_update(crc, &b[end..])
}

/// Entries read with the region table's header, in the same round as the
/// two headers: the BAT and the metadata region, the two every VHDX lists
/// ([MS-VHDX] §2.2.3.2). The table takes 64 KiB, so they are never read
/// past it; a table of more entries costs one more round.
const REGION_TABLE_AHEAD: u64 = 16 + 32 * 2;
/// Bytes read with the metadata table's header: its entries for the five
/// items every VHDX has (§2.6.2: file parameters, virtual disk size, page
/// 83 data, logical and physical sector size). The table takes the first
/// 64 KiB of the region; the read stops at the region's end. A sixth entry
/// (a differencing disk's parent locator, beside all five) costs one more
/// round.
const METADATA_TABLE_AHEAD: u64 = 32 + 32 * 5;
/// Ranges at most this far apart are asked as one read (qemu writes the
/// metadata items back to back), up to [`MAX_ITEM`] bytes in all.
const ITEM_GAP: u64 = 64;

/// The bytes `[off, off + len)`; when they are missing, ask for `ahead`
/// bytes at `off` (at least `len`): what the next step will need, read in
/// the same round.
fn bytes_ahead(reads: &Reads, off: u64, len: u64, ahead: u64) -> Result<&[u8], Stop> {
    match reads.bytes(F, off, len) {
        Err(Stop::Need(_)) => Err(Stop::Need(vec![Range::new(off, ahead.max(len))])),
        r => r,
    }
}

/// Gather the ranges not read yet among `wanted` (offset, length, bytes to
/// ask for when missing: [`bytes_ahead`]), those that lie together joined
/// ([`join_near`]); `Ok(())` when all are held.
fn gather(reads: &Reads, wanted: &[(u64, u64, u64)]) -> Result<(), Stop> {
    let mut need = Vec::new();
    for &(off, len, ahead) in wanted {
        match bytes_ahead(reads, off, len, ahead) {
            Ok(_) => {}
            Err(Stop::Need(r)) => need.extend(r),
            Err(e) => return Err(e),
        }
    }
    if need.is_empty() {
        Ok(())
    } else {
        Err(Stop::Need(join_near(need)))
    }
}

/// Join ranges at most [`ITEM_GAP`] bytes after the one before them (in
/// the order given: the headers' and the region table's, or the metadata
/// table's, where qemu lists the items in the order they lie) into one
/// read, while it stays within [`MAX_ITEM`] bytes.
fn join_near(ranges: Vec<Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut() {
            let last_end = last.offset + last.len;
            let end = (r.offset + r.len).max(last_end);
            if (last.offset..=last_end + ITEM_GAP).contains(&r.offset)
                && end - last.offset <= MAX_ITEM
            {
                last.len = end - last.offset;
                continue;
            }
        }
        out.push(r);
    }
    out
}

struct Header {
    seq: u64,
    data_write: String,
    file_write: String,
    log_guid: String,
    log_nonzero: bool,
    version: u16,
    /// The log: (offset, length), a region like the others.
    log: (u64, u64),
    /// Where this header lies.
    at: u64,
}

fn header(reads: &Reads, at: u64) -> Result<Option<Header>, Stop> {
    let b: View<{ HEADER_LEN as usize }> = reads.view(F, at)?;
    if !b.0.starts_with(b"head") || crc32c(b.0, 4) != b.le_u32::<4>() {
        return Ok(None);
    }
    Ok(Some(Header {
        seq: b.le_u64::<8>(),
        file_write: guid_le(b.bytes::<16, 16>()),
        data_write: guid_le(b.bytes::<32, 16>()),
        log_guid: guid_le(b.bytes::<48, 16>()),
        log_nonzero: b.bytes::<48, 16>().iter().any(|&x| x != 0),
        version: b.le_u16::<66>(),
        log: (b.le_u64::<72>(), u64::from(b.le_u32::<68>())),
        at,
    }))
}

/// Read the file type identifier, both headers, the region table, the
/// metadata table and its items: size, block size, the parent locator's
/// names as backing name and [`HeaderFacts`], or the bytes still needed
/// (in a few rounds, only the ranges these need).
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    // The creator is decoded at the end (each round reruns the probe).
    reads.bytes(F, 0, 520)?;
    // Round 2: both headers and the region table with its first entries.
    gather(
        reads,
        &[
            (HEADER1, HEADER_LEN, HEADER_LEN),
            (HEADER2, HEADER_LEN, HEADER_LEN),
            (REGION_TABLE, 16, REGION_TABLE_AHEAD),
        ],
    )?;
    let mut info = ImageInfo::new(F);

    // Region table: header, then exactly its entries.
    let rt: View<16> = reads.view(F, REGION_TABLE)?;
    if !rt.0.starts_with(b"regi") {
        return Err(Stop::bad(
            F,
            REGION_TABLE,
            "no `regi` region table signature",
        ));
    }
    let count = u64::from(rt.le_u32::<8>());
    if count > MAX_ENTRIES {
        return Err(Stop::bad(
            F,
            REGION_TABLE + 8,
            format!("{count} region entries, above {MAX_ENTRIES}"),
        ));
    }
    let rt = reads.bytes(F, REGION_TABLE, 16 + 32 * count)?;
    let mut meta = None;
    let mut bat = None;
    // Regions may not overlap each other or the 1 MiB header section
    // ([MS-VHDX] §2.2.3.1); qemu refuses such an image, and so do we.
    let mut taken: Vec<(u64, u64)> = vec![(0, HEADER_SECTION)];
    // Entries of 32 bytes: GUID (0), file offset (16), length (24),
    // required bit (28).
    let (entries, _) = rt[16..].as_chunks::<32>();
    for (i, e) in entries.iter().enumerate() {
        let e = View(e);
        let id = guid_le(e.bytes::<0, 16>());
        let off = e.le_u64::<16>();
        let len = u64::from(e.le_u32::<24>());
        let at = REGION_TABLE + 16 + 32 * i as u64;
        let name = || match id.as_str() {
            METADATA => format!("metadata region {id}"),
            BAT => format!("BAT region {id}"),
            _ => format!("region {id}"),
        };
        let Some(end) = off.checked_add(len) else {
            let msg = format!("{} at {off} of {len} bytes ends past 2^64", name());
            return Err(Stop::bad(F, at, msg));
        };
        if let Some(&(s, t)) = taken.iter().find(|&&(s, t)| off < t && s < end) {
            let msg = format!("{} at {off}..{end} overlaps the region at {s}..{t}", name());
            return Err(Stop::bad(F, at, msg));
        }
        taken.push((off, end));
        let slot = match id.as_str() {
            METADATA => &mut meta,
            BAT => &mut bat,
            _ if e.le_u32::<28>() & 1 != 0 => {
                return Err(Stop::bad(
                    F,
                    at,
                    format!("unknown required region {id}: the image cannot be read"),
                ))
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(Stop::bad(F, at, format!("{} is listed twice", name())));
        }
        *slot = Some((off, len));
    }
    let Some((meta_off, meta_len)) = meta else {
        return Err(Stop::bad(
            F,
            REGION_TABLE,
            "no metadata region in the region table",
        ));
    };
    if meta_len < 32 || meta_off.checked_add(u64::from(meta_len as u32)).is_none() {
        return Err(Stop::bad(
            F,
            REGION_TABLE,
            format!("metadata region at {meta_off} of {meta_len} bytes is invalid"),
        ));
    }

    // Metadata table header with the entries every VHDX has, then the
    // rest of its entries if there are more.
    bytes_ahead(reads, meta_off, 32, METADATA_TABLE_AHEAD.min(meta_len))?;
    let mt: View<32> = reads.view(F, meta_off)?;
    if !mt.0.starts_with(b"metadata") {
        return Err(Stop::bad(
            F,
            meta_off,
            "no `metadata` signature at the metadata region",
        ));
    }
    let n = u64::from(mt.le_u16::<10>());
    if n > MAX_ENTRIES || 32 + 32 * n > meta_len {
        return Err(Stop::bad(
            F,
            meta_off + 10,
            format!("{n} metadata entries do not fit the table"),
        ));
    }
    let mt = reads.bytes(F, meta_off, 32 + 32 * n)?;
    let mut items: Vec<(String, u64, u64)> = Vec::new();
    // Entries of 32 bytes: item GUID (0), offset (16), length (20), flags
    // (24: bit 2 required).
    let (entries, _) = mt[32..].as_chunks::<32>();
    for (i, e) in entries.iter().enumerate() {
        let e = View(e);
        let id = guid_le(e.bytes::<0, 16>());
        let off = u64::from(e.le_u32::<16>());
        let len = u64::from(e.le_u32::<20>());
        let at = meta_off + 32 + 32 * i as u64;
        let known = [
            FILE_PARAMETERS,
            VIRTUAL_DISK_SIZE,
            PAGE83,
            LOGICAL_SECTOR,
            PHYSICAL_SECTOR,
            PARENT_LOCATOR,
        ];
        if !known.contains(&id.as_str()) {
            if e.le_u32::<24>() & 4 != 0 {
                return Err(Stop::bad(
                    F,
                    at,
                    format!("unknown required metadata item {id}"),
                ));
            }
            continue;
        }
        if off + len > meta_len || len > MAX_ITEM {
            return Err(Stop::bad(
                F,
                at,
                format!("metadata item {id} at {off}+{len} lies outside the {meta_len}-byte region or is too long"),
            ));
        }
        items.push((id, meta_off + off, len));
    }
    // The items, in one read when they lie together.
    let wanted: Vec<_> = items.iter().map(|&(_, o, l)| (o, l, l)).collect();
    gather(reads, &wanted)?;
    let item = |name: &str, min: u64| -> Result<Option<&[u8]>, Stop> {
        match items.iter().find(|(id, _, _)| id == name) {
            Some((_, off, len)) if *len < min => Err(Stop::bad(
                F,
                *off,
                format!("metadata item {name} of {len} bytes, below {min}"),
            )),
            Some((_, off, len)) => reads.bytes(F, *off, *len).map(Some),
            None => Ok(None),
        }
    };
    let Some(fp) = item(FILE_PARAMETERS, 8)? else {
        return Err(Stop::bad(F, meta_off, "no file parameters metadata item"));
    };
    let fp = fixed::<8>(fp, meta_off)?;
    let block_size = fp.le_u32::<0>();
    let fp_bits = fp.le_u32::<4>();
    let has_parent = fp_bits & 2 != 0;
    let Some(vs) = item(VIRTUAL_DISK_SIZE, 8)? else {
        return Err(Stop::bad(F, meta_off, "no virtual disk size metadata item"));
    };
    let size = fixed::<8>(vs, meta_off)?.le_u64::<0>();
    let logical = match item(LOGICAL_SECTOR, 4)? {
        Some(b) => Some(fixed::<4>(b, meta_off)?.le_u32::<0>()),
        None => None,
    };
    let physical = match item(PHYSICAL_SECTOR, 4)? {
        Some(b) => Some(fixed::<4>(b, meta_off)?.le_u32::<0>()),
        None => None,
    };
    let page83 = match item(PAGE83, 16)? {
        Some(b) => Some(guid_le(fixed::<16>(b, meta_off)?.0)),
        None => None,
    };
    if !(1 << 20..=256 << 20).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(Stop::bad(
            F,
            meta_off,
            format!("block size {block_size} is not a power of two in 1..256 MiB"),
        ));
    }
    // The headers' CRC-32C is checked once, in the last round, when every
    // other range is in (each round reruns the probe).
    let h1 = header(reads, HEADER1)?;
    let h2 = header(reads, HEADER2)?;
    let h = match (h1, h2) {
        (Some(a), Some(b)) => {
            if a.seq == b.seq && a.data_write != b.data_write {
                info.diagnostics.push(Diagnostic::warning(
                    Code::VhdxHeadersDisagree,
                    "both headers are valid with the same sequence number but differ",
                ));
            }
            if b.seq > a.seq {
                b
            } else {
                a
            }
        }
        (Some(a), None) | (None, Some(a)) => {
            info.diagnostics.push(Diagnostic::warning(
                Code::VhdxHeaderInvalid,
                "one of the two headers (at 64 KiB and 128 KiB) is not valid (signature or CRC-32C)",
            ));
            a
        }
        (None, None) => {
            return Err(Stop::bad(
                F,
                HEADER1,
                "neither header (at 64 KiB and 128 KiB) is valid (signature or CRC-32C)",
            ))
        }
    };
    let (log_off, log_len) = h.log;
    if log_len != 0 {
        let end = log_off.saturating_add(log_len);
        if let Some(&(s, t)) = taken.iter().find(|&&(s, t)| log_off < t && s < end) {
            return Err(Stop::bad(
                F,
                h.at + 68,
                format!("the log at {log_off}..{end} overlaps the region at {s}..{t}"),
            ));
        }
    }
    if h.log_nonzero {
        info.diagnostics.push(Diagnostic::warning(
            Code::VhdxLog,
            "the log is not empty (LogGuid set): it must be replayed, which qemu does only when opening read-write",
        ));
    }

    info.virtual_size = Some(size);
    info.cluster_size = Some(u64::from(block_size));
    info.dirty_flag = Some(false);
    info.identity = Some(Identity {
        id: Some(h.data_write.clone()),
        parent_id: None,
    });

    let mut header = HeaderFacts {
        bat_region: bat.map(|(offset, length)| Region { length, offset }),
        block_size,
        creator: utf16(&reads.bytes(F, 0, 520)?[8..520], false),
        data_write_guid: h.data_write.clone(),
        file_write_guid: h.file_write.clone(),
        has_parent,
        leave_blocks_allocated: fp_bits & 1 != 0,
        log_guid: h.log_guid.clone(),
        logical_sector_size: logical,
        metadata_region: Region {
            length: meta_len,
            offset: meta_off,
        },
        page83,
        parent_locator: None,
        physical_sector_size: physical,
        sequence_number: h.seq,
        version: h.version,
    };

    if has_parent {
        let Some((_, loc_off, _)) = items
            .iter()
            .find(|(id, _, _)| id == PARENT_LOCATOR)
            .cloned()
        else {
            return Err(Stop::bad(
                F,
                meta_off,
                "HasParent is set but there is no parent locator item",
            ));
        };
        let Some(loc) = item(PARENT_LOCATOR, 20)? else {
            return Err(Stop::bad(F, loc_off, "no parent locator item"));
        };
        // Type GUID (0), key/value count (18), entries of 12 bytes from 20.
        let head = fixed::<20>(loc, loc_off)?;
        let kind = guid_le(head.bytes::<0, 16>());
        let kv = head.le_u16::<18>() as usize;
        if 20 + 12 * kv > loc.len() {
            return Err(Stop::bad(
                F,
                loc_off + 18,
                format!("{kv} parent locator entries do not fit the item"),
            ));
        }
        let mut pairs = Vec::with_capacity(kv);
        let (entries, _) = loc[20..20 + 12 * kv].as_chunks::<12>();
        for (i, e) in entries.iter().enumerate() {
            let e = View(e);
            let (ko, vo) = (e.le_u32::<0>() as usize, e.le_u32::<4>() as usize);
            let (kl, vl) = (e.le_u16::<8>() as usize, e.le_u16::<10>() as usize);
            let (Some(k), Some(v)) = (loc.get(ko..ko + kl), loc.get(vo..vo + vl)) else {
                return Err(Stop::bad(
                    F,
                    loc_off + 20 + 12 * i as u64,
                    format!("parent locator entry {i} points outside the item"),
                ));
            };
            pairs.push((utf16(k, false), utf16(v, false)));
        }
        let pairs = TextMap::from_pairs(pairs);
        if kind != VHDX_PARENT_TYPE {
            info.diagnostics.push(Diagnostic::warning(
                Code::VhdxLocatorType,
                format!("parent locator type {kind} is not the VHDX parent locator"),
            ));
        }
        let get = |k: &str| pairs.get(k).map(str::to_string);
        let name = get("relative_path")
            .or_else(|| get("absolute_win32_path"))
            .or_else(|| get("volume_path"));
        match name {
            Some(n) => {
                info.backing_filename = Some(n);
                // The parent of a differencing VHDX is a VHDX.
                info.backing_filename_format = Some("vhdx".into());
            }
            None => info.diagnostics.push(Diagnostic::warning(
                Code::VhdxParentUnnamed,
                "HasParent is set but the parent locator has no path",
            )),
        }
        if let Some(link) = get("parent_linkage") {
            let id = link.trim_matches(['{', '}']).to_ascii_lowercase();
            if let Some(ident) = info.identity.as_mut() {
                ident.parent_id = Some(id);
            }
        }
        header.parent_locator = Some(ParentLocator {
            entries: pairs,
            kind,
        });
        info.diagnostics.push(Diagnostic::warning(
            Code::VhdxDifferencing,
            "differencing VHDX: qemu's vhdx driver does not open images with a parent",
        ));
    }
    info.header = Some(super::Header::Vhdx(Box::new(header)));
    Ok(info)
}

#[cfg(test)]
mod crc_tests {
    use super::crc32c;

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value (RFC 3720, appendix B.4 catalogue): "123456789".
        assert_eq!(crc32c(b"123456789xxxx", 9), {
            // the 4 skipped bytes count as zeros: compare with explicit zeros
            crc32c(b"123456789\0\0\0\0", usize::MAX)
        });
        assert_eq!(crc32c(b"123456789", usize::MAX), 0xE306_9283);
    }

    #[test]
    fn crc32c_rfc_3720_vectors() {
        // RFC 3720 appendix B.4: 32 bytes of zeros, of ones, ascending,
        // descending (these go through the eight-bytes-at-a-time path).
        let asc: Vec<u8> = (0..32).collect();
        let desc: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&[0; 32], usize::MAX), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xff; 32], usize::MAX), 0x62A8_AB43);
        assert_eq!(crc32c(&asc, usize::MAX), 0x46DD_794E);
        assert_eq!(crc32c(&desc, usize::MAX), 0x113F_DB5C);
    }

    #[test]
    fn crc32c_matches_the_bitwise_definition_at_any_length_and_skip() {
        fn bitwise(b: &[u8]) -> u32 {
            let mut c = !0u32;
            for &x in b {
                c ^= u32::from(x);
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        (c >> 1) ^ 0x82f6_3b78
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            for skip in [0, 1, 3, 4, 7, 8, 9, 50, usize::MAX] {
                let mut zeroed = data[..len].to_vec();
                for z in zeroed.iter_mut().skip(skip).take(4) {
                    *z = 0;
                }
                assert_eq!(crc32c(&data[..len], skip), bitwise(&zeroed), "{len} {skip}");
            }
        }
    }
}
