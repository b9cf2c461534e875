//! The audit's downloads: CSV (one row per image) and the fix script (one
//! POSIX shell script for the whole drop). The JSON report is the
//! [`Audit`] serialised (keys in README.md).
//!
//! # The fix script
//!
//! `set -eu`; `sh fix.sh -n` (or `DRY_RUN=1 sh fix.sh`) prints every command
//! instead of running it. One commented block per diagnostic that has a fix
//! (the fixes are the chain's own, built by [`crate::diag::rebase_fix`]).
//! Only header rewrites that copy no data and delete nothing are run:
//! `qemu-img rebase -u` for an unrecorded, wrong or unknown backing format.
//! Every other fix (a repair, a full copy of a chain too deep for libvirt,
//! a format change a guest could have provoked) is written commented out,
//! to be run by hand. Every word is shell-quoted (names with spaces,
//! quotes, `$`, newlines); a command is handed to `run` as one quoted
//! string and run with `eval`, so the dry run prints exactly what would run.
//! Comments never hold a raw line end. Then, per VM disk whose XML should
//! change, the `<disk>` with its new `<backingStore>`, commented.

use super::{Audit, Role};
use crate::diag::{shell_quote, Code, Diagnostic, Severity};

/// The CSV header (the columns, in order).
pub const CSV_COLUMNS: &[&str] = &[
    "filename",
    "format",
    "virtual-size",
    "file-size",
    "role",
    "broken",
    "backing",
    "users",
    "dependents",
    "delete",
    "diagnostics",
];

/// One CSV field (RFC 4180 quoting). A field starting with `=`, `+`, `-`,
/// `@`, tab or CR gets a leading `'` so that a spreadsheet does not run it
/// as a formula (names come from files).
fn csv_field(s: &str, out: &mut String) {
    let guard = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guard || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guard {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::InUse => "in-use",
        Role::Layer => "layer",
        Role::OrphanTop => "orphan-top",
        Role::UnusedBase => "unused-base",
        Role::UnusedLayer => "unused-layer",
    }
}

/// One row per image, with a header line; CRLF line ends (RFC 4180).
pub fn csv(a: &Audit) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for e in &a.images {
        let backing = e
            .backing
            .map(|b| a.images[b].filename.clone())
            .or_else(|| e.backing_outside.clone())
            .unwrap_or_default();
        let users = e
            .users
            .iter()
            .map(|u| format!("{}:{}@{}", u.name, u.disk, u.depth))
            .collect::<Vec<_>>()
            .join(";");
        let delete = match e.delete.verdict {
            super::Deletable::Safe => "safe",
            super::Deletable::InUse => "in-use",
            super::Deletable::BreaksOthers => "breaks-others",
        };
        let diags = e
            .diagnostics
            .iter()
            .map(|d| d.code.name())
            .collect::<Vec<_>>()
            .join(";");
        let fields = [
            e.filename.clone(),
            e.format.clone().unwrap_or_default(),
            e.virtual_size.map(|v| v.to_string()).unwrap_or_default(),
            e.file_size.map(|v| v.to_string()).unwrap_or_default(),
            role_name(e.role).to_string(),
            e.broken
                .as_ref()
                .map(|b| b.status.name().to_string())
                .unwrap_or_default(),
            backing,
            users,
            e.dependents_count.to_string(),
            delete.to_string(),
            diags,
        ];
        for (k, f) in fields.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            csv_field(f, &mut out);
        }
        out.push_str("\r\n");
    }
    out
}

/// Text for a `#` comment: control characters (line ends included) shown
/// escaped, so that no name can end the comment.
fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Is this fix run by the script (a header rewrite that copies no data)?
fn runs(d: &Diagnostic) -> bool {
    let fix = d.fix.as_deref().unwrap_or("");
    fix.starts_with("qemu-img rebase -u ")
        && match d.code {
            Code::BackingFormatNotRecorded | Code::BackingFormatUnknown => true,
            // A raw-recorded backing with another header is a warning: a
            // guest can write that header; not changed unasked.
            Code::BackingFormatMismatch => d.severity == Severity::Error,
            _ => false,
        }
}

/// The fix script for the whole drop.
pub fn script(a: &Audit) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str("# Fix script written by `backing-chain audit` for the images and domains given.\n");
    s.push_str("# It rewrites image headers only (qemu-img rebase -u: no data is copied, nothing is deleted);\n");
    s.push_str("# other fixes are listed commented out, to run by hand.\n");
    s.push_str("# Shut the VMs using these images down first and keep a backup.\n");
    s.push_str("#   sh fix.sh        run\n");
    s.push_str(
        "#   sh fix.sh -n     dry run: print the commands, change nothing (also DRY_RUN=1)\n",
    );
    s.push_str("set -eu\n");
    s.push_str("DRY_RUN=${DRY_RUN:-0}\n");
    s.push_str("if [ \"${1:-}\" = \"-n\" ]; then DRY_RUN=1; fi\n");
    s.push_str("run() {\n");
    s.push_str("  if [ \"$DRY_RUN\" = 1 ]; then\n");
    s.push_str("    printf '%s\\n' \"$1\"\n");
    s.push_str("  else\n");
    s.push_str("    printf '+ %s\\n' \"$1\" >&2\n");
    s.push_str("    eval \"$1\"\n");
    s.push_str("  fi\n");
    s.push_str("}\n");
    let mut n = 0;
    for d in a.findings.iter().filter(|d| d.fix.is_some()) {
        let fix = d.fix.as_deref().unwrap_or("");
        n += 1;
        s.push_str(&format!(
            "\n# ---- {n}. [{}] {}\n",
            d.code,
            comment(&d.message)
        ));
        if runs(d) {
            s.push_str(&format!("run {}\n", shell_quote(fix)));
        } else {
            s.push_str("# not run by this script (run by hand after checking):\n");
            s.push_str(&format!("# {}\n", comment(fix)));
        }
    }
    if n == 0 {
        s.push_str("\n# Nothing to fix in the image headers.\n");
    }
    for vm in &a.vms {
        for d in &vm.disks {
            let Some(x) = &d.new_xml else { continue };
            s.push_str(&format!(
                "\n# ---- VM '{}' disk '{}': its XML should change; the <disk> with the chain the images give\n# (virsh edit {} — replace the disk):\n",
                comment(&vm.name),
                comment(&d.name),
                comment(&shell_quote(&vm.name))
            ));
            for line in x.lines() {
                s.push_str(&format!("#   {}\n", comment(line)));
            }
        }
    }
    s.push_str("\nexit 0\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_guards() {
        let mut o = String::new();
        csv_field("a,\"b\"\nc", &mut o);
        assert_eq!(o, "\"a,\"\"b\"\"\nc\"");
        o.clear();
        csv_field("=cmd", &mut o);
        assert_eq!(o, "\"'=cmd\"");
    }

    #[test]
    fn comments_hold_no_line_end() {
        assert_eq!(comment("a\nb\r\u{7}"), "a\\nb\\r\\u{7}");
    }
}
