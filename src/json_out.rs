//! Compact JSON text of a [`serde::Serialize`] value, written into a
//! `String`: what `serde_json::to_string` writes, byte for byte, for every
//! shape the crate's answers use (structs, `flatten`, maps, sequences,
//! tuples, options, unit, newtype, tuple and struct variants, tagged and
//! untagged enums, strings, integers, booleans), with a fraction of its
//! code. The wasm facade writes every answer with it (issue 18); the CLI's
//! pretty JSON is still `serde_json`'s, and `serde_json` is the oracle of
//! its tests (`tests/json_out.rs`, `tests/golden.rs`).
//!
//! Why it is smaller: serde_json's serializer is generic over an I/O writer
//! and a formatter, and each field of each answer type carries their
//! `io::Result` plumbing. Here a field is two calls (its key, its value;
//! the writing is in a few functions never inlined), and the serializer's
//! error type has no value, so the code serde derives has nothing to check
//! after a call.
//!
//! What the answers never hold is refused ([`Error`]) rather than written:
//! floats (serde_json prints them with ryu), byte strings, 128-bit
//! integers, and map keys other than strings, characters, unit variants and
//! integers (serde_json quotes integer keys; so does this).
//!
//! # Panics
//!
//! When a `Serialize` impl fails (calls `serde::ser::Error::custom`), where
//! serde_json would return its error. None of the crate's types does; std's
//! that can (a `Mutex` poisoned, a `RefCell` borrowed, a path that is not
//! UTF-8) are in none of them.

use serde::ser::{self, Serialize};
use std::fmt;

/// A value this writer does not write (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value this JSON writer does not write")
    }
}

impl std::error::Error for Error {}

/// The serializer's own error: none (no value). A value it does not write
/// is noted ([`Writer::refused`]) and [`to_string`] answers [`Error`] at the
/// end, so that a field's call returns nothing to check: the code serde
/// derives for each answer type is then a plain sequence of calls (1.7 KB
/// less wasm than a unit struct error, 0.5 KB gzipped; issue 18).
#[derive(Debug)]
enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    /// Only a `Serialize` impl that fails calls this (see "Panics" in the
    /// module's documentation).
    fn custom<T: fmt::Display>(msg: T) -> Self {
        panic!("json_out: a Serialize impl failed: {msg}")
    }
}

/// `value` as compact JSON (as `serde_json::to_string` writes it).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut w = Writer::default();
    let Ok(()) = value.serialize(&mut w);
    w.finish()
}

/// The text written so far.
#[derive(Default)]
struct Writer {
    out: String,
    /// A value this writer does not write was met: the text is not JSON.
    refused: bool,
}

impl Writer {
    /// The text, unless a value was refused (one call, not one per answer
    /// type).
    #[inline(never)]
    fn finish(self) -> Result<String, Error> {
        if self.refused {
            Err(Error)
        } else {
            Ok(self.out)
        }
    }

    /// Before a key or an element: a comma unless it is the first of its
    /// object or array (the text then ends with the opening bracket; a
    /// value never does).
    #[inline(never)]
    fn comma(&mut self) {
        if !matches!(self.out.as_bytes().last(), Some(b'{' | b'[')) {
            self.out.push(',');
        }
    }

    /// `"key":` after a comma if needed.
    #[inline(never)]
    fn key(&mut self, key: &str) {
        self.comma();
        self.string(key);
        self.out.push(':');
    }

    /// A string, quoted and escaped as serde_json escapes it: `\"`, `\\`,
    /// `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx`
    /// (lowercase hex), everything else as is.
    #[inline(never)]
    fn string(&mut self, s: &str) {
        let out = &mut self.out;
        out.push('"');
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => '"',
                b'\\' => '\\',
                b'\n' => 'n',
                b'\r' => 'r',
                b'\t' => 't',
                0x08 => 'b',
                0x0c => 'f',
                0..=0x1f => 'u',
                _ => continue,
            };
            // `i` is an ASCII byte's offset: a character boundary.
            out.push_str(&s[start..i]);
            out.push('\\');
            out.push(short);
            if short == 'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
            start = i + 1;
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    /// An unsigned integer in decimal, `-` first if `negative`.
    #[inline(never)]
    fn integer(&mut self, negative: bool, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if negative {
            self.out.push('-');
        }
        for &d in &digits[i..] {
            self.out.push(char::from(d));
        }
    }

    fn signed(&mut self, n: i64) {
        self.integer(n < 0, n.unsigned_abs());
    }

    /// Note a value this writer does not write.
    fn refuse(&mut self) -> Result<(), Never> {
        self.refused = true;
        Ok(())
    }

    /// `{"variant":` — the start of a newtype, tuple or struct variant.
    fn variant(&mut self, variant: &str) {
        self.out.push('{');
        self.key(variant);
    }
}

impl ser::Serializer for &mut Writer {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Never> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Never> {
        self.signed(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Never> {
        self.integer(false, v);
        Ok(())
    }
    fn serialize_i128(self, _v: i128) -> Result<(), Never> {
        self.refuse()
    }
    fn serialize_u128(self, _v: u128) -> Result<(), Never> {
        self.refuse()
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Never> {
        self.refuse()
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Never> {
        self.refuse()
    }
    fn serialize_char(self, v: char) -> Result<(), Never> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Never> {
        self.refuse()
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Never> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Never> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.variant(variant);
        value.serialize(&mut *self)?;
        self.out.push('}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Never> {
        self.out.push('[');
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Never> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        self.variant(variant);
        self.serialize_seq(None)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Never> {
        self.out.push('{');
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        self.variant(variant);
        self.serialize_map(None)
    }
}

impl ser::SerializeSeq for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.comma();
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        self.out.push(']');
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Never> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Never> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Never> {
        self.out.push_str("]}");
        Ok(())
    }
}

impl ser::SerializeMap for &mut Writer {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        self.comma();
        key.serialize(Key(self))?;
        self.out.push(':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        self.out.push('}');
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.key(key);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for &mut Writer {
    type Ok = ();
    type Error = Never;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Never> {
        self.out.push_str("}}");
        Ok(())
    }
}

/// A map key: a string as is; an integer, as serde_json writes it, in
/// quotes; anything else refused (a compound key is still written, to the
/// text [`to_string`] then throws away).
struct Key<'a>(&'a mut Writer);

impl Key<'_> {
    fn quoted(self, negative: bool, n: u64) -> Result<(), Never> {
        self.0.out.push('"');
        self.0.integer(negative, n);
        self.0.out.push('"');
        Ok(())
    }
}

impl<'a> ser::Serializer for Key<'a> {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = &'a mut Writer;
    type SerializeTuple = &'a mut Writer;
    type SerializeTupleStruct = &'a mut Writer;
    type SerializeTupleVariant = &'a mut Writer;
    type SerializeMap = &'a mut Writer;
    type SerializeStruct = &'a mut Writer;
    type SerializeStructVariant = &'a mut Writer;

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.0.string(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Never> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Never> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Never> {
        self.quoted(v < 0, v.unsigned_abs())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Never> {
        self.quoted(false, v)
    }
    fn serialize_bool(self, _v: bool) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_i128(self, _v: i128) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_u128(self, _v: u128) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Never> {
        self.0.refuse()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Never> {
        self.0.refuse()?;
        Ok(self.0)
    }
}
