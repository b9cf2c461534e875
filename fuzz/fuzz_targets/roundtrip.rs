//! Round-trip property: once a document has been through our writer, nested
//! → flat → nested and flat → nested → flat give back the same bytes. Never
//! panics on any input.
#![no_main]
use backing_chain::xml::{self, Layout, Options};
use libfuzzer_sys::fuzz_target;

fn to(doc: &str, layout: Layout) -> Option<String> {
    xml::convert(doc, &Options { layout, ..Default::default() }).ok().map(|o| o.xml)
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    // A chain already in the asked layout is kept as written (trust), so go
    // through both layouts once to get our writer's own formatting.
    let Some(flat0) = to(doc, Layout::Flat) else { return };
    let Some(n1) = to(&flat0, Layout::Nested) else { panic!("our flat output does not convert to nested") };
    let Some(f1) = to(&n1, Layout::Flat) else { panic!("our nested output does not convert to flat") };
    let Some(n2) = to(&f1, Layout::Nested) else { panic!("our flat output does not convert back") };
    assert_eq!(n2, n1, "nested -> flat -> nested changed the document");
    let Some(f2) = to(&n2, Layout::Flat) else { panic!("our nested output does not convert to flat") };
    assert_eq!(f2, f1, "flat -> nested -> flat changed the document");
});
