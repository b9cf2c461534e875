//! Every bound the core enforces, in one place. Each limit names the error it
//! gives when reached.

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
/// accepted in a `json:` backing name; checked before serde_json recurses.
pub const MAX_JSON_DEPTH: usize = 32;
