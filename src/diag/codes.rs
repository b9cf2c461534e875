//! Every diagnostic code: one list, each with what it means.
//!
//! A code is serialised as its kebab-case name (`missing-backing`), the
//! stable string the JSON, the CLI and the JS API show. Which codes end a
//! chain, and with what status, is `chain::status_of`.

macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, )+) => {
        /// A diagnostic's stable code. Serialised as [`Code::name`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in the order of this list.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable kebab-case name (`missing-backing`).
            pub fn name(self) -> &'static str {
                // One string and a table of where each name ends: smaller
                // in the wasm than a match of (pointer, length) per code.
                // The names are ASCII, so `get` never misses (and, unlike
                // indexing, brings no panic path).
                const NAMES: &str = concat!($($name),+);
                const N: usize = [$($name),+].len();
                const ENDS: [u16; N] = {
                    let lens = [$($name.len()),+];
                    let mut ends = [0u16; N];
                    let (mut i, mut at) = (0, 0);
                    while i < N {
                        at += lens[i];
                        ends[i] = at as u16;
                        i += 1;
                    }
                    ends
                };
                let i = self as usize;
                let start = if i == 0 { 0 } else { ENDS[i - 1] as usize };
                NAMES.get(start..ENDS[i] as usize).unwrap_or_default()
            }

            /// The variant's identifier, to check that the names are its
            /// kebab-case form.
            #[cfg(test)]
            fn ident(self) -> &'static str {
                match self {
                    $( Code::$variant => stringify!($variant), )+
                }
            }
        }
    };
}

codes! {
    // ---- Probing an image: every format (`image`) ----
    /// No header of a known format: the file is treated as raw.
    NoHeader = "no-header",
    /// The image could not be read (I/O error or a header that cannot be parsed).
    Unprobed = "unprobed",
    /// Encrypted (qcow2, qcow, LUKS): opening it needs a secret (`<encryption>` in the disk XML).
    Encrypted = "encrypted",
    /// A backing name longer than the format allows (1023 bytes in qcow2/qcow): qemu refuses the image.
    BackingNameTooLong = "backing-name-too-long",
    /// A name in the header (backing, parent hint, …) is not valid UTF-8; shown with `\xNN`.
    NameNotUtf8 = "name-not-utf8",
    /// The virtual size cannot be computed (the file length is unknown).
    SizeUnknown = "size-unknown",
    /// The disk (or the raw image) holds a partition table; qemu reads it as data.
    PartitionTable = "partition-table",
    /// The partition table is not what firmware and tools expect (OpenStack refuses such images).
    PartitionTableInvalid = "partition-table-invalid",
    /// ISO 9660 image: qemu has no iso format and opens it as raw.
    IsoOpenedAsRaw = "iso-opened-as-raw",

    // ---- Probing an image: per format ----
    /// qcow2: unknown incompatible feature bits are set: qemu refuses to open the image.
    Qcow2UnknownIncompatible = "qcow2-unknown-incompatible",
    /// qcow2: unknown compatible or autoclear feature bits are set.
    Qcow2UnknownFeature = "qcow2-unknown-feature",
    /// qcow2: the image is marked corrupt: qemu opens it read-only only.
    Qcow2Corrupt = "qcow2-corrupt",
    /// qcow2: the dirty bit is set: refcounts may be stale (lazy refcounts).
    Qcow2Dirty = "qcow2-dirty",
    /// qed: unknown feature bits are set: qemu refuses to open the image.
    QedUnknownFeatures = "qed-unknown-features",
    /// qed: the need-check bit is set: the image was not closed cleanly.
    QedNeedCheck = "qed-need-check",
    /// LUKS2 header: qemu's luks driver opens only LUKS1.
    Luks2Unsupported = "luks2-unsupported",
    /// Parallels: the in-use marker is set: the image was not closed cleanly.
    ParallelsInUse = "parallels-in-use",
    /// VDI: a differencing image; its parent is known by UUID only and qemu does not open it.
    VdiDifferencing = "vdi-differencing",
    /// VDI: an image type qemu does not open (only dynamic and static).
    VdiUnsupportedType = "vdi-unsupported-type",
    /// VDI: the blocks do not cover the disk size.
    VdiSizeMismatch = "vdi-size-mismatch",
    /// VHDX: both headers are valid with the same sequence number but differ.
    VhdxHeadersDisagree = "vhdx-headers-disagree",
    /// VHDX: one of the two headers is not valid (signature or CRC-32C).
    VhdxHeaderInvalid = "vhdx-header-invalid",
    /// VHDX: the log is not empty and must be replayed (qemu does only when opening read-write).
    VhdxLog = "vhdx-log",
    /// VHDX: a parent locator of another type than the VHDX parent locator.
    VhdxLocatorType = "vhdx-locator-type",
    /// VHDX: HasParent is set but the parent locator has no path.
    VhdxParentUnnamed = "vhdx-parent-unnamed",
    /// VHDX: a differencing image: qemu's vhdx driver does not open images with a parent.
    VhdxDifferencing = "vhdx-differencing",
    /// VPC (VHD): a footer or dynamic header checksum does not match its contents.
    VpcChecksum = "vpc-checksum",
    /// VPC (VHD): footer only at the end of the file (fixed VHD): qemu probes it as raw.
    VpcFooterOnly = "vpc-footer-only",
    /// VPC (VHD): a differencing image without parent name or locator (matched by unique id only).
    VpcParentUnnamed = "vpc-parent-unnamed",
    /// VPC (VHD): a differencing image: qemu's vpc driver does not follow VHD parents.
    VpcDifferencing = "vpc-differencing",
    /// VMDK: a descriptor line that is neither key=value nor an extent.
    VmdkDescriptorLine = "vmdk-descriptor-line",
    /// VMDK: a descriptor file longer than the cap: only the first bytes were read (as qemu does).
    VmdkDescriptorCap = "vmdk-descriptor-cap",
    /// VMDK stream-optimized: the footer header was not read (file length unknown).
    VmdkFooterUnread = "vmdk-footer-unread",
    /// VMDK stream-optimized: the footer disagrees with the header.
    VmdkFooterMismatch = "vmdk-footer-mismatch",
    /// VMDK: a sparse header of capacity 0: qemu opens the files its embedded extent lines name.
    VmdkEmbeddedExtents = "vmdk-embedded-extents",
    /// VMDK: a sparse extent without an embedded descriptor (an extent of a multi-file disk?).
    VmdkNoDescriptor = "vmdk-no-descriptor",
    /// VMDK COWD: no CID in the text at byte 512: qemu refuses to open the image.
    VmdkCowdNoCid = "vmdk-cowd-no-cid",
    /// VMDK: parentCID is set but there is no parentFileNameHint (matched by CID only).
    VmdkParentWithoutName = "vmdk-parent-without-name",

    // ---- The safety inspector (`image::safety`): with these codes an error
    // makes the chain `unsafe` (`Code::is_unsafe`). Its other codes are listed
    // with their formats (partition tables, VMDK footer and embedded
    // extents, backing name length, missing extents). ----
    /// qcow2: guest data lives in an external data file that qemu opens.
    ExternalDataFile = "external-data-file",
    /// VMDK: an extent names a path outside the image's directory (absolute, a device, `..`, a sub-directory).
    VmdkExtentPath = "vmdk-extent-path",
    /// VMDK: an extent names a protocol (`json:`, a URL, a protocol prefix).
    VmdkExtentProtocol = "vmdk-extent-protocol",
    /// The file reads as more than one format (a second header besides the one at byte 0).
    MultipleFormats = "multiple-formats",

    // ---- Backing names (`source`) ----
    /// The backing name carries inline credentials; they were dropped (libvirt takes them from `<auth>`).
    CredentialsDropped = "credentials-dropped",
    /// An rbd source names a ceph user: the disk needs `<auth username=…>` with a secret.
    AuthNeeded = "auth-needed",

    // ---- Links and chains (`chain`) ----
    /// A backing file is not among the images (on disk: does not exist).
    MissingBacking = "missing-backing",
    /// A VMDK extent file is missing: qemu cannot open the image (CLI).
    MissingExtent = "missing-extent",
    /// The chain ends at a network source, never opened.
    RemoteBacking = "remote-backing",
    /// An untrusted backing name was not opened (`--untrusted`): the chain is not checked beyond it.
    BackingNotOpened = "backing-not-opened",
    /// Several images fit a backing name equally well.
    AmbiguousBacking = "ambiguous-backing",
    /// A backing name that cannot be parsed or used.
    BadBackingName = "bad-backing-name",
    /// The backing name of an image used as raw is data, not followed.
    BackingNotFollowed = "backing-not-followed",
    /// The mapping names an image that was not given.
    MappingUnknownImage = "mapping-unknown-image",
    /// Several images share a file name: matching by name may pick the wrong one.
    DuplicateBasename = "duplicate-basename",
    /// The backing name is the file of another image, spelt another way.
    SameFile = "same-file",
    /// The backing was matched by the given mapping.
    MatchedByMapping = "matched-by-mapping",
    /// The backing was matched by file name or the longest common path, not by its exact path.
    MatchedByName = "matched-by-name",
    /// No image is named like the backing; one was taken because its id is the recorded parent id.
    MatchedByIdentity = "matched-by-identity",
    /// The recorded parent id (VMDK CID, VHD/VHDX id) does not match the backing's.
    ParentIdMismatch = "parent-id-mismatch",
    /// The backing name is not valid UTF-8 and may not match the file.
    BackingNameNotUtf8 = "backing-name-not-utf8",
    /// An image from elsewhere names a backing that should be checked before attaching it.
    UntrustedBackingName = "untrusted-backing-name",
    /// Another backing was chosen than the one the header names (until it is rebased).
    BackingChosen = "backing-chosen",
    /// A vpc, vhdx or vdi backing: libvirt does not read backing names from this format.
    BackingNotReadByLibvirt = "backing-not-read-by-libvirt",
    /// The recorded backing format is not the backing's real format (error: qemu fails to open it).
    BackingFormatMismatch = "backing-format-mismatch",
    /// The recorded backing format is a protocol, not a format: libvirt treats the backing as raw.
    BackingFormatProtocol = "backing-format-protocol",
    /// The recorded backing format is not an image format: qemu and libvirt refuse the backing.
    BackingFormatUnknown = "backing-format-unknown",
    /// A layer does not record its backing's format: libvirt probes it (error when libvirt refuses the chain).
    BackingFormatNotRecorded = "backing-format-not-recorded",
    /// The chain comes back to one of its images.
    BackingLoop = "backing-loop",
    /// The chain is deeper than the core follows.
    TooLong = "too-long",
    /// The chain has more layers than libvirt's qemu driver accepts.
    TooDeepForLibvirt = "too-deep-for-libvirt",

    // ---- Metadata walks: allocation, map, check (`meta`) ----
    /// A raw or fixed-size image: every byte counts as allocated (no tables to read).
    MetaFullyAllocated = "meta-fully-allocated",
    /// A metadata table lies (partly) past the end of the file: read as zeroes, as qemu reads it.
    MetaPastEof = "meta-past-eof",
    /// A metadata entry qemu refuses to follow (offset not aligned, reserved bits, invalid subcluster bitmap).
    MetaCorrupt = "meta-corrupt",
    /// `check`: refcounts too low, clusters referenced twice, bad entries: repair with `qemu-img check -r all`.
    CheckCorruptions = "check-corruptions",
    /// `check`: leaked clusters (allocated but unused): repair with `qemu-img check -r leaks`.
    CheckLeaks = "check-leaks",

    // ---- Domain and volume XML (`xml`) ----
    /// A flat `<backingStore>` comes before its parent: kept under the disk.
    FlatOrder = "flat-order",
    /// A flat `<backingStore>` names a parent that does not exist: kept under the disk.
    FlatOrphan = "flat-orphan",
    /// Sibling `<backingStore>` elements: kept, but libvirt's schema accepts one per level.
    QuorumSiblings = "quorum-siblings",
    /// A volume XML lists one backing level only: the chain is left open.
    VolumeOneLevel = "volume-one-level",
    /// The XML's chain is not what the images say.
    ChainMismatch = "chain-mismatch",
    /// The XML gives a layer no `<format>` (libvirt assumes raw) but the image is another format.
    ChainNoFormat = "chain-no-format",
    /// The XML lists fewer layers than the images and does not end the chain: libvirt probes the rest.
    ChainOpen = "chain-open",
    /// The XML lists (or ends) more than the images could be followed for: not verified.
    ChainUnverified = "chain-unverified",
    /// The chain matches but has no terminator `<backingStore/>`: libvirt probes the last image again.
    ChainUnterminated = "chain-unterminated",
    /// Older libvirt schemas (9.0) have no ssh disk source: `virsh define --validate` refuses the chain.
    SchemaRefusesSsh = "schema-refuses-ssh",
    /// Older libvirt schemas (9.0) require `<identity>` on an nfs source.
    SchemaNeedsNfsIdentity = "schema-needs-nfs-identity",
    /// A path that is not absolute: libvirt's schema needs one (set the base directory).
    RelativePath = "relative-path",
    /// A name with a character XML cannot hold: the chain is not written.
    UnrepresentableName = "unrepresentable-name",
    /// A name holding U+FFFD (bytes that are not UTF-8): libvirt would not find the file by it.
    LossyName = "lossy-name",
    /// A chain too deep for the nested layout: left as it was (use the flat layout).
    NestedTooDeep = "nested-too-deep",
    /// No image matches the disk's source.
    DiskNotMatched = "disk-not-matched",
    /// The disk already has a `<backingStore>` chain: kept as it is.
    ChainTrusted = "chain-trusted",
    /// The disk has no `<backingStore>`: nothing to validate.
    NoChain = "no-chain",
    /// Index numbers assume libvirt finds no backing layer below a disk (no image tells its chain).
    IndexGuess = "index-guess",
    /// The disk's chain was replaced with what the images say.
    ChainReplaced = "chain-replaced",

    // ---- The store audit (`audit`): many images and many domains ----
    /// A domain XML (one of several documents) is not well-formed: reported with its position, the others still load.
    DomainNotWellFormed = "domain-not-well-formed",
    /// A VM disk's file is not among the images (not dropped, or elsewhere on the host).
    DiskOutsideDrop = "disk-outside-drop",
    /// A VM disk's file does not exist (the CLI looks; the core does no I/O).
    DiskFileMissing = "disk-file-missing",
    /// Several dropped images fit a VM disk's source path equally well.
    DiskAmbiguous = "disk-ambiguous",
    /// A network disk (nbd, rbd, iscsi, …): listed, never matched to dropped images.
    NetworkDisk = "network-disk",
    /// Several VM disks (of one VM or of several) use the same image as their top.
    SharedDisk = "shared-disk",
    /// Two dropped names are the same image (same file, or the same recorded id).
    DuplicateImage = "duplicate-image",
    /// A chain mixes image formats (a raw base under qcow2 is not counted).
    MixedFormats = "mixed-formats",
    /// A chain deeper than the audit's threshold (libvirt refuses more than 200 layers).
    DeepChain = "deep-chain",
}

impl Code {
    /// An error with this code makes the chain `unsafe`: the safety
    /// inspector's codes (`image::safety`), an image unsafe to attach as it is.
    pub fn is_unsafe(self) -> bool {
        matches!(
            self,
            Code::ExternalDataFile
                | Code::VmdkExtentPath
                | Code::VmdkExtentProtocol
                | Code::MultipleFormats
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl PartialEq<Code> for &str {
    fn eq(&self, other: &Code) -> bool {
        *self == other.name()
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn names_are_the_kebab_case_of_the_variants_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            let mut kebab = String::new();
            for (i, ch) in c.ident().chars().enumerate() {
                if ch.is_ascii_uppercase() {
                    if i > 0 {
                        kebab.push('-');
                    }
                    kebab.push(ch.to_ascii_lowercase());
                } else {
                    kebab.push(ch);
                }
            }
            // Digits stay with the word before them (`Qcow2Dirty`, `Luks2…`).
            assert_eq!(c.name(), kebab, "{c:?}");
            assert!(seen.insert(c.name()), "{} twice", c.name());
        }
    }

    #[test]
    fn serialises_as_the_name() {
        assert_eq!(
            serde_json::to_string(&Code::MissingBacking).unwrap(),
            "\"missing-backing\""
        );
        assert_eq!(Code::TooDeepForLibvirt.to_string(), "too-deep-for-libvirt");
        assert!(Code::BackingLoop == "backing-loop");
    }
}
