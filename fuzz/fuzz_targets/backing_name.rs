//! Backing names (paths, json:, URIs, colon forms) on arbitrary strings.
#![no_main]
use backing_chain::source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    if let Ok(p) = source::parse_backing_name(&name) {
        // A file source always has a path.
        if p.source.kind == source::SourceType::File {
            assert!(p.source.path.is_some());
        }
    }
    let _ = source::resolve_relative("/images/top.qcow2", &name);
});
