//! The image-store audit on arbitrary domain text and graphs: the first
//! byte says how many of the next bytes are a graph (pairs: image, backing
//! image or none, as in the `chain` target); the rest is domain XML (one or
//! several documents, well-formed or not). Checks besides "no panic": every
//! index the report gives is an image, counts are at least the lists, and
//! the CSV has a row per image.
#![no_main]
use backing_chain::audit::{self, AuditOptions, DomainText, FileFacts};
use backing_chain::chain::{Image, Probed};
use backing_chain::image::{Format, ImageInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let g = (k as usize * 2).min(rest.len()).min(128);
    let (graph, text) = rest.split_at(g);
    let n = graph.len() / 2;
    let images: Vec<Image> = (0..n)
        .map(|i| {
            let b = graph[2 * i + 1] as usize;
            let mut info = ImageInfo::new(if b % 7 == 0 { Format::Raw } else { Format::Qcow2 });
            if b % 5 != 0 {
                info.backing_filename = Some(format!("img{}", b % (n + 2)));
                if graph[2 * i] % 2 == 0 {
                    info.backing_filename_format = Some("qcow2".into());
                }
            }
            Image { filename: format!("/d/img{i}"), probe: Probed::Info(Box::new(info)), bytes_read: 0 }
        })
        .collect();
    let facts: Vec<FileFacts> = (0..n)
        .map(|i| FileFacts { size: Some(i as u64), id: (i % 3 == 0).then(|| "same".to_string()) })
        .collect();
    let text = String::from_utf8_lossy(text).into_owned();
    let a = audit::audit(images, &facts, &[DomainText { label: "fuzz".into(), text }], &AuditOptions::default());
    assert_eq!(a.images.len(), n);
    for e in &a.images {
        assert!(e.dependents_count >= e.dependents.len());
        assert!(e.dependents.iter().chain(&e.overlays).all(|&d| d < n));
        assert!(e.users.iter().all(|u| u.vm < a.vms.len()));
        if let Some(c) = &e.commit {
            assert!(c.into < n && c.hazard_count >= c.hazard_images.len());
        }
    }
    for vm in &a.vms {
        assert!(vm.exclusive.iter().all(|&x| x < n));
    }
    let csv = audit::report::csv(&a);
    assert_eq!(csv.matches("\r\n").count(), n + 1);
    let _ = audit::report::script(&a);
    let _ = a.is_broken();
});
