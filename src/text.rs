//! Substring search without `core`'s two-way searcher.
//!
//! `str::find`, `contains`, `split_once` and `replace` with a pattern of
//! two or more bytes run `core::str::pattern::StrSearcher`, about 3.5 KB of
//! wasm (issue 18: what the page loads). Every pattern the core looks for is
//! a short constant (`://`, `<dom`, `\r\n`…) in text of bounded length, so
//! a plain scan for the first byte, then a compare, is as fast in practice
//! and a few hundred bytes.

/// The byte offset of the first `needle` in `hay` (always at a character
/// boundary: a UTF-8 `needle` cannot start inside a character). An empty
/// `needle` is found at 0, as `str::find` finds it.
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return Some(0);
    };
    let last = h.len().checked_sub(n.len())?;
    (0..=last).find(|&i| h[i] == first && &h[i + 1..i + n.len()] == rest)
}

/// Does `hay` hold `needle`?
pub fn contains(hay: &str, needle: &str) -> bool {
    find(hay, needle).is_some()
}

/// `hay` cut around the first `needle`, as `str::split_once`.
pub fn split_once<'a>(hay: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let i = find(hay, needle)?;
    Some((&hay[..i], &hay[i + needle.len()..]))
}

/// Every `from` in `hay` replaced by `to`, as `str::replace`; an empty
/// `from` replaces nothing.
pub fn replace(hay: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return hay.to_string();
    }
    let mut out = String::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, from) {
        out.push_str(&rest[..i]);
        out.push_str(to);
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// `s` in double quotes with the escapes `{:?}` writes for the characters a
/// name can hold that would not show (`\t`, `\n`, `\r`, `\0`, other
/// control characters as `\u{1b}`; `"` and `\` escaped). `{:?}` of a
/// `str` brings core's Unicode printability and grapheme tables into the
/// wasm; this differs from it only for characters that are neither control
/// characters nor printable (shown as they are here).
pub struct Quoted<'a>(pub &'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\t' => f.write_str("\\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // std's own searcher is the oracle.
        #[test]
        fn same_as_std(hay in "[ab\\r\\n:/é]{0,40}", needle in "[ab\\r\\n:/é]{0,4}") {
            prop_assert_eq!(find(&hay, &needle), hay.find(needle.as_str()));
            prop_assert_eq!(contains(&hay, &needle), hay.contains(needle.as_str()));
            prop_assert_eq!(split_once(&hay, &needle), hay.split_once(needle.as_str()));
            if !needle.is_empty() {
                prop_assert_eq!(replace(&hay, &needle, "<x>"), hay.replace(needle.as_str(), "<x>"));
            }
        }
    }

    proptest! {
        // `{:?}` is the oracle for what both escape.
        #[test]
        fn quoted_as_debug(s in "[a-z\"\\\\\t\n\r\0\x01\x1b\x7f\u{80}\u{9f}é ]{0,12}") {
            prop_assert_eq!(Quoted(&s).to_string(), format!("{s:?}"));
        }
    }

    #[test]
    fn edges() {
        assert_eq!(find("", "ab"), None);
        assert_eq!(find("a", "ab"), None);
        assert_eq!(find("xab", "ab"), Some(1));
        assert_eq!(find("", ""), Some(0));
        assert_eq!(
            split_once("nbd:[::1]:10809", "]:"),
            Some(("nbd:[::1", "10809"))
        );
        assert_eq!(replace("a\r\nb\r\n", "\r\n", "\n"), "a\nb\n");
    }
}
