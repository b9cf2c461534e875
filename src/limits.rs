//! Every bound the core enforces, in one place. Each limit names the error it
//! gives when reached.

#![warn(missing_docs)]

/// Largest single read a probe asks for (bytes). A header that would need more
/// in one piece is reported as "needs N bytes in one piece".
pub const MAX_READ: u64 = 1 << 20;

/// Most read rounds one probe may ask for. More: "header needs more than N reads".
pub const MAX_ROUNDS: usize = 16;

/// Longest backing name qemu writes (qcow2 caps it at 1023 bytes).
pub const MAX_BACKING_NAME: u64 = 1023;

/// Longest backing name qemu opens in a qed or vmdk image (its PATH_MAX
/// buffer less the NUL). Longer: the `backing-name-too-long` diagnostic.
pub const MAX_BACKING_NAME_PATH: usize = 4095;

/// Deepest chain libvirt's qemu driver accepts; deeper is an error diagnostic.
pub const LIBVIRT_MAX_DEPTH: usize = 200;

/// Deepest chain the core follows at all (then "too-long").
pub const MAX_CHAIN_DEPTH: usize = 100_000;

/// Deepest XML element nesting accepted when reading XML.
pub const MAX_XML_DEPTH: usize = 256;

/// Deepest chain written in the nested layout (it must stay readable under
/// [`MAX_XML_DEPTH`], and nested text grows with the square of the depth).
/// Deeper: an error diagnostic `nested-too-deep` and the disk is left as it
/// was; the flat layout has no such limit.
pub const MAX_NESTED_CHAIN: usize = MAX_XML_DEPTH - 16;

/// Largest XML document accepted (bytes).
pub const MAX_XML_BYTES: usize = 64 << 20;

/// Longest backing name the name parser accepts at all (bytes): far above
/// what any format stores, so a 1 MB `json:` name is an error, not work.
pub const MAX_BACKING_NAME_PARSE: usize = 1 << 20;

/// Deepest JSON nesting (objects and arrays, after deflattening dotted keys)
/// accepted in a `json:` backing name ("nests deeper than N levels").
pub const MAX_JSON_DEPTH: usize = 32;

/// Deepest JSON nesting accepted in a `qemu-img info --output=json`
/// document (qemu-img's own are 6 deep: bitmaps' flags in `format-specific`).
pub const MAX_QEMU_JSON_DEPTH: usize = 64;

/// Largest `qemu-img info --output=json` document accepted (bytes): about
/// 100,000 images of qemu-img's output, the deepest chain the core follows
/// ([`MAX_CHAIN_DEPTH`]).
pub const MAX_QEMU_JSON_BYTES: usize = 128 << 20;

// Image probes (src/image/): caps on what a header may make a probe read or
// accept. Most are qemu's own, so an image past them is one qemu refuses too.

/// Most bytes kept of a backing name longer than its format allows. Such a
/// name is kept (the image is still what its header says, with a flagged
/// name) but never read without bound: a header may claim a 4 GiB name.
/// 4096 bytes is Linux's `PATH_MAX` with its NUL, so a longer name cannot
/// open any file anyway; the real length is in the diagnostic and in
/// `header.backing-name-length`.
pub const MAX_FLAGGED_NAME: u64 = 4096;

/// qemu's cap on the number of qcow2 persistent bitmaps. More: an error.
pub const QCOW2_MAX_BITMAPS: u32 = 65535;

/// qemu's cap on the size of a qcow2 bitmap directory (bytes); the read is
/// also capped by [`MAX_READ`]. More: an error.
pub const QCOW2_MAX_BITMAP_DIRECTORY: u64 = 64 << 20;

/// qemu's cap on the number of qcow2 internal snapshots. More: an error.
pub const QCOW2_MAX_SNAPSHOTS: u32 = 65536;

/// qemu's cap on a qcow2 snapshot entry's extra data (bytes). More: an error.
pub const QCOW2_MAX_SNAPSHOT_EXTRA: u64 = 1024;

/// Most VHDX metadata table entries ([MS-VHDX] §2.6.1.1). More: an error.
pub const VHDX_MAX_METADATA_ENTRIES: u64 = 2047;

/// Longest VHDX metadata item read (bytes). Longer: an error.
pub const VHDX_MAX_METADATA_ITEM: u64 = 64 * 1024;

/// qemu reads at most 1 MiB − 1 of a VMDK descriptor; so do we (a warning
/// `vmdk-descriptor-cap` for a longer descriptor file, an error for a
/// longer embedded one).
pub const VMDK_MAX_DESCRIPTOR: u64 = (1 << 20) - 1;

/// qemu's largest VMDK grain (sectors). Larger: an error.
pub const VMDK_MAX_GRAIN_SECTORS: u64 = 0x20_0000;

/// Longest VHD parent locator data read (bytes). Longer: an error.
pub const VPC_MAX_LOCATOR: u64 = 64 * 1024;

/// qemu's cap on a cloop block size (bytes). Larger: an error.
pub const CLOOP_MAX_BLOCK: u32 = 64 << 20;

/// Largest GPT partition entry array read (bytes; 128 entries of 128 bytes
/// is 16 KiB). Larger: a `partition-table-invalid` problem.
pub const GPT_MAX_ENTRY_ARRAY: u64 = 256 * 1024;

/// The audit: most images listed per "dependents" / "would break" /
/// "hazard" list of one image (the counts are always exact). Without a cap
/// a 10,000-deep chain would list ~50 million dependents.
pub const AUDIT_MAX_LISTED: usize = 100;

/// The audit: a chain deeper than this is flagged `deep-chain` (a warning;
/// libvirt refuses more than [`LIBVIRT_MAX_DEPTH`], an error of the chain).
pub const AUDIT_DEEP_CHAIN: usize = 100;

// Metadata walks (src/meta/): allocation, map, measure, check.

/// Most bytes one metadata walk reads in all (tables of every kind). More:
/// the walk stops with "the tables need more than N bytes". 1 GiB is the L2
/// tables of 8 TiB of allocated data at 64 KiB clusters.
pub const META_MAX_BYTES: u64 = 1 << 30;

/// Most clusters of an image file a check counts references for (one 32-bit
/// counter each: 256 MiB; a 4 TiB file of 64 KiB clusters). More: "the file
/// has more than N clusters".
pub const META_MAX_CLUSTERS: u64 = 1 << 26;

/// Most clusters one table reference may span in a check (a crypto header,
/// a snapshot table, a bitmap table claiming more: "claims N clusters").
pub const META_MAX_SPAN: u64 = 1 << 24;

/// Most problems a check lists with their location (all are counted).
pub const META_MAX_PROBLEMS: usize = 20;

/// qemu's cap on a qcow2 L1 table (bytes, `QCOW_MAX_L1_SIZE`). More: an
/// error, as qemu refuses to open the image.
pub const QCOW2_MAX_L1_BYTES: u64 = 32 << 20;

/// qemu's cap on a qcow2 refcount table (bytes, `QCOW_MAX_REFTABLE_SIZE`).
/// More: an error, as qemu refuses to open the image.
pub const QCOW2_MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// qemu's cap on the whole qcow2 snapshot table (bytes,
/// `QCOW_MAX_SNAPSHOTS_SIZE`). More: an error.
pub const QCOW2_MAX_SNAPSHOT_TABLE: u64 = 64 << 20;
