//! backing-chain CLI: a thin adapter over the core. clap parses the
//! command line (help, version, completions, usage errors); each subcommand
//! reads files, calls the core's probes and builders, prints text or JSON.
//!
//! Exit codes: 0 fine; 1 a chain or validation has an error diagnostic;
//! 2 usage or unreadable input.

use std::fs::File;
use std::io::{Read, Write};
#[cfg(not(unix))]
use std::io::{Seek, SeekFrom};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use backing_chain::chain::{self, BuildOptions, Image, Probed, Status};
use backing_chain::diag::{Code, Diagnostic, Severity};
use backing_chain::image;
use backing_chain::meta;
use backing_chain::xml::{self, Layout, Options};

/// The command line: clap parses it (help, version, errors that name the
/// flag, exit 2 on a usage error), each subcommand calls into the core.
#[derive(Parser)]
#[command(
    name = "backing-chain",
    version,
    about = "Read disk image headers, build libvirt backing chains, write <backingStore> XML",
    after_help = "Exit codes: 0 fine, 1 an error diagnostic, 2 usage or unreadable input.",
    arg_required_else_help = true,
    propagate_version = true,
    args_override_self = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read each FILE's header and print its format, size, backing file and diagnostics
    #[command(
        after_help = "Exit codes: 0 fine, 1 a FILE's header is broken or a VMDK extent is \
        missing, 2 usage or unreadable input."
    )]
    Probe {
        /// JSON (keys as `qemu-img info --output=json`) instead of text
        #[arg(long)]
        json: bool,
        /// Image files (any format; raw when no header is found)
        #[arg(value_name = "FILE", required = true)]
        files: Vec<String>,
    },
    /// Follow each TOP's backing files on disk, as `qemu-img info --backing-chain` does
    #[command(
        after_help = "Exit codes: 0 fine, 1 a chain is broken or has an error \
        diagnostic, 2 usage or unreadable input."
    )]
    Chain {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
        /// Images from elsewhere: flag backing names that reach outside the image
        /// directories (/etc/…, .., json:) and never open them
        #[arg(long)]
        untrusted: bool,
        /// Also read each layer's metadata tables and say what it holds (data, zero,
        /// compressed, unallocated bytes; as `map` does)
        #[arg(long)]
        allocation: bool,
        /// The top image of each chain
        #[arg(value_name = "TOP", required = true)]
        tops: Vec<String>,
    },
    /// Write domain XML with each disk's chain as <backingStore> (or bare <disk> elements)
    #[command(
        after_help = "Exit codes: 0 fine, 1 an error diagnostic or (validate) a \
        mismatch, 2 usage or unreadable input."
    )]
    Xml(XmlArgs),
    /// Audit an image store: which VM uses what, what is left over, what is safe to delete
    #[command(after_help = "Exit codes: 0 fine, 1 something is broken, 2 usage or \
        unreadable input.")]
    Audit(AuditArgs),
    /// Which chain layer provides each range (qemu-img map) and how much each layer holds
    #[command(
        after_help = "Metadata tables only. Exit codes: 0 fine, 2 usage or unreadable input."
    )]
    Map(MetaArgs),
    /// The chain flattened into a new qcow2 (qemu-img measure), each layer's commit size
    #[command(
        after_help = "Metadata tables only. Exit codes: 0 fine, 2 usage or unreadable input."
    )]
    Measure(MetaArgs),
    /// Refcounts recomputed from the tables, compared with the stored ones (qemu-img check)
    #[command(
        after_help = "Metadata tables only; nothing is repaired. Exit codes: 0 fine, 1 \
        corruptions or check errors, 2 usage or unreadable input."
    )]
    Check(MetaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "For example, in bash: \
        source <(backing-chain completions bash)")]
    Completions {
        /// The shell to write the script for
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct XmlArgs {
    /// A domain, status, bare <disk> or <volume> XML (a volume becomes a <disk>)
    #[arg(long, value_name = "FILE|-")]
    domain: Option<String>,
    /// nested (libvirt's) or flat (the 2014 RFC's proposal)
    #[arg(long, value_enum, default_value_t = LayoutArg::Nested)]
    layout: LayoutArg,
    /// populate: write the chains; validate: compare each disk's chain with the
    /// images, exit 1 on a mismatch
    #[arg(long, value_enum, default_value_t = ModeArg::Populate, requires_if("validate", "domain"))]
    mode: ModeArg,
    /// With --mode validate: write what the images say into diverging disks
    #[arg(long)]
    replace: bool,
    /// Make relative image names absolute from DIR (default: the directory of
    /// the disk's own <source>)
    #[arg(long, value_name = "DIR")]
    base_dir: Option<String>,
    /// No index='N' attributes (as libvirt's inactive XML)
    #[arg(long)]
    no_index: bool,
    /// Images from elsewhere: flag backing names that reach outside the image
    /// directories (/etc/…, .., json:) and never open them
    #[arg(long)]
    untrusted: bool,
    /// The output of `qemu-img info --backing-chain --output=json`, used instead
    /// of (or with) reading IMAGE headers
    #[arg(long, value_name = "FILE|-")]
    qemu_img_json: Vec<String>,
    /// Images whose chains are followed on disk (the tops and their backing files)
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
}

/// `map`, `measure` and `check` take the same arguments.
#[derive(clap::Args)]
struct MetaArgs {
    /// JSON (keys as qemu-img's --output=json) instead of text
    #[arg(long)]
    json: bool,
    /// Images (map and measure follow each one's backing chain on disk)
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Nested,
    Flat,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Populate,
    Validate,
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Domain XML; each file may hold several <domain> documents (repeatable)
    #[arg(long, value_name = "FILE|-")]
    domain: Vec<String>,
    /// JSON instead of text
    #[arg(long, overrides_with_all = ["csv", "script"])]
    json: bool,
    /// CSV, one row per image
    #[arg(long, overrides_with_all = ["json", "script"])]
    csv: bool,
    /// The fix script (sh; -n or DRY_RUN=1 for a dry run)
    #[arg(long, overrides_with_all = ["json", "csv"])]
    script: bool,
    /// Flag chains deeper than N layers
    #[arg(long, value_name = "N", default_value_t = backing_chain::limits::AUDIT_DEEP_CHAIN)]
    deep_chain: usize,
    /// Images or directories (walked recursively; *.xml found there is domain
    /// XML, *.json is skipped)
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("backing-chain: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cmd: Command) -> Result<ExitCode, String> {
    match cmd {
        Command::Probe { json, files } => cmd_probe(&files, json),
        Command::Chain {
            json,
            untrusted,
            allocation,
            tops,
        } => cmd_chain(&tops, json, untrusted, allocation),
        Command::Xml(a) => cmd_xml(&a),
        Command::Audit(a) => audit_cli::cmd_audit(&a),
        Command::Map(a) => meta_cmds::run("map", &a.images, a.json),
        Command::Measure(a) => meta_cmds::run("measure", &a.images, a.json),
        Command::Check(a) => meta_cmds::run("check", &a.images, a.json),
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            out.write_all(completions(shell).as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("stdout: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The completion script for `shell`.
///
/// clap_complete's bash script never completes a subcommand's options when
/// the program's name has a hyphen (its dispatch loop and its case labels
/// escape the name differently: clap-rs/clap issue 6421, open). So the bash
/// script is made for `backing_chain`, where both agree, and its `complete`
/// lines are then bound to `backing-chain`.
fn completions(shell: clap_complete::Shell) -> String {
    const NAME: &str = "backing-chain";
    const BASH_NAME: &str = "backing_chain";
    let bash = shell == clap_complete::Shell::Bash;
    let mut out = Vec::new();
    let name = if bash { BASH_NAME } else { NAME };
    clap_complete::generate(shell, &mut Cli::command(), name, &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    if !bash {
        return script;
    }
    let suffix = format!(" {BASH_NAME}");
    script
        .lines()
        .map(|l| match l.strip_suffix(&suffix) {
            Some(head) if l.trim_start().starts_with("complete ") => format!("{head} {NAME}\n"),
            _ => format!("{l}\n"),
        })
        .collect()
}

/// Probe one file through the sans-I/O loop with positioned reads.
fn probe_file(path: &str) -> Result<Image, String> {
    let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let len = f.metadata().map_err(|e| format!("{path}: {e}"))?.len();
    probe_open(path, &f, len)
}

/// Probe an open file of `len` bytes with positioned reads (one `pread` per
/// range asked).
fn probe_open(path: &str, f: &File, len: u64) -> Result<Image, String> {
    // Counted here too: a probe that fails still read what it read.
    let counted = std::cell::Cell::new(0u64);
    let read = |off: u64, n: u64| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n as usize];
        let mut got = 0;
        while got < buf.len() {
            match read_at(f, &mut buf[got..], off + got as u64)? {
                0 => break,
                k => got += k,
            }
        }
        buf.truncate(got);
        counted.set(counted.get() + got as u64);
        Ok(buf)
    };
    let probe = image::probe_with(Some(len), read);
    Ok(match probe {
        Ok((info, bytes_read)) => Image {
            filename: path.to_string(),
            probe: Probed::Info(Box::new(info)),
            bytes_read,
        },
        Err(image::ProbeOrIo::Probe(e)) => Image {
            filename: path.to_string(),
            probe: Probed::Error {
                error: e.to_string(),
            },
            bytes_read: counted.get(),
        },
        Err(image::ProbeOrIo::Io(e)) => return Err(format!("{path}: {e}")),
    })
}

/// Add a `missing-extent` error for each VMDK extent file that does not
/// exist. With `untrusted`, a name the core flags is not looked at (the
/// probe's `vmdk-extent-*` diagnostics already say why).
fn check_extents(img: &mut Image, untrusted: bool) {
    let missing: Vec<Diagnostic> = chain::extent_paths(img)
        .into_iter()
        .filter(|(name, _)| !(untrusted && chain::untrusted_reason(name).is_some()))
        .filter(|(_, path)| std::fs::metadata(path).is_err())
        .map(|(name, path)| {
            Diagnostic::error(
                Code::MissingExtent,
                format!("the extent '{name}' of this VMDK (resolved to '{path}') is missing: qemu cannot open the image"),
            )
        })
        .collect();
    if let Probed::Info(info) = &mut img.probe {
        info.diagnostics.extend(missing);
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, off)
}

#[cfg(not(unix))]
fn read_at(mut f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    f.seek(SeekFrom::Start(off))?;
    f.read(buf)
}

fn image_json(img: &Image) -> serde_json::Value {
    serde_json::to_value(img).unwrap_or(serde_json::Value::Null)
}

fn cmd_probe(files: &[String], json: bool) -> Result<ExitCode, String> {
    let mut out = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for f in files {
        let mut img = probe_file(f)?;
        check_extents(&mut img, false);
        if matches!(img.probe, Probed::Error { .. })
            || img
                .info()
                .is_some_and(|i| i.has_diagnostic(Code::MissingExtent))
        {
            code = ExitCode::from(1);
        }
        out.push(img);
    }
    if json {
        let v: Vec<_> = out.iter().map(image_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        for img in &out {
            print_image(img);
        }
    }
    Ok(code)
}

fn print_image(img: &Image) {
    println!("{}:", img.filename);
    match &img.probe {
        Probed::Error { error } => println!("  error: {error}"),
        Probed::Info(i) => {
            println!("  format: {}", i.format);
            if let Some(s) = i.virtual_size {
                println!("  virtual size: {s}");
            }
            if let Some(b) = &i.backing_filename {
                println!("  backing file: {b}");
                println!(
                    "  backing format: {}",
                    i.backing_filename_format
                        .as_deref()
                        .unwrap_or("(not recorded)")
                );
            }
            print_diags(&i.diagnostics, "  ");
        }
    }
    println!("  bytes read: {}", img.bytes_read);
}

fn print_diags(d: &[Diagnostic], pad: &str) {
    let _ = write_diags(&mut std::io::stdout().lock(), d, pad);
}

fn write_diags(w: &mut impl Write, d: &[Diagnostic], pad: &str) -> std::io::Result<()> {
    for d in d {
        let sev = match d.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        writeln!(w, "{pad}{sev} [{}]: {}", d.code, d.message)?;
        if let Some(fix) = &d.fix {
            writeln!(w, "{pad}  fix: {fix}")?;
        }
    }
    Ok(())
}

/// Follow backing files on disk from each top, like `qemu-img info
/// --backing-chain` (never opening network sources). Returns the images,
/// the index of each top, and the links a path string alone cannot make:
/// a backing path that names, under another spelling (`./a`, `sub/../a`), a
/// file already on the same chain — a loop qemu-img only notices when the
/// path grows too long.
/// Follow each TOP's backing files on disk. With `untrusted`, a backing
/// name the core flags ([`chain::untrusted_reason`]) is never opened.
fn collect_on_disk<S: AsRef<str>>(tops: &[S], untrusted: bool) -> Result<OnDisk, String> {
    use std::collections::HashMap;
    #[cfg(unix)]
    fn file_key(m: &std::fs::Metadata) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    fn file_key(_: &std::fs::Metadata) -> Option<(u64, u64)> {
        None
    }
    let mut out = OnDisk::default();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    for t in tops {
        let mut path = t.as_ref().to_string();
        let mut prev: Option<usize> = None;
        let mut on_chain: HashMap<(u64, u64), usize> = HashMap::new();
        loop {
            if let Some(&i) = by_path.get(&path) {
                if prev.is_none() {
                    out.tops.push(i);
                }
                break;
            }
            // One open and one fstat per layer.
            let (file, meta) = match File::open(&path).and_then(|f| f.metadata().map(|m| (f, m))) {
                Ok(fm) => fm,
                Err(e) if prev.is_none() => return Err(format!("{path}: {e}")),
                Err(_) => break, // missing or unreadable: the builder reports it
            };
            let key = file_key(&meta);
            if let (Some(k), Some(p)) = (key, prev) {
                if let Some(&i) = on_chain.get(&k) {
                    // The same file under another spelling: a loop.
                    out.mapping.push((
                        out.images[p].filename.clone(),
                        out.images[i].filename.clone(),
                    ));
                    break;
                }
            }
            let mut img = probe_open(&path, &file, meta.len())?;
            drop(file);
            check_extents(&mut img, untrusted);
            let next = img
                .info()
                .and_then(|i| i.backing_filename.as_deref())
                .filter(|name| !(untrusted && chain::untrusted_reason(name).is_some()))
                .and_then(|name| chain::backing_path(&path, name).ok().flatten());
            let idx = out.images.len();
            by_path.insert(path.clone(), idx);
            if let Some(k) = key {
                on_chain.insert(k, idx);
            }
            if prev.is_none() {
                out.tops.push(idx);
            }
            out.images.push(img);
            prev = Some(idx);
            match next {
                Some(n) if out.images.len() <= backing_chain::limits::MAX_CHAIN_DEPTH => path = n,
                _ => break,
            }
        }
    }
    Ok(out)
}

#[derive(Default)]
struct OnDisk {
    images: Vec<Image>,
    tops: Vec<usize>,
    mapping: Vec<(String, String)>,
}

fn cmd_chain(
    tops: &[String],
    json: bool,
    untrusted: bool,
    allocation: bool,
) -> Result<ExitCode, String> {
    let disk = collect_on_disk(tops, untrusted)?;
    let opts = BuildOptions {
        same_files: disk.mapping,
        exact_paths: true,
        untrusted,
        ..Default::default()
    };
    let forest = chain::build_with(disk.images, &opts);
    // --allocation: each image's metadata walk (by index), or why there is none.
    let alloc: Vec<Option<Result<meta::Allocation, String>>> = forest
        .images
        .iter()
        .map(|img| {
            allocation.then(|| {
                let info = img.info().ok_or_else(|| "not probed".to_string())?;
                meta_cmds::walk(&img.filename, info, meta::WalkOptions { check: false })
                    .map(|l| l.allocation)
            })
        })
        .collect();
    let mut code = ExitCode::SUCCESS;
    let mut out = Vec::new();
    let stdout = std::io::stdout();
    // One write for all but huge outputs (the 300-deep chain's JSON is ~650 KB).
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    for &t in &disk.tops {
        let ch = forest.chain_from(t);
        if ch.diagnostics.iter().any(|d| d.severity == Severity::Error)
            || ch.status != Status::Ok && ch.status != Status::Remote
        {
            code = ExitCode::from(1);
        }
        if json {
            out.push((t, ch));
        } else {
            let _ = writeln!(w, "{} ({})", forest.images[t].filename, ch.status.name());
            for (depth, &l) in ch.layers.iter().enumerate() {
                let img = &forest.images[l];
                let fmt = img.info().map_or("?".to_string(), |i| i.format.to_string());
                let _ = writeln!(w, "{}{} [{fmt}]", "  ".repeat(depth + 1), img.filename);
                match &alloc[l] {
                    Some(Ok(a)) => {
                        let _ = writeln!(
                            w,
                            "{}allocation: data {} B, zero {} B, compressed {} B, unallocated {} B of {} B{}",
                            "  ".repeat(depth + 2),
                            a.data,
                            a.zero,
                            a.compressed,
                            a.unallocated,
                            a.virtual_size,
                            if a.fully_allocated_by_definition {
                                " (fully allocated by definition)"
                            } else {
                                ""
                            }
                        );
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(w, "{}allocation: {e}", "  ".repeat(depth + 2));
                    }
                    None => {}
                }
            }
            let _ = write_diags(&mut w, &ch.diagnostics, "  ");
        }
    }
    if json {
        /// One TOP's chain, serialised straight from the forest.
        #[derive(serde::Serialize)]
        struct ChainOut<'a> {
            filename: &'a str,
            status: Status,
            images: Vec<ImageOut<'a>>,
            diagnostics: &'a [Diagnostic],
        }
        /// An image, and with --allocation what its tables say it holds
        /// (`allocation`) or why they could not be read (`allocation-error`).
        #[derive(serde::Serialize)]
        struct ImageOut<'a> {
            #[serde(flatten)]
            image: &'a Image,
            #[serde(skip_serializing_if = "Option::is_none")]
            allocation: Option<&'a meta::Allocation>,
            #[serde(rename = "allocation-error", skip_serializing_if = "Option::is_none")]
            allocation_error: Option<&'a str>,
        }
        let v: Vec<ChainOut> = out
            .iter()
            .map(|(t, ch)| ChainOut {
                filename: &forest.images[*t].filename,
                status: ch.status,
                images: ch
                    .layers
                    .iter()
                    .map(|&l| ImageOut {
                        image: &forest.images[l],
                        allocation: alloc[l].as_ref().and_then(|a| a.as_ref().ok()),
                        allocation_error: alloc[l]
                            .as_ref()
                            .and_then(|a| a.as_ref().err())
                            .map(String::as_str),
                    })
                    .collect(),
                diagnostics: &ch.diagnostics,
            })
            .collect();
        serde_json::to_writer_pretty(&mut w, &v).map_err(|e| e.to_string())?;
        let _ = writeln!(w);
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(code)
}

fn read_arg(p: &str) -> Result<String, String> {
    if p == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))
    }
}

fn cmd_xml(a: &XmlArgs) -> Result<ExitCode, String> {
    let opts = Options {
        layout: match a.layout {
            LayoutArg::Nested => Layout::Nested,
            LayoutArg::Flat => Layout::Flat,
        },
        mode: match a.mode {
            ModeArg::Populate => xml::Mode::Populate,
            ModeArg::Validate => xml::Mode::Validate,
        },
        replace: a.replace,
        base_dir: a.base_dir.clone(),
        no_index: a.no_index,
        ..Options::default()
    };
    if opts.replace && opts.mode != xml::Mode::Validate {
        return Err("--replace goes with --mode validate".into());
    }
    let domain = a.domain.as_deref().map(read_arg).transpose()?;
    let mut json_images = Vec::new();
    for p in &a.qemu_img_json {
        let text = read_arg(p)?;
        json_images.extend(xml::qemu_json::images(&text).map_err(|e| format!("{p}: {e}"))?);
    }
    let untrusted = a.untrusted;
    let mut images = collect_on_disk(&a.images, untrusted)?.images;
    images.extend(json_images);
    let forest = chain::build_with(
        images,
        &BuildOptions {
            untrusted,
            ..Default::default()
        },
    );
    let out = match &domain {
        Some(d) => xml::populate(d, &forest, &opts).map_err(|e| e.to_string())?,
        None if opts.mode == xml::Mode::Validate => {
            return Err("--mode validate needs --domain".into())
        }
        None => xml::disks(&forest, &opts),
    };
    print!("{}", out.xml);
    for d in &out.diagnostics {
        eprintln!("{:?} [{}]: {}", d.severity, d.code, d.message);
        if let Some(fix) = &d.fix {
            eprintln!("  fix: {fix}");
        }
    }
    let bad = out.mismatch
        || forest
            .chains
            .iter()
            .flat_map(|c| &c.diagnostics)
            .chain(&out.diagnostics)
            .any(|d| d.severity == Severity::Error);
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `backing-chain audit`: walk the PATHs, probe every file, read every
/// domain, print the audit (text, JSON, CSV or the fix script).
mod audit_cli {
    use super::*;
    use backing_chain::audit::{self, AuditOptions, DomainText, FileFacts};
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    /// Every regular file under the paths (directories walked iteratively;
    /// symbolic links to directories are not followed), made absolute
    /// without resolving links (the XML names files as the host does).
    fn walk(paths: &[String]) -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = Vec::new();
        for p in paths {
            let abs = std::path::absolute(p).map_err(|e| format!("{p}: {e}"))?;
            std::fs::metadata(&abs).map_err(|e| format!("{p}: {e}"))?;
            stack.push(abs);
        }
        while let Some(p) = stack.pop() {
            let lm = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            if lm.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                stack.extend(entries.into_iter().rev());
            } else if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    #[cfg(unix)]
    fn file_id(m: &std::fs::Metadata) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        Some(format!("{}:{}", m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    fn file_id(_: &std::fs::Metadata) -> Option<String> {
        None
    }

    fn has_ext(p: &Path, ext: &str) -> bool {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case(ext))
    }

    fn name_of(p: &Path) -> Result<String, String> {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: the name is not UTF-8", p.display()))
    }

    pub fn cmd_audit(args: &AuditArgs) -> Result<ExitCode, String> {
        let mut opts = AuditOptions::default();
        opts.build.exact_paths = true;
        opts.deep_chain = args.deep_chain;
        let mut domains = Vec::new();
        for p in &args.domain {
            domains.push(DomainText {
                label: p.to_string(),
                text: read_arg(p)?,
            });
        }
        let paths = &args.paths;
        // As on the page: XML found under the PATHs is domain XML, JSON
        // (qemu-img output) is not an image; everything else is probed.
        let (docs, files): (Vec<PathBuf>, Vec<PathBuf>) = walk(paths)?
            .into_iter()
            .filter(|p| !has_ext(p, "json"))
            .partition(|p| has_ext(p, "xml"));
        for p in docs {
            let label = name_of(&p)?;
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{label}: {e}"))?;
            domains.push(DomainText { label, text });
        }
        let mut images = Vec::with_capacity(files.len());
        let mut facts = Vec::with_capacity(files.len());
        for p in &files {
            let name = name_of(p)?;
            let (img, meta) = match File::open(p).and_then(|f| f.metadata().map(|m| (f, m))) {
                Ok((f, m)) => match probe_open(&name, &f, m.len()) {
                    Ok(mut img) => {
                        check_extents(&mut img, false);
                        (img, Some(m))
                    }
                    Err(e) => (unreadable(&name, e), Some(m)),
                },
                Err(e) => (unreadable(&name, e.to_string()), None),
            };
            facts.push(FileFacts {
                size: meta.as_ref().map(|m| m.len()),
                id: meta.as_ref().and_then(file_id),
            });
            images.push(img);
        }
        // Paths named but not given: do they exist? (The core does no I/O.)
        let given: HashSet<&str> = images.iter().map(|i| i.filename.as_str()).collect();
        let mut named: Vec<String> = Vec::new();
        for img in &images {
            if let Some(b) = img.info().and_then(|i| i.backing_filename.as_deref()) {
                if let Ok(Some(p)) = chain::backing_path(&img.filename, b) {
                    named.push(chain::normalize(&p));
                }
            }
        }
        let (docs, _) = audit::domains::read_all(&domains);
        for d in &docs {
            for disk in &d.disks {
                if let Some(p) = disk
                    .info
                    .source
                    .as_ref()
                    .filter(|s| s.is_local())
                    .and_then(|s| s.path.as_deref())
                {
                    named.push(p.to_string());
                }
            }
        }
        named.sort();
        named.dedup();
        for p in named {
            if given.contains(p.as_str()) {
                continue;
            }
            if std::fs::metadata(&p).is_ok() {
                opts.present_outside.push(p);
            } else {
                opts.absent_outside.push(p);
            }
        }
        let a = audit::audit(images, &facts, &domains, &opts);
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        if args.json {
            serde_json::to_writer_pretty(&mut w, &a).map_err(|e| e.to_string())?;
            let _ = writeln!(w);
        } else if args.csv {
            let _ = w.write_all(audit::report::csv(&a).as_bytes());
        } else if args.script {
            let _ = w.write_all(audit::report::script(&a).as_bytes());
        } else {
            print_text(&mut w, &a);
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(if a.is_broken() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    fn unreadable(name: &str, error: String) -> Image {
        Image {
            filename: name.to_string(),
            probe: Probed::Error { error },
            bytes_read: 0,
        }
    }

    fn size(n: Option<u64>) -> String {
        n.map_or("?".into(), |n| n.to_string())
    }

    fn json_name<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn print_text(w: &mut impl Write, a: &audit::Audit) {
        let s = &a.summary;
        let _ = writeln!(
            w,
            "{} images: {} in use, {} layers, {} orphan tops, {} unused bases, {} unused layers, {} broken; {} VMs; {} outside the drop, {} missing; {} domain errors; {} bytes in unused images",
            s.images, s.in_use, s.layers, s.orphan_tops, s.unused_bases, s.unused_layers, s.broken,
            s.vms, s.outside_drop, s.missing, s.domain_errors, s.unused_file_size
        );
        for e in &a.images {
            let _ = writeln!(
                w,
                "\n{} [{}, virtual {}, file {}] {}",
                e.filename,
                e.format.as_deref().unwrap_or("?"),
                size(e.virtual_size),
                size(e.file_size),
                json_name(&e.role)
            );
            if let Some(b) = &e.broken {
                let _ = writeln!(w, "  broken ({}): {}", b.status.name(), b.message);
            }
            if let Some(b) = e.backing {
                let _ = writeln!(w, "  backing: {}", a.images[b].filename);
            } else if let Some(b) = &e.backing_outside {
                let _ = writeln!(w, "  backing (not among the images): {b}");
            }
            for u in &e.users {
                let _ = writeln!(
                    w,
                    "  used by VM '{}' disk {} at depth {}",
                    u.name, u.disk, u.depth
                );
            }
            let _ = writeln!(
                w,
                "  delete: {} — {}",
                json_name(&e.delete.verdict),
                e.delete.reasons.join("; ")
            );
            if let Some(c) = &e.commit {
                let _ = writeln!(
                    w,
                    "  commit into {}: {} other image(s) and {} other VM disk(s) on it; {} disk XML(s) to change",
                    a.images[c.into].filename,
                    c.hazard_count,
                    c.hazard_disks_count,
                    c.xml_changes.len()
                );
            }
        }
        for vm in &a.vms {
            let _ = writeln!(
                w,
                "\nVM '{}' ({}): {} disks, {} bytes in its chains, {} bytes only it uses",
                vm.name,
                vm.input,
                vm.disks.len(),
                vm.total_file_size,
                vm.exclusive_file_size
            );
            for d in &vm.disks {
                let st = match (&d.ends_outside, d.status) {
                    (Some(p), _) => format!("continues outside the drop at {p}"),
                    (None, Some(s)) => s.name().to_string(),
                    (None, None) if d.network => "network".into(),
                    (None, None) => "not among the images".into(),
                };
                let _ = writeln!(
                    w,
                    "  {} → {} ({st}, {} layers)",
                    d.name,
                    d.source.as_deref().unwrap_or("(no source)"),
                    d.chain.len()
                );
            }
        }
        if !a.findings.is_empty() {
            let _ = writeln!(w, "\nfindings:");
            let _ = write_diags(w, &a.findings, "  ");
        }
    }
}

/// `map`, `measure` and `check`: the metadata walks (`backing_chain::meta`)
/// over native positioned reads.
mod meta_cmds {
    use std::fs::File;
    use std::io::Write;
    use std::process::ExitCode;

    use backing_chain::chain::Image;
    use backing_chain::image::ImageInfo;
    use backing_chain::meta::{self, Layer, WalkOptions};
    use serde::Serialize;

    pub fn run(cmd: &str, files: &[String], json: bool) -> Result<ExitCode, String> {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        let mut code = ExitCode::SUCCESS;
        let mut out: Vec<serde_json::Value> = Vec::new();
        for f in files {
            let v = match cmd {
                "check" => {
                    let (c, layer) = check(f)?;
                    if c.corruptions > 0 || c.check_errors > 0 {
                        code = ExitCode::from(1);
                    }
                    if !json {
                        print_check(&mut w, &c, &layer);
                    }
                    serde_json::to_value(&c)
                }
                _ => {
                    let m = chain_map(f)?;
                    if !json {
                        if cmd == "map" {
                            print_map(&mut w, &m);
                        } else {
                            print_measure(&mut w, &m);
                        }
                    }
                    if cmd == "map" {
                        serde_json::to_value(&m)
                    } else {
                        serde_json::to_value(MeasureOut {
                            filename: &m.filename,
                            measure: m.measure,
                            layers: &m.layers,
                        })
                    }
                }
            };
            out.push(v.map_err(|e| e.to_string())?);
        }
        if json {
            serde_json::to_writer_pretty(&mut w, &out).map_err(|e| e.to_string())?;
            let _ = writeln!(w);
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(code)
    }

    /// Walk one open file's metadata with positioned reads.
    pub(super) fn walk(path: &str, info: &ImageInfo, opts: WalkOptions) -> Result<Layer, String> {
        let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let len = f.metadata().map_err(|e| format!("{path}: {e}"))?.len();
        let read = |off: u64, n: u64| -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; n as usize];
            let mut got = 0;
            while got < buf.len() {
                match super::read_at(&f, &mut buf[got..], off + got as u64)? {
                    0 => break,
                    k => got += k,
                }
            }
            buf.truncate(got);
            Ok(buf)
        };
        meta::walk_with(info, len, opts, read).map_err(|e| format!("{path}: {e}"))
    }

    fn info_of(img: &Image) -> Result<&ImageInfo, String> {
        img.info().ok_or_else(|| match &img.probe {
            backing_chain::chain::Probed::Error { error } => format!("{}: {error}", img.filename),
            _ => img.filename.clone(),
        })
    }

    /// `check`'s figures, with `filename` set.
    fn check(path: &str) -> Result<(meta::Check, Layer), String> {
        let img = super::probe_file(path)?;
        let info = info_of(&img)?;
        let mut layer = walk(path, info, WalkOptions { check: true })?;
        let mut c = layer
            .check
            .take()
            .ok_or_else(|| format!("{path}: {} images are not checked", info.format))?;
        c.filename = path.to_string();
        if let Some(a) = &c.advice {
            c.advice = Some(a.replace("IMAGE", &backing_chain::diag::shell_quote(path)));
        }
        Ok((c, layer))
    }

    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct LayerOut {
        filename: String,
        format: backing_chain::image::Format,
        allocation: meta::Allocation,
        /// Each kind as a percent of the virtual size.
        percent: Percent,
        /// Bytes `qemu-img commit` of this layer copies into its backing
        /// (none for the base).
        #[serde(skip_serializing_if = "Option::is_none")]
        commit_bytes: Option<u64>,
        bytes_read: u64,
        file_length: u64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        diagnostics: Vec<backing_chain::diag::Diagnostic>,
    }

    #[derive(Serialize)]
    struct Percent {
        data: f64,
        zero: f64,
        compressed: f64,
        unallocated: f64,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct MapOut {
        filename: String,
        /// `qemu-img map --output=json`'s entries.
        map: Vec<meta::MapEntry>,
        summary: meta::Summary,
        measure: meta::Measure,
        layers: Vec<LayerOut>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct MeasureOut<'a> {
        filename: &'a str,
        #[serde(flatten)]
        measure: meta::Measure,
        layers: &'a [LayerOut],
    }

    /// The chain of `top` on disk, each layer walked, and the map.
    fn chain_map(top: &str) -> Result<MapOut, String> {
        let disk = super::collect_on_disk(&[top], false)?;
        let images = disk.images;
        if let Some(last) = images.last() {
            if let Some(b) = last.info().and_then(|i| i.backing_filename.as_deref()) {
                return Err(format!(
                    "{top}: the backing '{b}' of {} was not found: the map needs every layer",
                    last.filename
                ));
            }
        }
        let mut layers = Vec::new();
        let mut outs = Vec::new();
        for img in &images {
            let info = info_of(img)?;
            let layer = walk(&img.filename, info, WalkOptions::default())?;
            let len = std::fs::metadata(&img.filename)
                .map(|m| m.len())
                .unwrap_or(0);
            outs.push(LayerOut {
                filename: img.filename.clone(),
                format: layer.format,
                allocation: layer.allocation.clone(),
                percent: {
                    let a = &layer.allocation;
                    Percent {
                        data: a.percent(a.data),
                        zero: a.percent(a.zero),
                        compressed: a.percent(a.compressed),
                        unallocated: a.percent(a.unallocated),
                    }
                },
                commit_bytes: None,
                bytes_read: layer.bytes_read,
                file_length: len,
                diagnostics: layer.diagnostics.clone(),
            });
            layers.push(layer);
        }
        let n = outs.len();
        for (o, l) in outs.iter_mut().zip(&layers).take(n.saturating_sub(1)) {
            o.commit_bytes = Some(meta::commit_bytes(l));
        }
        let refs: Vec<&Layer> = layers.iter().collect();
        let map = meta::chain_map(&refs);
        let summary = meta::summary(refs.len(), &map);
        let vs = refs.first().map_or(0, |l| l.virtual_size);
        let bitmaps = images
            .first()
            .and_then(|i| i.info())
            .and_then(meta::bitmaps_size);
        let measure = meta::measure(vs, &map, bitmaps);
        Ok(MapOut {
            filename: top.to_string(),
            map,
            summary,
            measure,
            layers: outs,
        })
    }

    fn size(b: u64) -> String {
        const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = b as f64;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < U.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            format!("{b} B")
        } else {
            format!("{v:.1} {}", U[u])
        }
    }

    fn print_layers(w: &mut impl Write, m: &MapOut) {
        for (d, (l, p)) in m.layers.iter().zip(&m.summary.provides).enumerate() {
            let a = &l.allocation;
            let _ = writeln!(
                w,
                "  depth {d} {} [{}]: provides {} ({} as zeroes); holds data {}, zero {}, \
                 compressed {}, unallocated {}{}",
                l.filename,
                l.format,
                size(p.bytes),
                size(p.zero),
                size(a.data),
                size(a.zero),
                size(a.compressed),
                size(a.unallocated),
                if a.fully_allocated_by_definition {
                    " (fully allocated by definition)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                w,
                "    read {} of {} of metadata",
                size(l.bytes_read),
                size(l.file_length)
            );
        }
        let _ = writeln!(w, "  never written: {}", size(m.summary.never_written));
    }

    fn print_map(w: &mut impl Write, m: &MapOut) {
        let _ = writeln!(w, "{}:", m.filename);
        let _ = writeln!(
            w,
            "  {:<20} {:<20} {:>5} {:<8} {:<20}",
            "start", "length", "depth", "what", "offset"
        );
        for e in &m.map {
            let what = match (e.present, e.zero, e.compressed) {
                (false, _, _) => "none",
                (true, true, _) => "zero",
                (true, false, true) => "compr",
                _ => "data",
            };
            let _ = writeln!(
                w,
                "  {:<20} {:<20} {:>5} {:<8} {}",
                e.start,
                e.length,
                e.depth,
                what,
                e.offset.map(|o| o.to_string()).unwrap_or_default()
            );
        }
        print_layers(w, m);
    }

    fn print_measure(w: &mut impl Write, m: &MapOut) {
        let _ = writeln!(w, "{}:", m.filename);
        let _ = writeln!(
            w,
            "  flattened into a new qcow2: required size {} ({}), fully allocated size {} ({})",
            m.measure.required,
            size(m.measure.required),
            m.measure.fully_allocated,
            size(m.measure.fully_allocated)
        );
        if let Some(b) = m.measure.bitmaps {
            let _ = writeln!(w, "  bitmaps size: {b}");
        }
        for l in &m.layers {
            if let Some(c) = l.commit_bytes {
                let _ = writeln!(
                    w,
                    "  qemu-img commit {} copies {} ({c} bytes) into its backing",
                    l.filename,
                    size(c)
                );
            }
        }
    }

    fn print_check(w: &mut impl Write, c: &meta::Check, layer: &Layer) {
        let _ = writeln!(w, "{}:", c.filename);
        for p in &c.problems {
            let _ = writeln!(w, "  {} at byte {}: {}", p.class, p.offset, p.message);
        }
        if c.corruptions == 0 && c.leaks == 0 && c.check_errors == 0 {
            let _ = writeln!(w, "  No errors were found on the image.");
        } else {
            let _ = writeln!(
                w,
                "  {} corruptions, {} leaked clusters, {} check errors",
                c.corruptions, c.leaks, c.check_errors
            );
        }
        if c.total_clusters > 0 {
            let _ = writeln!(
                w,
                "  {}/{} = {:.2}% allocated, {:.2}% fragmented, {:.2}% compressed clusters",
                c.allocated_clusters,
                c.total_clusters,
                c.allocated_clusters as f64 * 100.0 / c.total_clusters as f64,
                pct(c.fragmented_clusters, c.allocated_clusters),
                pct(c.compressed_clusters, c.allocated_clusters),
            );
        }
        let _ = writeln!(w, "  Image end offset: {}", c.image_end_offset);
        if let Some(a) = &c.advice {
            let _ = writeln!(w, "  repair (never run by backing-chain): {a}");
        }
        let _ = writeln!(w, "  read {} of metadata", size(layer.bytes_read));
    }

    fn pct(a: u64, b: u64) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    }
}
