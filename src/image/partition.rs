//! Partition tables a raw disk (or an ISO, or the data of a fixed VHD)
//! holds at its start: MBR (`55 AA` at byte 510, four entries at 446) and
//! GPT ("EFI PART" header at LBA 1, after UEFI 2.10 §5.3, with its CRC-32s
//! checked). qemu calls such a file raw; so do we, and say what it holds.
//!
//! Also the signatures that make a file with a header at offset 0 read as a
//! second format (OpenStack's `format_inspector` refuses "multiple formats"):
//! an MBR, a GPT, an ISO 9660 / UDF volume descriptor at byte 32768.

use super::{Format, Reads, Stop, View};

const F: Format = Format::Raw;
/// Where the MBR's partition entries start, and the boot signature.
const MBR_ENTRIES: usize = 446;
const MBR_SIGNATURE: usize = 510;
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Protective MBR partition type.
const PROTECTIVE: u8 = 0xEE;
use crate::limits::GPT_MAX_ENTRY_ARRAY as MAX_ENTRY_ARRAY;

/// `55 AA` at byte 510 of a sector that is not a file system's boot sector
/// (FAT, NTFS and exFAT boot sectors end with the same signature; the FAT
/// test is OpenStack's: 2 FATs and media descriptor `F8`).
pub fn has_mbr(head: &[u8]) -> bool {
    if head.get(MBR_SIGNATURE..MBR_SIGNATURE + 2) != Some(&[0x55, 0xAA]) {
        return false;
    }
    let fat = head[0x10] == 2 && head[0x15] == 0xF8;
    let ntfs = head.get(3..11) == Some(b"NTFS    ");
    let exfat = head.get(3..11) == Some(b"EXFAT   ");
    !(fat || ntfs || exfat)
}

/// A GPT header with a valid signature, size and CRC at the start of `b`.
pub fn is_gpt_header(b: &[u8]) -> bool {
    gpt_header(b).is_some()
}

/// The GPT header fields used here.
struct GptHeader {
    /// LBA of the partition entry array.
    entries_lba: u64,
    entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

fn gpt_header(b: &[u8]) -> Option<GptHeader> {
    if !b.starts_with(GPT_SIGNATURE) {
        return None;
    }
    // The header's fields end at 92 (its minimum size).
    let h = View::<92>::of(b)?;
    let size = h.le_u32::<12>() as usize;
    if !(92..=512).contains(&size) || b.len() < size {
        return None;
    }
    let mut copy = b[..size].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != h.le_u32::<16>() {
        return None;
    }
    Some(GptHeader {
        entries_lba: h.le_u64::<72>(),
        entries: h.le_u32::<80>(),
        entry_size: h.le_u32::<84>(),
        entries_crc: h.le_u32::<88>(),
    })
}

/// An ISO 9660 (`CD001`, version 1) or UDF (`BEA01`, `NSR02`, `NSR03`)
/// volume descriptor: the 7 bytes at [`ISO_AT`].
pub fn is_volume_descriptor(d: &[u8]) -> bool {
    match d.get(1..6) {
        Some(b"CD001") => d.get(6) == Some(&1),
        Some(b"BEA01" | b"NSR02" | b"NSR03") => true,
        _ => false,
    }
}

/// Where the first volume descriptor of an ISO 9660 / UDF image is, and how
/// many of its bytes [`is_volume_descriptor`] looks at.
pub const ISO_AT: u64 = 32768;
/// See [`ISO_AT`].
pub const ISO_SIG_LEN: u64 = 7;

/// What [`table`] finds: scheme, used entries (`None` when the GPT entry
/// array could not be read), and the problems (reasons for a
/// `partition-table-invalid` warning).
pub struct Table {
    /// A protective MBR and a valid GPT header (else an MBR).
    pub gpt: bool,
    /// Entries in use.
    pub partitions: Option<u64>,
    /// What OpenStack's checks find wrong, in words.
    pub problems: Vec<&'static str>,
}

/// The partition table at the start of the file, when there is one, after
/// OpenStack's checks of a protective MBR and with the GPT CRCs checked.
/// The MBR and the GPT header (LBA 1 of 512-byte sectors; 4 KiB-sector
/// GPTs are not looked for) are in the first 4 KiB; the GPT entry array
/// (16 KiB for the usual 128 entries, at most 256 KiB) is read to count the
/// partitions. (Facts kept few on purpose: every one costs the wasm build.)
pub fn table(reads: &Reads) -> Result<Option<Table>, Stop> {
    let head = reads.bytes_upto(F, 0, super::FIRST_READ.len)?;
    if head.len() < 1024 || !has_mbr(head) {
        return Ok(None);
    }
    let mut t = Table {
        gpt: false,
        partitions: None,
        problems: Vec::new(),
    };
    let mut used = 0u64;
    let mut protective = None;
    for e in head[MBR_ENTRIES..MBR_SIGNATURE].as_chunks::<16>().0 {
        // Boot flag (0), partition type (4), first LBA (8).
        let e = View(e);
        let (boot, kind) = (e.u8::<0>(), e.u8::<4>());
        if boot != 0 && boot != 0x80 {
            t.problems
                .push("an MBR entry's boot flag is neither 0x00 nor 0x80");
        }
        if kind != 0 {
            used += 1;
        }
        if kind == PROTECTIVE {
            protective = Some(e.le_u32::<8>());
        }
    }
    t.partitions = Some(used);
    let Some(start) = protective else {
        return Ok(Some(t));
    };
    if used > 1 {
        t.problems
            .push("the protective MBR also lists other partitions (a hybrid MBR)");
    }
    if start != 1 {
        t.problems
            .push("the protective MBR entry does not start at LBA 1");
    }
    let Some(GptHeader {
        entries_lba: lba,
        entries: n,
        entry_size: size,
        entries_crc: crc,
    }) = gpt_header(&head[512..1024])
    else {
        t.problems
            .push("a protective MBR without a valid GPT header (signature, size, CRC) at byte 512");
        return Ok(Some(t));
    };
    t.gpt = true;
    t.partitions = None;
    let len = u64::from(n) * u64::from(size);
    let at = lba
        .checked_mul(512)
        .filter(|_| size >= 128 && size.is_power_of_two() && len <= MAX_ENTRY_ARRAY);
    let Some(at) = at else {
        t.problems.push("the GPT entry array is not one this reader takes (entries of 128·2^n bytes, 256 KiB at most)");
        return Ok(Some(t));
    };
    match reads.bytes(F, at, len) {
        Ok(a) => {
            if crc32(a) != crc {
                t.problems
                    .push("the GPT partition entry array fails its CRC");
            }
            let used = a
                .chunks_exact(size as usize)
                .filter(|e| e[..16].iter().any(|&c| c != 0))
                .count();
            t.partitions = Some(used as u64);
        }
        Err(Stop::Bad(_)) => t
            .problems
            .push("the GPT partition entry array lies past the end of the file"),
        Err(e) => return Err(e),
    }
    Ok(Some(t))
}

/// CRC-32 (IEEE 802.3, reflected, as GPT uses it), a bit at a time: at
/// most a few hundred KiB go through it, and a table would cost the wasm
/// build 1 KiB.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn volume_descriptors() {
        assert!(is_volume_descriptor(b"\x01CD001\x01"));
        assert!(is_volume_descriptor(b"\x00BEA01\x01"));
        assert!(!is_volume_descriptor(b"\x01CD001\x02"));
        assert!(!is_volume_descriptor(b"\x00\x00\x00"));
    }
}
