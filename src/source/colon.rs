//! qemu's legacy colon forms: `nbd:HOST:PORT[:exportname=X]`,
//! `nbd:unix:/sock[:exportname=X]`, `nbd:[::1]:P`, and
//! `rbd:pool/image[@snap][:opt=val…]` with `\`-escapes.

use super::{
    assign_default_ports, credentials_dropped, parse_port, Host, NameError, Parsed, StorageSource,
};
use crate::diag::{Code, Diagnostic};

/// Parse a colon-form backing name (`nbd:…`, `rbd:…`).
pub fn parse(s: &str) -> Result<Parsed, NameError> {
    let proto = s.split(':').next().unwrap_or_default();
    match proto {
        "nbd" => nbd(s),
        "rbd" => rbd(s),
        _ => Err(NameError::new(format!(
            "no parser for backing names of the form '{proto}:…' (write a relative file name with a ':' as './{s}')"
        ))),
    }
}

/// `nbd:…`, the way qemu (and libvirt) cut it: `:exportname=` first, then
/// `unix:PATH` or `HOST:PORT` / `[V6]:PORT`.
pub fn nbd(s: &str) -> Result<Parsed, NameError> {
    let malformed = || NameError::new(format!("malformed nbd backing name '{s}'"));
    let mut src = StorageSource::network("nbd");
    let mut rest = s;
    if let Some(i) = crate::text::find(s, ":exportname=") {
        src.name = Some(s[i + ":exportname=".len()..].to_string());
        rest = &s[..i];
    }
    let spec = rest.strip_prefix("nbd:").ok_or_else(malformed)?;
    if spec.is_empty() {
        return Err(malformed());
    }
    let mut host = Host::default();
    if let Some(path) = spec.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(malformed());
        }
        host.transport = Some("unix".into());
        host.socket = Some(path.to_string());
    } else {
        let (name, port) = if let Some(v6) = spec.strip_prefix('[') {
            let (h, p) = crate::text::split_once(v6, "]:").ok_or_else(malformed)?;
            (h, p)
        } else {
            spec.split_once(':').ok_or_else(malformed)?
        };
        if name.is_empty() {
            return Err(malformed());
        }
        host.name = Some(name.to_string());
        host.port = parse_port(port)?;
    }
    src.hosts.push(host);
    assign_default_ports(&mut src);
    Ok(Parsed::plain(src))
}

/// Split on unescaped `sep`, removing the `\` of every escape.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                if let Some(last) = out.last_mut() {
                    last.push(n);
                }
            }
        } else if c == sep {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// One `mon_host` entry (escapes removed): `host`, `host:port`, `[v6]:port`.
fn rbd_host(h: &str) -> Result<Host, NameError> {
    let (name, port) =
        if let Some(v6) = h.strip_prefix('[') {
            match v6.split_once(']') {
                Some((n, "")) => (n, None),
                Some((n, p)) => (
                    n,
                    Some(p.strip_prefix(':').ok_or_else(|| {
                        NameError::new(format!("malformed rbd monitor host '{h}'"))
                    })?),
                ),
                None => return Err(NameError::new(format!("malformed rbd monitor host '{h}'"))),
            }
        } else if h.matches(':').count() == 1 {
            let (n, p) = h.split_once(':').unwrap_or((h, ""));
            (n, Some(p))
        } else {
            (h, None)
        };
    Ok(Host {
        name: Some(name.to_string()),
        port: match port {
            Some(p) => parse_port(p)?,
            None => None,
        },
        ..Default::default()
    })
}

/// `rbd:pool/image[@snap][:opt=val…]` (`rbd:` prefix optional, for the
/// `filename` of `json:{"driver":"rbd"}`).
pub fn rbd(s: &str) -> Result<Parsed, NameError> {
    let body = s.strip_prefix("rbd:").unwrap_or(s);
    let mut fields = split_escaped(body, ':').into_iter();
    let image = fields.next().unwrap_or_default();
    let mut src = StorageSource::network("rbd");
    let mut diagnostics = Vec::new();
    let (image, snap) = match image.split_once('@') {
        Some((i, s)) => (i.to_string(), Some(s.to_string())),
        None => (image, None),
    };
    if image.is_empty() {
        return Err(NameError::new(format!(
            "rbd backing name '{s}' names no image"
        )));
    }
    src.name = Some(image);
    let mut config = None;
    for opt in fields {
        let (k, v) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        match k {
            "mon_host" => {
                for h in v.split([';', ',', ' ']).filter(|h| !h.is_empty()) {
                    src.hosts.push(rbd_host(h)?);
                }
            }
            "conf" => config = Some(v.to_string()),
            "key" | "password" => diagnostics.push(credentials_dropped("a cephx key")),
            "id" => diagnostics.push(Diagnostic::info(
                Code::AuthNeeded,
                format!("the rbd name uses the ceph user '{v}': the disk needs <auth username='{v}'> with a secret"),
            )),
            _ => {}
        }
    }
    if let Some(snap) = snap {
        src.push_extra("snapshot", snap);
    }
    if let Some(c) = config {
        src.push_extra("config", c);
    }
    Ok(Parsed {
        source: src,
        diagnostics,
    })
}
