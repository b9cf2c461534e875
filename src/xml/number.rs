//! `index` numbers as libvirt gives them to a VM it starts.
//!
//! The rule, observed for issue 13 on a libvirt 11.3.0 daemon with QEMU
//! 10.0.2 (Debian bookworm-backports; `virsh dumpxml` of VMs it started)
//! and read in libvirt 11.3.0's code (the names below are libvirt's):
//!
//! * One counter per running VM, from 1 (`qemuDomainStorageIDNew`); every
//!   number is unique in the VM. Numbers in an XML given to libvirt are
//!   ignored: it numbers again at every start.
//! * The disks are walked in libvirt's order, which is not always the XML's:
//!   each disk is inserted, in XML order, before the earliest disk already
//!   placed on the same bus whose target sorts after it (`vda` < `vdz` <
//!   `vdaa`), else just after the last disk on its bus, else at the end
//!   (`virDomainDiskInsert`). [`libvirt_order`].
//! * Pass 1 (`qemuProcessPrepareDomainStorage`), disks from the last to
//!   the first: the top (also an empty drive's, which is never printed),
//!   then the top's given `<dataStore>`, then each layer of the
//!   `<backingStore>` chain the XML gives, top → base, each followed by its
//!   given `<dataStore>`; then one number per `<throttlefilter>` (code only,
//!   not observed). `type='vhostuser'` disks take none.
//! * Pass 2 (`qemuProcessPrepareHostStorage`), disks again from the last to
//!   the first, for chains libvirt detects: nothing for an empty drive, a
//!   given chain that ends in `<backingStore/>`, a network disk, or a top
//!   whose format has no backing (raw, iso, …); otherwise, from the last
//!   given layer (the top when none is given): its data file when the XML
//!   did not give it, then each detected layer top → base, each followed by
//!   its data file.
//!
//! What we write is numbered as libvirt numbers what it *detects*: the
//! output is what `virsh dumpxml` shows once libvirt has started the VM of
//! the input (whose disks had no chain). A chain given in the XML is
//! numbered in pass 1 instead, so libvirt numbers a populated document
//! differently when it starts it — it renumbers at every start anyway.
//! Observed: the order of disks, both passes, empty drives, raw and nbd
//! disks, given full, partial and terminated chains, detected and given
//! data files. From the code only: `<throttlefilter>`s, `vhostuser`.
//!
//! Not modelled (code only, not observed on a daemon): SCSI `<hostdev>`s,
//! which take numbers between the passes; `bus='sd'` disks, which use the
//! legacy `-drive` path. A disk whose chain libvirt would detect but that no
//! image matches makes the numbers of the disks numbered after it in pass
//! 2 a guess: [`Numbering::unsure`] names it.

/// What the numbering needs to know about one disk.
#[derive(Debug, Clone, Default)]
pub struct DiskFacts {
    /// `<target bus>`, else the bus libvirt derives from the target name.
    pub bus: Option<String>,
    /// `<target dev>`.
    pub dev: Option<String>,
    /// Does the disk take numbers at all (not `vhostuser`)?
    pub numbered: bool,
    /// Does its top take one (a live document: only when it has none)?
    pub top: bool,
    /// An empty drive (no `<source>`): one number in pass 1, none after.
    pub empty: bool,
    /// Does the top's `<source>` give a `<dataStore>`?
    pub top_data_given: bool,
    /// The layers of the chain the XML gives (main path, terminator
    /// excluded): does each give a `<dataStore>`?
    pub given: Vec<bool>,
    /// `<throttlefilter>` elements of the disk.
    pub throttle: usize,
    /// What libvirt would detect in pass 2.
    pub detected: Detected,
}

/// The chain libvirt detects for a disk (pass 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Detected {
    /// Nothing (terminated, network, a format without backing, empty).
    #[default]
    Nothing,
    /// Known from the images: the data file of the last given layer (the
    /// top when none is given) when the XML does not give it, then the
    /// layers, each with whether it has a data file.
    Known { first_data: bool, layers: Vec<bool> },
    /// libvirt would detect a chain no image tells us about.
    Unknown,
}

/// The numbers of one disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskNumbers {
    pub top: Option<usize>,
    pub top_data: Option<usize>,
    /// Given layers: the layer's number and its data store's.
    pub given: Vec<(usize, Option<usize>)>,
    /// The last given layer's (or the top's) detected data store.
    pub first_data: Option<usize>,
    /// Detected layers: the layer's number and its data store's.
    pub detected: Vec<(usize, Option<usize>)>,
}

/// The numbers of every disk (in document order), and the disks
/// (positions in document order) whose unknown chain makes some numbers a
/// guess, with the disks whose numbers are affected.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    pub disks: Vec<DiskNumbers>,
    /// `(unknown disk, disks numbered after it in pass 2)`.
    pub unsure: Vec<(usize, Vec<usize>)>,
}

/// The bus libvirt gives a disk without `<target bus>`, from its target
/// name's prefix (`virDomainDiskDefParseXML`'s defaults).
pub fn default_bus(dev: &str) -> Option<&'static str> {
    [
        ("hd", "ide"),
        ("sd", "scsi"),
        ("vd", "virtio"),
        ("xvd", "xen"),
        ("ubd", "uml"),
        ("fd", "fdc"),
    ]
    .into_iter()
    .find(|(p, _)| dev.starts_with(p))
    .map(|(_, b)| b)
}

/// libvirt's `virDiskNameToIndex`: the letters after the prefix as a
/// bijective base-26 number (`vda` 0, `vdz` 25, `vdaa` 26), trailing digits
/// (a partition) ignored; `-1` for a name it cannot read.
pub fn disk_name_index(name: &str) -> i64 {
    let rest = ["fd", "hd", "vd", "sd", "xvd", "ubd"]
        .iter()
        .find_map(|p| name.strip_prefix(p));
    let Some(rest) = rest else { return -1 };
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 || !rest.as_bytes()[letters..].iter().all(u8::is_ascii_digit) {
        return -1;
    }
    let mut idx: i64 = 0;
    for b in rest.bytes().take(letters) {
        idx = match idx
            .checked_mul(26)
            .and_then(|v| v.checked_add(i64::from(b - b'a') + 1))
        {
            Some(v) => v,
            None => return -1,
        };
    }
    idx - 1
}

/// The disks (positions in document order) in libvirt's order
/// (`virDomainDiskInsert`, applied to each disk in document order: before
/// the earliest disk on its bus whose target sorts after it, else after the
/// last disk on its bus, else at the end). The disks of a bus therefore
/// stay together, in the order the buses first appear, sorted by target
/// (equal ones in document order): that order, by a stable sort.
pub fn libvirt_order(disks: &[DiskFacts]) -> Vec<usize> {
    let mut first_seen: Vec<&Option<String>> = Vec::new();
    let rank: Vec<usize> = disks
        .iter()
        .map(|d| match first_seen.iter().position(|b| **b == d.bus) {
            Some(r) => r,
            None => {
                first_seen.push(&d.bus);
                first_seen.len() - 1
            }
        })
        .collect();
    // Key: the bus's rank, then the target's index (`-1`, unreadable,
    // first); stable, so equal ones stay in document order. Grouped by
    // rank first (linear), each group sorted by insertion: groups are
    // usually in order already.
    let key: Vec<usize> = disks
        .iter()
        .map(|d| (d.dev.as_deref().map_or(-1, disk_name_index) + 1) as usize)
        .collect();
    let mut order: Vec<usize> = Vec::with_capacity(disks.len());
    for r in 0..first_seen.len() {
        let start = order.len();
        order.extend((0..disks.len()).filter(|&i| rank[i] == r));
        super::sort_small(&mut order[start..], |&i| (key[i], 0));
    }
    order
}

/// libvirt's loop itself, for the tests: each disk inserted in turn.
#[cfg(test)]
fn libvirt_insert_loop(disks: &[DiskFacts]) -> Vec<usize> {
    let key: Vec<i64> = disks
        .iter()
        .map(|d| d.dev.as_deref().map_or(-1, disk_name_index))
        .collect();
    let mut order: Vec<usize> = Vec::with_capacity(disks.len());
    for (i, d) in disks.iter().enumerate() {
        let mut at: Option<usize> = None;
        for (pos, &o) in order.iter().enumerate().rev() {
            if disks[o].bus != d.bus {
                continue;
            }
            if key[o] > key[i] {
                at = Some(pos);
            } else if at.is_none() {
                at = Some(pos + 1);
            }
        }
        match at {
            Some(p) => order.insert(p, i),
            None => order.push(i),
        }
    }
    order
}

/// Number the disks as a freshly started VM, the counter starting at
/// `first` (1 for a VM libvirt starts; above the largest number in use for
/// a live document that already carries some).
pub fn number(disks: &[DiskFacts], first: usize) -> Numbering {
    let order = libvirt_order(disks);
    let mut out = Numbering {
        disks: vec![DiskNumbers::default(); disks.len()],
        unsure: Vec::new(),
    };
    let mut next = first;
    let mut take = || {
        let n = next;
        next += 1;
        n
    };
    for &i in order.iter().rev() {
        let d = &disks[i];
        if !d.numbered {
            continue;
        }
        let n = &mut out.disks[i];
        if d.top {
            n.top = Some(take());
        }
        if d.empty {
            continue;
        }
        if d.top_data_given {
            n.top_data = Some(take());
        }
        for &data in &d.given {
            let l = take();
            n.given.push((l, data.then(&mut take)));
        }
        for _ in 0..d.throttle {
            take();
        }
    }
    let mut unknown: Option<usize> = None;
    for &i in order.iter().rev() {
        let d = &disks[i];
        if !d.numbered || d.empty {
            continue;
        }
        match &d.detected {
            Detected::Nothing => {}
            Detected::Unknown => {
                if unknown.is_none() {
                    unknown = Some(i);
                    out.unsure.push((i, Vec::new()));
                }
            }
            Detected::Known { first_data, layers } => {
                let n = &mut out.disks[i];
                if *first_data {
                    n.first_data = Some(take());
                }
                for &data in layers {
                    let l = take();
                    n.detected.push((l, data.then(&mut take)));
                }
                if let Some(u) = out.unsure.last_mut() {
                    if !layers.is_empty() || *first_data {
                        u.1.push(i);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dev: &str, bus: &str) -> DiskFacts {
        DiskFacts {
            bus: Some(bus.into()),
            dev: Some(dev.into()),
            numbered: true,
            top: true,
            ..Default::default()
        }
    }

    #[test]
    fn names_sort_as_libvirt_reads_them() {
        assert_eq!(disk_name_index("vda"), 0);
        assert_eq!(disk_name_index("vdz"), 25);
        assert_eq!(disk_name_index("vdaa"), 26);
        assert_eq!(disk_name_index("sdb3"), 1);
        assert_eq!(disk_name_index("hdA"), -1);
        assert_eq!(disk_name_index("nvme0n1"), -1);
        assert_eq!(disk_name_index("vd"), -1);
        assert_eq!(disk_name_index(&format!("vd{}", "z".repeat(40))), -1);
    }

    // The order libvirt 11.3 printed (findings e2): XML order vda, sda,
    // vdb, vdc, vdd, vde became vda, vdb, vdc, vdd, vde, sda; a defined
    // vdb, vda became vda, vdb.
    #[test]
    fn disks_are_grouped_by_bus_and_sorted_as_libvirt_inserts_them() {
        let d: Vec<DiskFacts> = [
            ("vda", "virtio"),
            ("sda", "sata"),
            ("vdb", "virtio"),
            ("vdc", "virtio"),
            ("vdd", "virtio"),
            ("vde", "virtio"),
        ]
        .iter()
        .map(|(n, b)| disk(n, b))
        .collect();
        assert_eq!(libvirt_order(&d), [0, 2, 3, 4, 5, 1]);
        let d = vec![disk("vdb", "virtio"), disk("vda", "virtio")];
        assert_eq!(libvirt_order(&d), [1, 0]);
    }

    /// The sort is libvirt's insertion loop, for any mix of buses, names
    /// (repeated, unreadable) and orders.
    #[test]
    fn the_sort_is_the_insertion_loop() {
        let mut x: u64 = 7;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for _ in 0..2000 {
            let n = next(12) as usize;
            let d: Vec<DiskFacts> = (0..n)
                .map(|_| {
                    let bus = ["virtio", "sata", "scsi"][next(3) as usize];
                    let dev = match next(8) {
                        0 => "bogus".to_string(),
                        k => format!("vd{}", (b'a' + (next(5) + k) as u8 % 26) as char),
                    };
                    let mut f = disk(&dev, bus);
                    if next(10) == 0 {
                        f.bus = None;
                    }
                    f
                })
                .collect();
            assert_eq!(libvirt_order(&d), libvirt_insert_loop(&d));
        }
    }
}
