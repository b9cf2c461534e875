//! A small JSON reader for the core's two JSON inputs: `json:` backing names
//! (qemu's block options, [`crate::source`]) and `qemu-img info
//! --output=json` documents ([`crate::xml::qemu_json`]).
//!
//! Why not `serde_json::Value`: its parser, its `Map` (one more kind of
//! `BTreeMap`) and the float code its numbers carry were about a tenth of the
//! wasm (BENCHMARKS.md, issue 18); results are still written with
//! `serde_json`. This reader is RFC 8259 JSON, with:
//! - no recursion: nesting is kept on a heap stack and bounded by
//!   [`Limits::depth`] (the values it returns are never deeper, so dropping
//!   them cannot overflow the stack either), the text by [`Limits::bytes`];
//! - numbers kept exactly as written ([`Number`]): a 64-bit size is never
//!   rounded through a float, and a number too big for any type is still
//!   read (its users say which key is malformed);
//! - duplicate keys refused, as qemu's parser refuses them (`duplicate
//!   key`), in n log n time whatever the keys (an ordered map, not a hash
//!   set: in wasm std's hash keys are fixed, so whoever writes the keys
//!   could make every one collide); objects keep their keys in document
//!   order;
//! - errors with the byte offset where the text goes wrong.
//!
//! qemu's own parser also reads single-quoted strings and `\'` (its
//! extensions beyond RFC 8259); this one does not, as serde_json did not
//! before it, and says so in its message.

use std::collections::BTreeMap;
use std::fmt;

/// An object with more keys than this checks duplicates through an ordered
/// map (the kind the XML reader's attribute check uses: no new code); fewer,
/// by comparing each key with the ones before it.
const SMALL_OBJECT: usize = 16;

/// Bounds of one [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of objects and arrays (the top value's is 1).
    pub depth: usize,
    /// Longest text (bytes).
    pub bytes: usize,
}

/// A JSON value. Objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(Number),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Object),
}

/// A JSON number kept as its text (valid JSON number syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(String);

impl Number {
    /// The number as written in the document.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as a `u64`, when it is a plain non-negative integer that
    /// fits (`1.0`, `1e3` and `-0` are not).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The number as an `i64`, when it is a plain integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object: its members in document order, keys unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object(Vec::new())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Is `key` set?
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Take `key` out.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Set `key` (replacing its value if it is set).
    pub fn insert(&mut self, key: String, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Add a member whose key the caller knows is not set yet (no search:
    /// building a large object stays linear).
    pub(crate) fn push_new(&mut self, key: String, value: Value) {
        self.0.push((key, value));
    }

    /// The members in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No members?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Object {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(String, Value)> for Object {
    /// Members in order; a repeated key keeps its first place and its last
    /// value.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if this is a number that is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The value of `key`, if this is an object that sets it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

impl serde::Serialize for Value {
    /// Integers as `u64` or `i64`; any other number (a fraction, an
    /// exponent, an integer past 64 bits: qemu-img prints none) as a string
    /// of its exact text, never rounded through an `f64`. Objects in
    /// document order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => s.serialize_u64(u),
                (None, Some(i)) => s.serialize_i64(i),
                _ => s.serialize_str(&n.0),
            },
            Value::String(t) => s.serialize_str(t),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// What is wrong with a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not JSON: what was expected or found.
    Syntax(&'static str),
    /// Objects and arrays nest deeper than the limit.
    TooDeep(usize),
    /// The text is longer than the limit (bytes).
    TooLong(usize),
    /// An object sets this key twice.
    DuplicateKey(String),
}

/// A JSON text that cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the text.
    pub offset: usize,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Syntax(m) => f.write_str(m)?,
            ErrorKind::TooDeep(n) => write!(f, "objects and arrays nest deeper than {n} levels")?,
            ErrorKind::TooLong(n) => write!(f, "the text is longer than {n} bytes")?,
            ErrorKind::DuplicateKey(k) => write!(f, "the key \"{k}\" is set twice")?,
        }
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for Error {}

/// An object or array still open, with what it has so far.
enum Open {
    Array(Vec<Value>),
    Object {
        members: Object,
        /// Where each member's key starts.
        key_at: Vec<usize>,
        /// The key whose value is being read.
        key: String,
    },
}

/// The first key of `members` set twice, with where it is set again.
fn duplicate(members: &Object, key_at: &[usize]) -> Option<Error> {
    let keys = &members.0;
    let again = if keys.len() <= SMALL_OBJECT {
        (1..keys.len()).find(|&i| keys[..i].iter().any(|(k, _)| *k == keys[i].0))
    } else {
        let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
        (0..keys.len()).find(|&i| seen.insert(keys[i].0.as_bytes(), i).is_some())
    }?;
    Some(Error {
        offset: key_at.get(again).copied().unwrap_or(0),
        kind: ErrorKind::DuplicateKey(keys[again].0.clone()),
    })
}

const END: &str = "the text ends before the JSON value does";
const VALUE: &str = "expected a value";

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn err(&self, offset: usize, m: &'static str) -> Error {
        Error {
            offset,
            kind: ErrorKind::Syntax(m),
        }
    }

    /// The error for the byte at `at`: the end, or `m`.
    fn unexpected(&self, m: &'static str) -> Error {
        if self.at >= self.text.len() {
            self.err(self.at, END)
        } else {
            self.err(self.at, m)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skip whitespace, then take the next byte if it is `,` or `close`.
    fn separator(&mut self, close: u8) -> Option<u8> {
        self.skip_ws();
        let b = self.peek().filter(|b| *b == b',' || *b == close)?;
        self.at += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A key and its colon; `at` is on the opening quote (after spaces).
    fn key(&mut self) -> Result<(String, usize), Error> {
        self.skip_ws();
        let key_at = self.at;
        match self.peek() {
            Some(b'"') => {}
            Some(b'\'') => return Err(self.unexpected(SINGLE_QUOTE)),
            _ => return Err(self.unexpected("expected a key (a string in double quotes)")),
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.unexpected("expected ':' after the key"));
        }
        self.at += 1;
        Ok((key, key_at))
    }

    /// A string; `at` is on its opening quote.
    fn string(&mut self) -> Result<String, Error> {
        let bytes = self.text.as_bytes();
        self.at += 1;
        let mut out = String::new();
        let mut run = self.at;
        loop {
            let Some(&b) = bytes.get(self.at) else {
                return Err(self.err(self.at, END));
            };
            match b {
                b'"' => {
                    out.push_str(&self.text[run..self.at]);
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.text[run..self.at]);
                    out.push(self.escape()?);
                    run = self.at;
                }
                0..=0x1f => {
                    return Err(self.err(
                        self.at,
                        "a control character inside a string (it must be escaped)",
                    ))
                }
                _ => self.at += 1,
            }
        }
    }

    /// One escape; `at` is on its backslash, and is left after it.
    fn escape(&mut self) -> Result<char, Error> {
        let start = self.at;
        self.at += 1;
        let c = match self.peek() {
            None => return Err(self.err(self.at, END)),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.at += 1;
                let hi = self.hex4(start)?;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        if !self.text[self.at..].starts_with("\\u") {
                            return Err(self.err(start, LONE_SURROGATE));
                        }
                        self.at += 2;
                        let lo = self.hex4(start)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(self.err(start, LONE_SURROGATE));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.err(start, LONE_SURROGATE)),
                    c => c,
                };
                // Every value left is a scalar value.
                return char::from_u32(code).ok_or_else(|| self.err(start, LONE_SURROGATE));
            }
            Some(_) => {
                return Err(self.err(
                    start,
                    "an invalid escape in a string (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                ))
            }
        };
        self.at += 1;
        Ok(c)
    }

    /// Four hex digits at `at` (the escape starts at `start`).
    fn hex4(&mut self, start: usize) -> Result<u32, Error> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                None => return Err(self.err(self.at, END)),
                Some(b) => (b as char).to_digit(16),
            };
            let Some(d) = d else {
                return Err(self.err(start, "\\u must be followed by four hex digits"));
            };
            v = v * 16 + d;
            self.at += 1;
        }
        Ok(v)
    }

    fn digits(&mut self) -> bool {
        let from = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at > from
    }

    /// A number; `at` is on its first byte (`-` or a digit).
    fn number(&mut self) -> Result<Number, Error> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err(start, "a number with a leading zero"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.unexpected("a '-' not followed by a digit")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.digits() {
                return Err(self.unexpected("a number with no digit after its '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !self.digits() {
                return Err(self.unexpected("a number with no digit in its exponent"));
            }
        }
        Ok(Number(self.text[start..self.at].to_string()))
    }

    /// `true`, `false` or `null`.
    fn word(&mut self) -> Result<Value, Error> {
        for (w, v) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            if self.text[self.at..].starts_with(w) {
                self.at += w.len();
                return Ok(v);
            }
        }
        Err(self.err(self.at, VALUE))
    }
}

const LONE_SURROGATE: &str =
    "a \\u escape of a lone surrogate (a leading one must be followed by a trailing one)";
const SINGLE_QUOTE: &str = "a single-quoted string (JSON strings are in double quotes)";

/// Read a JSON text (one value, spaces around it allowed).
pub fn parse(text: &str, limits: Limits) -> Result<Value, Error> {
    if text.len() > limits.bytes {
        return Err(Error {
            offset: limits.bytes,
            kind: ErrorKind::TooLong(limits.bytes),
        });
    }
    let mut r = Reader { text, at: 0 };
    let mut open: Vec<Open> = Vec::new();
    loop {
        // A value starts here.
        r.skip_ws();
        let start = r.at;
        let mut value = match r.peek() {
            Some(b'{' | b'[') if open.len() >= limits.depth => {
                return Err(Error {
                    offset: start,
                    kind: ErrorKind::TooDeep(limits.depth),
                })
            }
            Some(b'{') => {
                r.at += 1;
                r.skip_ws();
                if r.peek() == Some(b'}') {
                    r.at += 1;
                    Value::Object(Object::new())
                } else {
                    let (key, at) = r.key()?;
                    open.push(Open::Object {
                        members: Object::new(),
                        key_at: vec![at],
                        key,
                    });
                    continue;
                }
            }
            Some(b'[') => {
                r.at += 1;
                r.skip_ws();
                if r.peek() == Some(b']') {
                    r.at += 1;
                    Value::Array(Vec::new())
                } else {
                    open.push(Open::Array(Vec::new()));
                    continue;
                }
            }
            Some(b'"') => Value::String(r.string()?),
            Some(b'\'') => return Err(r.err(start, SINGLE_QUOTE)),
            Some(b'-' | b'0'..=b'9') => Value::Number(r.number()?),
            Some(_) => r.word()?,
            None => return Err(r.err(start, END)),
        };
        // The value is complete: put it in what is open, closing what ends.
        loop {
            let Some(top) = open.pop() else {
                r.skip_ws();
                if r.at < text.len() {
                    return Err(r.err(r.at, "text after the JSON value"));
                }
                return Ok(value);
            };
            match top {
                Open::Array(mut items) => {
                    items.push(value);
                    match r.separator(b']') {
                        Some(b',') => {
                            open.push(Open::Array(items));
                            break;
                        }
                        Some(_) => value = Value::Array(items),
                        None => return Err(r.unexpected("expected ',' or ']' in an array")),
                    }
                }
                Open::Object {
                    mut members,
                    mut key_at,
                    key,
                } => {
                    members.0.push((key, value));
                    match r.separator(b'}') {
                        Some(b',') => {
                            let (key, at) = r.key()?;
                            key_at.push(at);
                            open.push(Open::Object {
                                members,
                                key_at,
                                key,
                            });
                            break;
                        }
                        Some(_) => {
                            // Checked once the object is whole: its members
                            // are not moved while the check borrows them.
                            if let Some(e) = duplicate(&members, &key_at) {
                                return Err(e);
                            }
                            value = Value::Object(members);
                        }
                        None => return Err(r.unexpected("expected ',' or '}' in an object")),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        depth: 32,
        bytes: 1 << 20,
    };

    fn err(text: &str) -> Error {
        parse(text, L).unwrap_err()
    }

    #[test]
    fn reads_every_kind_of_value() {
        let v = parse(
            r#" {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}} "#,
            L,
        )
        .unwrap();
        let a = match v.get("a") {
            Some(Value::Array(a)) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(a[0].as_u64(), Some(1));
        assert!(matches!(&a[1], Value::Number(n) if n.as_str() == "-2.5e3"));
        assert_eq!(a[2].as_bool(), Some(true));
        assert_eq!(a[4], Value::Null);
        assert_eq!(a[5].as_str(), Some("xé😀\n"));
        assert_eq!(v.get("b"), Some(&Value::Object(Object::new())));
    }

    #[test]
    fn numbers_are_kept_exactly() {
        let v = parse(
            "[18446744073709551615, 18446744073709551616, 1e999999, -0]",
            L,
        )
        .unwrap();
        let Value::Array(a) = v else { panic!() };
        assert_eq!(a[0].as_u64(), Some(u64::MAX));
        assert_eq!(a[1].as_u64(), None);
        assert!(matches!(&a[1], Value::Number(n) if n.as_str() == "18446744073709551616"));
        assert!(matches!(&a[2], Value::Number(n) if n.as_str() == "1e999999"));
        assert_eq!(a[3].as_u64(), None);
        // Serialised: integers as integers, the rest as their exact text.
        assert_eq!(
            serde_json::to_string(&Value::Array(a)).unwrap(),
            r#"[18446744073709551615,"18446744073709551616","1e999999",0]"#
        );
    }

    #[test]
    fn malformed_text_says_what_and_where() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "ends before"),
            ("{\"a\": 1", 7, "ends before"),
            ("{\"a\": \"x", 8, "ends before"),
            ("[1, 2", 5, "ends before"),
            ("[1 2]", 3, "expected ',' or ']'"),
            ("{\"a\" 1}", 5, "expected ':'"),
            ("{\"a\": 1 \"b\": 2}", 8, "expected ',' or '}'"),
            ("{a: 1}", 1, "expected a key"),
            ("{'a': 1}", 1, "single-quoted"),
            ("['a']", 1, "single-quoted"),
            ("[1,]", 3, "expected a value"),
            ("tru", 0, "expected a value"),
            ("01", 0, "leading zero"),
            ("-", 1, "ends before"),
            ("-x", 1, "'-' not followed"),
            ("1.", 2, "ends before"),
            ("1.e3", 2, "no digit after"),
            ("1e+", 3, "ends before"),
            ("{} x", 3, "text after"),
            ("\"a\tb\"", 2, "control character"),
            ("\"\\x\"", 1, "invalid escape"),
            ("\"\\u12g4\"", 1, "four hex digits"),
            ("\"\\u12", 5, "ends before"),
            ("\"\\ud800\"", 1, "lone surrogate"),
            ("\"\\ud800\\u0041\"", 1, "lone surrogate"),
            ("\"\\udc00\"", 1, "lone surrogate"),
            ("{\"a\": 1, \"a\": 2}", 9, "\"a\" is set twice"),
        ];
        for (text, offset, what) in cases {
            let e = err(text);
            assert_eq!(e.offset, *offset, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            assert!(
                e.to_string().ends_with(&format!(" at byte {offset}")),
                "{e}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_found_in_big_objects_too() {
        let mut t = String::from("{");
        for i in 0..1000 {
            t.push_str(&format!("\"k{i}\": {i},"));
        }
        t.push_str("\"k500\": 0}");
        let e = err(&t);
        assert_eq!(e.kind, ErrorKind::DuplicateKey("k500".into()));
        assert_eq!(&t[e.offset..e.offset + 6], "\"k500\"");
        // The same keys in different objects are fine.
        assert!(parse(r#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]"#, L).is_ok());
    }

    #[test]
    fn depth_and_length_are_bounded_without_recursion() {
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(parse(&ok, L).is_ok());
        let deep = "[".repeat(33) + &"]".repeat(33);
        assert_eq!(
            err(&deep),
            Error {
                offset: 32,
                kind: ErrorKind::TooDeep(32)
            }
        );
        // A million open brackets: an error at the limit, no stack overflow.
        let e = parse(
            &"{\"a\":[".repeat(1_000_000),
            Limits {
                depth: 100,
                bytes: usize::MAX,
            },
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooDeep(100));
        let e = parse("[1, 2]", Limits { depth: 4, bytes: 5 }).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLong(5));
    }

    /// Does our value hold what serde_json's does? Numbers compare as
    /// what they are: u64, i64, else the f64 their text stands for.
    fn same(ours: &Value, theirs: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (ours, theirs) {
            (Value::Null, J::Null) => true,
            (Value::Bool(a), J::Bool(b)) => a == b,
            (Value::Number(a), J::Number(b)) => match (b.as_u64(), b.as_i64()) {
                (Some(u), _) => a.as_u64() == Some(u),
                (None, Some(i)) => a.as_i64() == Some(i),
                _ => a.as_str().parse::<f64>().ok() == b.as_f64(),
            },
            (Value::String(a), J::String(b)) => a == b,
            (Value::Array(a), J::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (Value::Object(a), J::Object(b)) => {
                a.len() == b.len() && b.iter().all(|(k, y)| a.get(k).is_some_and(|x| same(x, y)))
            }
            _ => false,
        }
    }

    /// Every character past ASCII as `\uXXXX` escapes (pairs past the BMP).
    fn ascii_escaped(text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..12).prop_map(|v| v.into_iter().collect())
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value as J;
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<u64>().prop_map(J::from),
            any::<i64>().prop_map(J::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(J::from),
            text().prop_map(J::String),
        ];
        leaf.prop_recursive(6, 96, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(J::Array),
                proptest::collection::btree_map(text(), inner, 0..8)
                    .prop_map(|m| J::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Random sequences of JSON tokens, right and wrong.
    fn token_soup() -> impl Strategy<Value = String> {
        let tokens = vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"a\"",
            "\"b\"",
            "1",
            "-",
            "0",
            "e5",
            ".5",
            "true",
            "nul",
            "null",
            "\"\\u00e9\"",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "\"\\x\"",
            "\"\t\"",
            "'a'",
            "\"",
        ];
        proptest::collection::vec(proptest::sample::select(tokens), 0..16).prop_map(|v| v.concat())
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// On valid documents (compact, pretty, escaped to ASCII) the reader
        /// agrees with serde_json.
        #[test]
        fn agrees_with_serde_json_on_valid_documents(v in arb_json()) {
            let limits = Limits { depth: 64, bytes: usize::MAX };
            let compact = serde_json::to_string(&v).unwrap();
            for text in [compact.clone(), serde_json::to_string_pretty(&v).unwrap(), ascii_escaped(&compact)] {
                let ours = parse(&text, limits).unwrap();
                prop_assert!(same(&ours, &v), "{text}: {ours:?}");
            }
        }

        /// On any text, it accepts what serde_json accepts, but for keys set
        /// twice, and refuses what serde_json refuses.
        #[test]
        fn accepts_and_refuses_as_serde_json(text in token_soup()) {
            let ours = parse(&text, L);
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            match (&ours, &theirs) {
                (Ok(v), Ok(j)) => prop_assert!(same(v, j)),
                (Err(e), Ok(_)) => prop_assert!(matches!(e.kind, ErrorKind::DuplicateKey(_)), "{text}: {e}"),
                (Ok(_), Err(e)) => prop_assert!(false, "{text}: serde_json refuses it: {e}"),
                (Err(e), Err(_)) => prop_assert!(e.offset <= text.len()),
            }
        }
    }
}
