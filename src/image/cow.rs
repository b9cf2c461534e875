//! UML copy-on-write (`cow`), the format of User-Mode Linux's `cow_user.c`
//! that libvirt still recognises. All fields big-endian.
//!
//! * version 2: magic `OOOM` (0x4f4f4f4d), version, backing name (1024 bytes,
//!   NUL-terminated) at 8, mtime at 1032, size (u64) at 1036, sector size at 1044.
//! * version 3: magic, version, header size at 8, backing name (1024 bytes)
//!   at 12, mtime at 1036, size (u64) at 1040, sector size at 1048.

use serde_json::json;

use super::{be_u32, be_u64, Format, ImageInfo, Reads, Stop};

const F: Format = Format::Cow;
const MAGIC: u32 = 0x4f4f_4f4d;
const NAME_LEN: usize = 1024;

pub fn matches(head: &[u8]) -> bool {
    head.len() >= 8 && be_u32(head, 0) == MAGIC && matches!(be_u32(head, 4), 2 | 3)
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let head = reads.bytes(F, 0, 8)?;
    let version = be_u32(head, 4);
    let (name_at, size_at, sector_at) = match version {
        2 => (8usize, 1036usize, 1044usize),
        3 => (12, 1040, 1048),
        v => {
            return Err(Stop::bad(
                F,
                4,
                format!("unsupported cow version {v} (2 and 3 are read)"),
            ))
        }
    };
    let b = reads.bytes(F, 0, (sector_at + 4) as u64)?;
    let name_field = &b[name_at..name_at + NAME_LEN];
    let Some(name_len) = name_field.iter().position(|&c| c == 0) else {
        return Err(Stop::bad(
            F,
            name_at as u64,
            "backing name field of 1024 bytes has no terminating NUL",
        ));
    };
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(be_u64(b, size_at));
    if name_len > 0 {
        info.backing_filename = Some(super::lossy(
            &name_field[..name_len],
            &mut info.diagnostics,
            "backing name",
        ));
    }
    info.header = Some(super::json_header(json!({
        "version": version,
        "mtime": be_u32(b, size_at - 4),
        "sector-size": be_u32(b, sector_at),
    })));
    Ok(info)
}
