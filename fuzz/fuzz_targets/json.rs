//! The JSON reader (`json:` names, `qemu-img info` imports) on arbitrary
//! text: never a panic; what it reads is written by serde_json and reads
//! back; it accepts what serde_json accepts, but for duplicate keys (refused,
//! as qemu refuses them) and the depth limit; and it refuses what serde_json
//! refuses, but for numbers past f64's range (kept as their text).
#![no_main]
use backing_chain::json::{self, ErrorKind, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    depth: 64,
    bytes: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = json::parse(text, LIMITS);
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    match (ours, theirs) {
        (Ok(v), theirs) => {
            let written = serde_json::to_string(&v).expect("a value serialises");
            assert!(json::parse(&written, LIMITS).is_ok(), "{written} does not read back");
            if let Err(e) = theirs {
                assert!(e.to_string().contains("out of range"), "serde_json: {e}");
            }
        }
        (Err(e), Ok(_)) => assert!(
            matches!(e.kind, ErrorKind::DuplicateKey(_) | ErrorKind::TooDeep(_)),
            "refused what serde_json reads: {e}"
        ),
        (Err(e), Err(_)) => assert!(e.offset <= text.len()),
    }
});
