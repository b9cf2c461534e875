//! Names an image makes qemu open besides itself (a qcow2 external data
//! file, VMDK extents) judged the way OpenStack's `format_inspector` and the
//! CVE-2024-4467 fixes judge them: anything that is not a plain file next
//! to the image is a reason to look twice before qemu opens it.

use crate::diag::Severity;
use crate::source;

/// Directories images usually live in (the same list the chain layer uses
/// for `--untrusted`).
pub const IMAGE_DIRS: [&str; 14] = [
    "/var/lib/libvirt/",
    "/var/lib/nova/",
    "/var/lib/images/",
    "/var/lib/vz/",
    "/var/lib/one/",
    "/var/tmp/",
    "/home/",
    "/srv/",
    "/mnt/",
    "/media/",
    "/data/",
    "/images/",
    "/vm/",
    "/tmp/",
];

/// Is `p` under a directory images usually live in?
pub fn in_image_dir(p: &str) -> bool {
    IMAGE_DIRS.iter().any(|d| p.starts_with(d))
}

/// What kind of name a header gives for a file qemu opens with the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A file name in the image's own directory (`disk-flat.vmdk`).
    Plain,
    /// A relative path into a sub-directory (`disks/disk-flat.vmdk`).
    SubDirectory,
    /// A relative path that climbs out of the image's directory (`../x`).
    ClimbsOut,
    /// An absolute path under a usual image directory.
    AbsoluteImageDir,
    /// An absolute path elsewhere (`/etc/hosts`).
    Absolute,
    /// A device node (`/dev/…`).
    Device,
    /// A `json:` name, a URL or another protocol prefix (`nbd:`, `http://`):
    /// qemu parses it into a driver and options, not a file.
    Protocol,
    /// Empty.
    Empty,
}

impl NameKind {
    /// Classify `name` as written in the header.
    pub fn of(name: &str) -> NameKind {
        if name.is_empty() {
            NameKind::Empty
        } else if name.starts_with("json:") || !source::is_file_name(name) {
            NameKind::Protocol
        } else if name.starts_with("/dev/") {
            NameKind::Device
        } else if source::is_absolute(name) {
            if in_image_dir(name) && !name.split('/').any(|c| c == "..") {
                NameKind::AbsoluteImageDir
            } else {
                NameKind::Absolute
            }
        } else if climbs_out(name) {
            NameKind::ClimbsOut
        } else if name.as_bytes().contains(&b'/') {
            NameKind::SubDirectory
        } else {
            NameKind::Plain
        }
    }

    /// How bad it is for a file qemu opens along with the image: a plain
    /// name or one under an image directory is worth a warning, one that
    /// reaches anywhere else (or into a protocol) an error.
    pub fn severity(self) -> Severity {
        match self {
            NameKind::Plain | NameKind::SubDirectory | NameKind::AbsoluteImageDir => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }

    /// Why, in words, for a diagnostic message.
    pub fn reason(self) -> &'static str {
        match self {
            NameKind::Plain => "a file next to the image",
            NameKind::SubDirectory => {
                "a relative path into a sub-directory of the image's directory"
            }
            NameKind::ClimbsOut => "a relative path that climbs out of the image's directory",
            NameKind::AbsoluteImageDir => "an absolute path under a usual image directory",
            NameKind::Absolute => "an absolute path outside the usual image directories",
            NameKind::Device => "a device node",
            NameKind::Protocol => {
                "a json:, URL or protocol name: qemu opens whatever driver and host it names, \
                 not a file (the CVE-2024-4467 class)"
            }
            NameKind::Empty => "an empty name",
        }
    }
}

/// Does a relative path go above its starting directory?
fn climbs_out(p: &str) -> bool {
    let mut depth: i64 = 0;
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::NameKind::*;
    use super::*;

    #[test]
    fn kinds() {
        for (name, kind) in [
            ("disk-flat.vmdk", Plain),
            ("a/b.vmdk", SubDirectory),
            ("a/../../b", ClimbsOut),
            ("../b", ClimbsOut),
            ("/var/lib/libvirt/images/d.raw", AbsoluteImageDir),
            ("/var/lib/libvirt/images/../../../etc/passwd", Absolute),
            ("/etc/hosts", Absolute),
            ("/dev/sda", Device),
            ("json:{\"file.driver\":\"nbd\"}", Protocol),
            ("nbd:host:10809", Protocol),
            ("http://host/x", Protocol),
            ("", Empty),
        ] {
            assert_eq!(NameKind::of(name), kind, "{name}");
        }
        assert_eq!(Plain.severity(), Severity::Warning);
        assert_eq!(Protocol.severity(), Severity::Error);
    }
}
