//! Matching a backing reference to an image: which image (if any) a layer's
//! backing name stands for. What is *said* about the match is decided in
//! `rules.rs`.
//!
//! The backing name is parsed ([`source::resolve_backing`]); a relative plain
//! file name is joined to the directory of the image naming it (no `..`
//! folding). Then, in order:
//!
//! 1. the caller's mapping ([`BuildOptions::mapping`]) overrides everything;
//! 2. an image whose name is the resolved path (as given, then with `.` and
//!    `..` folded lexically);
//! 3. unless [`BuildOptions::exact_paths`]: the images with the same basename,
//!    ranked by the longest common suffix of whole path components; a tie is
//!    `ambiguous` (the user chooses, through the mapping);
//! 4. unless `exact_paths`: identity — the one image whose id (VMDK CID,
//!    VHD/VHDX/VDI id) is this image's parent id.
//!
//! Indexing is linear in the number of images, and so is matching them all.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{rules, untrusted_reason, BuildOptions, Image, Link, Match};
use crate::diag::{Code, Diagnostic};
use crate::source::{self, basename, SourceType, StorageSource};

/// Fold `.` and `..` lexically (for matching names only; links keep the
/// plain join).
pub fn normalize(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(l) if *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let j = parts.join("/");
    if abs {
        format!("/{j}")
    } else {
        j
    }
}

/// Is `p` its own [`normalize`]d form: no empty, `.` or `..` component
/// (a leading `/` aside)? Most names are, and then need no new string.
fn is_normal(p: &str) -> bool {
    let body = p.strip_prefix('/').unwrap_or(p);
    body.is_empty() || body.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

/// [`normalize`], borrowing `p` when it is already normal.
fn normalized(p: &str) -> Cow<'_, str> {
    if is_normal(p) {
        Cow::Borrowed(p)
    } else {
        Cow::Owned(normalize(p))
    }
}

/// Longest common suffix of two paths, counted in whole components.
fn common_suffix_components(a: &str, b: &str) -> usize {
    a.rsplit('/')
        .zip(b.rsplit('/'))
        .take_while(|(x, y)| x == y && !x.is_empty())
        .count()
}

/// The images by name, normalized name, basename and id.
pub(super) struct Index<'a> {
    by_path: HashMap<&'a str, usize>,
    /// The images whose names are not normal, by their normalized name
    /// (a normal name is its own: `by_path` has it).
    by_norm: HashMap<String, usize>,
    pub(super) by_base: HashMap<&'a str, Vec<usize>>,
    by_id: HashMap<&'a str, Vec<usize>>,
    norm: Vec<Cow<'a, str>>,
}

impl<'a> Index<'a> {
    pub(super) fn new(images: &'a [Image]) -> Self {
        let n = images.len();
        let mut ix = Index {
            by_path: HashMap::with_capacity(n),
            by_norm: HashMap::with_capacity(n),
            by_base: HashMap::with_capacity(n),
            by_id: HashMap::new(),
            norm: Vec::with_capacity(n),
        };
        for (i, img) in images.iter().enumerate() {
            ix.by_path.entry(img.filename.as_str()).or_insert(i);
            let nm = normalized(&img.filename);
            if let Cow::Owned(o) = &nm {
                ix.by_norm.entry(o.clone()).or_insert(i);
            }
            ix.norm.push(nm);
            ix.by_base
                .entry(basename(&img.filename))
                .or_default()
                .push(i);
            if let Some(id) = img
                .info()
                .and_then(|i| i.identity.as_ref())
                .and_then(|d| d.id.as_deref())
            {
                ix.by_id.entry(id).or_default().push(i);
            }
        }
        ix
    }
}

/// The caller's choices by image name: `(backing image, same)`, where `same`
/// is a [`BuildOptions::same_files`] pair (the same file spelt another way)
/// and not a [`BuildOptions::mapping`] one.
pub(super) type Mapping<'a> = HashMap<&'a str, (usize, bool)>;

/// The mapping and same-file pairs of `opts` by image index; a pair naming
/// an image that was not given is said in `diagnostics`.
pub(super) fn mapping<'a>(
    images: &[Image],
    opts: &'a BuildOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Mapping<'a> {
    let by_name: HashMap<&str, usize> = images
        .iter()
        .enumerate()
        .map(|(i, m)| (m.filename.as_str(), i))
        .collect();
    let mut mapping: Mapping = HashMap::new();
    let pairs = opts
        .same_files
        .iter()
        .map(|p| (p, true))
        .chain(opts.mapping.iter().map(|p| (p, false)));
    for ((from, to), same) in pairs {
        match by_name.get(to.as_str()) {
            Some(&t) => {
                mapping.insert(from.as_str(), (t, same));
            }
            None => diagnostics.push(rules::mapping_unknown(from, to)),
        }
    }
    mapping
}

/// An image's link, with what the matching saw on the way.
pub(super) struct Matched {
    pub(super) link: Link,
    /// What parsing the backing name noticed (inline credentials, …).
    pub(super) parse_notes: Vec<Diagnostic>,
    /// For [`Match::Mapping`]: how the caller's pair relates to the name.
    pub(super) mapped: Option<Mapped>,
}

/// How a caller's pair relates to the backing name it overrides.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mapped {
    /// A [`BuildOptions::same_files`] pair (not a [`BuildOptions::mapping`]).
    pub(super) same: bool,
    /// The resolved name is that image's name anyway.
    pub(super) agrees: bool,
}

impl From<Link> for Matched {
    fn from(link: Link) -> Self {
        Matched {
            link,
            parse_notes: Vec::new(),
            mapped: None,
        }
    }
}

/// What image `i`'s backing reference points at.
pub(super) fn link_of(
    i: usize,
    images: &[Image],
    index: &Index,
    mapping: &Mapping,
    opts: &BuildOptions,
) -> Matched {
    let img = &images[i];
    let Some(info) = img.info() else {
        return Link::Unprobed.into();
    };
    let Some(name) = info.backing_filename.as_deref() else {
        return Link::None.into();
    };
    if info.has_diagnostic(Code::BackingNameTooLong) {
        // qemu refuses to open the image: the name is never looked for.
        return Link::Unparsed {
            error: "it is longer than qemu reads".into(),
        }
        .into();
    }
    let parsed = match source::resolve_backing(&StorageSource::file(img.filename.as_str()), name) {
        Ok(p) => p,
        Err(e) => return Link::Unparsed { error: e.message }.into(),
    };
    let found = |link: Link| Matched {
        link,
        parse_notes: parsed.diagnostics.clone(),
        mapped: None,
    };
    if parsed.source.kind != SourceType::File {
        return found(Link::Remote {
            source: parsed.source.clone(),
        });
    }
    let resolved = parsed.source.path.clone().unwrap_or_default();
    if let Some(&(t, same)) = mapping.get(img.filename.as_str()) {
        let agrees = index.by_path.get(resolved.as_str()) == Some(&t);
        return Matched {
            mapped: Some(Mapped { same, agrees }),
            ..found(Link::Image {
                index: t,
                resolved,
                how: Match::Mapping,
            })
        };
    }
    if let Some(&t) = index.by_path.get(resolved.as_str()) {
        return found(Link::Image {
            index: t,
            resolved,
            how: Match::Path,
        });
    }
    let norm = normalized(&resolved);
    // The first image whose normalized name is `norm`: among the normal
    // names (by path) and the others (by_norm), the lower index.
    let by_norm = match (index.by_path.get(&*norm), index.by_norm.get(&*norm)) {
        (Some(&a), Some(&b)) => Some(a.min(b)),
        (a, b) => a.or(b).copied(),
    };
    if let Some(t) = by_norm {
        return found(Link::Image {
            index: t,
            resolved,
            how: Match::Path,
        });
    }
    let not_found = |resolved: String| {
        found(if opts.untrusted && untrusted_reason(name).is_some() {
            Link::NotOpened { resolved }
        } else {
            Link::Missing { resolved }
        })
    };
    if opts.exact_paths {
        return not_found(resolved);
    }
    if let Some(cands) = index.by_base.get(basename(&norm)) {
        let cands: Vec<usize> = cands.iter().copied().filter(|&c| c != i).collect();
        let mut best: Vec<usize> = Vec::new();
        let mut best_len = 0;
        for &c in &cands {
            let l = common_suffix_components(&index.norm[c], &norm);
            if l > best_len {
                best_len = l;
                best.clear();
            }
            if l == best_len {
                best.push(c);
            }
        }
        match best.len() {
            0 => {}
            1 => {
                let how = if cands.len() == 1 {
                    Match::Basename
                } else {
                    Match::Suffix
                };
                return found(Link::Image {
                    index: best[0],
                    resolved,
                    how,
                });
            }
            _ => {
                return found(Link::Ambiguous {
                    resolved,
                    candidates: best,
                })
            }
        }
    }
    // Identity: the parent id recorded in the image.
    if let Some(pid) = info.identity.as_ref().and_then(|x| x.parent_id.as_deref()) {
        if let Some(c) = index.by_id.get(pid) {
            let c: Vec<usize> = c.iter().copied().filter(|&x| x != i).collect();
            match c.len() {
                0 => {}
                1 => {
                    return found(Link::Image {
                        index: c[0],
                        resolved,
                        how: Match::Identity,
                    })
                }
                _ => {
                    return found(Link::Ambiguous {
                        resolved,
                        candidates: c,
                    })
                }
            }
        }
    }
    not_found(resolved)
}

/// The path a file source's backing name stands for, seen from the image
/// `parent` (a local path): relative plain names joined to its directory.
pub fn backing_path(parent: &str, name: &str) -> Result<Option<String>, String> {
    let p = source::resolve_backing(&StorageSource::file(parent), name).map_err(|e| e.message)?;
    Ok(match p.source.kind {
        SourceType::File => p.source.path,
        _ => None,
    })
}

/// The files a VMDK descriptor's extents name, as qemu opens them: relative
/// names next to the descriptor, absolute ones as they are (`json:` and
/// protocol names, flagged by the probe, are left out). The caller checks
/// that each exists (`missing-extent`); the core does no I/O. Pairs of
/// (name as written, path).
pub fn extent_paths(img: &Image) -> Vec<(String, String)> {
    let Some(info) = img.info() else {
        return Vec::new();
    };
    info.vmdk_extents()
        .into_iter()
        .filter(|e| e.external)
        .filter_map(|e| {
            let name = e.file?;
            let path = backing_path(&img.filename, &name).ok().flatten()?;
            Some((name, path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{img, names};
    use super::super::*;
    use crate::diag::Code;
    use crate::image::{Format, Identity};

    #[test]
    fn normalize_folds_lexically() {
        assert_eq!(normalize("/v/sub/../base"), "/v/base");
        assert_eq!(normalize("./a/./b"), "a/b");
        assert_eq!(normalize("../x"), "../x");
        assert_eq!(normalize("/../x"), "/x");
    }

    proptest::proptest! {
        // The fast path is exact: a name called normal is its own
        // normalized form, and `normalized` always equals `normalize`.
        #[test]
        fn normal_names_need_no_folding(p in "[/a.]{0,10}") {
            let n = super::normalize(&p);
            proptest::prop_assert_eq!(&*super::normalized(&p), n.as_str());
            if super::is_normal(&p) {
                proptest::prop_assert_eq!(n.as_str(), p.as_str());
            }
        }
    }

    #[test]
    fn a_normal_and_a_folded_name_of_one_file_match_the_first_given() {
        // Both images normalize to /v/a: the backing matches the one given
        // first, whichever of the two spellings it has.
        for (first, second) in [("/v/./a", "/v/a"), ("/v/a", "/v/./a")] {
            let f = build(vec![
                img(first, None),
                img(second, None),
                img("/v/top", Some("/v/x/../a")),
            ]);
            let Link::Image { index, .. } = &f.links[2] else {
                panic!("/v/top's backing is not matched: {:?}", f.links[2]);
            };
            assert_eq!(f.images[*index].filename, first);
        }
    }

    #[test]
    fn relative_dotdot_and_sub_paths_match() {
        let f = build(vec![
            img("vm/sub/top.qcow2", Some("../base.qcow2")),
            img("vm/base.qcow2", Some("sub2/mid.qcow2")),
            img("vm/sub2/mid.qcow2", None),
        ]);
        assert_eq!(f.chains.len(), 1);
        assert_eq!(
            names(&f, &f.chains[0]),
            ["vm/sub/top.qcow2", "vm/base.qcow2", "vm/sub2/mid.qcow2"]
        );
        assert_eq!(f.chains[0].status, Status::Ok);
        // the link keeps the plain join
        assert_eq!(
            f.links[0],
            Link::Image {
                index: 1,
                resolved: "vm/sub/../base.qcow2".into(),
                how: Match::Path
            }
        );
    }

    #[test]
    fn suffix_then_basename_then_ambiguous() {
        // Absolute names recorded on another machine; dropped files are relative.
        let f = build(vec![
            img("a/top.qcow2", Some("/srv/images/a/base.qcow2")),
            img("a/base.qcow2", None),
            img("b/base.qcow2", None),
            img("c/top.qcow2", Some("/old/place/base.qcow2")),
            img("d/top.qcow2", Some("/old/place/only.qcow2")),
            img("x/only.qcow2", None),
        ]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 1,
                how: Match::Suffix,
                ..
            }
        ));
        assert!(
            matches!(&f.links[3], Link::Ambiguous { candidates, .. } if candidates == &vec![1, 2])
        );
        assert!(matches!(
            f.links[4],
            Link::Image {
                index: 5,
                how: Match::Basename,
                ..
            }
        ));
        let c = f.chains.iter().find(|c| c.top == 3).unwrap();
        assert_eq!(c.status, Status::Ambiguous);
        assert!(super::super::testing::codes(c).contains(&Code::AmbiguousBacking));
        assert!(f
            .diagnostics
            .iter()
            .any(|d| d.code == Code::DuplicateBasename));
        // The user's choice resolves it.
        let f2 = build_with(
            f.images.clone(),
            &BuildOptions {
                mapping: vec![("c/top.qcow2".into(), "b/base.qcow2".into())],
                ..Default::default()
            },
        );
        assert!(matches!(
            f2.links[3],
            Link::Image {
                index: 2,
                how: Match::Mapping,
                ..
            }
        ));
        // exact paths: no fuzzy matching at all
        let f3 = build_with(
            f.images.clone(),
            &BuildOptions {
                exact_paths: true,
                ..Default::default()
            },
        );
        assert!(matches!(f3.links[0], Link::Missing { .. }));
        assert!(matches!(f3.links[4], Link::Missing { .. }));
    }

    #[test]
    fn identity_matches_when_names_do_not() {
        let mut top = img("t.vmdk", Some("renamed-away.vmdk"));
        let mut base = img("b.vmdk", None);
        let mut other = img("o.vmdk", None);
        for (i, id, pid) in [
            (&mut top, "aaaa0001", Some("bbbb0002")),
            (&mut base, "bbbb0002", None),
            (&mut other, "cccc0003", None),
        ] {
            if let Probed::Info(info) = &mut i.probe {
                info.format = Format::Vmdk;
                info.backing_filename_format = None;
                info.identity = Some(Identity {
                    id: Some(id.into()),
                    parent_id: pid.map(str::to_string),
                });
            }
        }
        let f = build(vec![top.clone(), base.clone(), other.clone()]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 1,
                how: Match::Identity,
                ..
            }
        ));
        assert!(f
            .link_diagnostics(0)
            .iter()
            .any(|d| d.code == Code::MatchedByIdentity));
        // Matched by name but the ids disagree: parentCID mismatch.
        if let Probed::Info(info) = &mut top.probe {
            info.backing_filename = Some("o.vmdk".into());
        }
        let f = build(vec![top, base, other]);
        assert!(matches!(
            f.links[0],
            Link::Image {
                index: 2,
                how: Match::Path,
                ..
            }
        ));
        assert!(f
            .link_diagnostics(0)
            .iter()
            .any(|d| d.code == Code::ParentIdMismatch));
    }
}
