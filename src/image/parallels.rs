//! Parallels / ploop, after qemu's `docs/interop/parallels.txt` (all fields
//! little-endian): magic `WithoutFreeSpace` or `WithouFreSpacExt` (16
//! bytes), version (16), heads (20), cylinders (24), cluster size in sectors
//! (28), BAT entries (32), size in sectors (u64, 36), in-use marker (44,
//! 0x746f6e59 when not closed cleanly), data offset in sectors (48), flags
//! (52), format extension offset (u64, 56).

use serde_json::json;

use super::{le_u32, le_u64, Format, ImageInfo, Reads, Stop};
use crate::diag::Diagnostic;

const F: Format = Format::Parallels;
const INUSE: u32 = 0x746f_6e59;

pub fn matches(head: &[u8]) -> bool {
    (head.starts_with(b"WithoutFreeSpace") || head.starts_with(b"WithouFreSpacExt"))
        && head.len() >= 20
        && le_u32(head, 16) == 2
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b = reads.bytes(F, 0, 64)?;
    let tracks = le_u32(b, 28);
    let nb_sectors = le_u64(b, 36);
    let inuse = le_u32(b, 44);
    if tracks == 0 {
        return Err(Stop::bad(F, 28, "cluster size of 0 sectors"));
    }
    let Some(size) = nb_sectors.checked_mul(512) else {
        return Err(Stop::bad(
            F,
            36,
            format!("{nb_sectors} sectors overflow a byte size"),
        ));
    };
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    // qemu-img prints neither cluster-size nor dirty-flag for parallels; the
    // cluster size is in `header`.
    if inuse == INUSE {
        info.diagnostics.push(Diagnostic::warning(
            "parallels-in-use",
            "the in-use marker is set: the image was not closed cleanly",
        ));
    }
    info.header = Some(super::json_header(json!({
        "magic": super::cstr(&b[0..16]),
        "cluster-size": u64::from(tracks) * 512,
        "heads": le_u32(b, 20),
        "cylinders": le_u32(b, 24),
        "bat-entries": le_u32(b, 32),
        "in-use": inuse == INUSE,
        "data-offset": u64::from(le_u32(b, 48)) * 512,
        "flags": le_u32(b, 52),
        "ext-offset": le_u64(b, 56),
    })));
    Ok(info)
}
