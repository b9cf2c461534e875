//! Bochs growing ("redolog") images, after the header qemu's `block/bochs.c`
//! reads (little-endian): magic `Bochs Virtual HD Image` (32 bytes, NUL
//! padded), type `Redolog` (16), subtype `Growing` (16), version at 64
//! (0x00010000 or 0x00020000), header size at 68, then catalog entries (72),
//! bitmap size (76), extent size (80) and the disk size in bytes: at 84 for
//! version 1, at 88 (after a timestamp) for version 2.

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};

const F: Format = Format::Bochs;
const V1: u32 = 0x0001_0000;
const V2: u32 = 0x0002_0000;

/// `header` of a Bochs image. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Bytes of allocation bitmap in front of each extent.
    pub bitmap_size: u32,
    /// Entries of the catalog (one per extent of the disk).
    pub catalog_entries: u32,
    /// Bytes of guest data per extent.
    pub extent_size: u32,
    /// Bytes before the catalog.
    pub header_size: u32,
    /// 1 or 2.
    pub version: u32,
}

fn field_is(head: &[u8], at: usize, len: usize, text: &str) -> bool {
    head.get(at..at + len)
        .is_some_and(|f| super::cstr(f) == text)
}

/// Magic, type `Redolog`, subtype `Growing` and a known version at the
/// start of `head`: the images qemu's bochs driver opens.
pub fn matches(head: &[u8]) -> bool {
    field_is(head, 0, 32, "Bochs Virtual HD Image")
        && field_is(head, 32, 16, "Redolog")
        && field_is(head, 48, 16, "Growing")
        && View::<68>::of(head).is_some_and(|h| matches!(h.le_u32::<64>(), V1 | V2))
}

/// Read the header (512 bytes at 0): virtual size and [`HeaderFacts`], or
/// the bytes still needed; extent size, catalog and disk size checked
/// against qemu's bounds.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<512> = reads.view(F, 0)?;
    let version = b.le_u32::<64>();
    let catalog = b.le_u32::<72>();
    let bitmap = b.le_u32::<76>();
    let extent = b.le_u32::<80>();
    let (disk_at, disk) = if version == V1 {
        (84, b.le_u64::<84>())
    } else {
        (88, b.le_u64::<88>())
    };
    // qemu's bounds: extents of 512 B..8 MiB, at most 1 Mi catalog entries.
    if !(512..=0x80_0000).contains(&extent) {
        return Err(Stop::bad(
            F,
            80,
            format!("extent size {extent} outside 512..=8388608"),
        ));
    }
    if catalog > 0x10_0000 {
        return Err(Stop::bad(
            F,
            72,
            format!("{catalog} catalog entries, above qemu's limit of 1048576"),
        ));
    }
    if u64::from(catalog) * u64::from(extent) < disk {
        return Err(Stop::bad(
            F,
            disk_at,
            format!("disk size {disk} is larger than {catalog} extents of {extent} bytes"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(disk / 512 * 512);
    info.header = Some(Header::Bochs(Box::new(HeaderFacts {
        bitmap_size: bitmap,
        catalog_entries: catalog,
        extent_size: extent,
        header_size: b.le_u32::<68>(),
        version: if version == V1 { 1 } else { 2 },
    })));
    Ok(info)
}
