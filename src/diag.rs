//! Diagnostics: stable code, severity, a message naming the images, and the
//! command that fixes the problem when one exists.

use serde::Serialize;

mod codes;
pub use codes::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable, serialised kebab-case (`missing-backing`, …): the list, with
    /// what each means, is [`Code`].
    pub code: Code,
    pub severity: Severity,
    pub message: String,
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
    pub fn info(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, message)
    }
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }
    /// Say which image (forest index) this is about, unless already said.
    pub fn at(mut self, image: usize) -> Self {
        self.image.get_or_insert(image);
        self
    }
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
