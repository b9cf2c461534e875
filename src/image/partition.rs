//! Partition tables a raw disk (or an ISO, or the data of a fixed VHD)
//! holds at its start: MBR (`55 AA` at byte 510, four entries at 446) and
//! GPT ("EFI PART" header at LBA 1, after UEFI 2.10 §5.3, with its CRC-32s
//! checked). qemu calls such a file raw; so do we, and say what it holds.
//!
//! Also the signatures that make a file with a header at offset 0 read as a
//! second format (OpenStack's `format_inspector` refuses "multiple formats"):
//! an MBR, a GPT, an ISO 9660 / UDF volume descriptor at byte 32768.

use serde_json::{json, Map, Value};

use super::{guid_le, le_u32, le_u64, utf16, Format, Reads, Stop};
use crate::limits;

const F: Format = Format::Raw;
/// Where the MBR's partition entries start, and the boot signature.
const MBR_ENTRIES: usize = 446;
const MBR_SIGNATURE: usize = 510;
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Protective MBR partition type.
const PROTECTIVE: u8 = 0xEE;
/// Most GPT entries listed in the facts (all are counted).
const MAX_LISTED: usize = 128;
/// Largest GPT entry array read (bytes): 128 entries of 128 bytes is 16 KiB.
const MAX_ENTRY_ARRAY: u64 = 256 * 1024;

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

struct GptHeader {
    current_lba: u64,
    backup_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: String,
    entries_lba: u64,
    entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

fn gpt_header(b: &[u8]) -> Option<GptHeader> {
    if !b.starts_with(GPT_SIGNATURE) {
        return None;
    }
    let size = le_u32(b, 12) as usize;
    if !(92..=512).contains(&size) || b.len() < size {
        return None;
    }
    let mut copy = b[..size].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != le_u32(b, 16) {
        return None;
    }
    Some(GptHeader {
        current_lba: le_u64(b, 24),
        backup_lba: le_u64(b, 32),
        first_usable: le_u64(b, 40),
        last_usable: le_u64(b, 48),
        disk_guid: guid_le(&b[56..72]),
        entries_lba: le_u64(b, 72),
        entries: le_u32(b, 80),
        entry_size: le_u32(b, 84),
        entries_crc: le_u32(b, 88),
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
pub const ISO_SIG_LEN: u64 = 7;

/// The partition table at the start of the file, when there is one: its
/// facts (`scheme`, `partitions`, …) and the problems found (reasons for a
/// `partition-table-invalid` warning). Reads the GPT entry array (16 KiB
/// for the usual 128 entries) and, for a 4 KiB-sector GPT, its header at
/// byte 4096; everything else is in the first 4 KiB.
pub fn table(reads: &Reads) -> Result<Option<(Value, Vec<String>)>, Stop> {
    let head = reads.bytes_upto(F, 0, super::FIRST_READ.len)?;
    if head.len() < 512 || !has_mbr(head) {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut mbr_parts = Vec::new();
    let mut protective = None;
    for i in 0..4 {
        let e = &head[MBR_ENTRIES + 16 * i..MBR_ENTRIES + 16 * (i + 1)];
        let boot = e[0];
        let kind = e[4];
        if boot != 0 && boot != 0x80 {
            problems.push(format!(
                "MBR entry {} has boot flag 0x{boot:02x} (0x00 or 0x80 expected)",
                i + 1
            ));
        }
        if kind == 0 {
            continue;
        }
        let start = le_u32(e, 8);
        let sectors = le_u32(e, 12);
        if kind == PROTECTIVE {
            protective = Some((i, start));
        }
        mbr_parts.push(json!({
            "entry": i + 1,
            "type": format!("0x{kind:02x}"),
            "bootable": boot == 0x80,
            "first-lba": start,
            "sectors": sectors,
        }));
    }
    let Some((pi, pstart)) = protective else {
        let mut t = Map::new();
        t.insert("scheme".into(), json!("mbr"));
        t.insert(
            "disk-signature".into(),
            json!(format!("{:08x}", le_u32(head, 440))),
        );
        t.insert("partitions".into(), json!(mbr_parts.len()));
        t.insert("entries".into(), Value::Array(mbr_parts));
        return Ok(Some((Value::Object(t), problems)));
    };
    // A protective MBR: the GPT header is at LBA 1 of 512- or 4096-byte
    // sectors.
    let mut found = None;
    for sector in [512u64, 4096] {
        let b = match reads.bytes_upto(F, sector, 512) {
            Ok(b) => b,
            Err(Stop::Bad(_)) => break,
            Err(e) => return Err(e),
        };
        if let Some(h) = gpt_header(b) {
            found = Some((sector, h));
            break;
        }
        if b.starts_with(GPT_SIGNATURE) {
            problems.push(format!(
                "a GPT header at byte {sector} has a wrong size or CRC"
            ));
            break;
        }
    }
    if mbr_parts.len() > 1 {
        problems.push("the protective MBR also lists other partitions (a hybrid MBR)".to_string());
    }
    if pstart != 1 {
        problems.push(format!(
            "the protective MBR entry {} starts at LBA {pstart}, not 1",
            pi + 1
        ));
    }
    let Some((sector, h)) = found else {
        problems.push("a protective MBR (type 0xee) without a valid GPT header".to_string());
        let t = json!({ "scheme": "mbr", "partitions": mbr_parts.len(), "entries": mbr_parts });
        return Ok(Some((t, problems)));
    };
    let mut t = Map::new();
    t.insert("scheme".into(), json!("gpt"));
    t.insert("sector-size".into(), json!(sector));
    t.insert("disk-guid".into(), json!(h.disk_guid));
    t.insert("current-lba".into(), json!(h.current_lba));
    t.insert("backup-lba".into(), json!(h.backup_lba));
    t.insert("first-usable-lba".into(), json!(h.first_usable));
    t.insert("last-usable-lba".into(), json!(h.last_usable));
    t.insert("entry-count".into(), json!(h.entries));
    t.insert("entry-size".into(), json!(h.entry_size));
    if h.current_lba != 1 {
        problems.push(format!(
            "the GPT header says it is at LBA {}, not 1",
            h.current_lba
        ));
    }
    let array_len = u64::from(h.entries) * u64::from(h.entry_size);
    let array_at = h.entries_lba.checked_mul(sector);
    let usable = h.entry_size >= 128 && h.entry_size.is_power_of_two();
    match array_at {
        Some(at) if usable && array_len <= MAX_ENTRY_ARRAY.min(limits::MAX_READ) => {
            match reads.bytes(F, at, array_len) {
                Ok(a) => {
                    if crc32(a) != h.entries_crc {
                        problems.push("the GPT partition entry array fails its CRC".to_string());
                    }
                    let mut listed = Vec::new();
                    let mut count = 0usize;
                    for e in a.chunks_exact(h.entry_size as usize) {
                        if e[..16].iter().all(|&c| c == 0) {
                            continue;
                        }
                        count += 1;
                        if listed.len() < MAX_LISTED {
                            listed.push(json!({
                                "type": guid_le(&e[..16]),
                                "guid": guid_le(&e[16..32]),
                                "first-lba": le_u64(e, 32),
                                "last-lba": le_u64(e, 40),
                                "name": utf16(&e[56..128], false),
                            }));
                        }
                    }
                    t.insert("partitions".into(), json!(count));
                    t.insert("entries".into(), Value::Array(listed));
                }
                Err(Stop::Bad(_)) => {
                    problems.push(format!(
                        "the GPT partition entry array ({array_len} bytes at byte {at}) lies past the end of the file"
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        _ => problems.push(format!(
            "the GPT partition entry array ({} entries of {} bytes) is not one this reader takes (entries of 128·2^n bytes, at most {MAX_ENTRY_ARRAY} bytes)",
            h.entries, h.entry_size
        )),
    }
    // The backup header at the last sector: free when the footer was read.
    if let Some(len) = reads.file_len() {
        if len >= sector * 2 {
            if let Ok(b) = reads.bytes(F, len - sector, 512.min(sector)) {
                t.insert("backup-header-at-end".into(), json!(is_gpt_header(b)));
            }
        }
    }
    Ok(Some((Value::Object(t), problems)))
}

/// CRC-32 (IEEE 802.3, reflected, as GPT uses it).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
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
