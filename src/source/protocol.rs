//! The protocol names of qemu and libvirt, in one table.
//!
//! Two questions are asked of them, and each takes a named subset:
//!
//! * **network protocols** ([`network`], [`is_network`]): libvirt's
//!   `virStorageNetProtocol` — the `<source protocol='…'>` of a network disk
//!   and the schemes a backing URI may name (`nbd://`, `gluster+unix://`, …;
//!   the URI parser refuses any other). The page offers the same list
//!   (through the wasm API, `networkProtocols()`).
//! * **qemu protocol drivers** ([`is_protocol`]): every name above plus
//!   qemu's drivers for local storage (`file`, `host_device`, `host_cdrom`,
//!   `nvme`). qemu accepts any of them where a format is expected; recorded
//!   as a backing "format" (`-F file`), libvirt maps it to raw, so the
//!   backing is opened as raw and its header is guest data.

/// Where a protocol's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Over the network: a libvirt network protocol and a URI scheme.
    Network,
    /// A qemu driver for local storage (a file, a device, an NVMe namespace).
    Local,
}

/// One protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// The name as qemu and libvirt write it (`nbd`, `host_device`, …).
    pub name: &'static str,
    /// Network or local.
    pub kind: Kind,
}

const fn net(name: &'static str) -> Protocol {
    Protocol {
        name,
        kind: Kind::Network,
    }
}

const fn local(name: &'static str) -> Protocol {
    Protocol {
        name,
        kind: Kind::Local,
    }
}

/// Every protocol name: the network ones in the order of libvirt's
/// `virStorageNetProtocol` enum, then qemu's local drivers.
pub const ALL: [Protocol; 17] = [
    net("nbd"),
    net("rbd"),
    net("sheepdog"),
    net("gluster"),
    net("iscsi"),
    net("http"),
    net("https"),
    net("ftp"),
    net("ftps"),
    net("tftp"),
    net("ssh"),
    net("vxhs"),
    net("nfs"),
    local("file"),
    local("host_device"),
    local("host_cdrom"),
    local("nvme"),
];

/// The network protocols (libvirt's `<source protocol>`, backing URI
/// schemes), in libvirt's order.
pub fn network() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .filter(|p| p.kind == Kind::Network)
        .map(|p| p.name)
}

/// Is `name` a network protocol a backing URI may name (lowercase)?
pub fn is_network(name: &str) -> bool {
    ALL.iter()
        .any(|p| p.kind == Kind::Network && p.name == name)
}

/// Is `name` a qemu protocol driver (network or local)? Recorded as a
/// backing format, it is not a format: libvirt opens the backing as raw.
pub fn is_protocol(name: &str) -> bool {
    ALL.iter().any(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets() {
        let net: Vec<&str> = network().collect();
        assert_eq!(net.len(), 13);
        assert!(net.iter().all(|&p| is_network(p) && is_protocol(p)));
        for p in ["file", "host_device", "host_cdrom", "nvme"] {
            assert!(is_protocol(p) && !is_network(p), "{p}");
        }
        assert!(!is_protocol("qcow2") && !is_protocol("raw") && !is_network("NBD"));
        let mut names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
