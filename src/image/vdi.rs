//! VirtualBox VDI, after the layout qemu's `block/vdi.c` reads (all fields
//! little-endian): a 64-byte text banner, signature 0xbeda107f at 0x40,
//! version at 0x44, header size at 0x48, image type at 0x4c (1 dynamic,
//! 2 static, 3 undo, 4 differencing), flags at 0x50, description at 0x54,
//! block map / data offsets at 0x154 / 0x158, sector size at 0x168, disk
//! size (u64) at 0x170, block size at 0x178, blocks in image / allocated at
//! 0x180 / 0x184, then the image, last-snapshot, link and parent UUIDs at
//! 0x188, 0x198, 0x1a8, 0x1b8 (VirtualBox's in-memory UUID order, first
//! three fields little-endian, shown here as GUIDs).

use serde_json::json;

use super::{guid_le, le_u32, le_u64, Format, Identity, ImageInfo, Reads, Stop};
use crate::diag::Diagnostic;

const F: Format = Format::Vdi;
const SIGNATURE: u32 = 0xbeda_107f;
const HEADER_END: u64 = 0x1c8;

pub fn matches(head: &[u8]) -> bool {
    head.len() >= 0x48 && le_u32(head, 0x40) == SIGNATURE
}

fn is_nil(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b = reads.bytes(F, 0, HEADER_END)?;
    let version = le_u32(b, 0x44);
    let image_type = le_u32(b, 0x4c);
    let disk_size = le_u64(b, 0x170);
    let block_size = le_u32(b, 0x178);
    let sector_size = le_u32(b, 0x168);
    let blocks_in_image = le_u32(b, 0x180);
    if version >> 16 != 1 {
        return Err(Stop::bad(
            F,
            0x44,
            format!("unsupported version {}.{}", version >> 16, version & 0xffff),
        ));
    }
    if block_size == 0 || !block_size.is_power_of_two() {
        return Err(Stop::bad(
            F,
            0x178,
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
    let uuid = &b[0x188..0x198];
    let parent = &b[0x1b8..0x1c8];
    info.identity = Some(Identity {
        id: (!is_nil(uuid)).then(|| guid_le(uuid)),
        parent_id: (!is_nil(parent)).then(|| guid_le(parent)),
    });
    if image_type == 4 {
        // A differencing VDI names its parent only by UUID; the parent is a VDI.
        info.backing_filename_format = None;
        info.diagnostics.push(Diagnostic::warning(
            "vdi-differencing",
            format!(
                "differencing VDI: its parent is the VDI with UUID {} (no file name is recorded); qemu opens only dynamic and static VDI",
                guid_le(parent)
            ),
        ));
    } else if image_type != 1 && image_type != 2 {
        info.diagnostics.push(Diagnostic::error(
            "vdi-unsupported-type",
            format!(
                "VDI image type {image_type} ({kind}): qemu opens only dynamic (1) and static (2)"
            ),
        ));
    }
    if u64::from(blocks_in_image) * u64::from(block_size) < disk_size {
        info.diagnostics.push(Diagnostic::warning(
            "vdi-size-mismatch",
            format!("{blocks_in_image} blocks of {block_size} bytes do not cover the disk size {disk_size}"),
        ));
    }
    info.header = Some(super::json_header(json!({
        "version": format!("{}.{}", version >> 16, version & 0xffff),
        "image-type": kind,
        "header-size": le_u32(b, 0x48),
        "image-flags": le_u32(b, 0x50),
        "description": super::cstr(&b[0x54..0x154]),
        "offset-bmap": le_u32(b, 0x154),
        "offset-data": le_u32(b, 0x158),
        "sector-size": sector_size,
        "blocks-in-image": blocks_in_image,
        "blocks-allocated": le_u32(b, 0x184),
        "uuid": guid_le(uuid),
        "uuid-last-snap": guid_le(&b[0x198..0x1a8]),
        "uuid-link": guid_le(&b[0x1a8..0x1b8]),
        "uuid-parent": guid_le(parent),
    })));
    Ok(info)
}
