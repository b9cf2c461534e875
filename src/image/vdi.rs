//! VirtualBox VDI, after the layout qemu's `block/vdi.c` reads (all fields
//! little-endian): a 64-byte text banner, signature 0xbeda107f at 0x40,
//! version at 0x44, header size at 0x48, image type at 0x4c (1 dynamic,
//! 2 static, 3 undo, 4 differencing), flags at 0x50, description at 0x54,
//! block map / data offsets at 0x154 / 0x158, sector size at 0x168, disk
//! size (u64) at 0x170, block size at 0x178, blocks in image / allocated at
//! 0x180 / 0x184, then the image, last-snapshot, link and parent UUIDs at
//! 0x188, 0x198, 0x1a8, 0x1b8 (VirtualBox's in-memory UUID order, first
//! three fields little-endian, shown here as GUIDs).

use serde::Serialize;

use super::{guid_le, Format, Header, Identity, ImageInfo, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Vdi;
const SIGNATURE: u32 = 0xbeda_107f;

/// Offsets of the header's fields.
mod at {
    pub const SIGNATURE: usize = 0x40;
    pub const VERSION: usize = 0x44;
    pub const HEADER_SIZE: usize = 0x48;
    pub const IMAGE_TYPE: usize = 0x4c;
    pub const IMAGE_FLAGS: usize = 0x50;
    pub const DESCRIPTION: usize = 0x54;
    pub const DESCRIPTION_LEN: usize = 0x100;
    pub const OFFSET_BMAP: usize = 0x154;
    pub const OFFSET_DATA: usize = 0x158;
    pub const SECTOR_SIZE: usize = 0x168;
    pub const DISK_SIZE: usize = 0x170;
    pub const BLOCK_SIZE: usize = 0x178;
    pub const BLOCKS_IN_IMAGE: usize = 0x180;
    pub const BLOCKS_ALLOCATED: usize = 0x184;
    pub const UUID: usize = 0x188;
    pub const UUID_LAST_SNAP: usize = 0x198;
    pub const UUID_LINK: usize = 0x1a8;
    pub const UUID_PARENT: usize = 0x1b8;
    /// The header's fields end here.
    pub const END: usize = 0x1c8;
}

/// `header` of a VDI. (Fields in the order of their keys, as every object
/// of the JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Blocks that hold data.
    pub blocks_allocated: u32,
    /// Blocks of the whole disk (entries of the block map).
    pub blocks_in_image: u32,
    /// The free-text description (up to 256 bytes).
    pub description: String,
    /// Bytes of the header after the pre-header.
    pub header_size: u32,
    /// Image flags word (VirtualBox's; qemu ignores it).
    pub image_flags: u32,
    /// `dynamic`, `static`, `undo`, `differencing` or `unknown`.
    pub image_type: &'static str,
    /// Where the block map starts.
    pub offset_bmap: u32,
    /// Where the data blocks start.
    pub offset_data: u32,
    /// Bytes per sector (512).
    pub sector_size: u32,
    /// This image's UUID.
    pub uuid: String,
    /// The UUID of the last snapshot.
    pub uuid_last_snap: String,
    /// The UUID this image links to (undo and differencing images).
    pub uuid_link: String,
    /// The parent image's UUID (differencing images; nil otherwise).
    pub uuid_parent: String,
    /// `MAJOR.MINOR`.
    pub version: String,
}

/// The signature `0xbeda107f` at 0x40 of `head`.
pub fn matches(head: &[u8]) -> bool {
    View::<{ at::HEADER_SIZE }>::of(head)
        .is_some_and(|h| h.le_u32::<{ at::SIGNATURE }>() == SIGNATURE)
}

fn is_nil(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Read the header (0x1c8 bytes): size, block size, UUIDs as
/// [`Identity`] and [`HeaderFacts`]; differencing and other types qemu
/// does not open are said in diagnostics.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<{ at::END }> = reads.view(F, 0)?;
    let version = b.le_u32::<{ at::VERSION }>();
    let image_type = b.le_u32::<{ at::IMAGE_TYPE }>();
    let disk_size = b.le_u64::<{ at::DISK_SIZE }>();
    let block_size = b.le_u32::<{ at::BLOCK_SIZE }>();
    let sector_size = b.le_u32::<{ at::SECTOR_SIZE }>();
    let blocks_in_image = b.le_u32::<{ at::BLOCKS_IN_IMAGE }>();
    if version >> 16 != 1 {
        return Err(Stop::bad(
            F,
            at::VERSION as u64,
            format!("unsupported version {}.{}", version >> 16, version & 0xffff),
        ));
    }
    if block_size == 0 || !block_size.is_power_of_two() {
        return Err(Stop::bad(
            F,
            at::BLOCK_SIZE as u64,
            format!("block size {block_size} is not a power of two"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(disk_size);
    info.cluster_size = Some(u64::from(block_size));
    info.dirty_flag = Some(false);
    let kind = match image_type {
        1 => "dynamic",
        2 => "static",
        3 => "undo",
        4 => "differencing",
        _ => "unknown",
    };
    let uuid = b.bytes::<{ at::UUID }, 16>();
    let parent = b.bytes::<{ at::UUID_PARENT }, 16>();
    info.identity = Some(Identity {
        id: (!is_nil(uuid)).then(|| guid_le(uuid)),
        parent_id: (!is_nil(parent)).then(|| guid_le(parent)),
    });
    if image_type == 4 {
        // A differencing VDI names its parent only by UUID; the parent is a VDI.
        info.backing_filename_format = None;
        info.diagnostics.push(Diagnostic::warning(
            Code::VdiDifferencing,
            format!(
                "differencing VDI: its parent is the VDI with UUID {} (no file name is recorded); qemu opens only dynamic and static VDI",
                guid_le(parent)
            ),
        ));
    } else if image_type != 1 && image_type != 2 {
        info.diagnostics.push(Diagnostic::error(
            Code::VdiUnsupportedType,
            format!(
                "VDI image type {image_type} ({kind}): qemu opens only dynamic (1) and static (2)"
            ),
        ));
    }
    if u64::from(blocks_in_image) * u64::from(block_size) < disk_size {
        info.diagnostics.push(Diagnostic::warning(
            Code::VdiSizeMismatch,
            format!("{blocks_in_image} blocks of {block_size} bytes do not cover the disk size {disk_size}"),
        ));
    }
    info.header = Some(Header::Vdi(Box::new(HeaderFacts {
        blocks_allocated: b.le_u32::<{ at::BLOCKS_ALLOCATED }>(),
        blocks_in_image,
        description: super::cstr(b.bytes::<{ at::DESCRIPTION }, { at::DESCRIPTION_LEN }>()),
        header_size: b.le_u32::<{ at::HEADER_SIZE }>(),
        image_flags: b.le_u32::<{ at::IMAGE_FLAGS }>(),
        image_type: kind,
        offset_bmap: b.le_u32::<{ at::OFFSET_BMAP }>(),
        offset_data: b.le_u32::<{ at::OFFSET_DATA }>(),
        sector_size,
        uuid: guid_le(uuid),
        uuid_last_snap: guid_le(b.bytes::<{ at::UUID_LAST_SNAP }, 16>()),
        uuid_link: guid_le(b.bytes::<{ at::UUID_LINK }, 16>()),
        uuid_parent: guid_le(parent),
        version: format!("{}.{}", version >> 16, version & 0xffff),
    })));
    Ok(info)
}
