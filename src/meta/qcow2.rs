//! qcow2 metadata walker, after qemu's `docs/interop/qcow2.rst` and what
//! `qemu-img map` and `qemu-img check` do with the tables (qemu's
//! `qcow2_get_cluster_type`, `qcow2_co_block_status`,
//! `qcow2_check_refcounts`).
//!
//! Rounds of reads, each batched (adjacent tables in one range):
//!
//! 1. the active L1 table; with `check`, also the refcount table, the
//!    bitmap directory and the snapshot table (in windows until parsed);
//! 2. with `check`: the snapshots' L1 tables, the refcount blocks and the
//!    bitmap tables;
//! 3. every L2 table the L1 tables point to (each read once, however many
//!    tables point to it).
//!
//! L2 tables are processed as they arrive and dropped; what is kept is the
//! L1 tables, the refcount blocks (check) and one counter per cluster of
//! the file (check).

use super::{Allocation, Check, Extent, Kind, Layer, MetaError, Plan, Problem, WalkOptions};
use crate::diag::{Code, Diagnostic};
use crate::image::Format;
use crate::image::{FormatSpecific, Header, ImageInfo, Range};
use crate::limits;

const F: Format = Format::Qcow2;

const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1E_RESERVED_MASK: u64 = 0x7f00_0000_0000_01ff;
const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_STD_RESERVED_MASK: u64 = 0x3f00_0000_0000_01fe;
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
const BME_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
const ALL_ALLOC: u64 = 0xffff_ffff;

/// qemu's cluster types (`QCow2ClusterType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ct {
    Unallocated,
    ZeroPlain,
    ZeroAlloc,
    Normal,
    Compressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Tables,
    Blocks,
    L2,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    L1,
    RefTable,
    SnapWindow,
    BitmapDir,
    SnapL1(usize),
    RefBlock(usize),
    BitmapTable(usize),
    L2,
}

/// A table being read: its bytes in the file are `[at, at + len)`; `buf`
/// holds the part inside the file (what is past the end reads as zeroes).
#[derive(Debug)]
struct Item {
    kind: ItemKind,
    at: u64,
    len: u64,
    in_file: u64,
    buf: Vec<u8>,
    missing: u64,
}

#[derive(Debug)]
struct Want {
    range: Range,
    /// (item index, offset inside the item, length)
    parts: Vec<(usize, u64, u64)>,
    done: bool,
}

/// Who points to an L2 table.
#[derive(Debug, Default)]
struct L2Use {
    /// Active L1 indices whose entry is not 0 (masked offset may be 0).
    active: Vec<u32>,
    /// References from snapshots' L1 tables.
    snaps: u32,
}

/// The check's counters (`BdrvCheckResult`).
#[derive(Debug, Default)]
struct Counters {
    corruptions: u64,
    leaks: u64,
    check_errors: u64,
    allocated: u64,
    fragmented: u64,
    compressed: u64,
}

/// References counted per cluster: dense over the file, sparse past it.
#[derive(Debug, Default)]
struct Refs {
    dense: Vec<u32>,
    /// (cluster, references), sorted by cluster.
    beyond: Vec<(u64, u32)>,
    max: u64,
}

/// The qcow2 metadata walker (see the module docs).
#[derive(Debug)]
pub struct Walker {
    cluster_bits: u32,
    cs: u64,
    virtual_size: u64,
    file_len: u64,
    version: u32,
    l1_size: u64,
    l1_offset: u64,
    extended: bool,
    data_file: bool,
    encrypted: bool,
    refcount_order: u32,
    rt_offset: u64,
    rt_entries: u64,
    nb_snapshots: u32,
    snapshots_offset: u64,
    fde: Option<(u64, u64)>,
    bitmap_dir: Option<(u64, u64, u32)>,
    check: bool,

    phase: Phase,
    items: Vec<Item>,
    wants: Vec<Want>,
    bytes_read: u64,
    planned: u64,
    upper: u64,

    l1: Vec<u64>,
    reftable: Vec<u64>,
    refblocks: Vec<Option<Box<[u8]>>>,
    snap_buf: Vec<u8>,
    snap_parsed: Option<u64>,
    snapshots: Vec<(u64, u64)>,
    snap_l1: Vec<Vec<u64>>,
    bitmaps: Vec<(u64, u64)>,
    /// (L2 table offset, who points to it), sorted by offset.
    l2_use: Vec<(u64, L2Use)>,

    /// (active L1 index, the runs of its L2 table).
    runs: Vec<(u64, Vec<Extent>)>,
    refs: Refs,
    n: Counters,
    problems: Vec<Problem>,
    diags: Vec<Diagnostic>,
}

fn be64(b: &[u8], i: usize) -> u64 {
    b.get(i * 8..i * 8 + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn entries(b: &[u8], n: u64) -> Vec<u64> {
    (0..n as usize).map(|i| be64(b, i)).collect()
}

impl Walker {
    pub fn new(info: &ImageInfo, file_len: u64, opts: WalkOptions) -> Result<Walker, MetaError> {
        let Some(Header::Qcow2(h)) = &info.header else {
            return Err(MetaError::new(F, "no qcow2 header facts"));
        };
        let cs = info.cluster_size.unwrap_or(65536);
        let cluster_bits = cs.trailing_zeros();
        let virtual_size = info.virtual_size.unwrap_or(0);
        let refcount_bits = match &info.format_specific {
            Some(FormatSpecific::Qcow2(s)) => s.refcount_bits,
            _ => 16,
        };
        let extended = h.incompatible_features & (1 << 4) != 0;
        let data_file = h.incompatible_features & (1 << 2) != 0;
        let l2_size = cs / if extended { 16 } else { 8 };
        let l1_size = u64::from(h.l1_size);
        if l1_size * 8 > limits::QCOW2_MAX_L1_BYTES {
            return Err(MetaError::new(
                F,
                format!(
                    "the L1 table has {l1_size} entries, above qemu's limit of {} bytes: qemu \
                     refuses to open this image",
                    limits::QCOW2_MAX_L1_BYTES
                ),
            ));
        }
        let needed_l1 = virtual_size.div_ceil(cs * l2_size);
        if l1_size < needed_l1 {
            return Err(MetaError::new(
                F,
                format!(
                    "the L1 table has {l1_size} entries, too few for the virtual size \
                     ({needed_l1} needed): qemu refuses to open this image"
                ),
            ));
        }
        if h.l1_table_offset & (cs - 1) != 0 && l1_size > 0 {
            return Err(MetaError::new(
                F,
                format!(
                    "the L1 table offset {} is not cluster-aligned: qemu refuses to open this image",
                    h.l1_table_offset
                ),
            ));
        }
        let rt_bytes = u64::from(h.refcount_table_clusters) * cs;
        if opts.check {
            if rt_bytes > limits::QCOW2_MAX_REFTABLE_BYTES {
                return Err(MetaError::new(
                    F,
                    format!(
                        "the refcount table has {} clusters, above qemu's limit of {} bytes",
                        h.refcount_table_clusters,
                        limits::QCOW2_MAX_REFTABLE_BYTES
                    ),
                ));
            }
            if h.refcount_table_offset & (cs - 1) != 0 {
                return Err(MetaError::new(
                    F,
                    "the refcount table offset is not cluster-aligned: qemu refuses to open this image",
                ));
            }
            if file_len.div_ceil(cs) > limits::META_MAX_CLUSTERS {
                return Err(MetaError::new(
                    F,
                    format!(
                        "the file has more than {} clusters: too many to check here",
                        limits::META_MAX_CLUSTERS
                    ),
                ));
            }
        }
        let refcount_order = refcount_bits.trailing_zeros();
        let max = if refcount_order >= 6 {
            u64::MAX
        } else {
            (1u64 << (1u64 << refcount_order)) - 1
        };
        let bitmap_dir = match (h.autoclear_bitmaps, h.nb_bitmaps, h.bitmap_directory_offset) {
            (true, Some(n), Some(off)) if n > 0 => {
                Some((off, h.bitmap_directory_size.unwrap_or(0), n))
            }
            _ => None,
        };
        let mut w = Walker {
            cluster_bits,
            cs,
            virtual_size,
            file_len,
            version: h.version,
            l1_size,
            l1_offset: h.l1_table_offset,
            extended,
            data_file,
            encrypted: h.crypt_method != 0,
            refcount_order,
            rt_offset: h.refcount_table_offset,
            rt_entries: rt_bytes / 8,
            nb_snapshots: h.nb_snapshots,
            snapshots_offset: h.snapshots_offset,
            fde: h
                .full_disk_encryption_header
                .map(|r| (r.offset, r.length))
                .filter(|_| h.crypt_method == 2),
            bitmap_dir,
            check: opts.check,
            phase: Phase::Start,
            items: Vec::new(),
            wants: Vec::new(),
            bytes_read: 0,
            planned: 0,
            upper: 0,
            l1: Vec::new(),
            reftable: Vec::new(),
            refblocks: Vec::new(),
            snap_buf: Vec::new(),
            snap_parsed: None,
            snapshots: Vec::new(),
            snap_l1: Vec::new(),
            bitmaps: Vec::new(),
            l2_use: Vec::new(),
            runs: Vec::new(),
            refs: Refs {
                dense: Vec::new(),
                beyond: Vec::new(),
                max,
            },
            n: Counters::default(),
            problems: Vec::new(),
            diags: Vec::new(),
        };
        if opts.check {
            w.refs.dense = vec![0; file_len.div_ceil(cs) as usize];
        }
        // The upper bound from the header alone.
        let in_file = |at: u64, len: u64| len.min(file_len.saturating_sub(at));
        let file_clusters = file_len.div_ceil(cs);
        let mut up = in_file(w.l1_offset, l1_size * 8) + l1_size.min(file_clusters) * cs;
        if opts.check {
            up += in_file(w.rt_offset, rt_bytes) + w.rt_entries.min(file_clusters) * cs;
            if w.nb_snapshots > 0 || bitmap_dir.is_some() {
                // Snapshot and bitmap tables: at most the whole file each.
                up += file_len * 2;
            }
        }
        w.upper = up;
        Ok(w)
    }

    fn l2_size(&self) -> u64 {
        self.cs / if self.extended { 16 } else { 8 }
    }

    pub fn plan(&self) -> Plan {
        // Once the L2 round is built every range is known: exact.
        let exact = matches!(self.phase, Phase::L2 | Phase::Done);
        Plan {
            bytes_total: if exact {
                self.planned
            } else {
                self.upper.max(self.planned)
            },
            exact,
            bytes_read: self.bytes_read,
            file_len: self.file_len,
        }
    }

    fn problem(&mut self, class: &'static str, offset: u64, message: String) {
        if self.problems.len() < limits::META_MAX_PROBLEMS {
            self.problems.push(Problem {
                class,
                offset,
                message,
            });
        }
    }

    fn corruption(&mut self, offset: u64, message: String) {
        self.n.corruptions += 1;
        self.problem("corruption", offset, message);
    }

    /// Start a round reading these tables.
    fn round(&mut self, tables: Vec<(ItemKind, u64, u64)>) -> Result<(), MetaError> {
        self.items.clear();
        self.wants.clear();
        let mut pieces: Vec<(u64, u64, usize, u64)> = Vec::new();
        let mut now: Vec<usize> = Vec::new();
        for (kind, at, len) in tables {
            let in_file = len.min(self.file_len.saturating_sub(at));
            let i = self.items.len();
            self.items.push(Item {
                kind,
                at,
                len,
                in_file,
                buf: Vec::new(),
                missing: in_file,
            });
            if in_file < len {
                self.past_eof(kind, at, len);
            }
            if in_file == 0 {
                now.push(i);
                continue;
            }
            self.planned += in_file;
            if self.planned > limits::META_MAX_BYTES {
                return Err(MetaError::new(
                    F,
                    format!(
                        "the tables need more than {} bytes: above the limit of one walk",
                        limits::META_MAX_BYTES
                    ),
                ));
            }
            let mut o = 0;
            while o < in_file {
                let n = (in_file - o).min(limits::MAX_READ);
                pieces.push((at + o, n, i, o));
                o += n;
            }
        }
        sort_by_key(&mut pieces, |p| p.0);
        for (at, len, item, off) in pieces {
            match self.wants.last_mut() {
                Some(w) if w.range.end() == at && w.range.len + len <= limits::MAX_READ => {
                    w.range.len += len;
                    w.parts.push((item, off, len));
                }
                _ => self.wants.push(Want {
                    range: Range::new(at, len),
                    parts: vec![(item, off, len)],
                    done: false,
                }),
            }
        }
        for i in now {
            self.complete(i)?;
        }
        Ok(())
    }

    fn past_eof(&mut self, kind: ItemKind, at: u64, len: u64) {
        let what = match kind {
            ItemKind::L1 => "the L1 table".to_string(),
            ItemKind::RefTable => "the refcount table".to_string(),
            ItemKind::SnapWindow => return,
            ItemKind::BitmapDir => "the bitmap directory".to_string(),
            ItemKind::SnapL1(i) => format!("the L1 table of snapshot {i}"),
            ItemKind::RefBlock(i) => format!("refcount block {i}"),
            ItemKind::BitmapTable(i) => format!("the table of bitmap {i}"),
            ItemKind::L2 => "an L2 table".to_string(),
        };
        if self
            .diags
            .iter()
            .filter(|d| d.code == Code::MetaPastEof)
            .count()
            < limits::META_MAX_PROBLEMS
        {
            self.diags.push(Diagnostic::error(
                Code::MetaPastEof,
                format!(
                    "{what} at byte {at} ({len} bytes) lies past the end of the file ({} bytes): \
                     read as zeroes, as qemu reads it",
                    self.file_len
                ),
            ));
        }
    }

    pub fn need(&mut self) -> Result<Vec<Range>, MetaError> {
        loop {
            let open: Vec<Range> = self
                .wants
                .iter()
                .filter(|w| !w.done)
                .map(|w| w.range)
                .collect();
            if !open.is_empty() {
                return Ok(open);
            }
            self.items.clear();
            self.wants.clear();
            match self.phase {
                Phase::Start => {
                    self.phase = Phase::Tables;
                    let mut t = vec![(ItemKind::L1, self.l1_offset, self.l1_size * 8)];
                    if self.check {
                        t.push((ItemKind::RefTable, self.rt_offset, self.rt_entries * 8));
                        if let Some((off, size, _)) = self.bitmap_dir {
                            if size > limits::QCOW2_MAX_BITMAP_DIRECTORY {
                                return Err(MetaError::new(
                                    F,
                                    "the bitmap directory is larger than qemu's limit",
                                ));
                            }
                            t.push((ItemKind::BitmapDir, off, size));
                        }
                        if let Some(w) = self.snap_window() {
                            t.push(w);
                        }
                    }
                    self.round(t)?;
                }
                Phase::Tables => {
                    if self.check && self.snap_parsed.is_none() && self.nb_snapshots > 0 {
                        match self.snap_window() {
                            Some(w) => {
                                self.round(vec![w])?;
                                continue;
                            }
                            None => {
                                return Err(MetaError::new(
                                    F,
                                    "the snapshot table runs past the end of the file",
                                ))
                            }
                        }
                    }
                    if self.check {
                        self.phase = Phase::Blocks;
                        let mut t = Vec::new();
                        for i in 0..self.snapshots.len() {
                            let (off, size) = self.snapshots[i];
                            if size * 8 > limits::QCOW2_MAX_L1_BYTES || off & (self.cs - 1) != 0 {
                                self.corruption(
                                    self.snapshots_offset,
                                    format!(
                                        "snapshot {i}: its L1 table is too large or not aligned"
                                    ),
                                );
                                self.snapshots[i].1 = 0;
                                continue;
                            }
                            t.push((ItemKind::SnapL1(i), off, size * 8));
                        }
                        self.snap_l1 = vec![Vec::new(); self.snapshots.len()];
                        self.refblocks = vec![None; self.reftable.len()];
                        for (i, &e) in self.reftable.iter().enumerate() {
                            let off = e & REFT_OFFSET_MASK;
                            if off != 0 && off & (self.cs - 1) == 0 {
                                t.push((ItemKind::RefBlock(i), off, self.cs));
                            }
                        }
                        for (i, &(off, size)) in self.bitmaps.iter().enumerate() {
                            t.push((ItemKind::BitmapTable(i), off, size * 8));
                        }
                        self.round(t)?;
                    } else {
                        self.l2_round()?;
                    }
                }
                Phase::Blocks => self.l2_round()?,
                Phase::L2 => {
                    self.phase = Phase::Done;
                }
                Phase::Done => return Ok(Vec::new()),
            }
        }
    }

    /// The next window of the snapshot table to read, if not all parsed.
    fn snap_window(&self) -> Option<(ItemKind, u64, u64)> {
        if self.nb_snapshots == 0 || self.snap_parsed.is_some() {
            return None;
        }
        let at = self.snapshots_offset + self.snap_buf.len() as u64;
        if at >= self.file_len || self.snap_buf.len() as u64 >= limits::QCOW2_MAX_SNAPSHOT_TABLE {
            return None;
        }
        let want = (u64::from(self.nb_snapshots) * 128)
            .clamp(4096, limits::MAX_READ)
            .min(self.file_len - at);
        Some((ItemKind::SnapWindow, at, want))
    }

    /// Parse the snapshot table from what was read: `Some(size)` once every
    /// entry is in (qemu's `snapshots_size`: the end of the last entry).
    fn parse_snapshots(&mut self) -> Result<(), MetaError> {
        let b = &self.snap_buf;
        let mut off = 0usize;
        let mut out = Vec::new();
        for i in 0..self.nb_snapshots {
            off = off.div_ceil(8) * 8;
            let Some(h) = b.get(off..off + 40) else {
                return Ok(());
            };
            let l1_off = be64(h, 0);
            let l1_size = u64::from(u32::from_be_bytes([h[8], h[9], h[10], h[11]]));
            let id = u64::from(u16::from_be_bytes([h[12], h[13]]));
            let name = u64::from(u16::from_be_bytes([h[14], h[15]]));
            let extra = u64::from(u32::from_be_bytes([h[36], h[37], h[38], h[39]]));
            if extra > limits::QCOW2_MAX_SNAPSHOT_EXTRA {
                return Err(MetaError::new(
                    F,
                    format!("snapshot {i}: {extra} bytes of extra data, above qemu's limit"),
                ));
            }
            let end = off as u64 + 40 + extra + id + name;
            if end > b.len() as u64 {
                return Ok(());
            }
            off = end as usize;
            out.push((l1_off, l1_size));
        }
        self.snapshots = out;
        self.snap_parsed = Some(off as u64);
        Ok(())
    }

    fn l2_round(&mut self) -> Result<(), MetaError> {
        self.phase = Phase::L2;
        let mut uses: Vec<(u64, Option<u32>)> = Vec::new();
        let l1 = std::mem::take(&mut self.l1);
        for (i, &e) in l1.iter().enumerate() {
            if e == 0 {
                continue;
            }
            let off = e & L1E_OFFSET_MASK;
            if self.check {
                self.l1_entry_checks(e, i as u64, self.l1_offset);
                self.inc(off, self.cs)?;
            }
            if off & (self.cs - 1) != 0 {
                self.meta_corrupt(format!(
                    "the L2 table offset {off} (L1 index {i}) is not cluster-aligned: qemu \
                     refuses to read this part of the disk"
                ));
            }
            if off == 0 && !self.check {
                continue;
            }
            uses.push((off, Some(i as u32)));
        }
        self.l1 = l1;
        let snaps = std::mem::take(&mut self.snap_l1);
        for (s, table) in snaps.iter().enumerate() {
            let at = self.snapshots[s].0;
            for (i, &e) in table.iter().enumerate() {
                if e == 0 {
                    continue;
                }
                let off = e & L1E_OFFSET_MASK;
                self.l1_entry_checks(e, i as u64, at);
                self.inc(off, self.cs)?;
                uses.push((off, None));
            }
        }
        sort_by_key(&mut uses, |u| u.0);
        for (off, active) in uses {
            if self.l2_use.last().is_none_or(|l| l.0 != off) {
                self.l2_use.push((off, L2Use::default()));
            }
            if let Some((_, u)) = self.l2_use.last_mut() {
                match active {
                    Some(i) => u.active.push(i),
                    None => u.snaps += 1,
                }
            }
        }
        let t: Vec<(ItemKind, u64, u64)> = self
            .l2_use
            .iter()
            .map(|&(off, _)| (ItemKind::L2, off, self.cs))
            .collect();
        self.round(t)
    }

    fn l1_entry_checks(&mut self, e: u64, i: u64, table: u64) {
        let off = e & L1E_OFFSET_MASK;
        if e & L1E_RESERVED_MASK != 0 {
            self.corruption(
                table + i * 8,
                format!("L1 entry {i} has reserved bits set ({e:#x})"),
            );
        }
        if off & (self.cs - 1) != 0 {
            self.corruption(
                table + i * 8,
                format!("L2 table offset {off:#x} (L1 entry {i}) is not cluster-aligned"),
            );
        }
    }

    fn meta_corrupt(&mut self, message: String) {
        if self
            .diags
            .iter()
            .filter(|d| d.code == Code::MetaCorrupt)
            .count()
            < limits::META_MAX_PROBLEMS
        {
            self.diags.push(
                Diagnostic::error(Code::MetaCorrupt, message).with_fix("qemu-img check IMAGE"),
            );
        }
    }

    pub fn feed(&mut self, range: Range, bytes: &[u8]) -> Result<(), MetaError> {
        // The wants are sorted by offset: find the first at this offset,
        // then the first not fed with this very range (linear overall).
        let first = self
            .wants
            .partition_point(|w| w.range.offset < range.offset);
        let Some(wi) = self.wants[first..]
            .iter()
            .take_while(|w| w.range.offset == range.offset)
            .position(|w| !w.done && w.range == range)
            .map(|i| first + i)
        else {
            return Err(MetaError::new(
                F,
                format!(
                    "bytes [{}, +{}) were not asked for in this round",
                    range.offset, range.len
                ),
            ));
        };
        self.wants[wi].done = true;
        self.bytes_read += bytes.len() as u64;
        let parts = std::mem::take(&mut self.wants[wi].parts);
        let mut at = 0u64;
        for (item, off, len) in parts {
            let it = &mut self.items[item];
            if it.buf.is_empty() {
                it.buf = vec![0; it.in_file as usize];
            }
            let src_end = (at + len).min(bytes.len() as u64);
            if at < src_end {
                let n = (src_end - at) as usize;
                it.buf[off as usize..off as usize + n]
                    .copy_from_slice(&bytes[at as usize..src_end as usize]);
            }
            it.missing -= len;
            at += len;
            if it.missing == 0 {
                self.complete(item)?;
            }
        }
        Ok(())
    }

    /// A table is in: use it.
    fn complete(&mut self, i: usize) -> Result<(), MetaError> {
        let buf = std::mem::take(&mut self.items[i].buf);
        let (kind, at, len) = (self.items[i].kind, self.items[i].at, self.items[i].len);
        match kind {
            ItemKind::L1 => self.l1 = entries(&buf, self.l1_size),
            ItemKind::RefTable => self.reftable = entries(&buf, self.rt_entries),
            ItemKind::SnapWindow => {
                self.snap_buf.extend_from_slice(&buf);
                self.parse_snapshots()?;
            }
            ItemKind::BitmapDir => self.parse_bitmap_dir(&buf),
            ItemKind::SnapL1(s) => {
                self.snap_l1[s] = entries(&buf, len / 8);
            }
            ItemKind::RefBlock(r) => self.refblocks[r] = Some(buf.into_boxed_slice()),
            ItemKind::BitmapTable(_) => {
                for e in entries(&buf, len / 8) {
                    let off = e & BME_OFFSET_MASK;
                    if off != 0 {
                        self.inc(off, self.cs)?;
                    }
                }
            }
            ItemKind::L2 => self.l2_table(at, &buf)?,
        }
        Ok(())
    }

    fn parse_bitmap_dir(&mut self, b: &[u8]) {
        let Some((_, _, n)) = self.bitmap_dir else {
            return;
        };
        let mut off = 0usize;
        for _ in 0..n {
            let Some(e) = b.get(off..off + 24) else { break };
            let table = be64(e, 0);
            let size = u64::from(u32::from_be_bytes([e[8], e[9], e[10], e[11]]));
            let name = usize::from(u16::from_be_bytes([e[18], e[19]]));
            let extra = u32::from_be_bytes([e[20], e[21], e[22], e[23]]) as usize;
            self.bitmaps.push((table, size));
            off = (off + 24 + extra + name).div_ceil(8) * 8;
        }
    }

    /// The cluster type of an L2 entry, as `qcow2_get_cluster_type`.
    fn cluster_type(&self, e: u64) -> Ct {
        if e & COMPRESSED != 0 {
            Ct::Compressed
        } else if e & ZERO != 0 && !self.extended {
            if e & L2E_OFFSET_MASK != 0 {
                Ct::ZeroAlloc
            } else {
                Ct::ZeroPlain
            }
        } else if e & L2E_OFFSET_MASK == 0 {
            if self.data_file && e & COPIED != 0 {
                Ct::Normal
            } else {
                Ct::Unallocated
            }
        } else {
            Ct::Normal
        }
    }

    /// `(host offset, bytes)` of a compressed cluster's data.
    fn compressed_range(&self, e: u64) -> (u64, u64) {
        let shift = 62 - (self.cluster_bits - 8);
        let mask = (1u64 << (self.cluster_bits - 8)) - 1;
        let coffset = e & ((1u64 << shift) - 1);
        let sectors = ((e >> shift) & mask) + 1;
        (coffset, sectors * 512 - (coffset & 511))
    }

    fn l2_table(&mut self, at: u64, buf: &[u8]) -> Result<(), MetaError> {
        let Ok(k) = self.l2_use.binary_search_by_key(&at, |u| u.0) else {
            return Ok(());
        };
        let u = std::mem::take(&mut self.l2_use[k].1);
        let n = self.l2_size() as usize;
        let stride = if self.extended { 2 } else { 1 };
        let get = |j: usize| {
            (
                be64(buf, j * stride),
                if stride == 2 { be64(buf, j * 2 + 1) } else { 0 },
            )
        };
        let off = at & L1E_OFFSET_MASK;
        // Allocation: the active L1 entries that name it (with an offset).
        for &i in &u.active {
            if off == 0 {
                continue;
            }
            let mut runs: Vec<Extent> = Vec::new();
            let base = u64::from(i) * self.l2_size() * self.cs;
            for j in 0..n {
                let guest = base + j as u64 * self.cs;
                if guest >= self.virtual_size {
                    break;
                }
                let (e, bm) = get(j);
                self.extents_of(e, bm, guest, &mut runs);
            }
            self.runs.push((u64::from(i), runs));
        }
        if !self.check {
            return Ok(());
        }
        // Check: each reference counts (active ones with the fragmentation
        // figures), as check_refcounts_l2 runs once per L1 entry.
        let refs = u.active.len() as u64 + u64::from(u.snaps);
        for r in 0..refs {
            let active = r < u.active.len() as u64;
            let mut next_contiguous = 0u64;
            for j in 0..n {
                let (e, bm) = get(j);
                let where_ = at + (j * stride * 8) as u64;
                let ct = self.cluster_type(e);
                if ct != Ct::Compressed && e & L2E_STD_RESERVED_MASK != 0 {
                    self.corruption(where_, format!("L2 entry {e:#x} has reserved bits set"));
                }
                match ct {
                    Ct::Compressed => {
                        if e & COPIED != 0 {
                            self.corruption(
                                where_,
                                "the COPIED flag is set on a compressed cluster".into(),
                            );
                        }
                        let e = e & !COPIED;
                        if self.data_file {
                            self.corruption(
                                where_,
                                "a compressed cluster in an image with a data file".into(),
                            );
                            continue;
                        }
                        if bm != 0 {
                            self.corruption(
                                where_,
                                "a compressed cluster with a subcluster bitmap".into(),
                            );
                            continue;
                        }
                        let (co, cl) = self.compressed_range(e);
                        self.inc(co, cl)?;
                        if active {
                            self.n.allocated += 1;
                            self.n.compressed += 1;
                            self.n.fragmented += 1;
                        }
                    }
                    Ct::ZeroAlloc | Ct::Normal => {
                        let offset = e & L2E_OFFSET_MASK;
                        if (bm >> 32) & bm != 0 {
                            self.corruption(
                                where_,
                                "an allocated cluster with an invalid subcluster bitmap".into(),
                            );
                        }
                        if offset & (self.cs - 1) != 0 {
                            self.corruption(
                                where_,
                                format!("cluster offset {offset:#x} is not cluster-aligned"),
                            );
                        }
                        if active {
                            self.n.allocated += 1;
                            if next_contiguous != 0 && offset != next_contiguous {
                                self.n.fragmented += 1;
                            }
                            next_contiguous = offset + self.cs;
                        }
                        if !self.data_file {
                            self.inc(offset, self.cs)?;
                        }
                    }
                    Ct::ZeroPlain => {}
                    Ct::Unallocated => {
                        if bm & ALL_ALLOC != 0 {
                            self.corruption(
                                where_,
                                "an unallocated cluster with subclusters marked allocated".into(),
                            );
                        }
                    }
                }
            }
        }
        // The COPIED flags of the active L1 entries naming this table, and
        // of its entries (check_oflag_copied, once per active L1 entry).
        for &i in &u.active {
            let l1e = self.l1.get(i as usize).copied().unwrap_or(0);
            let l2_off = l1e & L1E_OFFSET_MASK;
            if l2_off == 0 {
                continue;
            }
            if let Ok(rc) = self.stored(l2_off >> self.cluster_bits) {
                if (rc == 1) != (l1e & COPIED != 0) {
                    self.corruption(
                        self.l1_offset + u64::from(i) * 8,
                        format!("L1 entry {i}: COPIED flag wrong for an L2 table of refcount {rc}"),
                    );
                }
            }
            for j in 0..n {
                let (e, _) = get(j);
                let ct = self.cluster_type(e);
                if ct != Ct::Normal && ct != Ct::ZeroAlloc {
                    continue;
                }
                let rc = if self.data_file {
                    Ok(1)
                } else {
                    self.stored((e & L2E_OFFSET_MASK) >> self.cluster_bits)
                };
                if let Ok(rc) = rc {
                    if (rc == 1) != (e & COPIED != 0) {
                        self.corruption(
                            at + (j * stride * 8) as u64,
                            format!("COPIED flag wrong for a data cluster of refcount {rc}"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The runs of one L2 entry (guest cluster at `guest`).
    fn extents_of(&mut self, e: u64, bm: u64, guest: u64, runs: &mut Vec<Extent>) {
        let ct = self.cluster_type(e);
        let host = e & L2E_OFFSET_MASK;
        let encrypted = self.encrypted;
        let offset_of = move |o: u64| if encrypted { None } else { Some(o) };
        let clen = self.cs.min(self.virtual_size - guest);
        if !self.extended {
            let (kind, offset) = match ct {
                Ct::Normal => (Kind::Data, offset_of(host)),
                Ct::ZeroAlloc => (Kind::Zero, offset_of(host)),
                Ct::ZeroPlain => (Kind::Zero, None),
                Ct::Compressed => (Kind::Compressed, None),
                Ct::Unallocated => (Kind::Unallocated, None),
            };
            push_run(runs, guest, clen, kind, offset);
            return;
        }
        let sc = self.cs / 32;
        if matches!(ct, Ct::Normal | Ct::ZeroAlloc) && (bm >> 32) & bm != 0
            || ct == Ct::Unallocated && bm & ALL_ALLOC != 0
        {
            self.meta_corrupt(format!(
                "the subcluster bitmap of guest offset {guest} is invalid: qemu refuses to read it"
            ));
        }
        for k in 0..32u64 {
            let g = guest + k * sc;
            if g >= self.virtual_size {
                break;
            }
            let len = sc.min(self.virtual_size - g);
            let zero = bm & (1 << (32 + k)) != 0;
            let alloc = bm & (1 << k) != 0;
            let (kind, offset) = match ct {
                Ct::Compressed => (Kind::Compressed, None),
                Ct::Normal | Ct::ZeroAlloc => {
                    if zero {
                        (Kind::Zero, offset_of(host + k * sc))
                    } else if alloc {
                        (Kind::Data, offset_of(host + k * sc))
                    } else {
                        // Unallocated but with host space (qemu reports the
                        // offset when no backing provides the bytes).
                        (Kind::Unallocated, offset_of(host + k * sc))
                    }
                }
                Ct::ZeroPlain | Ct::Unallocated => {
                    if zero {
                        (Kind::Zero, None)
                    } else {
                        (Kind::Unallocated, None)
                    }
                }
            };
            push_run(runs, g, len, kind, offset);
        }
    }

    /// Count one reference to each cluster of `[offset, offset + size)`.
    fn inc(&mut self, offset: u64, size: u64) -> Result<(), MetaError> {
        if !self.check || size == 0 {
            return Ok(());
        }
        // qemu counts no reference that reaches a cluster or more past the
        // end of the file (the last cluster may be partly written): that
        // is a corruption of its own.
        if i128::from(offset) + i128::from(size) - i128::from(self.file_len) >= i128::from(self.cs)
        {
            self.corruption(
                offset,
                format!(
                    "a reference to {size} bytes at byte {offset} reaches past the end of the \
                     file ({} bytes)",
                    self.file_len
                ),
            );
            return Ok(());
        }
        let first = offset >> self.cluster_bits;
        let last = offset.saturating_add(size - 1) >> self.cluster_bits;
        if last - first >= limits::META_MAX_SPAN {
            return Err(MetaError::new(
                F,
                format!(
                    "a table at byte {offset} claims {size} bytes: above the limit of {} clusters",
                    limits::META_MAX_SPAN
                ),
            ));
        }
        let max = self.refs.max.min(u64::from(u32::MAX));
        for k in first..=last {
            let slot = match self.refs.dense.get_mut(k as usize) {
                Some(s) => s,
                None => {
                    let b = &mut self.refs.beyond;
                    let j = match b.binary_search_by_key(&k, |e| e.0) {
                        Ok(j) => j,
                        Err(j) => {
                            b.insert(j, (k, 0));
                            j
                        }
                    };
                    &mut b[j].1
                }
            };
            if u64::from(*slot) >= max {
                self.n.corruptions += 1;
                let at = k << self.cluster_bits;
                self.problem(
                    "corruption",
                    at,
                    format!("cluster {k}: references overflow the refcount width"),
                );
                continue;
            }
            *slot += 1;
        }
        Ok(())
    }

    fn computed(&self, k: u64) -> u64 {
        match self.refs.dense.get(k as usize) {
            Some(&v) => u64::from(v),
            None => {
                let b = &self.refs.beyond;
                b.binary_search_by_key(&k, |e| e.0)
                    .map_or(0, |j| u64::from(b[j].1))
            }
        }
    }

    /// The stored refcount of cluster `k` (qcow2_get_refcount): Err when its
    /// refcount block offset is not aligned (qemu: an I/O error).
    fn stored(&self, k: u64) -> Result<u64, ()> {
        let bits = self.cluster_bits + 3 - self.refcount_order;
        let idx = k >> bits;
        let Some(&e) = self.reftable.get(idx as usize) else {
            return Ok(0);
        };
        let off = e & REFT_OFFSET_MASK;
        if off == 0 {
            return Ok(0);
        }
        if off & (self.cs - 1) != 0 {
            return Err(());
        }
        let Some(Some(b)) = self.refblocks.get(idx as usize) else {
            return Ok(0);
        };
        let i = (k & ((1u64 << bits) - 1)) as usize;
        let byte = |n: usize| u64::from(b.get(n).copied().unwrap_or(0));
        Ok(match self.refcount_order {
            0 => (byte(i / 8) >> (i % 8)) & 1,
            1 => (byte(i / 4) >> (2 * (i % 4))) & 3,
            2 => (byte(i / 2) >> (4 * (i % 2))) & 15,
            3 => byte(i),
            4 => (byte(i * 2) << 8) | byte(i * 2 + 1),
            5 => (0..4).fold(0, |a, n| (a << 8) | byte(i * 4 + n)),
            _ => (0..8).fold(0, |a, n| (a << 8) | byte(i * 8 + n)),
        })
    }

    pub fn finish(mut self) -> Result<Layer, MetaError> {
        if self.phase != Phase::Done || self.wants.iter().any(|w| !w.done) {
            return Err(MetaError::new(F, "the walk is not complete"));
        }
        // Extents: the L1 ranges read, unallocated between them.
        let span = self.l2_size() * self.cs;
        let mut extents: Vec<Extent> = Vec::new();
        let mut pos = 0u64;
        let mut runs = std::mem::take(&mut self.runs);
        sort_by_key(&mut runs, |r| r.0);
        for (i, r) in runs {
            let start = i * span;
            if start >= self.virtual_size {
                break;
            }
            if start > pos {
                push_run(&mut extents, pos, start - pos, Kind::Unallocated, None);
            }
            for e in r {
                push_run(&mut extents, e.start, e.length, e.kind, e.offset);
            }
            pos = (start + span).min(self.virtual_size);
        }
        if pos < self.virtual_size {
            push_run(
                &mut extents,
                pos,
                self.virtual_size - pos,
                Kind::Unallocated,
                None,
            );
        }
        let allocation = Allocation::from_extents(self.virtual_size, &extents, false);
        let check = if self.check {
            Some(self.compare()?)
        } else {
            None
        };
        let mut diagnostics = std::mem::take(&mut self.diags);
        if let Some(c) = &check {
            if c.corruptions > 0 {
                diagnostics.push(
                    Diagnostic::error(
                        Code::CheckCorruptions,
                        format!(
                            "check: {} corruptions{} (qemu-img check finds the same): back the \
                             image up, then repair it",
                            c.corruptions,
                            if c.leaks > 0 {
                                format!(" and {} leaked clusters", c.leaks)
                            } else {
                                String::new()
                            }
                        ),
                    )
                    .with_fix("qemu-img check -r all IMAGE"),
                );
            } else if c.leaks > 0 {
                diagnostics.push(
                    Diagnostic::warning(
                        Code::CheckLeaks,
                        format!(
                            "check: {} leaked clusters (allocated, used by nothing): they waste \
                             space, no data is at risk",
                            c.leaks
                        ),
                    )
                    .with_fix("qemu-img check -r leaks IMAGE"),
                );
            }
        }
        Ok(Layer {
            format: F,
            virtual_size: self.virtual_size,
            cluster_size: Some(self.cs),
            allocation,
            extents,
            check,
            bytes_read: self.bytes_read,
            diagnostics,
        })
    }

    /// The rest of qemu's check once the tables are read: the header,
    /// tables and refcount structures counted, the refcount blocks checked,
    /// then every cluster's stored refcount compared with the references.
    fn compare(&mut self) -> Result<Check, MetaError> {
        let cs = self.cs;
        self.inc(0, cs)?;
        self.inc(self.l1_offset, self.l1_size * 8)?;
        for i in 0..self.snapshots.len() {
            let (off, size) = self.snapshots[i];
            self.inc(off, size * 8)?;
        }
        if let Some(size) = self.snap_parsed {
            self.inc(self.snapshots_offset, size)?;
        }
        self.inc(self.rt_offset, self.rt_entries * 8)?;
        if let Some((off, len)) = self.fde {
            self.inc(off, len)?;
        }
        if let Some((off, size, _)) = self.bitmap_dir {
            self.inc(off, size)?;
        }
        for i in 0..self.bitmaps.len() {
            let (off, size) = self.bitmaps[i];
            self.inc(off, size * 8)?;
        }
        // check_refblocks
        let file_clusters = self.file_len.div_ceil(cs);
        let mut nb = file_clusters.max(self.refs.beyond.last().map_or(0, |e| e.0 + 1));
        for i in 0..self.reftable.len() {
            let off = self.reftable[i];
            let cluster = off >> self.cluster_bits;
            if off & (cs - 1) != 0 {
                self.corruption(
                    self.rt_offset + i as u64 * 8,
                    format!("refcount block {i} is not cluster-aligned"),
                );
                continue;
            }
            if cluster >= nb {
                self.corruption(
                    self.rt_offset + i as u64 * 8,
                    format!("refcount block {i} is outside the image"),
                );
                continue;
            }
            if off != 0 {
                self.inc(off, cs)?;
                let rc = self.computed(cluster);
                if rc != 1 {
                    self.corruption(off, format!("refcount block {i} is referenced {rc} times"));
                }
            }
        }
        nb = nb.max(self.refs.beyond.last().map_or(0, |e| e.0 + 1));
        // compare_refcounts
        let mut highest = 0u64;
        let mut visit = |w: &mut Walker, k: u64| {
            let Ok(stored) = w.stored(k) else {
                w.n.check_errors += 1;
                return;
            };
            let computed = w.computed(k);
            if stored > 0 || computed > 0 {
                highest = k;
            }
            if stored != computed {
                let at = k << w.cluster_bits;
                if stored < computed {
                    w.n.corruptions += 1;
                    w.problem(
                        "corruption",
                        at,
                        format!("cluster {k}: refcount {stored}, referenced {computed} times"),
                    );
                } else {
                    w.n.leaks += 1;
                    w.problem(
                        "leak",
                        at,
                        format!(
                            "cluster {k}: refcount {stored}, referenced {computed} times (leaked)"
                        ),
                    );
                }
            }
        };
        for k in 0..file_clusters {
            visit(self, k);
        }
        if nb > file_clusters {
            // Past the end of the file: the clusters referenced there, and
            // those the refcount blocks give a count.
            let mut ks: Vec<u64> = self.refs.beyond.iter().map(|e| e.0).collect();
            let bits = self.cluster_bits + 3 - self.refcount_order;
            let per = 1u64 << bits;
            let last_idx = ((nb - 1) >> bits).min(self.reftable.len() as u64);
            for idx in (file_clusters >> bits)..=last_idx {
                let lo = (idx * per).max(file_clusters);
                let hi = ((idx + 1) * per).min(nb);
                if lo >= hi {
                    continue;
                }
                let e = self.reftable.get(idx as usize).copied().unwrap_or(0) & REFT_OFFSET_MASK;
                if e != 0 && e & (cs - 1) != 0 {
                    self.n.check_errors += hi - lo;
                    ks.retain(|&k| k < lo || k >= hi);
                    continue;
                }
                if self
                    .refblocks
                    .get(idx as usize)
                    .is_some_and(Option::is_some)
                {
                    for k in lo..hi {
                        if self.stored(k).unwrap_or(0) > 0 {
                            ks.push(k);
                        }
                    }
                }
            }
            sort_by_key(&mut ks, |&k| k);
            ks.dedup();
            for k in ks {
                visit(self, k);
            }
        }
        let total_clusters = self
            .virtual_size
            .div_ceil(512)
            .saturating_mul(512)
            .div_ceil(cs);
        let advice = if self.n.corruptions > 0 {
            Some("qemu-img check -r all IMAGE".to_string())
        } else if self.n.leaks > 0 {
            Some("qemu-img check -r leaks IMAGE".to_string())
        } else {
            None
        };
        Ok(Check {
            filename: String::new(),
            format: F,
            check_errors: self.n.check_errors,
            corruptions: self.n.corruptions,
            leaks: self.n.leaks,
            image_end_offset: (highest + 1) * cs,
            total_clusters,
            allocated_clusters: self.n.allocated,
            fragmented_clusters: self.n.fragmented,
            compressed_clusters: self.n.compressed,
            problems: std::mem::take(&mut self.problems),
            advice,
        })
    }

    /// The image's format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
}

/// Sort by a u64 key, stable, in linear time: an LSD radix sort on the
/// bytes of the key that vary (the standard sorts add kilobytes of code to
/// the wasm for each element type).
pub(crate) fn sort_by_key<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    if v.len() < 2 {
        return;
    }
    let keys: Vec<u64> = v.iter().map(&key).collect();
    let mut order: Vec<u32> = (0..v.len() as u32).collect();
    let mut next = vec![0u32; v.len()];
    let varying = keys.iter().fold(0u64, |a, &k| a | (k ^ keys[0]));
    for byte in 0..8 {
        let shift = byte * 8;
        if (varying >> shift) & 0xff == 0 {
            continue;
        }
        let mut count = [0usize; 257];
        for &i in &order {
            count[((keys[i as usize] >> shift) & 0xff) as usize + 1] += 1;
        }
        for b in 0..256 {
            count[b + 1] += count[b];
        }
        for &i in &order {
            let b = ((keys[i as usize] >> shift) & 0xff) as usize;
            next[count[b]] = i;
            count[b] += 1;
        }
        std::mem::swap(&mut order, &mut next);
    }
    let mut slots: Vec<Option<T>> = v.drain(..).map(Some).collect();
    v.extend(order.iter().filter_map(|&i| slots[i as usize].take()));
}

/// Append a run, merged with the last when qemu-img would merge them (same
/// kind, offsets contiguous or both absent).
pub(crate) fn push_run(
    runs: &mut Vec<Extent>,
    start: u64,
    length: u64,
    kind: Kind,
    offset: Option<u64>,
) {
    if length == 0 {
        return;
    }
    if let Some(last) = runs.last_mut() {
        if last.kind == kind
            && last.start + last.length == start
            && match (last.offset, offset) {
                (None, None) => true,
                (Some(a), Some(b)) => a + last.length == b,
                _ => false,
            }
        {
            last.length += length;
            return;
        }
    }
    runs.push(Extent {
        start,
        length,
        kind,
        offset,
    });
}

/// qemu's `qcow2_calc_prealloc_size`: the bytes of a fully allocated qcow2
/// of `total_size` bytes (header, L2 and L1 tables, refcount structures
/// found as a fixed point, and the data).
pub fn prealloc_size(
    total_size: u64,
    cluster_size: u64,
    refcount_order: u32,
    extended: bool,
) -> u64 {
    let aligned = total_size.div_ceil(cluster_size) * cluster_size;
    let l2e = if extended { 16 } else { 8 };
    let mut meta = cluster_size;
    let mut nl2e = aligned / cluster_size;
    nl2e = nl2e.div_ceil(cluster_size / l2e) * (cluster_size / l2e);
    meta += nl2e * l2e;
    let mut nl1e = nl2e * l2e / cluster_size;
    nl1e = nl1e.div_ceil(cluster_size / 8) * (cluster_size / 8);
    meta += nl1e * 8;
    meta += refcount_metadata_size(
        (meta + aligned) / cluster_size,
        cluster_size,
        refcount_order,
    );
    meta + aligned
}

/// qemu's `qcow2_refcount_metadata_size` (without the generous increase):
/// refcount blocks and table for `clusters` clusters, themselves counted.
fn refcount_metadata_size(clusters: u64, cluster_size: u64, refcount_order: u32) -> u64 {
    let per_table_cluster = cluster_size / 8;
    let per_block = cluster_size * 8 / (1u64 << refcount_order);
    let (mut table, mut blocks, mut n) = (0u64, 0u64, 0u64);
    loop {
        let last = n;
        blocks = (clusters + table + blocks).div_ceil(per_block);
        table = blocks.div_ceil(per_table_cluster);
        n = clusters + blocks + table;
        if n == last {
            break;
        }
    }
    (blocks + table) * cluster_size
}
