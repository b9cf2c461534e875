//! Chain building on arbitrary graphs: each byte pair is (image, backing
//! image or none). Must terminate, with every image in some chain.
#![no_main]
use backing_chain::chain::{self, Image, Probed};
use backing_chain::image::{Format, ImageInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Up to 128 images: every shape (cycles through ./ and absolute names,
    // shared bases, missing and raw layers, long chains) fits; larger graphs
    // only slow the run (tests/hostile.rs builds random graphs of up to 300
    // images and a 10,000-deep chain).
    let data = &data[..data.len().min(256)];
    let n = data.len() / 2;
    if n == 0 {
        return;
    }
    let images: Vec<Image> = (0..n)
        .map(|i| {
            let b = data[2 * i + 1] as usize;
            let mut info = ImageInfo::new(if b % 7 == 0 { Format::Raw } else { Format::Qcow2 });
            // Values ≥ n name missing files; some names use ./ or sub/ forms.
            if b % 5 != 0 {
                let target = b % (n + 2);
                info.backing_filename = Some(match data[2 * i] % 3 {
                    0 => format!("img{target}"),
                    1 => format!("./img{target}"),
                    _ => format!("/d/img{target}"),
                });
            }
            Image { filename: format!("/d/img{i}"), probe: Probed::Info(Box::new(info)), bytes_read: 0 }
        })
        .collect();
    let forest = chain::build(images);
    let mut seen = vec![false; n];
    for c in &forest.chains {
        for &l in &c.layers {
            seen[l] = true;
        }
    }
    assert!(seen.iter().all(|&s| s), "every image belongs to a chain");
});
