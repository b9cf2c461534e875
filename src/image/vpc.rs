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

use serde_json::json;

use super::{
    be_u16, be_u32, be_u64, utf16, uuid_be, Format, Identity, ImageInfo, Range, Reads, Stop,
};
use crate::diag::Diagnostic;

const F: Format = Format::Vpc;
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;
/// Longest parent locator data read (bytes).
const MAX_LOCATOR: u64 = 64 * 1024;

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
    let f = reads.bytes(F, footer_at, 512)?;
    if !matches(f) {
        return Err(Stop::bad(F, footer_at, "no `conectix` footer cookie"));
    }
    let mut info = ImageInfo::new(F);
    let stored = be_u32(f, 64);
    if checksum(f, 64) != stored {
        info.diagnostics.push(Diagnostic::warning(
            "vpc-checksum",
            format!(
                "footer checksum at byte {} does not match its contents",
                footer_at + 64
            ),
        ));
    }
    let data_offset = be_u64(f, 16);
    let creator: [u8; 4] = f[28..32].try_into().unwrap_or_default();
    let current_size = be_u64(f, 48);
    let cyls = u64::from(be_u16(f, 56));
    let heads = u64::from(f[58]);
    let secs = u64::from(f[59]);
    let disk_type = be_u32(f, 60);
    let uuid = &f[68..84];
    let chs_sectors = cyls * heads * secs;
    let use_chs = !matches!(&creator, b"win " | b"qem2" | b"d2v " | b"CTXS" | b"tap\0");
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
                footer_at + 60,
                format!("unknown disk type {t}"),
            ))
        }
    };
    info.identity = Some(Identity {
        id: Some(uuid_be(uuid)),
        parent_id: None,
    });
    let mut header = serde_json::Map::new();
    header.insert("disk-type".into(), json!(kind));
    header.insert("footer-offset".into(), json!(footer_at));
    header.insert(
        "creator-app".into(),
        json!(String::from_utf8_lossy(&creator)
            .trim_end_matches(['\0', ' '])
            .to_string()),
    );
    header.insert("creator-version".into(), json!(be_u32(f, 32)));
    header.insert("current-size".into(), json!(current_size));
    header.insert("original-size".into(), json!(be_u64(f, 40)));
    header.insert(
        "geometry".into(),
        json!({ "cylinders": cyls, "heads": heads, "sectors": secs }),
    );
    header.insert(
        "size-from".into(),
        json!(if use_chs && chs_sectors != MAX_GEOMETRY {
            "geometry"
        } else {
            "current-size"
        }),
    );
    header.insert("unique-id".into(), json!(uuid_be(uuid)));
    header.insert("saved-state".into(), json!(f[84] != 0));
    if footer_at != 0 {
        info.diagnostics.push(Diagnostic::info(
            "vpc-footer-only",
            "VHD footer found only at the end of the file (a fixed VHD): qemu probes this as raw, give format vpc explicitly",
        ));
    }
    if disk_type == 2 {
        info.header = Some(super::Header::Json(header));
        return Ok(info);
    }
    // Dynamic / differencing header.
    let d = reads.bytes(F, data_offset, 1024)?;
    if !d.starts_with(b"cxsparse") {
        return Err(Stop::bad(
            F,
            data_offset,
            "no `cxsparse` dynamic disk header at the footer's data offset",
        ));
    }
    if checksum(d, 36) != be_u32(d, 36) {
        info.diagnostics.push(Diagnostic::warning(
            "vpc-checksum",
            format!(
                "dynamic header checksum at byte {} does not match its contents",
                data_offset + 36
            ),
        ));
    }
    let block_size = be_u32(d, 32);
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(Stop::bad(
            F,
            data_offset + 32,
            format!("block size {block_size} is not a power of two of at least 512"),
        ));
    }
    info.cluster_size = Some(u64::from(block_size));
    header.insert("table-offset".into(), json!(be_u64(d, 16)));
    header.insert("max-table-entries".into(), json!(be_u32(d, 28)));
    header.insert("block-size".into(), json!(block_size));
    if disk_type == 4 {
        let parent_uuid = &d[40..56];
        let parent_name = utf16(&d[64..576], true);
        if let Some(id) = info.identity.as_mut() {
            id.parent_id = Some(uuid_be(parent_uuid));
        }
        header.insert("parent-unique-id".into(), json!(uuid_be(parent_uuid)));
        header.insert("parent-timestamp".into(), json!(be_u32(d, 56)));
        header.insert("parent-name".into(), json!(parent_name));
        // Parent locators: ask for all their data in one round.
        let mut entries = Vec::new();
        let mut need = Vec::new();
        for i in 0..8u64 {
            let e = &d[576 + 24 * i as usize..576 + 24 * (i as usize + 1)];
            let code = be_u32(e, 0);
            if code == 0 {
                continue;
            }
            let len = u64::from(be_u32(e, 8));
            let off = be_u64(e, 16);
            let at = data_offset + 576 + 24 * i;
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
            locators
                .push(json!({ "platform": code_text, "offset": off, "length": len, "path": path }));
            if let Some(k) = kind {
                by_kind.push((k, path));
            }
        }
        header.insert("parent-locators".into(), json!(locators));
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
                "vpc-parent-unnamed",
                "differencing VHD without parent name or locator: the parent can be matched only by its unique id",
            )),
        }
        info.diagnostics.push(Diagnostic::warning(
            "vpc-differencing",
            "differencing VHD: qemu's vpc driver does not follow VHD parents",
        ));
    }
    info.header = Some(super::Header::Json(header));
    Ok(info)
}
