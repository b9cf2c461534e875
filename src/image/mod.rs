//! Image header probes: bytes in, facts out — never I/O.
//!
//! # The sans-I/O contract
//!
//! A probe never reads a file. It is handed a [`Reads`]: the byte ranges the
//! caller has read so far (a sparse map `offset → bytes`) and, when known, the
//! file length. It answers with a [`Step`]:
//!
//! * [`Step::Done`] — the facts ([`ImageInfo`]), or
//! * [`Step::Need`] — "read these ranges `[offset, offset + len)` and call me
//!   again with them added".
//!
//! Every caller runs the same loop (the browser with `Blob.slice`, the CLI
//! with positioned reads, a console with its own reader); [`probe_with`] is
//! that loop for callers that have a synchronous reader:
//!
//! ```
//! use backing_chain::image::{Reads, Step, probe};
//! let file = vec![0u8; 8192]; // a "raw" image
//! let mut reads = Reads::new(Some(file.len() as u64));
//! let info = loop {
//!     match probe(&reads).unwrap() {
//!         Step::Done(info) => break info,
//!         Step::Need(ranges) => for r in ranges {
//!             let end = (r.end()).min(file.len() as u64) as usize;
//!             reads.insert(r, file[r.offset as usize..end].to_vec());
//!         },
//!     }
//! };
//! assert_eq!(info.format, backing_chain::image::Format::Raw);
//! ```
//!
//! A reader may return fewer bytes than asked at end of file: [`Reads::insert`]
//! takes the range asked for and the bytes got, and a short answer fixes the
//! file length, so a truncated header is reported, never asked for again. Each request is
//! at most [`crate::limits::MAX_READ`] bytes and a probe asks at most
//! [`crate::limits::MAX_ROUNDS`] times; the bytes the caller read are its to
//! count (`bytes-read`).

#![warn(missing_docs)]

use serde::Serialize;

use crate::diag::{Code, Diagnostic};
use crate::limits;

pub mod bochs;
pub mod cloop;
pub mod cow;
pub mod dmg;
pub mod iso;
pub mod luks;
pub mod parallels;
pub mod partition;
pub mod qcow;
pub mod qcow2;
pub mod qed;
pub mod safety;
pub mod vdi;
pub mod vhdx;
pub mod vmdk;
pub mod vpc;

/// A byte range `[offset, offset + len)` of the image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    /// First byte of the range.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl Range {
    /// The range `[offset, offset + len)`.
    pub fn new(offset: u64, len: u64) -> Self {
        Range { offset, len }
    }
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// What a probe answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "value")]
pub enum Step {
    /// Read these ranges, add them to the [`Reads`], call again.
    Need(Vec<Range>),
    /// The facts.
    Done(Box<ImageInfo>),
}

/// Why a probe stopped without facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeError {
    /// Format being read when it failed (`None` before detection).
    pub format: Option<Format>,
    /// Byte offset in the file the problem is about.
    pub offset: u64,
    /// What is wrong, in words (without the format and offset, which
    /// [`Display`](std::fmt::Display) adds).
    pub message: String,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.format {
            Some(fmt) => write!(
                f,
                "{} header: {} (at byte {})",
                fmt.name(),
                self.message,
                self.offset
            ),
            None => write!(f, "{} (at byte {})", self.message, self.offset),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Inside a format reader: either more bytes are needed or the header is bad.
/// `?` on [`Reads::bytes`] turns "not read yet" into [`Stop::Need`].
#[derive(Debug, Clone)]
pub enum Stop {
    /// These ranges must be read first (becomes [`Step::Need`]).
    Need(Vec<Range>),
    /// The header is bad: the probe fails with this error.
    Bad(ProbeError),
}

impl Stop {
    /// A [`Stop::Bad`] about `format`'s header at byte `offset`.
    pub fn bad(format: Format, offset: u64, message: impl Into<String>) -> Stop {
        Stop::Bad(ProbeError {
            format: Some(format),
            offset,
            message: message.into(),
        })
    }
}

/// Text keys and their values, sorted by key, each key once; serialised as
/// a JSON object (as a `BTreeMap<String, String>` was). A VMDK descriptor's
/// other `key=value` lines, a VHDX parent locator's entries. A sorted
/// vector, not a `BTreeMap`: the two were the wasm's last use of that kind
/// of map (about 5 KB of code, issue 18).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextMap(Vec<(String, String)>);

impl TextMap {
    /// No pairs.
    pub fn new() -> Self {
        TextMap(Vec::new())
    }

    /// The pairs in any order; of a key given twice the later value is
    /// kept. n log n whatever the keys: ordered through the same kind of
    /// map as the XML reader's attribute check (`BTreeMap<&[u8], usize>`,
    /// already in the wasm; a sort of the pairs would add one of its own).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut last: std::collections::BTreeMap<&[u8], usize> = Default::default();
        for (i, (k, _)) in pairs.iter().enumerate() {
            last.insert(k.as_bytes(), i);
        }
        let order: Vec<usize> = last.into_values().collect();
        let mut pairs: Vec<Option<(String, String)>> = pairs.into_iter().map(Some).collect();
        TextMap(order.into_iter().filter_map(|i| pairs[i].take()).collect())
    }

    /// Set `key` to `value` (replacing its value if it is there). Linear in
    /// the number of keys: for maps of a bounded size.
    pub fn insert(&mut self, key: String, value: String) {
        match self.0.binary_search_by(|p| p.0.as_str().cmp(&key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|p| p.0.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Serialize for TextMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The bytes read so far.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    len: Option<u64>,
    /// By offset, one chunk per offset. A sorted vector, not a `BTreeMap`:
    /// a probe holds a handful of chunks (one per read it asked for), and
    /// each kind of `BTreeMap` costs the wasm about 11 KB (issue 18).
    chunks: Vec<(u64, Vec<u8>)>,
}

impl Reads {
    /// Nothing read yet; `file_len` is the file's length when the caller
    /// knows it (needed to find the formats without a header at offset 0:
    /// fixed VHD, DMG, ISO).
    pub fn new(file_len: Option<u64>) -> Self {
        Reads {
            len: file_len,
            chunks: Vec::new(),
        }
    }

    /// The file length, when the caller knows it.
    pub fn file_len(&self) -> Option<u64> {
        self.len
    }

    /// Add the bytes read for the requested range `asked`. Fewer bytes than
    /// asked for means the file ends there; the length is then known.
    pub fn insert(&mut self, asked: Range, bytes: Vec<u8>) {
        if (bytes.len() as u64) < asked.len {
            let end = asked.offset + bytes.len() as u64;
            self.len = Some(self.len.map_or(end, |l| l.min(end)));
        }
        match self.chunks.binary_search_by_key(&asked.offset, |c| c.0) {
            Ok(i) => {
                if self.chunks[i].1.len() < bytes.len() {
                    self.chunks[i].1 = bytes;
                }
            }
            Err(i) => self.chunks.insert(i, (asked.offset, bytes)),
        }
    }

    /// Total bytes held (what the caller has read).
    pub fn bytes_held(&self) -> u64 {
        self.chunks.iter().map(|c| c.1.len() as u64).sum()
    }

    /// The bytes `[offset, offset + len)` if one chunk covers them (not
    /// only the nearest below `offset`: a small chunk read in the same round
    /// as a larger one, such as the 7 bytes at 32768 asked with the header,
    /// may lie inside it). Chunks are few (bounded by the rounds).
    fn covered(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let at = self.chunks.partition_point(|c| c.0 <= offset);
        // Any chunk starting at or before `offset` may hold the range (a
        // short chunk just before it must not hide a longer one further back).
        self.chunks[..at].iter().rev().find_map(|(start, chunk)| {
            let rel = offset - start;
            let end = rel.checked_add(len)?;
            (end <= chunk.len() as u64).then(|| &chunk[rel as usize..end as usize])
        })
    }

    /// The bytes `[offset, offset + len)`, or `Stop::Need` for them, or a
    /// "truncated" error when the file is known to end before.
    pub fn bytes(&self, format: Format, offset: u64, len: u64) -> Result<&[u8], Stop> {
        if len == 0 {
            return Ok(&[]);
        }
        if let Some(b) = self.covered(offset, len) {
            return Ok(b);
        }
        let end = offset.checked_add(len);
        if let Some(l) = self.len {
            if end.is_none_or(|e| e > l) {
                return Err(Stop::bad(
                    format,
                    offset,
                    format!(
                        "truncated: {len} bytes needed at offset {offset}, the file has {l} bytes"
                    ),
                ));
            }
        }
        if len > limits::MAX_READ {
            return Err(Stop::bad(
                format,
                offset,
                format!(
                    "needs {len} bytes in one piece, more than the limit of {}",
                    limits::MAX_READ
                ),
            ));
        }
        Err(Stop::Need(vec![Range::new(offset, len)]))
    }

    /// The `N` bytes at `offset` as a [`View`] (or `Stop::Need` for them,
    /// or "truncated").
    pub(crate) fn view<const N: usize>(
        &self,
        format: Format,
        offset: u64,
    ) -> Result<View<'_, N>, Stop> {
        let b = self.bytes(format, offset, N as u64)?;
        View::of(b).ok_or_else(|| short_read(format, offset))
    }

    /// Up to `len` bytes at `offset`: fewer when the file ends first.
    pub fn bytes_upto(&self, format: Format, offset: u64, len: u64) -> Result<&[u8], Stop> {
        let len = match self.len {
            Some(l) => len.min(l.saturating_sub(offset)),
            None => len,
        };
        self.bytes(format, offset, len)
    }
}

/// The image formats known to the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// No header: the guest's bytes as they are.
    Raw,
    /// QEMU copy-on-write, versions 2 and 3.
    Qcow2,
    /// QEMU copy-on-write version 1 (legacy).
    Qcow,
    /// User Mode Linux COW (legacy).
    Cow,
    /// QEMU enhanced disk.
    Qed,
    /// VMware virtual disk: hosted sparse extent or text descriptor.
    Vmdk,
    /// Virtual PC / Hyper-V VHD (qemu's name `vpc`).
    Vpc,
    /// Hyper-V VHDX.
    Vhdx,
    /// VirtualBox disk image.
    Vdi,
    /// Parallels disk image.
    Parallels,
    /// LUKS encrypted volume (version 1 or 2).
    Luks,
    /// ISO 9660 optical disc image (qemu opens it as raw).
    Iso,
    /// Apple disk image (`koly` trailer).
    Dmg,
    /// Bochs disk image.
    Bochs,
    /// Linux compressed loop image.
    Cloop,
}

impl Format {
    /// Every format, in the order of the enum.
    pub const ALL: [Format; 15] = [
        Format::Raw,
        Format::Qcow2,
        Format::Qcow,
        Format::Cow,
        Format::Qed,
        Format::Vmdk,
        Format::Vpc,
        Format::Vhdx,
        Format::Vdi,
        Format::Parallels,
        Format::Luks,
        Format::Iso,
        Format::Dmg,
        Format::Bochs,
        Format::Cloop,
    ];

    /// The name qemu and libvirt use.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Cow => "cow",
            Format::Qed => "qed",
            Format::Vmdk => "vmdk",
            Format::Vpc => "vpc",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Parallels => "parallels",
            Format::Luks => "luks",
            Format::Iso => "iso",
            Format::Dmg => "dmg",
            Format::Bochs => "bochs",
            Format::Cloop => "cloop",
        }
    }

    /// Parse a format name as qemu writes it in image metadata.
    pub fn from_name(s: &str) -> Option<Format> {
        Format::ALL.iter().copied().find(|f| f.name() == s)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The facts a header gives. JSON keys follow `qemu-img info --output=json`
/// where they overlap.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    /// The format the header says (`raw` when there is none).
    pub format: Format,
    /// The size of the disk the guest sees, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<u64>,
    /// The allocation unit in bytes (a qcow2, qcow or QED cluster, a VMDK
    /// grain, a VHD, VHDX or VDI block), when `qemu-img info` prints one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    /// The backing name exactly as recorded (lossy UTF-8; see diagnostics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_filename: Option<String>,
    /// The backing format, only when the image records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_filename_format: Option<String>,
    /// The guest data is encrypted (qcow2 AES or LUKS, qcow AES, LUKS).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// The image was not closed cleanly (qcow2 dirty bit, QED need-check
    /// bit): `qemu-img info`'s `dirty-flag`, for the formats it prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirty_flag: Option<bool>,
    /// Identity for matching layers by id rather than name (VMDK CID, VHD/VHDX/VDI ids).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// `format-specific` of `qemu-img info` (qcow2, vmdk, luks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_specific: Option<FormatSpecific>,
    /// Internal snapshots (qcow2), as `qemu-img info` lists them; only
    /// filled when asked for ([`ProbeOptions::snapshots`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Vec<qcow2::Snapshot>>,
    /// Header facts `qemu-img info` does not print (versions, offsets,
    /// locators, ids): kept for the page and for diagnostics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    /// What is wrong or worth knowing about this image alone (the chain's
    /// own findings are in [`crate::chain::Forest::diagnostics`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

impl ImageInfo {
    /// Facts of a `format` image with nothing known yet.
    pub fn new(format: Format) -> Self {
        ImageInfo {
            format,
            virtual_size: None,
            cluster_size: None,
            backing_filename: None,
            backing_filename_format: None,
            encrypted: false,
            dirty_flag: None,
            identity: None,
            format_specific: None,
            snapshots: None,
            header: None,
            diagnostics: Vec::new(),
        }
    }
}

impl ImageInfo {
    /// The qcow2 external data file: its name as recorded and whether it is
    /// kept as a raw image (`data-file-raw`). Read from `format-specific`
    /// (`data.data-file`, `data.data-file-raw`, exactly as `qemu-img info`
    /// prints them), so it works as well on facts taken from qemu-img's JSON.
    pub fn data_file(&self) -> Option<(&str, bool)> {
        match self.format_specific.as_ref()? {
            FormatSpecific::Qcow2(q) => {
                let name = q.data_file.as_deref()?;
                Some((name, q.data_file_raw.unwrap_or(false)))
            }
            FormatSpecific::Other(v) => {
                let data = v.get("data")?;
                let name = data.get("data-file")?.as_str()?;
                let raw = data
                    .get("data-file-raw")
                    .and_then(crate::json::Value::as_bool)
                    .unwrap_or(false);
                Some((name, raw))
            }
            _ => None,
        }
    }

    /// The extents of a VMDK, as its descriptor lists them (empty for other
    /// formats). See [`vmdk::Extent::external`] for which ones qemu opens
    /// as separate files.
    pub fn vmdk_extents(&self) -> Vec<vmdk::Extent> {
        match self.header.as_ref() {
            Some(Header::Vmdk(v)) if self.format == Format::Vmdk => v.extents.clone(),
            _ => Vec::new(),
        }
    }

    /// A VMDK whose file starts with a hosted sparse extent header (`KDMV`):
    /// it has a grain directory offset.
    pub fn vmdk_grain_directory_offset(&self) -> Option<u64> {
        match self.header.as_ref() {
            Some(Header::Vmdk(v)) => v.grain_directory_offset,
            _ => None,
        }
    }

    /// Where a VHD's footer was read: 0 for dynamic and differencing disks
    /// (a copy at byte 0), the end of the file for a fixed disk.
    pub fn vpc_footer_offset(&self) -> Option<u64> {
        match self.header.as_ref() {
            Some(Header::Vpc(v)) => Some(v.footer_offset),
            _ => None,
        }
    }

    /// Is there a diagnostic with this code?
    pub fn has_diagnostic(&self, code: Code) -> bool {
        self.diagnostics.iter().any(|d| d.code == code)
    }
}

/// `format-specific` as `qemu-img info --output=json` prints it:
/// `{"data": {...}, "type": FORMAT}`.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatSpecific {
    /// Compat level, refcount bits, data file, encryption, bitmaps.
    Qcow2(Box<qcow2::Specific>),
    /// CID, parent CID, create type, extents.
    Vmdk(vmdk::Specific),
    /// Cipher, hash, key slots.
    Luks(Box<luks::Specific>),
    /// Taken as is from elsewhere (qemu-img's own JSON): any shape.
    Other(crate::json::Value),
}

impl Serialize for FormatSpecific {
    /// `data` before `type`: the keys sorted, as every object of the JSON.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FormatSpecific::Qcow2(d) => tagged(s, "qcow2", d),
            FormatSpecific::Vmdk(d) => tagged(s, "vmdk", d),
            FormatSpecific::Luks(d) => tagged(s, "luks", d),
            FormatSpecific::Other(v) => v.serialize(s),
        }
    }
}

fn tagged<S: serde::Serializer, T: Serialize>(
    s: S,
    kind: &str,
    data: &T,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("FormatSpecific", 2)?;
    st.serialize_field("data", data)?;
    st.serialize_field("type", kind)?;
    st.end()
}

/// The header facts `qemu-img info` does not print, per format (serialised
/// without a tag: the keys are the format's own, sorted).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Header {
    /// See [`qcow2::HeaderFacts`].
    Qcow2(Box<qcow2::HeaderFacts>),
    /// See [`vmdk::HeaderFacts`].
    Vmdk(Box<vmdk::HeaderFacts>),
    /// See [`vhdx::HeaderFacts`].
    Vhdx(Box<vhdx::HeaderFacts>),
    /// See [`vpc::HeaderFacts`].
    Vpc(Box<vpc::HeaderFacts>),
    /// See [`vdi::HeaderFacts`].
    Vdi(Box<vdi::HeaderFacts>),
    /// See [`qed::HeaderFacts`].
    Qed(Box<qed::HeaderFacts>),
    /// See [`qcow::HeaderFacts`].
    Qcow(Box<qcow::HeaderFacts>),
    /// See [`cow::HeaderFacts`].
    Cow(Box<cow::HeaderFacts>),
    /// See [`parallels::HeaderFacts`].
    Parallels(Box<parallels::HeaderFacts>),
    /// See [`luks::HeaderFacts`].
    Luks(Box<luks::HeaderFacts>),
    /// See [`iso::HeaderFacts`].
    Iso(Box<iso::HeaderFacts>),
    /// See [`dmg::HeaderFacts`].
    Dmg(Box<dmg::HeaderFacts>),
    /// See [`bochs::HeaderFacts`].
    Bochs(Box<bochs::HeaderFacts>),
    /// See [`cloop::HeaderFacts`].
    Cloop(Box<cloop::HeaderFacts>),
    /// A raw disk: only its partition table.
    Raw(RawFacts),
}

impl Header {
    /// Say which partition table the data holds (raw disks, ISOs, fixed VHDs).
    fn set_partition_table(&mut self, t: PartitionTable) {
        match self {
            Header::Iso(h) => h.partition_table = Some(t),
            Header::Raw(r) => r.partition_table = t,
            Header::Vpc(v) => v.partition_table = Some(t),
            _ => {}
        }
    }

    /// Record the real length of a too-long backing name.
    fn set_backing_name_length(&mut self, len: u64) {
        match self {
            Header::Qcow2(h) => h.backing_name_length = Some(len),
            Header::Qed(h) => h.backing_name_length = Some(len),
            Header::Qcow(h) => h.backing_name_length = Some(len),
            _ => {}
        }
    }
}

/// A byte range of the file, as `{length, offset}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Number of bytes.
    pub length: u64,
    /// First byte.
    pub offset: u64,
}

/// `header` of a raw disk that holds a partition table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct RawFacts {
    /// The MBR or GPT found at the start of the disk.
    pub partition_table: PartitionTable,
}

/// `header.partition-table`: the scheme and the partitions in use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionTable {
    /// Partition entries in use, when the table could be read.
    pub partitions: Option<u64>,
    /// `mbr` or `gpt`.
    pub scheme: &'static str,
}

/// Ids that tie a layer to its parent independently of names.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Identity {
    /// This layer's own id (VMDK CID as 8 hex digits, VHD UUID, VHDX data
    /// write GUID, VDI UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id the layer records for its parent; matches the parent's `id`
    /// when the chain is intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

/// Bytes asked for first: enough for every fixed header at offset 0.
pub const FIRST_READ: Range = Range {
    offset: 0,
    len: 4096,
};

/// What a probe may read beyond the header facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Read the qcow2 internal snapshot table (names, ids, sizes). Off by
    /// default: it lies outside cluster 0 and costs extra reads.
    pub snapshots: bool,
}

/// Run one probe step: detect the format from what was read, then let the
/// format's reader take over.
pub fn probe(reads: &Reads) -> Result<Step, ProbeError> {
    probe_opts(reads, &ProbeOptions::default())
}

/// [`probe`] with options.
pub fn probe_opts(reads: &Reads, opts: &ProbeOptions) -> Result<Step, ProbeError> {
    let head = match reads.bytes_upto(Format::Raw, 0, FIRST_READ.len) {
        Ok(h) => h,
        Err(Stop::Need(_)) => return Ok(Step::Need(first_reads(reads))),
        Err(Stop::Bad(e)) => return Err(e),
    };
    let result = match detect_head(head) {
        Some(format) => read_format(format, reads, opts).and_then(|mut info| {
            second_format(format, reads, &mut info)?;
            Ok(info)
        }),
        None => tail(reads),
    };
    match result {
        Ok(info) => Ok(Step::Done(Box::new(info))),
        Err(Stop::Need(ranges)) => Ok(Step::Need(ranges)),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// The first round's reads: the header, and with it the 7 bytes at 32768
/// that every format's check for a second format (or raw's for an ISO) reads
/// when the file is long enough to hold an ISO volume descriptor
/// ([`second_format`], [`tail`]): asked together, they cost one round of
/// reads instead of two.
fn first_reads(reads: &Reads) -> Vec<Range> {
    let mut out = vec![FIRST_READ];
    if reads
        .file_len()
        .is_some_and(|l| l >= partition::ISO_AT + iso::DESCRIPTOR_LEN)
    {
        out.push(Range::new(partition::ISO_AT, partition::ISO_SIG_LEN));
    }
    out
}

/// The format whose signature is in the first bytes of the file, in an order
/// where no signature can be mistaken for another.
pub fn detect_head(head: &[u8]) -> Option<Format> {
    if qcow2::matches(head) {
        // "QFI\xfb" is shared: version 1 is qcow, 2 and 3 are qcow2.
        return Some(if qcow::matches(head) {
            Format::Qcow
        } else {
            Format::Qcow2
        });
    }
    type Check = (fn(&[u8]) -> bool, Format);
    let checks: [Check; 11] = [
        (qed::matches, Format::Qed),
        (cow::matches, Format::Cow),
        (vmdk::matches, Format::Vmdk),
        (vpc::matches, Format::Vpc),
        (vhdx::matches, Format::Vhdx),
        (vdi::matches, Format::Vdi),
        (parallels::matches, Format::Parallels),
        (luks::matches, Format::Luks),
        (bochs::matches, Format::Bochs),
        (cloop::matches, Format::Cloop),
        // A text descriptor is checked last: it is plain text.
        (vmdk::matches_descriptor, Format::Vmdk),
    ];
    checks.iter().find(|(m, _)| m(head)).map(|(_, f)| *f)
}

fn read_format(format: Format, reads: &Reads, opts: &ProbeOptions) -> Result<ImageInfo, Stop> {
    match format {
        Format::Qcow2 => qcow2::probe_opts(reads, opts),
        Format::Qcow => qcow::probe(reads),
        Format::Cow => cow::probe(reads),
        Format::Qed => qed::probe(reads),
        Format::Vmdk => vmdk::probe(reads),
        Format::Vpc => vpc::probe(reads),
        Format::Vhdx => vhdx::probe(reads),
        Format::Vdi => vdi::probe(reads),
        Format::Parallels => parallels::probe(reads),
        Format::Luks => luks::probe(reads),
        Format::Bochs => bochs::probe(reads),
        Format::Cloop => cloop::probe(reads),
        Format::Iso => iso::probe(reads),
        Format::Dmg => dmg::probe(reads),
        Format::Raw => raw(reads),
    }
}

/// Nothing matched at offset 0: look where the other signatures live — the
/// last 512 bytes (fixed VHD footer `conectix`, DMG trailer `koly`), then
/// the ISO 9660 volume descriptor at 32769 — then say raw.
fn tail(reads: &Reads) -> Result<ImageInfo, Stop> {
    let Some(len) = reads.file_len() else {
        return Err(Stop::Bad(ProbeError {
            format: None,
            offset: 0,
            message: "no header at offset 0, and the file length is unknown: the footers at the \
                      end of the file (fixed VHD, DMG) cannot be looked for, so the format is \
                      not known (give the file length)"
                .into(),
        }));
    };
    // The footer first (a fixed VHD then costs its 512 bytes), the ISO
    // descriptor only when the footer is not one.
    if len >= 512 {
        let f = reads.bytes(Format::Raw, len - 512, 512)?;
        if vpc::matches(f) {
            // A fixed VHD: the guest's disk starts at byte 0.
            let mut info = vpc::probe(reads)?;
            partition_facts(reads, &mut info, "the guest disk of this fixed VHD")?;
            return Ok(info);
        }
        if dmg::matches_trailer(f) {
            return dmg::probe(reads);
        }
    }
    if len >= iso::DESCRIPTOR_OFFSET + iso::DESCRIPTOR_LEN {
        // Its signature came with the header ([`first_reads`]): the whole
        // descriptor is read only for an ISO.
        let sig = reads.bytes(Format::Raw, partition::ISO_AT, partition::ISO_SIG_LEN)?;
        let d = if iso::matches_descriptor(sig) {
            reads.bytes(Format::Raw, iso::DESCRIPTOR_OFFSET, iso::DESCRIPTOR_LEN)?
        } else {
            sig
        };
        if iso::matches_descriptor(d) {
            // A hybrid ISO (isohybrid) also holds a partition table: bootable
            // ISOs do, and that is not a second format.
            let mut info = iso::probe(reads)?;
            partition_facts(
                reads,
                &mut info,
                "this ISO (a hybrid ISO, as bootable ones are)",
            )?;
            return Ok(info);
        }
    }
    raw(reads)
}

fn raw(reads: &Reads) -> Result<ImageInfo, Stop> {
    let mut info = ImageInfo::new(Format::Raw);
    info.virtual_size = reads.file_len();
    info.dirty_flag = Some(false);
    info.diagnostics.push(Diagnostic::info(
        Code::NoHeader,
        "no header found: treated as raw (the format is not guessed)",
    ));
    partition_facts(reads, &mut info, "this raw disk")?;
    Ok(info)
}

/// Say what partition table the data at offset 0 holds (raw disks, ISOs,
/// fixed VHDs): `header.partition-table` and a `partition-table` info
/// diagnostic; what is wrong with it, a `partition-table-invalid` warning.
fn partition_facts(reads: &Reads, info: &mut ImageInfo, what: &str) -> Result<(), Stop> {
    let Some(t) = partition::table(reads)? else {
        return Ok(());
    };
    let scheme = if t.gpt { "gpt" } else { "mbr" };
    let n = t.partitions.unwrap_or(0);
    info.diagnostics.push(Diagnostic::info(
        Code::PartitionTable,
        format!(
            "{what} holds a partition table ({scheme}, {n} partitions in use); qemu reads it as \
             it reads any data"
        ),
    ));
    if !t.problems.is_empty() {
        info.diagnostics.push(Diagnostic::warning(
            Code::PartitionTableInvalid,
            format!(
                "the partition table is not what firmware and tools expect: {} (OpenStack refuses \
                 such images)",
                t.problems.join("; ")
            ),
        ));
    }
    let t = PartitionTable {
        partitions: t.partitions,
        scheme,
    };
    match info.header.as_mut() {
        Some(h) => h.set_partition_table(t),
        None => info.header = Some(Header::Raw(RawFacts { partition_table: t })),
    }
    Ok(())
}

/// Formats whose header at offset 0 leaves bytes 510..520 unused (zero in
/// every image qemu writes): an MBR or GPT signature there is a second
/// format. (Not luks: key slot salts are random there; not parallels: its
/// block table starts at byte 64; not bochs or cloop.)
const MBR_CHECKED: [Format; 8] = [
    Format::Qcow2,
    Format::Qcow,
    Format::Cow,
    Format::Qed,
    Format::Vmdk,
    Format::Vpc,
    Format::Vhdx,
    Format::Vdi,
];

/// A file whose header at offset 0 says `format` but that also reads as
/// another format — an MBR (`55 AA` at 510) or a GPT header at 512 behind a
/// qcow2/vmdk/… header, an ISO 9660 / UDF volume descriptor at 32768 —
/// is ambiguous: one tool sees one format, another the other (OpenStack's
/// `format_inspector` refuses "multiple formats"). An error
/// `multiple-formats`. Costs one read of 7 bytes at 32768 when the file is
/// long enough to hold an ISO volume descriptor and that byte was not read
/// yet; the MBR and GPT are in the first 4 KiB.
fn second_format(format: Format, reads: &Reads, info: &mut ImageInfo) -> Result<(), Stop> {
    // Static phrases only: each `format!` costs the wasm build.
    let mut found: Vec<&str> = Vec::new();
    let head = reads.bytes_upto(Format::Raw, 0, FIRST_READ.len)?;
    if MBR_CHECKED.contains(&format) && head.len() >= 1024 {
        if partition::has_mbr(head) {
            found.push("an MBR boot signature (55 AA at byte 510)");
        }
        if partition::is_gpt_header(&head[512..1024]) {
            found.push("a GPT header (\"EFI PART\", valid CRC) at byte 512");
        }
    }
    if let Some(len) = reads.file_len() {
        if len >= partition::ISO_AT + iso::DESCRIPTOR_LEN {
            let d = reads.bytes(Format::Raw, partition::ISO_AT, partition::ISO_SIG_LEN)?;
            if partition::is_volume_descriptor(d) {
                found.push(if d[1] == b'C' {
                    "an ISO 9660 volume descriptor (CD001) at byte 32768"
                } else {
                    "a UDF volume descriptor at byte 32768"
                });
            }
        }
    }
    if !found.is_empty() {
        info.diagnostics.push(Diagnostic::error(
            Code::MultipleFormats,
            format!(
                "besides its {format} header at byte 0 the file holds {}: it reads as more than \
                 one format, so what a VM or a tool sees depends on who looks (OpenStack refuses \
                 such images); convert it to a clean image before use",
                found.join(" and ")
            ),
        ));
    }
    Ok(())
}

pub use crate::limits::MAX_FLAGGED_NAME;

/// A backing name of `len` bytes at `offset`, longer than the `max` the
/// format allows: read at most [`MAX_FLAGGED_NAME`] bytes of it (fewer when
/// the file ends first), keep them as the backing name and add an error
/// `backing-name-too-long` saying qemu refuses the image. Returns the bytes
/// kept.
pub(crate) fn too_long_name(
    reads: &Reads,
    format: Format,
    offset: u64,
    len: u64,
    max: u64,
    info: &mut ImageInfo,
) -> Result<u64, Stop> {
    let want = len.min(MAX_FLAGGED_NAME);
    let bytes = reads.bytes_upto(format, offset, want)?;
    let kept = bytes.len() as u64;
    info.backing_filename = Some(lossy(bytes, &mut info.diagnostics, "backing name"));
    info.diagnostics.push(Diagnostic::error(
        Code::BackingNameTooLong,
        format!(
            "the header gives a backing name of {len} bytes ({kept} kept here); {format} allows \
             at most {max}: qemu refuses to open this image (\"Backing file name too long\"), \
             so qemu-img cannot rebase it either"
        ),
    ));
    Ok(kept)
}

/// Record the real length of a too-long backing name in `header`.
pub(crate) fn note_name_length(info: &mut ImageInfo, len: u64) {
    if let Some(h) = info.header.as_mut() {
        h.set_backing_name_length(len);
    }
}

/// Drive [`probe`] with a synchronous reader `read(offset, len) -> bytes`
/// (short at end of file). Returns the facts and the number of bytes read.
///
/// # Example
///
/// Any [`Read`](std::io::Read) + [`Seek`](std::io::Seek) will do — a
/// [`std::fs::File`] in a real program; here a VMDK text descriptor in
/// memory:
///
/// ```
/// use std::io::{Cursor, Read, Seek, SeekFrom};
/// use backing_chain::image::{probe_with, Format};
///
/// let descriptor = "\
/// ## Disk DescriptorFile
/// version=1
/// CID=5c8a2a4e
/// parentCID=ffffffff
/// createType=\"monolithicFlat\"
/// RW 2097152 FLAT \"disk-flat.vmdk\" 0
/// ";
/// let mut file = Cursor::new(descriptor.as_bytes());
/// let len = file.get_ref().len() as u64;
/// let (info, bytes_read) = probe_with(Some(len), |offset, len| {
///     file.seek(SeekFrom::Start(offset))?;
///     let mut bytes = Vec::new();
///     (&mut file).take(len).read_to_end(&mut bytes)?;
///     Ok::<_, std::io::Error>(bytes)
/// })?;
/// assert_eq!(info.format, Format::Vmdk);
/// assert_eq!(info.virtual_size, Some(2097152 * 512));
/// assert_eq!(info.backing_filename, None);
/// let extents = info.vmdk_extents();
/// assert_eq!(extents[0].file.as_deref(), Some("disk-flat.vmdk"));
/// assert_eq!(bytes_read, len);
/// # Ok::<(), backing_chain::image::ProbeOrIo<std::io::Error>>(())
/// ```
pub fn probe_with<E>(
    file_len: Option<u64>,
    read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<(ImageInfo, u64), ProbeOrIo<E>> {
    probe_with_opts(file_len, &ProbeOptions::default(), read)
}

/// [`probe_with`] with options.
pub fn probe_with_opts<E>(
    file_len: Option<u64>,
    opts: &ProbeOptions,
    mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<(ImageInfo, u64), ProbeOrIo<E>> {
    let mut reads = Reads::new(file_len);
    let mut bytes_read = 0u64;
    for _ in 0..limits::MAX_ROUNDS {
        match probe_opts(&reads, opts).map_err(ProbeOrIo::Probe)? {
            Step::Done(info) => return Ok((*info, bytes_read)),
            Step::Need(ranges) => {
                for r in ranges {
                    let len = match file_len {
                        Some(l) => r.len.min(l.saturating_sub(r.offset)),
                        None => r.len,
                    };
                    let bytes = read(r.offset, len).map_err(ProbeOrIo::Io)?;
                    bytes_read += bytes.len() as u64;
                    reads.insert(r, bytes);
                }
            }
        }
    }
    Err(ProbeOrIo::Probe(ProbeError {
        format: None,
        offset: 0,
        message: format!("header needs more than {} reads", limits::MAX_ROUNDS),
    }))
}

/// Error of [`probe_with`]: the header, or the caller's reader.
#[derive(Debug)]
pub enum ProbeOrIo<E> {
    /// The bytes read are not a header this crate accepts.
    Probe(ProbeError),
    /// The reader failed.
    Io(E),
}

impl<E: std::fmt::Display> std::fmt::Display for ProbeOrIo<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeOrIo::Probe(e) => e.fmt(f),
            ProbeOrIo::Io(e) => e.fmt(f),
        }
    }
}

/// So that `?` turns it into a `Box<dyn Error>` (the message is the inner
/// error's, so there is no separate source).
impl<E: std::error::Error> std::error::Error for ProbeOrIo<E> {}

/// [`Reads::bytes`] gave fewer bytes than asked (it never does).
#[cold]
fn short_read(format: Format, offset: u64) -> Stop {
    Stop::bad(format, offset, "short read")
}

/// A fixed-size structure read whole: its fields are read at named offsets
/// (`h.be_u32::<CLUSTER_BITS>()`), and a field that does not lie inside the
/// `N` bytes is a compile error, not a zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a, const N: usize>(pub(crate) &'a [u8; N]);

macro_rules! view_readers {
    ($($name:ident, $word:ident: $t:ty, $from:ident;)*) => {
        impl<const N: usize> View<'_, N> {
            $(
                #[inline]
                pub(crate) fn $name<const AT: usize>(&self) -> $t {
                    const { assert!(AT + std::mem::size_of::<$t>() <= N, "field past the end of the view") };
                    $word(self.0, AT)
                }
            )*
        }
        // One body per width and byte order (not per view and offset): the
        // views check the offsets at compile time, so the slice index never
        // fails.
        $(
            #[inline(never)]
            fn $word(b: &[u8], at: usize) -> $t {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[at..at + std::mem::size_of::<$t>()]);
                <$t>::$from(a)
            }
        )*
    };
}

view_readers! {
    be_u16, word_be_u16: u16, from_be_bytes;
    be_u32, word_be_u32: u32, from_be_bytes;
    be_u64, word_be_u64: u64, from_be_bytes;
    le_u16, word_le_u16: u16, from_le_bytes;
    le_u32, word_le_u32: u32, from_le_bytes;
    le_u64, word_le_u64: u64, from_le_bytes;
}

impl<'a, const N: usize> View<'a, N> {
    /// The first `N` bytes of `b`, if it has that many.
    #[inline]
    pub(crate) fn of(b: &'a [u8]) -> Option<View<'a, N>> {
        b.first_chunk::<N>().map(View)
    }
    /// The `N` bytes at `at` in `b`, if it has them.
    #[inline]
    pub(crate) fn at(b: &'a [u8], at: usize) -> Option<View<'a, N>> {
        View::of(b.get(at..)?)
    }
    /// The byte at `AT`.
    #[inline]
    pub(crate) fn u8<const AT: usize>(&self) -> u8 {
        const { assert!(AT < N, "field past the end of the view") };
        self.0[AT]
    }
    /// The `M` bytes at `AT`, as a view of their own.
    #[inline]
    pub(crate) fn sub<const AT: usize, const M: usize>(&self) -> View<'a, M> {
        const { assert!(AT + M <= N, "sub-view past the end of the view") };
        match self.0[AT..AT + M].try_into() {
            Ok(a) => View(a),
            Err(_) => unreachable!("the length is checked at compile time"),
        }
    }
    /// The `LEN` bytes at `AT`.
    #[inline]
    pub(crate) fn bytes<const AT: usize, const LEN: usize>(&self) -> &'a [u8; LEN] {
        self.sub::<AT, LEN>().0
    }
}

/// A 16-byte id in RFC 4122 byte order (VHD), lowercase with dashes.
pub(crate) fn uuid_be(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*b).hyphenated().to_string()
}

/// A 16-byte Microsoft GUID (first three fields little-endian: VHDX, VDI),
/// lowercase with dashes.
pub(crate) fn guid_le(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes_le(*b).hyphenated().to_string()
}

/// Text up to the first NUL (lossy UTF-8).
pub(crate) fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// UTF-16 text up to the first NUL code unit (lossy).
pub(crate) fn utf16(b: &[u8], big_endian: bool) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// A name as stored: valid UTF-8 as is; otherwise every byte that is not
/// part of valid UTF-8 is shown escaped as `\xNN`, and a `name-not-utf8`
/// warning says so.
pub(crate) fn lossy(data: &[u8], diags: &mut Vec<Diagnostic>, what: &str) -> String {
    if let Ok(s) = std::str::from_utf8(data) {
        return s.to_string();
    }
    diags.push(Diagnostic::warning(
        Code::NameNotUtf8,
        format!("the {what} is not valid UTF-8; the bytes that are not are shown as \\xNN"),
    ));
    let mut out = String::new();
    let mut rest = data;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    #[test]
    fn text_map_keeps_keys_sorted_once_and_the_last_value() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let m = TextMap::from_pairs(vec![p("b", "1"), p("a", "2"), p("b", "3"), p("", "4")]);
        let pairs: Vec<(&str, &str)> = m.iter().collect();
        assert_eq!(pairs, [("", "4"), ("a", "2"), ("b", "3")]);
        assert_eq!((m.get("b"), m.get("c"), m.len()), (Some("3"), None, 3));
        // As a BTreeMap<String, String> serialises: an object, keys sorted.
        let reference: std::collections::BTreeMap<String, String> =
            [p("b", "1"), p("a", "2"), p("b", "3"), p("", "4")]
                .into_iter()
                .collect();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&reference).unwrap()
        );
        let mut n = TextMap::new();
        for (k, v) in [("z", "1"), ("é", "2"), ("Z", "3"), ("z", "4")] {
            n.insert(k.into(), v.into());
        }
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [("Z", "3"), ("z", "4"), ("é", "2")]
        );
        assert!(TextMap::from_pairs(Vec::new()).is_empty());
    }

    #[test]
    fn views_read_fields_in_both_byte_orders() {
        let b: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let v = View(&b);
        assert_eq!(v.be_u16::<0>(), 0x0102);
        assert_eq!(v.le_u16::<14>(), 0x100f);
        assert_eq!(v.be_u32::<4>(), 0x0506_0708);
        assert_eq!(v.le_u32::<12>(), 0x100f_0e0d);
        assert_eq!(v.be_u64::<8>(), 0x090a_0b0c_0d0e_0f10);
        assert_eq!(v.le_u64::<0>(), 0x0807_0605_0403_0201);
        assert_eq!(v.u8::<15>(), 16);
        assert_eq!(v.bytes::<2, 3>(), &[3, 4, 5]);
        assert_eq!(v.sub::<8, 8>().be_u32::<0>(), 0x090a_0b0c);
    }

    #[test]
    fn views_past_the_end_are_none_not_zero() {
        let b = [0xffu8; 10];
        assert!(View::<11>::of(&b).is_none());
        assert!(View::<4>::at(&b, 7).is_none());
        assert!(View::<4>::at(&b, usize::MAX).is_none());
        assert_eq!(
            View::<4>::at(&b, 6).map(|v| v.le_u32::<0>()),
            Some(u32::MAX)
        );
        let mut reads = Reads::new(Some(10));
        reads.insert(Range::new(0, 10), b.to_vec());
        assert!(matches!(
            reads.view::<16>(Format::Raw, 0),
            Err(Stop::Bad(_))
        ));
        assert!(reads.view::<10>(Format::Raw, 0).is_ok());
    }

    #[test]
    fn format_specific_is_data_then_type_and_foreign_json_as_is() {
        let fs = FormatSpecific::Vmdk(vmdk::Specific {
            cid: Some(1),
            create_type: None,
            extents: Vec::new(),
            parent_cid: None,
        });
        assert_eq!(
            serde_json::to_string(&fs).unwrap(),
            r#"{"data":{"cid":1,"extents":[]},"type":"vmdk"}"#
        );
        let text = r#"{"type": "qcow2", "data": {"data-file": "d.raw"}}"#;
        let limits = crate::json::Limits {
            depth: 8,
            bytes: 100,
        };
        let other = crate::json::parse(text, limits).unwrap();
        let mut info = ImageInfo::new(Format::Qcow2);
        info.format_specific = Some(FormatSpecific::Other(other));
        assert_eq!(
            serde_json::to_value(&info.format_specific).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert_eq!(info.data_file(), Some(("d.raw", false)));
    }
}
