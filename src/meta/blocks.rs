//! Block-map formats: vdi (block map), vpc dynamic (BAT), qed (L1/L2
//! tables), after what qemu's drivers report (`vdi_co_block_status`,
//! `vpc_co_block_status`, `bdrv_qed_co_block_status`): a vdi or vpc block
//! that is not allocated reads as zeroes from the image itself (these
//! formats have no backing in qemu), a qed cluster that is not allocated
//! comes from the backing.
//!
//! At most two rounds: the table (qed: the L1 table), then qed's L2 tables,
//! each read once, adjacent ones merged into reads of up to
//! [`limits::MAX_READ`].

use super::{Allocation, Extent, Kind, Layer, MetaError, Plan};
use crate::diag::{Code, Diagnostic};
use crate::image::{Format, Header, ImageInfo, Range};
use crate::limits;

/// One read: the range, the parts of tables it fills (table, offset inside
/// it, length), and whether it was fed.
type Want = (Range, Vec<(usize, u64, u64)>, bool);

/// Tables being read in one round: each `(at, len)` with its bytes.
#[derive(Debug, Default)]
pub(super) struct Batch {
    tables: Vec<(u64, u64, Vec<u8>)>,
    wants: Vec<Want>,
}

impl Batch {
    /// Tables sorted by offset (callers give them so), clipped to the file.
    pub(super) fn new(tables: &[(u64, u64)], file_len: u64) -> Batch {
        let mut b = Batch::default();
        for &(at, len) in tables {
            let in_file = len.min(file_len.saturating_sub(at));
            let i = b.tables.len();
            b.tables.push((at, len, vec![0; in_file as usize]));
            let mut o = 0;
            while o < in_file {
                let n = (in_file - o).min(limits::MAX_READ);
                match b.wants.last_mut() {
                    Some((r, parts, _)) if r.end() == at + o && r.len + n <= limits::MAX_READ => {
                        r.len += n;
                        parts.push((i, o, n));
                    }
                    _ => b
                        .wants
                        .push((Range::new(at + o, n), vec![(i, o, n)], false)),
                }
                o += n;
            }
        }
        b
    }

    /// The tables' offsets, in order.
    pub(super) fn offsets(&self) -> Vec<u64> {
        self.tables.iter().map(|t| t.0).collect()
    }

    /// The tables' bytes (what is past the end of the file is not there:
    /// it reads as zeroes), leaving the batch empty.
    pub(super) fn take(&mut self) -> Vec<Vec<u8>> {
        let t = std::mem::take(&mut self.tables);
        *self = Batch::default();
        t.into_iter().map(|t| t.2).collect()
    }

    pub(super) fn open(&self) -> Vec<Range> {
        self.wants.iter().filter(|w| !w.2).map(|w| w.0).collect()
    }

    pub(super) fn planned(&self) -> u64 {
        self.wants.iter().map(|w| w.0.len).sum()
    }

    pub(super) fn feed(
        &mut self,
        range: Range,
        bytes: &[u8],
        format: Format,
    ) -> Result<(), MetaError> {
        // Sorted by offset (tables are given in order): a binary search.
        let first = self.wants.partition_point(|w| w.0.offset < range.offset);
        let Some(w) = self.wants[first..]
            .iter_mut()
            .take_while(|w| w.0.offset == range.offset)
            .find(|w| !w.2 && w.0 == range)
        else {
            return Err(MetaError::new(format, "bytes not asked for in this round"));
        };
        w.2 = true;
        let mut at = 0u64;
        for &(t, off, len) in &w.1 {
            let end = (at + len).min(bytes.len() as u64);
            if at < end {
                let n = (end - at) as usize;
                self.tables[t].2[off as usize..off as usize + n]
                    .copy_from_slice(&bytes[at as usize..end as usize]);
            }
            at += len;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind2 {
    Vdi {
        offset_data: u64,
    },
    Vpc {
        bitmap: u64,
    },
    Qed {
        header_end: u64,
    },
    /// qemu's vhdx driver reports no block status: every byte is data to
    /// `qemu-img map` and `measure`. The BAT gives the allocation.
    Vhdx {
        chunk_ratio: u64,
    },
}

/// The walker for vdi, vpc, qed and vhdx.
#[derive(Debug)]
pub struct Walker {
    format: Format,
    kind: Kind2,
    virtual_size: u64,
    block: u64,
    file_len: u64,
    table_at: u64,
    entries: u64,
    round: u8,
    batch: Batch,
    planned: u64,
    read: u64,
    upper: u64,
    table: Vec<u64>,
    l2: Vec<(u64, Vec<u8>)>,
    diags: Vec<Diagnostic>,
    /// qed: also run `qemu-img check`'s qed check.
    check: bool,
    /// qed: `table_size` (clusters per table).
    qed_table_clusters: u64,
    /// vdi: the header's count of allocated blocks.
    vdi_allocated: u64,
}

fn le32(b: &[u8], i: usize) -> u64 {
    b.get(i * 4..i * 4 + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn be32(b: &[u8], i: usize) -> u64 {
    b.get(i * 4..i * 4 + 4).map_or(0, |s| {
        u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn le64(b: &[u8], i: usize) -> u64 {
    b.get(i * 8..i * 8 + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl Walker {
    pub fn new(info: &ImageInfo, file_len: u64, check: bool) -> Result<Option<Walker>, MetaError> {
        let f = info.format;
        let bad = |m: &str| MetaError::new(f, m);
        let virtual_size = info.virtual_size.unwrap_or(0);
        let block = info.cluster_size.unwrap_or(0);
        let (kind, table_at, entries, entry_bytes) = match &info.header {
            Some(Header::Vdi(h)) if f == Format::Vdi => {
                if h.image_type != "dynamic" && h.image_type != "static" {
                    return Err(bad("qemu opens only dynamic and static VDI images"));
                }
                let n = u64::from(h.blocks_in_image);
                (
                    Kind2::Vdi {
                        offset_data: u64::from(h.offset_data),
                    },
                    u64::from(h.offset_bmap),
                    n,
                    4,
                )
            }
            Some(Header::Vpc(h)) if f == Format::Vpc => {
                if h.disk_type == "fixed" {
                    return Ok(None);
                }
                if h.disk_type != "dynamic" {
                    return Err(bad("qemu's vpc driver opens no differencing VHD"));
                }
                let (Some(at), Some(n)) = (h.table_offset, h.max_table_entries) else {
                    return Err(bad("no block allocation table in the header"));
                };
                let bitmap = (block / 512 / 8).div_ceil(512) * 512;
                (Kind2::Vpc { bitmap }, at, u64::from(n), 4)
            }
            Some(Header::Qed(h)) if f == Format::Qed => {
                let bytes = u64::from(h.table_size) * block;
                (
                    Kind2::Qed {
                        header_end: u64::from(h.header_size) * block,
                    },
                    h.l1_table_offset,
                    bytes / 8,
                    8,
                )
            }
            Some(Header::Vhdx(h)) if f == Format::Vhdx => {
                if h.has_parent {
                    return Err(bad("qemu's vhdx driver opens no differencing VHDX"));
                }
                let Some(bat) = h.bat_region else {
                    return Err(bad("no BAT region"));
                };
                let sector = u64::from(h.logical_sector_size.unwrap_or(512)).max(1);
                let bs = u64::from(h.block_size).max(1);
                let chunk_ratio = ((1u64 << 23) * sector / bs).max(1);
                let payload = virtual_size.div_ceil(bs);
                let n = payload + payload.saturating_sub(1) / chunk_ratio;
                if n.saturating_mul(8) > bat.length {
                    return Err(bad("the BAT region is smaller than the disk needs"));
                }
                (Kind2::Vhdx { chunk_ratio }, bat.offset, n, 8)
            }
            _ => return Err(bad("no header facts")),
        };
        if block == 0 || !block.is_power_of_two() {
            return Err(bad("the block size is not a power of two"));
        }
        let bytes = entries * entry_bytes;
        if bytes > limits::META_MAX_BYTES {
            return Err(MetaError::new(
                f,
                format!(
                    "the table has {entries} entries: above the limit of {} bytes",
                    limits::META_MAX_BYTES
                ),
            ));
        }
        let in_file = |at: u64, len: u64| len.min(file_len.saturating_sub(at));
        let mut upper = in_file(table_at, bytes);
        if let Kind2::Qed { .. } = kind {
            // Each L1 entry may name an L2 table of the same size.
            upper = upper.saturating_add(entries.saturating_mul(bytes).min(file_len));
        }
        Ok(Some(Walker {
            format: f,
            kind,
            virtual_size,
            block,
            file_len,
            table_at,
            entries,
            round: 0,
            batch: Batch::default(),
            planned: 0,
            read: 0,
            upper,
            table: Vec::new(),
            l2: Vec::new(),
            diags: Vec::new(),
            check,
            qed_table_clusters: match &info.header {
                Some(Header::Qed(h)) => u64::from(h.table_size),
                _ => 0,
            },
            vdi_allocated: match &info.header {
                Some(Header::Vdi(h)) => u64::from(h.blocks_allocated),
                _ => 0,
            },
        }))
    }

    pub fn plan(&self) -> Plan {
        let exact = self.round >= 2 || (self.round == 1 && !matches!(self.kind, Kind2::Qed { .. }));
        Plan {
            bytes_total: if exact {
                self.planned
            } else {
                self.upper.max(self.planned)
            },
            exact,
            bytes_read: self.read,
            file_len: self.file_len,
        }
    }

    fn table_bytes(&self) -> u64 {
        match self.kind {
            Kind2::Qed { .. } | Kind2::Vhdx { .. } => self.entries * 8,
            _ => self.entries * 4,
        }
    }

    pub fn need(&mut self) -> Result<Vec<Range>, MetaError> {
        loop {
            let open = self.batch.open();
            if !open.is_empty() {
                return Ok(open);
            }
            match self.round {
                0 => {
                    let len = self.table_bytes();
                    if self.table_at.saturating_add(len) > self.file_len {
                        self.diags.push(Diagnostic::error(
                            Code::MetaPastEof,
                            format!(
                                "the {} table at byte {} ({len} bytes) lies past the end of the \
                                 file: read as zeroes",
                                self.format, self.table_at
                            ),
                        ));
                    }
                    self.batch = Batch::new(&[(self.table_at, len)], self.file_len);
                    self.planned += self.batch.planned();
                    self.round = 1;
                }
                1 => {
                    let t = std::mem::take(&mut self.batch.tables);
                    let buf = t.into_iter().next().map(|t| t.2).unwrap_or_default();
                    self.table = match self.kind {
                        Kind2::Qed { .. } | Kind2::Vhdx { .. } => {
                            (0..self.entries as usize).map(|i| le64(&buf, i)).collect()
                        }
                        Kind2::Vdi { .. } => {
                            (0..self.entries as usize).map(|i| le32(&buf, i)).collect()
                        }
                        Kind2::Vpc { .. } => {
                            (0..self.entries as usize).map(|i| be32(&buf, i)).collect()
                        }
                    };
                    self.round = 2;
                    if let Kind2::Qed { header_end } = self.kind {
                        let len = self.table_bytes();
                        let mut l2: Vec<u64> = Vec::new();
                        for (i, &e) in self.table.iter().enumerate() {
                            if e == 0 {
                                continue;
                            }
                            if !self.valid(e, header_end) {
                                self.diags.push(Diagnostic::error(
                                    Code::MetaCorrupt,
                                    format!(
                                        "L1 entry {i} names an L2 table at {e}, not a valid \
                                         cluster offset: qemu refuses to read this part of the disk"
                                    ),
                                ));
                                continue;
                            }
                            l2.push(e);
                        }
                        super::qcow2::sort_by_key(&mut l2, |&o| o);
                        l2.dedup();
                        let tables: Vec<(u64, u64)> = l2.iter().map(|&o| (o, len)).collect();
                        self.planned += tables
                            .iter()
                            .map(|&(o, l)| l.min(self.file_len.saturating_sub(o)))
                            .sum::<u64>();
                        if self.planned > limits::META_MAX_BYTES {
                            return Err(MetaError::new(
                                self.format,
                                "the tables need more bytes than the limit of one walk",
                            ));
                        }
                        self.batch = Batch::new(&tables, self.file_len);
                    }
                }
                2 => {
                    let t = std::mem::take(&mut self.batch.tables);
                    self.l2 = t.into_iter().map(|(at, _, b)| (at, b)).collect();
                    self.round = 3;
                }
                _ => return Ok(Vec::new()),
            }
        }
    }

    /// qed's `qed_check_cluster_offset`: aligned, past the header, in the file.
    fn valid(&self, off: u64, header_end: u64) -> bool {
        // qemu keeps the file size rounded down to a cluster.
        off & (self.block - 1) == 0 && off >= header_end && off < self.file_len & !(self.block - 1)
    }

    /// `qemu-img check` of a vdi image (qemu's `vdi_co_check`): each block
    /// index used once and inside the image, and the header's count of
    /// allocated blocks right.
    fn vdi_check(&self) -> super::Check {
        let n = self.entries;
        let mut c = empty_check(Format::Vdi);
        let mut seen = vec![false; n as usize];
        let mut allocated = 0u64;
        for &e in &self.table {
            if e >= 0xffff_fffe {
                continue;
            }
            match seen.get_mut(e as usize) {
                Some(s) => {
                    allocated += 1;
                    if *s {
                        c.corruptions += 1;
                    }
                    *s = true;
                }
                None => c.corruptions += 1,
            }
        }
        if allocated != self.vdi_allocated {
            c.corruptions += 1;
        }
        if c.corruptions > 0 {
            c.advice = Some("qemu-img convert (qemu-img check cannot repair vdi)".into());
        }
        c
    }

    /// `qemu-img check` of a qed image (qemu's `qed_check`): every cluster
    /// referenced once (the L1 table, L2 tables, data clusters), offsets
    /// valid, and clusters of the file nothing references are leaks.
    fn qed_check(&self, header_end: u64) -> super::Check {
        let b = self.block;
        let nclusters = (self.file_len & !(b - 1)) / b;
        let mut used = vec![0u64; nclusters.div_ceil(64) as usize];
        let mut c = empty_check(Format::Qed);
        c.total_clusters = self.virtual_size.div_ceil(b);
        let mut set = |c: &mut super::Check, off: u64, n: u64| -> bool {
            let mut bad = 0;
            for k in off / b..(off / b).saturating_add(n) {
                let Some(w) = used.get_mut((k / 64) as usize) else {
                    continue;
                };
                if *w & (1 << (k % 64)) != 0 {
                    bad += 1;
                }
                *w |= 1 << (k % 64);
            }
            c.corruptions += bad;
            bad == 0
        };
        let tc = self.qed_table_clusters;
        set(&mut c, self.table_at, tc);
        for &e in &self.table {
            if e == 0 {
                continue;
            }
            let end = e.wrapping_add(tc.saturating_sub(1) * b);
            if end < e || !self.valid(e, header_end) || !self.valid(end, header_end) {
                c.corruptions += 1;
                continue;
            }
            if !set(&mut c, e, tc) {
                continue;
            }
            let Ok(k) = self.l2.binary_search_by_key(&e, |t| t.0) else {
                c.check_errors += 1;
                continue;
            };
            let t = &self.l2[k].1;
            let mut last = 0u64;
            for j in 0..self.entries as usize {
                let o = le64(t, j);
                if o == 0 || o == 1 {
                    continue;
                }
                c.allocated_clusters += 1;
                if last != 0 && last + b != o {
                    c.fragmented_clusters += 1;
                }
                last = o;
                if !self.valid(o, header_end) {
                    c.corruptions += 1;
                    continue;
                }
                set(&mut c, o, 1);
            }
        }
        if c.check_errors == 0 {
            for k in header_end / b..nclusters {
                if used[(k / 64) as usize] & (1 << (k % 64)) == 0 {
                    c.leaks += 1;
                }
            }
        }
        c.advice = if c.corruptions > 0 {
            Some("qemu-img check -r all IMAGE".into())
        } else if c.leaks > 0 {
            Some("qemu-img check -r leaks IMAGE".into())
        } else {
            None
        };
        c
    }

    pub fn feed(&mut self, range: Range, bytes: &[u8]) -> Result<(), MetaError> {
        self.read += bytes.len() as u64;
        self.batch.feed(range, bytes, self.format)
    }

    pub fn finish(mut self) -> Result<Layer, MetaError> {
        let mut check = None;
        if self.round < 3 {
            return Err(MetaError::new(self.format, "the walk is not complete"));
        }
        let mut ext: Vec<Extent> = Vec::new();
        let vs = self.virtual_size;
        let b = self.block;
        match self.kind {
            Kind2::Vdi { offset_data } => {
                if self.check {
                    check = Some(self.vdi_check());
                }
                for (i, &e) in self.table.iter().enumerate() {
                    let g = i as u64 * b;
                    if g >= vs {
                        break;
                    }
                    let len = b.min(vs - g);
                    if e < 0xffff_fffe {
                        push(&mut ext, g, len, Kind::Data, Some(offset_data + e * b));
                    } else {
                        push(&mut ext, g, len, Kind::Zero, None);
                    }
                }
            }
            Kind2::Vpc { bitmap } => {
                for (i, &e) in self.table.iter().enumerate() {
                    let g = i as u64 * b;
                    if g >= vs {
                        break;
                    }
                    let len = b.min(vs - g);
                    if e != 0xffff_ffff {
                        push(&mut ext, g, len, Kind::Data, Some(e * 512 + bitmap));
                    } else {
                        push(&mut ext, g, len, Kind::Zero, None);
                    }
                }
            }
            Kind2::Vhdx { .. } => {}
            Kind2::Qed { header_end } => {
                if self.check {
                    check = Some(self.qed_check(header_end));
                }
                let per = self.entries;
                let span = per * b;
                for (i, &e) in self.table.iter().enumerate() {
                    let base = i as u64 * span;
                    if base >= vs {
                        break;
                    }
                    let l2 = if e != 0 && self.valid(e, header_end) {
                        self.l2
                            .binary_search_by_key(&e, |t| t.0)
                            .ok()
                            .map(|k| std::mem::take(&mut self.l2[k].1))
                    } else {
                        None
                    };
                    let Some(t) = l2 else {
                        push(&mut ext, base, span.min(vs - base), Kind::Unallocated, None);
                        continue;
                    };
                    for j in 0..per {
                        let g = base + j * b;
                        if g >= vs {
                            break;
                        }
                        let len = b.min(vs - g);
                        let c = le64(&t, j as usize);
                        match c {
                            0 => push(&mut ext, g, len, Kind::Unallocated, None),
                            1 => push(&mut ext, g, len, Kind::Zero, None),
                            c if self.valid(c, header_end) => {
                                push(&mut ext, g, len, Kind::Data, Some(c))
                            }
                            c => {
                                if self.diags.len() < limits::META_MAX_PROBLEMS {
                                    self.diags.push(Diagnostic::error(
                                        Code::MetaCorrupt,
                                        format!(
                                            "the cluster of guest offset {g} is at {c}, not a \
                                             valid cluster offset: qemu refuses to read it"
                                        ),
                                    ));
                                }
                                push(&mut ext, g, len, Kind::Unallocated, None)
                            }
                        }
                    }
                }
            }
        }
        if let Kind2::Vhdx { chunk_ratio } = self.kind {
            // The payload blocks' states (every chunk_ratio of them, a
            // sector bitmap entry follows). The map is qemu's: all data.
            let mut a = Allocation {
                virtual_size: vs,
                ..Default::default()
            };
            let blocks = vs.div_ceil(b);
            for k in 0..blocks {
                let e = self
                    .table
                    .get((k + k / chunk_ratio) as usize)
                    .copied()
                    .unwrap_or(0);
                let len = b.min(vs - k * b);
                match e & 7 {
                    6 | 7 => a.data += len,
                    2 => a.zero += len,
                    _ => a.unallocated += len,
                }
            }
            if vs > 0 {
                push(&mut ext, 0, vs, Kind::Data, None);
            }
            self.diags.push(Diagnostic::info(
                Code::MetaFullyAllocated,
                "qemu's vhdx driver reports every byte as data (qemu-img map and measure say \
                 so): the allocation shown is the block allocation table's",
            ));
            return Ok(Layer {
                format: self.format,
                virtual_size: vs,
                cluster_size: Some(b),
                allocation: a,
                extents: ext,
                check: None,
                bytes_read: self.read,
                diagnostics: self.diags,
            });
        }
        // Past the table: qed unallocated, vdi/vpc zeroes.
        let covered = ext.last().map_or(0, |e| e.start + e.length);
        if covered < vs {
            let k = match self.kind {
                Kind2::Qed { .. } => Kind::Unallocated,
                _ => Kind::Zero,
            };
            push(&mut ext, covered, vs - covered, k, None);
        }
        Ok(Layer {
            format: self.format,
            virtual_size: vs,
            cluster_size: Some(b),
            allocation: Allocation::from_extents(vs, &ext, false),
            extents: ext,
            check,
            bytes_read: self.read,
            diagnostics: self.diags,
        })
    }
}

/// A check with nothing counted yet.
pub(super) fn empty_check(format: Format) -> super::Check {
    super::Check {
        filename: String::new(),
        format,
        check_errors: 0,
        corruptions: 0,
        leaks: 0,
        image_end_offset: 0,
        total_clusters: 0,
        allocated_clusters: 0,
        fragmented_clusters: 0,
        compressed_clusters: 0,
        problems: Vec::new(),
        advice: None,
    }
}

fn push(runs: &mut Vec<Extent>, start: u64, length: u64, kind: Kind, offset: Option<u64>) {
    super::qcow2::push_run(runs, start, length, kind, offset);
}
