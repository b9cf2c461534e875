//! The real libvirt daemon (`qemu:///system`) as an oracle: start `virtlogd`
//! and `libvirtd` when they are not running (as root, without systemd),
//! start uniquely named TCG guests with no OS (`<domain type='qemu'>`, a
//! second each), read libvirt's live XML, and always destroy (and undefine)
//! them again.
//!
//! Needs the Debian packages `libvirt-daemon`, `libvirt-daemon-driver-qemu`
//! and `qemu-system-x86`, and `user = "root"` / `group = "root"` in
//! `/etc/libvirt/qemu.conf` (`.ci/setup` does all of it): the test images
//! live in root's 0700 temporary directories, and a QEMU running as another
//! user could not open them. When the daemon cannot be had the tests skip
//! visibly, or fail under `BACKING_CHAIN_REQUIRE_ORACLES=1`.
//!
//! VMs are started one at a time (a process-wide lock held by [`Vm`]), to
//! stay light on shared machines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const URI: &str = "qemu:///system";

/// Every domain the tests start is named `bc-test-<pid>-<n>-<tag>`.
const PREFIX: &str = "bc-test-";

/// A running daemon, with the versions it reports.
pub struct Daemon {
    /// e.g. "libvirt 11.3.0, QEMU 10.0.2".
    pub version: String,
}

static DAEMON: OnceLock<Result<Daemon, String>> = OnceLock::new();
static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());
static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// The daemon, started when needed. `None` after a visible "skipped" line
/// (a panic under `BACKING_CHAIN_REQUIRE_ORACLES`) when it cannot be had.
pub fn daemon(what: &str) -> Option<&'static Daemon> {
    match DAEMON.get_or_init(start_daemon) {
        Ok(d) => Some(d),
        Err(e) => {
            super::skip(&format!(
                "{what}: the libvirt daemon oracle is not available: {e}"
            ));
            None
        }
    }
}

/// Run a command with a time limit (coreutils `timeout`): a stuck daemon must
/// not hang the test run.
fn run(secs: u32, prog: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// `virsh -q -c qemu:///system ARGS`, at most 60 s.
pub fn virsh(args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-q", "-c", URI];
    all.extend_from_slice(args);
    let out = run(60, "virsh", &all).map_err(|e| format!("virsh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!("virsh {args:?} exited with {}", out.status)
        } else {
            err
        })
    }
}

fn connects() -> bool {
    virsh(&["version"]).is_ok()
}

/// A daemon binary: on PATH, else in /usr/sbin (not on every root PATH).
fn sbin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Does qemu.conf run QEMU as root (an uncommented `user = "root"`)?
/// `None` when it cannot be read (only root can).
fn qemu_runs_as_root() -> Option<bool> {
    let t = std::fs::read_to_string("/etc/libvirt/qemu.conf").ok()?;
    Some(t.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        l == "user=\"root\"" || l == "user=\"+0\""
    }))
}

fn start_daemon() -> Result<Daemon, String> {
    if !super::tool("virsh") {
        return Err("virsh is not installed (libvirt-clients)".into());
    }
    if !Path::new("/usr/bin/qemu-system-x86_64").is_file() {
        return Err("qemu-system-x86_64 is not installed (qemu-system-x86)".into());
    }
    if !connects() {
        if !is_root() {
            let why = virsh(&["version"])
                .err()
                .unwrap_or_default()
                .replace('\n', "; ");
            return Err(format!(
                "cannot connect to {URI} ({why}), and only root may start libvirtd"
            ));
        }
        let (Some(virtlogd), Some(libvirtd)) = (sbin("virtlogd"), sbin("libvirtd")) else {
            return Err(
                "libvirtd or virtlogd is not installed (libvirt-daemon, libvirt-daemon-driver-qemu)"
                    .into(),
            );
        };
        // `-d` daemonises; one already running keeps its pid file and the
        // second exits at once, so this is idempotent.
        for bin in [&virtlogd, &libvirtd] {
            let _ = run(30, bin.to_str().unwrap(), &["-d"]);
        }
        // The first start probes QEMU's capabilities (several seconds).
        let t = Instant::now();
        while !connects() {
            if t.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "started libvirtd, but {URI} did not answer within 120 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if qemu_runs_as_root() == Some(false) {
        return Err("/etc/libvirt/qemu.conf does not say user = \"root\" \
                    (bash .ci/setup writes it; QEMU must read root's temporary directories)"
            .into());
    }
    if qemu_runs_as_root() == Some(false) {
        return Err("/etc/libvirt/qemu.conf does not say user = \"root\" \
                    (bash .ci/setup writes it; QEMU must read root's temporary directories)"
            .into());
    }
    remove_stale_domains();
    let v = virsh(&["version", "--daemon"]).unwrap_or_default();
    let field = |key: &str| {
        v.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let version = format!(
        "libvirt {}, {}",
        field("Running against daemon:"),
        field("Running hypervisor:")
    );
    eprintln!("libvirt daemon oracle: {version} ({URI})");
    Ok(Daemon { version })
}

/// Domains of ours left by a test process that no longer exists (killed in
/// the middle): destroy and undefine them. Domains of live processes (other
/// test binaries running now) are left alone.
fn remove_stale_domains() {
    let Ok(names) = virsh(&["list", "--all", "--name"]) else {
        return;
    };
    for name in names.lines().map(str::trim) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = virsh(&["destroy", name]);
            let _ = virsh(&["undefine", name]);
        }
    }
}

/// A TCG guest with no OS around `disks` (`<disk>` elements).
pub fn domain_xml(name: &str, disks: &str) -> String {
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <devices>
{disks}
  </devices>
</domain>
"
    )
}

/// A running guest of ours. Dropping it destroys it (and undefines it when
/// it was defined), then lets the next test start one.
pub struct Vm {
    pub name: String,
    persistent: bool,
    _turn: MutexGuard<'static, ()>,
}

impl Vm {
    fn unique_name(tag: &str) -> String {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        format!("{PREFIX}{}-{n}-{tag}", std::process::id())
    }

    /// Start a transient guest with `disks`; `Err` is virsh's error message
    /// (libvirt refused, or QEMU failed to open an image).
    pub fn start(_d: &Daemon, tag: &str, disks: &str) -> Result<Vm, String> {
        let turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let name = Self::unique_name(tag);
        let doc = domain_xml(&name, disks);
        Self::from_xml(turn, name, &doc, false)
    }

    /// Start a whole domain document (its `<name>` is replaced by a unique one).
    pub fn start_domain(_d: &Daemon, tag: &str, xml: &str, persistent: bool) -> Result<Vm, String> {
        let turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let name = Self::unique_name(tag);
        let s = xml.find("<name>").ok_or("no <name> in the domain")?;
        let e = xml[s..].find("</name>").ok_or("no </name> in the domain")? + s + "</name>".len();
        let doc = format!("{}<name>{name}</name>{}", &xml[..s], &xml[e..]);
        Self::from_xml(turn, name, &doc, persistent)
    }

    fn from_xml(
        turn: MutexGuard<'static, ()>,
        name: String,
        doc: &str,
        persistent: bool,
    ) -> Result<Vm, String> {
        let file = std::env::temp_dir().join(format!("{name}.xml"));
        std::fs::write(&file, doc).map_err(|e| e.to_string())?;
        let path = file.to_str().unwrap().to_string();
        let res = if persistent {
            virsh(&["define", &path]).and_then(|_| virsh(&["start", &name]))
        } else {
            virsh(&["create", &path])
        };
        let _ = std::fs::remove_file(&file);
        // Build the guard first: a failed start of a defined domain still
        // needs its undefine.
        let vm = Vm {
            name,
            persistent,
            _turn: turn,
        };
        res.map(|_| vm)
    }

    /// `virsh dumpxml`: libvirt's live view, with every layer's index.
    pub fn live_xml(&self) -> String {
        virsh(&["dumpxml", &self.name]).expect("dumpxml of a running guest")
    }

    /// `virsh dumpxml --inactive`.
    pub fn inactive_xml(&self) -> String {
        virsh(&["dumpxml", "--inactive", &self.name]).expect("dumpxml --inactive")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.name]);
        if self.persistent {
            let _ = virsh(&["undefine", &self.name]);
        }
    }
}

/// Start a guest with `disks` and return libvirt's live XML (the guest is
/// destroyed before this returns), or virsh's error when it does not start.
pub fn start_and_dump(d: &Daemon, tag: &str, disks: &str) -> Result<String, String> {
    let vm = Vm::start(d, tag, disks)?;
    Ok(vm.live_xml())
}

/// A parsed XML element: enough of a DOM to compare libvirt's disks with ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub children: Vec<Elem>,
    /// Non-blank text, concatenated.
    pub text: String,
}

impl Elem {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
    pub fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }
    /// Every descendant (self included) named `name`, document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Elem>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(name, out);
        }
    }
    /// One line per element, attributes sorted, children indented: a
    /// comparable text (whitespace and attribute order do not matter).
    pub fn canon(&self) -> String {
        let mut s = String::new();
        self.canon_into(&mut s, 0);
        s
    }
    fn canon_into(&self, s: &mut String, depth: usize) {
        s.push_str(&"  ".repeat(depth));
        s.push('<');
        s.push_str(&self.name);
        for (k, v) in &self.attrs {
            s.push_str(&format!(" {k}='{v}'"));
        }
        s.push('>');
        if !self.text.is_empty() {
            s.push_str(&format!(" {:?}", self.text));
        }
        s.push('\n');
        for c in &self.children {
            c.canon_into(s, depth + 1);
        }
    }
    /// A copy without the attribute `k` anywhere in the subtree.
    pub fn without_attr(&self, k: &str) -> Elem {
        let mut e = self.clone();
        e.attrs.remove(k);
        e.children = e.children.iter().map(|c| c.without_attr(k)).collect();
        e
    }
}

/// Parse a document (or fragment with one root) into an [`Elem`] tree.
pub fn parse(xml: &str) -> Elem {
    use quick_xml::events::{BytesStart, Event};
    fn start(e: &BytesStart) -> Elem {
        let mut attrs = BTreeMap::new();
        for a in e.attributes() {
            let a = a.expect("attribute");
            attrs.insert(
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                a.unescape_value().expect("attribute value").into_owned(),
            );
        }
        Elem {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            attrs,
            children: Vec::new(),
            text: String::new(),
        }
    }
    let mut r = quick_xml::Reader::from_str(xml);
    // A synthetic root holds the document's elements.
    let mut stack = vec![Elem {
        name: String::new(),
        attrs: BTreeMap::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => {
                let el = start(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Event::Text(t) => {
                let t = t.unescape().expect("text");
                if !t.trim().is_empty() {
                    stack.last_mut().unwrap().text.push_str(t.trim());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.pop().unwrap();
    assert_eq!(root.children.len(), 1, "one root element");
    root.children.pop().unwrap()
}

/// The `<disk>` elements of a domain, by target dev, in document order.
pub fn disks(xml: &str) -> Vec<(String, Elem)> {
    let dom = parse(xml);
    let mut v = Vec::new();
    dom.find_all("disk", &mut v);
    v.into_iter()
        .map(|d| {
            let dev = d
                .child("target")
                .and_then(|t| t.attr("dev"))
                .unwrap_or("?")
                .to_string();
            (dev, d.clone())
        })
        .collect()
}

/// What a disk says about its chain, as comparable text: the top's
/// `<source index>`, the top's `<dataStore>` (if any) and the whole
/// `<backingStore>` subtree (types, indexes, formats, sources, data stores,
/// terminator). `None` for absent.
pub fn chain_view(disk: &Elem) -> String {
    let mut s = String::new();
    match disk.child("source") {
        Some(src) => {
            s.push_str(&format!(
                "top source index: {}\n",
                src.attr("index").unwrap_or("none")
            ));
            if let Some(ds) = src.child("dataStore") {
                s.push_str("top ");
                s.push_str(&ds.canon());
            }
        }
        None => s.push_str("no source (empty drive)\n"),
    }
    match disk.child("backingStore") {
        Some(b) => s.push_str(&b.canon()),
        None => s.push_str("no <backingStore>\n"),
    }
    s
}
