//! QED, after qemu's `docs/interop/qed_spec.txt`. Little-endian header:
//! magic `QED\0`, cluster size (4), table size in clusters (8), header size
//! in clusters (12), features (16), compat features (24), autoclear (32),
//! L1 offset (40), image size (48), backing name offset (56) and size (60).

use serde_json::json;

use super::{le_u32, le_u64, Format, ImageInfo, Reads, Stop};
use crate::diag::Diagnostic;

const F: Format = Format::Qed;
const F_BACKING_FILE: u64 = 0x01;
const F_NEED_CHECK: u64 = 0x02;
const F_BACKING_FORMAT_NO_PROBE: u64 = 0x04;
const F_KNOWN: u64 = 0x07;
/// qemu reads a QED backing name into a PATH_MAX (4096) buffer with its NUL.
const MAX_NAME: u64 = crate::limits::MAX_BACKING_NAME_PATH as u64;

pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"QED\0")
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b = reads.bytes(F, 0, 64)?;
    let cluster_size = le_u32(b, 4);
    let table_size = le_u32(b, 8);
    let header_size = le_u32(b, 12);
    let features = le_u64(b, 16);
    let compat = le_u64(b, 24);
    let autoclear = le_u64(b, 32);
    let l1 = le_u64(b, 40);
    let size = le_u64(b, 48);
    let name_off = le_u32(b, 56);
    let name_len = le_u32(b, 60);
    if !cluster_size.is_power_of_two() || !(4096..=(64 << 20)).contains(&cluster_size) {
        return Err(Stop::bad(
            F,
            4,
            format!("cluster size {cluster_size} is not a power of two in 4 KiB..64 MiB"),
        ));
    }
    if !table_size.is_power_of_two() || !(1..=16).contains(&table_size) {
        return Err(Stop::bad(
            F,
            8,
            format!("table size {table_size} is not a power of two in 1..16"),
        ));
    }
    let header_bytes = u64::from(header_size) * u64::from(cluster_size);
    if header_size == 0 || header_bytes > 64 << 20 {
        return Err(Stop::bad(
            F,
            12,
            format!("header size of {header_size} clusters is out of range"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    info.cluster_size = Some(u64::from(cluster_size));
    info.dirty_flag = Some(features & F_NEED_CHECK != 0);
    if features & !F_KNOWN != 0 {
        info.diagnostics.push(Diagnostic::error(
            "qed-unknown-features",
            format!(
                "unknown feature bits 0x{:x} set: qemu refuses to open this image",
                features & !F_KNOWN
            ),
        ));
    }
    if features & F_NEED_CHECK != 0 {
        info.diagnostics.push(
            Diagnostic::warning(
                "qed-need-check",
                "the need-check bit is set: the image was not closed cleanly",
            )
            .with_fix("qemu-img check -r all IMAGE"),
        );
    }
    let mut long_name = None;
    if features & F_BACKING_FILE != 0 && u64::from(name_len) > MAX_NAME {
        // qemu refuses it; the image is still a qed of this size.
        let len = u64::from(name_len);
        super::too_long_name(reads, F, u64::from(name_off), len, MAX_NAME, &mut info)?;
        if features & F_BACKING_FORMAT_NO_PROBE != 0 {
            info.backing_filename_format = Some("raw".into());
        }
        long_name = Some(len);
    } else if features & F_BACKING_FILE != 0 {
        let len = u64::from(name_len);
        let end = u64::from(name_off) + len;
        if end > header_bytes {
            return Err(Stop::bad(
                F,
                56,
                format!("backing name at {name_off}+{len} lies outside the header ({header_bytes} bytes)"),
            ));
        }
        let name = reads.bytes(F, u64::from(name_off), len)?;
        info.backing_filename = Some(super::lossy(name, &mut info.diagnostics, "backing name"));
        // Only "do not probe" is recorded, and it means raw.
        if features & F_BACKING_FORMAT_NO_PROBE != 0 {
            info.backing_filename_format = Some("raw".into());
        }
    }
    info.header = Some(super::json_header(json!({
        "table-size": table_size,
        "header-size": header_size,
        "features": features,
        "compat-features": compat,
        "autoclear-features": autoclear,
        "l1-table-offset": l1,
    })));
    if let Some(len) = long_name {
        super::note_name_length(&mut info, len);
    }
    Ok(info)
}
