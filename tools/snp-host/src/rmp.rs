// SPDX-License-Identifier: GPL-2.0

//! `snp-host rmp`: RMP entries through debugfs (`lookup` and `rmp`).
//!
//! The module's `lookup` file takes a PFN and then reads back its entry,
//! `0x<pfn> <4K|2M> assigned=<0|1> asid=<n> gpa=0x<hex> immutable=<0|1>
//! validated=<0|1|unknown>` (or `0x<pfn> unreadable: <error>`); `rmp` lists
//! the entries of every page the module assigned or leaked in that format.

use crate::error::{Error, Result};
use serde::Serialize;
use std::fs;
use std::io::{ErrorKind, Write};

/// The module's debugfs directory.
pub(crate) const DEBUGFS: &str = "/sys/kernel/debug/snp_host";

/// The most entries one invocation looks up: a range beyond is a typo.
pub(crate) const MAX_PFNS: u64 = 1 << 16;

/// One RMP entry as debugfs shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The system PFN.
    pub(crate) pfn: u64,
    /// `"4K"` or `"2M"`: the size of the entry covering the page.
    pub(crate) size: String,
    /// Guest-owned.
    pub(crate) assigned: bool,
    /// The guest's ASID (0 when not assigned).
    pub(crate) asid: u32,
    /// The guest physical address.
    pub(crate) gpa: u64,
    /// Immutable (only the firmware changes it).
    pub(crate) immutable: bool,
    /// Validated by the guest; `null` where the hardware does not report it (RMPREAD).
    pub(crate) validated: Option<bool>,
    /// Set instead of the fields above when the module could not read the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Parses a PFN: decimal or `0x` hex.
pub(crate) fn parse_pfn(s: &str) -> Result<u64> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    v.map_err(|_| Error::msg(format!("{s:?} is not a PFN (decimal or 0x hex)")))
}

/// Parses `PFN`, `FIRST-LAST` (inclusive) or `FIRST+COUNT` into (first, count).
pub(crate) fn parse_spec(s: &str) -> Result<(u64, u64)> {
    let (first, count) = if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (parse_pfn(a)?, parse_pfn(b)?);
        if b < a {
            return Err(Error::msg(format!(
                "{s:?}: the range ends before it starts"
            )));
        }
        (a, b - a + 1)
    } else if let Some((a, n)) = s.split_once('+') {
        let (a, n) = (parse_pfn(a)?, parse_pfn(n)?);
        if n == 0 {
            return Err(Error::msg(format!("{s:?}: an empty range")));
        }
        (a, n)
    } else {
        (parse_pfn(s)?, 1)
    };
    if first.checked_add(count).is_none() {
        return Err(Error::msg(format!("{s:?}: the range passes the last PFN")));
    }
    Ok((first, count))
}

/// Expands the arguments into PFNs, in order, at most [`MAX_PFNS`].
pub(crate) fn expand(specs: &[String]) -> Result<Vec<u64>> {
    let mut pfns = Vec::new();
    for s in specs {
        let (first, count) = parse_spec(s)?;
        if count > MAX_PFNS - pfns.len() as u64 {
            return Err(Error::msg(format!(
                "more than {MAX_PFNS} PFNs asked for; ask for fewer at a time"
            )));
        }
        pfns.extend(first..first + count);
    }
    Ok(pfns)
}

/// Parses one entry line of `lookup` or `rmp`.
pub(crate) fn parse_entry(line: &str) -> Result<Entry> {
    let bad = || Error::msg(format!("unexpected RMP entry line {line:?}"));
    let mut words = line.split_whitespace();
    let pfn = parse_pfn(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let size = words.next().ok_or_else(bad)?;
    if size == "unreadable:" {
        return Ok(Entry {
            pfn,
            size: String::new(),
            assigned: false,
            asid: 0,
            gpa: 0,
            immutable: false,
            validated: None,
            error: Some(words.collect::<Vec<_>>().join(" ")),
        });
    }
    if size != "4K" && size != "2M" {
        return Err(bad());
    }
    let mut fields = std::collections::BTreeMap::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(bad)?;
        fields.insert(k, v);
    }
    let get = |k: &str| fields.get(k).copied().ok_or_else(bad);
    let flag = |k: &str| match get(k)? {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(bad()),
    };
    Ok(Entry {
        pfn,
        size: size.to_string(),
        assigned: flag("assigned")?,
        asid: get("asid")?.parse().map_err(|_| bad())?,
        gpa: parse_pfn(get("gpa")?).map_err(|_| bad())?,
        immutable: flag("immutable")?,
        validated: match get("validated")? {
            "unknown" => None,
            _ => Some(flag("validated")?),
        },
        error: None,
    })
}

/// Looks up `pfn` through debugfs `lookup`.
///
/// The file keeps one PFN for everyone; an entry for another PFN means a
/// concurrent lookup came between the write and the read, and is retried.
pub(crate) fn lookup(pfn: u64) -> Result<Entry> {
    let path = format!("{DEBUGFS}/lookup");
    for _ in 0..8 {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| debugfs_error(&path, &e))?;
        if let Err(e) = f.write_all(format!("{pfn:#x}").as_bytes()) {
            if e.kind() == ErrorKind::InvalidInput {
                return Err(Error::msg(format!(
                    "PFN {pfn:#x}: beyond the memory the RMP covers (see snp-host status)"
                )));
            }
            return Err(Error::io(&path, &e));
        }
        drop(f);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, &e))?;
        let entry = parse_entry(text.trim_end())?;
        if entry.pfn == pfn {
            return Ok(entry);
        }
    }
    Err(Error::msg(format!(
        "{path}: other lookups keep coming between ours (PFN {pfn:#x})"
    )))
}

/// Every entry the module knows of (debugfs `rmp`).
pub(crate) fn known() -> Result<Vec<Entry>> {
    let path = format!("{DEBUGFS}/rmp");
    let text = fs::read_to_string(&path).map_err(|e| debugfs_error(&path, &e))?;
    text.lines().map(parse_entry).collect()
}

/// An error on a debugfs file, saying what is usually missing.
pub(crate) fn debugfs_error(path: &str, e: &std::io::Error) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::msg(format!(
            "{path}: not found: snp_host.ko is not loaded, or debugfs is not mounted \
             (mount -t debugfs none /sys/kernel/debug)"
        ))
    } else {
        Error::io(path, e)
    }
}

/// The entries as a table.
pub(crate) fn text(entries: &[Entry]) -> String {
    let mut out = format!(
        "{:<14} {:<4} {:<10} {:>6} {:<16} {:<9} {}\n",
        "PFN", "SIZE", "OWNER", "ASID", "GPA", "IMMUTABLE", "VALIDATED"
    );
    for e in entries {
        if let Some(err) = &e.error {
            out.push_str(&format!(
                "{:<14} unreadable: {err}\n",
                format!("{:#x}", e.pfn)
            ));
            continue;
        }
        let yes = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&format!(
            "{:<14} {:<4} {:<10} {:>6} {:<16} {:<9} {}\n",
            format!("{:#x}", e.pfn),
            e.size,
            if e.assigned { "guest" } else { "hypervisor" },
            if e.assigned {
                e.asid.to_string()
            } else {
                "-".into()
            },
            if e.assigned {
                format!("{:#x}", e.gpa)
            } else {
                "-".into()
            },
            yes(e.immutable),
            e.validated.map_or("unknown", yes),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfns_and_ranges() {
        assert_eq!(parse_pfn("0x1f").unwrap(), 31);
        assert_eq!(parse_pfn("31").unwrap(), 31);
        assert!(parse_pfn("0xg").is_err());
        assert!(parse_pfn("-1").is_err());
        assert!(parse_pfn("").is_err());
        assert_eq!(parse_spec("0x10-0x13").unwrap(), (16, 4));
        assert_eq!(parse_spec("16+4").unwrap(), (16, 4));
        assert_eq!(parse_spec("7").unwrap(), (7, 1));
        assert!(parse_spec("9-8").is_err());
        assert!(parse_spec("9+0").is_err());
        assert!(parse_spec("0xffffffffffffffff+2").is_err());
        let v = expand(&["1".into(), "0x10+2".into()]).unwrap();
        assert_eq!(v, [1, 16, 17]);
        assert!(expand(&["0-0x10000".into()]).is_err());
        assert_eq!(expand(&["0-0xffff".into()]).unwrap().len(), 1 << 16);
    }

    #[test]
    fn entry_lines() {
        let e =
            parse_entry("0x12345 4K assigned=1 asid=7 gpa=0x200000 immutable=0 validated=unknown")
                .unwrap();
        assert_eq!(e.pfn, 0x12345);
        assert!(e.assigned && !e.immutable);
        assert_eq!((e.asid, e.gpa, e.validated), (7, 0x200000, None));
        let e = parse_entry("0x200 2M assigned=0 asid=0 gpa=0x0 immutable=0 validated=1").unwrap();
        assert_eq!((e.size.as_str(), e.validated), ("2M", Some(true)));
        let e = parse_entry("0x5 unreadable: EIO").unwrap();
        assert_eq!(e.error.as_deref(), Some("EIO"));
        assert!(parse_entry("0x5 8K assigned=0").is_err());
        assert!(parse_entry("0x5 4K assigned=2 asid=0 gpa=0x0 immutable=0 validated=0").is_err());
        assert!(parse_entry("0x5 4K assigned=1").is_err());
        assert!(parse_entry("").is_err());
    }

    #[test]
    fn table() {
        let e =
            parse_entry("0x10 4K assigned=1 asid=7 gpa=0x2000 immutable=0 validated=0").unwrap();
        let t = text(&[e]);
        assert!(t
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("0x10           4K   guest           7 0x2000"));
    }
}
