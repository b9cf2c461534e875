//! UML copy-on-write (`cow`), the format of User-Mode Linux's `cow_user.c`
//! that libvirt still recognises. All fields big-endian.
//!
//! * version 2: magic `OOOM` (0x4f4f4f4d), version, backing name (1024 bytes,
//!   NUL-terminated) at 8, mtime at 1032, size (u64) at 1036, sector size at 1044.
//! * version 3: magic, version, header size at 8, backing name (1024 bytes)
//!   at 12, mtime at 1036, size (u64) at 1040, sector size at 1048.

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};

const F: Format = Format::Cow;
const MAGIC: u32 = 0x4f4f_4f4d;
const NAME_LEN: usize = 1024;

/// `header` of a cow image. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// The backing file's modification time (Unix seconds) when the COW
    /// file was made.
    pub mtime: u32,
    /// Bytes per sector of the bitmap.
    pub sector_size: u32,
    /// 2 or 3.
    pub version: u32,
}

/// Magic `OOOM` and version 2 or 3 at the start of `head`.
pub fn matches(head: &[u8]) -> bool {
    View::<8>::of(head)
        .is_some_and(|h| h.be_u32::<0>() == MAGIC && matches!(h.be_u32::<4>(), 2 | 3))
}

/// The fields of a version's header: backing name (1024 bytes), mtime,
/// size (u64), sector size; `END` the length of the header.
struct Fields<'a> {
    name: &'a [u8],
    name_at: usize,
    mtime: u32,
    size: u64,
    sector_size: u32,
}

fn fields<
    const NAME_AT: usize,
    const MTIME_AT: usize,
    const SIZE_AT: usize,
    const SECTOR_AT: usize,
    const END: usize,
>(
    reads: &Reads,
) -> Result<Fields<'_>, Stop> {
    let b: View<END> = reads.view(F, 0)?;
    Ok(Fields {
        name: b.bytes::<NAME_AT, NAME_LEN>(),
        name_at: NAME_AT,
        mtime: b.be_u32::<MTIME_AT>(),
        size: b.be_u64::<SIZE_AT>(),
        sector_size: b.be_u32::<SECTOR_AT>(),
    })
}

/// Read the header: size, backing name (whose format is not recorded) and
/// [`HeaderFacts`], or the bytes still needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let head: View<8> = reads.view(F, 0)?;
    let version = head.be_u32::<4>();
    let f = match version {
        2 => fields::<8, 1032, 1036, 1044, 1048>(reads)?,
        3 => fields::<12, 1036, 1040, 1048, 1052>(reads)?,
        v => {
            return Err(Stop::bad(
                F,
                4,
                format!("unsupported cow version {v} (2 and 3 are read)"),
            ))
        }
    };
    let name_field = f.name;
    let Some(name_len) = name_field.iter().position(|&c| c == 0) else {
        return Err(Stop::bad(
            F,
            f.name_at as u64,
            "backing name field of 1024 bytes has no terminating NUL",
        ));
    };
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(f.size);
    if name_len > 0 {
        info.backing_filename = Some(super::lossy(
            &name_field[..name_len],
            &mut info.diagnostics,
            "backing name",
        ));
    }
    info.header = Some(Header::Cow(Box::new(HeaderFacts {
        mtime: f.mtime,
        sector_size: f.sector_size,
        version,
    })));
    Ok(info)
}
