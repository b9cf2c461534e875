//! ISO 9660 (ECMA-119): the volume descriptor set starts at sector 16
//! (byte 32768); each descriptor is a type byte, `CD001`, a version byte. The
//! primary volume descriptor (type 1) holds the volume space size (both-endian
//! u32 at 80) and the logical block size (both-endian u16 at 128).
//!
//! qemu has no ISO driver (it opens an ISO as raw); libvirt knows the format.

use serde_json::json;

use super::{Format, ImageInfo, Reads, Stop, View};
use crate::diag::Diagnostic;

const F: Format = Format::Iso;
pub const DESCRIPTOR_OFFSET: u64 = 32768;
pub const DESCRIPTOR_LEN: u64 = 2048;

/// `CD001` at byte 1 of the first volume descriptor.
pub fn matches_descriptor(d: &[u8]) -> bool {
    d.get(1..6) == Some(b"CD001")
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let d: View<{ DESCRIPTOR_LEN as usize }> = reads.view(F, DESCRIPTOR_OFFSET)?;
    let mut info = ImageInfo::new(F);
    info.virtual_size = reads.file_len();
    info.diagnostics.push(Diagnostic::info(
        "iso-opened-as-raw",
        "ISO 9660 image: qemu has no iso format and opens it as raw",
    ));
    let mut header = serde_json::Map::new();
    header.insert("descriptor-type".into(), json!(d.u8::<0>()));
    if d.u8::<0>() == 1 {
        let blocks = d.le_u32::<80>();
        let block_size = d.le_u16::<128>();
        header.insert(
            "volume-id".into(),
            json!(super::cstr(d.bytes::<40, 32>()).trim_end()),
        );
        header.insert("volume-space-size".into(), json!(blocks));
        header.insert("logical-block-size".into(), json!(block_size));
    }
    info.header = Some(super::Header::Json(header));
    Ok(info)
}
