//! VMDK hosted sparse extents in one file (monolithicSparse,
//! streamOptimized): the grain directory and grain tables, after qemu's
//! `vmdk_co_block_status` / `get_cluster_offset`. A grain table entry 0 is
//! unallocated (read from the parent), 1 with the zero-grain flag reads as
//! zeroes, anything else is the grain's sector; streamOptimized grains are
//! compressed (no offset in the map).
//!
//! Rounds: the sparse header the probe used (for `numGTEsPerGT`), the grain
//! directory, then every grain table once.

use super::blocks::Batch;
use super::{Allocation, Extent, Kind, Layer, MetaError, Plan};
use crate::diag::{Code, Diagnostic};
use crate::image::{Format, Header, ImageInfo, Range};
use crate::limits;

const F: Format = Format::Vmdk;
const FLAG_ZERO_GRAIN: u32 = 1 << 2;

#[derive(Debug)]
pub struct Walker {
    file_len: u64,
    virtual_size: u64,
    header_at: u64,
    grain: u64,
    gtes: u64,
    zero_grain: bool,
    compressed: bool,
    gd: Vec<u64>,
    gts: Vec<(u64, Vec<u8>)>,
    round: u8,
    batch: Batch,
    planned: u64,
    read: u64,
    diags: Vec<Diagnostic>,
    check: bool,
}

fn le32(b: &[u8], i: usize) -> u64 {
    b.get(i * 4..i * 4 + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

impl Walker {
    pub fn new(info: &ImageInfo, file_len: u64, check: bool) -> Result<Walker, MetaError> {
        let Some(Header::Vmdk(h)) = &info.header else {
            return Err(MetaError::new(F, "no VMDK header facts"));
        };
        let (Some(header_at), Some(_), None) =
            (h.header_offset, h.grain_directory_offset, h.variant)
        else {
            return Err(MetaError::new(
                F,
                "allocation is read for VMDK sparse extents in one file (monolithicSparse, \
                 streamOptimized) only",
            ));
        };
        if info.vmdk_extents().iter().any(|e| e.external) {
            return Err(MetaError::new(
                F,
                "this VMDK's data is in other files (its extents): not read here",
            ));
        }
        Ok(Walker {
            file_len,
            virtual_size: info.virtual_size.unwrap_or(0),
            header_at,
            grain: info.cluster_size.unwrap_or(0),
            gtes: 0,
            zero_grain: h.flags.unwrap_or(0) & FLAG_ZERO_GRAIN != 0,
            compressed: h.compress_algorithm.unwrap_or(0) == 1,
            gd: Vec::new(),
            gts: Vec::new(),
            round: 0,
            batch: Batch::default(),
            planned: 0,
            read: 0,
            diags: Vec::new(),
            check,
        })
    }

    pub fn plan(&self) -> Plan {
        let exact = self.round >= 3;
        // Before the directory is read: at most the whole file.
        Plan {
            bytes_total: if exact {
                self.planned
            } else {
                self.planned.max(self.file_len)
            },
            exact,
            bytes_read: self.read,
            file_len: self.file_len,
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
                    self.batch = Batch::new(&[(self.header_at, 512)], self.file_len);
                }
                1 => {
                    let h = self.batch.take().into_iter().next().unwrap_or_default();
                    self.gtes = le32(&h, 11); // numGTEsPerGT at byte 44
                    let gd_sectors = h
                        .get(56..64)
                        .and_then(|s| s.try_into().ok())
                        .map_or(0, u64::from_le_bytes);
                    if self.gtes == 0 || self.grain == 0 {
                        return Err(MetaError::new(F, "numGTEsPerGT or the grain size is 0"));
                    }
                    let span = self.gtes.saturating_mul(self.grain);
                    let entries = self.virtual_size.div_ceil(span);
                    let bytes = entries.saturating_mul(4);
                    if bytes > limits::META_MAX_BYTES {
                        return Err(MetaError::new(F, "the grain directory is above the limit"));
                    }
                    let at = gd_sectors.saturating_mul(512);
                    if at.saturating_add(bytes) > self.file_len {
                        self.diags.push(Diagnostic::error(
                            Code::MetaPastEof,
                            format!(
                                "the grain directory at byte {at} ({bytes} bytes) lies past the \
                                 end of the file: read as zeroes"
                            ),
                        ));
                    }
                    self.batch = Batch::new(&[(at, bytes)], self.file_len);
                    self.gd = vec![0; entries as usize];
                }
                2 => {
                    let b = self.batch.take().into_iter().next().unwrap_or_default();
                    for (i, e) in self.gd.iter_mut().enumerate() {
                        *e = le32(&b, i);
                    }
                    let mut offs: Vec<u64> = self
                        .gd
                        .iter()
                        .filter(|&&e| e != 0)
                        .map(|&e| e * 512)
                        .collect();
                    super::qcow2::sort_by_key(&mut offs, |&o| o);
                    offs.dedup();
                    let len = self.gtes * 4;
                    let tables: Vec<(u64, u64)> = offs.iter().map(|&o| (o, len)).collect();
                    let total: u64 = tables
                        .iter()
                        .map(|&(o, l)| l.min(self.file_len.saturating_sub(o)))
                        .sum();
                    if self.planned + total > limits::META_MAX_BYTES {
                        return Err(MetaError::new(F, "the grain tables are above the limit"));
                    }
                    self.batch = Batch::new(&tables, self.file_len);
                }
                3 => {
                    let offs: Vec<u64> = self.batch.offsets();
                    let bufs = self.batch.take();
                    self.gts = offs.into_iter().zip(bufs).collect();
                }
                _ => return Ok(Vec::new()),
            }
            self.planned += self.batch.planned();
            self.round += 1;
        }
    }

    pub fn feed(&mut self, range: Range, bytes: &[u8]) -> Result<(), MetaError> {
        self.read += bytes.len() as u64;
        self.batch.feed(range, bytes, F)
    }

    pub fn finish(self) -> Result<Layer, MetaError> {
        if self.round < 4 {
            return Err(MetaError::new(F, "the walk is not complete"));
        }
        let vs = self.virtual_size;
        let g = self.grain;
        let span = self.gtes * g;
        let mut ext: Vec<Extent> = Vec::new();
        // qemu's vmdk_co_check: every grain read from the file must start
        // inside it; it stops at the first that does not.
        let mut check = self.check.then(|| super::blocks::empty_check(F));
        for (i, &e) in self.gd.iter().enumerate() {
            let base = i as u64 * span;
            if base >= vs {
                break;
            }
            let t = (e != 0)
                .then(|| self.gts.binary_search_by_key(&(e * 512), |t| t.0).ok())
                .flatten();
            let Some(k) = t else {
                push(&mut ext, base, span.min(vs - base), Kind::Unallocated, None);
                continue;
            };
            let table = &self.gts[k].1;
            for j in 0..self.gtes {
                let at = base + j * g;
                if at >= vs {
                    break;
                }
                let len = g.min(vs - at);
                let s = le32(table, j as usize);
                if let Some(c) = check.as_mut() {
                    // qemu stops at the first such grain (one corruption,
                    // and `qemu-img check` says "Check failed").
                    if c.corruptions == 0
                        && s != 0
                        && !(s == 1 && self.zero_grain)
                        && s * 512 >= self.file_len
                    {
                        c.corruptions += 1;
                        if c.problems.len() < limits::META_MAX_PROBLEMS {
                            c.problems.push(super::Problem {
                                class: "corruption",
                                offset: s * 512,
                                message: format!("the grain of guest offset {at} points past the end of the file"),
                            });
                        }
                    }
                }
                match s {
                    0 => push(&mut ext, at, len, Kind::Unallocated, None),
                    1 if self.zero_grain => push(&mut ext, at, len, Kind::Zero, None),
                    _ if self.compressed => push(&mut ext, at, len, Kind::Compressed, None),
                    s => push(&mut ext, at, len, Kind::Data, Some(s * 512)),
                }
            }
        }
        if let Some(c) = check.as_mut() {
            if c.corruptions > 0 {
                c.advice = Some("qemu-img convert (qemu-img check cannot repair vmdk)".into());
            }
        }
        let covered = ext.last().map_or(0, |e| e.start + e.length);
        if covered < vs {
            push(&mut ext, covered, vs - covered, Kind::Unallocated, None);
        }
        Ok(Layer {
            format: F,
            virtual_size: vs,
            cluster_size: Some(g),
            allocation: Allocation::from_extents(vs, &ext, false),
            extents: ext,
            check,
            bytes_read: self.read,
            diagnostics: self.diags,
        })
    }
}

fn push(runs: &mut Vec<Extent>, start: u64, length: u64, kind: Kind, offset: Option<u64>) {
    super::qcow2::push_run(runs, start, length, kind, offset);
}
