// SPDX-License-Identifier: GPL-2.0

//! The kernel direct map around guest-owned pages: split, protect, restore, merge.
//!
//! A host write through a 2M or 1G direct-map mapping faults if any 4K page
//! under it is guest-owned. Under the default policy the module write-protects
//! guest-owned pages in the direct map (so a stray kernel write is a clean
//! protection fault, not an RMP violation), splitting only the mapping that
//! must be split, restores them when they return, and merges a region back
//! into one large mapping when its last guest page has gone. Why not unmap
//! them: see `model/plan.rs`. The decisions are [`model::Region`]'s; this file
//! carries them out and counts what the kernel's page tables did.
//!
//! Conversions come in batches ([`Prepare`], [`Release`]) so that a range costs
//! one TLB flush. A batch holds the region lock from its first page to its
//! flush. Lock order: `Shared::registry` (in `snp_host/dev.rs`), then the
//! region lock, then the emulated RMP's lock; the kernel's CPA code takes
//! `init_mm`'s mmap lock inside all of them.

// Shared with the host crate, see `rmp/mod.rs`.
#[allow(unreachable_pub, dead_code, unused_imports)]
pub(crate) mod model;

use crate::counters::COUNTERS;
use crate::kernel_ext::{directmap as dm, param::Choice};
use crate::rmp::model::PageSize;
use kernel::{
    fmt,
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{Mutex, MutexGuard}, //
};
use model::{Flush, FlushBatch, Level, Policy, Region, Transitions};

impl Choice for Policy {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("coalesce", Policy::Coalesce),
        ("split", Policy::Split),
        ("unmap", Policy::Unmap),
    ];
}

/// Counts the leaf changes `t` in the module's counters.
fn count(t: Transitions) {
    COUNTERS.dm_splits_2m.add(t.splits_2m);
    COUNTERS.dm_splits_1g.add(t.splits_1g);
    COUNTERS.dm_merges_2m.add(t.merges_2m);
    COUNTERS.dm_merges_1g.add(t.merges_1g);
}

/// One page of a conversion: 4K, or 2M (512 pages from a 2M-aligned PFN).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Page {
    pub(crate) pfn: u64,
    pub(crate) size: PageSize,
}

/// The module's view of the direct map.
#[pin_data]
pub(crate) struct DirectMap {
    pub(crate) policy: Policy,
    /// Every 2M region holding, or having held, a guest-owned page, by first PFN.
    #[pin]
    regions: Mutex<RBTree<u64, Region>>,
}

impl DirectMap {
    /// Creates the direct-map state for `policy`.
    pub(crate) fn new(policy: Policy) -> impl PinInit<Self> {
        pin_init!(Self {
            policy,
            regions <- new_mutex!(RBTree::new(), "snp_host_directmap"),
        })
    }

    /// Starts a batch of conversions; dropping it flushes and merges what is left.
    pub(crate) fn batch(&self) -> Batch<'_> {
        Batch {
            dm: self,
            regions: self.regions.lock(),
            flush: FlushBatch::new(),
            merge: KVec::new(),
        }
    }

    fn flush(&self, range: Option<Flush>) {
        let Some(f) = range else { return };
        dm::flush(match f {
            Flush::Range { first, pages } => Some((first, pages)),
            Flush::All => None,
        });
        COUNTERS.tlb_flushes.add(1);
    }

    /// Writes one line per region: `0x<first pfn> <4K|2M|1G> private=<n>`.
    pub(crate) fn write_regions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regions = self.regions.lock();
        for (&head, region) in regions.iter() {
            let size = match dm::level_of(head) {
                Some(Level::Size4K) => "4K",
                Some(Level::Size2M) => "2M",
                Some(Level::Size1G) => "1G",
                None => "none",
            };
            writeln!(f, "{:#x} {} private={}", head, size, region.private())?;
        }
        Ok(())
    }
}

/// The number of 4K pages in `page`.
fn pages_of(page: &Page) -> u64 {
    page.size.pages()
}

/// A batch of conversions: one TLB flush for all protected pages, one merge call
/// for all emptied regions.
pub(crate) struct Batch<'a> {
    dm: &'a DirectMap,
    regions: MutexGuard<'a, RBTree<u64, Region>>,
    flush: FlushBatch,
    merge: KVec<u64>,
}

impl Batch<'_> {
    /// Takes `page`, about to become guest-owned, out of the host's way as the policy
    /// says. Call [`Batch::flush`] before the RMP changes.
    ///
    /// On error nothing changed for this page.
    pub(crate) fn make_private(&mut self, page: &Page) -> Result {
        let dm = self.dm;
        let pages = pages_of(page);
        let head = Level::Size2M.region_start(page.pfn);
        let before = dm::level_of(page.pfn).ok_or(EINVAL)?;
        if self.regions.get(&head).is_none() {
            self.regions
                .try_create_and_insert(head, Region::new(before), GFP_KERNEL)?;
        }
        let region = self.regions.get_mut(&head).ok_or(EINVAL)?;
        // CAST: a page is 1 or 512 base pages.
        let prep = region
            .make_private(dm.policy, pages as u32)
            .map_err(|_| EINVAL)?;
        let done = if prep.split_4k {
            dm::split_4k(page.pfn, pages).inspect(|()| {
                // set_memory_4k() flushed by itself.
                COUNTERS.tlb_flushes.add(1);
            })
        } else if prep.protect {
            dm::wrprotect_noflush(page.pfn, pages)
        } else {
            Ok(())
        };
        if let Err(e) = done {
            let _ = region.make_shared(dm.policy, pages as u32);
            return Err(e);
        }
        if prep.protect {
            COUNTERS.dm_unmapped_pages.add(pages);
            if prep.flush_now {
                dm.flush(Some(Flush::Range {
                    first: page.pfn,
                    pages,
                }));
            } else {
                self.flush.add(page.pfn, pages);
            }
        }
        if let Some(after) = dm::level_of(page.pfn) {
            count(Transitions::between(before, after));
        }
        Ok(())
    }

    /// Flushes the TLB once for every page protected so far.
    pub(crate) fn flush(&mut self) {
        self.dm.flush(self.flush.take());
    }

    /// Makes `page`, back with the host (or refused by the RMP), writable again if
    /// the policy protected it, and notes its region for merging if it is now empty.
    ///
    /// # Errors
    ///
    /// If the page could not be restored: it must then be leaked, not freed.
    pub(crate) fn make_shared(&mut self, page: &Page) -> Result {
        let dm = self.dm;
        let pages = pages_of(page);
        let head = Level::Size2M.region_start(page.pfn);
        let region = self.regions.get_mut(&head).ok_or(EINVAL)?;
        // CAST: a page is 1 or 512 base pages.
        let rel = region
            .make_shared(dm.policy, pages as u32)
            .map_err(|_| EINVAL)?;
        if rel.restore {
            // Restoring part of a protected large mapping splits it (after a PSMASH,
            // say): count that like any other split.
            let before = dm::level_of(page.pfn);
            if let Err(e) = dm::restore_noflush(page.pfn, pages) {
                // Still read-only in the direct map: the caller must not free the page.
                let _ = region.make_private(dm.policy, pages as u32);
                return Err(e);
            }
            COUNTERS.dm_unmapped_pages.sub(pages);
            if let (Some(was), Some(now)) = (before, dm::level_of(page.pfn)) {
                count(Transitions::between(was, now));
            }
        }
        if rel.merge {
            // Without memory for the list the region merely stays split.
            let _ = self.merge.push(head, GFP_KERNEL);
        } else {
            forget_if_settled(&mut self.regions, head, dm::level_of(head));
        }
        Ok(())
    }

    /// Merges every region the batch emptied, with one TLB flush in all.
    fn merge(&mut self) {
        let merge = core::mem::take(&mut self.merge);
        if merge.is_empty() {
            return;
        }
        let mut before: KVec<Level> = KVec::new();
        for &head in merge.iter() {
            let _ = before.push(dm::level_of(head).unwrap_or(Level::Size4K), GFP_KERNEL);
        }
        match dm::collapse(&merge) {
            Ok(0) => {}
            Ok(_) => {
                COUNTERS.tlb_flushes.add(1);
            }
            Err(e) => pr_warn!("direct map not merged back: {:?}\n", e),
        }
        for (&head, &was) in merge.iter().zip(before.iter()) {
            let now = dm::level_of(head).unwrap_or(was);
            count(Transitions::between(was, now));
            forget_if_settled(&mut self.regions, head, Some(now));
        }
    }
}

/// Stops accounting the region at `head` once it holds no guest page and is mapped
/// (`now`) at least as large as before the module touched it. A region left split
/// (policies that never merge, a failed merge) stays listed.
fn forget_if_settled(regions: &mut RBTree<u64, Region>, head: u64, now: Option<Level>) {
    let settled = regions
        .get(&head)
        .is_some_and(|r| r.idle() && now.is_some_and(|now| now >= r.origin()));
    if settled {
        regions.remove(&head);
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Also on error paths: no stale translations, no region left split for nothing.
        self.flush();
        self.merge();
    }
}
