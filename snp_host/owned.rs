// SPDX-License-Identifier: GPL-2.0

//! Which pages the module has given to guests, readable from any context.
//!
//! The kernel's fault path, the mm paths that make a read-only mapping
//! writable and an oops ask "is this page guest-owned?" under page-table
//! spinlocks, with interrupts off or in the middle of a crash: they may
//! neither sleep nor take the ledger's mutexes or the emulated RMP's. This is
//! a lock-free view for them: one bit per 4K page of RAM, set for every page
//! the module claimed for a guest (from before its user mapping is
//! write-protected until after the RMP has it back), and a count of such
//! pages per 2M region, so that "does this huge mapping cover a guest page?"
//! is one load.
//!
//! Writers are the conversions (`convert.rs`), under the ledger; readers use
//! relaxed atomic loads. A reader racing a conversion sees the page either
//! way, which the fault path resolves by retrying within its bound. Memory:
//! 1 bit per 4K page and 2 bytes per 2M region, about 34 MiB for 1 TiB.

use crate::rmp::model::PageSize;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use kernel::{alloc::VVec, prelude::*};

/// The pages claimed for guests, by PFN, below `end_pfn`.
pub(crate) struct Owned {
    bits: VVec<AtomicU64>,
    per_2m: VVec<AtomicU16>,
    end_pfn: u64,
}

impl Owned {
    /// Creates an empty view of PFNs `0..end_pfn`.
    pub(crate) fn new(end_pfn: u64) -> Result<Self> {
        let words = usize::try_from(end_pfn.div_ceil(64)).map_err(|_| ENOMEM)?;
        let regions = usize::try_from(end_pfn.div_ceil(512)).map_err(|_| ENOMEM)?;
        let mut bits = VVec::with_capacity(words, GFP_KERNEL)?;
        for _ in 0..words {
            bits.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let mut per_2m = VVec::with_capacity(regions, GFP_KERNEL)?;
        for _ in 0..regions {
            per_2m.push(AtomicU16::new(0), GFP_KERNEL)?;
        }
        Ok(Self {
            bits,
            per_2m,
            end_pfn,
        })
    }

    fn word(&self, pfn: u64) -> Option<(&AtomicU64, u64)> {
        let w = usize::try_from(pfn / 64).ok()?;
        Some((self.bits.get(w)?, 1 << (pfn % 64)))
    }

    fn region(&self, pfn: u64) -> Option<&AtomicU16> {
        self.per_2m.get(usize::try_from(pfn / 512).ok()?)
    }

    /// Marks the `size` page at `pfn` as guest-owned (or becoming so).
    ///
    /// Called with the page claimed in the ledger, so no other writer touches it.
    pub(crate) fn claim(&self, pfn: u64, size: PageSize) {
        for p in pfn..pfn.saturating_add(size.pages()).min(self.end_pfn) {
            if let Some((w, bit)) = self.word(p) {
                if w.fetch_or(bit, Relaxed) & bit == 0 {
                    if let Some(r) = self.region(p) {
                        r.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }

    /// Marks the `size` page at `pfn` as the host's again.
    pub(crate) fn release(&self, pfn: u64, size: PageSize) {
        for p in pfn..pfn.saturating_add(size.pages()).min(self.end_pfn) {
            if let Some((w, bit)) = self.word(p) {
                if w.fetch_and(!bit, Relaxed) & bit != 0 {
                    if let Some(r) = self.region(p) {
                        r.fetch_sub(1, Relaxed);
                    }
                }
            }
        }
    }

    /// Returns whether the 4K page `pfn` is claimed for a guest.
    pub(crate) fn page(&self, pfn: u64) -> bool {
        self.word(pfn)
            .is_some_and(|(w, bit)| w.load(Relaxed) & bit != 0)
    }

    /// Returns whether any page of `[pfn, pfn + pages)` is claimed for a guest.
    pub(crate) fn any(&self, pfn: u64, pages: u64) -> bool {
        let end = pfn.saturating_add(pages).min(self.end_pfn);
        let mut p = pfn;
        while p < end {
            if p % 512 == 0 && end - p >= 512 {
                if self.region(p).is_some_and(|r| r.load(Relaxed) != 0) {
                    return true;
                }
                p += 512;
            } else {
                if self.page(p) {
                    return true;
                }
                p += 1;
            }
        }
        false
    }
}

#[kunit_tests(snp_host_owned)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_seen_per_page_and_per_region() -> Result {
        let owned = Owned::new(4096)?;
        owned.claim(0x205, PageSize::Size4K);
        assert!(owned.page(0x205) && !owned.page(0x204) && !owned.page(0x206));
        assert!(owned.any(0x200, 512) && !owned.any(0x400, 512));
        assert!(owned.any(0, 4096));
        owned.claim(0x400, PageSize::Size2M);
        assert!(owned.page(0x400) && owned.page(0x5ff) && !owned.page(0x600));
        owned.release(0x205, PageSize::Size4K);
        assert!(!owned.any(0x200, 512) && owned.any(0x400, 1));
        owned.release(0x400, PageSize::Size2M);
        assert!(!owned.any(0, 4096));
        // Outside the view: never owned, never a panic.
        owned.claim(u64::MAX - 3, PageSize::Size2M);
        assert!(!owned.page(u64::MAX) && !owned.any(u64::MAX - 1, 512));
        Ok(())
    }
}
