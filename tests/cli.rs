//! The command line's conventions: `--help` and `--version` for the tool and
//! each subcommand, usage errors that name the bad flag (exit 2), shell
//! completions that the shells themselves load and run (bash, fish; zsh
//! parses its script), and the README's help text is the tool's.

mod common;

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_backing-chain");

/// The subcommands and the long options each must offer (the README's and
/// the issue's list, not read from the parser).
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("probe", &["--json"]),
    ("chain", &["--json", "--untrusted"]),
    (
        "xml",
        &[
            "--domain",
            "--layout",
            "--mode",
            "--replace",
            "--base-dir",
            "--no-index",
            "--untrusted",
            "--qemu-img-json",
        ],
    ),
    (
        "audit",
        &["--domain", "--json", "--csv", "--script", "--deep-chain"],
    ),
    ("map", &["--json"]),
    ("measure", &["--json"]),
    ("check", &["--json"]),
    ("completions", &[]),
];

/// Run the CLI with a fixed help width (clap wraps help to the terminal's
/// width, or `COLUMNS` when there is none; 100 at most).
fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn help_of_the_tool_lists_every_subcommand() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("Usage: backing-chain <COMMAND>"), "{out}");
        for (sub, _) in SUBCOMMANDS {
            assert!(
                out.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
                "{args:?} does not list {sub}:\n{out}"
            );
        }
        assert!(out.contains("Exit codes: 0 fine, 1 "), "{out}");
    }
    // No arguments at all: the help, on stderr, as a usage error.
    let o = cli(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(text(&o.stderr).contains("Usage: backing-chain <COMMAND>"));
}

#[test]
fn help_of_each_subcommand_names_its_options() {
    for (sub, flags) in SUBCOMMANDS {
        let o = cli(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{sub}");
        let out = text(&o.stdout);
        assert!(
            out.contains(&format!("Usage: backing-chain {sub} ")),
            "{sub}:\n{out}"
        );
        for f in *flags {
            assert!(
                out.contains(&format!("{f} ")),
                "{sub} --help lacks {f}:\n{out}"
            );
        }
        // `-h`, and `help SUB`, give the same text.
        assert_eq!(text(&cli(&[sub, "-h"]).stdout), out, "{sub} -h");
        assert_eq!(text(&cli(&["help", sub]).stdout), out, "help {sub}");
    }
}

#[test]
fn version_of_the_tool_and_each_subcommand() {
    let v = env!("CARGO_PKG_VERSION");
    for args in [&["--version"][..], &["-V"]] {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&o.stdout), format!("backing-chain {v}\n"));
    }
    for (sub, _) in SUBCOMMANDS {
        let o = cli(&[sub, "--version"]);
        assert_eq!(o.status.code(), Some(0), "{sub}");
        assert_eq!(text(&o.stdout), format!("backing-chain-{sub} {v}\n"));
    }
}

#[test]
fn a_bad_flag_is_named_and_exits_2() {
    for (sub, _) in SUBCOMMANDS {
        let o = cli(&[sub, "--frobnicate", "x"]);
        assert_eq!(o.status.code(), Some(2), "{sub}");
        assert!(o.stdout.is_empty(), "{sub}");
        let err = text(&o.stderr);
        assert!(
            err.contains("unexpected argument '--frobnicate'"),
            "{sub}: {err}"
        );
        assert!(
            err.contains(&format!("Usage: backing-chain {sub}")),
            "{err}"
        );
    }
    // A near miss gets the flag it probably meant.
    let err = text(&cli(&["probe", "--jsn", "x"]).stderr);
    assert!(err.contains("'--jsn'") && err.contains("'--json'"), "{err}");
    // A bad value names the option and what it takes.
    let o = cli(&["xml", "--layout", "sideways", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("'sideways'") && err.contains("--layout"),
        "{err}"
    );
    assert!(err.contains("nested") && err.contains("flat"), "{err}");
    let o = cli(&["audit", "--deep-chain", "many", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("'many'") && err.contains("--deep-chain"),
        "{err}"
    );
    // An option without its value, a missing operand, a missing --domain.
    let err = text(&cli(&["xml", "x", "--domain"]).stderr);
    assert!(err.contains("'--domain <FILE|->'"), "{err}");
    for (args, what) in [
        (&["probe"][..], "<FILE>"),
        (&["chain", "--json"], "<TOP>"),
        (&["audit"], "<PATH>"),
        (&["xml", "--mode", "validate", "x"], "--domain"),
        (&["map", "--json"], "<IMAGE>"),
        (&["measure"], "<IMAGE>"),
        (&["check"], "<IMAGE>"),
        (&["completions"], "<SHELL>"),
    ] {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("required") && err.contains(what),
            "{args:?}: {err}"
        );
    }
    let o = cli(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unrecognized subcommand 'frobnicate'"));
}

/// Each shell's completion script mentions every subcommand and option
/// (fish spells `--json` as `-l json`).
fn script(shell: &str) -> String {
    let o = cli(&["completions", shell]);
    assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("backing-chain"), "{shell}");
    for (sub, flags) in SUBCOMMANDS {
        assert!(s.contains(sub), "{shell} script lacks {sub}");
        for f in *flags {
            let name = f.trim_start_matches('-');
            assert!(s.contains(name), "{shell} script lacks {sub} {f}");
        }
    }
    s
}

fn write_script(shell: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("backing-chain.{shell}"));
    std::fs::write(&path, script(shell)).unwrap();
    (dir, path)
}

/// Bash loads the script and its completion function answers for the
/// command lines a user types (subcommands, a subcommand's options, an
/// option's values).
#[test]
fn bash_completes_subcommands_options_and_values() {
    let (_dir, path) = write_script("bash");
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    // Each line: the words typed so far (the last one being completed).
    let driver = r#"
source "$1"
f=$(complete -p backing-chain | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$f" ] || { echo "no completion bound to backing-chain" >&2; exit 1; }
while IFS= read -r line; do
  read -r -a COMP_WORDS <<<"$line"
  case "$line" in *' ') COMP_WORDS+=(""); esac
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$line"; COMP_POINT=${#line}
  COMPREPLY=()
  "$f" backing-chain "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  echo "${COMPREPLY[*]}"
done
"#;
    let cases: &[(&str, &[&str])] = &[
        (
            "backing-chain ",
            &["probe", "chain", "xml", "audit", "completions"],
        ),
        ("backing-chain x", &["xml"]),
        ("backing-chain xml --la", &["--layout"]),
        ("backing-chain xml --layout ", &["nested", "flat"]),
        ("backing-chain xml --mode v", &["validate"]),
        (
            "backing-chain audit --",
            &["--domain", "--csv", "--script", "--deep-chain"],
        ),
        ("backing-chain chain --un", &["--untrusted"]),
        ("backing-chain completions ", &["bash", "zsh", "fish"]),
    ];
    let input: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(driver)
        .arg("bash")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), cases.len(), "{out}");
    for ((line, want), got) in cases.iter().zip(got) {
        let words: Vec<&str> = got.split_whitespace().collect();
        for w in *want {
            assert!(words.contains(w), "{line:?} completes to {got:?}, not {w}");
        }
    }
}

/// Fish loads the script and `complete -C` answers as at the prompt.
#[test]
fn fish_completes_subcommands_options_and_values() {
    if !common::tool("fish") {
        common::skip("fish is not installed: its completion script is not run");
        return;
    }
    let (_dir, path) = write_script("fish");
    let complete = |line: &str| -> Vec<String> {
        let o = Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg("source $argv[1]; complete -C $argv[2]")
            .arg(&path)
            .arg(line)
            .output()
            .unwrap();
        assert!(o.status.success(), "{line}: {}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    for (line, want) in [
        (
            "backing-chain ",
            &["probe", "chain", "xml", "audit", "completions"][..],
        ),
        ("backing-chain xml --la", &["--layout"]),
        ("backing-chain xml --layout ", &["nested", "flat"]),
        ("backing-chain audit --d", &["--domain", "--deep-chain"]),
    ] {
        let got = complete(line);
        for w in want {
            assert!(
                got.iter().any(|g| g == w),
                "{line:?} completes to {got:?}, not {w}"
            );
        }
    }
}

/// Zsh parses its script (running zsh's completion needs a terminal).
#[test]
fn zsh_script_parses() {
    let (_dir, path) = write_script("zsh");
    let s = std::fs::read_to_string(&path).unwrap();
    assert!(s.starts_with("#compdef backing-chain\n"), "{s}");
    if !common::tool("zsh") {
        common::skip("zsh is not installed: its completion script is not parsed");
        return;
    }
    let o = Command::new("zsh").arg("-n").arg(&path).output().unwrap();
    assert!(o.status.success(), "zsh -n: {}", text(&o.stderr));
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let o = cli(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("'tcsh'") && err.contains("bash"), "{err}");
}

/// The README shows the tool's help as the tool prints it.
#[test]
fn readme_shows_the_help_as_printed() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut helps = vec![("backing-chain --help".to_string(), cli(&["--help"]))];
    for (sub, _) in SUBCOMMANDS {
        helps.push((format!("backing-chain {sub} --help"), cli(&[sub, "--help"])));
    }
    for (what, o) in helps {
        let block = format!("$ {what}\n{}", text(&o.stdout));
        assert!(
            readme.contains(&block),
            "README.md lacks this block (regenerate it from `{what}`):\n{block}"
        );
    }
}

/// As before clap: a repeated option takes its last value, and of the
/// audit's output kinds the last one given wins.
#[test]
fn the_last_of_repeated_options_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = |args: &[&str]| {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let csv = out(&["audit", "--csv", d]);
    let json = out(&["audit", "--json", d]);
    assert_ne!(csv, json);
    assert_eq!(out(&["audit", "--json", "--csv", d]), csv);
    assert_eq!(out(&["audit", "--csv", "--script", "--json", d]), json);
    assert_eq!(
        out(&[
            "audit",
            "--deep-chain",
            "1",
            "--deep-chain",
            "5",
            "--json",
            d
        ]),
        json
    );
    // A repeated option is no error; `-` is a value (standard input), and
    // `--` ends the options.
    let xml = "<disk type='file' device='disk'><source file='/nowhere/a.qcow2'/><target dev='vda'/></disk>";
    let mut c = Command::new(BIN)
        .args([
            "xml", "--layout", "flat", "--layout", "nested", "--domain", "-", "--",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("<source file='/nowhere/a.qcow2'"),
        "{}",
        text(&o.stdout)
    );
}
