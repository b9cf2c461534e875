//! Diagnostics: stable code, severity, a message naming the images, and the
//! command that fixes the problem when one exists.

#![warn(missing_docs)]

use serde::Serialize;

mod codes;
pub use codes::Code;

/// How bad it is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Worth fixing or checking before use; the chain's status stays `ok`.
    Warning,
    /// The chain is broken or unsafe as it is (libvirt or qemu would
    /// refuse it, misread it, or open what it should not): the chain's
    /// [`Status`](crate::chain::Status) is not `ok`.
    Error,
}

/// One finding about an image, a link, a chain or the whole set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable, serialised kebab-case (`missing-backing`, …): the list, with
    /// what each means, is [`Code`].
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, in words, naming the images (names are text: quote
    /// or escape them when showing it).
    pub message: String,
    /// A shell command (words quoted with [`shell_quote`]) that fixes it,
    /// when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The image it is about (index into the forest's images), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<usize>,
    /// A chain's copy of one of `image`'s own probe notes (the message
    /// prefixed with its quoted name): a page that lists the image's notes
    /// has shown it already.
    #[serde(rename = "from-probe", skip_serializing_if = "is_false")]
    pub from_probe: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Diagnostic {
    /// A diagnostic with no fix and no image.
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            fix: None,
            image: None,
            from_probe: false,
        }
    }
    /// [`Diagnostic::new`] with [`Severity::Info`].
    pub fn info(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, message)
    }
    /// [`Diagnostic::new`] with [`Severity::Warning`].
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }
    /// [`Diagnostic::new`] with [`Severity::Error`].
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }
    /// Say which image (forest index) this is about, unless already said.
    pub fn at(mut self, image: usize) -> Self {
        self.image.get_or_insert(image);
        self
    }
    /// Add the command that fixes it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Quote a word for a POSIX shell command line (for `fix` commands).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The fix that rewrites an image's backing name and backing format in its
/// header, copying no data: `qemu-img rebase -u -f FORMAT -F BACKING_FORMAT
/// -b BACKING IMAGE`, every word shell-quoted. Every diagnostic whose fix is
/// a rebase builds it here.
pub fn rebase_fix(format: &str, backing_format: &str, backing: &str, image: &str) -> String {
    format!(
        "qemu-img rebase -u -f {} -F {} -b {} {}",
        shell_quote(format),
        shell_quote(backing_format),
        shell_quote(backing),
        shell_quote(image)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rebase_fix_quotes_every_word() {
        assert_eq!(
            super::rebase_fix("qcow2", "raw", "./a:b c", "/v/it's"),
            r"qemu-img rebase -u -f qcow2 -F raw -b './a:b c' '/v/it'\''s'"
        );
    }
}
