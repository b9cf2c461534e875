//! The `probe` fuzz target's input, also read by `tests/hostile.rs` (the
//! fuzz crate includes this file by path). Byte 0 is a mode: bit 0 set means
//! the probe is not told the file length; bit 1 set means the sparse layout —
//! a u32 LE file length, then segments of u32 LE offset, u16 LE length and
//! that many bytes (later segments win, holes read as zeros) — so headers far
//! into a file (VHDX at 64 KiB to 3 MiB, footers at the end) fit in a short
//! input. Otherwise the rest of the input is the file.
//! `fuzz/make-probe-seeds.mjs` writes seeds in the sparse layout.

pub struct FuzzFile<'a> {
    pub len: u64,
    pub len_known: bool,
    /// (offset, bytes); the flat layout is one segment at 0.
    segments: Vec<(u64, &'a [u8])>,
}

impl<'a> FuzzFile<'a> {
    pub fn parse(data: &'a [u8]) -> Option<FuzzFile<'a>> {
        let (&mode, rest) = data.split_first()?;
        let len_known = mode & 1 == 0;
        if mode & 2 == 0 {
            return Some(FuzzFile {
                len: rest.len() as u64,
                len_known,
                segments: vec![(0, rest)],
            });
        }
        let len = u64::from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?));
        let mut rest = &rest[4..];
        let mut segments = Vec::new();
        while rest.len() >= 6 {
            let off = u64::from(u32::from_le_bytes(rest[..4].try_into().ok()?));
            let n = usize::from(u16::from_le_bytes(rest[4..6].try_into().ok()?));
            let bytes = &rest[6..rest.len().min(6 + n)];
            segments.push((off, bytes));
            rest = &rest[6 + bytes.len()..];
        }
        Some(FuzzFile {
            len,
            len_known,
            segments,
        })
    }

    /// `[off, off + n)` of the file, cut at its end.
    pub fn read(&self, off: u64, n: u64) -> Vec<u8> {
        let end = off.saturating_add(n).min(self.len);
        if off >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; (end - off) as usize];
        for &(s, bytes) in &self.segments {
            let e = s.saturating_add(bytes.len() as u64);
            let (from, to) = (s.max(off), e.min(end));
            if from < to {
                out[(from - off) as usize..(to - off) as usize]
                    .copy_from_slice(&bytes[(from - s) as usize..(to - s) as usize]);
            }
        }
        out
    }
}
