//! cloop (compressed loop) images, after qemu's `block/cloop.c`: a shell
//! script preamble starting `#!/bin/sh\n#V2.0 Format\n`, then at byte 128
//! the block size and the number of blocks (both big-endian u32).

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};

const F: Format = Format::Cloop;
const MAGIC: &[u8] =
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";
use crate::limits::CLOOP_MAX_BLOCK as MAX_BLOCK;

/// `header` of a cloop image. (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Uncompressed bytes per block (a multiple of 512).
    pub block_size: u32,
    /// Number of blocks.
    pub blocks: u32,
}

/// The V2.0 shell script preamble at the start of `head`.
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Read block size and count (136 bytes at 0): the virtual size is their
/// product; bounds as qemu's.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<136> = reads.view(F, 0)?;
    let block_size = b.be_u32::<128>();
    let n_blocks = b.be_u32::<132>();
    if block_size == 0 || !block_size.is_multiple_of(512) || block_size > MAX_BLOCK {
        return Err(Stop::bad(
            F,
            128,
            format!("block size {block_size} is not a non-zero multiple of 512 up to 64 MiB"),
        ));
    }
    // qemu's bound: the offsets table (8 bytes per block) must fit 32 bits.
    if n_blocks > u32::MAX / 8 {
        return Err(Stop::bad(
            F,
            132,
            format!(
                "{n_blocks} blocks: the offsets table would not fit (qemu's limit is {})",
                u32::MAX / 8
            ),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(u64::from(block_size) * u64::from(n_blocks));
    info.header = Some(Header::Cloop(Box::new(HeaderFacts {
        block_size,
        blocks: n_blocks,
    })));
    Ok(info)
}
