//! Storage sources: where a layer's bytes live, as libvirt's `<source>` says it,
//! and the parsing of backing names (as written in image headers) into sources.
//!
//! This module never looks at files.

use serde::Serialize;

use crate::diag::Diagnostic;

/// `<disk type=…>` / `<backingStore type=…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    #[default]
    File,
    Block,
    Dir,
    Network,
    Volume,
    Nvme,
}

impl SourceType {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tcp` (default, not written), `unix`, `rdma`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// Where a layer's bytes are: libvirt's `virStorageSource`, reduced to what a
/// backing name or a `<source>` element can say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct StorageSource {
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
    pub source: StorageSource,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a backing name could not be turned into a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameError {
    pub message: String,
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

/// Parse a backing name as written in an image header.
pub fn parse_backing_name(name: &str) -> Result<Parsed, NameError> {
    if name.contains('\0') {
        return Err(NameError {
            message: "the backing name contains a NUL byte".into(),
        });
    }
    if is_file_name(name) {
        return Ok(Parsed {
            source: StorageSource::file(name),
            diagnostics: Vec::new(),
        });
    }
    if let Some(dir) = name.strip_prefix("fat:") {
        return Ok(Parsed {
            source: StorageSource {
                kind: SourceType::Dir,
                path: Some(dir.to_string()),
                ..Default::default()
            },
            diagnostics: Vec::new(),
        });
    }
    let proto = name.split(':').next().unwrap_or_default();
    Err(NameError {
        message: format!("no parser for backing names of the form '{proto}:…' yet"),
    })
}

/// Is `path` absolute (POSIX)?
pub fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
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
