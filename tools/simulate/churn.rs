// SPDX-License-Identifier: GPL-2.0

//! The churn workload's placement, as `churn_plan()` in `vm/bench.c` draws it.
//!
//! Both sides draw the same conversions from the same seed; the VM prints a
//! hash of what it drew ([`hash`]), so a replay knows it replays the same
//! placement and not merely a similar one.

use crate::rng::SplitMix64;

/// 4K pages per 2M region.
pub(crate) const PAGES_PER_2M: u64 = 512;
/// One region in this many becomes a 2M private page (`CHURN_HUGE_EVERY`).
pub(crate) const HUGE_EVERY: u64 = 16;
/// One region in this many holds the 4K runs (`CHURN_4K_EVERY`).
pub(crate) const RUNS_EVERY: u64 = 4;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The parameters of a churn run, as its `churn` line gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    /// The workload's seed (`-s`).
    pub(crate) seed: u64,
    /// 4K pages in the pool.
    pub(crate) pages: u64,
    /// Percent of the pool's pages made private in a lifetime (`-f`).
    pub(crate) percent: u64,
    /// 4K runs are 1..=`max_run` pages (`-r`).
    pub(crate) max_run: u64,
}

/// One conversion: `count` pages of `level` (0: 4K, 1: 2M) from pool page `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    /// The first 4K page of the pool it converts.
    pub(crate) first: u64,
    /// Pages of the level.
    pub(crate) count: u64,
    /// 0 for 4K pages, 1 for 2M pages.
    pub(crate) level: u8,
}

#[cfg(test)]
impl Op {
    /// Returns the 4K pages it covers.
    pub(crate) fn base_pages(&self) -> u64 {
        if self.level == 1 {
            self.count * PAGES_PER_2M
        } else {
            self.count
        }
    }
}

/// Why a placement cannot be drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlanError {
    /// The 4K runs cannot reach the target (the C side stops with "lower -f").
    TooDense,
}

/// Returns the generator state lifetime `lifetime` starts from (`churn_seed()`).
pub(crate) fn seed_of(seed: u64, lifetime: u64) -> u64 {
    seed.wrapping_mul(FNV_PRIME).wrapping_add(lifetime)
}

/// Draws the conversions of lifetime `lifetime`, in the order the VM makes them.
///
/// # Errors
///
/// [`PlanError::TooDense`] where the C side stops too.
pub(crate) fn plan(p: &Params, lifetime: u64) -> Result<Vec<Op>, PlanError> {
    let regions = p.pages / PAGES_PER_2M;
    let (nhuge, n4k) = (regions / HUGE_EVERY, regions / RUNS_EVERY);
    let target = p.pages * p.percent / 100;
    let mut rng = SplitMix64::new(seed_of(p.seed, lifetime));
    let mut order: Vec<u64> = (0..regions).collect();
    for i in 0..(nhuge + n4k).min(regions) {
        let j = i + rng.below(regions - i);
        // CAST: indices of a pool that fits in memory.
        order.swap(i as usize, j as usize);
    }
    let mut ops = Vec::new();
    let mut have = 0;
    for &r in order.iter().take(nhuge as usize) {
        ops.push(Op {
            first: r * PAGES_PER_2M,
            count: 1,
            level: 1,
        });
        have += PAGES_PER_2M;
    }
    let mut taken = vec![false; p.pages as usize];
    let mut tries = 0u64;
    while n4k > 0 && have < target {
        tries += 1;
        if tries > 100 * target {
            return Err(PlanError::TooDense);
        }
        let r = order[(nhuge + rng.below(n4k)) as usize];
        let first = r * PAGES_PER_2M + rng.below(PAGES_PER_2M);
        let want = (1 + rng.below(p.max_run)).min(target - have);
        let mut len = 0;
        while len < want && (first + len) / PAGES_PER_2M == r && !taken[(first + len) as usize] {
            taken[(first + len) as usize] = true;
            len += 1;
        }
        if len == 0 {
            continue;
        }
        ops.push(Op {
            first,
            count: len,
            level: 0,
        });
        have += len;
    }
    Ok(ops)
}

/// Returns the FNV-1a hash of `ops` the VM prints in its `churnplan` line.
pub(crate) fn hash(ops: &[Op]) -> u64 {
    let mut h = FNV_OFFSET;
    for op in ops {
        for v in [op.first, op.count, u64::from(op.level)] {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(FNV_PRIME);
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gib_pool(seed: u64) -> Params {
        Params {
            seed,
            pages: 262_144,
            percent: 25,
            max_run: 32,
        }
    }

    #[test]
    fn draws_what_the_vm_drew() {
        // Lifetimes 1 and 2 of seed 1 as a VM run printed them (churnplan L1, L2).
        let ops = plan(&gib_pool(1), 1).unwrap();
        assert_eq!(ops.iter().filter(|o| o.level == 0).count(), 4528);
        assert_eq!(hash(&ops), 0x1480_a962_b1c3_9c66);
        assert_eq!(hash(&plan(&gib_pool(1), 2).unwrap()), 0x38b1_4a91_cc9e_9a52);
    }

    #[test]
    fn placement_is_a_quarter_in_disjoint_pieces() {
        let p = gib_pool(7);
        let ops = plan(&p, 3).unwrap();
        let mut seen = vec![false; p.pages as usize];
        let mut regions_4k = std::collections::BTreeSet::new();
        for op in &ops {
            let (from, to) = (op.first, op.first + op.base_pages());
            if op.level == 0 {
                assert!(op.count >= 1 && op.count <= p.max_run);
                assert_eq!(
                    from / PAGES_PER_2M,
                    (to - 1) / PAGES_PER_2M,
                    "a run stays in its region"
                );
                regions_4k.insert(from / PAGES_PER_2M);
            } else {
                assert_eq!(from % PAGES_PER_2M, 0);
            }
            for i in from..to {
                assert!(!seen[i as usize], "page {i} converted twice");
                seen[i as usize] = true;
            }
        }
        assert_eq!(seen.iter().filter(|&&s| s).count() as u64, p.pages / 4);
        assert!(regions_4k.len() as u64 <= p.pages / PAGES_PER_2M / RUNS_EVERY);
        assert_ne!(
            hash(&ops),
            hash(&plan(&p, 4).unwrap()),
            "each lifetime draws afresh"
        );
        assert_eq!(ops, plan(&p, 3).unwrap(), "and the same lifetime the same");
    }

    #[test]
    fn too_dense_is_refused() {
        let mut p = gib_pool(1);
        p.pages = 64 * 256;
        p.percent = 40;
        assert_eq!(plan(&p, 1), Err(PlanError::TooDense));
    }
}
