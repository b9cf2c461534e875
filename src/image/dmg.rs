//! Apple UDIF (`dmg`): a 512-byte `koly` trailer at the end of the file
//! (all fields big-endian): signature (0), version (4), header size (8),
//! flags (12), data fork offset / length (24 / 32), resource fork offset /
//! length (40 / 48), XML plist offset / length (216 / 224), image variant
//! (488), sector count (u64, 492).
//!
//! qemu's dmg driver does not probe (it goes by the `.dmg` suffix); the
//! trailer is found only when nothing matched at offset 0.

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};

const F: Format = Format::Dmg;

/// `header` of a DMG: its `koly` trailer. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Bytes of the data fork (the compressed chunks).
    pub data_fork_length: u64,
    /// Where the data fork starts.
    pub data_fork_offset: u64,
    /// The trailer's flags word.
    pub flags: u32,
    /// The image variant word.
    pub image_variant: u32,
    /// Bytes of the resource fork.
    pub rsrc_fork_length: u64,
    /// Where the resource fork starts.
    pub rsrc_fork_offset: u64,
    /// The guest disk's size in 512-byte sectors.
    pub sector_count: u64,
    /// Where the `koly` trailer was read (file length − 512).
    pub trailer_offset: u64,
    /// The trailer's version (4 in the images Apple's tools write).
    pub version: u32,
    /// Bytes of the XML property list (the block tables).
    pub xml_length: u64,
    /// Where the XML property list starts.
    pub xml_offset: u64,
}

/// `koly` and a header size of 512 at the start of `t`, the last 512
/// bytes of the file.
pub fn matches_trailer(t: &[u8]) -> bool {
    t.starts_with(b"koly") && View::<12>::of(t).is_some_and(|t| t.be_u32::<8>() == 512)
}

/// Read the `koly` trailer (the file length must be known): virtual size
/// and [`HeaderFacts`], or the bytes still needed.
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
    let t: View<512> = reads.view(F, at)?;
    let sectors = t.be_u64::<492>();
    let Some(size) = sectors.checked_mul(512) else {
        return Err(Stop::bad(
            F,
            at + 492,
            format!("{sectors} sectors overflow a byte size"),
        ));
    };
    let xml_off = t.be_u64::<216>();
    let xml_len = t.be_u64::<224>();
    if xml_off.checked_add(xml_len).is_none_or(|e| e > len) {
        return Err(Stop::bad(
            F,
            at + 216,
            format!("XML plist at {xml_off}+{xml_len} lies past the end of the file ({len} bytes)"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    info.header = Some(Header::Dmg(Box::new(HeaderFacts {
        data_fork_length: t.be_u64::<32>(),
        data_fork_offset: t.be_u64::<24>(),
        flags: t.be_u32::<12>(),
        image_variant: t.be_u32::<488>(),
        rsrc_fork_length: t.be_u64::<48>(),
        rsrc_fork_offset: t.be_u64::<40>(),
        sector_count: sectors,
        trailer_offset: at,
        version: t.be_u32::<4>(),
        xml_length: xml_len,
        xml_offset: xml_off,
    })));
    Ok(info)
}
