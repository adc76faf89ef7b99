// SPDX-License-Identifier: GPL-2.0

//! The kernel direct map around guest-owned pages: split, protect, restore, merge.
//!
//! A host write through a 2M or 1G direct-map mapping faults if any 4K page
//! under it is guest-owned. Under the default policy the module takes
//! guest-owned pages out of the host's write path in the direct map (so a
//! stray kernel write is a clean protection fault, not an RMP violation),
//! splitting only the mapping that must be split, restores them when they
//! return, and merges a region back into one large mapping when its last
//! guest page has gone. Pages user space maps are write-protected, pages only
//! the kernel holds are made not present (why: `model/plan.rs`). The decisions
//! are [`model::Region`]'s; this file carries them out and counts what the
//! kernel's page tables did.
//!
//! Conversions come in batches ([`Batch`]) so that a range costs one TLB
//! flush: under `coalesce` the pages made private are protected together, by
//! one kernel call, at [`Batch::flush`]. A batch holds the region lock from
//! its first page to its end.
//!
//! Walks of the kernel's page tables are work too (`dm_walks`): the module
//! remembers the leaf its own changes left each region in ([`Tracked`]) and
//! walks only where that memory cannot answer (a region it did not hold a
//! guest page in, a leaf that may have been split behind its back, what a
//! merge did). Lock order: the ledger (in
//! `snp_host/ledger.rs`), then the region lock, then the emulated RMP's lock; the
//! kernel's CPA code takes `init_mm`'s mmap lock inside all of them.

#[expect(
    unreachable_pub,
    reason = "the model's items are `pub` for the host crate (`lib.rs`), which exports them"
)]
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
use model::{Level, Policy, Protection, Region, Transitions};

impl Choice for Policy {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("coalesce", Policy::Coalesce),
        ("split", Policy::Split),
        ("perpage", Policy::PerPage),
    ];
}

/// Who besides the guest can reach the pages of a batch, which decides how they
/// are protected ([`Policy::protection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// User space maps them (every `/dev/snp_host` page): they stay readable,
    /// because the kernel reads them for their process.
    User,
    /// Only the kernel holds them (KVM's guest pages): they are made not present.
    Kernel,
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
    regions: Mutex<RBTree<u64, Tracked>>,
}

impl DirectMap {
    /// Creates the direct-map state for `policy`.
    pub(crate) fn new(policy: Policy) -> impl PinInit<Self> {
        pin_init!(Self {
            policy,
            regions <- new_mutex!(RBTree::new(), "snp_host_directmap"),
        })
    }

    /// Starts a batch of conversions of pages user space maps; dropping it
    /// protects what is still unprotected and merges what it emptied.
    pub(crate) fn batch(&self) -> Batch<'_> {
        self.batch_for(Reach::User)
    }

    /// Starts a batch of conversions of pages that `reach` says who can reach.
    pub(crate) fn batch_for(&self, reach: Reach) -> Batch<'_> {
        Batch {
            dm: self,
            regions: self.regions.lock(),
            how: self.policy.protection(reach == Reach::User),
            queued: dm::Ranges::new(),
            pending: KVVec::new(),
            unprotected: KVVec::new(),
            restores: KVVec::new(),
            merge: KVVec::new(),
        }
    }

    /// Writes one line per region: `0x<first pfn> <4K|2M|1G> private=<n>`.
    pub(crate) fn write_regions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regions = self.regions.lock();
        for (&head, t) in regions.iter() {
            let size = match dm::level_of(head) {
                Some(Level::Size4K) => "4K",
                Some(Level::Size2M) => "2M",
                Some(Level::Size1G) => "1G",
                None => "none",
            };
            writeln!(f, "{:#x} {} private={}", head, size, t.region.private())?;
        }
        Ok(())
    }
}

/// One walk of the kernel's page tables for the direct-map leaf of `pfn`, counted
/// (`dm_walks`): part of the work the conversions cost.
fn walk(pfn: u64) -> Option<dm::Entry> {
    COUNTERS.dm_walks.add(1);
    dm::lookup(pfn)
}

/// The level of the leaf [`walk`] finds.
fn walk_level(pfn: u64) -> Option<Level> {
    walk(pfn).map(|e| e.level)
}

/// A region the module accounts, with the leaf its own changes left it in.
///
/// The kernel makes a leaf larger only when the module asks it to merge, and a
/// 4K or 2M leaf of a region holding a guest page changes only when the module
/// changes it: no one else changes the attributes of the module's pages, and a
/// 4K leaf of another page cannot change the size of the one that maps them.
/// A 1G leaf maps other memory too, which the kernel may split for its own
/// reasons: that one is an upper bound, walked for where its size matters.
struct Tracked {
    region: Region,
    leaf: Level,
}

impl Tracked {
    /// Returns the leaf that maps the region at `head` now.
    fn leaf_now(&self, head: u64) -> Option<Level> {
        if self.leaf > Level::Size2M {
            walk_level(head)
        } else {
            Some(self.leaf)
        }
    }
}

/// The leaf that maps a range of `page`'s size after the kernel changed its
/// attributes, if a leaf of `before` mapped it: CPA splits a leaf only as far as
/// the range needs (a 4K range to 4K; a 2M-aligned 2M range keeps a 2M leaf and
/// splits a 1G one to 2M), and never merges by itself.
fn changed_leaf(before: Level, page: &Page) -> Level {
    let size = match page.size {
        PageSize::Size4K => Level::Size4K,
        PageSize::Size2M => Level::Size2M,
    };
    before.min(size)
}

/// Gives the `n` pages from `pfn` their default direct-map protection back with
/// one kernel call, counted (`dm_cpa_calls`, `dm_unmapped_pages`).
///
/// # Errors
///
/// As [`dm::restore`]: the pages are still protected then.
///
/// # Safety
///
/// The caller owns the pages, as [`Batch::make_private`] says, and a batch of the
/// module's direct map protected them.
unsafe fn restore(pfn: u64, n: u64) -> Result {
    cpa();
    // SAFETY: The caller owns the pages and protected them (this function's contract).
    unsafe { dm::restore(pfn, n) }?;
    COUNTERS.dm_unmapped_pages.sub(n);
    Ok(())
}

/// Counts one change of the direct map asked of the kernel (`dm_cpa_calls`).
fn cpa() {
    COUNTERS.dm_cpa_calls.add(1);
}

/// The number of 4K pages in `page`.
fn pages_of(page: &Page) -> u64 {
    page.size.pages()
}

/// log2 of the number of 4K pages in `page`.
fn order_of(page: &Page) -> u32 {
    pages_of(page).trailing_zeros()
}

/// Marks a page of [`Batch::restore_pending`] that could not be restored (no PFN
/// is this large).
const FAILED: u64 = u64::MAX;

/// A batch of conversions: one kernel call and TLB flush for all pages it
/// protects, one merge call for all regions it empties.
pub(crate) struct Batch<'a> {
    dm: &'a DirectMap,
    regions: MutexGuard<'a, RBTree<u64, Tracked>>,
    /// How the batch protects pages, if the policy protects them at all.
    how: Option<Protection>,
    /// Pages made private since the last flush, which protects them.
    queued: dm::Ranges,
    /// The same pages, with the size of their mapping before, for the counters.
    pending: KVVec<(Page, Level)>,
    /// Pages a failed flush left unprotected, still counted private until their
    /// callers give them back with [`Batch::make_shared`].
    unprotected: KVVec<(Page, Level)>,
    /// 4K pages at 4K leaves given back with [`Batch::make_shared_later`], restored
    /// by [`Batch::restore_pending`], one kernel call per run of neighbours.
    restores: KVVec<u64>,
    merge: KVVec<u64>,
}

impl Batch<'_> {
    /// Takes `page`, about to become guest-owned, out of the host's way as the policy
    /// says. Under `coalesce` that happens at the next [`Batch::flush`], for every
    /// page made private since the last one; the other policies do it now, with a
    /// TLB flush of their own. Call [`Batch::flush`] before the RMP changes.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the page is not mapped, if the region accounting refuses it
    /// (a caller bug), or if it differs in size from pages made private since the
    /// last flush (one kernel call takes one size); `ENOMEM`. On error nothing
    /// changed for this page.
    ///
    /// # Safety
    ///
    /// The caller owns the page: pinned by the module, or leaked by it, with nobody
    /// else changing its direct-map attributes, from this call until
    /// [`Batch::make_shared`] has returned `Ok` for it (or for good, if it leaks it).
    pub(crate) unsafe fn make_private(&mut self, page: &Page) -> Result {
        let dm = self.dm;
        let pages = pages_of(page);
        let head = Level::Size2M.region_start(page.pfn);
        // Linux's split needs the page's own entry (set_memory_4k() flushes only if
        // it changes it: unless an earlier call marked it already); the protecting
        // policies need a walk only for a region they hold no guest page in.
        let entry = match self.regions.get(&head) {
            Some(t) if !t.region.idle() && dm.policy.protects() => None,
            _ => Some(walk(page.pfn).ok_or(EINVAL)?),
        };
        let tracked = match self.regions.get_mut(&head) {
            Some(t) => t,
            None => {
                let leaf = entry.map_or(Level::Size4K, |e| e.level);
                let new = Tracked {
                    region: Region::new(leaf),
                    leaf,
                };
                self.regions.try_create_and_insert(head, new, GFP_KERNEL)?;
                self.regions.get_mut(&head).ok_or(EINVAL)?
            }
        };
        let before = entry.map_or(tracked.leaf, |e| e.level);
        tracked.leaf = before;
        // CAST: a page is 1 or 512 base pages.
        let prep = tracked
            .region
            .make_private(dm.policy, pages as u32)
            .map_err(|_| EINVAL)?;
        let done = match self.how {
            _ if prep.split_4k => {
                let marked = entry.is_some_and(|e| e.kept_4k);
                cpa();
                // SAFETY: The caller owns the page (this function's contract).
                unsafe { dm::split_4k(page.pfn, pages) }.inspect(|()| {
                    if !marked {
                        COUNTERS.tlb_flushes.add(1);
                    }
                    // set_memory_4k() splits whatever maps the page down to 4K.
                    self.count_change(head, before, Level::Size4K);
                })
            }
            Some(how) if prep.protect && prep.flush_now => self.protect_now(page, before, how),
            Some(_) if prep.protect => self.queue(page, before),
            _ => Ok(()),
        };
        if done.is_err() {
            self.undo_private(page);
        }
        done
    }

    /// Protects `page` on its own, with a TLB flush of its own.
    fn protect_now(&mut self, page: &Page, before: Level, how: Protection) -> Result {
        let mut one = dm::Ranges::new();
        // SAFETY: The caller of `make_private()` owns the page.
        unsafe { one.push(page.pfn, order_of(page)) }?;
        cpa();
        one.protect(how)?;
        COUNTERS.tlb_flushes.add(1);
        self.protected(page, before);
        Ok(())
    }

    /// Adds `page` to the pages the next flush protects.
    fn queue(&mut self, page: &Page, before: Level) -> Result {
        self.pending.push((*page, before), GFP_KERNEL)?;
        // SAFETY: The caller of `make_private()` owns the page.
        if let Err(e) = unsafe { self.queued.push(page.pfn, order_of(page)) } {
            self.pending.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Counts `page` as protected, and the split that needed, if any.
    fn protected(&mut self, page: &Page, before: Level) {
        COUNTERS.dm_unmapped_pages.add(pages_of(page));
        let head = Level::Size2M.region_start(page.pfn);
        self.count_change(head, before, changed_leaf(before, page));
    }

    /// Counts the change of the leaf of the region at `head` from `before` to
    /// `after`, and remembers `after`.
    fn count_change(&mut self, head: u64, before: Level, after: Level) {
        count(Transitions::between(before, after));
        if let Some(t) = self.regions.get_mut(&head) {
            t.leaf = after;
        }
    }

    /// Gives back the accounting of `page`, made private by this batch but never
    /// protected, so that the module forgets a region that only it was in.
    fn undo_private(&mut self, page: &Page) {
        let head = Level::Size2M.region_start(page.pfn);
        if let Some(t) = self.regions.get_mut(&head) {
            // CAST: a page is 1 or 512 base pages.
            let _ = t.region.make_shared(self.dm.policy, pages_of(page) as u32);
        }
        forget_if_settled(&mut self.regions, head, None);
    }

    /// Protects every page made private since the last flush, with one kernel call
    /// and one TLB flush for all of them.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if a large mapping had to be split and could not be. Then none of
    /// those pages is protected: none of them may become guest-owned, and each goes
    /// back with [`Batch::make_shared`], which then has nothing to restore.
    pub(crate) fn flush(&mut self) -> Result {
        let Some(how) = self.how else {
            return Ok(());
        };
        if self.queued.is_empty() {
            return Ok(());
        }
        let mut pending = core::mem::take(&mut self.pending);
        cpa();
        // Pages only the kernel holds (KVM's, one per call) leave other CPUs' TLBs
        // to the kernel's lazy flush: an IPI per page would cost more than the
        // conversion, and a stale entry maps the page as it was mapped before
        // (why that is safe: patches/0031). Pages user space maps must fault on
        // every CPU from now on: the fault path decides by that fault.
        let changed = match how {
            Protection::NotPresent => self.queued.invalidate_lazy(),
            Protection::ReadOnly => self.queued.protect(how).map(|()| true),
        };
        match changed {
            Ok(flushed) => {
                if flushed {
                    COUNTERS.tlb_flushes.add(1);
                }
                for (page, _) in pending.iter() {
                    COUNTERS.dm_unmapped_pages.add(pages_of(page));
                }
                // Many pages of a region may have split it once: count per region.
                pending.sort_unstable_by_key(|(page, _)| page.pfn);
                count_regions(
                    &mut self.regions,
                    pending.iter().map(|(p, before)| {
                        let head = Level::Size2M.region_start(p.pfn);
                        (head, *before, changed_leaf(*before, p))
                    }),
                );
                Ok(())
            }
            Err(e) => {
                if self.unprotected.is_empty() {
                    self.unprotected = pending;
                } else {
                    for &p in pending.iter() {
                        // Without memory to remember it, forget the page now: its
                        // caller's make_shared() then fails and the page is leaked.
                        if self.unprotected.push(p, GFP_KERNEL).is_err() {
                            self.undo_private(&p.0);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Gives `page`, back with the host (or refused by the RMP), its default
    /// direct-map protection again if the policy took it away, and notes its region
    /// for merging if it is now empty.
    ///
    /// # Errors
    ///
    /// If the page could not be restored: it must then be leaked, not freed.
    ///
    /// # Safety
    ///
    /// The caller owns the page, as [`Batch::make_private`] says, and made it
    /// private with a batch of the same [`DirectMap`].
    pub(crate) unsafe fn make_shared(&mut self, page: &Page) -> Result {
        // SAFETY: The caller's contract is this one's; nothing is left for later.
        unsafe { self.give_back(page, false) }.map(|_| ())
    }

    /// Like [`Batch::make_shared`], but leaves the restore of a page whose restore
    /// cannot fail (a 4K page its 4K leaf maps: rewriting a PTE needs no memory)
    /// to [`Batch::restore_pending`], which restores neighbouring pages with one
    /// kernel call. Returns whether the page waits for that call.
    ///
    /// # Errors
    ///
    /// As [`Batch::make_shared`].
    ///
    /// # Safety
    ///
    /// As [`Batch::make_shared`]; and a page for which this returned `Ok(true)`
    /// stays the caller's, not to be freed, until [`Batch::restore_pending`] has
    /// returned, and is leaked if that names it.
    pub(crate) unsafe fn make_shared_later(&mut self, page: &Page) -> Result<bool> {
        // SAFETY: The caller's contract is this one's.
        unsafe { self.give_back(page, true) }
    }

    /// Restores every page [`Batch::make_shared_later`] left waiting, with one
    /// kernel call per run of physically neighbouring pages, and returns those
    /// restored, sorted. A page missing from the list is still protected (the
    /// kernel broke its word: a PTE rewrite at a 4K leaf needs no memory, and
    /// injected failures strike earlier, in [`Batch::make_shared_later`]): it must
    /// be leaked, and its region stays split. A run of several pages that fails
    /// is tried again page by page. Nothing here allocates: no failure can go
    /// unreported for want of memory.
    pub(crate) fn restore_pending(&mut self) -> KVVec<u64> {
        let mut pfns = core::mem::take(&mut self.restores);
        pfns.sort_unstable();
        let mut i = 0;
        while let Some(&first) = pfns.get(i) {
            let mut n = 1usize;
            while pfns.get(i + n) == Some(&(first + n as u64)) {
                n += 1;
            }
            // CAST: a batch holds at most `BATCH_PAGES` pages.
            // SAFETY: The callers of `make_shared_later()` own the pages until this
            // returns; each is a guest page at a 4K leaf that a batch of this
            // direct map protected.
            if unsafe { restore(first, n as u64) }.is_err() {
                for p in pfns.iter_mut().skip(i).take(n) {
                    // SAFETY: As above, one page of the run.
                    if n == 1 || unsafe { restore(*p, 1) }.is_err() {
                        self.keep_protected(*p);
                        *p = FAILED;
                    }
                }
            }
            i += n;
        }
        pfns.retain(|p| *p != FAILED);
        // What `make_shared` forgets at once, once restored: a settled region that
        // is not to be merged (`pfns` is sorted, so each region comes in one go).
        let mut last = None;
        for &pfn in pfns.iter() {
            let head = Level::Size2M.region_start(pfn);
            if last != Some(head) && !self.merge.contains(&head) {
                forget_if_settled(&mut self.regions, head, None);
            }
            last = Some(head);
        }
        pfns
    }

    /// Counts the 4K page at `pfn`, whose restore failed, as private again: its
    /// region keeps it and is not merged.
    fn keep_protected(&mut self, pfn: u64) {
        let head = Level::Size2M.region_start(pfn);
        self.merge.retain(|h| *h != head);
        if let Some(t) = self.regions.get_mut(&head) {
            let _ = t.region.make_private(self.dm.policy, 1);
        }
    }

    /// [`Batch::make_shared`], leaving what it can to [`Batch::restore_pending`] if
    /// `later`; returns whether it did.
    ///
    /// # Safety
    ///
    /// As [`Batch::make_shared_later`].
    unsafe fn give_back(&mut self, page: &Page, later: bool) -> Result<bool> {
        // Made private by this batch and never protected: nothing to restore.
        if self.queued.remove(page.pfn) {
            self.pending.retain(|(p, _)| p.pfn != page.pfn);
            self.undo_private(page);
            return Ok(false);
        }
        let unprotected = self.unprotected.len();
        self.unprotected.retain(|(p, _)| p.pfn != page.pfn);
        if self.unprotected.len() != unprotected {
            self.undo_private(page);
            return Ok(false);
        }
        let mut waits = false;
        let dm = self.dm;
        let pages = pages_of(page);
        let head = Level::Size2M.region_start(page.pfn);
        let tracked = self.regions.get_mut(&head).ok_or(EINVAL)?;
        // CAST: a page is 1 or 512 base pages.
        let rel = tracked
            .region
            .make_shared(dm.policy, pages as u32)
            .map_err(|_| EINVAL)?;
        // What maps the page now decides whether it must be split, and what a
        // restore splits (a leaf larger than the page, after a PSMASH, say).
        let leaf = if rel.split_4k || rel.restore {
            tracked.leaf_now(head)
        } else {
            None
        };
        if rel.split_4k && leaf.is_some_and(|l| l > Level::Size4K) {
            cpa();
            // SAFETY: The caller owns the page (this function's contract).
            if let Err(e) = unsafe { dm::split_4k(page.pfn, pages) } {
                // Still under a large mapping with guest-owned neighbours: the caller
                // must not free it.
                let _ = tracked.region.make_private(dm.policy, pages as u32);
                return Err(e);
            }
            COUNTERS.tlb_flushes.add(1);
            if let Some(was) = leaf {
                count(Transitions::between(was, Level::Size4K));
                tracked.leaf = Level::Size4K;
            }
        }
        // An injected failure strikes here, at the page, for pages that would wait
        // too: a test sees it where `done` says, with the pages after it untouched.
        let injected = rel.restore && crate::inject::fails(&crate::inject::DIRECTMAP_RESTORE);
        let deferrable =
            later && !injected && page.size == PageSize::Size4K && leaf == Some(Level::Size4K);
        if rel.restore && deferrable && self.restores.push(page.pfn, GFP_KERNEL).is_ok() {
            // Restored at 4K, so the leaf stays 4K (it may have been known as
            // "1G or smaller" only, before the walk).
            tracked.leaf = Level::Size4K;
            waits = true;
        } else if rel.restore {
            // Restoring part of a protected large mapping splits it (after a PSMASH,
            // say): count that like any other split.
            let restored = if injected {
                Err(ENOMEM)
            } else {
                // SAFETY: The caller owns the page (this function's contract).
                unsafe { restore(page.pfn, pages) }
            };
            if let Err(e) = restored {
                // Still protected in the direct map: the caller must not free the page.
                let _ = tracked.region.make_private(dm.policy, pages as u32);
                return Err(e);
            }
            if let Some(was) = leaf {
                let now = changed_leaf(was, page);
                count(Transitions::between(was, now));
                tracked.leaf = now;
            }
        }
        // A region as large as it was has only its 1G block left to merge, which
        // cannot happen while another region of the block holds guest pages
        // (unless a failed flush left those unprotected: then ask anyway).
        let at_origin = tracked.leaf >= tracked.region.origin();
        let futile =
            at_origin && self.unprotected.is_empty() && block_held(&mut self.regions, head);
        if rel.merge && !futile {
            // Without memory for the list the region merely stays split.
            let _ = self.merge.push(head, GFP_KERNEL);
        } else if !waits
            && !self
                .restores
                .iter()
                .any(|&p| Level::Size2M.region_start(p) == head)
        {
            // A region with a page still waiting is settled by `restore_pending`.
            forget_if_settled(&mut self.regions, head, None);
        }
        Ok(waits)
    }

    /// Merges every region the batch emptied, with one kernel call and no TLB
    /// flush of its own (the kernel's lazy flush frees what the merge replaced).
    fn merge(&mut self) {
        let mut merge = core::mem::take(&mut self.merge);
        if merge.is_empty() {
            return;
        }
        // Regions of one 1G block next to each other: one walk tells of the block.
        merge.sort_unstable();
        cpa();
        // SAFETY: The model asks to merge only regions that were large mappings
        // before the module changed pages in them (`Release::merge`).
        let made = match unsafe { dm::collapse(&merge) } {
            Ok(made) => made,
            Err(e) => {
                pr_warn!("direct map not merged back: {:?}\n", e);
                0
            }
        };
        if made == 0 {
            // Nothing changed: every region is as the module left it.
            for &head in merge.iter() {
                forget_if_settled(&mut self.regions, head, None);
            }
            return;
        }
        // Which regions the kernel merged, and how far, only a walk can tell; but
        // a 2M leaf changes only if its 1G block merged, which a walk of any
        // region of the block tells.
        let mut changed: KVVec<(u64, Level, Level)> = KVVec::new();
        let mut block: Option<(u64, Level)> = None;
        for &head in merge.iter() {
            let was = self.regions.get(&head).map_or(Level::Size4K, |t| t.leaf);
            let here = Level::Size1G.region_start(head);
            let now = match block.filter(|&(b, _)| b == here) {
                Some((_, Level::Size1G)) => Some(Level::Size1G),
                Some(_) if was >= Level::Size2M => Some(was),
                _ => walk_level(head).inspect(|&now| block = Some((here, now))),
            };
            if let Some(now) = now {
                let _ = changed.push((head, was, now), GFP_KERNEL);
            }
        }
        // Regions of one 1G block merged into it once: count per block.
        count_regions(&mut self.regions, changed.iter().copied());
        for &(head, _, now) in changed.iter() {
            forget_if_settled(&mut self.regions, head, Some(now));
        }
    }
}

/// Counts what the kernel did to the 2M regions `changed`, given as their first
/// PFN and their mapping before and after, sorted by PFN, a region possibly more
/// than once: each region's split or merge once, and a 1G block's once for all
/// its regions. Remembers each region's leaf after.
fn count_regions(
    regions: &mut RBTree<u64, Tracked>,
    changed: impl Iterator<Item = (u64, Level, Level)>,
) {
    let (mut last_2m, mut last_1g) = (None, None);
    for (head, before, after) in changed {
        if last_2m == Some(head) {
            continue;
        }
        last_2m = Some(head);
        if let Some(t) = regions.get_mut(&head) {
            t.leaf = after;
        }
        let mut t = Transitions::between(before, after);
        let block = Level::Size1G.region_start(head);
        if last_1g == Some(block) {
            t.splits_1g = 0;
            t.merges_1g = 0;
        }
        last_1g = Some(block);
        count(t);
    }
}

/// Returns whether a region of the 1G block of `head` other than `head` holds
/// guest pages, which keeps the block from merging into a 1G leaf.
fn block_held(regions: &mut RBTree<u64, Tracked>, head: u64) -> bool {
    let block = Level::Size1G.region_start(head);
    let end = block + Level::Size1G.pages();
    let mut cursor = regions.cursor_lower_bound_mut(&block);
    while let Some(c) = cursor {
        let (&at, t) = c.current();
        if at >= end {
            return false;
        }
        if at != head && !t.region.idle() {
            return true;
        }
        cursor = c.move_next();
    }
    false
}

/// Stops accounting the region at `head` once it holds no guest page and is mapped
/// (`now`, or [`Tracked::leaf_now`] if not given) at least as
/// large as before the module touched it. A region left split (policies that
/// never merge, a failed merge) stays listed.
fn forget_if_settled(regions: &mut RBTree<u64, Tracked>, head: u64, now: Option<Level>) {
    let Some(t) = regions.get(&head) else {
        return;
    };
    // The remembered leaf is an upper bound: below the origin, no walk can say yes.
    if !t.region.idle() || t.leaf < t.region.origin() {
        return;
    }
    let origin = t.region.origin();
    let now = now.or_else(|| t.leaf_now(head));
    if now.is_some_and(|now| now >= origin) {
        regions.remove(&head);
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Pages made private and not flushed yet count as private for their callers:
        // protect them, then merge what the batch emptied.
        if let Err(e) = self.flush() {
            pr_warn!("direct map: pages made private left unprotected: {:?}\n", e);
        }
        // Callers restore what waits before they let the pages go; this is for
        // one that returned early, before its pages could go anywhere.
        if !self.restores.is_empty() {
            let waiting = self.restores.len();
            let restored = self.restore_pending().len();
            if restored != waiting {
                pr_err!(
                    "direct map: {} pages left read-only after their return\n",
                    waiting - restored
                );
            }
        }
        self.merge();
    }
}

#[kunit_tests(snp_host_directmap)]
mod tests {
    use super::*;
    use crate::kernel_ext::directmap::Entry;

    /// Fails the calling test with `EINVAL` and the failed condition in the kernel
    /// log: `round_trip` is no `#[test]`, so `assert!` there would panic, not fail.
    macro_rules! check {
        ($cond:expr) => {
            if !$cond {
                pr_err!("round_trip: check failed: {}\n", stringify!($cond));
                return Err(EINVAL);
            }
        };
    }

    /// Makes a page the test allocated private and shared again with a `reach`
    /// batch under `coalesce`, checking the kernel's page tables on the way, and
    /// the module-wide counters by their change (nothing else converts while
    /// KUnit runs at load). The region may have been split before, by an earlier
    /// load under `split` or by the kernel itself (`kept_4k`): only what the
    /// conversion changes is checked.
    fn round_trip(reach: Reach) -> Result {
        let c = &COUNTERS;
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let pfn = dm::pfn_of(&page);
        let start = dm::lookup(pfn).ok_or(EINVAL)?;
        check!(start.present && start.writable);
        let map = KBox::pin_init(DirectMap::new(Policy::Coalesce), GFP_KERNEL)?;
        let p = Page {
            pfn,
            size: PageSize::Size4K,
        };
        let (unmapped, flushes) = (c.dm_unmapped_pages.get(), c.tlb_flushes.get());
        let (splits, merges) = (c.dm_splits_2m.get(), c.dm_merges_2m.get());
        let was_large = u64::from(start.level > Level::Size4K);
        {
            let mut batch = map.batch_for(reach);
            // SAFETY: The test allocated the page; nobody else knows it.
            unsafe { batch.make_private(&p) }?;
            // Protected only by the flush.
            let deferred = dm::lookup(pfn) == Some(start);
            let flushed = batch.flush();
            let private = dm::lookup(pfn);
            let want = Entry {
                level: Level::Size4K,
                present: reach == Reach::User,
                writable: false,
                kept_4k: start.kept_4k,
            };
            // Pages only the kernel holds flush other CPUs' TLBs lazily: this one
            // call may or may not have been the one that did.
            let flushed_now = c.tlb_flushes.get() - flushes;
            let counted = c.dm_unmapped_pages.get() == unmapped + 1
                && (flushed_now == 1 || (reach == Reach::Kernel && flushed_now == 0))
                && c.dm_splits_2m.get() == splits + was_large;
            // SAFETY: As above. Back before any check can return: the page is freed.
            unsafe { batch.make_shared(&p) }?;
            flushed?;
            check!(deferred);
            check!(private == Some(want));
            check!(counted);
        }
        // Dropping the batch merged the region back, if it had been large.
        let end = dm::lookup(pfn).ok_or(EINVAL)?;
        check!(end.present && end.writable);
        check!(end.level >= start.level.min(Level::Size2M));
        check!(c.dm_unmapped_pages.get() == unmapped);
        check!(c.dm_merges_2m.get() == merges + was_large);
        Ok(())
    }

    #[test]
    fn kernel_only_pages_go_not_present_and_come_back() -> Result {
        round_trip(Reach::Kernel)
    }

    #[test]
    fn user_mapped_pages_stay_readable() -> Result {
        round_trip(Reach::User)
    }

    /// Makes the test's page not present lazily and restores it, `n` times;
    /// returns how many of those calls flushed every TLB. Each must leave the
    /// page not present at once.
    fn lazy_round_trips(pfn: u64, n: u32) -> Result<u32> {
        let mut flushes = 0;
        for _ in 0..n {
            let mut ranges = dm::Ranges::new();
            // SAFETY: The test allocated the page and restores it below, before it
            // is freed; nothing else knows it.
            unsafe { ranges.push(pfn, 0) }?;
            let flushed = ranges.invalidate_lazy();
            let absent = dm::lookup(pfn).is_some_and(|e| !e.present);
            // SAFETY: As above; the page was made not present just now.
            unsafe { dm::restore(pfn, 1) }?;
            if !absent {
                pr_err!("lazy invalidation left pfn {:#x} present\n", pfn);
                return Err(EINVAL);
            }
            flushes += u32::from(flushed?);
        }
        Ok(flushes)
    }

    /// The kernel's lazy invalidation (patches/0031) leaves other CPUs' TLBs for
    /// later: 512 calls flush every TLB at most once (the count bound is 512
    /// pages; the time bound may have flushed meanwhile instead). Then, after
    /// one call and more than the time bound (10 ms), the count starts afresh:
    /// 511 more calls stay below the count bound and flush nothing, which they
    /// would not if only the count bounded the wait.
    #[test]
    fn lazy_invalidation_is_bounded_by_count_and_time() -> Result {
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let pfn = dm::pfn_of(&page);
        let start = dm::lookup(pfn).ok_or(EINVAL)?;
        let burst = lazy_round_trips(pfn, 512);
        let first = lazy_round_trips(pfn, 1);
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(50));
        let after = lazy_round_trips(pfn, 511);
        if start.level > Level::Size4K && !start.kept_4k {
            // SAFETY: The block was mapped large before the test split it.
            unsafe { dm::collapse(&[pfn]) }?;
        }
        assert!(burst? <= 1);
        first?;
        assert_eq!(after?, 0);
        let end = dm::lookup(pfn).ok_or(EINVAL)?;
        assert!(end.present && end.writable && end.level >= start.level.min(Level::Size2M));
        Ok(())
    }

    #[test]
    fn one_size_per_flush() -> Result {
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let pfn = dm::pfn_of(&page);
        let mut ranges = dm::Ranges::new();
        // SAFETY: The test allocated the page; `protect()` is never called, so the
        // direct map does not change.
        unsafe { ranges.push(pfn, 0) }?;
        // SAFETY: As above.
        assert_eq!(unsafe { ranges.push(pfn, 9) }, Err(EINVAL));
        assert!(ranges.remove(pfn) && ranges.is_empty());
        // SAFETY: As above; the list is empty again, so it takes any size.
        unsafe { ranges.push(pfn, 9) }?;
        Ok(())
    }
}
