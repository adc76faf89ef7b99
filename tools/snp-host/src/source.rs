// SPDX-License-Identifier: GPL-2.0

//! What the kernel says through `/proc` and sysfs, read and parsed.
//!
//! Every parser takes the file's text, so that the host tests feed it the
//! formats the kernel writes without a kernel.

use crate::error::{Error, Result};
use std::{collections::BTreeMap, fs, io, path::Path};

/// `/proc/meminfo`.
pub(crate) const MEMINFO: &str = "/proc/meminfo";
/// `/proc/vmstat`.
pub(crate) const VMSTAT: &str = "/proc/vmstat";
/// `/proc/cpuinfo`.
pub(crate) const CPUINFO: &str = "/proc/cpuinfo";
/// `/proc/iomem`: the physical memory map.
pub(crate) const IOMEM: &str = "/proc/iomem";
/// The module's directory in sysfs, present while it is loaded.
pub(crate) const MODULE_SYSFS: &str = "/sys/module/snp_host";
/// kvm_amd's parameters (present while it is loaded, or built in).
pub(crate) const KVM_AMD_PARAMS: &str = "/sys/module/kvm_amd/parameters";
/// The IOMMUs the kernel registered.
pub(crate) const IOMMU_CLASS: &str = "/sys/class/iommu";
/// Transparent huge pages.
pub(crate) const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// Reads a whole text file, naming it in the error.
pub(crate) fn read(path: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(path, &e))
}

/// Reads a file if it exists: `Ok(None)` when it does not.
pub(crate) fn read_opt(path: &str) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, &e)),
    }
}

/// Returns whether `path` exists.
pub(crate) fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// Parses `/proc/meminfo`: name to value, in the file's unit (kB for most).
///
/// Lines that do not read `Name: <number> [kB]` are skipped.
pub(crate) fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_string(), value))
        })
        .collect()
}

/// Parses `/proc/vmstat`: `name value` per line.
pub(crate) fn parse_vmstat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let value = w.next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// Returns the feature flags of the first CPU in `/proc/cpuinfo`.
pub(crate) fn cpuinfo_flags(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "flags").then(|| v.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

/// Returns one past the highest physical address of top-level `System RAM`
/// in `/proc/iomem`, or `None` if there is none or the kernel hid the
/// addresses (they read as zeros without `CAP_SYS_ADMIN`).
pub(crate) fn iomem_ram_end(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let (range, name) = l.split_once(" : ")?;
            if name.trim() != "System RAM" {
                return None;
            }
            let (_, end) = range.split_once('-')?;
            u64::from_str_radix(end.trim(), 16).ok()
        })
        .max()
        .filter(|&end| end != 0)
        .map(|end| end + 1)
}

/// Returns the selected word of a sysfs choice such as `always [madvise] never`.
pub(crate) fn sysfs_choice(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

/// Parses the `key: value` lines of debugfs `status`, in order.
pub(crate) fn parse_status(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Lists the entries of a directory by name, sorted; empty if it does not exist.
pub(crate) fn list_dir(path: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads a sysfs attribute, trimmed; `None` if it does not exist.
pub(crate) fn attr(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:        3000000 kB\nDirectMap4k:       14336 kB\n\
             DirectMap2M:     3131392 kB\nHugePages_Total:       0\nbogus line\n",
        );
        assert_eq!(m["DirectMap4k"], 14336);
        assert_eq!(m["DirectMap2M"], 3131392);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn vmstat() {
        let v = parse_vmstat("nr_free_pages 1234\ndirect_map_level2_splits 7\nodd\n");
        assert_eq!(v["direct_map_level2_splits"], 7);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn cpuinfo() {
        let f = cpuinfo_flags(
            "processor\t: 0\nflags\t\t: fpu sme sev sev_es sev_snp\n\nprocessor\t: 1\nflags\t: fpu\n",
        );
        assert!(f.iter().any(|x| x == "sev_snp"));
        assert_eq!(f.len(), 5);
        assert!(cpuinfo_flags("processor: 0\n").is_empty());
    }

    #[test]
    fn iomem() {
        let t = "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n\
                 00100000-bffdffff : System RAM\n  01000000-01ffffff : Kernel code\n\
                 100000000-13fffffff : System RAM\nfeb00000-febfffff : PCI Bus\n";
        assert_eq!(iomem_ram_end(t), Some(0x1_4000_0000));
        // As an unprivileged reader sees it.
        assert_eq!(iomem_ram_end("00000000-00000000 : System RAM\n"), None);
        assert_eq!(iomem_ram_end(""), None);
    }

    #[test]
    fn choice() {
        assert_eq!(sysfs_choice("always [madvise] never\n"), Some("madvise"));
        assert_eq!(sysfs_choice("[always] madvise never"), Some("always"));
        assert_eq!(sysfs_choice("always madvise never"), None);
    }

    #[test]
    fn status() {
        let s = parse_status(
            "backend: emulated\nreason: no SNP\nmax_asid: 0\nkvm provider: registered: x\n",
        );
        assert_eq!(s[0], ("backend".into(), "emulated".into()));
        assert_eq!(s[3].1, "registered: x");
    }
}
