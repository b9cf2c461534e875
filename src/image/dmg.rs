//! Apple UDIF (`dmg`): a 512-byte `koly` trailer at the end of the file
//! (all fields big-endian): signature (0), version (4), header size (8),
//! flags (12), data fork offset / length (24 / 32), resource fork offset /
//! length (40 / 48), XML plist offset / length (216 / 224), image variant
//! (488), sector count (u64, 492).
//!
//! qemu's dmg driver does not probe (it goes by the `.dmg` suffix); the
//! trailer is found only when nothing matched at offset 0.

use serde_json::json;

use super::{be_u32, be_u64, Format, ImageInfo, Reads, Stop};

const F: Format = Format::Dmg;

pub fn matches_trailer(t: &[u8]) -> bool {
    t.starts_with(b"koly") && t.len() >= 12 && be_u32(t, 8) == 512
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let Some(len) = reads.file_len() else {
        return Err(Stop::bad(
            F,
            0,
            "the koly trailer is at the end of the file, whose length is unknown",
        ));
    };
    let Some(at) = len.checked_sub(512) else {
        return Err(Stop::bad(
            F,
            0,
            format!("file of {len} bytes is shorter than the 512-byte koly trailer"),
        ));
    };
    let t = reads.bytes(F, at, 512)?;
    let sectors = be_u64(t, 492);
    let Some(size) = sectors.checked_mul(512) else {
        return Err(Stop::bad(
            F,
            at + 492,
            format!("{sectors} sectors overflow a byte size"),
        ));
    };
    let xml_off = be_u64(t, 216);
    let xml_len = be_u64(t, 224);
    if xml_off.checked_add(xml_len).is_none_or(|e| e > len) {
        return Err(Stop::bad(
            F,
            at + 216,
            format!("XML plist at {xml_off}+{xml_len} lies past the end of the file ({len} bytes)"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    info.header = Some(super::json_header(json!({
        "trailer-offset": at,
        "version": be_u32(t, 4),
        "flags": be_u32(t, 12),
        "data-fork-offset": be_u64(t, 24),
        "data-fork-length": be_u64(t, 32),
        "rsrc-fork-offset": be_u64(t, 40),
        "rsrc-fork-length": be_u64(t, 48),
        "xml-offset": xml_off,
        "xml-length": xml_len,
        "image-variant": be_u32(t, 488),
        "sector-count": sectors,
    })));
    Ok(info)
}
