//! QED, after qemu's `docs/interop/qed_spec.txt`. Little-endian header:
//! magic `QED\0`, cluster size (4), table size in clusters (8), header size
//! in clusters (12), features (16), compat features (24), autoclear (32),
//! L1 offset (40), image size (48), backing name offset (56) and size (60).

use serde::Serialize;

use super::{Format, Header, ImageInfo, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Qed;

/// Offsets of the header's fields.
mod at {
    pub const CLUSTER_SIZE: usize = 4;
    pub const TABLE_SIZE: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const FEATURES: usize = 16;
    pub const COMPAT_FEATURES: usize = 24;
    pub const AUTOCLEAR_FEATURES: usize = 32;
    pub const L1_TABLE_OFFSET: usize = 40;
    pub const IMAGE_SIZE: usize = 48;
    pub const BACKING_FILENAME_OFFSET: usize = 56;
    pub const BACKING_FILENAME_SIZE: usize = 60;
    /// The header's fields end here.
    pub const END: usize = 64;
}

/// `header` of a QED image. (Fields in the order of their keys, as every
/// object of the JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct HeaderFacts {
    /// Autoclear feature bits (none defined).
    pub autoclear_features: u64,
    /// The real length of a backing name too long to keep whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_name_length: Option<u64>,
    /// Compatible feature bits (none defined).
    pub compat_features: u64,
    /// Feature bits: 1 backing file, 2 need check, 4 backing format is
    /// raw (no probing).
    pub features: u64,
    /// Clusters.
    pub header_size: u32,
    /// Where the L1 table starts.
    pub l1_table_offset: u64,
    /// Clusters.
    pub table_size: u32,
}

const F_BACKING_FILE: u64 = 0x01;
const F_NEED_CHECK: u64 = 0x02;
const F_BACKING_FORMAT_NO_PROBE: u64 = 0x04;
const F_KNOWN: u64 = 0x07;
/// qemu reads a QED backing name into a PATH_MAX (4096) buffer with its NUL.
const MAX_NAME: u64 = crate::limits::MAX_BACKING_NAME_PATH as u64;

/// The magic `QED\0` at the start of `head`.
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"QED\0")
}

/// Read the header and the backing name: size, cluster size, the
/// need-check bit as the dirty flag and [`HeaderFacts`], or the bytes still
/// needed.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<{ at::END }> = reads.view(F, 0)?;
    let cluster_size = b.le_u32::<{ at::CLUSTER_SIZE }>();
    let table_size = b.le_u32::<{ at::TABLE_SIZE }>();
    let header_size = b.le_u32::<{ at::HEADER_SIZE }>();
    let features = b.le_u64::<{ at::FEATURES }>();
    let size = b.le_u64::<{ at::IMAGE_SIZE }>();
    let name_off = b.le_u32::<{ at::BACKING_FILENAME_OFFSET }>();
    let name_len = b.le_u32::<{ at::BACKING_FILENAME_SIZE }>();
    if !cluster_size.is_power_of_two() || !(4096..=(64 << 20)).contains(&cluster_size) {
        return Err(Stop::bad(
            F,
            at::CLUSTER_SIZE as u64,
            format!("cluster size {cluster_size} is not a power of two in 4 KiB..64 MiB"),
        ));
    }
    if !table_size.is_power_of_two() || !(1..=16).contains(&table_size) {
        return Err(Stop::bad(
            F,
            at::TABLE_SIZE as u64,
            format!("table size {table_size} is not a power of two in 1..16"),
        ));
    }
    let header_bytes = u64::from(header_size) * u64::from(cluster_size);
    if header_size == 0 || header_bytes > 64 << 20 {
        return Err(Stop::bad(
            F,
            at::HEADER_SIZE as u64,
            format!("header size of {header_size} clusters is out of range"),
        ));
    }
    let mut info = ImageInfo::new(F);
    info.virtual_size = Some(size);
    info.cluster_size = Some(u64::from(cluster_size));
    info.dirty_flag = Some(features & F_NEED_CHECK != 0);
    if features & !F_KNOWN != 0 {
        info.diagnostics.push(Diagnostic::error(
            Code::QedUnknownFeatures,
            format!(
                "unknown feature bits 0x{:x} set: qemu refuses to open this image",
                features & !F_KNOWN
            ),
        ));
    }
    if features & F_NEED_CHECK != 0 {
        info.diagnostics.push(
            Diagnostic::warning(
                Code::QedNeedCheck,
                "the need-check bit is set: the image was not closed cleanly",
            )
            .with_fix("qemu-img check -r all IMAGE"),
        );
    }
    let mut long_name = None;
    if features & F_BACKING_FILE != 0 && u64::from(name_len) > MAX_NAME {
        // qemu refuses it; the image is still a qed of this size.
        let len = u64::from(name_len);
        super::too_long_name(reads, F, u64::from(name_off), len, MAX_NAME, &mut info)?;
        if features & F_BACKING_FORMAT_NO_PROBE != 0 {
            info.backing_filename_format = Some("raw".into());
        }
        long_name = Some(len);
    } else if features & F_BACKING_FILE != 0 {
        let len = u64::from(name_len);
        let end = u64::from(name_off) + len;
        if end > header_bytes {
            return Err(Stop::bad(
                F,
                56,
                format!("backing name at {name_off}+{len} lies outside the header ({header_bytes} bytes)"),
            ));
        }
        let name = reads.bytes(F, u64::from(name_off), len)?;
        info.backing_filename = Some(super::lossy(name, &mut info.diagnostics, "backing name"));
        // Only "do not probe" is recorded, and it means raw.
        if features & F_BACKING_FORMAT_NO_PROBE != 0 {
            info.backing_filename_format = Some("raw".into());
        }
    }
    info.header = Some(Header::Qed(Box::new(HeaderFacts {
        autoclear_features: b.le_u64::<{ at::AUTOCLEAR_FEATURES }>(),
        backing_name_length: None,
        compat_features: b.le_u64::<{ at::COMPAT_FEATURES }>(),
        features,
        header_size,
        l1_table_offset: b.le_u64::<{ at::L1_TABLE_OFFSET }>(),
        table_size,
    })));
    if let Some(len) = long_name {
        super::note_name_length(&mut info, len);
    }
    Ok(info)
}
