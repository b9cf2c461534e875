//! Storage sources: where a layer's bytes live, as libvirt's `<source>` says it,
//! and the parsing of backing names (as written in image headers) into sources.
//!
//! This module never looks at files.

#![warn(missing_docs)]

use serde::Serialize;

use crate::diag::{Code, Diagnostic};
use crate::limits;

pub mod colon;
pub mod json;
pub mod protocol;
pub mod uri;

/// `<disk type=…>` / `<backingStore type=…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// A regular file (`<source file=…>`).
    #[default]
    File,
    /// A block device (`<source dev=…>`).
    Block,
    /// A host directory shown as a FAT disk (`<source dir=…>`).
    Dir,
    /// A network protocol (`<source protocol=… name=…>` with `<host>`s).
    Network,
    /// A storage pool volume (`<source pool=… volume=…>`).
    Volume,
    /// An NVMe namespace on a PCI controller (`<source type='pci'>`).
    Nvme,
}

impl SourceType {
    /// The `type` attribute's value.
    pub fn name(self) -> &'static str {
        match self {
            SourceType::File => "file",
            SourceType::Block => "block",
            SourceType::Dir => "dir",
            SourceType::Network => "network",
            SourceType::Volume => "volume",
            SourceType::Nvme => "nvme",
        }
    }
    /// The type a `type` attribute names, if it is one.
    pub fn from_name(s: &str) -> Option<SourceType> {
        Some(match s {
            "file" => SourceType::File,
            "block" => SourceType::Block,
            "dir" => SourceType::Dir,
            "network" => SourceType::Network,
            "volume" => SourceType::Volume,
            "nvme" => SourceType::Nvme,
            _ => return None,
        })
    }
}

/// A `<host>` of a network source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Host {
    /// Host name or address (`None` for a unix socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TCP port, when given or defaulted for the protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tcp` (default, not written), `unix`, `rdma`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The unix socket path (`transport` `unix`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// Where a layer's bytes are: libvirt's `virStorageSource`, reduced to what a
/// backing name or a `<source>` element can say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct StorageSource {
    /// The `type` attribute.
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// file / block / dir: the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// network: `nbd`, `iscsi`, `rbd`, `gluster`, `http`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// network: the `name` attribute (export, `vol/path`, `pool/image`, URL path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// network: the `<host>` elements, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// Everything else `<source>` may carry, as (key, value) in order. Keys
    /// and the XML each stands for (the XML writer and reader use this table):
    ///
    /// | key | XML |
    /// |---|---|
    /// | `query` | `<source query='…'>` (http/https) |
    /// | `tls` | `<source tls='yes'>` |
    /// | `snapshot` | `<snapshot name='…'/>` (rbd) |
    /// | `config` | `<config file='…'/>` (rbd) |
    /// | `user`, `group` | `<identity user='…' group='…'/>` (nfs) |
    /// | `offset`, `size` | `<slices><slice type='storage' offset size/></slices>` |
    /// | `pool`, `volume`, `mode` | `<source pool volume mode>` (type volume) |
    /// | `pci`, `namespace`, `managed` | nvme: `<source type='pci' managed namespace><address domain bus slot function/></source>` (`pci` = `DDDD:BB:SS.F`) |
    /// | `readahead` | `<readahead size='…'/>` |
    /// | `timeout` | `<timeout seconds='…'/>` |
    /// | `sslverify` | `<ssl verify='yes|no'/>` |
    /// | `cookie:NAME` | `<cookies><cookie name='NAME'>value</cookie></cookies>` |
    /// | `knownhosts` | `<knownHosts path='…'/>` (ssh) |
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<(String, String)>,
}

impl StorageSource {
    /// A `type='file'` source at `path`.
    pub fn file(path: impl Into<String>) -> Self {
        StorageSource {
            kind: SourceType::File,
            path: Some(path.into()),
            ..Default::default()
        }
    }

    /// Is this a source on the local file system (file, block, dir)?
    pub fn is_local(&self) -> bool {
        matches!(
            self.kind,
            SourceType::File | SourceType::Block | SourceType::Dir
        )
    }

    /// The value of an extra, if present.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extras
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A backing name turned into a source, with what was noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    /// Where the backing name points.
    pub source: StorageSource,
    /// What the name itself gets wrong or drops (credentials, odd
    /// characters, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a backing name could not be turned into a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameError {
    /// What is wrong, in words.
    pub message: String,
}

impl NameError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        NameError {
            message: message.into(),
        }
    }
}

impl Parsed {
    /// A source with nothing noticed.
    pub fn plain(source: StorageSource) -> Self {
        Parsed {
            source,
            diagnostics: Vec::new(),
        }
    }
}

impl StorageSource {
    /// A network source of `protocol` with no name and no hosts yet.
    pub fn network(protocol: &str) -> Self {
        StorageSource {
            kind: SourceType::Network,
            protocol: Some(protocol.to_string()),
            ..Default::default()
        }
    }

    /// Append an extra (see the table on [`StorageSource::extras`]).
    pub fn push_extra(&mut self, key: &str, value: impl Into<String>) {
        self.extras.push((key.to_string(), value.into()));
    }
}

/// The default port of a protocol's tcp hosts (none for rbd, nfs, …).
pub fn default_port(protocol: &str) -> Option<u16> {
    Some(match protocol {
        "nbd" => 10809,
        "iscsi" => 3260,
        "gluster" => 24007,
        "sheepdog" => 7000,
        "vxhs" => 9999,
        "http" => 80,
        "https" => 443,
        "ftp" => 21,
        "ftps" => 990,
        "tftp" => 69,
        "ssh" => 22,
        _ => return None,
    })
}

/// Give every tcp host without a port its protocol's default port.
pub(crate) fn assign_default_ports(src: &mut StorageSource) {
    let Some(p) = src.protocol.as_deref().and_then(default_port) else {
        return;
    };
    for h in &mut src.hosts {
        let tcp = h.transport.is_none() || h.transport.as_deref() == Some("tcp");
        if tcp && h.port.is_none() && h.socket.is_none() {
            h.port = Some(p);
        }
    }
}

/// Parse a port number: decimal, at most 65535. `0` means "not given".
pub(crate) fn parse_port(s: &str) -> Result<Option<u16>, NameError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NameError::new(format!("'{s}' is not a port number")));
    }
    match s.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(p) if p <= 65535 => Ok(Some(p as u16)),
        _ => Err(NameError::new(format!(
            "port {s} is out of range (at most 65535)"
        ))),
    }
}

/// The diagnostic for inline credentials that were parsed and dropped. The
/// secret itself is never repeated.
pub(crate) fn credentials_dropped(what: &str) -> Diagnostic {
    Diagnostic::warning(
        Code::CredentialsDropped,
        format!(
            "the backing name carries inline credentials ({what}); they were dropped: libvirt takes them from <auth> with a secret, never from the name"
        ),
    )
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NameError {}

/// Is the backing name a plain file path? libvirt: a name is a file unless a
/// `:` comes before any `/`.
pub fn is_file_name(name: &str) -> bool {
    match (name.find(':'), name.find('/')) {
        (None, _) => true,
        (Some(c), Some(s)) => s < c,
        (Some(_), None) => false,
    }
}

/// Parse a backing name as written in an image header, the way libvirt's
/// `virStorageSourceNewFromBackingAbsolute` does:
///
/// * a plain file path unless a `:` comes before any `/`;
/// * `fat:DIR` → a `dir` source; `file:PATH` → a file, taken as is;
/// * `json:{…}` → [`json`];
/// * anything with `://` → a URI ([`uri`]);
/// * `nbd:…` and `rbd:…` colon forms ([`colon`]).
///
/// Never panics; anything it cannot use is a [`NameError`].
pub fn parse_backing_name(name: &str) -> Result<Parsed, NameError> {
    if name.as_bytes().contains(&b'\0') {
        return Err(NameError::new("the backing name contains a NUL byte"));
    }
    if name.len() > limits::MAX_BACKING_NAME_PARSE {
        return Err(NameError::new(format!(
            "the backing name is {} bytes long, more than the {} this parser accepts",
            name.len(),
            limits::MAX_BACKING_NAME_PARSE
        )));
    }
    if is_file_name(name) {
        return Ok(Parsed::plain(StorageSource::file(name)));
    }
    if let Some(dir) = name.strip_prefix("fat:") {
        return Ok(Parsed::plain(StorageSource {
            kind: SourceType::Dir,
            path: Some(dir.to_string()),
            ..Default::default()
        }));
    }
    if let Some(path) = name.strip_prefix("file:") {
        if path.is_empty() {
            return Err(NameError::new("'file:' names no path"));
        }
        return Ok(Parsed::plain(StorageSource::file(path)));
    }
    if let Some(j) = name.strip_prefix("json:") {
        let parsed = json::parse(j)?;
        let s = &parsed.source;
        let strings = s
            .path
            .iter()
            .chain(&s.name)
            .chain(s.hosts.iter().flat_map(|h| h.name.iter().chain(&h.socket)))
            .chain(s.extras.iter().map(|(_, v)| v));
        if strings.into_iter().any(|v| v.as_bytes().contains(&b'\0')) {
            return Err(NameError::new(
                "the JSON backing name contains a NUL character",
            ));
        }
        return Ok(parsed);
    }
    let parsed = if crate::text::contains(name, "://") {
        uri::parse(name)?
    } else {
        colon::parse(name)?
    };
    Ok(parsed)
}

/// Resolve the backing name `name` of an image whose own source is `parent`
/// (libvirt's `virStorageSourceNewFromBacking`): a relative plain file name
/// is joined to the parent's directory (no `..` folding); under a network
/// parent it inherits protocol, hosts and extras and is joined to the
/// directory of the parent's `name`. `json:`, `file:`, URIs and colon forms
/// are absolute.
pub fn resolve_backing(parent: &StorageSource, name: &str) -> Result<Parsed, NameError> {
    let mut parsed = parse_backing_name(name)?;
    if !is_file_name(name) || is_absolute(name) {
        return Ok(parsed);
    }
    if parent.is_local() {
        let base = parent.path.as_deref().unwrap_or("");
        parsed.source.path = Some(resolve_relative(base, name));
    } else if parent.kind == SourceType::Network {
        let pname = parent.name.as_deref().unwrap_or("");
        parsed.source = StorageSource {
            kind: SourceType::Network,
            path: None,
            protocol: parent.protocol.clone(),
            name: Some(format!("{}{}", dir_of(pname), name)),
            hosts: parent.hosts.clone(),
            // Like libvirt: protocol and hosts only (a query, snapshot or
            // slice belongs to the parent, not to its backing).
            extras: Vec::new(),
        };
    }
    Ok(parsed)
}

/// Is `path` absolute (POSIX)?
pub fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
}

/// The last component of a path (`b` for `/a/b`; all of it without a `/`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory part of a path, with its trailing `/` (`""` when none).
pub fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

/// Resolve a relative backing path against the image that names it: a plain
/// join with the parent's directory, no `..` folding (what qemu and libvirt do).
pub fn resolve_relative(parent_path: &str, name: &str) -> String {
    if is_absolute(name) {
        name.to_string()
    } else {
        format!("{}{}", dir_of(parent_path), name)
    }
}

/// Is `a` a PCI address libvirt takes for an nvme `<source><address>`:
/// `DDDD:BB:SS.F` in hexadecimal — domain 4 digits, bus 2, slot 2 and at
/// most 0x1f, function 1 and at most 7. The bounds are libvirt's
/// `virPCIDeviceAddressIsValid` (bus <= 0xFF, slot <= 0x1F, function <= 7),
/// which `virPCIDeviceAddressParseXML` applies to every address it reads.
/// The one rule for the editor's nvme layers and qemu's `json:` nvme names.
pub fn is_pci_address(a: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit());
    let Some((dbs, f)) = a.rsplit_once('.') else {
        return false;
    };
    let mut p = dbs.split(':');
    let (Some(d), Some(b), Some(sl), None) = (p.next(), p.next(), p.next(), p.next()) else {
        return false;
    };
    hex(d, 4)
        && hex(b, 2)
        && hex(sl, 2)
        && u8::from_str_radix(sl, 16).is_ok_and(|s| s <= 0x1f)
        && f.len() == 1
        && f.bytes().all(|c| (b'0'..=b'7').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_before_slash_is_not_a_file() {
        assert!(is_file_name("/a:b"));
        assert!(is_file_name("./a:b"));
        assert!(is_file_name("base.qcow2"));
        assert!(!is_file_name("a:b"));
        assert!(!is_file_name("nbd://h/x"));
    }

    #[test]
    fn relative_join_keeps_dotdot() {
        assert_eq!(
            resolve_relative("/v/sub/top.qcow2", "../base.qcow2"),
            "/v/sub/../base.qcow2"
        );
        assert_eq!(resolve_relative("top.qcow2", "base.qcow2"), "base.qcow2");
        assert_eq!(resolve_relative("/v/top", "/abs/base"), "/abs/base");
    }
}
