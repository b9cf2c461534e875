//! Walking chains top → base, and how each ends.
//!
//! # Cost
//!
//! Everything is iterative (no recursion: a 10,000-deep chain runs on a small
//! stack). Indexing and matching are linear in the number of images; what a
//! link implies (format checks, parse notes, identity checks, where a chain
//! ends there) is decided once per link (`rules::judge`) and
//! shared by every chain through it. Each image is walked once: a later chain
//! that reaches an image an earlier (loop-free) chain went through copies
//! that chain's suffix — layers and diagnostics — instead of walking it
//! again. Building is O(images + Σ chain lengths), and Σ chain lengths is the
//! size of the output, since every chain lists its layers (T tops over a
//! D-deep base hold T × D layer indices).
//!
//! The walker itself says only what depends on the walk: a loop, a chain
//! deeper than the core follows, a chain deeper than libvirt accepts; and the
//! chain's status, the first error from the top down ([`status_of`]).

use super::rules::Step;
use super::{Chain, Forest, Status};
use crate::diag::{shell_quote, Code, Diagnostic, Severity};
use crate::image::Format;
use crate::limits;

/// The status an error diagnostic gives its chain (the one table of it).
pub fn status_of(code: Code) -> Status {
    match code {
        Code::MissingBacking | Code::MissingExtent => Status::Missing,
        Code::BackingLoop => Status::Loop,
        Code::BackingFormatNotRecorded => Status::UnprobedFormat,
        Code::TooLong | Code::BackingNameTooLong => Status::TooLong,
        Code::BadBackingName => Status::BadName,
        Code::AmbiguousBacking => Status::Ambiguous,
        Code::Unprobed => Status::Unreadable,
        Code::BackingFormatMismatch => Status::FormatMismatch,
        Code::BackingFormatUnknown => Status::BadFormat,
        Code::TooDeepForLibvirt => Status::TooDeep,
        // The image safety checks (`image::safety`): unsafe to attach as it is.
        c if c.is_unsafe() => Status::Unsafe,
        _ => Status::Error,
    }
}

/// The chains of a built forest: one from each top (an image nobody
/// references), then one for each loop no top reaches, starting at the
/// first image of the loop not yet reached.
pub(super) fn all_chains(forest: &Forest) -> Vec<Chain> {
    let n = forest.images.len();
    let mut walker = Walker::new(n);
    let mut reached = vec![false; n];
    let mut chains: Vec<Chain> = Vec::new();
    let tops = (0..n).filter(|&i| forest.overlays[i].is_empty());
    // The loops' starts are known only once the tops are walked.
    let mut walk = |start: usize, chains: &mut Vec<Chain>, reached: &mut Vec<bool>| {
        let c = walker.walk(start, forest, chains);
        for &l in &c.layers {
            reached[l] = true;
        }
        walker.remember(chains.len(), &c);
        chains.push(c);
    };
    for top in tops {
        walk(top, &mut chains, &mut reached);
    }
    for i in 0..n {
        if !reached[i] {
            walk(i, &mut chains, &mut reached);
        }
    }
    chains
}

/// Walks chains with a generation-stamped visited array (no per-walk
/// allocation beyond the chain itself), reusing the suffix of an earlier
/// chain as soon as the walk reaches an image that chain went through: many
/// tops over one long base cost a copy of the base's layers each, not a
/// walk.
pub(super) struct Walker {
    stamp: Vec<u32>,
    pos: Vec<usize>,
    gen: u32,
    /// `memo[v]`: (chain, position) where image `v`'s own chain suffix
    /// starts in an earlier chain that ended without a loop.
    memo: Vec<Option<(usize, usize)>>,
    /// Per earlier chain: the index of the first diagnostic of each walked
    /// (not copied) position, and the end of the diagnostics that belong to
    /// the layers (before the whole-chain depth note).
    diag_at: Vec<Vec<usize>>,
    body_end: Vec<usize>,
    /// The same for the walk in progress.
    cur_diag_at: Vec<usize>,
    cur_body_end: usize,
}

impl Walker {
    pub(super) fn new(n: usize) -> Self {
        Walker {
            stamp: vec![0; n],
            pos: vec![0; n],
            gen: 0,
            memo: vec![None; n],
            diag_at: Vec::new(),
            body_end: Vec::new(),
            cur_diag_at: Vec::new(),
            cur_body_end: 0,
        }
    }

    /// Record the chain just walked as chain `idx`, for reuse.
    fn remember(&mut self, idx: usize, c: &Chain) {
        let diag_at = std::mem::take(&mut self.cur_diag_at);
        let reusable = !matches!(c.end, Status::Loop | Status::TooLong);
        if reusable {
            for (q, &v) in c.layers.iter().enumerate().take(diag_at.len()) {
                if self.memo[v].is_none() {
                    self.memo[v] = Some((idx, q));
                }
            }
        }
        self.diag_at.resize(idx, Vec::new());
        self.body_end.resize(idx, 0);
        self.diag_at
            .push(if reusable { diag_at } else { Vec::new() });
        self.body_end.push(self.cur_body_end);
    }

    /// The chain from `top`; `done` are the chains remembered so far.
    pub(super) fn walk(&mut self, top: usize, f: &Forest, done: &[Chain]) -> Chain {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
        self.cur_diag_at.clear();
        let images = &f.images;
        let mut layers = vec![top];
        let mut diagnostics: Vec<Diagnostic> = Vec::new();
        self.stamp[top] = self.gen;
        self.pos[top] = 0;
        let mut cur = top;
        let end = loop {
            if cur != top {
                if let Some((c, p)) = self.memo[cur] {
                    let ch = &done[c];
                    let rest = ch.layers.len() - p - 1;
                    if layers.len() + rest <= limits::MAX_CHAIN_DEPTH {
                        layers.extend_from_slice(&ch.layers[p + 1..]);
                        diagnostics.extend_from_slice(
                            &ch.diagnostics[self.diag_at[c][p]..self.body_end[c]],
                        );
                        break ch.end;
                    }
                }
            }
            self.cur_diag_at.push(diagnostics.len());
            diagnostics.extend(f.link_diagnostics[cur].iter().cloned());
            if layers.len() > limits::MAX_CHAIN_DEPTH {
                diagnostics.push(Diagnostic::error(
                    Code::TooLong,
                    format!(
                        "the chain from '{}' is deeper than {} layers; stopped there",
                        images[top].filename,
                        limits::MAX_CHAIN_DEPTH
                    ),
                ));
                break Status::TooLong;
            }
            match &f.steps[cur] {
                Step::End { end, said } => {
                    diagnostics.extend(said.iter().cloned());
                    break *end;
                }
                Step::Next {
                    next,
                    not_followed,
                    last,
                } => {
                    let next = *next;
                    if self.stamp[next] == self.gen {
                        let at = self.pos[next];
                        let names: Vec<&str> = layers[at..]
                            .iter()
                            .map(|&l| images[l].filename.as_str())
                            .collect();
                        diagnostics.push(Diagnostic::error(
                            Code::BackingLoop,
                            format!(
                                "backing loop of {} image{}: {} → {}",
                                names.len(),
                                if names.len() == 1 { "" } else { "s" },
                                names.join(" → "),
                                images[next].filename
                            ),
                        ));
                        break Status::Loop;
                    }
                    self.stamp[next] = self.gen;
                    self.pos[next] = layers.len();
                    layers.push(next);
                    diagnostics.extend(not_followed.iter().cloned());
                    if *last {
                        break Status::Ok;
                    }
                    cur = next;
                }
            }
        };
        // What the walk noticed at its last image is about that image.
        for d in &mut diagnostics {
            d.image.get_or_insert(cur);
        }
        self.cur_body_end = diagnostics.len();
        if layers.len() > limits::LIBVIRT_MAX_DEPTH {
            let top_img = &images[top];
            let fmt = top_img.info().map_or(Format::Qcow2, |i| i.format);
            diagnostics.push(
                Diagnostic::error(
                    Code::TooDeepForLibvirt,
                    format!(
                        "the chain from '{}' has {} layers; libvirt's qemu driver refuses more than {}",
                        top_img.filename,
                        layers.len(),
                        limits::LIBVIRT_MAX_DEPTH
                    ),
                )
                .with_fix(format!(
                    "qemu-img convert -f {fmt} -O qcow2 {} {}",
                    shell_quote(&top_img.filename),
                    shell_quote(&format!("{}.flat.qcow2", top_img.filename))
                ))
                .at(top),
            );
        }
        // The first error from the top down is the verdict.
        let status = diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
            .map_or(end, |d| status_of(d.code));
        Chain {
            top,
            layers,
            status,
            diagnostics,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{codes, img};
    use super::super::*;
    use crate::diag::{Code, Diagnostic};
    use crate::limits;
    #[test]
    fn loops_of_one_two_three_name_their_images() {
        for k in 1..=3usize {
            let images: Vec<Image> = (0..k)
                .map(|i| img(&format!("/v/l{i}"), Some(&format!("./l{}", (i + 1) % k))))
                .collect();
            let f = build(images);
            assert_eq!(f.chains.len(), 1, "loop of {k}");
            let c = &f.chains[0];
            assert_eq!(c.status, Status::Loop);
            assert_eq!(c.layers.len(), k);
            let d = c
                .diagnostics
                .iter()
                .find(|d| d.code == Code::BackingLoop)
                .unwrap();
            for i in 0..k {
                assert!(d.message.contains(&format!("/v/l{i}")), "{}", d.message);
            }
        }
        // A tail into a loop: the top is a top, the loop is reported once per chain.
        let f = build(vec![
            img("/v/t", Some("a")),
            img("/v/a", Some("b")),
            img("/v/b", Some("a")),
        ]);
        assert_eq!(f.chains.len(), 1);
        assert_eq!(f.chains[0].layers, vec![0, 1, 2]);
        assert_eq!(f.chains[0].status, Status::Loop);
        assert!(f.chains[0].diagnostics[0..]
            .iter()
            .any(|d| d.code == Code::BackingLoop && d.message.contains("/v/a → /v/b → /v/a")));
    }

    #[test]
    fn shared_base_is_a_tree() {
        let f = build(vec![
            img("/v/base", None),
            img("/v/mid", Some("base")),
            img("/v/t1", Some("mid")),
            img("/v/t2", Some("mid")),
            img("/v/t3", Some("base")),
        ]);
        let tops: Vec<usize> = f.chains.iter().map(|c| c.top).collect();
        assert_eq!(tops, vec![2, 3, 4]);
        assert_eq!(f.overlays[0], vec![1, 4]);
        assert_eq!(f.overlays[1], vec![2, 3]);
        assert_eq!(f.chain_from(1).layers, vec![1, 0]);
    }

    #[test]
    fn remote_and_unparsed_end_the_chain() {
        let f = build(vec![
            img("/v/a", Some("nbd://h:1234/e")),
            img("/v/b", Some("frob:x")),
            img("/v/c", Some("http://u:pw@h/x")),
        ]);
        assert_eq!(f.chains[0].status, Status::Remote);
        assert_eq!(f.chains[1].status, Status::BadName);
        assert!(codes(&f.chains[2]).contains(&Code::CredentialsDropped));
    }

    /// Chains built with shared suffixes are exactly the chains walked one
    /// by one (`chain_from` uses a fresh walker with nothing to reuse).
    #[test]
    fn reused_suffixes_equal_fresh_walks() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..20 {
            let n = 50 + 100 * round;
            let images: Vec<Image> = (0..n)
                .map(|i| {
                    let b = match next(10) {
                        0 => None,
                        1 => Some(format!("missing{i}")),
                        2 => Some("nbd://h/e".to_string()),
                        // mostly point further down, sometimes back up (loops)
                        3 => Some(format!("i{}", next(n as u64))),
                        _ => Some(format!("i{}", (i as u64 + 1 + next(5)).min(n as u64 - 1))),
                    };
                    let mut m = img(&format!("/v/i{i}"), b.as_deref());
                    if let Probed::Info(info) = &mut m.probe {
                        match next(6) {
                            0 => info.backing_filename_format = Some("raw".into()),
                            1 => info.backing_filename_format = None,
                            2 => info
                                .diagnostics
                                .push(Diagnostic::warning(Code::Qcow2Dirty, "dirty")),
                            _ => {}
                        }
                    }
                    m
                })
                .collect();
            let f = build(images);
            for c in &f.chains {
                let fresh = f.chain_from(c.top);
                assert_eq!(c.layers, fresh.layers, "round {round} top {}", c.top);
                assert_eq!(c.status, fresh.status, "round {round} top {}", c.top);
                assert_eq!(
                    c.diagnostics, fresh.diagnostics,
                    "round {round} top {}",
                    c.top
                );
            }
        }
    }

    #[test]
    fn deeper_than_the_core_follows_is_too_long() {
        let n = limits::MAX_CHAIN_DEPTH + 5;
        let images: Vec<Image> = (0..n)
            .map(|i| {
                let b = (i + 1 < n).then(|| format!("x{}", i + 1));
                img(&format!("/v/x{i}"), b.as_deref())
            })
            .collect();
        let f = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || build(images))
            .unwrap()
            .join()
            .unwrap();
        let c = &f.chains[0];
        assert_eq!(c.status, Status::TooLong);
        assert_eq!(c.layers.len(), limits::MAX_CHAIN_DEPTH + 1);
        assert!(codes(c).contains(&Code::TooLong));
        assert!(codes(c).contains(&Code::TooDeepForLibvirt));
    }

    #[test]
    fn ten_thousand_images_many_tops_one_long_base() {
        // A 9,900-deep base with 100 tops on its top layer: 10,000 images.
        let depth = 9_900;
        let mut images: Vec<Image> = (0..depth)
            .map(|i| {
                let b = (i + 1 < depth).then(|| format!("b{}", i + 1));
                img(&format!("/v/b{i}"), b.as_deref())
            })
            .collect();
        for t in 0..100 {
            images.push(img(&format!("/v/t{t}"), Some("b0")));
        }
        let start = std::time::Instant::now();
        let f = build(images);
        let took = start.elapsed();
        assert_eq!(f.chains.len(), 100);
        assert!(f
            .chains
            .iter()
            .all(|c| c.layers.len() == depth + 1 && c.end == Status::Ok));
        // Complete chains, but deeper than libvirt's qemu driver accepts.
        assert!(f.chains.iter().all(|c| c.status == Status::TooDeep));
        assert_eq!(f.overlays[0].len(), 100);
        eprintln!("10,000 images, 100 tops over a 9,900-deep base: {took:?}");
    }
}
