//! Parallels / ploop, after qemu's `docs/interop/parallels.txt` (all fields
//! little-endian): magic `WithoutFreeSpace` or `WithouFreSpacExt` (16
//! bytes), version (16), heads (20), cylinders (24), cluster size in sectors
//! (28), BAT entries (32), size in sectors (u64, 36), in-use marker (44,
//! 0x746f6e59 when not closed cleanly), data offset in sectors (48), flags
//! (52), format extension offset (u64, 56).

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Parallels;
const INUSE: u32 = 0x746f_6e59;

/// `header` of a Parallels image. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Entries of the block allocation table.
    pub bat_entries: u32,
    /// Bytes.
    pub cluster_size: u64,
    /// The geometry's cylinders (informational).
    pub cylinders: u32,
    /// Bytes.
    pub data_offset: u64,
    /// Offset of the format extension cluster, in 512-byte sectors (0 when
    /// there is none).
    pub ext_offset: u64,
    /// Bit 0: the image is empty.
    pub flags: u32,
    /// The geometry's heads (informational).
    pub heads: u32,
    /// The in-use marker is set: not closed cleanly.
    pub in_use: bool,
    /// `WithoutFreeSpace` or `WithouFreSpacExt` (the extended format).
    pub magic: String,
}

/// One of the two magics and version 2 at the start of `head`.
pub fn matches(head: &[u8]) -> bool {
    (head.starts_with(b"WithoutFreeSpace") || head.starts_with(b"WithouFreSpacExt"))
        && View::<20>::of(head).is_some_and(|h| h.le_u32::<16>() == 2)
}

/// Read the 64-byte header: virtual size and [`HeaderFacts`], or the bytes
/// still needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<64> = reads.view(F, 0)?;
    let tracks = b.le_u32::<28>();
    let nb_sectors = b.le_u64::<36>();
    let inuse = b.le_u32::<44>();
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
            Code::ParallelsInUse,
            "the in-use marker is set: the image was not closed cleanly",
        ));
    }
    info.header = Some(Header::Parallels(Box::new(HeaderFacts {
        bat_entries: b.le_u32::<32>(),
        cluster_size: u64::from(tracks) * 512,
        cylinders: b.le_u32::<24>(),
        data_offset: u64::from(b.le_u32::<48>()) * 512,
        ext_offset: b.le_u64::<56>(),
        flags: b.le_u32::<52>(),
        heads: b.le_u32::<20>(),
        in_use: inuse == INUSE,
        magic: super::cstr(b.bytes::<0, 16>()),
    })));
    Ok(info)
}
