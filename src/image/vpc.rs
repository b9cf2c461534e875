//! VHD (`vpc`), after Microsoft's "Virtual Hard Disk Image Format
//! Specification" (all fields big-endian).
//!
//! * Footer (512 bytes; at the end of every VHD, and copied at offset 0 of
//!   dynamic and differencing disks): cookie `conectix` (0), features (8),
//!   version (12), data offset (u64, 16), timestamp (24), creator application
//!   (28), creator version (32), creator host OS (36), original size (u64,
//!   40), current size (u64, 48), geometry C/H/S (56 u16, 58, 59), disk type
//!   (60: 2 fixed, 3 dynamic, 4 differencing), checksum (64), unique id (68,
//!   16 bytes), saved state (84).
//! * Dynamic disk header (1024 bytes at the footer's data offset): cookie
//!   `cxsparse` (0), table offset (u64, 16), version (24), max table entries
//!   (28), block size (32), checksum (36), parent unique id (40), parent time
//!   stamp (56), parent name (64, 512 bytes UTF-16 big-endian), eight parent
//!   locator entries of 24 bytes from 576: platform code (0), data space (4),
//!   data length (8), data offset (u64, 16).
//!
//! A fixed VHD has its footer only at the end: qemu probes it as raw (it
//! needs `-f vpc`); here it is found and said to be vpc.
//!
//! The virtual size follows qemu: the CHS geometry for images written by
//! Virtual PC / old qemu (creator `vpc `, `qemu`, …), the current size for
//! `win `, `qem2`, `d2v `, `CTXS`, `tap\0` and for the maximal geometry.

use serde::Serialize;

use super::{
    utf16, uuid_be, Format, Header, Identity, ImageInfo, PartitionTable, Range, Reads, Stop, View,
};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Vpc;

/// Offsets of the footer's fields.
mod footer {
    pub const LEN: usize = 512;
    pub const DATA_OFFSET: usize = 16;
    pub const CREATOR_APP: usize = 28;
    pub const CREATOR_VERSION: usize = 32;
    pub const ORIGINAL_SIZE: usize = 40;
    pub const CURRENT_SIZE: usize = 48;
    pub const CYLINDERS: usize = 56;
    pub const HEADS: usize = 58;
    pub const SECTORS: usize = 59;
    pub const DISK_TYPE: usize = 60;
    pub const CHECKSUM: usize = 64;
    pub const UNIQUE_ID: usize = 68;
    pub const SAVED_STATE: usize = 84;
}

/// Offsets of the dynamic disk header's fields.
mod dynamic {
    pub const LEN: usize = 1024;
    pub const TABLE_OFFSET: usize = 16;
    pub const MAX_TABLE_ENTRIES: usize = 28;
    pub const BLOCK_SIZE: usize = 32;
    pub const CHECKSUM: usize = 36;
    pub const PARENT_UNIQUE_ID: usize = 40;
    pub const PARENT_TIMESTAMP: usize = 56;
    pub const PARENT_NAME: usize = 64;
    pub const PARENT_NAME_LEN: usize = 512;
    pub const LOCATORS: usize = 576;
    /// Eight entries of this size: platform code (0), data space (4),
    /// data length (8), data offset (u64, 16).
    pub const LOCATOR_LEN: usize = 24;
}

/// `header` of a VHD. (Fields in the order of their keys, as every object
/// of the JSON; the `Option` ones are those of dynamic and differencing
/// disks.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Bytes per data block (dynamic header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// The footer's creator application, trailing blanks cut (`vpc`,
    /// `qemu`, `win`, `qem2`, …), which decides where the size comes from.
    pub creator_app: String,
    /// The creator application's version (major in the high 16 bits).
    pub creator_version: u32,
    /// The footer's current size in bytes.
    pub current_size: u64,
    /// `fixed`, `dynamic` or `differencing`.
    pub disk_type: &'static str,
    /// Where the footer was read: 0 (the copy at the start of dynamic and
    /// differencing disks) or 512 bytes before the end (fixed disks).
    pub footer_offset: u64,
    /// The footer's disk geometry.
    pub geometry: Geometry,
    /// Entries of the block allocation table (dynamic header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_table_entries: Option<u32>,
    /// The footer's size in bytes when the disk was made.
    pub original_size: u64,
    /// Differencing disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_locators: Option<Vec<Locator>>,
    /// The parent's name as the dynamic header records it (UTF-16,
    /// differencing disks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_name: Option<String>,
    /// The parent's modification time, seconds since 2000-01-01 UTC
    /// (differencing disks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_timestamp: Option<u32>,
    /// The parent's unique id (differencing disks): its footer's
    /// `unique_id` when the chain is intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_unique_id: Option<String>,
    /// The guest disk's partition table (fixed disks: their data starts at 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_table: Option<PartitionTable>,
    /// The footer's saved-state flag: the disk belongs to a VM that was
    /// saved (suspended).
    pub saved_state: bool,
    /// `geometry` or `current-size`: where the virtual size comes from.
    pub size_from: &'static str,
    /// Where the block allocation table starts (dynamic header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_offset: Option<u64>,
    /// The footer's unique id (UUID).
    pub unique_id: String,
}

/// The footer's CHS geometry.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Geometry {
    /// Cylinders.
    pub cylinders: u64,
    /// Heads.
    pub heads: u64,
    /// Sectors per track.
    pub sectors: u64,
}

/// A parent locator entry of a differencing disk, with its path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Locator {
    /// Bytes of path data.
    pub length: u64,
    /// Where the path data starts.
    pub offset: u64,
    /// The path: UTF-16 for `W2ku`/`W2ru`, text up to a NUL for the
    /// others, empty for an unknown platform.
    pub path: String,
    /// The platform code as text (`W2ku`, `W2ru`, `Mac `, …).
    pub platform: String,
}
/// The largest CHS geometry: a disk of this geometry takes its size from
/// `current_size` (a format rule, not a limit).
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;
use crate::limits::VPC_MAX_LOCATOR as MAX_LOCATOR;

/// The cookie `conectix` at the start of `head` (the footer copy of a
/// dynamic or differencing disk, or the last 512 bytes of a fixed one).
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"conectix")
}

fn checksum(b: &[u8], skip: usize) -> u32 {
    let sum: u32 = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    !sum
}

fn platform(code: u32) -> Option<&'static str> {
    Some(match &code.to_be_bytes() {
        b"W2ku" => "W2ku",
        b"W2ru" => "W2ru",
        b"Wi2k" => "Wi2k",
        b"Wi2r" => "Wi2r",
        b"Mac " => "Mac",
        b"MacX" => "MacX",
        _ => return None,
    })
}

/// Read the footer (at 0, else at the end of the file) and, for dynamic
/// and differencing disks, the dynamic header and the parent locators:
/// size (as qemu computes it), block size, unique ids as [`Identity`], a
/// parent locator's path (relative first) or the parent name as backing
/// name, or the bytes still needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let head = reads.bytes_upto(F, 0, 512)?;
    let footer_at = if matches(head) {
        0
    } else {
        let Some(len) = reads.file_len() else {
            return Err(Stop::bad(
                F,
                0,
                "the VHD footer is at the end of the file, whose length is unknown",
            ));
        };
        len.checked_sub(512).ok_or_else(|| {
            Stop::bad(
                F,
                0,
                format!("file of {len} bytes is shorter than a VHD footer"),
            )
        })?
    };
    let f: View<{ footer::LEN }> = reads.view(F, footer_at)?;
    if !matches(f.0) {
        return Err(Stop::bad(F, footer_at, "no `conectix` footer cookie"));
    }
    let mut info = ImageInfo::new(F);
    let stored = f.be_u32::<{ footer::CHECKSUM }>();
    if checksum(f.0, footer::CHECKSUM) != stored {
        info.diagnostics.push(Diagnostic::warning(
            Code::VpcChecksum,
            format!(
                "footer checksum at byte {} does not match its contents",
                footer_at + footer::CHECKSUM as u64
            ),
        ));
    }
    let data_offset = f.be_u64::<{ footer::DATA_OFFSET }>();
    let creator = f.bytes::<{ footer::CREATOR_APP }, 4>();
    let current_size = f.be_u64::<{ footer::CURRENT_SIZE }>();
    let cyls = u64::from(f.be_u16::<{ footer::CYLINDERS }>());
    let heads = u64::from(f.u8::<{ footer::HEADS }>());
    let secs = u64::from(f.u8::<{ footer::SECTORS }>());
    let disk_type = f.be_u32::<{ footer::DISK_TYPE }>();
    let uuid = f.bytes::<{ footer::UNIQUE_ID }, 16>();
    let chs_sectors = cyls * heads * secs;
    let use_chs = !matches!(creator, b"win " | b"qem2" | b"d2v " | b"CTXS" | b"tap\0");
    info.virtual_size = Some(if !use_chs || chs_sectors == MAX_GEOMETRY {
        current_size / 512 * 512
    } else {
        chs_sectors * 512
    });
    info.dirty_flag = Some(false);
    let kind = match disk_type {
        2 => "fixed",
        3 => "dynamic",
        4 => "differencing",
        t => {
            return Err(Stop::bad(
                F,
                footer_at + footer::DISK_TYPE as u64,
                format!("unknown disk type {t}"),
            ))
        }
    };
    info.identity = Some(Identity {
        id: Some(uuid_be(uuid)),
        parent_id: None,
    });
    let mut header = HeaderFacts {
        block_size: None,
        creator_app: String::from_utf8_lossy(creator)
            .trim_end_matches(['\0', ' '])
            .to_string(),
        creator_version: f.be_u32::<{ footer::CREATOR_VERSION }>(),
        current_size,
        disk_type: kind,
        footer_offset: footer_at,
        geometry: Geometry {
            cylinders: cyls,
            heads,
            sectors: secs,
        },
        max_table_entries: None,
        original_size: f.be_u64::<{ footer::ORIGINAL_SIZE }>(),
        parent_locators: None,
        parent_name: None,
        parent_timestamp: None,
        parent_unique_id: None,
        partition_table: None,
        saved_state: f.u8::<{ footer::SAVED_STATE }>() != 0,
        size_from: if use_chs && chs_sectors != MAX_GEOMETRY {
            "geometry"
        } else {
            "current-size"
        },
        table_offset: None,
        unique_id: uuid_be(uuid),
    };
    if footer_at != 0 {
        info.diagnostics.push(Diagnostic::info(
            Code::VpcFooterOnly,
            "VHD footer found only at the end of the file (a fixed VHD): qemu probes this as raw, give format vpc explicitly",
        ));
    }
    if disk_type == 2 {
        info.header = Some(Header::Vpc(Box::new(header)));
        return Ok(info);
    }
    // Dynamic / differencing header.
    let d: View<{ dynamic::LEN }> = reads.view(F, data_offset)?;
    if !d.0.starts_with(b"cxsparse") {
        return Err(Stop::bad(
            F,
            data_offset,
            "no `cxsparse` dynamic disk header at the footer's data offset",
        ));
    }
    if checksum(d.0, dynamic::CHECKSUM) != d.be_u32::<{ dynamic::CHECKSUM }>() {
        info.diagnostics.push(Diagnostic::warning(
            Code::VpcChecksum,
            format!(
                "dynamic header checksum at byte {} does not match its contents",
                data_offset + dynamic::CHECKSUM as u64
            ),
        ));
    }
    let block_size = d.be_u32::<{ dynamic::BLOCK_SIZE }>();
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(Stop::bad(
            F,
            data_offset + dynamic::BLOCK_SIZE as u64,
            format!("block size {block_size} is not a power of two of at least 512"),
        ));
    }
    info.cluster_size = Some(u64::from(block_size));
    header.table_offset = Some(d.be_u64::<{ dynamic::TABLE_OFFSET }>());
    header.max_table_entries = Some(d.be_u32::<{ dynamic::MAX_TABLE_ENTRIES }>());
    header.block_size = Some(block_size);
    if disk_type == 4 {
        let parent_uuid = d.bytes::<{ dynamic::PARENT_UNIQUE_ID }, 16>();
        let parent_name = utf16(
            d.bytes::<{ dynamic::PARENT_NAME }, { dynamic::PARENT_NAME_LEN }>(),
            true,
        );
        if let Some(id) = info.identity.as_mut() {
            id.parent_id = Some(uuid_be(parent_uuid));
        }
        header.parent_unique_id = Some(uuid_be(parent_uuid));
        header.parent_timestamp = Some(d.be_u32::<{ dynamic::PARENT_TIMESTAMP }>());
        header.parent_name = Some(parent_name.clone());
        // Parent locators: ask for all their data in one round.
        let mut entries = Vec::new();
        let mut need = Vec::new();
        let table = d.bytes::<{ dynamic::LOCATORS }, { 8 * dynamic::LOCATOR_LEN }>();
        let (table, _) = table.as_chunks::<{ dynamic::LOCATOR_LEN }>();
        for (i, e) in (0u64..).zip(table) {
            let e = View(e);
            let code = e.be_u32::<0>();
            if code == 0 {
                continue;
            }
            let len = u64::from(e.be_u32::<8>());
            let off = e.be_u64::<16>();
            let at = data_offset + (dynamic::LOCATORS + dynamic::LOCATOR_LEN * i as usize) as u64;
            if len > MAX_LOCATOR {
                return Err(Stop::bad(
                    F,
                    at + 8,
                    format!("parent locator {i} of {len} bytes, above the limit of {MAX_LOCATOR}"),
                ));
            }
            entries.push((i, at, code, len, off));
            if let Err(Stop::Need(_)) = reads.bytes(F, off, len) {
                need.push(Range::new(off, len));
            }
        }
        if !need.is_empty() {
            return Err(Stop::Need(need));
        }
        let mut locators = Vec::new();
        let mut by_kind: Vec<(&str, String)> = Vec::new();
        for (i, at, code, len, off) in entries {
            let data = reads.bytes(F, off, len).map_err(|e| match e {
                Stop::Bad(mut pe) => {
                    pe.message = format!("parent locator {i} (entry at byte {at}): {}", pe.message);
                    Stop::Bad(pe)
                }
                other => other,
            })?;
            let kind = platform(code);
            let path = match kind {
                Some("W2ku" | "W2ru") => utf16(data, false),
                Some("Mac" | "MacX" | "Wi2k" | "Wi2r") => super::cstr(data),
                _ => String::new(),
            };
            let code_text = String::from_utf8_lossy(&code.to_be_bytes()).into_owned();
            locators.push(Locator {
                length: len,
                offset: off,
                path: path.clone(),
                platform: code_text,
            });
            if let Some(k) = kind {
                by_kind.push((k, path));
            }
        }
        header.parent_locators = Some(locators);
        // Relative locator first, then absolute, then the bare parent name.
        let pick = ["W2ru", "W2ku", "MacX", "Wi2r", "Wi2k", "Mac"]
            .iter()
            .find_map(|k| {
                by_kind
                    .iter()
                    .find(|(kk, p)| kk == k && !p.is_empty())
                    .map(|(_, p)| p.clone())
            });
        let name = pick.or_else(|| (!parent_name.is_empty()).then(|| parent_name.clone()));
        match name {
            Some(n) => {
                info.backing_filename = Some(n);
                // The parent of a differencing VHD is a VHD.
                info.backing_filename_format = Some("vpc".into());
            }
            None => info.diagnostics.push(Diagnostic::warning(
                Code::VpcParentUnnamed,
                "differencing VHD without parent name or locator: the parent can be matched only by its unique id",
            )),
        }
        info.diagnostics.push(Diagnostic::warning(
            Code::VpcDifferencing,
            "differencing VHD: qemu's vpc driver does not follow VHD parents",
        ));
    }
    info.header = Some(Header::Vpc(Box::new(header)));
    Ok(info)
}
