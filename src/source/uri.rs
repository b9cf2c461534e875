//! Backing names that are URIs: `proto[+transport]://[user@]host[:port]/path[?query]`.
//!
//! A small hand-written RFC 3986 splitter (scheme, authority, path, query,
//! fragment) — the names qemu writes need nothing more, and it keeps IDNA
//! tables out of the wasm. Behaviour follows libvirt's
//! `virStorageSourceParseBackingURI`: the path is percent-decoded and one
//! leading `/` dropped; `socket=` in the query gives a unix socket; http(s)
//! keep the raw query; gluster splits `vol/path`; default ports only for tcp
//! hosts.

use super::{
    assign_default_ports, credentials_dropped, parse_port, Host, NameError, Parsed, StorageSource,
};

/// The pieces of a URI, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParts<'a> {
    /// Before `://`, with any `+transport` (`gluster+unix`).
    pub scheme: &'a str,
    /// Before `@` in the authority: credentials, which the parser drops
    /// and says so.
    pub userinfo: Option<&'a str>,
    /// Without IPv6 brackets.
    pub host: &'a str,
    /// After the host's `:`, as written.
    pub port: Option<&'a str>,
    /// From the `/` after the authority up to `?` or `#`.
    pub path: &'a str,
    /// After `?`, up to `#`.
    pub query: Option<&'a str>,
}

/// Split a URI into its parts (RFC 3986, section 3). Only the `scheme://`
/// form (with an authority) is accepted.
pub fn split(s: &str) -> Result<UriParts<'_>, NameError> {
    let bad = |why: &str| NameError::new(format!("malformed URI '{s}': {why}"));
    let (scheme, rest) = crate::text::split_once(s, "://").ok_or_else(|| bad("no '://'"))?;
    let mut chars = scheme.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(bad("the scheme must start with a letter")),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return Err(bad("invalid character in the scheme"));
    }
    // Fragment first, then query, then authority / path.
    let rest = rest.split_once('#').map_or(rest, |(a, _)| a);
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| bad("unclosed '[' in the host"))?;
        let host = &v6[..end];
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'))
        {
            return Err(bad("invalid IPv6 address"));
        }
        let after = &v6[end + 1..];
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        (host, port)
    } else {
        let (h, p) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if h.as_bytes().contains(&b':') {
            return Err(bad("an IPv6 address must be written in brackets"));
        }
        (h, p)
    };
    if host.contains(['[', ']', ' ', '\\']) {
        return Err(bad("invalid character in the host"));
    }
    Ok(UriParts {
        scheme,
        userinfo,
        host,
        port: port.filter(|p| !p.is_empty()),
        path,
        query,
    })
}

/// Percent-decode (`%XX`); the result must be UTF-8 without NUL.
pub fn percent_decode(s: &str) -> Result<String, NameError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| NameError::new(format!("bad percent-escape in '{s}'")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(NameError::new(format!("'{s}' decodes to a NUL byte")));
    }
    String::from_utf8(out).map_err(|_| NameError::new(format!("'{s}' does not decode to UTF-8")))
}

/// Parse a backing URI into a network source.
pub fn parse(s: &str) -> Result<Parsed, NameError> {
    let parts = split(s)?;
    let (proto, transport) = match parts.scheme.split_once('+') {
        Some((p, t)) => (p, Some(t)),
        None => (parts.scheme, None),
    };
    let proto = proto.to_ascii_lowercase();
    if !super::protocol::is_network(&proto) {
        return Err(NameError::new(format!(
            "invalid backing protocol '{proto}' in '{s}'"
        )));
    }
    let transport = match transport.map(|t| t.to_ascii_lowercase()).as_deref() {
        None | Some("tcp") => None,
        Some("unix") => Some("unix".to_string()),
        Some("rdma") => Some("rdma".to_string()),
        Some(t) => {
            return Err(NameError::new(format!(
                "invalid transport '{t}' in '{s}' (tcp, unix or rdma)"
            )))
        }
    };
    let mut diagnostics = Vec::new();
    let mut src = StorageSource::network(&proto);
    let mut host = Host {
        transport: transport.clone(),
        ..Default::default()
    };
    if let Some(u) = parts.userinfo {
        let user = u.split([':', '%']).next().unwrap_or("");
        let what = if u.len() > user.len() {
            format!("user '{user}' and a password")
        } else {
            format!("user '{user}'")
        };
        diagnostics.push(credentials_dropped(&what));
    }
    if !parts.host.is_empty() {
        host.name = Some(percent_decode(parts.host)?);
    }
    if let Some(p) = parts.port {
        host.port = parse_port(p)?;
    }
    if let Some(q) = parts.query {
        if proto == "http" || proto == "https" {
            src.push_extra("query", q);
        } else {
            for kv in q.split('&') {
                if let Some(sock) = kv.strip_prefix("socket=") {
                    host.socket = Some(percent_decode(sock)?);
                }
            }
        }
    }
    if transport.is_none() && host.name.is_none() {
        return Err(NameError::new(format!("the URI '{s}' names no host")));
    }
    if transport.as_deref() == Some("unix") && host.socket.is_none() {
        return Err(NameError::new(format!(
            "'{s}' uses the unix transport but gives no '?socket=PATH'"
        )));
    }
    let path = percent_decode(parts.path)?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    if proto == "gluster" {
        match path.find('/') {
            Some(i) if i > 0 && i + 1 < path.len() => {}
            _ => {
                return Err(NameError::new(format!(
                    "missing volume name or file name in gluster source path '{path}'"
                )))
            }
        }
    }
    src.name = if proto == "nbd" && path.is_empty() {
        None
    } else {
        Some(path.to_string())
    };
    src.hosts.push(host);
    assign_default_ports(&mut src);
    Ok(Parsed {
        source: src,
        diagnostics,
    })
}
