//! Every format probe through the sans-I/O loop, on arbitrary files. The
//! input layout (flat, or sparse so that VHDX and footers fit) is
//! `tests/common/fuzz_input.rs`; its first byte also says whether the probe
//! is told the file length (footers at the end of the file need it).
#![no_main]
use backing_chain::image;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_input.rs"]
mod fuzz_input;

fuzz_target!(|data: &[u8]| {
    let Some(file) = fuzz_input::FuzzFile::parse(data) else { return };
    let mut asked = 0u64;
    let r = image::probe_with(file.len_known.then_some(file.len), |off, n| {
        asked += n;
        Ok::<_, std::convert::Infallible>(file.read(off, n))
    });
    // Bounded work: never more than the rounds times the largest read.
    assert!(asked <= backing_chain::limits::MAX_ROUNDS as u64 * backing_chain::limits::MAX_READ);
    if let Ok((info, _)) = r {
        // Facts serialise to JSON (the CLI and the page print them).
        serde_json::to_string(&info).expect("facts serialise");
    }
});
