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

/// The module's view of the direct map under one policy.
#[derive(Clone, Debug)]
pub(crate) struct Module {
    policy: Policy,
    /// Every 2M region holding or having held a guest page, by cell.
    regions: Vec<Option<Region>>,
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
    merge: Vec<u64>,
    changed: Vec<(u64, Level)>,
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
        let before = self
            .k
            .level_of(page.pfn)
            .ok_or(Refused::Unmapped(page.pfn))?;
        let region = self.m.regions[cell].get_or_insert(Region::new(before));
        let prep = region
            .make_private(policy, page.pages())
            .map_err(|e| Refused::Accounting(page.pfn, e))?;
        if prep.split_4k {
            let marked = self.k.kept_4k(page.pfn);
            self.k.set_4k(page.pfn);
            if !marked {
                self.m.counters.tlb_flushes += 1;
            }
            self.count_change(page, before);
        } else if prep.protect && prep.flush_now {
            self.k.protect(page.pfn, page.huge);
            self.m.counters.tlb_flushes += 1;
            self.m.counters.unmapped += u64::from(page.pages());
            self.count_change(page, before);
        } else if prep.protect {
            self.lists.pending.push((page, before));
        }
        Ok(())
    }

    fn count_change(&mut self, page: Page, before: Level) {
        if let Some(after) = self.k.level_of(page.pfn) {
            self.m.counters.count(Transitions::between(before, after));
        }
    }

    /// `Batch::flush()`: protects what was queued, with one flush.
    pub(crate) fn flush(&mut self) {
        let l = &mut self.lists;
        if l.pending.is_empty() {
            return;
        }
        for (page, _) in &l.pending {
            self.k.protect(page.pfn, page.huge);
            self.m.counters.unmapped += u64::from(page.pages());
        }
        self.m.counters.tlb_flushes += 1;
        l.pending.sort_unstable_by_key(|(page, _)| page.pfn);
        l.changed.clear();
        l.changed.extend(
            l.pending
                .drain(..)
                .map(|(p, before)| (Level::Size2M.region_start(p.pfn), before)),
        );
        count_regions(self.k, &mut self.m.counters, &l.changed);
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
        let region = self.m.regions[cell]
            .as_mut()
            .ok_or(Refused::Unmapped(page.pfn))?;
        let rel = region
            .make_shared(policy, page.pages())
            .map_err(|e| Refused::Accounting(page.pfn, e))?;
        if rel.split_4k && self.k.level_of(page.pfn).is_some_and(|l| l > Level::Size4K) {
            let before = self.k.level_of(page.pfn);
            self.k.set_4k(page.pfn);
            self.m.counters.tlb_flushes += 1;
            if let (Some(was), Some(now)) = (before, self.k.level_of(page.pfn)) {
                self.m.counters.count(Transitions::between(was, now));
            }
        }
        if rel.restore {
            let before = self.k.level_of(page.pfn);
            self.k.restore(page.pfn, page.huge);
            self.m.counters.unmapped -= u64::from(page.pages());
            if let (Some(was), Some(now)) = (before, self.k.level_of(page.pfn)) {
                self.m.counters.count(Transitions::between(was, now));
            }
        }
        if rel.merge {
            self.lists.merge.push(head);
        } else {
            forget_if_settled(self.m, self.k, head);
        }
        Ok(())
    }

    /// `Batch::merge()`: merges what the batch emptied, with one flush if anything changed.
    fn merge(&mut self) {
        let l = &mut self.lists;
        if l.merge.is_empty() {
            return;
        }
        l.changed.clear();
        l.changed.extend(
            l.merge
                .iter()
                .map(|&head| (head, self.k.level_of(head).unwrap_or(Level::Size4K))),
        );
        if self.k.collapse(&l.merge) > 0 {
            self.m.counters.tlb_flushes += 1;
        }
        l.changed.sort_unstable_by_key(|&(head, _)| head);
        count_regions(self.k, &mut self.m.counters, &l.changed);
        for head in l.merge.drain(..) {
            forget_if_settled(self.m, self.k, head);
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.flush();
        self.merge();
        self.m.spare = std::mem::take(&mut self.lists);
    }
}

/// `count_regions()`: each region's change once, a 1G block's once for all its regions.
fn count_regions(k: &Kernel, c: &mut Counters, changed: &[(u64, Level)]) {
    let (mut last_2m, mut last_1g) = (None, None);
    for &(head, before) in changed {
        if last_2m == Some(head) {
            continue;
        }
        last_2m = Some(head);
        let Some(after) = k.level_of(head) else {
            continue;
        };
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

/// `forget_if_settled()`: an idle region mapped at least as large as at first is forgotten.
fn forget_if_settled(m: &mut Module, k: &Kernel, head: u64) {
    let cell = (head / 512) as usize;
    let settled = m.regions[cell]
        .as_ref()
        .is_some_and(|r| r.idle() && k.level_of(head).is_some_and(|now| now >= r.origin()));
    if settled {
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
        // One flush to protect, one to merge.
        assert_eq!(c.tlb_flushes, 2);
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
