//! Inside the layers: allocation, map, measure and check from metadata reads
//! only — sans-I/O, like the probes ([`crate::image`]).
//!
//! # The contract
//!
//! A [`Walk`] is made from the facts a probe gave ([`ImageInfo`]) and the
//! file length. The caller then loops:
//!
//! ```
//! use backing_chain::image::{self, Format};
//! use backing_chain::meta::{Walk, WalkOptions};
//! let file = vec![0u8; 8192]; // a raw disk
//! let (info, _) = image::probe_with(Some(8192), |o, n| {
//!     Ok::<_, std::convert::Infallible>(file[o as usize..(o + n) as usize].to_vec())
//! }).unwrap();
//! let mut walk = Walk::new(&info, 8192, WalkOptions::default()).unwrap();
//! loop {
//!     let need = walk.need().unwrap();
//!     if need.is_empty() { break }
//!     for r in need {
//!         walk.feed(r, &file[r.offset as usize..r.end() as usize]).unwrap();
//!     }
//! }
//! let layer = walk.finish().unwrap();
//! assert_eq!(layer.allocation.data, 8192);
//! ```
//!
//! [`Walk::need`] answers the ranges `[offset, len)` of the current round
//! (each at most [`limits::MAX_READ`], adjacent tables merged into one
//! range); an empty list means the walk is complete. [`Walk::plan`] says how
//! many bytes the walk reads: an upper bound before the first round (from
//! the header alone), exact once the tables that point to the rest are read
//! (for qcow2, after the L1 table: its entries say which L2 tables exist).
//! A range past the end of the file is never asked for; a table there reads
//! as zeroes, as qemu reads it, and gets a diagnostic.
//!
//! What the walk gives ([`Layer`]) is per image; [`chain_map`],
//! [`summary`], [`measure`] and [`commit_bytes`] combine the layers of a
//! chain (top first) the way `qemu-img map`, `measure` and `commit` do.

use serde::Serialize;

use crate::diag::{Code, Diagnostic};
use crate::image::{Format, Header, ImageInfo, Range};
use crate::limits;

pub mod blocks;
pub mod qcow2;
pub mod vmdk;

/// What a run of guest bytes holds in one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Allocated with data in this layer.
    Data,
    /// Allocated as zeroes in this layer (qcow2 zero clusters).
    Zero,
    /// Allocated with compressed data in this layer.
    Compressed,
    /// Not allocated in this layer: read from the backing (or zeroes).
    Unallocated,
}

/// A run of guest bytes `[start, start + length)` of one layer. `offset` is
/// where the bytes are in the image file (or its external data file), when
/// qemu reports it (`qemu-img map`'s `offset`): data and preallocated zero
/// clusters, and unallocated subclusters of an allocated cluster (shown
/// when no backing provides them); never compressed clusters nor those of
/// encrypted images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extent {
    pub start: u64,
    pub length: u64,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// Allocation of one layer, in bytes of guest data. `data + zero +
/// compressed + unallocated` is the virtual size; [`Allocation::percent`]
/// gives each as a percent of it (the CLI prints those; the wasm API leaves
/// the division to JS, which keeps float formatting out of the module).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Allocation {
    pub virtual_size: u64,
    pub data: u64,
    pub zero: u64,
    pub compressed: u64,
    pub unallocated: u64,
    /// Raw and fixed-size formats: every byte is allocated by definition
    /// (holes in the file are invisible from its bytes; `qemu-img map`
    /// reports them as zero where the host file system has them).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fully_allocated_by_definition: bool,
}

impl Allocation {
    fn from_extents(virtual_size: u64, extents: &[Extent], by_definition: bool) -> Allocation {
        let mut a = Allocation {
            virtual_size,
            fully_allocated_by_definition: by_definition,
            ..Default::default()
        };
        for e in extents {
            match e.kind {
                Kind::Data => a.data += e.length,
                Kind::Zero => a.zero += e.length,
                Kind::Compressed => a.compressed += e.length,
                Kind::Unallocated => a.unallocated += e.length,
            }
        }
        a
    }

    /// `bytes` as a percent of the virtual size, to two decimals.
    pub fn percent(&self, bytes: u64) -> f64 {
        if self.virtual_size == 0 {
            0.0
        } else {
            (bytes as f64 * 10000.0 / self.virtual_size as f64).round() / 100.0
        }
    }

    /// Bytes allocated in the layer (data, zero, compressed): what a
    /// `qemu-img commit` of it copies into its backing.
    pub fn allocated(&self) -> u64 {
        self.data + self.zero + self.compressed
    }
}

/// How many bytes a walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    /// At most this many bytes in all (exact when `exact`).
    pub bytes_total: u64,
    /// Whether `bytes_total` is the exact figure (known once the tables
    /// that point to the rest have been read) or an upper bound.
    pub exact: bool,
    /// Bytes handed to [`Walk::feed`] so far.
    pub bytes_read: u64,
    /// The image file's length, for "will read X of Y".
    pub file_len: u64,
}

/// What to read besides the allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct WalkOptions {
    /// Also read what `qemu-img check` reads (refcount table and blocks,
    /// internal snapshots' tables, bitmaps) and compare the refcounts.
    pub check: bool,
}

/// Why a walk stopped: the image is not one whose tables can be read
/// (unsupported format, a table beyond a limit, a header qemu refuses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaError {
    pub format: Format,
    pub message: String,
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.format, self.message)
    }
}

impl std::error::Error for MetaError {}

impl MetaError {
    pub(crate) fn new(format: Format, message: impl Into<String>) -> MetaError {
        MetaError {
            format,
            message: message.into(),
        }
    }
}

/// One layer's metadata, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Layer {
    pub format: Format,
    pub virtual_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    pub allocation: Allocation,
    /// The layer's runs, in guest order, tiling `[0, virtual_size)`.
    pub extents: Vec<Extent>,
    /// `qemu-img check`'s figures, when the walk was asked to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    pub bytes_read: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// `qemu-img check --output=json`'s figures (the keys it prints, and only
/// when not zero, as it prints them), plus the first problems found and the
/// repair qemu-img would advise (never run here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    pub filename: String,
    pub format: Format,
    pub check_errors: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub corruptions: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub leaks: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub image_end_offset: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub allocated_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub fragmented_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub compressed_clusters: u64,
    /// The first problems found (at most [`limits::META_MAX_PROBLEMS`]),
    /// each with where it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// The repair `qemu-img check` advises: `qemu-img check -r leaks` for
    /// leaks only, `-r all` for corruptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One problem `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `corruption` or `leak`.
    pub class: &'static str,
    /// Byte offset in the image file the problem is about.
    pub offset: u64,
    pub message: String,
}

/// A walk over one image's metadata (see the module docs).
#[derive(Debug)]
pub struct Walk(Inner);

#[derive(Debug)]
enum Inner {
    Qcow2(Box<qcow2::Walker>),
    /// vdi, vpc dynamic, qed.
    Blocks(Box<blocks::Walker>),
    /// VMDK sparse extents in one file.
    Vmdk(Box<vmdk::Walker>),
    /// Every byte allocated with data, at its own offset (raw, fixed VHD).
    Whole {
        format: Format,
        virtual_size: u64,
        offset: u64,
        file_len: u64,
    },
}

impl Walk {
    /// A walk over the image `info` describes (a file of `file_len` bytes).
    /// Formats whose tables are not read yet give an error saying so.
    pub fn new(info: &ImageInfo, file_len: u64, opts: WalkOptions) -> Result<Walk, MetaError> {
        let vs = info.virtual_size;
        match (info.format, &info.header) {
            (Format::Qcow2, _) => Ok(Walk(Inner::Qcow2(Box::new(qcow2::Walker::new(
                info, file_len, opts,
            )?)))),
            (Format::Raw, _) => Ok(Walk(Inner::Whole {
                format: Format::Raw,
                virtual_size: vs.unwrap_or(file_len),
                offset: 0,
                file_len,
            })),
            (Format::Vdi | Format::Vpc | Format::Qed | Format::Vhdx, _) => {
                match blocks::Walker::new(info, file_len, opts.check)? {
                    Some(w) => Ok(Walk(Inner::Blocks(Box::new(w)))),
                    // A fixed VHD: the disk is the file's first bytes.
                    None => Ok(Walk(Inner::Whole {
                        format: Format::Vpc,
                        virtual_size: vs.unwrap_or(0),
                        offset: 0,
                        file_len,
                    })),
                }
            }
            (Format::Vmdk, _) => Ok(Walk(Inner::Vmdk(Box::new(vmdk::Walker::new(
                info, file_len, opts.check,
            )?)))),
            (f, _) => Err(MetaError::new(
                f,
                format!(
                    "allocation is not read for {f} images yet (qcow2, qed, vdi, vpc, vhdx, \
                     vmdk sparse and raw are)"
                ),
            )),
        }
    }

    /// Bytes the walk reads (an upper bound until the tables that point to
    /// the rest have been read, then exact).
    pub fn plan(&self) -> Plan {
        match &self.0 {
            Inner::Qcow2(w) => w.plan(),
            Inner::Blocks(w) => w.plan(),
            Inner::Vmdk(w) => w.plan(),
            Inner::Whole { file_len, .. } => Plan {
                bytes_total: 0,
                exact: true,
                bytes_read: 0,
                file_len: *file_len,
            },
        }
    }

    /// The ranges to read now; empty when the walk is complete.
    pub fn need(&mut self) -> Result<Vec<Range>, MetaError> {
        match &mut self.0 {
            Inner::Qcow2(w) => w.need(),
            Inner::Blocks(w) => w.need(),
            Inner::Vmdk(w) => w.need(),
            Inner::Whole { .. } => Ok(Vec::new()),
        }
    }

    /// The bytes read for `range` (one that [`Walk::need`] answered; fewer
    /// bytes than asked means the file ends there).
    pub fn feed(&mut self, range: Range, bytes: &[u8]) -> Result<(), MetaError> {
        match &mut self.0 {
            Inner::Qcow2(w) => w.feed(range, bytes),
            Inner::Blocks(w) => w.feed(range, bytes),
            Inner::Vmdk(w) => w.feed(range, bytes),
            Inner::Whole { format, .. } => {
                Err(MetaError::new(*format, "no read was asked for this image"))
            }
        }
    }

    /// The layer, once [`Walk::need`] answered an empty list.
    pub fn finish(self) -> Result<Layer, MetaError> {
        match self.0 {
            Inner::Qcow2(w) => w.finish(),
            Inner::Blocks(w) => w.finish(),
            Inner::Vmdk(w) => w.finish(),
            Inner::Whole {
                format,
                virtual_size,
                offset,
                ..
            } => {
                let extents = if virtual_size == 0 {
                    Vec::new()
                } else {
                    vec![Extent {
                        start: 0,
                        length: virtual_size,
                        kind: Kind::Data,
                        offset: Some(offset),
                    }]
                };
                Ok(Layer {
                    format,
                    virtual_size,
                    cluster_size: None,
                    allocation: Allocation::from_extents(virtual_size, &extents, true),
                    extents,
                    check: None,
                    bytes_read: 0,
                    diagnostics: vec![Diagnostic::info(
                        Code::MetaFullyAllocated,
                        format!(
                            "a {format} image has no allocation tables: every byte counts as \
                             allocated (holes in the host file are not visible from its bytes)"
                        ),
                    )],
                })
            }
        }
    }
}

/// Drive a [`Walk`] with a synchronous reader `read(offset, len) -> bytes`
/// (short at end of file).
pub fn walk_with<E>(
    info: &ImageInfo,
    file_len: u64,
    opts: WalkOptions,
    mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<Layer, WalkOrIo<E>> {
    let mut w = Walk::new(info, file_len, opts).map_err(WalkOrIo::Meta)?;
    loop {
        let need = w.need().map_err(WalkOrIo::Meta)?;
        if need.is_empty() {
            break;
        }
        for r in need {
            let bytes = read(r.offset, r.len).map_err(WalkOrIo::Io)?;
            w.feed(r, &bytes).map_err(WalkOrIo::Meta)?;
        }
    }
    w.finish().map_err(WalkOrIo::Meta)
}

/// Error of [`walk_with`]: the metadata, or the caller's reader.
#[derive(Debug)]
pub enum WalkOrIo<E> {
    Meta(MetaError),
    Io(E),
}

impl<E: std::fmt::Display> std::fmt::Display for WalkOrIo<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkOrIo::Meta(e) => e.fmt(f),
            WalkOrIo::Io(e) => e.fmt(f),
        }
    }
}

/// One entry of a chain's map, as `qemu-img map --output=json` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    /// Which layer gives these bytes (0 the top); for bytes no layer holds,
    /// the layer whose "no backing here" makes them zeroes.
    pub depth: usize,
    /// Allocated in that layer (false: zeroes because nothing below).
    pub present: bool,
    pub zero: bool,
    pub data: bool,
    pub compressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl MapEntry {
    /// qemu-img's `entry_mergeable`: same flags and depth, offsets
    /// contiguous.
    fn merges(&self, next: &MapEntry) -> bool {
        self.zero == next.zero
            && self.data == next.data
            && self.compressed == next.compressed
            && self.depth == next.depth
            && self.present == next.present
            && self.offset.is_some() == next.offset.is_some()
            && self
                .offset
                .is_none_or(|o| Some(o + self.length) == next.offset)
    }
}

/// The map of a chain (`layers[0]` the top, each next one its backing), as
/// `qemu-img map --output=json` gives it for the top: which layer provides
/// each guest range, merged as qemu-img merges. Linear in the layers'
/// extents times the depth.
pub fn chain_map(layers: &[&Layer]) -> Vec<MapEntry> {
    let mut out: Vec<MapEntry> = Vec::new();
    let Some(top) = layers.first() else {
        return out;
    };
    let size = top.virtual_size;
    let mut cursor = vec![0usize; layers.len()];
    let mut pos = 0u64;
    while pos < size {
        let mut end = size;
        let mut entry = None;
        for (d, layer) in layers.iter().enumerate() {
            // The extent of this layer at `pos`.
            let ext = &layer.extents;
            let c = &mut cursor[d];
            while *c < ext.len() && ext[*c].start + ext[*c].length <= pos {
                *c += 1;
            }
            let here = ext.get(*c).filter(|e| e.start <= pos);
            let (kind, e_end, off) = match here {
                Some(e) => (
                    e.kind,
                    e.start + e.length,
                    e.offset.map(|o| o + (pos - e.start)),
                ),
                None => (Kind::Unallocated, layer.virtual_size.max(pos + 1), None),
            };
            end = end.min(e_end);
            if kind != Kind::Unallocated {
                entry = Some(MapEntry {
                    start: pos,
                    length: 0,
                    depth: d,
                    present: true,
                    zero: kind == Kind::Zero,
                    data: kind != Kind::Zero,
                    compressed: kind == Kind::Compressed,
                    offset: off,
                });
                break;
            }
            // Unallocated here: zeroes when there is no backing, or when
            // the backing ends before `pos`; else look below.
            let zero_here = match layers.get(d + 1) {
                None => true,
                Some(b) => {
                    if pos >= b.virtual_size {
                        true
                    } else {
                        end = end.min(b.virtual_size);
                        false
                    }
                }
            };
            if zero_here {
                entry = Some(MapEntry {
                    start: pos,
                    length: 0,
                    depth: d,
                    present: false,
                    zero: true,
                    data: false,
                    compressed: false,
                    // Preallocated but unallocated (qcow2 subclusters).
                    offset: off,
                });
                break;
            }
        }
        let Some(mut e) = entry else { break };
        let end = end.max(pos + 1).min(size);
        e.length = end - pos;
        match out.last_mut() {
            Some(last) if last.merges(&e) => last.length += e.length,
            _ => out.push(e),
        }
        pos = end;
    }
    out
}

/// What each layer of a chain provides, for the sentence an admin reads
/// ("top provides 1.2 GiB, base 4 GiB, 14 GiB never written").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// Per depth (0 the top): guest bytes that layer provides (data,
    /// compressed and zero clusters it holds, not hidden by a layer above).
    pub provides: Vec<Provides>,
    /// Guest bytes no layer holds (they read as zeroes).
    pub never_written: u64,
    pub virtual_size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Provides {
    pub depth: usize,
    pub bytes: u64,
    /// Of `bytes`, those written as zeroes.
    pub zero: u64,
}

/// [`Summary`] of a chain's map.
pub fn summary(depths: usize, map: &[MapEntry]) -> Summary {
    let mut provides: Vec<Provides> = (0..depths)
        .map(|depth| Provides {
            depth,
            ..Default::default()
        })
        .collect();
    let mut s = Summary {
        provides: Vec::new(),
        never_written: 0,
        virtual_size: map.iter().map(|e| e.length).sum(),
    };
    for e in map {
        if !e.present {
            s.never_written += e.length;
        } else if let Some(p) = provides.get_mut(e.depth) {
            p.bytes += e.length;
            if e.zero {
                p.zero += e.length;
            }
        }
    }
    s.provides = provides;
    s
}

/// `qemu-img measure --output=json -O qcow2` for the chain flattened into a
/// new qcow2 with qemu-img's defaults (64 KiB clusters, 16-bit refcounts,
/// no extended L2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Measure {
    /// Bytes the new image needs for the chain's data and metadata.
    pub required: u64,
    /// Bytes it takes fully allocated.
    pub fully_allocated: u64,
    /// Bytes the top's persistent bitmaps take (qemu prints it when the
    /// top is a qcow2 of version 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmaps: Option<u64>,
}

/// The size of a new qcow2 from the chain's map (`qemu-img measure -O
/// qcow2`): its data clusters are those holding any byte with data, plus
/// qemu's metadata estimate for the virtual size. `bitmaps` as
/// [`bitmaps_size`] gives it (None when the top is not a qcow2 v3).
pub fn measure(virtual_size: u64, map: &[MapEntry], bitmaps: Option<u64>) -> Measure {
    const CS: u64 = 65536;
    let aligned = virtual_size.div_ceil(CS) * CS;
    let mut data_clusters = 0u64;
    let mut last_counted: Option<u64> = None;
    for e in map.iter().filter(|e| e.present && e.data && !e.zero) {
        let first = e.start / CS;
        let last = (e.start + e.length - 1) / CS;
        let first = match last_counted {
            Some(l) if l >= first => l + 1,
            _ => first,
        };
        if last >= first {
            data_clusters += last - first + 1;
            last_counted = Some(last);
        }
    }
    let fully = qcow2::prealloc_size(aligned, CS, 4, false);
    Measure {
        required: fully - aligned + data_clusters * CS,
        fully_allocated: fully,
        bitmaps,
    }
}

/// Bytes `qemu-img commit` of layer `depth` copies into its backing: every
/// guest byte the layer holds (data, compressed and zero clusters alike:
/// the commit job copies what is allocated in the layer).
pub fn commit_bytes(layer: &Layer) -> u64 {
    layer.allocation.allocated()
}

/// What the top's persistent bitmaps add to `qemu-img measure` (qemu's
/// `qcow2_measure_bitmaps` for a new image of 64 KiB clusters): for each
/// bitmap its data clusters (all assumed allocated), its table, and its
/// directory entry. `None` unless the image is a qcow2 of version 3.
pub fn bitmaps_size(info: &ImageInfo) -> Option<u64> {
    const CS: u64 = 65536;
    let (Some(Header::Qcow2(h)), Some(crate::image::FormatSpecific::Qcow2(fs))) =
        (&info.header, &info.format_specific)
    else {
        return None;
    };
    if h.version < 3 {
        return None;
    }
    let size = info.virtual_size.unwrap_or(0);
    let mut total = 0u64;
    let mut dir = 0u64;
    for b in fs.bitmaps.iter().flatten() {
        let bits = size.div_ceil(b.granularity.max(1));
        let bytes = bits.div_ceil(8);
        let clusters = bytes.div_ceil(CS);
        total += clusters * CS;
        total += (clusters * 8).div_ceil(CS) * CS;
        dir += (24 + b.name.len() as u64).div_ceil(8) * 8;
    }
    Some(total + dir.div_ceil(CS) * CS)
}

/// The limits a walk enforces, re-exported for the docs.
pub use limits::{META_MAX_BYTES, META_MAX_PROBLEMS};

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(size: u64, ext: &[(u64, u64, Kind, Option<u64>)]) -> Layer {
        let extents: Vec<Extent> = ext
            .iter()
            .map(|&(start, length, kind, offset)| Extent {
                start,
                length,
                kind,
                offset,
            })
            .collect();
        Layer {
            format: Format::Qcow2,
            virtual_size: size,
            cluster_size: Some(65536),
            allocation: Allocation::from_extents(size, &extents, false),
            extents,
            check: None,
            bytes_read: 0,
            diagnostics: Vec::new(),
        }
    }

    #[test]
    fn map_goes_below_unallocated_and_stops_at_a_short_backing() {
        let top = layer(
            300,
            &[
                (0, 100, Kind::Data, Some(1000)),
                (100, 200, Kind::Unallocated, None),
            ],
        );
        let base = layer(200, &[(0, 200, Kind::Data, Some(5000))]);
        let m = chain_map(&[&top, &base]);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].depth, m[0].offset), (0, Some(1000)));
        assert_eq!(
            (m[1].start, m[1].length, m[1].depth, m[1].offset),
            (100, 100, 1, Some(5100))
        );
        assert_eq!(
            (m[2].start, m[2].depth, m[2].present, m[2].zero),
            (200, 0, false, true)
        );
        let s = summary(2, &m);
        assert_eq!(s.never_written, 100);
        assert_eq!(s.provides[1].bytes, 100);
    }
}
