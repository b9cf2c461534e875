//! The metadata walkers (`meta::Walk`: qcow2 tables, allocation, check) and
//! the chain map over them, on arbitrary files in the probe target's input
//! layout (`tests/common/fuzz_input.rs`): probe, then walk with and without
//! check. Properties: the bytes read stay within the walk's plan; the
//! layer's runs tile its virtual size; the map of the layer over itself tiles
//! it too; results serialise.
#![no_main]
use backing_chain::{image, meta};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_input.rs"]
mod fuzz_input;

fuzz_target!(|data: &[u8]| {
    let Some(file) = fuzz_input::FuzzFile::parse(data) else { return };
    let Ok((info, _)) = image::probe_with(Some(file.len), |off, n| {
        Ok::<_, std::convert::Infallible>(file.read(off, n))
    }) else {
        return;
    };
    for check in [false, true] {
        let Ok(mut w) = meta::Walk::new(&info, file.len, meta::WalkOptions { check }) else {
            return;
        };
        let first = w.plan();
        // Keep each input fast: a walk may read up to META_MAX_BYTES.
        if first.bytes_total > 32 << 20 {
            return;
        }
        let mut read = 0u64;
        let layer = loop {
            let need = match w.need() {
                Ok(n) => n,
                Err(_) => break None,
            };
            if need.is_empty() {
                break w.finish().ok();
            }
            for r in need {
                assert!(r.len <= backing_chain::limits::MAX_READ);
                assert!(r.end() <= file.len, "a range past the end of the file was asked");
                let b = file.read(r.offset, r.len);
                read += b.len() as u64;
                if w.feed(r, &b).is_err() {
                    return;
                }
            }
        };
        let Some(layer) = layer else { continue };
        assert!(read <= first.bytes_total.max(layer.bytes_read));
        assert_eq!(layer.bytes_read, read);
        let mut pos = 0;
        for e in &layer.extents {
            assert_eq!(e.start, pos);
            pos += e.length;
        }
        assert_eq!(pos, layer.virtual_size);
        let a = &layer.allocation;
        assert_eq!(a.data + a.zero + a.compressed + a.unallocated, a.virtual_size);
        let map = meta::chain_map(&[&layer, &layer]);
        assert_eq!(map.iter().map(|e| e.length).sum::<u64>(), layer.virtual_size);
        serde_json::to_string(&layer).expect("layer serialises");
    }
});
