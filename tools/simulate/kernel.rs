// SPDX-License-Identifier: GPL-2.0

//! A model of the kernel direct map as the project kernel's CPA code changes it.
//!
//! One entry per 2M cell of physical memory and one flag per 1G block. What
//! the kernel does, as `arch/x86/mm/pat/set_memory.c` with `patches/` does it:
//!
//! - changing a 4K page under a 2M leaf splits the leaf into 512 PTEs
//!   (`direct_map_level2_splits`); under a 1G leaf it first splits that into
//!   512 2M leaves (`direct_map_level3_splits`);
//! - changing a whole 2M-aligned 2M range under a 2M leaf changes the leaf in
//!   place; under a 1G leaf it splits that first;
//! - `set_memory_4k()` splits to 4K and marks the PTEs to stay so;
//! - a collapse of a 2M cell (`set_direct_map_collapse()`) turns 512 PTEs with
//!   the default attributes, not marked, back into one leaf
//!   (`direct_map_level2_collapses`), and then, or if the cell was a leaf
//!   already, its 1G block into one leaf if all 512 cells are default 2M
//!   leaves (`direct_map_level3_collapses`, patch 0005);
//! - `/proc/meminfo`'s `DirectMap4k/2M/1G` move with each split and collapse.

use snp_host_model::directmap::model::Level;

/// 2M cells per 1G block.
pub(crate) const CELLS_PER_1G: u64 = 512;
const KB_2M: u64 = 2048;
const KB_1G: u64 = 1 << 20;

/// How one 2M cell of physical memory is mapped, when its 1G block is not one leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Nothing mapped (no RAM).
    Absent,
    /// One 2M leaf; `protected` when its pages are out of the host's write path.
    Leaf {
        /// Read-only or not present.
        protected: bool,
        /// Mapped with attributes the module never gives (kernel text, ...): it
        /// never changes and keeps its 1G block from collapsing.
        foreign: bool,
    },
    /// 512 PTEs.
    Split {
        /// PTEs read-only or not present.
        protected: u16,
        /// PTEs `set_memory_4k()` marked to stay split (`_PAGE_KERNEL_4K`, per PTE).
        kept: u16,
        /// Holes or foreign attributes: never collapses.
        foreign: bool,
    },
}

/// The direct-map counters of `/proc/vmstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VmStat {
    /// `direct_map_level2_splits`: 2M leaves split to 4K.
    pub(crate) level2_splits: u64,
    /// `direct_map_level3_splits`: 1G leaves split to 2M.
    pub(crate) level3_splits: u64,
    /// `direct_map_level2_collapses`: 4K PTEs collapsed into a 2M leaf.
    pub(crate) level2_collapses: u64,
    /// `direct_map_level3_collapses`: 2M leaves collapsed into a 1G leaf.
    pub(crate) level3_collapses: u64,
}

/// `DirectMap4k`, `DirectMap2M` and `DirectMap1G` of `/proc/meminfo`, in kB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemInfo {
    /// `DirectMap4k`.
    pub(crate) kb_4k: u64,
    /// `DirectMap2M`.
    pub(crate) kb_2m: u64,
    /// `DirectMap1G`.
    pub(crate) kb_1g: u64,
}

/// Why a picture of the direct map cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InitError {
    /// A 1G block that is only partly inside a 1G leaf, or a class letter unknown.
    BadCell(u64),
}

/// The simulated direct map.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cells: Vec<Cell>,
    huge: Vec<bool>,
    /// One bit per 4K page: its PTE is marked by `set_memory_4k()`.
    marked: Vec<u64>,
    /// What `/proc/vmstat` would count.
    pub(crate) vmstat: VmStat,
    /// What `/proc/meminfo` would say.
    pub(crate) meminfo: MemInfo,
}

impl Kernel {
    /// The direct map of a host of `gib` GiB of RAM from physical address 0, as
    /// the kernel sets it up: the first 2M at 4K (the BIOS and ISA ranges), the
    /// rest of the first GiB in 2M leaves, every further GiB one 1G leaf.
    pub(crate) fn host(gib: u64) -> Self {
        let mut cells = vec![
            Cell::Leaf {
                protected: false,
                foreign: false
            };
            (gib * CELLS_PER_1G) as usize
        ];
        cells[0] = Cell::Split {
            protected: 0,
            kept: 0,
            foreign: true,
        };
        let mut huge = vec![true; gib as usize];
        huge[0] = false;
        let meminfo = MemInfo {
            kb_4k: KB_2M,
            kb_2m: KB_1G - KB_2M,
            kb_1g: (gib - 1) * KB_1G,
        };
        Self::with(cells, huge, meminfo)
    }

    fn with(cells: Vec<Cell>, huge: Vec<bool>, meminfo: MemInfo) -> Self {
        let marked = vec![0; cells.len() * 512 / 64];
        Self {
            cells,
            huge,
            marked,
            vmstat: VmStat::default(),
            meminfo,
        }
    }

    /// The direct map a page-table dump shows, as `vm/bench.c` classes its 2M
    /// cells (`G` in a 1G leaf, `M` a 2M leaf, `P` a read-only 2M leaf, `K` split
    /// with every page writable, `R` and `H` split with read-only pages or holes,
    /// `N` nothing), with `/proc/meminfo`'s values at that moment.
    ///
    /// # Errors
    ///
    /// [`InitError::BadCell`] for an unknown class or a 1G leaf that does not
    /// cover its whole block.
    pub(crate) fn from_classes(classes: &[u8], meminfo: MemInfo) -> Result<Self, InitError> {
        let blocks = (classes.len() as u64).div_ceil(CELLS_PER_1G);
        let mut cells = Vec::with_capacity((blocks * CELLS_PER_1G) as usize);
        for (i, c) in classes.iter().enumerate() {
            cells.push(match c {
                b'G' | b'M' => Cell::Leaf {
                    protected: false,
                    foreign: false,
                },
                b'P' => Cell::Leaf {
                    protected: false,
                    foreign: true,
                },
                b'K' => Cell::Split {
                    protected: 0,
                    kept: 0,
                    foreign: false,
                },
                b'R' | b'H' => Cell::Split {
                    protected: 0,
                    kept: 0,
                    foreign: true,
                },
                b'N' => Cell::Absent,
                _ => return Err(InitError::BadCell(i as u64)),
            });
        }
        cells.resize((blocks * CELLS_PER_1G) as usize, Cell::Absent);
        let mut huge = Vec::with_capacity(blocks as usize);
        for b in 0..blocks {
            let from = (b * CELLS_PER_1G) as usize;
            let block = classes.get(from..).unwrap_or(&[]);
            let block = &block[..block.len().min(CELLS_PER_1G as usize)];
            let gig = block.iter().filter(|&&c| c == b'G').count();
            if gig != 0 && gig != CELLS_PER_1G as usize {
                return Err(InitError::BadCell(from as u64));
            }
            huge.push(gig != 0);
        }
        Ok(Self::with(cells, huge, meminfo))
    }

    /// Returns the number of 2M cells.
    pub(crate) fn cells(&self) -> u64 {
        self.cells.len() as u64
    }

    #[inline]
    fn cell(&self, pfn: u64) -> Cell {
        self.cells
            .get((pfn / 512) as usize)
            .copied()
            .unwrap_or(Cell::Absent)
    }

    #[inline]
    fn is_huge(&self, pfn: u64) -> bool {
        self.huge
            .get((pfn >> 18) as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Returns the size of the leaf that maps `pfn`, as `lookup_address()` says.
    #[inline]
    pub(crate) fn level_of(&self, pfn: u64) -> Option<Level> {
        if self.is_huge(pfn) {
            return Some(Level::Size1G);
        }
        match self.cell(pfn) {
            Cell::Absent => None,
            Cell::Leaf { .. } => Some(Level::Size2M),
            Cell::Split { .. } => Some(Level::Size4K),
        }
    }

    /// Returns whether `set_memory_4k()` marked the PTE of `pfn` to stay split.
    #[inline]
    pub(crate) fn kept_4k(&self, pfn: u64) -> bool {
        self.marked
            .get((pfn / 64) as usize)
            .is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    fn split_block(&mut self, pfn: u64) {
        let b = (pfn >> 18) as usize;
        if self.huge.get(b).copied().unwrap_or(false) {
            self.huge[b] = false;
            self.vmstat.level3_splits += 1;
            self.meminfo.kb_1g -= KB_1G;
            self.meminfo.kb_2m += KB_1G;
        }
    }

    fn split_cell(&mut self, pfn: u64) {
        self.split_block(pfn);
        let c = (pfn / 512) as usize;
        if let Some(Cell::Leaf { protected, foreign }) = self.cells.get(c).copied() {
            self.cells[c] = Cell::Split {
                protected: if protected { 512 } else { 0 },
                kept: 0,
                foreign,
            };
            self.vmstat.level2_splits += 1;
            self.meminfo.kb_2m -= KB_2M;
            self.meminfo.kb_4k += KB_2M;
        }
    }

    /// `set_memory_4k()` of the 4K page `pfn`: split, and its PTE marked.
    pub(crate) fn set_4k(&mut self, pfn: u64) {
        self.split_cell(pfn);
        if self.kept_4k(pfn) {
            return;
        }
        if let Some(Cell::Split { kept, .. }) = self.cells.get_mut((pfn / 512) as usize) {
            *kept += 1;
            self.marked[(pfn / 64) as usize] |= 1 << (pfn % 64);
        }
    }

    /// Takes the page at `pfn` (4K, or 2M when `huge`) out of the host's write path.
    pub(crate) fn protect(&mut self, pfn: u64, huge: bool) {
        if huge {
            self.split_block(pfn);
        } else {
            self.split_cell(pfn);
        }
        match self.cells.get_mut((pfn / 512) as usize) {
            Some(Cell::Leaf { protected, .. }) if huge => *protected = true,
            Some(Cell::Split { protected, .. }) => *protected += if huge { 512 } else { 1 },
            _ => {}
        }
    }

    /// Gives the page at `pfn` (4K, or 2M when `huge`) its default attributes back.
    pub(crate) fn restore(&mut self, pfn: u64, huge: bool) {
        if !huge
            && matches!(
                self.cell(pfn),
                Cell::Leaf {
                    protected: true,
                    ..
                }
            )
        {
            self.split_cell(pfn);
        }
        match self.cells.get_mut((pfn / 512) as usize) {
            Some(Cell::Leaf { protected, .. }) if huge => *protected = false,
            Some(Cell::Split { protected, .. }) => {
                *protected = protected.saturating_sub(if huge { 512 } else { 1 })
            }
            _ => {}
        }
    }

    /// `set_direct_map_collapse()` of the 2M cells holding `pfns`; returns the
    /// number of 2M and 1G leaves it made.
    pub(crate) fn collapse(&mut self, pfns: &[u64]) -> u32 {
        let mut made = 0;
        for &pfn in pfns {
            if self.is_huge(pfn) {
                continue;
            }
            let c = (pfn / 512) as usize;
            if let Some(Cell::Split {
                protected: 0,
                kept: 0,
                foreign: false,
            }) = self.cells.get(c)
            {
                self.cells[c] = Cell::Leaf {
                    protected: false,
                    foreign: false,
                };
                self.vmstat.level2_collapses += 1;
                self.meminfo.kb_4k -= KB_2M;
                self.meminfo.kb_2m += KB_2M;
                made += 1;
            }
            if !matches!(self.cells.get(c), Some(Cell::Leaf { .. })) {
                continue;
            }
            let first = (pfn >> 18) * CELLS_PER_1G;
            let whole = (first..first + CELLS_PER_1G).all(|i| {
                self.cells.get(i as usize)
                    == Some(&Cell::Leaf {
                        protected: false,
                        foreign: false,
                    })
            });
            if whole {
                self.huge[(pfn >> 18) as usize] = true;
                self.vmstat.level3_collapses += 1;
                self.meminfo.kb_2m -= KB_1G;
                self.meminfo.kb_1g += KB_1G;
                made += 1;
            }
        }
        made
    }

    /// Returns how many 2M cells are split to 4K.
    #[cfg(test)]
    pub(crate) fn split_cells(&self) -> u64 {
        (0..self.cells.len())
            .filter(|&c| {
                !self.huge[c / CELLS_PER_1G as usize] && matches!(self.cells[c], Cell::Split { .. })
            })
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_4k_change_in_a_1g_leaf_splits_both_levels() {
        let mut k = Kernel::host(4);
        let start = k.meminfo;
        assert_eq!(start.kb_4k + start.kb_2m + start.kb_1g, 4 * KB_1G);
        let pfn = (2 << 18) + 5 * 512 + 7;
        assert_eq!(k.level_of(pfn), Some(Level::Size1G));
        k.protect(pfn, false);
        assert_eq!(k.level_of(pfn), Some(Level::Size4K));
        assert_eq!(k.level_of(pfn + 512), Some(Level::Size2M));
        assert_eq!(
            k.vmstat,
            VmStat {
                level2_splits: 1,
                level3_splits: 1,
                ..VmStat::default()
            }
        );
        assert_eq!(k.meminfo.kb_4k, start.kb_4k + KB_2M);
        assert_eq!(k.meminfo.kb_1g, start.kb_1g - KB_1G);
        // Still protected: nothing collapses.
        assert_eq!(k.collapse(&[pfn]), 0);
        k.restore(pfn, false);
        assert_eq!(k.collapse(&[pfn]), 2, "a 2M leaf, then the 1G leaf");
        assert_eq!(k.meminfo, start);
        assert_eq!(k.vmstat.level2_collapses, 1);
        assert_eq!(k.vmstat.level3_collapses, 1);
    }

    #[test]
    fn a_2m_change_keeps_its_leaf_and_marked_pages_stay_split() {
        let mut k = Kernel::host(2);
        let pfn = 1 << 18;
        k.protect(pfn, true);
        assert_eq!(k.level_of(pfn), Some(Level::Size2M));
        assert_eq!(k.vmstat.level2_splits, 0);
        assert_eq!(k.vmstat.level3_splits, 1);
        // A protected 2M leaf keeps the block split.
        assert_eq!(k.collapse(&[pfn]), 0);
        k.restore(pfn, true);
        assert_eq!(
            k.collapse(&[pfn]),
            1,
            "patch 0005: the block above a 2M leaf"
        );
        k.set_4k(pfn + 3);
        assert!(k.kept_4k(pfn + 3));
        assert_eq!(k.collapse(&[pfn]), 0, "set_memory_4k() pages stay split");
        // The first 2M of the host is the kernel's own 4K mapping.
        assert_eq!(k.level_of(0), Some(Level::Size4K));
        assert_eq!(k.collapse(&[0]), 0);
        assert_eq!(k.split_cells(), 2);
    }

    #[test]
    fn reads_the_page_table_dump_classes() {
        let mut classes = vec![b'M'; 512];
        classes[0] = b'H';
        classes[1] = b'P';
        classes.extend(std::iter::repeat_n(b'G', 512));
        classes.extend([b'M', b'N']);
        let meminfo = MemInfo {
            kb_4k: KB_2M,
            kb_2m: KB_1G,
            kb_1g: KB_1G,
        };
        let k = Kernel::from_classes(&classes, meminfo).unwrap();
        assert_eq!(k.cells(), 3 * 512);
        assert_eq!(k.level_of(0), Some(Level::Size4K));
        assert_eq!(k.level_of(512), Some(Level::Size2M));
        assert_eq!(k.level_of(1 << 18), Some(Level::Size1G));
        assert_eq!(k.level_of((2 << 18) + 512), None);
        let mut k2 = k.clone();
        // A foreign 2M leaf keeps the first GiB from ever becoming one 1G leaf.
        k2.protect(2 * 512, false);
        k2.restore(2 * 512, false);
        assert_eq!(k2.collapse(&[2 * 512]), 1);
        assert_eq!(k2.level_of(2 * 512), Some(Level::Size2M));
        let mut bad = classes.clone();
        bad[600] = b'M';
        assert_eq!(
            Kernel::from_classes(&bad, MemInfo::default()).unwrap_err(),
            InitError::BadCell(512)
        );
        bad[600] = b'?';
        assert!(Kernel::from_classes(&bad, MemInfo::default()).is_err());
    }
}
