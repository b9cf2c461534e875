//! LUKS as an image format (qemu's `luks` driver), after the LUKS1 on-disk
//! format specification (all fields big-endian): magic `LUKS\xba\xbe` (0),
//! version (6), cipher name (8, 32 bytes), cipher mode (40, 32), hash spec
//! (72, 32), payload offset in sectors (104), key bytes (108), master key
//! digest (112), salt (132), digest iterations (164), UUID text (168, 40),
//! then 8 key slots of 48 bytes from 208: active marker (0x00ac71f3 /
//! 0x0000dead), iterations, salt (32), key material offset in sectors,
//! stripes.
//!
//! LUKS2 (version 2, a JSON area after a 4 KiB binary header) is recognised
//! but qemu opens only LUKS1.

use serde::Serialize;

use super::{Format, FormatSpecific, Header, ImageInfo, Reads, Stop, View};
use crate::diag::{Code, Diagnostic};

const F: Format = Format::Luks;
const SLOT_ACTIVE: u32 = 0x00ac_71f3;
const SLOT_INACTIVE: u32 = 0x0000_dead;

/// The magic `LUKS\xba\xbe` at the start of `head` (either version).
pub fn matches(head: &[u8]) -> bool {
    head.starts_with(b"LUKS\xba\xbe")
}

/// Read the header: for LUKS1 the virtual size (file length minus the
/// payload offset) and what `qemu-img info` prints; for LUKS2 the binary
/// header's facts and an error `luks2-unsupported`.
pub fn probe(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<8> = reads.view(F, 0)?;
    match b.be_u16::<6>() {
        1 => luks1(reads),
        2 => luks2(reads),
        v => Err(Stop::bad(F, 6, format!("unknown LUKS version {v}"))),
    }
}

/// qemu's cipher name for a LUKS cipher and key length (XTS halves the key).
fn cipher_alg(name: &str, mode: &str, key_bytes: u32) -> String {
    let bits = if mode == "xts" {
        key_bytes * 4
    } else {
        key_bytes * 8
    };
    match name {
        "aes" | "serpent" | "twofish" => format!("{name}-{bits}"),
        "cast5" => "cast5-128".into(),
        other => other.to_string(),
    }
}

/// `header` of a LUKS image. (Fields in the order of their keys, as every
/// object of the JSON.)
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum HeaderFacts {
    /// LUKS1: what `format-specific` does not already say.
    V1 {
        /// Length of the master key in bytes.
        #[serde(rename = "key-bytes")]
        key_bytes: u32,
        /// Always 1.
        version: u32,
    },
    /// LUKS2 (qemu does not open it): its binary header.
    #[serde(rename_all = "kebab-case")]
    V2 {
        /// Checksum algorithm of the header (`sha256`).
        checksum_alg: String,
        /// Where this binary header is (0 for the primary, its size for
        /// the secondary copy).
        header_offset: u64,
        /// Bytes of binary header plus JSON area.
        header_size: u64,
        /// The volume label (may be empty).
        label: String,
        /// Sequence id, incremented on every metadata update.
        sequence_id: u64,
        /// The secondary label (may be empty).
        subsystem: String,
        /// The volume UUID, as text.
        uuid: String,
        /// Always 2.
        version: u32,
    },
}

/// What [`parse_v1`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct V1 {
    /// The facts qemu prints.
    pub facts: Specific,
    /// The payload offset in bytes.
    pub payload: u64,
    /// The key length in bytes.
    pub key_bytes: u32,
}

/// `format-specific.data` of a LUKS image (and `encrypt` of a qcow2 with
/// a LUKS header), as `qemu-img info --output=json` prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Specific {
    /// Cipher and key size, as qemu names them (`aes-256`; XTS keys count
    /// half).
    pub cipher_alg: String,
    /// Block cipher mode (`xts`, `cbc`).
    pub cipher_mode: String,
    /// Always false: the header is read from the image itself.
    pub detached_header: bool,
    /// `luks` under a qcow2's `encrypt`; absent for a LUKS image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// Hash of the key derivation (`sha256`).
    pub hash_alg: String,
    /// IV generator (`plain64`, `essiv`).
    pub ivgen_alg: String,
    /// The IV generator's hash (`essiv:sha256` gives `sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ivgen_hash_alg: Option<String>,
    /// PBKDF2 iterations of the master key digest.
    pub master_key_iters: u32,
    /// Where the encrypted data starts, in bytes.
    pub payload_offset: u64,
    /// The 8 key slots, in order.
    pub slots: Vec<KeySlot>,
    /// The volume UUID, as text.
    pub uuid: String,
}

/// One of the 8 key slots.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct KeySlot {
    /// The slot holds a key.
    pub active: bool,
    /// Active slots only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iters: Option<u32>,
    /// Where the slot's key material starts, in bytes.
    pub key_offset: u64,
    /// Active slots only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripes: Option<u32>,
}

/// Length of the LUKS1 binary header.
pub const V1_HEADER_LEN: u64 = 592;

fn luks1(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b = reads.bytes(F, 0, V1_HEADER_LEN)?;
    let V1 {
        facts,
        payload,
        key_bytes,
    } = parse_v1(b).map_err(|(at, m)| Stop::bad(F, at, m))?;
    let mut info = ImageInfo::new(F);
    info.encrypted = true;
    info.dirty_flag = Some(false);
    match reads.file_len() {
        Some(len) if len >= payload => info.virtual_size = Some(len - payload),
        Some(len) => {
            return Err(Stop::bad(
                F,
                104,
                format!("payload offset {payload} lies past the end of the file ({len} bytes)"),
            ))
        }
        None => info.diagnostics.push(Diagnostic::warning(
            Code::SizeUnknown,
            "the virtual size is the file length minus the payload offset, and the file length is unknown",
        )),
    }
    info.diagnostics.push(Diagnostic::info(
        Code::Encrypted,
        "LUKS encrypted: opening it needs a secret (<encryption> in the disk XML)",
    ));
    info.format_specific = Some(FormatSpecific::Luks(Box::new(facts)));
    info.header = Some(Header::Luks(Box::new(HeaderFacts::V1 {
        key_bytes,
        version: 1,
    })));
    Ok(info)
}

/// The facts of a LUKS1 header (`b` at least 592 bytes), as qemu prints
/// them, with the payload offset in bytes and the key length. Errors carry
/// the offset within the header.
pub fn parse_v1(b: &[u8]) -> Result<V1, (u64, String)> {
    let Some(b) = View::<{ V1_HEADER_LEN as usize }>::of(b).filter(|h| matches(h.0)) else {
        return Err((0, "not a LUKS1 header".into()));
    };
    if b.be_u16::<6>() != 1 {
        return Err((0, "not a LUKS1 header".into()));
    }
    let cipher_name = super::cstr(b.bytes::<8, 32>());
    let cipher_mode_full = super::cstr(b.bytes::<40, 32>());
    let hash = super::cstr(b.bytes::<72, 32>());
    let payload = u64::from(b.be_u32::<104>()) * 512;
    let key_bytes = b.be_u32::<108>();
    let mk_iters = b.be_u32::<164>();
    let uuid = super::cstr(b.bytes::<168, 40>());
    if key_bytes == 0 || key_bytes > 256 {
        return Err((108, format!("key length {key_bytes} bytes is out of range")));
    }
    // "xts-plain64" → mode xts, IV generator plain64; "cbc-essiv:sha256" →
    // cbc, essiv with sha256.
    let (mode, ivgen) = cipher_mode_full
        .split_once('-')
        .unwrap_or((cipher_mode_full.as_str(), "plain"));
    let (ivgen_alg, ivgen_hash) = match ivgen.split_once(':') {
        Some((a, h)) => (a, Some(h)),
        None => (ivgen, None),
    };
    let mut slots = Vec::new();
    // 8 key slots of 48 bytes from 208.
    let (table, _) = b.bytes::<208, { 8 * 48 }>().as_chunks::<48>();
    for (i, s) in table.iter().enumerate() {
        let s = View(s);
        let marker = s.be_u32::<0>();
        let key_offset = u64::from(s.be_u32::<40>()) * 512;
        match marker {
            SLOT_ACTIVE => slots.push(KeySlot {
                active: true,
                iters: Some(s.be_u32::<4>()),
                key_offset,
                stripes: Some(s.be_u32::<44>()),
            }),
            SLOT_INACTIVE => slots.push(KeySlot {
                active: false,
                iters: None,
                key_offset,
                stripes: None,
            }),
            m => {
                return Err((
                    (208 + 48 * i) as u64,
                    format!("key slot {i} has marker 0x{m:08x}, neither active nor inactive"),
                ))
            }
        }
    }
    let facts = Specific {
        cipher_alg: cipher_alg(&cipher_name, mode, key_bytes),
        cipher_mode: mode.to_string(),
        ivgen_alg: ivgen_alg.to_string(),
        ivgen_hash_alg: ivgen_hash.map(str::to_string),
        hash_alg: hash,
        payload_offset: payload,
        master_key_iters: mk_iters,
        uuid,
        slots,
        detached_header: false,
        format: None,
    };
    Ok(V1 {
        facts,
        payload,
        key_bytes,
    })
}

fn luks2(reads: &Reads) -> Result<ImageInfo, Stop> {
    let b: View<512> = reads.view(F, 0)?;
    let mut info = ImageInfo::new(F);
    info.encrypted = true;
    info.diagnostics.push(Diagnostic::error(
        Code::Luks2Unsupported,
        "LUKS2 header: qemu's luks driver opens only LUKS1 (the size is in the JSON area, not read)",
    ));
    info.header = Some(Header::Luks(Box::new(HeaderFacts::V2 {
        checksum_alg: super::cstr(b.bytes::<72, 32>()),
        header_offset: b.be_u64::<256>(),
        header_size: b.be_u64::<8>(),
        label: super::cstr(b.bytes::<24, 48>()),
        sequence_id: b.be_u64::<16>(),
        subsystem: super::cstr(b.bytes::<208, 48>()),
        uuid: super::cstr(b.bytes::<168, 40>()),
        version: 2,
    })));
    Ok(info)
}
