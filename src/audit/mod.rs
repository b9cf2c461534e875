//! The image-store audit: a whole images folder and every VM's domain XML
//! in, "what uses what, and can I delete or commit this?" out.
//!
//! Input: the probed images (as for [`chain::build_with`]) with what the
//! caller knows of each file ([`FileFacts`]: its size, an identity such as
//! device and inode), any number of domain XML inputs ([`DomainText`]; one
//! input may hold several documents), and [`AuditOptions`]. Output:
//! [`Audit`], one model for the page, the element and the CLI:
//!
//! * per image ([`ImageEntry`]): format, virtual and file size, its
//!   **users** (VM disks whose chain holds it, at which depth), its
//!   **dependents** (every overlay above it, transitively), its place in
//!   each chain of the forest, a [`Role`], whether it is broken, and the
//!   verdicts: [`DeleteVerdict`] and, when it has a backing among the
//!   images, [`CommitPlan`] (commit into the backing) — with the
//!   shared-base hazard, the VM disks whose XML must change and the
//!   commands; every image with a backing also gets a flatten plan;
//! * per VM ([`Vm`]): its disks, their chains, total file size and the files
//!   it alone uses;
//! * paths the images or VMs name that were not dropped ([`External`]);
//! * findings about the store as a whole: two disks claiming one image,
//!   duplicates, mixed formats, deep chains, network disks.
//!
//! Nothing here does I/O: whether a path outside the drop exists is the
//! caller's to say ([`AuditOptions::present_outside`],
//! [`AuditOptions::absent_outside`]).
//!
//! # Cost
//!
//! Linear: index maps for names, one iterative depth-first pass over the
//! overlay trees (pre-order numbering: the dependents of an image are a
//! contiguous range of that order, counted without listing; a commit's
//! shared-base hazard is the backing's range less the image's, counted from
//! the sizes), users added once per layer of each VM disk's chain (the
//! output's size). Lists of dependents and of hazard images are capped at
//! [`limits::AUDIT_MAX_LISTED`]; counts are exact; a commit's hazard disks
//! are only counted (the backing's `users` less the image's), so a base
//! under thousands of clones is not listed once per clone. No recursion.
//! One cost is not linear in the worst case: a VM disk whose file is not a
//! chain top (other images stand on it) gets its chain from
//! [`Forest::chain_from`], whose walker is sized by the number of images.
//!
//! The JSON keys (kebab-case) are documented in README.md ("Image-store
//! audit") and are stable.

use std::collections::HashMap;

use serde::Serialize;

use crate::chain::{self, BuildOptions, Forest, Link, Status};
use crate::diag::{shell_quote, Code, Diagnostic, Severity};
use crate::limits;
use crate::source::SourceType;

pub mod domains;
pub mod report;

pub use domains::{DomainError, DomainText};

/// What the caller knows of a file besides its header.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct FileFacts {
    /// The file's size in bytes (what deleting it frees).
    pub size: Option<u64>,
    /// Something equal for two names of the same file (the CLI: device and
    /// inode), to find duplicates.
    pub id: Option<String>,
}

/// How to audit.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct AuditOptions {
    /// How to build the forest (the CLI: exact paths).
    pub build: BuildOptions,
    /// A chain deeper than this is flagged `deep-chain` (a warning).
    pub deep_chain: usize,
    /// Paths outside the drop known to exist (the CLI stats them): a
    /// backing or VM disk there is "outside the drop", not missing.
    pub present_outside: Vec<String>,
    /// Paths outside the drop known not to exist (the CLI): a VM disk there
    /// is broken (`disk-file-missing`).
    pub absent_outside: Vec<String>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            build: BuildOptions::default(),
            deep_chain: limits::AUDIT_DEEP_CHAIN,
            present_outside: Vec::new(),
            absent_outside: Vec::new(),
        }
    }
}

/// What an image is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The top of a VM disk.
    InUse,
    /// A layer (not the top) of a VM disk's chain.
    Layer,
    /// No VM uses it and nothing stands on it.
    OrphanTop,
    /// No VM uses it; only unused images stand on it; it has no backing.
    UnusedBase,
    /// No VM uses it; only unused images stand on it; it has a backing.
    UnusedLayer,
}

/// A VM disk that uses an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Index into [`Audit::vms`].
    pub vm: usize,
    /// The VM's name.
    pub name: String,
    /// The disk's target dev (`vda`), else its alias, else `diskN`.
    pub disk: String,
    /// Depth of the image in that disk's chain (0: the disk's own file).
    pub depth: usize,
}

/// Where an image sits in one chain of the forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChainPlace {
    /// The chain's top (image index).
    pub top: usize,
    /// 0: the top.
    pub depth: usize,
}

/// Why an image is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Broken {
    /// The chain status the problem gives (`missing`, `loop`, `unprobed-format`, …).
    pub status: Status,
    pub message: String,
}

/// Can I delete this image?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deletable {
    /// Nothing among the images and domains given depends on it.
    Safe,
    /// It is the file of a VM disk (no other image stands on it).
    InUse,
    /// Other images (and perhaps VM disks) would lose their backing.
    BreaksOthers,
}

/// The "can I delete X?" verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeleteVerdict {
    pub verdict: Deletable,
    pub reasons: Vec<String>,
    /// Images that would lose a layer (the dependents; capped list).
    pub breaks_images: Vec<usize>,
    /// VM disks that would break (every user).
    pub breaks_disks: Vec<User>,
}

/// The plan for committing an image into its backing (`qemu-img commit`,
/// `virsh blockcommit`), or for flattening the chain above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitPlan {
    /// The image that receives the data (the backing for a commit, the
    /// image itself for a flatten).
    pub into: usize,
    /// The shared-base hazard: other images standing on the backing (not
    /// through this one) whose content would change under them (capped).
    pub hazard_images: Vec<usize>,
    /// How many, exactly.
    pub hazard_count: usize,
    /// How many VM disks use the backing not through this image: their
    /// guest would see its disk change. They are the backing's `users`
    /// less this image's (not listed again: a base under thousands of
    /// clones would list its users once per clone).
    pub hazard_disks_count: usize,
    /// VM disks whose XML must change afterwards (their chain loses this
    /// layer; a disk whose file this is gets the backing as its file).
    pub xml_changes: Vec<User>,
    /// Commands for running VMs (`virsh`), one per VM disk using the image.
    pub running: Vec<String>,
    /// Commands with every VM using the chain shut off (`qemu-img`).
    pub offline: Vec<String>,
    /// What to check first.
    pub check_first: String,
}

/// One image of the drop.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageEntry {
    pub index: usize,
    pub filename: String,
    /// The detected format (`None`: the header could not be read).
    pub format: Option<String>,
    pub virtual_size: Option<u64>,
    pub file_size: Option<u64>,
    /// The backing among the images, if any.
    pub backing: Option<usize>,
    /// The backing path when it is not among the images (outside the drop
    /// or missing).
    pub backing_outside: Option<String>,
    pub role: Role,
    /// Set when the image itself, or its link to its backing, is broken.
    pub broken: Option<Broken>,
    pub users: Vec<User>,
    /// Direct overlays.
    pub overlays: Vec<usize>,
    /// Every image above it, transitively (capped list; exact count).
    pub dependents: Vec<usize>,
    pub dependents_count: usize,
    /// Its place in every chain of the forest that holds it.
    pub chains: Vec<ChainPlace>,
    pub delete: DeleteVerdict,
    /// Commit into the backing (only with a backing among the images).
    pub commit: Option<CommitPlan>,
    /// Flatten: pull every layer below into this image (only with a backing).
    pub flatten: Option<CommitPlan>,
    /// What the chain builder noticed about the image and its link.
    pub diagnostics: Vec<Diagnostic>,
}

/// A disk of a VM.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VmDisk {
    /// Target dev, else alias, else `diskN`.
    pub name: String,
    /// `type` (file, block, network, …) and `device` (disk, cdrom, …).
    pub disk_type: Option<String>,
    pub device: Option<String>,
    /// The source path (file/block/dir) or `protocol:name` (network).
    pub source: Option<String>,
    pub network: bool,
    /// The image that is the disk's file, when dropped.
    pub image: Option<usize>,
    /// The chain from the images: top first (empty when not dropped).
    pub chain: Vec<usize>,
    /// The chain's status (`None` when the disk is not among the images).
    pub status: Option<Status>,
    /// `<backingStore>` layers the XML itself gives.
    pub xml_layers: usize,
    pub readonly: bool,
    pub shareable: bool,
    /// The `<disk>` with the chain the images give, when the XML should
    /// change (it gives another chain, or none while libvirt would probe
    /// an unrecorded backing format).
    pub new_xml: Option<String>,
    /// Where the chain leaves the drop at a file the caller says exists
    /// (the CLI stats it): the chain is not broken there, only not audited
    /// further (its `status` is still `missing`: the forest did not see it).
    pub ends_outside: Option<String>,
}

/// A VM (one domain document).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Vm {
    pub name: String,
    /// The input it came from (its label) and its byte range there.
    pub input: String,
    pub start: usize,
    pub end: usize,
    pub disks: Vec<VmDisk>,
    /// Sum of the file sizes of every image its chains hold (each once).
    pub total_file_size: u64,
    /// Images only this VM uses, with nothing unused standing on them:
    /// what deleting the VM with its storage frees without touching
    /// anything shared.
    pub exclusive: Vec<usize>,
    pub exclusive_file_size: u64,
}

/// A path named by an image or a VM disk that is not among the images.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct External {
    pub path: String,
    /// `outside-drop` (exists or unknown), `missing` (known not to exist).
    pub state: ExternalState,
    /// Images naming it as their backing.
    pub backing_of: Vec<usize>,
    /// VM disks using it as their file.
    pub disks: Vec<User>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalState {
    /// Not dropped: it may exist (the caller said it does, or cannot tell).
    OutsideDrop,
    /// Known not to exist.
    Missing,
}

/// Counts for a summary line.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    pub images: usize,
    pub vms: usize,
    pub in_use: usize,
    pub layers: usize,
    pub orphan_tops: usize,
    pub unused_bases: usize,
    pub unused_layers: usize,
    pub broken: usize,
    pub outside_drop: usize,
    pub missing: usize,
    pub domain_errors: usize,
    /// File bytes of images no VM uses.
    pub unused_file_size: u64,
}

/// The audit of a store.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Audit {
    pub summary: Summary,
    pub images: Vec<ImageEntry>,
    pub vms: Vec<Vm>,
    pub external: Vec<External>,
    pub domain_errors: Vec<DomainError>,
    /// About the store as a whole (shared disks, duplicates, mixed formats,
    /// deep chains, network disks, disks outside the drop) and every chain
    /// diagnostic with a fix, once.
    pub findings: Vec<Diagnostic>,
    /// The forest the audit was made from (not serialised).
    #[serde(skip)]
    pub forest: Forest,
}

impl Audit {
    /// Is anything broken (exit 1 for the CLI)? A broken image, a VM disk
    /// whose chain is not ok, a missing file, a domain that could not be read.
    pub fn is_broken(&self) -> bool {
        self.summary.broken > 0
            || self.summary.missing > 0
            || self.summary.domain_errors > 0
            || self.vms.iter().flat_map(|v| &v.disks).any(|d| {
                d.status.is_some_and(|s| {
                    s != Status::Ok
                        && s != Status::Remote
                        && !(s == Status::Missing && d.ends_outside.is_some())
                })
            })
    }
}

const CHECK_FIRST: &str = "check first: only the headers and the domains given were read — a VM not given, a running block job or a snapshot libvirt tracks can still use these files; shut the VMs down (or use the virsh commands on running ones), run `qemu-img check` on each image and keep a backup";

/// Audit a store.
pub fn audit(
    images: Vec<chain::Image>,
    facts: &[FileFacts],
    domains: &[DomainText],
    opts: &AuditOptions,
) -> Audit {
    let forest = chain::build_with(images, &opts.build);
    let n = forest.images.len();
    let (docs, domain_errors) = domains::read_all(domains);
    let mut findings: Vec<Diagnostic> = Vec::new();
    for e in &domain_errors {
        findings.push(Diagnostic::error(
            Code::DomainNotWellFormed,
            format!(
                "{}: line {}, column {} (byte {}): {}; the other domains were read",
                e.input, e.line, e.column, e.position, e.message
            ),
        ));
    }

    // ---- Names: exact paths, then relative drop names by path suffix ----
    // Sets as maps of the kinds the crate already uses (a smaller wasm).
    let present: HashMap<&str, usize> = opts
        .present_outside
        .iter()
        .enumerate()
        .map(|(k, p)| (p.as_str(), k))
        .collect();
    let absent: HashMap<&str, usize> = opts
        .absent_outside
        .iter()
        .enumerate()
        .map(|(k, p)| (p.as_str(), k))
        .collect();
    // Normalised name → first image; `same_name[i]`: the next image with
    // the same normalised name.
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(n);
    let mut same_name: Vec<Option<usize>> = vec![None; n];
    let mut last_of: Vec<usize> = (0..n).collect();
    for (i, im) in forest.images.iter().enumerate() {
        match by_name.entry(chain::normalize(&im.filename)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let first = *e.get();
                same_name[last_of[first]] = Some(i);
                last_of[first] = i;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }

    // ---- Pre-order over the overlay trees (iterative) ----
    let tour = Tour::new(&forest);

    // ---- VMs and their disks ----
    let mut vms: Vec<Vm> = Vec::with_capacity(docs.len());
    let mut users: Vec<Vec<User>> = vec![Vec::new(); n];
    let mut ext: HashMap<String, usize> = HashMap::new();
    let mut external: Vec<External> = Vec::new();
    // image → (vm, disk) claiming it as its file
    let mut claims: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (di, doc) in docs.iter().enumerate() {
        let vm_name = doc
            .name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{}#{}", domains[doc.input].label, di));
        let vi = vms.len();
        let mut disks = Vec::with_capacity(doc.disks.len());
        for (k, d) in doc.disks.iter().enumerate() {
            let src = d.info.source.as_ref();
            let network = src.is_some_and(|s| s.kind == SourceType::Network);
            // A path (file, block, dir), `protocol:name` (network), `pool/volume`
            // (volume), the PCI address (nvme), else the socket (vhost-user).
            let source = src
                .and_then(|s| match s.kind {
                    SourceType::File | SourceType::Block | SourceType::Dir => s.path.clone(),
                    SourceType::Network => Some(format!(
                        "{}:{}",
                        s.protocol.as_deref().unwrap_or("network"),
                        s.name.as_deref().unwrap_or("")
                    )),
                    SourceType::Volume => Some(format!(
                        "{}/{}",
                        s.extra("pool").unwrap_or(""),
                        s.extra("volume").unwrap_or("")
                    )),
                    SourceType::Nvme => s.extra("pci").map(str::to_string),
                })
                .or_else(|| d.info.other_source.clone());
            let mut disk = VmDisk {
                name: d.name.clone(),
                disk_type: d.info.disk_type.clone(),
                device: d.info.device.clone(),
                source: source.clone(),
                network,
                image: None,
                chain: Vec::new(),
                status: None,
                xml_layers: d.layers.iter().filter(|l| l.kind.is_some()).count(),
                readonly: d.info.readonly,
                shareable: d.info.shareable,
                new_xml: None,
                ends_outside: None,
            };
            let user = |depth| User {
                vm: vi,
                name: vm_name.clone(),
                disk: d.name.clone(),
                depth,
            };
            if network {
                findings.push(Diagnostic::info(
                    Code::NetworkDisk,
                    format!(
                        "VM '{vm_name}' disk '{}' is a network disk ({}): not matched to dropped images",
                        d.name,
                        source.as_deref().unwrap_or("?")
                    ),
                ));
            } else if let Some(path) = src
                .filter(|s| matches!(s.kind, SourceType::File | SourceType::Block))
                .and_then(|s| s.path.as_deref())
            {
                match find_image(&by_name, &same_name, path) {
                    Found::One(i) => {
                        disk.image = Some(i);
                        claims[i].push((vi, k));
                        let ch = forest.chain_from(i);
                        for (depth, &l) in ch.layers.iter().enumerate() {
                            users[l].push(user(depth));
                        }
                        disk.status = Some(ch.status);
                        if let Some(Link::Missing { resolved }) =
                            ch.layers.last().and_then(|&l| forest.links.get(l))
                        {
                            let p = chain::normalize(resolved);
                            if present.contains_key(p.as_str()) {
                                disk.ends_outside = Some(p);
                            }
                        }
                        disk.new_xml = new_disk_xml(doc, domains, k, &ch, &forest);
                        disk.chain = ch.layers;
                    }
                    Found::Many(c) => {
                        findings.push(Diagnostic::warning(
                            Code::DiskAmbiguous,
                            format!(
                                "VM '{vm_name}' disk '{}': '{path}' fits {} dropped images equally well ({}); not matched",
                                d.name,
                                c.len(),
                                c.iter().map(|&i| forest.images[i].filename.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    Found::None => {
                        let missing = absent.contains_key(path);
                        let e = external_entry(&mut ext, &mut external, path, missing);
                        external[e].disks.push(user(0));
                        if missing {
                            findings.push(Diagnostic::error(
                                Code::DiskFileMissing,
                                format!(
                                    "VM '{vm_name}' disk '{}': '{path}' does not exist",
                                    d.name
                                ),
                            ));
                        } else {
                            findings.push(Diagnostic::info(
                                Code::DiskOutsideDrop,
                                format!(
                                    "VM '{vm_name}' disk '{}': '{path}' is not among the images{}",
                                    d.name,
                                    if present.contains_key(path) {
                                        " (it exists outside the drop)"
                                    } else {
                                        ""
                                    }
                                ),
                            ));
                        }
                    }
                }
            }
            disks.push(disk);
        }
        vms.push(Vm {
            name: vm_name,
            input: domains[doc.input].label.clone(),
            start: doc.start,
            end: doc.end,
            disks,
            total_file_size: 0,
            exclusive: Vec::new(),
            exclusive_file_size: 0,
        });
    }

    // Two disks claiming one image as their file.
    for (img, c) in claims.iter().enumerate().filter(|(_, c)| c.len() > 1) {
        let all_shareable = c.iter().all(|&(v, k)| {
            let d = &vms[v].disks[k];
            d.shareable || d.readonly
        });
        let who: Vec<String> = c
            .iter()
            .map(|&(v, k)| format!("'{}' {}", vms[v].name, vms[v].disks[k].name))
            .collect();
        let msg = format!(
            "'{}' is the file of {} disks: {}{}",
            forest.images[img].filename,
            c.len(),
            who.join(", "),
            if all_shareable {
                " (all marked shareable or read-only)"
            } else {
                ": two writers corrupt it unless only one VM runs at a time"
            }
        );
        let d = if all_shareable {
            Diagnostic::info(Code::SharedDisk, msg)
        } else {
            Diagnostic::warning(Code::SharedDisk, msg)
        };
        findings.push(d.at(img));
    }

    // ---- Links outside the drop ----
    let mut backing: Vec<Option<usize>> = vec![None; n];
    let mut backing_outside: Vec<Option<String>> = vec![None; n];
    for (i, l) in forest.links.iter().enumerate() {
        match l {
            Link::Image { index, .. } => backing[i] = Some(*index),
            Link::Missing { resolved } | Link::NotOpened { resolved } => {
                let path = chain::normalize(resolved);
                let known =
                    present.contains_key(path.as_str()) || present.contains_key(resolved.as_str());
                let e = external_entry(&mut ext, &mut external, &path, !known);
                external[e].backing_of.push(i);
                backing_outside[i] = Some(path);
            }
            _ => {}
        }
    }

    // ---- Broken images: their own errors and errors of chains placed on them ----
    let mut broken: Vec<Option<Broken>> = vec![None; n];
    for i in 0..n {
        let outside_ok = backing_outside[i]
            .as_deref()
            .is_some_and(|p| present.contains_key(p));
        if let Some(d) = forest.link_diagnostics(i).iter().find(|d| {
            d.severity == Severity::Error && !(outside_ok && d.code == Code::MissingBacking)
        }) {
            broken[i] = Some(Broken {
                status: chain::status_of(d.code),
                message: d.message.clone(),
            });
        }
    }
    let mut places: Vec<Vec<ChainPlace>> = vec![Vec::new(); n];
    // Each fix once (keyed by code, image and command).
    let mut fixes_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let fix_key = |d: &Diagnostic, i: Option<usize>| {
        format!("{}\0{i:?}\0{}", d.code, d.fix.as_deref().unwrap_or(""))
    };
    for ch in &forest.chains {
        for (depth, &l) in ch.layers.iter().enumerate() {
            places[l].push(ChainPlace { top: ch.top, depth });
        }
        for d in &ch.diagnostics {
            if d.severity == Severity::Error {
                if let Some(i) = d.image.filter(|&i| i < n) {
                    let outside_ok = d.code == Code::MissingBacking
                        && backing_outside[i]
                            .as_deref()
                            .is_some_and(|p| present.contains_key(p));
                    if broken[i].is_none() && !outside_ok {
                        broken[i] = Some(Broken {
                            status: chain::status_of(d.code),
                            message: d.message.clone(),
                        });
                    }
                }
            }
            if d.fix.is_some() && fixes_seen.insert(fix_key(d, d.image)) {
                findings.push(d.clone());
            }
        }
        // Deep chains and mixed formats, once per chain.
        if ch.layers.len() > opts.deep_chain {
            findings.push(
                Diagnostic::warning(
                    Code::DeepChain,
                    format!(
                        "the chain from '{}' has {} layers (threshold {}; libvirt refuses more than {}): qemu opens every layer, and blockcommit/blockpull take longer the deeper it is",
                        forest.images[ch.top].filename,
                        ch.layers.len(),
                        opts.deep_chain,
                        limits::LIBVIRT_MAX_DEPTH
                    ),
                )
                .at(ch.top),
            );
        }
        if let Some(formats) = mixed_formats(&forest, ch) {
            findings.push(
                Diagnostic::info(
                    Code::MixedFormats,
                    format!(
                        "the chain from '{}' mixes formats: {}",
                        forest.images[ch.top].filename,
                        formats.join(", ")
                    ),
                )
                .at(ch.top),
            );
        }
    }
    for (i, im) in forest.images.iter().enumerate() {
        if let Some(info) = im.info() {
            for d in &info.diagnostics {
                if d.fix.is_some() && fixes_seen.insert(fix_key(d, Some(i))) {
                    findings.push(d.clone().at(i));
                }
            }
        }
    }
    for (i, b) in broken.iter_mut().enumerate() {
        if tour.in_loop[i] && b.is_none() {
            *b = Some(Broken {
                status: Status::Loop,
                message: format!("'{}' is on a backing loop", forest.images[i].filename),
            });
        }
    }

    // ---- Duplicates: the same file or the same recorded id under two names ----
    duplicates(&forest, facts, &mut findings);

    // ---- Roles, unused counts over the pre-order ----
    let role: Vec<Role> = (0..n)
        .map(|i| {
            let used = !users[i].is_empty();
            let top_of_disk = users[i].iter().any(|u| u.depth == 0);
            match (used, top_of_disk) {
                (true, true) => Role::InUse,
                (true, false) => Role::Layer,
                (false, _) if forest.overlays[i].is_empty() => Role::OrphanTop,
                (false, _) if backing[i].is_some() || backing_outside[i].is_some() => {
                    Role::UnusedLayer
                }
                (false, _) => Role::UnusedBase,
            }
        })
        .collect();
    let unused_prefix = tour.prefix(|i| users[i].is_empty());

    let file_size = |i: usize| facts.get(i).and_then(|f| f.size);

    // ---- Per VM: total and exclusive sizes ----
    // The one VM using each image, if only one does (one pass over users).
    let sole_vm: Vec<Option<usize>> = users
        .iter()
        .map(|u| {
            let first = u.first()?.vm;
            u.iter().all(|x| x.vm == first).then_some(first)
        })
        .collect();
    let mut stamp = vec![usize::MAX; n];
    for (vi, vm) in vms.iter_mut().enumerate() {
        let mut total = 0u64;
        for d in &vm.disks {
            for &l in &d.chain {
                if stamp[l] != vi {
                    stamp[l] = vi;
                    total = total.saturating_add(file_size(l).unwrap_or(0));
                    let only_me = sole_vm[l] == Some(vi);
                    let unused_above = tour.count_in_dependents(l, &unused_prefix);
                    if only_me && unused_above == 0 && !tour.in_loop[l] {
                        vm.exclusive.push(l);
                    }
                }
            }
        }
        vm.total_file_size = total;
        vm.exclusive_file_size = vm
            .exclusive
            .iter()
            .map(|&l| file_size(l).unwrap_or(0))
            .fold(0u64, u64::saturating_add);
    }

    // ---- Per image ----
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let img = &forest.images[i];
        let info = img.info();
        let (dependents, dependents_count) = tour.dependents(i);
        let delete = delete_verdict(&forest, i, &users[i], &dependents, dependents_count);
        let commit = backing[i].map(|b| commit_plan(&forest, &tour, &users, &vms, i, b));
        let flatten = (backing[i].is_some() || backing_outside[i].is_some())
            .then(|| flatten_plan(&forest, &users, &vms, i));
        entries.push(ImageEntry {
            index: i,
            filename: img.filename.clone(),
            format: info.map(|i| i.format.name().to_string()),
            virtual_size: info.and_then(|i| i.virtual_size),
            file_size: file_size(i),
            backing: backing[i],
            backing_outside: backing_outside[i].clone(),
            role: role[i],
            broken: broken[i].take(),
            users: users[i].clone(),
            overlays: forest.overlays[i].clone(),
            dependents,
            dependents_count,
            chains: std::mem::take(&mut places[i]),
            delete,
            commit,
            flatten,
            diagnostics: forest.link_diagnostics(i).to_vec(),
        });
    }

    let mut summary = Summary {
        images: n,
        vms: vms.len(),
        domain_errors: domain_errors.len(),
        ..Default::default()
    };
    for e in &entries {
        match e.role {
            Role::InUse => summary.in_use += 1,
            Role::Layer => summary.layers += 1,
            Role::OrphanTop => summary.orphan_tops += 1,
            Role::UnusedBase => summary.unused_bases += 1,
            Role::UnusedLayer => summary.unused_layers += 1,
        }
        if e.broken.is_some() {
            summary.broken += 1;
        }
        if e.users.is_empty() {
            summary.unused_file_size = summary
                .unused_file_size
                .saturating_add(e.file_size.unwrap_or(0));
        }
    }
    for x in &external {
        match x.state {
            ExternalState::OutsideDrop => summary.outside_drop += 1,
            ExternalState::Missing => summary.missing += 1,
        }
    }
    Audit {
        summary,
        images: entries,
        vms,
        external,
        domain_errors,
        findings,
        forest,
    }
}

enum Found {
    One(usize),
    Many(Vec<usize>),
    None,
}

/// The image a disk's path names: the same (normalised) path, else the
/// dropped relative name that is the longest suffix of the path at a `/`.
fn find_image(by_name: &HashMap<String, usize>, same: &[Option<usize>], path: &str) -> Found {
    let norm = chain::normalize(path);
    let pick = |first: usize| match same[first] {
        None => Found::One(first),
        Some(_) => {
            let mut v = vec![first];
            let mut cur = first;
            while let Some(next) = same[cur] {
                v.push(next);
                cur = next;
            }
            Found::Many(v)
        }
    };
    if let Some(&i) = by_name.get(&norm) {
        return pick(i);
    }
    let mut at = 0;
    while let Some(k) = norm[at..].find('/') {
        at += k + 1;
        if let Some(&i) = by_name.get(&norm[at..]) {
            return pick(i);
        }
    }
    Found::None
}

fn external_entry(
    ext: &mut HashMap<String, usize>,
    external: &mut Vec<External>,
    path: &str,
    missing: bool,
) -> usize {
    *ext.entry(path.to_string()).or_insert_with(|| {
        external.push(External {
            path: path.to_string(),
            state: if missing {
                ExternalState::Missing
            } else {
                ExternalState::OutsideDrop
            },
            backing_of: Vec::new(),
            disks: Vec::new(),
        });
        external.len() - 1
    })
}

/// The formats of a chain when they mix (a raw base under others is the
/// usual way and not counted).
fn mixed_formats(forest: &Forest, ch: &chain::Chain) -> Option<Vec<String>> {
    let mut formats: Vec<String> = Vec::new();
    let last = ch.layers.len().saturating_sub(1);
    for (pos, _) in ch.layers.iter().enumerate() {
        let Some(f) = forest.layer_format(ch, pos) else {
            continue;
        };
        if pos == last && pos > 0 && f == "raw" {
            continue;
        }
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    (formats.len() > 1).then_some(formats)
}

fn duplicates(forest: &Forest, facts: &[FileFacts], out: &mut Vec<Diagnostic>) {
    // One map per kind of id (the same file; the same recorded id), then
    // the groups in image order (deterministic, no sort).
    let file_id = |i: usize| facts.get(i).and_then(|f| f.id.as_deref());
    let image_id = |i: usize| {
        forest.images[i]
            .info()
            .and_then(|x| x.identity.as_ref())
            .and_then(|x| x.id.as_deref())
    };
    for kind in 0..2 {
        let id_of = |i: usize| if kind == 0 { file_id(i) } else { image_id(i) };
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for i in 0..forest.images.len() {
            if let Some(id) = id_of(i) {
                groups.entry(id).or_default().push(i);
            }
        }
        for i in 0..forest.images.len() {
            let Some(id) = id_of(i) else { continue };
            let v = &groups[id];
            if v.len() < 2 || v[0] != i {
                continue;
            }
            let names: Vec<&str> = v
                .iter()
                .map(|&i| forest.images[i].filename.as_str())
                .collect();
            let what = if kind == 0 {
                "the same file".to_string()
            } else {
                format!("the same recorded image id {id}")
            };
            out.push(
                Diagnostic::warning(
                    Code::DuplicateImage,
                    format!(
                        "{} names are {what}: {} — deleting one of them through another name's VM or chain deletes it for all",
                        v.len(),
                        names.join(", ")
                    ),
                )
                .at(i),
            );
        }
    }
}

/// Pre-order numbering of the overlay trees: roots are images whose backing
/// is not an image of the set, then one image of each loop.
struct Tour {
    order: Vec<usize>,
    pre: Vec<usize>,
    size: Vec<usize>,
    /// For a loop, the tree's root (the loop's entry point).
    root: Vec<usize>,
    in_loop: Vec<bool>,
}

impl Tour {
    fn new(forest: &Forest) -> Self {
        let n = forest.images.len();
        let mut t = Tour {
            order: Vec::with_capacity(n),
            pre: vec![usize::MAX; n],
            size: vec![0; n],
            root: (0..n).collect(),
            in_loop: vec![false; n],
        };
        let backing = |i: usize| match forest.links[i] {
            Link::Image { index, .. } => Some(index),
            _ => None,
        };
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let mut visit = |r: usize, t: &mut Tour| {
            stack.push((r, 0));
            t.pre[r] = t.order.len();
            t.order.push(r);
            while let Some(top) = stack.last_mut() {
                let (node, k) = *top;
                if let Some(&c) = forest.overlays[node].get(k) {
                    top.1 += 1;
                    if t.pre[c] == usize::MAX {
                        t.pre[c] = t.order.len();
                        t.order.push(c);
                        t.root[c] = r;
                        stack.push((c, 0));
                    }
                } else {
                    stack.pop();
                    t.size[node] = t.order.len() - t.pre[node];
                }
            }
        };
        for i in 0..n {
            if backing(i).is_none() {
                visit(i, &mut t);
            }
        }
        // What is left hangs on loops: walk down to the loop, mark it, and
        // start the tree at the image where the walk came back.
        let mut seen = vec![usize::MAX; n];
        for i in 0..n {
            if t.pre[i] != usize::MAX {
                continue;
            }
            let mut cur = i;
            while seen[cur] != i && t.pre[cur] == usize::MAX {
                seen[cur] = i;
                match backing(cur) {
                    Some(b) => cur = b,
                    None => break,
                }
            }
            if t.pre[cur] != usize::MAX {
                continue; // reached an already numbered tree (cannot happen)
            }
            // `cur` is on the loop: mark the loop.
            let start = cur;
            loop {
                t.in_loop[cur] = true;
                match backing(cur) {
                    Some(b) if b != start => cur = b,
                    _ => break,
                }
            }
            visit(start, &mut t);
        }
        t
    }

    /// Dependents of `i` (capped list, exact count).
    fn dependents(&self, i: usize) -> (Vec<usize>, usize) {
        let (from, to) = self.range(i);
        // The range holds `i` itself (a loop's tree holds every image of it).
        let count = (to - from).saturating_sub(1);
        let list = self.order[from..to]
            .iter()
            .copied()
            .filter(|&x| x != i)
            .take(limits::AUDIT_MAX_LISTED)
            .collect();
        (list, count)
    }

    /// The range of `order` holding `i` and its dependents (for an image
    /// on a loop: the whole tree of the loop).
    fn range(&self, i: usize) -> (usize, usize) {
        let r = if self.in_loop[i] { self.root[i] } else { i };
        let from = self.pre[r];
        (from, from + self.size[r])
    }

    /// Prefix sums over the pre-order of `f`.
    fn prefix(&self, f: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut p = Vec::with_capacity(self.order.len() + 1);
        p.push(0);
        for &i in &self.order {
            p.push(p.last().copied().unwrap_or(0) + usize::from(f(i)));
        }
        p
    }

    /// How many dependents of `i` `prefix` counts (`i` itself excluded).
    fn count_in_dependents(&self, i: usize, prefix: &[usize]) -> usize {
        let (from, to) = self.range(i);
        let all = prefix[to] - prefix[from];
        let own = prefix[self.pre[i] + 1] - prefix[self.pre[i]];
        all - own
    }
}

fn delete_verdict(
    forest: &Forest,
    i: usize,
    users: &[User],
    dependents: &[usize],
    count: usize,
) -> DeleteVerdict {
    let name = &forest.images[i].filename;
    let mut reasons = Vec::new();
    let verdict = if count > 0 {
        reasons.push(format!(
            "{count} image(s) stand on '{name}' directly or through overlays and would lose a layer"
        ));
        if !users.is_empty() {
            reasons.push(format!("{} VM disk(s) have it in their chain", users.len()));
        }
        Deletable::BreaksOthers
    } else if !users.is_empty() {
        reasons.push(format!(
            "it is the file of {} VM disk(s): {}",
            users.len(),
            users
                .iter()
                .map(|u| format!("'{}' {}", u.name, u.disk))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Deletable::InUse
    } else {
        reasons.push(
            "no image among those given stands on it and no domain given uses it (a VM or image not given may still)"
                .into(),
        );
        Deletable::Safe
    };
    DeleteVerdict {
        verdict,
        reasons,
        breaks_images: dependents.to_vec(),
        breaks_disks: users.to_vec(),
    }
}

fn fmt_of(forest: &Forest, i: usize) -> String {
    forest.images[i]
        .info()
        .map_or("raw".to_string(), |x| x.format.name().to_string())
}

/// Commit image `i` into its backing `b`.
fn commit_plan(
    forest: &Forest,
    tour: &Tour,
    users: &[Vec<User>],
    vms: &[Vm],
    i: usize,
    b: usize,
) -> CommitPlan {
    let name = &forest.images[i].filename;
    let bname = &forest.images[b].filename;
    // Everything on `b` that is not `i` or above `i`.
    let (bf, bt) = tour.range(b);
    let (xf, xt) = tour.range(i);
    let mut hazard_images = Vec::new();
    let mut hazard_count = 0;
    if !tour.in_loop[b] {
        // `b`'s range is `b`, then its dependents; `i`'s subtree is a
        // sub-range of it: the rest is the hazard. Counted from the sizes,
        // listed up to the cap (never a walk over `i`'s subtree: a deep
        // chain would make that quadratic).
        hazard_count = (bt - bf) - 1 - (xt - xf);
        let rest = (bf + 1..xf).chain(xt..bt);
        hazard_images.extend(rest.take(limits::AUDIT_MAX_LISTED).map(|p| tour.order[p]));
    }
    // Every user of `i` is a user of `b` (the same disk, one deeper).
    let hazard_disks_count = users[b].len().saturating_sub(users[i].len());
    let mut running = Vec::new();
    for u in &users[i] {
        let dom = shell_quote(&vms[u.vm].name);
        let dev = shell_quote(&u.disk);
        if u.depth == 0 {
            running.push(format!(
                "virsh blockcommit {dom} {dev} --active --base {} --pivot --verbose --wait",
                shell_quote(bname)
            ));
        } else {
            running.push(format!(
                "virsh blockcommit {dom} {dev} --top {} --base {} --verbose --wait",
                shell_quote(name),
                shell_quote(bname)
            ));
        }
    }
    let mut offline = vec![format!(
        "qemu-img commit -f {} -d {}",
        shell_quote(&fmt_of(forest, i)),
        shell_quote(name)
    )];
    for &o in &forest.overlays[i] {
        offline.push(crate::diag::rebase_fix(
            &fmt_of(forest, o),
            &fmt_of(forest, b),
            bname,
            &forest.images[o].filename,
        ));
    }
    let mut check_first = String::from(CHECK_FIRST);
    if hazard_count > 0 || hazard_disks_count > 0 {
        check_first = format!(
            "DO NOT commit while other chains stand on '{bname}': {hazard_count} other image(s) and {hazard_disks_count} VM disk(s) use it not through '{name}' and would see its content change (corruption). {check_first}"
        );
    }
    CommitPlan {
        into: b,
        hazard_images,
        hazard_count,
        hazard_disks_count,
        xml_changes: users[i].clone(),
        running,
        offline,
        check_first,
    }
}

/// Flatten: pull every layer below image `i` into it.
fn flatten_plan(forest: &Forest, users: &[Vec<User>], vms: &[Vm], i: usize) -> CommitPlan {
    let name = &forest.images[i].filename;
    let running = users[i]
        .iter()
        .filter(|u| u.depth == 0)
        .map(|u| {
            format!(
                "virsh blockpull {} {} --verbose --wait",
                shell_quote(&vms[u.vm].name),
                shell_quote(&u.disk)
            )
        })
        .collect();
    let fmt = fmt_of(forest, i);
    CommitPlan {
        into: i,
        hazard_images: Vec::new(),
        hazard_count: 0,
        hazard_disks_count: 0,
        xml_changes: users[i].iter().filter(|u| u.depth == 0).cloned().collect(),
        running,
        // Safe-mode rebase onto nothing: copies every backing cluster into
        // the image (needs up to its virtual size in free space).
        offline: vec![format!(
            "qemu-img rebase -f {} -b '' {}",
            shell_quote(&fmt),
            shell_quote(name)
        )],
        check_first: format!(
            "the backings are not changed (no shared-base hazard); '{name}' grows by what it pulls in, up to its virtual size. {CHECK_FIRST}"
        ),
    }
}

/// The `<disk>` of document `doc`'s disk `k` with the chain the images give,
/// when the XML should change: it gives a chain that differs from the
/// images, or none while the images' chain has a backing whose format
/// libvirt would have to probe.
fn new_disk_xml(
    doc: &domains::DomainDoc,
    domains: &[DomainText],
    k: usize,
    ch: &chain::Chain,
    forest: &Forest,
) -> Option<String> {
    let has_chain = !doc.disks.get(k)?.layers.is_empty();
    let opts = crate::xml::Options {
        no_index: true,
        mode: if has_chain {
            crate::xml::Mode::Validate
        } else {
            crate::xml::Mode::Populate
        },
        replace: has_chain,
        ..Default::default()
    };
    let needs = if has_chain {
        true
    } else {
        ch.layers.len() > 1
            && ch
                .diagnostics
                .iter()
                .any(|d| d.code == Code::BackingFormatNotRecorded)
    };
    if !needs {
        return None;
    }
    let text = domains.get(doc.input)?.text.get(doc.start..doc.end)?;
    let d = crate::xml::read::document(text).ok()?;
    let node = d.disks.get(k)?;
    let (s, e) = node.elem.span();
    let disk = text.get(s..e)?;
    let out = crate::xml::populate(disk, forest, &opts).ok()?;
    if has_chain && !out.mismatch {
        return None;
    }
    // The element as it would stand alone: its lines lose the indentation
    // the disk had in its document (the first line never had it).
    let mut xml = String::with_capacity(out.xml.len());
    for (n, line) in out.xml.split_inclusive('\n').enumerate() {
        let line = if n > 0 {
            line.strip_prefix(node.indent.as_str()).unwrap_or(line)
        } else {
            line
        };
        xml.push_str(line);
    }
    Some(xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::testing::img;

    fn dom(name: &str, disks: &[(&str, &str)]) -> String {
        let mut s = format!("<domain type='kvm'><name>{name}</name><devices>");
        for (dev, file) in disks {
            s.push_str(&format!(
                "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{file}'/><target dev='{dev}' bus='virtio'/></disk>"
            ));
        }
        s.push_str("</devices></domain>\n");
        s
    }

    #[test]
    fn roles_users_verdicts() {
        let d = "/var/lib/libvirt/images";
        let images = vec![
            img(&format!("{d}/base.qcow2"), None),
            img(&format!("{d}/a.qcow2"), Some("base.qcow2")),
            img(&format!("{d}/b.qcow2"), Some("base.qcow2")),
            img(&format!("{d}/orphan.qcow2"), Some("base2.qcow2")),
            img(&format!("{d}/base2.qcow2"), None),
            img(&format!("{d}/lone.qcow2"), None),
        ];
        let text = dom("va", &[("vda", &format!("{d}/a.qcow2"))])
            + &dom("vb", &[("vda", &format!("{d}/b.qcow2"))]);
        let a = audit(
            images,
            &[],
            &[DomainText {
                label: "x".into(),
                text,
            }],
            &AuditOptions::default(),
        );
        let r: Vec<Role> = a.images.iter().map(|e| e.role).collect();
        assert_eq!(
            r,
            [
                Role::Layer,
                Role::InUse,
                Role::InUse,
                Role::OrphanTop,
                Role::UnusedBase,
                Role::OrphanTop
            ]
        );
        assert_eq!(a.images[0].users.len(), 2);
        assert_eq!(a.images[0].dependents_count, 2);
        assert_eq!(a.images[0].delete.verdict, Deletable::BreaksOthers);
        assert_eq!(a.images[5].delete.verdict, Deletable::Safe);
        assert_eq!(a.images[1].delete.verdict, Deletable::InUse);
        let c = a.images[1].commit.as_ref().unwrap();
        assert_eq!(c.hazard_images, [2]);
        assert_eq!(c.hazard_disks_count, 1);
        assert_eq!(a.vms[0].exclusive, [1]);
    }

    #[test]
    fn a_loop_is_broken_and_numbered() {
        let images = vec![
            img("/i/x.qcow2", Some("y.qcow2")),
            img("/i/y.qcow2", Some("x.qcow2")),
            img("/i/z.qcow2", Some("x.qcow2")),
        ];
        let a = audit(images, &[], &[], &AuditOptions::default());
        assert!(a.images[0].broken.is_some() && a.images[1].broken.is_some());
        assert_eq!(a.images[0].dependents_count, 2);
        assert_eq!(a.images[2].dependents_count, 0);
    }
}
