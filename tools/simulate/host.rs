// SPDX-License-Identifier: GPL-2.0

//! A large SNP host over many guest lifetimes: guests arrive while they fit,
//! and a random one leaves when the next does not.
//!
//! - The host: `gib` GiB of RAM mapped as the kernel maps it
//!   ([`Kernel::host`]); the first GiB is the host's own, the rest is the
//!   buddy allocator's ([`Buddy`]).
//! - A guest of 2, 4, 8, 16, 32 or 64 GiB (the sizes of cloud instances, each
//!   as likely) gets its memory as 2M blocks where the allocator
//!   has them (huge guest_memfd folios), 4K pages where it does not, and the
//!   host allocates 0.2% of its size as 4K pages of its own for it (page
//!   tables, metadata), which fragment what the guests get next.
//! - Lazy acceptance makes its private memory 4K at first: on arrival, runs
//!   of 4K pages in a part of its 2M blocks; once the next guest has arrived,
//!   the guest accepts more, as whole 2M pages, in a part of the blocks it
//!   has not touched. When it leaves, everything goes back to shared and its
//!   memory back to the allocator.
//! - Each run of pages is one range conversion: batches of
//!   [`BATCH_PAGES`] base pages, as `SNP_HOST_CONVERT_RANGE` takes them.
//!
//! Every policy sees the same guests on the same page frames: the allocator
//! does not depend on the direct map, and each guest draws its placement
//! from its own seed.

use crate::buddy::Buddy;
use crate::churn;
use crate::kernel::{Kernel, MemInfo, VmStat};
use crate::module::{Counters, Module, Page, Refused};
use crate::rng::SplitMix64;
use snp_host_model::directmap::model::Policy;

/// Base pages per batch of a range conversion (`BATCH_PAGES` in `snp_host/convert.rs`).
pub(crate) const BATCH_PAGES: u64 = 4096;
/// 4K pages per GiB.
const PAGES_PER_1G: u64 = 1 << 18;

/// What to simulate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Params {
    /// Seed of guest sizes and placements.
    pub(crate) seed: u64,
    /// RAM of the host, in GiB (at least 2).
    pub(crate) gib: u64,
    /// Guest lifetimes to end.
    pub(crate) lifetimes: u64,
    /// Smallest and largest guest, in GiB: powers of two, every power between as likely.
    pub(crate) guest_gib: (u64, u64),
    /// Of a guest's 2M blocks: the part with 4K runs on arrival.
    pub(crate) runs_part: f64,
    /// Of the blocks it did not touch then: the part accepted later as 2M pages.
    pub(crate) huge_part: f64,
}

impl Params {
    /// 1 TiB, 1,000 lifetimes, guests of 2-64 GiB.
    pub(crate) const fn tib(seed: u64) -> Self {
        Self {
            seed,
            gib: 1024,
            lifetimes: 1000,
            guest_gib: (2, 64),
            runs_part: 0.6,
            huge_part: 0.5,
        }
    }
}

/// The state after some lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Lifetimes ended so far.
    pub(crate) ended: u64,
    /// Guests running.
    pub(crate) running: u64,
    /// Guest pages private now (4K pages).
    pub(crate) private: u64,
    /// `/proc/meminfo`.
    pub(crate) meminfo: MemInfo,
    /// `/proc/vmstat`.
    pub(crate) vmstat: VmStat,
    /// The module's counters.
    pub(crate) counters: Counters,
    /// Regions the module keeps in its tree.
    pub(crate) listed: u64,
}

/// The whole run under one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The policy.
    pub(crate) policy: Policy,
    /// At the start, then after every lifetime.
    pub(crate) samples: Vec<Sample>,
    /// After the last guests left too.
    pub(crate) drained: Sample,
    /// Before any guest came.
    pub(crate) start: MemInfo,
}

/// A conversion of a guest: a run of 4K pages or one 2M page.
#[derive(Clone, Copy, Debug)]
struct Run {
    pfn: u64,
    count: u64,
    huge: bool,
}

struct Guest {
    blocks: Vec<u64>,
    /// Which of `blocks` got 4K runs on arrival.
    touched: Vec<bool>,
    singles: Vec<u64>,
    host_pages: Vec<u64>,
    private: Vec<Run>,
    accepted: bool,
    rng: SplitMix64,
}

struct Host {
    kernel: Kernel,
    module: Module,
    buddy: Buddy,
    private: u64,
}

impl Host {
    /// Converts `run` in batches, as one range conversion.
    fn convert(&mut self, run: Run, to_private: bool) -> Result<(), Refused> {
        let (step, per_batch) = if run.huge { (512, 1) } else { (1, BATCH_PAGES) };
        let mut done = 0;
        while done < run.count {
            let n = per_batch.min(run.count - done);
            let mut batch = self.module.batch(&mut self.kernel);
            for i in done..done + n {
                let page = Page {
                    pfn: run.pfn + i * step,
                    huge: run.huge,
                };
                if to_private {
                    batch.make_private(page)?;
                } else {
                    batch.make_shared(page)?;
                }
            }
            if to_private {
                batch.flush();
            }
            done += n;
        }
        let pages = run.count * step;
        if to_private {
            self.private += pages;
        } else {
            self.private -= pages;
        }
        Ok(())
    }
}

/// Draws the 4K runs of one 2M block: 1..=4 runs of 1..=16 pages, not overlapping.
fn runs_in_block(rng: &mut SplitMix64, pfn: u64, out: &mut Vec<Run>) {
    let mut taken = [false; 512];
    for _ in 0..1 + rng.below(4) {
        let first = rng.below(512);
        let want = 1 + rng.below(16);
        let mut len = 0;
        while len < want && first + len < 512 && !taken[(first + len) as usize] {
            taken[(first + len) as usize] = true;
            len += 1;
        }
        if len > 0 {
            out.push(Run {
                pfn: pfn + first,
                count: len,
                huge: false,
            });
        }
    }
}

fn arrive(h: &mut Host, p: &Params, id: u64, gib: u64) -> Result<Guest, Refused> {
    let mut g = Guest {
        blocks: Vec::new(),
        touched: Vec::new(),
        singles: Vec::new(),
        host_pages: Vec::new(),
        private: Vec::new(),
        accepted: false,
        rng: SplitMix64::new(churn::seed_of(p.seed, id)),
    };
    let pages = gib * PAGES_PER_1G;
    // 0.2%: one host page per 512 guest pages.
    for _ in 0..pages / 512 {
        if let Some(pfn) = h.buddy.alloc(0) {
            g.host_pages.push(pfn);
        }
    }
    for _ in 0..pages / 512 {
        if let Some(pfn) = h.buddy.alloc(9) {
            g.blocks.push(pfn);
        } else {
            for _ in 0..512 {
                if let Some(pfn) = h.buddy.alloc(0) {
                    g.singles.push(pfn);
                }
            }
        }
    }
    // Lazy acceptance: 4K runs first.
    let mut runs = Vec::new();
    for &pfn in &g.blocks {
        let touch = g.rng.unit() < p.runs_part;
        if touch {
            runs_in_block(&mut g.rng, pfn, &mut runs);
        }
        g.touched.push(touch);
    }
    for &pfn in &g.singles {
        if g.rng.unit() < p.runs_part / 8.0 {
            runs.push(Run {
                pfn,
                count: 1,
                huge: false,
            });
        }
    }
    for run in runs {
        h.convert(run, true)?;
        g.private.push(run);
    }
    Ok(g)
}

/// The rest of a guest's acceptance: 2M pages in blocks it has not touched yet.
fn accept_rest(h: &mut Host, p: &Params, g: &mut Guest) -> Result<(), Refused> {
    g.accepted = true;
    let mut runs = Vec::new();
    for (&pfn, &touched) in g.blocks.iter().zip(&g.touched) {
        if !touched && g.rng.unit() < p.huge_part {
            runs.push(Run {
                pfn,
                count: 1,
                huge: true,
            });
        }
    }
    for run in runs {
        h.convert(run, true)?;
        g.private.push(run);
    }
    Ok(())
}

fn depart(h: &mut Host, g: Guest) -> Result<(), Refused> {
    for &run in &g.private {
        h.convert(run, false)?;
    }
    for &pfn in &g.blocks {
        h.buddy.free(pfn, 9);
    }
    for &pfn in g.singles.iter().chain(&g.host_pages) {
        h.buddy.free(pfn, 0);
    }
    Ok(())
}

fn sample(h: &Host, ended: u64, running: usize) -> Sample {
    Sample {
        ended,
        running: running as u64,
        private: h.private,
        meminfo: h.kernel.meminfo,
        vmstat: h.kernel.vmstat,
        counters: h.module.counters,
        listed: h.module.listed() as u64,
    }
}

/// Runs `p` under `policy`.
///
/// # Errors
///
/// A conversion the module would refuse: a bug in the simulation.
pub(crate) fn run(p: &Params, policy: Policy) -> Result<Outcome, Refused> {
    let kernel = Kernel::host(p.gib);
    let start = kernel.meminfo;
    let mut h = Host {
        module: Module::new(policy, kernel.cells()),
        kernel,
        buddy: Buddy::new(PAGES_PER_1G, (p.gib - 1) * PAGES_PER_1G),
        private: 0,
    };
    let mut rng = SplitMix64::new(p.seed);
    let mut guests: Vec<Guest> = Vec::new();
    let mut samples = vec![sample(&h, 0, 0)];
    let (mut ended, mut next_id) = (0, 1);
    let (lo, hi) = p.guest_gib;
    let sizes = u64::from((hi / lo).max(1).ilog2()) + 1;
    let draw = |rng: &mut SplitMix64| lo << rng.below(sizes);
    let mut size = draw(&mut rng);
    while ended < p.lifetimes {
        // The guest's memory and the host's 0.2% for it, with 1% of the host to spare.
        let need = size * PAGES_PER_1G * 1002 / 1000 + p.gib * PAGES_PER_1G / 100;
        if h.buddy.free_pages() >= need {
            for g in guests.iter_mut().filter(|g| !g.accepted) {
                accept_rest(&mut h, p, g)?;
            }
            guests.push(arrive(&mut h, p, next_id, size)?);
            next_id += 1;
            size = draw(&mut rng);
        } else if guests.is_empty() {
            // A guest larger than the host: draw another.
            size = draw(&mut rng);
        } else {
            let i = rng.below(guests.len() as u64) as usize;
            let g = guests.swap_remove(i);
            depart(&mut h, g)?;
            ended += 1;
            samples.push(sample(&h, ended, guests.len()));
        }
    }
    for g in guests.drain(..) {
        depart(&mut h, g)?;
    }
    let drained = sample(&h, ended, 0);
    Ok(Outcome {
        policy,
        samples,
        drained,
        start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Params {
        Params {
            seed,
            gib: 8,
            lifetimes: 24,
            guest_gib: (1, 2),
            ..Params::tib(seed)
        }
    }

    #[test]
    fn coalesce_returns_to_the_start_and_the_others_accumulate() {
        let p = small(5);
        let c = run(&p, Policy::Coalesce).unwrap();
        assert_eq!(
            c.drained.meminfo, c.start,
            "coalesce merges everything back"
        );
        assert_eq!(c.drained.private, 0);
        assert_eq!(c.drained.counters.unmapped, 0);
        assert!(
            c.samples.iter().any(|s| s.meminfo.kb_4k > c.start.kb_4k),
            "while guests run, it splits"
        );
        let t = c.drained.counters;
        assert_eq!((t.splits_2m, t.splits_1g), (t.merges_2m, t.merges_1g));
        for policy in [Policy::Split, Policy::PerPage] {
            let o = run(&p, policy).unwrap();
            assert_eq!(o.samples.len() as u64, p.lifetimes + 1);
            assert!(
                o.drained.meminfo.kb_4k > c.start.kb_4k * 10,
                "{policy:?} keeps its splits"
            );
            // DirectMap4k never shrinks without merges.
            assert!(o
                .samples
                .windows(2)
                .all(|w| w[0].meminfo.kb_4k <= w[1].meminfo.kb_4k));
            assert_eq!(o.drained.counters.merges_2m, 0);
            let total = |m: MemInfo| m.kb_4k + m.kb_2m + m.kb_1g;
            assert_eq!(total(o.drained.meminfo), total(o.start));
        }
    }

    #[test]
    fn the_module_counts_what_the_kernel_did() {
        for policy in [Policy::Split, Policy::PerPage, Policy::Coalesce] {
            let o = run(&small(11), policy).unwrap();
            for s in o.samples.iter().chain([&o.drained]) {
                let (v, c) = (s.vmstat, s.counters);
                assert_eq!(
                    (
                        v.level2_splits,
                        v.level3_splits,
                        v.level2_collapses,
                        v.level3_collapses
                    ),
                    (c.splits_2m, c.splits_1g, c.merges_2m, c.merges_1g),
                    "{policy:?} after {} lifetimes",
                    s.ended
                );
            }
        }
    }

    #[test]
    fn every_policy_sees_the_same_guests() {
        let p = small(9);
        let a = run(&p, Policy::Split).unwrap();
        let b = run(&p, Policy::Coalesce).unwrap();
        let shape = |o: &Outcome| {
            o.samples
                .iter()
                .map(|s| (s.running, s.private))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&a), shape(&b));
        assert_eq!(
            a,
            run(&p, Policy::Split).unwrap(),
            "and the same seed the same run"
        );
    }
}
