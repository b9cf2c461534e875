//! Every format probe through the sans-I/O loop, on arbitrary bytes. The
//! first byte picks whether the file length is known (footers at the end of
//! the file need it) — the rest is the file.
#![no_main]
use backing_chain::image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let len = if mode & 1 == 0 { Some(file.len() as u64) } else { None };
    let mut asked = 0u64;
    let r = image::probe_with(len, |off, n| -> Result<Vec<u8>, std::convert::Infallible> {
        asked += n;
        let s = (off as usize).min(file.len());
        let e = (off.saturating_add(n) as usize).min(file.len());
        Ok(file[s..e].to_vec())
    });
    // Bounded work: never more than the rounds times the largest read.
    assert!(asked <= backing_chain::limits::MAX_ROUNDS as u64 * backing_chain::limits::MAX_READ);
    if let Ok((info, _)) = r {
        // Facts must serialise (the CLI and the page print them).
        let _ = serde_json_len(&info);
    }
});

fn serde_json_len(info: &image::ImageInfo) -> usize {
    format!("{info:?}").len()
}
