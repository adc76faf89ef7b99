// SPDX-License-Identifier: GPL-2.0

//! A model of the kernel's buddy allocator: where guest memory lands.
//!
//! Free blocks of 2^order pages live on one list per order, up to
//! [`MAX_ORDER`] (Linux's `MAX_PAGE_ORDER`, 4 MiB). An allocation takes the
//! most recently freed block of the smallest order that fits and splits it,
//! keeping the lower half and putting the upper halves back (as `expand()`
//! does); a free merges a block with its buddy for as long as the buddy is
//! free, then puts it at the head of its list. So memory that was just freed
//! is the first to be given out again, which is what decides which parts of
//! the direct map a new guest lands on. Per-CPU lists, migrate types, zones
//! and compaction are left out.

/// The largest order a block can have (4 MiB).
pub(crate) const MAX_ORDER: u32 = 10;

/// A set of block numbers, one bit each.
#[derive(Clone, Debug)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Self {
        // CAST: sizes of a model that fits in memory.
        Self(vec![0; n.div_ceil(64) as usize])
    }

    fn get(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: u64, v: bool) {
        if let Some(w) = self.0.get_mut((i / 64) as usize) {
            if v {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }
}

/// The free memory of a range of page frames.
///
/// Each list is a stack; a block taken off a list by a merge is only marked
/// not free and skipped when it comes up (the kernel unlinks it instead, with
/// the same effect on what is handed out).
#[derive(Clone, Debug)]
pub(crate) struct Buddy {
    base: u64,
    pages: u64,
    lists: Vec<Vec<u64>>,
    free: Vec<Bits>,
    nr_free: u64,
}

impl Buddy {
    /// Creates an allocator for `pages` page frames from `base`, all free, both
    /// aligned to the largest order; the lowest addresses are given out first,
    /// as after boot.
    pub(crate) fn new(base: u64, pages: u64) -> Self {
        let top = 1u64 << MAX_ORDER;
        assert!(
            base.is_multiple_of(top) && pages.is_multiple_of(top),
            "the range is MAX_ORDER-aligned"
        );
        let mut b = Self {
            base,
            pages,
            lists: vec![Vec::new(); MAX_ORDER as usize + 1],
            free: (0..=MAX_ORDER).map(|o| Bits::new(pages >> o)).collect(),
            nr_free: 0,
        };
        for block in (0..pages / top).rev() {
            b.push(base + block * top, MAX_ORDER);
        }
        b.nr_free = pages;
        b
    }

    /// Returns the number of free pages.
    pub(crate) const fn free_pages(&self) -> u64 {
        self.nr_free
    }

    fn is_free(&self, pfn: u64, order: u32) -> bool {
        self.free[order as usize].get((pfn - self.base) >> order)
    }

    fn push(&mut self, pfn: u64, order: u32) {
        self.free[order as usize].set((pfn - self.base) >> order, true);
        self.lists[order as usize].push(pfn);
    }

    /// Takes the head of the list of `order`, skipping blocks merged away.
    fn pop(&mut self, order: u32) -> Option<u64> {
        while let Some(pfn) = self.lists[order as usize].pop() {
            if self.is_free(pfn, order) {
                self.free[order as usize].set((pfn - self.base) >> order, false);
                return Some(pfn);
            }
        }
        None
    }

    /// Allocates a block of 2^`order` pages and returns its first page frame.
    pub(crate) fn alloc(&mut self, order: u32) -> Option<u64> {
        let (pfn, mut at) = (order..=MAX_ORDER).find_map(|o| self.pop(o).map(|p| (p, o)))?;
        // The lower half stays with the caller, the upper halves go back.
        while at > order {
            at -= 1;
            self.push(pfn + (1 << at), at);
        }
        self.nr_free -= 1 << order;
        Some(pfn)
    }

    /// Frees the block of 2^`order` pages at `pfn`, merging it with its free buddies.
    ///
    /// # Panics
    ///
    /// If the block lies outside the range or is free already at that order (a caller bug).
    pub(crate) fn free(&mut self, mut pfn: u64, order: u32) {
        assert!(pfn >= self.base && pfn + (1 << order) <= self.base + self.pages);
        assert!(
            !self.is_free(pfn, order),
            "block {pfn:#x} order {order} freed twice"
        );
        self.nr_free += 1 << order;
        let mut at = order;
        while at < MAX_ORDER {
            let buddy = pfn ^ (1 << at);
            if !self.is_free(buddy, at) {
                break;
            }
            self.free[at as usize].set((buddy - self.base) >> at, false);
            pfn = pfn.min(buddy);
            at += 1;
        }
        self.push(pfn, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_low_first_and_merges_back() {
        let mut b = Buddy::new(1 << 18, 1 << 12);
        assert_eq!(b.free_pages(), 4096);
        let a = b.alloc(9).unwrap();
        assert_eq!(a, 1 << 18, "the lowest block, its lower half");
        let c = b.alloc(9).unwrap();
        assert_eq!(c, a + 512, "then the upper half put back by the split");
        let d = b.alloc(0).unwrap();
        assert_eq!(d, a + 1024);
        assert_eq!(b.free_pages(), 4096 - 1025);
        b.free(c, 9);
        // Just freed: the next 2M allocation gets it back.
        assert_eq!(b.alloc(9), Some(c));
        b.free(c, 9);
        b.free(a, 9);
        b.free(d, 0);
        assert_eq!(b.free_pages(), 4096);
        // Everything merged: four whole 4M blocks again.
        for _ in 0..4 {
            assert!(b.alloc(MAX_ORDER).is_some());
        }
        assert_eq!(b.alloc(0), None);
    }

    #[test]
    fn never_gives_a_page_twice() {
        let mut b = Buddy::new(0, 1 << 14);
        let mut rng = crate::rng::SplitMix64::new(3);
        let mut owned = vec![false; 1 << 14];
        let mut live: Vec<(u64, u32)> = Vec::new();
        for _ in 0..20_000 {
            if rng.below(3) > 0 || live.is_empty() {
                let order = [0, 0, 3, 9][rng.below(4) as usize];
                if let Some(pfn) = b.alloc(order) {
                    assert_eq!(pfn % (1 << order), 0, "aligned to its order");
                    for p in pfn..pfn + (1 << order) {
                        assert!(!owned[p as usize], "page {p} given twice");
                        owned[p as usize] = true;
                    }
                    live.push((pfn, order));
                }
            } else {
                let (pfn, order) = live.swap_remove(rng.below(live.len() as u64) as usize);
                for p in pfn..pfn + (1 << order) {
                    owned[p as usize] = false;
                }
                b.free(pfn, order);
            }
            let used: u64 = live.iter().map(|&(_, o)| 1u64 << o).sum();
            assert_eq!(b.free_pages() + used, 1 << 14);
        }
        for (pfn, order) in live.drain(..) {
            b.free(pfn, order);
        }
        assert_eq!(b.free_pages(), 1 << 14);
        for _ in 0..16 {
            assert!(b.alloc(MAX_ORDER).is_some(), "fully merged again");
        }
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn double_free_is_caught() {
        let mut b = Buddy::new(0, 1 << 10);
        let p = b.alloc(0).unwrap();
        // Its buddy stays allocated, so the free block stays at order 0.
        let _q = b.alloc(0).unwrap();
        b.free(p, 0);
        b.free(p, 0);
    }
}
