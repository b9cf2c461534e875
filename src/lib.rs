//! backing-chain: read disk image headers, build libvirt backing chains, and
//! write `<backingStore>` XML — nested (libvirt's form) or flat.
//!
//! The core is pure: no I/O, no clock, no web types. Adapters (the wasm
//! facade, module `wasm`, built for wasm32 only; the CLI `backing-chain`)
//! read bytes and call in. Three steps, one module each:
//!
//! 1. **Probe** each image ([`image`]): a probe never reads a file; it is
//!    handed the bytes read so far and answers with the facts
//!    ([`image::ImageInfo`], keys as `qemu-img info --output=json`) or the
//!    byte ranges it needs next. [`image::probe_with`] runs that loop over
//!    a synchronous reader; the browser runs it over `Blob.slice`. Only the
//!    header is read: a few KiB of a 100 GB image.
//! 2. **Build the forest** ([`chain::build`]): every backing name is matched
//!    to one of the images (by path, then by path suffix, basename or the
//!    parent id the header records), every chain is walked from its top, and
//!    what libvirt or qemu would refuse is said in [`diag::Diagnostic`]s,
//!    with the command that fixes it where one exists.
//! 3. **Write the XML** ([`xml::populate`]): a domain, status, `<disk>` or
//!    `<volume>` XML comes back with each matching disk's `<backingStore>`
//!    chain, every other byte copied.
//!
//! Bad input gives an error, never a panic; every bound is in [`limits`].
//!
//! # Example
//!
//! Two qcow2 images, `base.qcow2` and `top.qcow2` on top of it (as
//! `qemu-img create -f qcow2 -F qcow2 -b base.qcow2 top.qcow2` records it);
//! the domain's disk names the top. The images are only their headers here,
//! built in memory by `qcow2` below.
//!
//! ```
//! use backing_chain::{chain, image, xml};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let files = [
//!         ("/var/lib/libvirt/images/base.qcow2", qcow2(10 << 30, None)),
//!         ("/var/lib/libvirt/images/top.qcow2", qcow2(10 << 30, Some("base.qcow2"))),
//!     ];
//!
//!     // 1. Probe: the reader answers "`len` bytes at `offset`" (fewer at the
//!     //    end of the file); here from memory, in the CLI with positioned reads.
//!     let mut images = Vec::new();
//!     for (name, bytes) in &files {
//!         let (info, bytes_read) = image::probe_with(Some(bytes.len() as u64), |offset, len| {
//!             let start = (offset as usize).min(bytes.len());
//!             let end = (offset.saturating_add(len) as usize).min(bytes.len());
//!             Ok::<_, std::io::Error>(bytes[start..end].to_vec())
//!         })?;
//!         images.push(chain::Image {
//!             filename: name.to_string(),
//!             probe: chain::Probed::Info(Box::new(info)),
//!             bytes_read,
//!         });
//!     }
//!     let top = images[1].info().unwrap();
//!     assert_eq!(top.format, image::Format::Qcow2);
//!     assert_eq!(top.virtual_size, Some(10 << 30));
//!     assert_eq!(top.backing_filename.as_deref(), Some("base.qcow2"));
//!     assert_eq!(top.backing_filename_format.as_deref(), Some("qcow2"));
//!
//!     // 2. The forest: one chain, top (image 1) → base (image 0), nothing wrong.
//!     let forest = chain::build(images);
//!     assert_eq!(forest.chains.len(), 1);
//!     let c = &forest.chains[0];
//!     assert_eq!(c.layers, [1, 0]);
//!     assert_eq!(c.status, chain::Status::Ok);
//!     assert!(c.diagnostics.is_empty());
//!
//!     // 3. The XML: the disk gets the chain below its source, as libvirt
//!     //    shows it for a running VM (`index` numbers as libvirt gives them
//!     //    when it starts the VM; `Options::no_index` leaves them out, as
//!     //    the inactive XML does). Every other byte is copied.
//!     let domain = "\
//! <domain type='kvm'>
//!   <name>vm</name>
//!   <devices>
//!     <disk type='file' device='disk'>
//!       <driver name='qemu' type='qcow2'/>
//!       <source file='/var/lib/libvirt/images/top.qcow2'/>
//!       <target dev='vda' bus='virtio'/>
//!     </disk>
//!   </devices>
//! </domain>";
//!     let out = xml::populate(domain, &forest, &xml::Options::default())?;
//!     assert_eq!(out.xml, "\
//! <domain type='kvm'>
//!   <name>vm</name>
//!   <devices>
//!     <disk type='file' device='disk'>
//!       <driver name='qemu' type='qcow2'/>
//!       <source file='/var/lib/libvirt/images/top.qcow2' index='1'/>
//!       <backingStore type='file' index='2'>
//!         <format type='qcow2'/>
//!         <source file='/var/lib/libvirt/images/base.qcow2'/>
//!         <backingStore/>
//!       </backingStore>
//!       <target dev='vda' bus='virtio'/>
//!     </disk>
//!   </devices>
//! </domain>");
//!     Ok(())
//! }
//!
//! /// A qcow2 version 3 header (512 bytes) for a disk of `size` bytes with
//! /// 64 KiB clusters and, with a backing file, the backing format extension
//! /// (`qcow2`) and the backing name: the fields a probe reads, after qemu's
//! /// `docs/interop/qcow2.rst`. Not a whole image: qemu would also want the
//! /// refcount and L1 tables, which a probe never reads.
//! fn qcow2(size: u64, backing: Option<&str>) -> Vec<u8> {
//!     let mut h = vec![0u8; 512];
//!     let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
//!     put(0, b"QFI\xfb");
//!     put(4, &3u32.to_be_bytes()); // version
//!     put(20, &16u32.to_be_bytes()); // cluster_bits
//!     put(24, &size.to_be_bytes()); // virtual size
//!     put(96, &4u32.to_be_bytes()); // refcount_order: 16-bit refcounts
//!     put(100, &104u32.to_be_bytes()); // header_length
//!     if let Some(name) = backing {
//!         put(104, &0xe279_2acau32.to_be_bytes()); // extension: backing format
//!         put(108, &5u32.to_be_bytes()); // its length; an end extension at 120
//!         put(112, b"qcow2");
//!         put(8, &128u64.to_be_bytes()); // backing_file_offset
//!         put(16, &(name.len() as u32).to_be_bytes()); // backing_file_size
//!         put(128, name.as_bytes());
//!     }
//!     h
//! }
//! ```

pub mod audit;
pub mod chain;
pub mod diag;
pub mod image;
pub mod json;
pub mod json_out;
pub mod limits;
pub mod meta;
pub mod source;
pub(crate) mod text;
pub mod xml;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// The examples of the crate's readme (`crates-io.md`), run by
/// `cargo test --doc` like the others.
#[cfg(doctest)]
#[doc = include_str!("../crates-io.md")]
pub struct CratesIoReadme;
