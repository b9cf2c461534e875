//! `backing_chain::json_out`, the compact JSON writer of the wasm's answers
//! (issue 18), against its oracle `serde_json::to_string`: every serde
//! shape the crate's types use, strings (escaping) and integers at random,
//! what it refuses, and the metadata walks' answers on images qemu-img
//! makes. (The probe facts of every format, forests, XML outputs and audits
//! are checked where their fixtures are: `tests/golden.rs`,
//! `tests/formats.rs`, `tests/safety.rs`.)

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use backing_chain::image::{self, Range};
use backing_chain::json_out;
use backing_chain::meta::{self, Walk, WalkOptions};
use common::same_json;
use proptest::prelude::*;
use serde::Serialize;

// ---- Every shape the crate's types use ----

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Facts {
    virtual_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_size: Option<u32>,
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    snapshots: Vec<Snapshot>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dirty: bool,
    #[serde(skip)]
    #[allow(dead_code)]
    hidden: u8,
    #[serde(flatten)]
    extra: Extra,
    header: Header,
    link: Link,
    step: Step,
    pairs: Vec<(u64, String)>,
    text: BTreeMap<String, String>,
    by_depth: BTreeMap<u32, i64>,
    nothing: Option<String>,
    unit: (),
    id: Id,
    boxed: Box<Snapshot>,
    letter: char,
    marker: Marker,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Qcow2,
    RawData,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "kebab-case")]
struct Snapshot {
    name: String,
    vm_state_size: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Extra {
    data_file: Option<String>,
    #[serde(rename = "match")]
    matched: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Header {
    One(Box<Snapshot>),
    Two { a: u16, b: Vec<u8> },
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
enum Link {
    None,
    Found { index: usize },
    Missing(Snapshot),
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "value")]
enum Step {
    Need(Vec<u64>),
    Done(Snapshot),
    Stopped,
}

#[derive(Serialize)]
struct Id(String);

#[derive(Serialize)]
struct Marker;

/// Externally tagged variants (serde's default).
#[derive(Serialize)]
enum Outer {
    Unit,
    New(i32),
    Tuple(u8, String),
    Struct { x: i8, y: Option<bool> },
}

fn snapshot(name: &str, size: i64) -> Snapshot {
    Snapshot {
        name: name.into(),
        vm_state_size: size,
    }
}

#[test]
fn every_shape_the_crate_uses() {
    let full = Facts {
        virtual_size: u64::MAX,
        cluster_size: Some(65536),
        kind: Kind::RawData,
        snapshots: vec![snapshot("s1", -1), snapshot("", i64::MIN)],
        dirty: true,
        hidden: 7,
        extra: Extra {
            data_file: Some("data \"x\"\n".into()),
            matched: false,
        },
        header: Header::Two {
            a: 512,
            b: vec![0, 255],
        },
        link: Link::Missing(snapshot("gone", 0)),
        step: Step::Need(vec![0, 1, u64::MAX]),
        pairs: vec![(1, "a".into()), (2, String::new())],
        text: [("k\u{1}".to_string(), "v\u{7f}é".to_string())].into(),
        by_depth: [(0, -5), (u32::MAX, i64::MAX)].into(),
        nothing: None,
        unit: (),
        id: Id("\u{1f600}".into()),
        boxed: Box::new(snapshot("b", 1)),
        letter: '"',
        marker: Marker,
    };
    same_json(&full, "full");
    let bare = Facts {
        virtual_size: 0,
        cluster_size: None,
        kind: Kind::Qcow2,
        snapshots: Vec::new(),
        dirty: false,
        hidden: 0,
        extra: Extra {
            data_file: None,
            matched: true,
        },
        header: Header::One(Box::new(snapshot("h", 2))),
        link: Link::None,
        step: Step::Stopped,
        pairs: Vec::new(),
        text: BTreeMap::new(),
        by_depth: BTreeMap::new(),
        nothing: Some("s".into()),
        unit: (),
        id: Id(String::new()),
        boxed: Box::new(snapshot("", 0)),
        letter: 'é',
        marker: Marker,
    };
    same_json(&bare, "bare");
    same_json(
        &Link::Found { index: 3 },
        "internally tagged struct variant",
    );
    same_json(&Step::Done(snapshot("d", 9)), "adjacently tagged");
    for o in [
        Outer::Unit,
        Outer::New(-3),
        Outer::Tuple(1, "t".into()),
        Outer::Struct { x: -1, y: None },
        Outer::Struct {
            x: 1,
            y: Some(true),
        },
    ] {
        same_json(&o, "externally tagged");
    }
    same_json(&Vec::<Outer>::new(), "empty array");
    same_json(&vec![vec![Vec::<u8>::new()]], "nested empty arrays");
    same_json(&(1u8, -2i16, 3u32, -4i64, ("x", true)), "tuples");
    same_json(&[Some(1u64), None], "options in an array");
    same_json(&BTreeMap::<String, ()>::new(), "empty map");
    same_json(&[(); 2], "units");
    same_json(
        &[i8::MIN as i64, i16::MIN.into(), i32::MIN.into()],
        "signed",
    );
    same_json(
        &[u8::MAX as u64, u16::MAX.into(), u32::MAX.into()],
        "unsigned",
    );
    let keys: BTreeMap<i64, u8> = [(-1, 1), (i64::MIN, 2), (7, 3)].into();
    same_json(&keys, "integer keys");
    let keys: BTreeMap<char, u8> = [('a', 1), ('\n', 2)].into();
    same_json(&keys, "char keys");
    let keys: BTreeMap<Id2, u8> = [(Id2("n".into()), 1)].into();
    same_json(&keys, "newtype keys");
    let keys: BTreeMap<Kind2, u8> = [(Kind2::A, 1), (Kind2::B, 2)].into();
    same_json(&keys, "unit variant keys");
    // The crate's qemu-img JSON values (kept as read).
    let v = backing_chain::json::parse(
        r#"{"a":[1,-2,18446744073709551615,-9223372036854775808,1.5,1e400,null,true,{}],"b\u0001":"\"\\/\ud83d\ude00","":[]}"#,
        backing_chain::json::Limits {
            depth: 10,
            bytes: 1000,
        },
    )
    .unwrap();
    same_json(&v, "json::Value");
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Id2(String);

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
enum Kind2 {
    A,
    B,
}

// ---- What it refuses (the answers hold none): an error, not other text ----

struct Bytes;
impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b"ab")
    }
}

#[test]
fn refuses_what_the_answers_never_hold() {
    assert_eq!(json_out::to_string(&1.5f64), Err(json_out::Error));
    assert_eq!(json_out::to_string(&[0.0f32]), Err(json_out::Error));
    assert_eq!(json_out::to_string(&Bytes), Err(json_out::Error));
    assert_eq!(json_out::to_string(&1u128), Err(json_out::Error));
    assert_eq!(json_out::to_string(&-1i128), Err(json_out::Error));
    let bool_keys: BTreeMap<bool, u8> = [(true, 1)].into();
    assert_eq!(json_out::to_string(&bool_keys), Err(json_out::Error));
    let option_keys: BTreeMap<Option<u8>, u8> = [(None, 1)].into();
    assert_eq!(json_out::to_string(&option_keys), Err(json_out::Error));
    let seq_keys: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    assert_eq!(json_out::to_string(&seq_keys), Err(json_out::Error));
    // serde_json refuses the key kinds too (so the answers cannot hold them).
    assert!(serde_json::to_string(&option_keys).is_err());
    assert!(serde_json::to_string(&seq_keys).is_err());
}

// ---- Strings and integers at random ----

/// Strings rich in what is escaped: control characters, quotes,
/// backslashes, and multi-byte characters next to them.
fn escapable() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            (0u8..0x20).prop_map(char::from),
            Just('"'),
            Just('\\'),
            Just('/'),
            Just('\u{7f}'),
            Just('é'),
            Just('\u{2028}'),
            Just('\u{1f600}'),
            any::<char>(),
            proptest::char::range('a', 'z'),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Mixed {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    unsigned: u64,
    signed: i64,
    small: (u8, i8, u16, i16, u32, i32),
    map: BTreeMap<String, i64>,
    list: Vec<Option<String>>,
}

proptest! {
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them(
        s in any::<String>(),
        e in escapable(),
    ) {
        same_json(&s, "any string");
        same_json(&e, "escapable string");
        let key: BTreeMap<&str, &str> = [(e.as_str(), s.as_str())].into();
        same_json(&key, "as a map key");
    }

    #[test]
    fn integers_are_written_as_serde_json_writes_them(
        u in any::<u64>(),
        i in any::<i64>(),
        small in any::<(u8, i8, u16, i16, u32, i32)>(),
        k in any::<i32>(),
    ) {
        same_json(&(u, i, small), "integers");
        let keys: BTreeMap<i32, u64> = [(k, u)].into();
        same_json(&keys, "integer keys");
    }

    #[test]
    fn structs_of_them(
        name in escapable(),
        note in proptest::option::of(escapable()),
        unsigned in any::<u64>(),
        signed in any::<i64>(),
        small in any::<(u8, i8, u16, i16, u32, i32)>(),
        map in proptest::collection::btree_map(escapable(), any::<i64>(), 0..4),
        list in proptest::collection::vec(proptest::option::of(any::<String>()), 0..4),
    ) {
        same_json(&Mixed { name, note, unsigned, signed, small, map, list }, "struct");
    }
}

// ---- The metadata walks' answers (the `wasm-meta-only` module) ----

/// The wasm's metadata answers, as `src/wasm.rs` declares them.
#[derive(Serialize)]
struct WalkNeedAnswer<'a> {
    need: &'a [Range],
    plan: &'a meta::Plan,
}

#[derive(Serialize)]
struct LayerAnswer<'a> {
    layer: Option<&'a meta::Layer>,
}

#[derive(Serialize)]
struct ChainResultAnswer<'a> {
    commit: &'a [u64],
    map: &'a [meta::MapEntry],
    measure: &'a meta::Measure,
    summary: &'a meta::Summary,
}

#[derive(Serialize)]
struct ErrorAnswer<'a> {
    error: &'a str,
}

/// `qemu-io ARGS` in `dir` (qemu-img's runner is `common::qemu_img`).
fn qemu_io(args: &[&str], dir: &Path) {
    let o = Command::new("qemu-io")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("qemu-io: {e}"));
    assert!(o.status.success(), "qemu-io {args:?}: {o:?}");
}

/// Walk `name` as the page does (each step's reads and plan, then the
/// layer), checking every answer; the layer.
fn walk(dir: &Path, name: &str, opts: WalkOptions) -> Option<meta::Layer> {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let len = bytes.len() as u64;
    let read = |r: &Range| {
        let s = (r.offset as usize).min(bytes.len());
        let e = (r.offset.saturating_add(r.len) as usize).min(bytes.len());
        bytes[s..e].to_vec()
    };
    let (info, _) = image::probe_with(Some(len), |o, n| Ok::<_, ()>(read(&Range::new(o, n))))
        .unwrap_or_else(|_| panic!("{name}: probe"));
    let mut w = match Walk::new(&info, len, opts) {
        Ok(w) => w,
        Err(e) => {
            same_json(&e, name);
            same_json(
                &ErrorAnswer {
                    error: &e.to_string(),
                },
                name,
            );
            return None;
        }
    };
    same_json(&w.plan(), name);
    loop {
        let need = w.need().unwrap_or_else(|e| panic!("{name}: {e}"));
        if need.is_empty() {
            break;
        }
        same_json(
            &WalkNeedAnswer {
                need: &need,
                plan: &w.plan(),
            },
            name,
        );
        for r in need {
            w.feed(r, &read(&r)).unwrap();
        }
    }
    let layer = w.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
    same_json(
        &LayerAnswer {
            layer: Some(&layer),
        },
        name,
    );
    Some(layer)
}

#[test]
fn metadata_walk_answers() {
    if !(common::have_qemu_img() && common::tool("qemu-io")) {
        common::skip("qemu-img or qemu-io is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let q = |args: &[&str]| {
        common::qemu_img(dir, args);
    };
    let io = |fmt: &str, name: &str, cmds: &[&str]| {
        let mut a = vec!["-f", fmt];
        for c in cmds {
            a.extend(["-c", c]);
        }
        a.push(name);
        qemu_io(&a, dir);
    };
    q(&["create", "-q", "-f", "qcow2", "base.qcow2", "16M"]);
    io(
        "qcow2",
        "base.qcow2",
        &["write -P 1 0 1M", "write -z 2M 64k"],
    );
    q(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        "mid.qcow2",
    ]);
    io(
        "qcow2",
        "mid.qcow2",
        &["write -c -P 2 4M 64k", "discard 0 64k"],
    );
    q(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "extended_l2=on",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        "top.qcow2",
    ]);
    io("qcow2", "top.qcow2", &["write -P 3 8M 4k"]);
    q(&["snapshot", "-c", "snap", "top.qcow2"]);
    q(&["bitmap", "--add", "top.qcow2", "b0"]);
    let mut layers = Vec::new();
    for name in ["top.qcow2", "mid.qcow2", "base.qcow2"] {
        walk(dir, name, WalkOptions { check: false });
        layers.push(walk(dir, name, WalkOptions { check: true }).expect("walks"));
    }
    let refs: Vec<&meta::Layer> = layers.iter().collect();
    let map = meta::chain_map(&refs);
    let summary = meta::summary(refs.len(), &map);
    let measure = meta::measure(layers[0].virtual_size, &map, Some(65536));
    let commit: Vec<u64> = refs[..refs.len() - 1]
        .iter()
        .map(|l| meta::commit_bytes(l))
        .collect();
    assert!(map.len() > 3 && !summary.provides.is_empty());
    same_json(
        &ChainResultAnswer {
            commit: &commit,
            map: &map,
            measure: &measure,
            summary: &summary,
        },
        "chain",
    );
    // The other formats the walks read, and one they do not.
    for (fmt, name) in [
        ("vmdk", "a.vmdk"),
        ("vhdx", "a.vhdx"),
        ("vdi", "a.vdi"),
        ("qed", "a.qed"),
        ("vpc", "a.vpc"),
    ] {
        q(&["create", "-q", "-f", fmt, name, "8M"]);
        io(fmt, name, &["write -P 5 1M 64k"]);
        walk(dir, name, WalkOptions { check: true });
    }
    q(&["create", "-q", "-f", "parallels", "a.parallels", "8M"]);
    assert!(
        walk(dir, "a.parallels", WalkOptions::default()).is_none(),
        "not walked"
    );
    same_json(&LayerAnswer { layer: None }, "no layer");
}
