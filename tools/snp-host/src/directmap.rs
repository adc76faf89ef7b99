// SPDX-License-Identifier: GPL-2.0

//! `snp-host directmap`: how the kernel maps physical memory, and what the
//! module did to it.
//!
//! The picture comes from the kernel's page-table dump
//! (`/sys/kernel/debug/page_tables/kernel`, `CONFIG_PTDUMP_DEBUGFS`), read as
//! `vm/bench.c` reads it for `make bench`: the "Low Kernel Mapping" section
//! is the direct map, its first range starts at `PAGE_OFFSET`, and every 2M
//! of physical memory (a cell) gets the class of how it is mapped. Without
//! the dump, the cells the module's debugfs `directmap` names are drawn and
//! the rest is unknown.

use crate::error::{Error, Result};
use crate::format;
use serde::Serialize;

/// The module's direct-map model (its policies), where the header check of
/// `abi.rs` looks for it: `crate::directmap::model`, as in the module.
pub(crate) use snp_host_model::directmap::model;

/// The kernel's page-table dump.
pub(crate) const PTDUMP: &str = "/sys/kernel/debug/page_tables/kernel";
/// The marker of the direct-map section in it.
const DIRECT_MAP_MARKER: &str = "Low Kernel Mapping";
/// One cell: 2 MiB of physical memory.
pub(crate) const CELL: u64 = 2 << 20;
/// 4K pages in a cell.
const PAGES_PER_CELL: u32 = 512;
/// Characters per line of the picture.
pub(crate) const COLUMNS: usize = 64;
/// Lines the picture may take at most.
pub(crate) const MAX_ROWS: usize = 16;

/// How a 2M cell of physical memory is mapped, as `make bench` classes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Not in the direct map (a hole, or beyond the end).
    Absent,
    /// Part of a 1G leaf.
    Leaf1G,
    /// A 2M leaf.
    Leaf2M,
    /// A 2M leaf, write-protected.
    Leaf2MRo,
    /// Split to 4K, all present and writable.
    Split4K,
    /// 4K, some pages write-protected.
    Split4KRo,
    /// 4K, some pages not present.
    Split4KHoles,
    /// Nothing known (no page-table dump and not a region of the module).
    Unknown,
}

impl Class {
    /// Every class, for the legend.
    pub(crate) const ALL: [Class; 8] = [
        Class::Leaf1G,
        Class::Leaf2M,
        Class::Leaf2MRo,
        Class::Split4K,
        Class::Split4KRo,
        Class::Split4KHoles,
        Class::Absent,
        Class::Unknown,
    ];

    /// The character of the picture (the letters of `make bench`).
    pub(crate) fn letter(self) -> char {
        match self {
            Class::Leaf1G => 'G',
            Class::Leaf2M => 'M',
            Class::Leaf2MRo => 'P',
            Class::Split4K => 'K',
            Class::Split4KRo => 'R',
            Class::Split4KHoles => 'H',
            Class::Absent => '.',
            Class::Unknown => '?',
        }
    }

    /// What it means.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Class::Leaf1G => "1G leaf",
            Class::Leaf2M => "2M leaf",
            Class::Leaf2MRo => "2M leaf, write-protected",
            Class::Split4K => "split to 4K",
            Class::Split4KRo => "4K, some pages write-protected",
            Class::Split4KHoles => "4K, some pages not present",
            Class::Absent => "not mapped",
            Class::Unknown => "unknown",
        }
    }

    /// Which class a character covering several cells shows: the finest
    /// mapping among them, so that one split cell is never hidden.
    fn rank(self) -> u8 {
        match self {
            Class::Absent => 0,
            Class::Unknown => 1,
            Class::Leaf1G => 2,
            Class::Leaf2M => 3,
            Class::Leaf2MRo => 4,
            Class::Split4K => 5,
            Class::Split4KRo => 6,
            Class::Split4KHoles => 7,
        }
    }
}

/// What the dump says about one cell.
#[derive(Clone, Copy, Default)]
struct Cell {
    leaf: Option<(bool, bool)>, // (1G, read-only)
    pte_present: u32,
    pte_absent: u32,
    pte_ro: u32,
}

impl Cell {
    fn class(&self) -> Class {
        match self.leaf {
            Some((true, _)) => Class::Leaf1G,
            Some((false, true)) => Class::Leaf2MRo,
            Some((false, false)) => Class::Leaf2M,
            None if self.pte_present == 0 => Class::Absent,
            None if self.pte_absent != 0 || self.pte_present < PAGES_PER_CELL => {
                Class::Split4KHoles
            }
            None if self.pte_ro != 0 => Class::Split4KRo,
            None => Class::Split4K,
        }
    }
}

/// Totals of the direct map in the dump, in kB (as `/proc/meminfo`) and pages.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Mapped by 1G leaves.
    pub(crate) kb_1g: u64,
    /// Mapped by 2M leaves.
    pub(crate) kb_2m: u64,
    /// Of those, write-protected.
    pub(crate) kb_2m_ro: u64,
    /// Mapped by 4K entries.
    pub(crate) kb_4k: u64,
    /// 4K entries not present.
    pub(crate) absent_4k: u64,
    /// 4K entries present and write-protected.
    pub(crate) ro_4k: u64,
}

/// A run of cells mapped alike: the exact picture, for programs.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// First cell (physical address / 2 MiB).
    pub(crate) first_cell: u64,
    /// Cells in the run.
    pub(crate) cells: u64,
    /// The class letter.
    pub(crate) class: char,
}

/// The direct map, cell by cell.
pub(crate) struct Map {
    classes: Vec<Class>,
}

/// Parses the page-table dump into cells and totals.
pub(crate) fn parse_ptdump(text: &str) -> Result<(Map, Totals)> {
    let mut cells: Vec<Cell> = Vec::new();
    let mut t = Totals::default();
    let mut base = None;
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("---[") {
            inside = line.contains(DIRECT_MAP_MARKER);
            continue;
        }
        if !inside {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some((start, end)) = words.next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Some(start), Some(end)) = (hex(start), hex(end)) else {
            continue;
        };
        if end <= start {
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let Some(&level) = rest.last() else { continue };
        // size, flags..., level: a range without flags is not present.
        let present = rest.len() > 2;
        let ro = rest.contains(&"ro");
        let base = *base.get_or_insert(start);
        let (ps, pe) = (start - base, end - base);
        let need = usize::try_from(pe.div_ceil(CELL))
            .map_err(|_| Error::msg("the page-table dump covers more than this tool can"))?;
        if need > cells.len() {
            cells.resize(need, Cell::default());
        }
        match level {
            "pte" => {
                let mut a = ps;
                while a < pe {
                    let cell = &mut cells[(a / CELL) as usize];
                    let to = ((a / CELL) + 1).saturating_mul(CELL).min(pe);
                    let n = u32::try_from((to - a) / 4096).unwrap_or(PAGES_PER_CELL);
                    if present {
                        cell.pte_present += n;
                        if ro {
                            cell.pte_ro += n;
                        }
                    } else {
                        cell.pte_absent += n;
                    }
                    a = to;
                }
                if present {
                    t.kb_4k += (pe - ps) >> 10;
                    if ro {
                        t.ro_4k += (pe - ps) / 4096;
                    }
                } else {
                    t.absent_4k += (pe - ps) / 4096;
                }
            }
            "pmd" | "pud" if present => {
                let gig = level == "pud";
                for c in &mut cells[(ps / CELL) as usize..(pe / CELL) as usize] {
                    c.leaf = Some((gig, ro));
                }
                if gig {
                    t.kb_1g += (pe - ps) >> 10;
                } else {
                    t.kb_2m += (pe - ps) >> 10;
                    if ro {
                        t.kb_2m_ro += (pe - ps) >> 10;
                    }
                }
            }
            _ => {}
        }
    }
    if base.is_none() {
        return Err(Error::msg(format!(
            "{PTDUMP} has no \"{DIRECT_MAP_MARKER}\" section"
        )));
    }
    // Trailing cells beyond the last mapping say nothing.
    while cells.last().is_some_and(|c| c.class() == Class::Absent) {
        cells.pop();
    }
    Ok((
        Map {
            classes: cells.iter().map(Cell::class).collect(),
        },
        t,
    ))
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// One line of debugfs `directmap`: a 2M region the module touched.
#[derive(Serialize, Debug, PartialEq, Eq, Clone)]
pub(crate) struct Region {
    /// Its first PFN (2M-aligned).
    pub(crate) pfn: u64,
    /// `"4K"`, `"2M"`, `"1G"` or `"none"`: how the direct map maps it now.
    pub(crate) size: String,
    /// Its guest pages.
    pub(crate) private: u64,
}

/// Parses debugfs `directmap`: `0x<pfn> <4K|2M|1G|none> private=<n>` per line.
pub(crate) fn parse_regions(text: &str) -> Result<Vec<Region>> {
    text.lines()
        .map(|l| {
            let bad = || Error::msg(format!("unexpected directmap line {l:?}"));
            let mut w = l.split_whitespace();
            let pfn = w.next().and_then(hex).ok_or_else(bad)?;
            let size = w.next().filter(|s| ["4K", "2M", "1G", "none"].contains(s));
            let private = w
                .next()
                .and_then(|p| p.strip_prefix("private="))
                .and_then(|p| p.parse().ok());
            match (size, private, w.next()) {
                (Some(size), Some(private), None) => Ok(Region {
                    pfn,
                    size: size.to_string(),
                    private,
                }),
                _ => Err(bad()),
            }
        })
        .collect()
}

impl Map {
    /// A map of the module's regions alone, everything else unknown.
    pub(crate) fn from_regions(regions: &[Region]) -> Self {
        let cells = regions.iter().map(|r| r.pfn / 512 + 1).max().unwrap_or(0);
        let mut classes = vec![Class::Unknown; usize::try_from(cells).unwrap_or(0)];
        for r in regions {
            classes[(r.pfn / 512) as usize] = match r.size.as_str() {
                "1G" => Class::Leaf1G,
                "2M" => Class::Leaf2M,
                "4K" => Class::Split4K,
                _ => Class::Absent,
            };
        }
        Self { classes }
    }

    /// The cells, 2M each from physical address 0.
    pub(crate) fn cells(&self) -> usize {
        self.classes.len()
    }

    /// The runs of cells mapped alike.
    pub(crate) fn runs(&self) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for (i, &c) in self.classes.iter().enumerate() {
            match runs.last_mut() {
                Some(r) if r.class == c.letter() => r.cells += 1,
                _ => runs.push(Run {
                    first_cell: i as u64,
                    cells: 1,
                    class: c.letter(),
                }),
            }
        }
        runs
    }

    /// Cells per character, a power of two, so the picture fits
    /// [`MAX_ROWS`] lines of [`COLUMNS`] characters.
    pub(crate) fn cells_per_char(&self) -> usize {
        let mut n = 1;
        while self.classes.len().div_ceil(n) > COLUMNS * MAX_ROWS {
            n *= 2;
        }
        n
    }

    /// The picture: one string of [`COLUMNS`] characters per line.
    pub(crate) fn rows(&self) -> Vec<String> {
        let per = self.cells_per_char();
        let chars: Vec<char> = self
            .classes
            .chunks(per)
            .map(|c| {
                c.iter()
                    .copied()
                    .max_by_key(|c| c.rank())
                    .unwrap_or(Class::Absent)
                    .letter()
            })
            .collect();
        chars.chunks(COLUMNS).map(|r| r.iter().collect()).collect()
    }

    /// The picture with addresses and a legend, for people.
    pub(crate) fn text(&self) -> String {
        if self.classes.is_empty() {
            return "  nothing to draw: no page-table dump (CONFIG_PTDUMP_DEBUGFS, debugfs \
                    mounted, root) and no region of the module\n"
                .into();
        }
        let per = self.cells_per_char();
        let row_bytes = CELL * (per * COLUMNS) as u64;
        let mut out = format!(
            "  one character = {} of physical memory (the finest mapping in it)\n",
            format::bytes(CELL * per as u64)
        );
        for (i, row) in self.rows().iter().enumerate() {
            out.push_str(&format!("  {:#011x} |{row}\n", row_bytes * i as u64));
        }
        // The legend of the classes the picture shows, wrapped to the picture's width.
        let rows = self.rows().concat();
        let items: Vec<String> = Class::ALL
            .iter()
            .filter(|c| rows.contains(c.letter()))
            .map(|c| format!("{}={}", c.letter(), c.what()))
            .collect();
        let mut line = String::from(" ");
        for (i, item) in items.iter().enumerate() {
            let sep = if i + 1 < items.len() { ";" } else { "" };
            if line.len() + item.len() + 2 > COLUMNS + 14 {
                out.push_str(&line);
                out.push('\n');
                line = String::from(" ");
            }
            line.push_str(&format!(" {item}{sep}"));
        }
        out.push_str(&line);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
---[ User Space ]---
0x0000000000000000-0xffff888000000000   16M                         pgd
---[ Low Kernel Mapping ]---
0xffff888000000000-0xffff888000001000           4K     RW                     GLB NX pte
0xffff888000001000-0xffff888000003000           8K     ro                     GLB NX pte
0xffff888000003000-0xffff888000005000           8K                               pte
0xffff888000005000-0xffff888000200000        2028K     RW                     GLB NX pte
0xffff888000200000-0xffff888000400000           2M     ro         PSE         GLB NX pmd
0xffff888000400000-0xffff888040000000        1020M     RW         PSE         GLB NX pmd
0xffff888040000000-0xffff888080000000           1G     RW         PSE         GLB NX pud
0xffff888080000000-0xffff888080200000           2M     RW                     GLB NX pte
0xffff888080200000-0xffff888080400000           2M                               pmd
0xffff888080400000-0xffff888080600000           2M     RW                     GLB NX pte
0xffff888080600000-0xffff888100000000        2042M                               pud
---[ vmalloc() Area ]---
0xffffc90000000000-0xffffc90000001000           4K     RW                     GLB NX pte
";

    #[test]
    fn ptdump() {
        let (m, t) = parse_ptdump(DUMP).unwrap();
        let letters: String = m.classes.iter().map(|c| c.letter()).collect();
        assert_eq!(&letters[..3], "HPM");
        assert_eq!(letters.len(), 1024 + 3);
        assert!(letters[2..512].chars().all(|c| c == 'M'));
        assert!(letters[512..1024].chars().all(|c| c == 'G'));
        assert_eq!(&letters[1024..], "K.K");
        assert_eq!(t.kb_1g, 1 << 20);
        assert_eq!(t.kb_2m, 1022 * 1024);
        assert_eq!(t.kb_2m_ro, 2048);
        assert_eq!(t.kb_4k, 4 + 8 + 2028 + 2048 + 2048);
        assert_eq!((t.absent_4k, t.ro_4k), (2, 2));
        let runs = m.runs();
        assert_eq!(
            runs[0],
            Run {
                first_cell: 0,
                cells: 1,
                class: 'H'
            }
        );
        assert_eq!(runs.iter().map(|r| r.cells).sum::<u64>(), 1027);
        assert!(parse_ptdump("---[ User Space ]---\n").is_err());
    }

    #[test]
    fn picture() {
        let (m, _) = parse_ptdump(DUMP).unwrap();
        assert_eq!(m.cells_per_char(), 2);
        let rows = m.rows();
        assert_eq!(rows.len(), 9);
        // H and P share the first character: the finer one shows.
        assert!(rows[0].starts_with("HMM"));
        assert_eq!(rows[0].len(), COLUMNS);
        assert_eq!(
            rows[8], "KK",
            "cells K and . share a character, the last K has its own"
        );
        let t = m.text();
        assert!(t.contains("one character = 4 MiB"));
        assert!(t.contains("  0x020000000 |MMMM"), "{t}");
        assert!(t.contains("G=1G leaf;") && t.contains("H=4K, some pages not present"));
        // P and . are hidden by finer neighbours in this picture.
        assert!(!t.contains("P=2M leaf, write") && !t.contains(".=not mapped"));
        assert!(t.lines().all(|l| l.len() <= COLUMNS + 15), "{t}");
        assert!(!t.contains("? unknown"));
    }

    #[test]
    fn regions() {
        let r = parse_regions("0x1200 4K private=3\n0x40000 1G private=0\n").unwrap();
        assert_eq!(
            r[0],
            Region {
                pfn: 0x1200,
                size: "4K".into(),
                private: 3
            }
        );
        assert!(parse_regions("0x1200 8K private=3\n").is_err());
        assert!(parse_regions("0x1200 4K private=x\n").is_err());
        assert!(parse_regions("0x1200 4K private=1 extra\n").is_err());
        assert!(parse_regions("").unwrap().is_empty());
        let m = Map::from_regions(&r);
        assert_eq!(m.cells(), 0x40000 / 512 + 1);
        assert_eq!(m.classes[9], Class::Split4K);
        assert_eq!(m.classes[0], Class::Unknown);
    }
}
