// SPDX-License-Identifier: GPL-2.0

//! The module's side of the direct map, as `directmap/mod.rs` carries it out.
//!
//! Every decision comes from the planning code the module itself runs
//! (`directmap/model`: [`Region`] says what to split, protect, restore and
//! merge, [`Transitions`] how to count it); this file replays what
//! `directmap::Batch` does with those answers, on the simulated kernel
//! ([`Kernel`]) instead of the real one, including where it counts a TLB
//! flush. The failure paths (a flush or restore that fails) are left out: the
//! simulated kernel never fails.

use crate::kernel::Kernel;
use snp_host_model::directmap::model::{plan, Level, Policy, Region, Transitions};

/// The module's direct-map counters (`SNP_HOST_GET_STATS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// `dm_splits_2m`.
    pub(crate) splits_2m: u64,
    /// `dm_splits_1g`.
    pub(crate) splits_1g: u64,
    /// `dm_merges_2m`.
    pub(crate) merges_2m: u64,
    /// `dm_merges_1g`.
    pub(crate) merges_1g: u64,
    /// `dm_unmapped_pages`: pages out of the host's write path now.
    pub(crate) unmapped: u64,
    /// `tlb_flushes`.
    pub(crate) tlb_flushes: u64,
    /// `dm_cpa_calls`: direct-map changes asked of the kernel.
    pub(crate) cpa_calls: u64,
    /// `dm_walks`: page-table walks.
    pub(crate) walks: u64,
}

impl Counters {
    fn count(&mut self, t: Transitions) {
        self.splits_2m += t.splits_2m;
        self.splits_1g += t.splits_1g;
        self.merges_2m += t.merges_2m;
        self.merges_1g += t.merges_1g;
    }
}

/// One page of a conversion: 4K, or 2M when `huge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// Its first page frame (2M-aligned when `huge`).
    pub(crate) pfn: u64,
    /// A 2M page.
    pub(crate) huge: bool,
}

impl Page {
    fn pages(&self) -> u32 {
        if self.huge {
            512
        } else {
            1
        }
    }
}

/// A conversion the module would refuse: the placement fed to it is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The page is not in the direct map (`EINVAL`).
    Unmapped(u64),
    /// The region's accounting refused it (`EINVAL`).
    Accounting(u64, plan::Error),
}

/// `directmap::Tracked`: a region and the leaf the module's own changes left it in
/// (exact at 4K and 2M, an upper bound at 1G).
#[derive(Clone, Copy, Debug)]
struct Tracked {
    region: Region,
    leaf: Level,
}

/// `changed_leaf()`: the leaf over a range of `page`'s size after CPA changed it.
fn changed_leaf(before: Level, page: Page) -> Level {
    before.min(if page.huge {
        Level::Size2M
    } else {
        Level::Size4K
    })
}

/// A walk of the page tables (`walk_level()`), counted.
fn walk(k: &Kernel, c: &mut Counters, pfn: u64) -> Option<Level> {
    c.walks += 1;
    k.level_of(pfn)
}

/// `Tracked::leaf_now()`: the remembered leaf, walked for if it was 1G.
fn leaf_now(k: &Kernel, c: &mut Counters, t: &Tracked, head: u64) -> Option<Level> {
    if t.leaf > Level::Size2M {
        walk(k, c, head)
    } else {
        Some(t.leaf)
    }
}

/// The module's view of the direct map under one policy.
#[derive(Clone, Debug)]
pub(crate) struct Module {
    policy: Policy,
    /// Every 2M region holding or having held a guest page, by cell.
    regions: Vec<Option<Tracked>>,
    /// What the module counted.
    pub(crate) counters: Counters,
    /// The lists of the last batch, kept so that the next needs no allocation.
    spare: Lists,
}

/// The lists a batch keeps: pages to protect at the flush (with the size of
/// their mapping before), regions to merge at the end, and room for sorting.
#[derive(Clone, Debug, Default)]
struct Lists {
    pending: Vec<(Page, Level)>,
    /// `Batch::restores`: 4K pages at 4K leaves restored at the batch's end.
    restores: Vec<u64>,
    merge: Vec<u64>,
    changed: Vec<(u64, Level, Level)>,
}

impl Module {
    /// Loads the module with `directmap=policy` on a host of `cells` 2M cells.
    pub(crate) fn new(policy: Policy, cells: u64) -> Self {
        Self {
            policy,
            regions: vec![None; cells as usize],
            counters: Counters::default(),
            spare: Lists::default(),
        }
    }

    /// Returns the number of regions the module lists (debugfs `directmap`).
    pub(crate) fn listed(&self) -> usize {
        self.regions.iter().filter(|r| r.is_some()).count()
    }

    /// Starts a batch of conversions, as `DirectMap::batch()` does.
    pub(crate) fn batch<'a>(&'a mut self, kernel: &'a mut Kernel) -> Batch<'a> {
        let lists = std::mem::take(&mut self.spare);
        Batch {
            m: self,
            k: kernel,
            lists,
        }
    }
}

/// A batch: one protection call and flush for its pages, one merge call at its end.
pub(crate) struct Batch<'a> {
    m: &'a mut Module,
    k: &'a mut Kernel,
    lists: Lists,
}

impl Batch<'_> {
    /// `Batch::make_private()`: the page is about to become guest-owned.
    ///
    /// # Errors
    ///
    /// What the module would refuse (`EINVAL`); nothing changed then.
    pub(crate) fn make_private(&mut self, page: Page) -> Result<(), Refused> {
        let policy = self.m.policy;
        let cell = (page.pfn / 512) as usize;
        let c = &mut self.m.counters;
        // A walk only for Linux's split (its mark) or a region without guest pages.
        let walked = match self.m.regions.get(cell).copied().flatten() {
            Some(t) if !t.region.idle() && policy.protects() => None,
            _ => Some(walk(self.k, c, page.pfn).ok_or(Refused::Unmapped(page.pfn))?),
        };
        let tracked = self.m.regions[cell].get_or_insert_with(|| {
            let leaf = walked.unwrap_or(Level::Size4K);
            Tracked {
                region: Region::new(leaf),
                leaf,
            }
        });
        let before = walked.unwrap_or(tracked.leaf);
        tracked.leaf = before;
        let prep = tracked
            .region
            .make_private(policy, page.pages())
            .map_err(|e| Refused::Accounting(page.pfn, e))?;
        if prep.split_4k {
            let marked = self.k.kept_4k(page.pfn);
            c.cpa_calls += 1;
            self.k.set_4k(page.pfn);
            if !marked {
                c.tlb_flushes += 1;
            }
            self.count_change(cell, before, Level::Size4K);
        } else if prep.protect && prep.flush_now {
            c.cpa_calls += 1;
            self.k.protect(page.pfn, page.huge);
            c.tlb_flushes += 1;
            c.unmapped += u64::from(page.pages());
            self.count_change(cell, before, changed_leaf(before, page));
        } else if prep.protect {
            self.lists.pending.push((page, before));
        }
        Ok(())
    }

    fn count_change(&mut self, cell: usize, before: Level, after: Level) {
        self.m.counters.count(Transitions::between(before, after));
        if let Some(t) = self.m.regions[cell].as_mut() {
            t.leaf = after;
        }
    }

    /// `Batch::flush()`: protects what was queued, with one flush.
    pub(crate) fn flush(&mut self) {
        let l = &mut self.lists;
        if l.pending.is_empty() {
            return;
        }
        self.m.counters.cpa_calls += 1;
        for (page, _) in &l.pending {
            self.k.protect(page.pfn, page.huge);
            self.m.counters.unmapped += u64::from(page.pages());
        }
        self.m.counters.tlb_flushes += 1;
        l.pending.sort_unstable_by_key(|(page, _)| page.pfn);
        l.changed.clear();
        l.changed.extend(l.pending.drain(..).map(|(p, before)| {
            (
                Level::Size2M.region_start(p.pfn),
                before,
                changed_leaf(before, p),
            )
        }));
        count_regions(self.m, &l.changed);
    }

    /// `Batch::make_shared()`: the page is back with the host.
    ///
    /// # Errors
    ///
    /// What the module would refuse (`EINVAL`).
    pub(crate) fn make_shared(&mut self, page: Page) -> Result<(), Refused> {
        let policy = self.m.policy;
        let head = Level::Size2M.region_start(page.pfn);
        let cell = (page.pfn / 512) as usize;
        let c = &mut self.m.counters;
        let tracked = self.m.regions[cell]
            .as_mut()
            .ok_or(Refused::Unmapped(page.pfn))?;
        let rel = tracked
            .region
            .make_shared(policy, page.pages())
            .map_err(|e| Refused::Accounting(page.pfn, e))?;
        let leaf = if rel.split_4k || rel.restore {
            leaf_now(self.k, c, tracked, head)
        } else {
            None
        };
        if rel.split_4k && leaf.is_some_and(|l| l > Level::Size4K) {
            c.cpa_calls += 1;
            self.k.set_4k(page.pfn);
            c.tlb_flushes += 1;
            if let Some(was) = leaf {
                c.count(Transitions::between(was, Level::Size4K));
                tracked.leaf = Level::Size4K;
            }
        }
        if rel.restore {
            // `make_shared_later()`: restored with its neighbours at the batch's end.
            if !page.huge && leaf == Some(Level::Size4K) {
                self.lists.restores.push(page.pfn);
            } else {
                c.cpa_calls += 1;
            }
            self.k.restore(page.pfn, page.huge);
            c.unmapped -= u64::from(page.pages());
            if let Some(was) = leaf {
                let now = changed_leaf(was, page);
                c.count(Transitions::between(was, now));
                tracked.leaf = now;
            }
        }
        let at_origin = tracked.leaf >= tracked.region.origin();
        if rel.merge && !(at_origin && block_held(self.m, head)) {
            self.lists.merge.push(head);
        } else {
            forget_if_settled(self.m, self.k, head, None);
        }
        Ok(())
    }

    /// `Batch::merge()`: merges what the batch emptied, with no flush of its own.
    fn merge(&mut self) {
        let l = &mut self.lists;
        if l.merge.is_empty() {
            return;
        }
        l.merge.sort_unstable();
        self.m.counters.cpa_calls += 1;
        let made = self.k.collapse(&l.merge);
        if made == 0 {
            for head in l.merge.drain(..) {
                forget_if_settled(self.m, self.k, head, None);
            }
            return;
        }
        l.changed.clear();
        // One walk per 1G block for its 2M leaves, as the module does.
        let mut block: Option<(u64, Level)> = None;
        for head in l.merge.drain(..) {
            let cell = (head / 512) as usize;
            let was = self.m.regions[cell].map_or(Level::Size4K, |t| t.leaf);
            let here = Level::Size1G.region_start(head);
            let now = match block.filter(|&(b, _)| b == here) {
                Some((_, Level::Size1G)) => Some(Level::Size1G),
                Some(_) if was >= Level::Size2M => Some(was),
                _ => walk(self.k, &mut self.m.counters, head)
                    .inspect(|&now| block = Some((here, now))),
            };
            if let Some(now) = now {
                l.changed.push((head, was, now));
            }
        }
        count_regions(self.m, &l.changed);
        for &(head, _, now) in &l.changed {
            forget_if_settled(self.m, self.k, head, Some(now));
        }
    }
}

impl Batch<'_> {
    /// `Batch::restore_pending()`: one kernel call per run of neighbouring pages.
    fn restore_pending(&mut self) {
        let r = &mut self.lists.restores;
        r.sort_unstable();
        let runs = r
            .iter()
            .zip(r.iter().skip(1))
            .filter(|(a, b)| **b != **a + 1)
            .count();
        if !r.is_empty() {
            self.m.counters.cpa_calls += runs as u64 + 1;
        }
        r.clear();
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.flush();
        self.restore_pending();
        self.merge();
        self.m.spare = std::mem::take(&mut self.lists);
    }
}

/// `count_regions()`: each region's change once, a 1G block's once for all its
/// regions; remembers each region's leaf.
fn count_regions(m: &mut Module, changed: &[(u64, Level, Level)]) {
    let (mut last_2m, mut last_1g) = (None, None);
    let c = &mut m.counters;
    for &(head, before, after) in changed {
        if last_2m == Some(head) {
            continue;
        }
        last_2m = Some(head);
        if let Some(t) = m.regions[(head / 512) as usize].as_mut() {
            t.leaf = after;
        }
        let mut t = Transitions::between(before, after);
        let block = Level::Size1G.region_start(head);
        if last_1g == Some(block) {
            t.splits_1g = 0;
            t.merges_1g = 0;
        }
        last_1g = Some(block);
        c.count(t);
    }
}

/// `block_held()`: another region of `head`'s 1G block holds guest pages.
fn block_held(m: &Module, head: u64) -> bool {
    let first = (Level::Size1G.region_start(head) / 512) as usize;
    let cells = (Level::Size1G.pages() / 512) as usize;
    let me = (head / 512) as usize;
    m.regions
        .iter()
        .enumerate()
        .skip(first)
        .take(cells)
        .any(|(cell, r)| cell != me && r.is_some_and(|t| !t.region.idle()))
}

/// `forget_if_settled()`: an idle region mapped at least as large as at first is forgotten.
fn forget_if_settled(m: &mut Module, k: &Kernel, head: u64, now: Option<Level>) {
    let cell = (head / 512) as usize;
    let Some(t) = m.regions[cell] else {
        return;
    };
    if !t.region.idle() || t.leaf < t.region.origin() {
        return;
    }
    let now = now.or_else(|| leaf_now(k, &mut m.counters, &t, head));
    if now.is_some_and(|now| now >= t.region.origin()) {
        m.regions[cell] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 18;

    /// Makes `pages` private in one batch and shared again in another.
    fn round_trip(m: &mut Module, k: &mut Kernel, pages: &[Page]) {
        {
            let mut b = m.batch(k);
            for &p in pages {
                b.make_private(p).unwrap();
            }
            b.flush();
        }
        let mut b = m.batch(k);
        for &p in pages {
            b.make_shared(p).unwrap();
        }
    }

    fn four_k(pfn: u64) -> Page {
        Page { pfn, huge: false }
    }

    #[test]
    fn coalesce_leaves_the_map_as_it_found_it() {
        let mut k = Kernel::host(4);
        let start = k.meminfo;
        let mut m = Module::new(Policy::Coalesce, k.cells());
        let pages = [
            four_k(GIB + 3),
            four_k(GIB + 4),
            four_k(GIB + 700),
            Page {
                pfn: 2 * GIB,
                huge: true,
            },
        ];
        round_trip(&mut m, &mut k, &pages);
        assert_eq!(k.meminfo, start);
        let c = m.counters;
        // Two regions of the second GiB split (and that GiB once), the third GiB
        // split to 2M for the 2M page; all of it merged back.
        assert_eq!(
            (c.splits_2m, c.splits_1g, c.merges_2m, c.merges_1g),
            (2, 2, 2, 2)
        );
        assert_eq!(k.vmstat.level2_splits, c.splits_2m);
        assert_eq!(k.vmstat.level3_collapses, c.merges_1g);
        // One flush to protect; the merge leaves its flush to the kernel's lazy one.
        assert_eq!(c.tlb_flushes, 1);
        assert_eq!(c.unmapped, 0);
        assert_eq!(m.listed(), 0, "nothing left to remember");
    }

    #[test]
    fn split_and_perpage_keep_what_they_split() {
        for (policy, flushes, listed) in [(Policy::Split, 3, 2), (Policy::PerPage, 4, 3)] {
            let mut k = Kernel::host(4);
            let start = k.meminfo;
            let mut m = Module::new(policy, k.cells());
            let pages = [
                four_k(GIB + 3),
                four_k(GIB + 4),
                four_k(GIB + 700),
                Page {
                    pfn: 2 * GIB,
                    huge: true,
                },
            ];
            round_trip(&mut m, &mut k, &pages);
            let c = m.counters;
            // Linux splits nothing for a 2M page; the RFC protects it in place (a 1G split).
            let gig = if policy == Policy::Split { 1 } else { 2 };
            assert_eq!(
                (c.splits_2m, c.splits_1g, c.merges_2m, c.merges_1g),
                (2, gig, 0, 0),
                "{policy:?}"
            );
            assert_eq!(k.meminfo.kb_4k, start.kb_4k + 2 * 2048);
            // split: one flush per set_memory_4k() that marked a PTE; perpage: one per page.
            assert_eq!(c.tlb_flushes, flushes, "{policy:?}");
            // The split regions stay listed, and under perpage the 2M page's, whose
            // GiB stays split.
            assert_eq!(m.listed(), listed, "{policy:?}");
            // A second lifetime on the same pages splits nothing new.
            round_trip(&mut m, &mut k, &pages);
            assert_eq!(m.counters.splits_2m, 2);
        }
    }

    #[test]
    fn refuses_what_the_module_refuses() {
        let mut k = Kernel::host(2);
        let mut m = Module::new(Policy::Coalesce, k.cells());
        let mut b = m.batch(&mut k);
        assert_eq!(b.make_shared(four_k(GIB)), Err(Refused::Unmapped(GIB)));
        b.make_private(four_k(GIB)).unwrap();
        assert!(matches!(
            b.make_private(Page {
                pfn: GIB,
                huge: true
            }),
            Err(Refused::Accounting(_, plan::Error::Overflow))
        ));
        assert_eq!(
            b.make_private(four_k(3 * GIB)),
            Err(Refused::Unmapped(3 * GIB))
        );
    }
}
