//! Bad input gets a clear error with a position, never a panic, a stack
//! overflow, an entity expansion or a fetch.

mod common;

use backing_chain::limits;
use backing_chain::xml::{self, Options, XmlError};

fn err(doc: &str) -> XmlError {
    xml::convert(doc, &Options::default()).expect_err("must be refused")
}

#[test]
fn not_well_formed_gives_position_and_reason() {
    let doc = "<domain>\n  <devices>\n    <disk type='file'>\n  </devices>\n</domain>";
    let e = err(doc);
    assert!(e.message.contains("not well-formed"), "{e}");
    // The mismatched end tag `</devices>` is on line 4.
    let line = doc[..e.position.min(doc.len())].matches('\n').count() + 1;
    assert!(
        (3..=4).contains(&line),
        "position {} is on line {line}",
        e.position
    );

    for (doc, what) in [
        ("<domain><name>x</domain>", "mismatched end"),
        ("<domain a='1' a='2'/>", "duplicate attribute"),
        ("<domain><name>&nbsp;</name></domain>", "undefined entity"),
        ("<domain b='&bogus;'/>", "undefined entity in attribute"),
        ("<domain><name>a & b</name></domain>", "bare ampersand"),
        ("<domain><name>&#0;</name></domain>", "reference to NUL"),
        ("<domain b='&#xFFFE;'/>", "reference to a non-character"),
        ("<domain>", "unclosed root"),
        ("<domain/>trailing text", "text after the root"),
        ("<domain/><domain/>", "two roots"),
        ("", "empty document"),
        (
            "<domain><!-- bad -- comment --></domain>",
            "double hyphen in comment",
        ),
    ] {
        let e = err(doc);
        assert!(!e.message.is_empty(), "{what}");
        assert!(e.position <= doc.len(), "{what}: position {}", e.position);
    }
}

#[test]
fn wrong_root_is_named() {
    let e = err("<network><name>default</name></network>");
    assert_eq!(e.position, 0);
    assert!(
        e.message.contains("<network>") && e.message.contains("<domain>, <disk> or <volume>"),
        "{e}"
    );
}

#[test]
fn entity_definitions_are_refused() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE domain [
  <!ENTITY a "aaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<domain><name>&c;</name></domain>"#;
    let e = err(laughs);
    assert!(
        e.message.contains("DOCTYPE") && e.message.contains("refused"),
        "{e}"
    );
    let external =
        r#"<!DOCTYPE domain [<!ENTITY x SYSTEM "http://example.org/x">]><domain>&x;</domain>"#;
    let e = err(external);
    assert!(e.message.contains("refused"), "{e}");
    // A DOCTYPE without a subset is harmless and accepted.
    let ok = "<!DOCTYPE domain>\n<domain type='kvm'><name>x</name></domain>";
    assert_eq!(xml::convert(ok, &Options::default()).unwrap().xml, ok);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let n = 200_000;
    let mut doc = String::from("<domain>");
    doc.push_str(&"<a>".repeat(n));
    doc.push_str(&"</a>".repeat(n));
    doc.push_str("</domain>");
    let e = err(&doc);
    assert!(
        e.message.contains(&limits::MAX_XML_DEPTH.to_string()),
        "{e}"
    );
    // Deep inside a disk (where the tree is built) too.
    let mut doc = String::from("<domain><devices><disk type='file'>");
    doc.push_str(&"<backingStore type='file'>".repeat(n));
    doc.push_str(&"</backingStore>".repeat(n));
    doc.push_str("</disk></devices></domain>");
    let e = err(&doc);
    assert!(e.message.contains("deeper"), "{e}");
}

#[test]
fn duplicate_target_devs_are_refused() {
    let doc = "<domain><devices>
  <disk type='file'><source file='/a'/><target dev='vda'/></disk>
  <disk type='file'><source file='/b'/><target dev='vda'/></disk>
</devices></domain>";
    let e = err(doc);
    assert!(e.message.contains("'vda'"), "{e}");
    assert_eq!(e.position, doc.rfind("<disk").unwrap());
}

#[test]
fn oversize_documents_are_refused_before_parsing() {
    let big = format!("<domain>{}</domain>", " ".repeat(limits::MAX_XML_BYTES));
    let e = err(&big);
    assert!(e.message.contains("over the limit"), "{e}");
}

#[test]
fn bad_volumes_say_what_is_missing() {
    let e = err("<volume type='file'><name>x</name></volume>");
    assert!(e.message.contains("<target>"), "{e}");
    let e = err("<volume type='file'><target><format type='raw'/></target></volume>");
    assert!(e.message.contains("<path>"), "{e}");
}
