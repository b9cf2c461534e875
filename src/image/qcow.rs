//! qcow version 1, after qemu's `block/qcow.c` header layout (all fields
//! big-endian): magic `QFI\xfb`, version 1, backing name offset/size, mtime,
//! size, cluster and L2 bits, crypt method, L1 table offset — 48 bytes.

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};
use crate::limits;

const F: Format = Format::Qcow;
const HEADER_LEN: usize = 48;

/// `header` of a qcow (version 1). (Fields in the order of their keys, as every object of the
/// JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Where the backing name is (0: no backing file).
    pub backing_file_offset: u64,
    /// The real length of a backing name too long to keep whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_name_length: Option<u64>,
    /// 0 none, 1 AES.
    pub crypt_method: u32,
    /// Where the L1 table starts.
    pub l1_table_offset: u64,
    /// log2 of the entries per L2 table.
    pub l2_bits: u32,
    /// The header's mtime field (qemu does not use it).
    pub mtime: u32,
    /// Always 1.
    pub version: u32,
}

/// `QFI\xfb` with version 1.
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"QFI\xfb") && View::<8>::of(head).is_some_and(|h| h.be_u32::<4>() == 1)
}

/// Read the 48-byte header and the backing name: size, cluster size,
/// encryption and [`HeaderFacts`], or the bytes still needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<HEADER_LEN> = reads.view(F, 0)?;
    let backing_offset = b.be_u64::<8>();
    let backing_size = b.be_u32::<16>();
    let mtime = b.be_u32::<20>();
    let size = b.be_u64::<24>();
    let cluster_bits = u32::from(b.u8::<32>());
    let l2_bits = u32::from(b.u8::<33>());
    let crypt_method = b.be_u32::<36>();
    let l1_table_offset = b.be_u64::<40>();
    // qemu's bounds: clusters of 512 B..64 KiB, L2 tables of 512 B..64 KiB.
    if !(9..=16).contains(&cluster_bits) {
        return Err(Stop::bad(
            F,
            32,
            format!("cluster_bits {cluster_bits} outside 9..=16"),
        ));
    }
    if !(6..=13).contains(&l2_bits) {
        return Err(Stop::bad(
            F,
            33,
            format!("l2_bits {l2_bits} outside 6..=13"),
        ));
    }
    if size <= 1 {
        return Err(Stop::bad(F, 24, format!("image size {size} below 2 bytes")));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    info.cluster_size = Some(1 << cluster_bits);
    info.dirty_flag = Some(false);
    info.encrypted = crypt_method != 0;
    if crypt_method != 0 {
        info.diagnostics.push(Diagnostic::info(
            Code::Encrypted,
            format!(
                "encrypted ({}): opening it needs a secret",
                if crypt_method == 1 {
                    "aes"
                } else {
                    "unknown method"
                }
            ),
        ));
    }
    let mut long_name = None;
    if backing_offset != 0 {
        let len = u64::from(backing_size);
        if len > limits::MAX_BACKING_NAME {
            // qemu refuses it ("Backing file name too long"); the image is
            // still a qcow of this size: keep the facts, flag the name.
            super::too_long_name(
                reads,
                F,
                backing_offset,
                len,
                limits::MAX_BACKING_NAME,
                &mut info,
            )?;
            long_name = Some(len);
        } else {
            let name = reads.bytes(F, backing_offset, len)?;
            info.backing_filename = Some(super::lossy(name, &mut info.diagnostics, "backing name"));
        }
    }
    info.header = Some(Header::Qcow(Box::new(HeaderFacts {
        backing_file_offset: backing_offset,
        backing_name_length: None,
        crypt_method,
        l1_table_offset,
        l2_bits,
        mtime,
        version: 1,
    })));
    if let Some(len) = long_name {
        super::note_name_length(&mut info, len);
    }
    Ok(info)
}
