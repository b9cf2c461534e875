//! Domain XML read + populate + nested and flat write, on arbitrary text,
//! with a small fixed set of images. Populate is idempotent: its output,
//! populated again in the same layout, comes back unchanged (the chains it
//! wrote are trusted, everything else was copied).
#![no_main]
use backing_chain::chain::{self, Image, Probed};
use backing_chain::image::{Format, ImageInfo};
use backing_chain::xml::{self, Layout, Options};
use libfuzzer_sys::fuzz_target;

fn image(name: &str, backing: Option<&str>) -> Image {
    let mut info = ImageInfo::new(Format::Qcow2);
    info.backing_filename = backing.map(str::to_string);
    info.backing_filename_format = backing.map(|_| "qcow2".to_string());
    Image { filename: name.to_string(), probe: Probed::Info(Box::new(info)), bytes_read: 0 }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    let forest = chain::build(vec![
        image("/v/top.qcow2", Some("mid.qcow2")),
        image("/v/mid.qcow2", Some("base.qcow2")),
        image("/v/base.qcow2", None),
    ]);
    for layout in [Layout::Nested, Layout::Flat] {
        let opts = Options { layout, ..Default::default() };
        if let Ok(out) = xml::populate(doc, &forest, &opts) {
            let again = xml::populate(&out.xml, &forest, &opts).expect("our output reads back");
            assert_eq!(again.xml, out.xml, "populate is not idempotent");
        }
    }
});
