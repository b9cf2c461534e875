//! ISO 9660 (ECMA-119): the volume descriptor set starts at sector 16
//! (byte 32768); each descriptor is a type byte, `CD001`, a version byte. The
//! primary volume descriptor (type 1) holds the volume space size (both-endian
//! u32 at 80) and the logical block size (both-endian u16 at 128).
//!
//! qemu has no ISO driver (it opens an ISO as raw); libvirt knows the format.

use serde::Serialize;

use super::{Format, Header, ImageInfo, PartitionTable, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Iso;
/// Where the first volume descriptor starts (sector 16 of 2048 bytes).
pub const DESCRIPTOR_OFFSET: u64 = 32768;
/// The size of a volume descriptor.
pub const DESCRIPTOR_LEN: u64 = 2048;

/// `CD001` at byte 1 of the first volume descriptor.
pub fn matches_descriptor(d: &[u8]) -> bool {
    d.get(1..6) == Some(b"CD001")
}

/// `header` of an ISO 9660 image: its first volume descriptor. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// 0 boot record, 1 primary, 2 supplementary, 3 partition, 255 set
    /// terminator.
    pub descriptor_type: u8,
    /// Primary volume descriptors (type 1) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_block_size: Option<u16>,
    /// What a hybrid ISO holds besides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_table: Option<PartitionTable>,
    /// Primary volume descriptors (type 1) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// Primary volume descriptors (type 1) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_space_size: Option<u32>,
}

/// Read the first volume descriptor: the virtual size is the file length
/// (qemu opens the image as raw) and an `iso-opened-as-raw` info says so.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let d: View<{ DESCRIPTOR_LEN as usize }> = reads.view(F, DESCRIPTOR_OFFSET)?;
    let mut info = ImageInfo::new(F);
    info.virtual_size = reads.file_len();
    info.diagnostics.push(Diagnostic::info(
        Code::IsoOpenedAsRaw,
        "ISO 9660 image: qemu has no iso format and opens it as raw",
    ));
    let mut header = HeaderFacts {
        descriptor_type: d.u8::<0>(),
        logical_block_size: None,
        partition_table: None,
        volume_id: None,
        volume_space_size: None,
    };
    if header.descriptor_type == 1 {
        header.logical_block_size = Some(d.le_u16::<128>());
        header.volume_id = Some(super::cstr(d.bytes::<40, 32>()).trim_end().to_string());
        header.volume_space_size = Some(d.le_u32::<80>());
    }
    info.header = Some(Header::Iso(Box::new(header)));
    Ok(info)
}
