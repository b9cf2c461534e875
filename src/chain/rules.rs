//! What is wrong with each link, decided once per image ([`judge`]): the
//! backing name itself, how it was matched, libvirt's rules for the
//! backing's format (which are not qemu's), qemu's rule for a recorded
//! format, the ids recorded for the parent, the image's own probe notes
//! (safety included), and how a walk goes on from the image ([`Step`]: where
//! the chain ends and why, or the next image and whether it is opened as raw).
//!
//! Every chain through the image shares this verdict; only what depends on
//! the walk itself (a loop, the depth) is said by the walker.

use super::matching::{Index, Mapped, Matched};
use super::{Image, Link, Match, Probed, Status};
use crate::diag::{rebase_fix, Code, Diagnostic, Severity};
use crate::image::{Format, ImageInfo};
use crate::limits;
use crate::source::{protocol, StorageSource};

/// How a walk goes on from an image, decided with its diagnostics.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// The chain ends at this image: the walk ended `end`, and `said` (after
    /// the link's diagnostics) says why.
    End {
        end: Status,
        said: Option<Diagnostic>,
    },
    /// On to image `next`. `not_followed` is said when the walk goes there
    /// (not when `next` closes a loop); `last`: `next` is opened as raw with
    /// a header of another format, which is guest data — the chain ends at
    /// `next`, complete.
    Next {
        next: usize,
        not_followed: Option<Diagnostic>,
        last: bool,
    },
}

/// Everything said about image `i` and its link (shared by every chain
/// through it), and how a walk goes on from it.
pub(super) fn judge(
    i: usize,
    images: &[Image],
    m: &Matched,
    untrusted: bool,
) -> (Vec<Diagnostic>, Step) {
    let img = &images[i];
    let mut d = Vec::new();
    if let Some(info) = img.info() {
        if let Some(name) = info.backing_filename.as_deref() {
            name_diagnostics(img, info, name, untrusted, &mut d);
        }
        for pd in &m.parse_notes {
            let mut pd = pd.clone();
            pd.message = format!("'{}': {}", img.filename, pd.message);
            d.push(pd);
        }
        if let Link::Image { index: b, how, .. } = &m.link {
            match_note(img, info, &m.link, m.mapped, images, &mut d);
            // The user chose this backing over what the header names:
            // the fixes rebase onto the chosen image.
            let chosen = (*how == Match::Mapping
                && m.mapped.is_some_and(|x| !x.same)
                && img.backing_name() != Some(images[*b].filename.as_str()))
            .then(|| images[*b].filename.as_str());
            layer_diagnostics(img, &images[*b], *how, chosen, &mut d);
        }
    }
    image_diagnostics(img, &mut d);
    for x in &mut d {
        x.image.get_or_insert(i);
    }
    (d, step(i, images, &m.link))
}

/// How a walk goes on from image `i` through its link.
fn step(i: usize, images: &[Image], link: &Link) -> Step {
    let img = &images[i];
    let name = img.backing_name().unwrap_or("");
    let f = &img.filename;
    let end = |end: Status, d: Diagnostic| Step::End {
        end,
        said: Some(d.at(i)),
    };
    match link {
        Link::None => Step::End {
            end: Status::Ok,
            said: None,
        },
        Link::Unprobed => {
            let msg = match &img.probe {
                Probed::Error { error } => error.as_str(),
                Probed::Info(_) => "",
            };
            end(
                Status::Unreadable,
                Diagnostic::error(Code::Unprobed, format!("'{f}' could not be read: {msg}")),
            )
        }
        // Said by the probe (among the link's diagnostics).
        Link::Unparsed { .. }
            if img
                .info()
                .is_some_and(|i| i.has_diagnostic(Code::BackingNameTooLong)) =>
        {
            Step::End {
                end: Status::TooLong,
                said: None,
            }
        }
        Link::Unparsed { error } => end(Status::BadName, bad_name(img, name, error)),
        Link::Remote { source } => end(
            Status::Remote,
            Diagnostic::info(
                Code::RemoteBacking,
                format!(
                    "'{f}' is backed by a {} source ({}): never opened here, the chain ends there",
                    source.protocol.as_deref().unwrap_or(source.kind.name()),
                    describe(source)
                ),
            ),
        ),
        Link::Missing { resolved } => end(
            Status::Missing,
            Diagnostic::error(
                Code::MissingBacking,
                format!(
                    "the backing file '{name}' of '{f}' (resolved to '{resolved}') is missing"
                ),
            ),
        ),
        Link::NotOpened { resolved } => end(
            Status::Untrusted,
            Diagnostic::warning(
                Code::BackingNotOpened,
                format!(
                    "the backing '{name}' of '{f}' (resolved to '{resolved}') is untrusted and was not opened: the chain is not checked beyond it"
                ),
            ),
        ),
        Link::Ambiguous {
            resolved,
            candidates,
        } => end(
            Status::Ambiguous,
            Diagnostic::error(
                Code::AmbiguousBacking,
                format!(
                    "the backing '{name}' of '{f}' (resolved to '{resolved}') matches {} images equally well ({}): choose one",
                    candidates.len(),
                    candidates
                        .iter()
                        .map(|&c| images[c].filename.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ),
        Link::Image { index, .. } => {
            let next = &images[*index];
            // Recorded as raw (or as a protocol, which libvirt maps to raw):
            // qemu and libvirt open it as raw, so whatever header it has is
            // guest data and its backing name is never followed.
            let as_raw = img.info().is_some_and(|i| {
                matches!(
                    recorded_format(i),
                    Recorded::Format(Format::Raw) | Recorded::Protocol(_)
                )
            });
            let not_followed = next.backing_name().filter(|_| as_raw).map(|b| {
                Diagnostic::warning(
                    Code::BackingNotFollowed,
                    format!(
                        "'{}' is used as raw (the format '{f}' records for it), so the backing name '{b}' in its header is data, not followed",
                        next.filename
                    ),
                )
                .at(*index)
            });
            Step::Next {
                next: *index,
                not_followed,
                last: as_raw && next.info().is_some_and(|i| i.format != Format::Raw),
            }
        }
    }
}

/// A backing name that cannot be parsed; `a:b.qcow2` meant as a file gets
/// the fix qemu needs (`./a:b.qcow2`).
fn bad_name(img: &Image, name: &str, error: &str) -> Diagnostic {
    let d = Diagnostic::error(
        Code::BadBackingName,
        format!(
            "the backing name of '{}' cannot be used: {error}",
            img.filename
        ),
    );
    let looks_like_file = !crate::text::contains(name, "//")
        && !name.starts_with("json:")
        && !name.starts_with("nbd:")
        && !name.starts_with("rbd:")
        && !name.as_bytes().contains(&b'\0');
    let info = img.info();
    match (
        looks_like_file,
        info,
        info.and_then(|i| i.backing_filename_format.as_deref()),
    ) {
        (true, Some(i), Some(bf)) => d.with_fix(rebase_fix(
            i.format.name(),
            bf,
            &format!("./{name}"),
            &img.filename,
        )),
        _ => d,
    }
}

/// The set-level diagnostic for a caller's pair naming no given image.
pub(super) fn mapping_unknown(from: &str, to: &str) -> Diagnostic {
    Diagnostic::warning(
        Code::MappingUnknownImage,
        format!("the mapping names '{to}' as the backing of '{from}', but no such image was given"),
    )
}

/// Duplicate basenames: matching by name may pick the wrong one.
pub(super) fn duplicate_basenames(index: &Index, images: &[Image], out: &mut Vec<Diagnostic>) {
    // In the order of each name's first image: an image has one basename,
    // so first images are distinct and index a table (linear, and no
    // standard sort: each of its instances is ~5 KB of wasm, issue 18).
    let mut dups: Vec<Option<(&str, &Vec<usize>)>> = vec![None; images.len()];
    for (b, v) in index.by_base.iter().filter(|(_, v)| v.len() > 1) {
        if let Some(slot) = dups.get_mut(v[0]) {
            *slot = Some((b, v));
        }
    }
    for (b, v) in dups.into_iter().flatten() {
        out.push(Diagnostic::info(
            Code::DuplicateBasename,
            format!(
                "{} images are named '{b}' ({}): a backing reference by that name is matched by its directory, or is ambiguous",
                v.len(),
                v.iter()
                    .map(|&i| images[i].filename.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
}

/// How a backing was matched, when it was not by its path.
fn match_note(
    img: &Image,
    info: &ImageInfo,
    link: &Link,
    mapped: Option<Mapped>,
    images: &[Image],
    d: &mut Vec<Diagnostic>,
) {
    let Link::Image {
        index: t,
        resolved,
        how,
    } = link
    else {
        return;
    };
    let name = info.backing_filename.as_deref().unwrap_or("");
    let f = &img.filename;
    let t = &images[*t].filename;
    match how {
        Match::Path => {}
        Match::Mapping => match mapped {
            Some(Mapped {
                same: true,
                agrees: false,
            }) => d.push(Diagnostic::info(
                Code::SameFile,
                format!(
                    "the backing '{name}' of '{f}' (resolved to '{resolved}') is the file '{t}', spelt another way"
                ),
            )),
            Some(Mapped { agrees: false, .. }) => d.push(Diagnostic::info(
                Code::MatchedByMapping,
                format!("the backing '{name}' of '{f}' is '{t}' by the given mapping"),
            )),
            _ => {}
        },
        Match::Basename | Match::Suffix => d.push(Diagnostic::info(
            Code::MatchedByName,
            format!(
                "the backing '{name}' of '{f}' (resolved to '{resolved}') is taken to be '{t}', matched by {}",
                if *how == Match::Basename { "its file name" } else { "the longest common path" }
            ),
        )),
        Match::Identity => {
            let pid = info
                .identity
                .as_ref()
                .and_then(|x| x.parent_id.as_deref())
                .unwrap_or("");
            d.push(Diagnostic::info(
                Code::MatchedByIdentity,
                format!(
                    "no image is named like the backing '{name}' of '{f}'; '{t}' is taken because its id {pid} is the recorded parent id"
                ),
            ));
        }
    }
}

/// Problems with the backing name itself.
fn name_diagnostics(
    img: &Image,
    info: &ImageInfo,
    name: &str,
    untrusted: bool,
    d: &mut Vec<Diagnostic>,
) {
    let f = &img.filename;
    let max = match info.format {
        Format::Qcow2 | Format::Qcow => Some(limits::MAX_BACKING_NAME as usize),
        Format::Qed | Format::Vmdk => Some(limits::MAX_BACKING_NAME_PATH),
        _ => None,
    };
    // The probe says so itself when the header's length field is over the
    // limit (the name may be cut there); this is for facts from elsewhere.
    if let (Some(max), false) = (max, info.has_diagnostic(Code::BackingNameTooLong)) {
        if name.len() > max {
            d.push(Diagnostic::error(
                Code::BackingNameTooLong,
                format!(
                    "the backing name of '{f}' is {} bytes long; {} allows at most {max}",
                    name.len(),
                    info.format
                ),
            ));
        }
    }
    if crate::text::contains(name, "\u{FFFD}") {
        d.push(Diagnostic::warning(
            Code::BackingNameNotUtf8,
            format!("the backing name of '{f}' is not valid UTF-8; it was read with replacement characters and may not match the file"),
        ));
    }
    if !untrusted {
        return;
    }
    if let Some(why) = untrusted_reason(name) {
        d.push(Diagnostic::warning(
            Code::UntrustedBackingName,
            format!("'{f}' comes from elsewhere and names its backing '{name}': {why}; check it before attaching it to a VM"),
        ));
    }
}

/// Why a backing name from an untrusted image must not be opened without a
/// look: a `json:` name (any file, device or host), an absolute path outside
/// the usual image directories, a relative path climbing out of the image's
/// directory. `None` for a name that stays among images. Callers that open
/// backing files (the CLI with `--untrusted`, a console's host reader) do
/// not open a flagged name; the chain then ends there, `untrusted`.
pub fn untrusted_reason(name: &str) -> Option<String> {
    use crate::image::safety::NameKind;
    match NameKind::of(name) {
        NameKind::Protocol if name.starts_with("json:") => {
            Some("a json: name can point qemu at any file, device or host".to_string())
        }
        NameKind::Absolute | NameKind::Device => Some(format!(
            "the absolute path '{name}' is outside the usual image directories"
        )),
        NameKind::ClimbsOut => Some(format!(
            "the relative path '{name}' climbs out of the image's directory"
        )),
        _ => None,
    }
}

/// The image's own probe notes worth repeating in every chain through it.
fn image_diagnostics(img: &Image, d: &mut Vec<Diagnostic>) {
    let Some(info) = img.info() else { return };
    for pd in &info.diagnostics {
        let keep = pd.severity >= Severity::Warning
            || matches!(pd.code, Code::Encrypted | Code::ExternalDataFile);
        if keep {
            let mut pd = pd.clone();
            pd.message = format!("'{}': {}", img.filename, pd.message);
            pd.from_probe = true;
            d.push(pd);
        }
    }
}

/// What a layer records as its backing's format.
pub(super) enum Recorded<'a> {
    /// Nothing: the backing's format is probed (or its header's is used).
    Nothing,
    /// An image format: qemu opens the backing as that, whatever its header.
    Format(Format),
    /// A qemu protocol driver ([`protocol::is_protocol`]): libvirt opens the
    /// backing as raw.
    Protocol(&'a str),
    /// Neither: qemu and libvirt refuse the backing.
    Unknown(&'a str),
}

pub(super) fn recorded_format(info: &ImageInfo) -> Recorded<'_> {
    match info.backing_filename_format.as_deref() {
        None => Recorded::Nothing,
        Some(r) => match Format::from_name(r) {
            Some(f) => Recorded::Format(f),
            None if protocol::is_protocol(r) => Recorded::Protocol(r),
            None => Recorded::Unknown(r),
        },
    }
}

/// Problems between an image and the backing image it names.
fn layer_diagnostics(
    img: &Image,
    backing: &Image,
    how: Match,
    chosen: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(info) = img.info() else { return };
    let Some(binfo) = backing.info() else { return };
    let name = info.backing_filename.as_deref().unwrap_or("");
    let detected = binfo.format;
    // Built only for a diagnostic that needs it (most layers have none).
    let fix = || {
        rebase_fix(
            info.format.name(),
            detected.name(),
            chosen.unwrap_or(name),
            &img.filename,
        )
    };
    if let Some(c) = chosen {
        out.push(
            Diagnostic::info(
                Code::BackingChosen,
                format!(
                    "'{}' names '{name}' as its backing; '{c}' was chosen instead: the header still says '{name}' until it is rebased",
                    img.filename
                ),
            )
            .with_fix(fix()),
        );
    }
    // libvirt's rules for the backing's format (storage_file_probe.c,
    // virStorageSourceGetMetadataRecurse), which are not qemu's.
    match libvirt_backing_format(info) {
        LibvirtBacking::Recorded => {}
        LibvirtBacking::NotRead => out.push(Diagnostic::warning(
            Code::BackingNotReadByLibvirt,
            format!(
                "'{}' is a {} image backed by '{name}': libvirt reads backing names from qcow2, qcow, cow, qed and vmdk images only, so it sees '{}' as a single layer and gives qemu no backing for it",
                img.filename, info.format, img.filename
            ),
        )),
        how_probed => out.push(unrecorded_format(&img.filename, info, binfo, name, how_probed, fix)),
    }
    // qemu's rule: a recorded format is used as is (a vmdk's backing is
    // always opened as vmdk).
    match recorded_format(info) {
        Recorded::Nothing => {}
        Recorded::Format(f) if f == detected => {}
        Recorded::Format(Format::Raw) => out.push(
            Diagnostic::warning(
                Code::BackingFormatMismatch,
                format!(
                    "'{}' records its backing '{name}' as raw, but that file starts with a {detected} header. A guest can write a {detected} header into a raw disk: if the backing is really raw, keep raw (treating it as {detected} would let the guest point qemu at other files); only if it really is {detected}, fix the metadata",
                    img.filename
                ),
            )
            .with_fix(fix()),
        ),
        Recorded::Format(f) => out.push(
            Diagnostic::error(
                Code::BackingFormatMismatch,
                format!(
                    "'{}' records its backing '{name}' as {f}, but its header says {detected}: qemu will fail to open it",
                    img.filename
                ),
            )
            .with_fix(fix()),
        ),
        Recorded::Protocol(recorded) => out.push(
            Diagnostic::warning(
                Code::BackingFormatProtocol,
                format!(
                    "'{}' records backing format '{recorded}', which is a protocol, not a format: libvirt treats the backing '{name}' as raw{}",
                    img.filename,
                    if detected != Format::Raw {
                        format!(", but its header says {detected}")
                    } else {
                        String::new()
                    }
                ),
            )
            .with_fix(fix()),
        ),
        Recorded::Unknown(recorded) => out.push(
            Diagnostic::error(
                Code::BackingFormatUnknown,
                format!(
                    "'{}' records backing format '{recorded}', which is not an image format: qemu and libvirt refuse to open the backing '{name}'",
                    img.filename
                ),
            )
            .with_fix(fix()),
        ),
    }
    // Ids recorded for the parent (VMDK parentCID, VHD/VHDX parent ids).
    if how != Match::Identity {
        let pid = info.identity.as_ref().and_then(|x| x.parent_id.as_deref());
        let bid = binfo.identity.as_ref().and_then(|x| x.id.as_deref());
        if let (Some(pid), Some(bid)) = (pid, bid) {
            if !pid.eq_ignore_ascii_case(bid) {
                let what = match info.format {
                    Format::Vmdk => format!(
                        "its parentCID {pid} is not the CID {bid} of '{}': VMware refuses the chain (qemu does not check)",
                        backing.filename
                    ),
                    Format::Vhdx => format!(
                        "its parent linkage {pid} is not the data write GUID {bid} of '{}': the parent was changed after the differencing disk was made",
                        backing.filename
                    ),
                    _ => format!(
                        "its recorded parent id {pid} is not the id {bid} of '{}'",
                        backing.filename
                    ),
                };
                out.push(Diagnostic::warning(
                    Code::ParentIdMismatch,
                    format!("'{}': {what}", img.filename),
                ));
            }
        }
    }
}
/// What libvirt does with the format of an image's backing
/// (`storage_file_probe.c`: the `getBackingStore` of each format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LibvirtBacking {
    /// The format is recorded (qcow2's header extension; qed's no-probe flag
    /// means raw): used as is.
    Recorded,
    /// Not recorded (qcow2 without the extension; qcow v1, cow and vmdk
    /// always — `VIR_STORAGE_FILE_AUTO`): libvirt (6.1 and later) probes the
    /// backing and refuses it when the probed image has a backing of its own.
    Probed,
    /// qed without the no-probe flag (`VIR_STORAGE_FILE_AUTO_SAFE`): probed
    /// and followed, never refused for this.
    ProbedSafe,
    /// libvirt reads no backing name from this format (vpc, vhdx, vdi, …).
    NotRead,
}

fn libvirt_backing_format(info: &ImageInfo) -> LibvirtBacking {
    match info.format {
        Format::Qcow2 if info.backing_filename_format.is_some() => LibvirtBacking::Recorded,
        Format::Qcow2 | Format::Qcow | Format::Cow | Format::Vmdk => LibvirtBacking::Probed,
        Format::Qed if info.backing_filename_format.is_some() => LibvirtBacking::Recorded,
        Format::Qed => LibvirtBacking::ProbedSafe,
        _ => LibvirtBacking::NotRead,
    }
}

/// What libvirt's own format probe (`virStorageFileProbeFormatFromBuf`:
/// magic numbers at fixed offsets of the first bytes) makes of an image:
/// the format it finds, and whether it then sees a backing name.
fn libvirt_probe(info: &ImageInfo) -> (Format, bool) {
    let f = match info.format {
        f @ (Format::Qcow2
        | Format::Qcow
        | Format::Cow
        | Format::Qed
        | Format::Vdi
        | Format::Iso
        | Format::Parallels) => f,
        // "KDMV" at 0: a hosted sparse extent (a text descriptor or COWD
        // has no magic libvirt knows).
        Format::Vmdk if info.vmdk_grain_directory_offset().is_some() => Format::Vmdk,
        // "conectix" at 0: dynamic and differencing disks keep a footer
        // copy there; a fixed disk has its footer at the end only.
        Format::Vpc if info.vpc_footer_offset() == Some(0) => Format::Vpc,
        _ => Format::Raw,
    };
    let sees_backing = matches!(
        f,
        Format::Qcow2 | Format::Qcow | Format::Cow | Format::Qed | Format::Vmdk
    ) && info.backing_filename.is_some();
    (f, sees_backing)
}

/// The diagnostic for a backing whose format the image does not record.
fn unrecorded_format(
    f: &str,
    info: &ImageInfo,
    binfo: &ImageInfo,
    name: &str,
    how: LibvirtBacking,
    fix: impl Fn() -> String,
) -> Diagnostic {
    let detected = binfo.format;
    let (probed, has_backing) = libvirt_probe(binfo);
    // Only qcow2 can record a backing format (`qemu-img rebase -F`).
    let can_record = info.format == Format::Qcow2;
    let why = match info.format {
        Format::Vmdk => format!("'{f}' is a vmdk, which never records its backing's format"),
        Format::Qcow | Format::Cow => format!(
            "'{f}' is a {} image, which cannot record its backing's format",
            info.format
        ),
        _ => format!("'{f}' does not record the format of its backing image '{name}'"),
    };
    let xml_way = "or give libvirt the whole chain in the domain XML (the XML this tool writes records every layer's format in <backingStore>; libvirt uses a given chain as is)";
    let d = if how == LibvirtBacking::ProbedSafe {
        let sev = if probed == detected {
            Severity::Info
        } else {
            Severity::Warning
        };
        Diagnostic::new(
            sev,
            Code::BackingFormatNotRecorded,
            format!(
                "{why}: qed without the no-probe flag lets libvirt probe it (AUTO_SAFE) — libvirt finds {probed}{} and follows its chain, never refusing it for this",
                if probed != detected {
                    format!(" although it is {detected}: the guest would see the {detected} metadata as data")
                } else {
                    String::new()
                }
            ),
        )
    } else if has_backing {
        Diagnostic::error(
            Code::BackingFormatNotRecorded,
            format!(
                "{why}, and that image ({probed}) has a backing file of its own: libvirt 6.1 and later refuses to start the VM (\"format of backing image '{name}' of image '{f}' was not specified in the image metadata\"); libvirt 6.0 and earlier used it as raw. Fix: {}{xml_way}",
                if can_record { "record the format (the command), " } else { "" }
            ),
        )
    } else if probed != Format::Raw {
        Diagnostic::warning(
            Code::BackingFormatNotRecorded,
            format!(
                "{why}: libvirt 6.1 and later probes it, finds {probed} with no backing of its own and uses it (the VM starts); libvirt 6.0 and earlier used it as raw. Probing is what the format field exists to avoid: a guest that can write to a raw image could make it look like {probed}"
            ),
        )
    } else if detected != Format::Raw {
        Diagnostic::warning(
            Code::BackingFormatNotRecorded,
            format!(
                "{why}: libvirt probes it and, not knowing {detected} by its first bytes, uses it as raw: the guest sees the {detected} metadata as data"
            ),
        )
    } else {
        Diagnostic::info(
            Code::BackingFormatNotRecorded,
            format!("{why} (raw, as libvirt probes it); recording it avoids format probing"),
        )
    };
    if can_record {
        d.with_fix(fix())
    } else {
        d
    }
}

/// A short human description of a non-file source.
fn describe(s: &StorageSource) -> String {
    let host = s.hosts.first().map(|h| match (&h.name, h.port, &h.socket) {
        (_, _, Some(sock)) => format!("unix:{sock}"),
        (Some(n), Some(p), _) => format!("{n}:{p}"),
        (Some(n), None, _) => n.clone(),
        _ => String::new(),
    });
    let what = s.name.as_deref().or(s.path.as_deref()).unwrap_or("");
    match host {
        Some(h) if !h.is_empty() => format!("{h} {what}"),
        _ => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{codes, img};
    use super::super::*;
    use crate::diag::{Code, Severity};
    #[test]
    fn format_diagnostics() {
        let mut top = img("/v/top", Some("mid"));
        let mut mid = img("/v/mid", Some("base"));
        let base = Image {
            filename: "/v/base".into(),
            probe: Probed::Info(Box::new(ImageInfo::new(Format::Raw))),
            bytes_read: 0,
        };
        if let Probed::Info(i) = &mut top.probe {
            i.backing_filename_format = None;
        }
        if let Probed::Info(i) = &mut mid.probe {
            i.backing_filename_format = Some("foo".into());
        }
        let f = build(vec![top, mid, base]);
        let c = &f.chains[0];
        let nr = c
            .diagnostics
            .iter()
            .find(|d| d.code == Code::BackingFormatNotRecorded)
            .unwrap();
        assert_eq!(nr.severity, Severity::Error);
        assert_eq!(
            nr.fix.as_deref(),
            Some("qemu-img rebase -u -f qcow2 -F qcow2 -b mid /v/top")
        );
        assert!(codes(c).contains(&Code::BackingFormatUnknown));
    }

    #[test]
    fn image_notes_are_repeated_in_every_chain_through_it() {
        let mut base = img("/v/base", None);
        if let Probed::Info(i) = &mut base.probe {
            i.diagnostics.push(Diagnostic::warning(
                Code::Qcow2Dirty,
                "the dirty bit is set",
            ));
            i.diagnostics
                .push(Diagnostic::info(Code::Encrypted, "needs a secret"));
            i.diagnostics
                .push(Diagnostic::info(Code::NoHeader, "not repeated"));
        }
        let f = build(vec![
            base,
            img("/v/t1", Some("base")),
            img("/v/t2", Some("base")),
        ]);
        assert_eq!(f.chains.len(), 2);
        for c in &f.chains {
            let d: Vec<&Diagnostic> = c.diagnostics.iter().collect();
            assert!(d
                .iter()
                .any(|d| d.code == Code::Qcow2Dirty && d.message.starts_with("'/v/base'")));
            assert!(d.iter().any(|d| d.code == Code::Encrypted));
            assert!(!d.iter().any(|d| d.code == Code::NoHeader));
            // The copies say so (a page shows them once, with the image);
            // what the chain itself says does not.
            for x in &d {
                let copied = matches!(x.code, Code::Qcow2Dirty | Code::Encrypted);
                assert_eq!(x.from_probe, copied, "{x:?}");
                assert_eq!(x.image, copied.then_some(0).or(x.image), "{x:?}");
            }
        }
        // Every chain diagnostic says which of its layers it is about.
        for c in &f.chains {
            for x in &c.diagnostics {
                assert!(x.image.is_some_and(|i| c.layers.contains(&i)), "{x:?}");
            }
        }
    }

    #[test]
    fn raw_recorded_backing_is_not_followed() {
        // A guest wrote a qcow2 header naming /etc/shadow into its raw disk.
        let mut top = img("/v/top", Some("disk.raw"));
        if let Probed::Info(i) = &mut top.probe {
            i.backing_filename_format = Some("raw".into());
        }
        let evil = img("/v/disk.raw", Some("/etc/shadow"));
        let shadow = img("/etc/shadow", None);
        let f = build(vec![top, evil, shadow]);
        let c = f.chains.iter().find(|c| c.top == 0).unwrap();
        assert_eq!(c.layers, vec![0, 1]);
        assert_eq!(c.status, Status::Ok);
        assert!(codes(c).contains(&Code::BackingFormatMismatch));
        assert!(codes(c).contains(&Code::BackingNotFollowed));
        assert_eq!(f.layer_format(c, 1).as_deref(), Some("raw"));
        assert_eq!(f.layer_format(c, 0).as_deref(), Some("qcow2"));
    }

    #[test]
    fn untrusted_names_flagged_only_when_asked() {
        let images = vec![
            img("t1", Some("/etc/shadow")),
            img("t2", Some("../../x")),
            img(
                "t3",
                Some("json:{\"driver\":\"file\",\"filename\":\"/dev/sda\"}"),
            ),
            img("t4", Some("/var/lib/libvirt/images/ok.qcow2")),
        ];
        let f = build(images.clone());
        assert!(!f
            .chains
            .iter()
            .any(|c| codes(c).contains(&Code::UntrustedBackingName)));
        let f = build_with(
            images,
            &BuildOptions {
                untrusted: true,
                ..Default::default()
            },
        );
        let flagged: Vec<usize> = (0..4)
            .filter(|&i| {
                f.link_diagnostics(i)
                    .iter()
                    .any(|d| d.code == Code::UntrustedBackingName)
            })
            .collect();
        assert_eq!(flagged, vec![0, 1, 2]);
    }
}
