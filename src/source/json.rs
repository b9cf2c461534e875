//! `json:{…}` backing names (qemu's block-driver options as JSON).
//!
//! Steps, as libvirt's `virStorageSourceParseBackingJSON`:
//! 1. parse ([`crate::json`]: depth-bounded, no recursion; a key set twice
//!    is an error, as in qemu's parser);
//! 2. deflatten dotted keys (`"file.driver"`) into nested objects and
//!    objects keyed `0`, `1`, … into arrays, failing on colliding keys;
//! 3. strip an outer `{"file": …}` when the top has no `driver`;
//! 4. dispatch on `driver`. `raw` (only at the top) may carry
//!    `offset`/`size`, which become a storage slice.

use std::collections::BTreeMap;

use super::{
    assign_default_ports, colon, credentials_dropped, parse_port, uri, Host, NameError, Parsed,
    SourceType, StorageSource,
};
use crate::diag::{Code, Diagnostic};
use crate::json::{self, Object, Value};
use crate::limits::{MAX_BACKING_NAME_PARSE, MAX_JSON_DEPTH};

fn err(m: impl Into<String>) -> NameError {
    NameError::new(m)
}

fn too_deep() -> NameError {
    err(format!(
        "the JSON backing name nests deeper than {MAX_JSON_DEPTH} levels"
    ))
}

/// One member on its way into a deflattened object: the key components
/// still to place, the whole key (for messages) and the value.
struct Member {
    path: Vec<String>,
    full: String,
    value: Value,
}

/// Deflatten a value: its objects' dotted keys become nested objects and
/// index-keyed objects arrays. `depth` bounds the recursion (the parsed
/// value is at most [`MAX_JSON_DEPTH`] deep; dotted keys add levels).
fn deflatten(v: Value, depth: usize) -> Result<Value, NameError> {
    if depth > MAX_JSON_DEPTH {
        return Err(too_deep());
    }
    match v {
        Value::Object(m) => {
            let mut members = Vec::with_capacity(m.len());
            for (k, val) in m {
                let value = deflatten(val, depth + 1)?;
                let path: Vec<String> = k.split('.').map(str::to_string).collect();
                if path.len() > 1 && path.iter().any(String::is_empty) {
                    return Err(err(format!("empty component in the JSON key '{k}'")));
                }
                if depth + path.len() > MAX_JSON_DEPTH {
                    return Err(too_deep());
                }
                members.push(Member {
                    path,
                    full: k,
                    value,
                });
            }
            Ok(arrays(Value::Object(nest(members, depth)?)))
        }
        Value::Array(a) => Ok(Value::Array(
            a.into_iter()
                .map(|x| deflatten(x, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other),
    }
}

/// Build one object from members whose paths start at it: members are
/// grouped by their first component (in order of first appearance), and a
/// group of more than one member becomes an object of its own, merging the
/// members that are objects already. Anything else set twice is an error.
/// Each member is handled once per component of its path, through an
/// ordered map (n log n whatever the keys; the kind the XML reader uses).
fn nest(members: Vec<Member>, depth: usize) -> Result<Object, NameError> {
    let mut group_of = Vec::with_capacity(members.len());
    let mut firsts = 0;
    {
        let mut index: BTreeMap<&[u8], usize> = BTreeMap::new();
        for m in &members {
            let first = m.path.first().map_or(&b""[..], |p| p.as_bytes());
            let i = *index.entry(first).or_insert(firsts);
            firsts += usize::from(i == firsts);
            group_of.push(i);
        }
    }
    let mut groups: Vec<(String, Vec<Member>)> = Vec::with_capacity(firsts);
    for (mut m, i) in members.into_iter().zip(group_of) {
        let first = m.path.remove(0);
        if i == groups.len() {
            groups.push((first, Vec::new()));
        }
        groups[i].1.push(m);
    }
    let mut out = Object::new();
    for (key, mut group) in groups {
        if group.len() == 1 && group[0].path.is_empty() {
            let m = group.remove(0);
            out.push_new(key, m.value);
            continue;
        }
        if depth >= MAX_JSON_DEPTH {
            return Err(too_deep());
        }
        let mut inner = Vec::with_capacity(group.len());
        let second = group.get(1).map(|m| m.full.clone()).unwrap_or_default();
        for (i, m) in group.into_iter().enumerate() {
            match (m.path.is_empty(), m.value) {
                (false, value) => inner.push(Member {
                    path: m.path,
                    full: m.full,
                    value,
                }),
                (true, Value::Object(o)) => {
                    for (k, value) in o {
                        inner.push(Member {
                            path: vec![k],
                            full: m.full.clone(),
                            value,
                        });
                    }
                }
                (true, _) => {
                    let named = if i == 0 { second } else { m.full };
                    return Err(err(format!("the JSON backing name sets '{named}' twice")));
                }
            }
        }
        out.push_new(key, arrays(Value::Object(nest(inner, depth + 1)?)));
    }
    Ok(out)
}

/// An object whose keys are exactly `0`..`n-1` (as written by qemu: no
/// leading zeros) as an array; anything else as it is.
fn arrays(v: Value) -> Value {
    let Value::Object(m) = v else {
        return v;
    };
    let n = m.len();
    let indexed = n > 0
        && m.iter().all(|(k, _)| {
            k.bytes().all(|b| b.is_ascii_digit())
                && (k == "0" || !k.starts_with('0'))
                && k.parse::<usize>().is_ok_and(|i| i < n)
        });
    if !indexed {
        return Value::Object(m);
    }
    // Keys are unique, so they are a permutation of 0..n.
    let mut slots: Vec<Option<Value>> = (0..n).map(|_| None).collect();
    for (k, v) in m {
        if let Some(slot) = k.parse::<usize>().ok().and_then(|i| slots.get_mut(i)) {
            *slot = Some(v);
        }
    }
    Value::Array(slots.into_iter().flatten().collect())
}

/// Parse the text after `json:`.
pub fn parse(text: &str) -> Result<Parsed, NameError> {
    let limits = json::Limits {
        depth: MAX_JSON_DEPTH,
        bytes: MAX_BACKING_NAME_PARSE,
    };
    let root = json::parse(text, limits).map_err(|e| match e.kind {
        json::ErrorKind::TooDeep(_) => too_deep(),
        _ => err(format!("the JSON backing name is not valid JSON: {e}")),
    })?;
    if !matches!(root, Value::Object(_)) {
        return Err(err("the JSON backing name is not a JSON object"));
    }
    let root = deflatten(root, 0)?;
    let Value::Object(mut top) = root else {
        return Err(err("the JSON backing name is not a JSON object"));
    };
    let obj = if top.contains_key("driver") {
        top
    } else {
        match top.remove("file") {
            Some(Value::Object(f)) => f,
            _ => return Err(err("the JSON backing name lacks a driver name")),
        }
    };
    let mut diags = Vec::new();
    let source = driver(&obj, true, &mut diags)?;
    Ok(Parsed {
        source,
        diagnostics: diags,
    })
}

type Obj = Object;

fn get_str<'a>(o: &'a Obj, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// A string, or a number written as one.
fn get_scalar(o: &Obj, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.as_str().to_string()),
        _ => None,
    }
}

fn need_str<'a>(o: &'a Obj, k: &str, driver: &str) -> Result<&'a str, NameError> {
    get_str(o, k).ok_or_else(|| {
        err(format!(
            "the JSON backing name for driver '{driver}' lacks '{k}'"
        ))
    })
}

/// A non-negative integer given as a number or a numeric string.
fn get_u64(o: &Obj, k: &str) -> Result<Option<u64>, NameError> {
    match o.get(k) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| err(format!("malformed '{k}' in the JSON backing name"))),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| err(format!("malformed '{k}' in the JSON backing name"))),
        Some(_) => Err(err(format!("malformed '{k}' in the JSON backing name"))),
    }
}

fn port_of(o: &Obj, k: &str) -> Result<Option<u16>, NameError> {
    match get_scalar(o, k) {
        None => Ok(None),
        Some(p) => parse_port(&p),
    }
}

/// A qemu `SocketAddress` (`inet`/`tcp` with host/port, `unix` with path).
fn socket_address(o: &Obj) -> Result<Host, NameError> {
    let ty = get_str(o, "type").unwrap_or("inet");
    match ty {
        "inet" | "tcp" => Ok(Host {
            name: Some(
                get_str(o, "host")
                    .ok_or_else(|| err("a server address lacks 'host'"))?
                    .to_string(),
            ),
            port: port_of(o, "port")?,
            ..Default::default()
        }),
        "unix" => {
            let p = get_str(o, "path")
                .or_else(|| get_str(o, "socket"))
                .ok_or_else(|| err("a unix server address lacks 'path'"))?;
            Ok(Host {
                transport: Some("unix".into()),
                socket: Some(p.to_string()),
                ..Default::default()
            })
        }
        t => Err(err(format!("unsupported server address type '{t}'"))),
    }
}

/// `server`: one address object, or an array of them.
fn servers(o: &Obj, driver: &str) -> Result<Vec<Host>, NameError> {
    match o.get("server") {
        Some(Value::Object(s)) => Ok(vec![socket_address(s)?]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| err("a server entry is not an object"))
                    .and_then(socket_address)
            })
            .collect(),
        _ => Err(err(format!(
            "the JSON backing name for driver '{driver}' lacks 'server'"
        ))),
    }
}

fn driver(
    o: &Obj,
    allow_format: bool,
    diags: &mut Vec<Diagnostic>,
) -> Result<StorageSource, NameError> {
    let drv =
        get_str(o, "driver").ok_or_else(|| err("the JSON backing name lacks a driver name"))?;
    let mut src = match drv {
        "file" | "host_device" | "host_cdrom" => StorageSource {
            kind: if drv == "file" {
                SourceType::File
            } else {
                SourceType::Block
            },
            path: Some(need_str(o, "filename", drv)?.to_string()),
            ..Default::default()
        },
        "http" | "https" | "ftp" | "ftps" | "tftp" => url_driver(o, drv, diags)?,
        "gluster" => {
            if let Some(f) = get_str(o, "filename") {
                from_uri(f, drv, diags)?
            } else {
                let vol = need_str(o, "volume", drv)?;
                let path = need_str(o, "path", drv)?;
                let mut s = StorageSource::network(drv);
                s.name = Some(format!("{vol}/{path}"));
                s.hosts = servers(o, drv)?;
                s
            }
        }
        "iscsi" => {
            let portal = need_str(o, "portal", drv)?;
            let target = need_str(o, "target", drv)?;
            let lun = get_u64(o, "lun")?.unwrap_or(0);
            let (host, port) = match portal.rfind(']') {
                Some(i) => match portal[i + 1..].strip_prefix(':') {
                    Some(p) => (&portal[..=i], Some(p)),
                    None => (portal, None),
                },
                None => match portal.split_once(':') {
                    Some((h, p)) if !p.as_bytes().contains(&b':') => (h, Some(p)),
                    _ => (portal, None),
                },
            };
            let mut s = StorageSource::network(drv);
            s.name = Some(format!("{target}/{lun}"));
            s.hosts.push(Host {
                name: Some(host.to_string()),
                port: match port {
                    Some(p) => parse_port(p)?,
                    None => None,
                },
                transport: match get_str(o, "transport") {
                    Some("iser") => Some("rdma".into()),
                    _ => None,
                },
                ..Default::default()
            });
            match (o.contains_key("user"), o.contains_key("password")) {
                (true, true) => diags.push(credentials_dropped("a user and a password")),
                (true, false) => diags.push(credentials_dropped("a user")),
                (false, true) => diags.push(credentials_dropped("a password")),
                _ => {}
            }
            s
        }
        "nbd" => {
            let mut s = StorageSource::network(drv);
            s.name = get_str(o, "export").map(str::to_string);
            if let Some(p) = get_str(o, "path") {
                s.hosts.push(Host {
                    transport: Some("unix".into()),
                    socket: Some(p.to_string()),
                    ..Default::default()
                });
            } else if let Some(h) = get_str(o, "host") {
                s.hosts.push(Host {
                    name: Some(h.to_string()),
                    port: port_of(o, "port")?,
                    ..Default::default()
                });
            } else if let Some(Value::Object(srv)) = o.get("server") {
                s.hosts.push(socket_address(srv)?);
            } else {
                return Err(err(
                    "the JSON backing name for driver 'nbd' names no server",
                ));
            }
            s
        }
        "ssh" => {
            let mut s = StorageSource::network(drv);
            s.name = Some(need_str(o, "path", drv)?.to_string());
            if let Some(h) = get_str(o, "host") {
                s.hosts.push(Host {
                    name: Some(h.to_string()),
                    port: port_of(o, "port")?,
                    ..Default::default()
                });
            } else if let Some(Value::Object(srv)) = o.get("server") {
                s.hosts.push(socket_address(srv)?);
            } else {
                return Err(err("the JSON backing name for driver 'ssh' names no host"));
            }
            if o.contains_key("password") {
                diags.push(credentials_dropped("a password"));
            }
            s
        }
        "rbd" => {
            if let Some(f) = get_str(o, "filename") {
                let p = colon::rbd(f)?;
                diags.extend(p.diagnostics);
                p.source
            } else {
                let pool = need_str(o, "pool", drv)?;
                let image = need_str(o, "image", drv)?;
                let mut s = StorageSource::network(drv);
                s.name = Some(format!("{pool}/{image}"));
                if o.contains_key("server") {
                    s.hosts = servers(o, drv)?;
                }
                if let Some(snap) = get_str(o, "snapshot") {
                    s.push_extra("snapshot", snap);
                }
                if let Some(c) = get_str(o, "conf") {
                    s.push_extra("config", c);
                }
                if let Some(u) = get_str(o, "user") {
                    diags.push(Diagnostic::info(
                        Code::AuthNeeded,
                        format!("the rbd source uses the ceph user '{u}': the disk needs <auth username='{u}'> with a secret"),
                    ));
                }
                s
            }
        }
        "sheepdog" => {
            if let Some(f) = get_str(o, "filename") {
                from_uri(f, drv, diags)?
            } else {
                let vdi = need_str(o, "vdi", drv)?;
                let mut s = StorageSource::network(drv);
                s.name = Some(vdi.to_string());
                s.hosts = servers(o, drv)?;
                s
            }
        }
        "vxhs" => {
            let id = need_str(o, "vdisk-id", drv)?;
            let mut s = StorageSource::network(drv);
            s.name = Some(id.to_string());
            s.hosts = servers(o, drv)?;
            s
        }
        "nfs" => {
            let path = need_str(o, "path", drv)?;
            let mut s = StorageSource::network(drv);
            s.name = Some(path.to_string());
            s.hosts = servers(o, drv)?;
            if let Some(u) = get_u64(o, "user")? {
                s.push_extra("user", format!("+{u}"));
            }
            if let Some(g) = get_u64(o, "group")? {
                s.push_extra("group", format!("+{g}"));
            }
            s
        }
        "nvme" => {
            let dev = need_str(o, "device", drv)?;
            if !super::is_pci_address(dev) {
                return Err(err(format!("'{dev}' is not a PCI address (DDDD:BB:SS.F)")));
            }
            let ns = get_u64(o, "namespace")?
                .ok_or_else(|| err("the JSON backing name for driver 'nvme' lacks 'namespace'"))?;
            let mut s = StorageSource {
                kind: SourceType::Nvme,
                ..Default::default()
            };
            s.push_extra("pci", dev);
            s.push_extra("namespace", ns.to_string());
            s
        }
        "raw" => {
            if !allow_format {
                return Err(err(
                    "the JSON backing name nests a format driver ('raw') inside another",
                ));
            }
            let offset = get_u64(o, "offset")?;
            let size = get_u64(o, "size")?;
            let Some(Value::Object(file)) = o.get("file") else {
                return Err(err("the JSON backing name for driver 'raw' lacks 'file'"));
            };
            let mut s = driver(file, false, diags)?;
            if offset.is_some() || size.is_some() {
                s.push_extra("offset", offset.unwrap_or(0).to_string());
                if let Some(sz) = size {
                    s.push_extra("size", sz.to_string());
                }
            }
            s
        }
        other => return Err(err(format!("no parser for JSON backing driver '{other}'"))),
    };
    if src.kind == SourceType::Network {
        assign_default_ports(&mut src);
    }
    Ok(src)
}

/// `filename` of gluster/sheepdog: a URI of the driver's own protocol.
fn from_uri(u: &str, drv: &str, diags: &mut Vec<Diagnostic>) -> Result<StorageSource, NameError> {
    let p = uri::parse(u)?;
    if p.source.protocol.as_deref() != Some(drv) {
        return Err(err(format!(
            "the URI '{u}' does not match the JSON driver '{drv}'"
        )));
    }
    diags.extend(p.diagnostics);
    Ok(p.source)
}

/// http, https, ftp, ftps, tftp: `url` plus curl options.
fn url_driver(o: &Obj, drv: &str, diags: &mut Vec<Diagnostic>) -> Result<StorageSource, NameError> {
    let u = need_str(o, "url", drv)?;
    let mut s = from_uri(u, drv, diags)?;
    if (drv == "https" || drv == "ftps") && o.contains_key("sslverify") {
        let verify = match o.get("sslverify") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) if v == "off" || v == "false" => false,
            Some(Value::String(v)) if v == "on" || v == "true" => true,
            _ => return Err(err("malformed 'sslverify' in the JSON backing name")),
        };
        s.push_extra("sslverify", if verify { "yes" } else { "no" });
    }
    if drv == "http" || drv == "https" {
        if let Some(c) = o.get("cookie") {
            let c = c
                .as_str()
                .ok_or_else(|| err("malformed 'cookie' in the JSON backing name"))?;
            for part in c.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = part
                    .split_once('=')
                    .ok_or_else(|| err(format!("malformed cookie '{part}'")))?;
                s.push_extra(&format!("cookie:{}", name.trim()), value.trim());
            }
        }
    }
    if let Some(r) = get_u64(o, "readahead")? {
        s.push_extra("readahead", r.to_string());
    }
    if let Some(t) = get_u64(o, "timeout")? {
        s.push_extra("timeout", t.to_string());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> Result<String, String> {
        parse(name)
            .map(|p| p.source.path.unwrap_or_default())
            .map_err(|e| e.message)
    }

    #[test]
    fn a_key_set_twice_is_an_error_as_in_qemu() {
        let e = path(r#"{"driver":"file","filename":"/a","filename":"/b"}"#).unwrap_err();
        assert_eq!(
            e,
            "the JSON backing name is not valid JSON: the key \"filename\" is set twice at byte 33"
        );
        // Once dotted keys are spread out too.
        for (name, key) in [
            (r#"{"file.driver":"file","file":{"driver":"file"}}"#, "file"),
            (
                r#"{"file":{"driver":"file"},"file.driver":"file"}"#,
                "file.driver",
            ),
            (
                r#"{"file.filename":"/a","file.filename.x":"/b"}"#,
                "file.filename.x",
            ),
            (r#"{"a.b":1,"a.c":2,"a":3}"#, "a"),
        ] {
            assert_eq!(
                path(name).unwrap_err(),
                format!("the JSON backing name sets '{key}' twice"),
                "{name}"
            );
        }
    }

    #[test]
    fn objects_and_dotted_keys_merge() {
        assert_eq!(
            path(r#"{"file":{"driver":"file"},"file.filename":"/x"}"#).as_deref(),
            Ok("/x")
        );
        assert_eq!(
            path(r#"{"driver":"raw","file.filename":"/y","file":{"driver":"file"}}"#).as_deref(),
            Ok("/y")
        );
    }

    #[test]
    fn only_exact_indexes_make_arrays() {
        let obj = |keys: &[&str]| {
            Value::Object(
                keys.iter()
                    .map(|k| (k.to_string(), Value::Bool(true)))
                    .collect(),
            )
        };
        assert!(matches!(arrays(obj(&["1", "0", "2"])), Value::Array(a) if a.len() == 3));
        for keys in [&["0", "2"][..], &["00", "1"], &["+0"], &["0", "x"], &[]] {
            assert!(matches!(arrays(obj(keys)), Value::Object(_)), "{keys:?}");
        }
        // Placed by index, not by the order they were written in.
        let v = parse(
            r#"{"driver":"gluster","volume":"v","path":"p","server.1.host":"b","server.0.host":"a"}"#,
        )
        .unwrap();
        let names: Vec<_> = v.source.hosts.iter().map(|h| h.name.clone()).collect();
        assert_eq!(names, [Some("a".to_string()), Some("b".to_string())]);
    }

    #[test]
    fn many_dotted_keys_take_n_log_n_time() {
        // 60,000 keys under one dotted prefix, near the 1 MiB cap.
        let mut name = String::from(r#"{"driver":"file","filename":"/x""#);
        for i in 0..60_000 {
            name.push_str(&format!(r#","pad.k{i}":0"#));
        }
        name.push('}');
        assert!(name.len() < MAX_BACKING_NAME_PARSE);
        let t = std::time::Instant::now();
        assert_eq!(path(&name).as_deref(), Ok("/x"));
        // Quadratic work took 44 s here (a search per key); this is under a
        // second.
        assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    }

    #[test]
    fn numbers_stay_exact() {
        let base = r#""file":{"driver":"file","filename":"/x"}"#;
        let slice = |v: &str| {
            parse(&format!(r#"{{"driver":"raw","size":{v},{base}}}"#))
                .map(|p| p.source)
                .map_err(|e| e.message)
        };
        let s = slice("18446744073709551615").unwrap();
        assert!(format!("{s:?}").contains("18446744073709551615"), "{s:?}");
        for bad in ["18446744073709551616", "1e3", "1.0", "-1", "1e999999"] {
            assert_eq!(
                slice(bad).unwrap_err(),
                "malformed 'size' in the JSON backing name",
                "{bad}"
            );
        }
    }
}
