// SPDX-License-Identifier: GPL-2.0

//! The churn workload of `make bench` replayed: the VM's run, page by page.
//!
//! A churn log (`vm/bench.c -C`) says where the direct map stood before the
//! first lifetime (`ptmap L0`, `meminfo L0`), where each lifetime's pool lay
//! (`churnpool`, PFNs from pagemap) and which placement it drew (`churnplan`,
//! a hash). The replay draws the same placement from the seed ([`churn::plan`]),
//! checks its hash, and runs its conversions through the module's planning
//! code on the simulated kernel, starting from the same direct map; then it
//! compares, lifetime by lifetime, the splits and merges the kernel
//! (`/proc/vmstat`) and the module counted in the VM with the simulation's.

use crate::churn::{self, Op, PAGES_PER_2M};
use crate::host::BATCH_PAGES;
use crate::kernel::{Kernel, MemInfo, VmStat};
use crate::module::{Counters, Module, Page};
use snp_host_model::directmap::model::Policy;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a churn log says.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    /// `directmap=` of the run.
    pub(crate) policy: String,
    /// The workload's parameters.
    pub(crate) params: Option<churn::Params>,
    /// Lifetimes planned.
    pub(crate) lifetimes: u64,
    /// The page-table dump's classes of the 2M cells before the first lifetime.
    pub(crate) classes: Vec<u8>,
    /// `/proc/meminfo` by snapshot label.
    pub(crate) meminfo: BTreeMap<String, MemInfo>,
    /// `/proc/vmstat` by snapshot label.
    pub(crate) vmstat: BTreeMap<String, VmStat>,
    /// The module's counters by snapshot label.
    pub(crate) stats: BTreeMap<String, Counters>,
    /// Per lifetime: (first region, regions, first PFN) runs of the pool.
    pub(crate) pools: BTreeMap<u64, Vec<(u64, u64, u64)>>,
    /// Per lifetime: the placement's hash.
    pub(crate) hashes: BTreeMap<u64, u64>,
}

fn fields(rest: &str) -> BTreeMap<&str, &str> {
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn get(f: &BTreeMap<&str, &str>, k: &str) -> u64 {
    f.get(k).and_then(|v| num(v)).unwrap_or(0)
}

fn lifetime_of(label: &str) -> Option<u64> {
    label.strip_prefix('L').and_then(num)
}

impl Log {
    /// Reads the lines of one churn run.
    ///
    /// # Errors
    ///
    /// A line of a known kind that does not parse, or no `churn` line.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut log = Self::default();
        let mut ptmap = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad = || format!("line {}: cannot read {line:?}", n + 1);
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (label, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            match word {
                "churn" => {
                    let f = fields(rest);
                    log.policy = f.get("policy").copied().unwrap_or("?").to_string();
                    log.lifetimes = get(&f, "lifetimes");
                    log.params = Some(churn::Params {
                        seed: get(&f, "seed"),
                        pages: get(&f, "pages"),
                        percent: get(&f, "percent"),
                        max_run: get(&f, "max_run"),
                    });
                    if get(&f, "huge_every") != churn::HUGE_EVERY
                        || get(&f, "runs_every") != churn::RUNS_EVERY
                    {
                        return Err(format!(
                            "line {}: a placement this replay does not draw",
                            n + 1
                        ));
                    }
                }
                "meminfo" => {
                    let f = fields(tail);
                    log.meminfo.insert(
                        label.to_string(),
                        MemInfo {
                            kb_4k: get(&f, "DirectMap4k"),
                            kb_2m: get(&f, "DirectMap2M"),
                            kb_1g: get(&f, "DirectMap1G"),
                        },
                    );
                }
                "vmstat" => {
                    let f = fields(tail);
                    log.vmstat.insert(
                        label.to_string(),
                        VmStat {
                            level2_splits: get(&f, "direct_map_level2_splits"),
                            level3_splits: get(&f, "direct_map_level3_splits"),
                            level2_collapses: get(&f, "direct_map_level2_collapses"),
                            level3_collapses: get(&f, "direct_map_level3_collapses"),
                        },
                    );
                }
                "stats" => {
                    let f = fields(tail);
                    log.stats.insert(
                        label.to_string(),
                        Counters {
                            splits_2m: get(&f, "dm_splits_2m"),
                            splits_1g: get(&f, "dm_splits_1g"),
                            merges_2m: get(&f, "dm_merges_2m"),
                            merges_1g: get(&f, "dm_merges_1g"),
                            unmapped: get(&f, "dm_unmapped_pages"),
                            tlb_flushes: get(&f, "tlb_flushes"),
                        },
                    );
                }
                "ptmap" if label == "L0" => {
                    let v: Vec<&str> = tail.split_whitespace().collect();
                    let [first, count, class] = v[..] else {
                        return Err(bad());
                    };
                    let (Some(first), Some(count), [class]) =
                        (num(first), num(count), class.as_bytes())
                    else {
                        return Err(bad());
                    };
                    ptmap.push((first, count, *class));
                }
                "churnpool" => {
                    let v: Vec<Option<u64>> = tail.split_whitespace().map(num).collect();
                    let (Some(lt), [Some(first), Some(count), Some(pfn)]) =
                        (lifetime_of(label), &v[..])
                    else {
                        return Err(bad());
                    };
                    log.pools
                        .entry(lt)
                        .or_default()
                        .push((*first, *count, *pfn));
                }
                "churnplan" => {
                    let f = fields(tail);
                    let (Some(lt), Some(h)) =
                        (lifetime_of(label), f.get("hash").and_then(|v| num(v)))
                    else {
                        return Err(bad());
                    };
                    log.hashes.insert(lt, h);
                }
                _ => {}
            }
        }
        if log.params.is_none() {
            return Err("no churn line: not a log of vm/bench.c -C".to_string());
        }
        ptmap.sort_unstable();
        for (first, count, class) in ptmap {
            // CAST: cells of a VM's memory.
            log.classes.resize(first as usize, b'N');
            log.classes
                .extend(std::iter::repeat_n(class, count as usize));
        }
        Ok(log)
    }
}

/// The replay of one lifetime against what the VM counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lifetime {
    /// Its number.
    pub(crate) lifetime: u64,
    /// The placement drawn here has the VM's hash.
    pub(crate) plan_matches: bool,
    /// The VM's vmstat change over the lifetime.
    pub(crate) vm_vmstat: VmStat,
    /// The simulation's.
    pub(crate) sim_vmstat: VmStat,
    /// The VM module's counters' change.
    pub(crate) vm_module: Counters,
    /// The simulation's.
    pub(crate) sim_module: Counters,
    /// `/proc/meminfo` in the VM after the lifetime.
    pub(crate) vm_meminfo: MemInfo,
    /// The simulation's.
    pub(crate) sim_meminfo: MemInfo,
}

impl Lifetime {
    /// Returns whether the splits and merges agree: the kernel's and the module's.
    pub(crate) fn counts_agree(&self) -> bool {
        let (v, s) = (self.vm_module, self.sim_module);
        self.plan_matches
            && self.vm_vmstat == self.sim_vmstat
            && (v.splits_2m, v.splits_1g, v.merges_2m, v.merges_1g)
                == (s.splits_2m, s.splits_1g, s.merges_2m, s.merges_1g)
    }
}

fn vm_delta(a: VmStat, b: VmStat) -> VmStat {
    VmStat {
        level2_splits: b.level2_splits.wrapping_sub(a.level2_splits),
        level3_splits: b.level3_splits.wrapping_sub(a.level3_splits),
        level2_collapses: b.level2_collapses.wrapping_sub(a.level2_collapses),
        level3_collapses: b.level3_collapses.wrapping_sub(a.level3_collapses),
    }
}

fn module_delta(a: Counters, b: Counters) -> Counters {
    Counters {
        splits_2m: b.splits_2m.wrapping_sub(a.splits_2m),
        splits_1g: b.splits_1g.wrapping_sub(a.splits_1g),
        merges_2m: b.merges_2m.wrapping_sub(a.merges_2m),
        merges_1g: b.merges_1g.wrapping_sub(a.merges_1g),
        unmapped: b.unmapped,
        tlb_flushes: b.tlb_flushes.wrapping_sub(a.tlb_flushes),
    }
}

/// Parses `directmap=` names.
pub(crate) fn policy_of(name: &str) -> Option<Policy> {
    match name {
        "split" => Some(Policy::Split),
        "perpage" | "unmap" => Some(Policy::PerPage),
        "coalesce" => Some(Policy::Coalesce),
        _ => None,
    }
}

/// Runs the conversions of `ops` on the pool at `region_pfn`, one range call each.
fn convert(
    module: &mut Module,
    kernel: &mut Kernel,
    ops: &[Op],
    region_pfn: &[u64],
    to_private: bool,
) -> Result<(), String> {
    for op in ops {
        let huge = op.level == 1;
        let (step, per_batch) = if huge {
            (PAGES_PER_2M, BATCH_PAGES / PAGES_PER_2M)
        } else {
            (1, BATCH_PAGES)
        };
        let mut done = 0;
        while done < op.count {
            let n = per_batch.min(op.count - done);
            let mut batch = module.batch(kernel);
            for i in done..done + n {
                let page = op.first + i * step;
                let region = region_pfn
                    .get((page / PAGES_PER_2M) as usize)
                    .copied()
                    .ok_or_else(|| format!("pool page {page} outside the pool the log gives"))?;
                let page = Page {
                    pfn: region + page % PAGES_PER_2M,
                    huge,
                };
                let r = if to_private {
                    batch.make_private(page)
                } else {
                    batch.make_shared(page)
                };
                r.map_err(|e| format!("the module would refuse pfn {:#x}: {e:?}", page.pfn))?;
            }
            if to_private {
                batch.flush();
            }
            done += n;
        }
    }
    Ok(())
}

/// Replays `log`, one lifetime after the other.
///
/// # Errors
///
/// A log that lacks a piece the replay needs, or a placement the module would refuse.
pub(crate) fn replay(log: &Log) -> Result<Vec<Lifetime>, String> {
    let policy =
        policy_of(&log.policy).ok_or_else(|| format!("unknown policy {:?}", log.policy))?;
    let params = log.params.ok_or("no parameters")?;
    let start = *log.meminfo.get("L0").ok_or("no meminfo L0")?;
    if log.classes.is_empty() {
        return Err("no page-table dump L0 (ptmap L0 lines)".to_string());
    }
    let mut kernel =
        Kernel::from_classes(&log.classes, start).map_err(|e| format!("ptmap L0: {e:?}"))?;
    let mut module = Module::new(policy, kernel.cells());
    let regions = params.pages / PAGES_PER_2M;
    let mut out = Vec::new();
    for lt in 1..=log.lifetimes {
        let (Some(pool), Some(&hash)) = (log.pools.get(&lt), log.hashes.get(&lt)) else {
            break;
        };
        let label = format!("L{lt}");
        let prev = format!("L{}", lt - 1);
        let (Some(&vm_a), Some(&vm_b), Some(&st_a), Some(&st_b), Some(&mi)) = (
            log.vmstat.get(&prev),
            log.vmstat.get(&label),
            log.stats.get(&prev),
            log.stats.get(&label),
            log.meminfo.get(&label),
        ) else {
            break;
        };
        let mut region_pfn = vec![u64::MAX; regions as usize];
        for &(first, count, pfn) in pool {
            for i in 0..count {
                if let Some(r) = region_pfn.get_mut((first + i) as usize) {
                    *r = pfn + i * PAGES_PER_2M;
                }
            }
        }
        if region_pfn.contains(&u64::MAX) {
            return Err(format!(
                "lifetime {lt}: the log does not say where every region of the pool lay"
            ));
        }
        let ops = churn::plan(&params, lt).map_err(|e| format!("lifetime {lt}: {e:?}"))?;
        let (k0, m0) = (kernel.vmstat, module.counters);
        convert(&mut module, &mut kernel, &ops, &region_pfn, true)
            .map_err(|e| format!("lifetime {lt}: {e}"))?;
        convert(&mut module, &mut kernel, &ops, &region_pfn, false)
            .map_err(|e| format!("lifetime {lt}: {e}"))?;
        out.push(Lifetime {
            lifetime: lt,
            plan_matches: churn::hash(&ops) == hash,
            vm_vmstat: vm_delta(vm_a, vm_b),
            sim_vmstat: vm_delta(k0, kernel.vmstat),
            vm_module: module_delta(st_a, st_b),
            sim_module: module_delta(m0, module.counters),
            vm_meminfo: mi,
            sim_meminfo: kernel.meminfo,
        });
    }
    Ok(out)
}

/// Formats the replay of `log` as the lines `scripts/bench-report.py` reads:
/// one `replay` line per lifetime, then one `replaysum` line.
pub(crate) fn report(log: &Log, lifetimes: &[Lifetime]) -> String {
    let mut s = String::new();
    let p = &log.policy;
    for l in lifetimes {
        let (v, m) = (l.vm_vmstat, l.sim_vmstat);
        let (a, b) = (l.vm_module, l.sim_module);
        let _ = writeln!(
            s,
            "replay policy={p} lifetime={} plan={} vm_l2_splits={} sim_l2_splits={} vm_l3_splits={} sim_l3_splits={} \
             vm_l2_merges={} sim_l2_merges={} vm_l3_merges={} sim_l3_merges={} \
             vm_dm_splits_2m={} sim_dm_splits_2m={} vm_dm_splits_1g={} sim_dm_splits_1g={} \
             vm_dm_merges_2m={} sim_dm_merges_2m={} vm_dm_merges_1g={} sim_dm_merges_1g={} \
             vm_flushes={} sim_flushes={} vm_4k={} sim_4k={} vm_2m={} sim_2m={} vm_1g={} sim_1g={} agree={}",
            l.lifetime,
            if l.plan_matches { "match" } else { "differs" },
            v.level2_splits, m.level2_splits, v.level3_splits, m.level3_splits,
            v.level2_collapses, m.level2_collapses, v.level3_collapses, m.level3_collapses,
            a.splits_2m, b.splits_2m, a.splits_1g, b.splits_1g,
            a.merges_2m, b.merges_2m, a.merges_1g, b.merges_1g,
            a.tlb_flushes, b.tlb_flushes,
            l.vm_meminfo.kb_4k, l.sim_meminfo.kb_4k, l.vm_meminfo.kb_2m, l.sim_meminfo.kb_2m,
            l.vm_meminfo.kb_1g, l.sim_meminfo.kb_1g,
            if l.counts_agree() { "yes" } else { "no" },
        );
    }
    let n = lifetimes.len();
    let count = |f: &dyn Fn(&Lifetime) -> bool| lifetimes.iter().filter(|l| f(l)).count();
    let _ = writeln!(
        s,
        "replaysum policy={p} lifetimes={n} planned={} plans_match={} counts_agree={} flushes_agree={} directmap_agree={}",
        log.lifetimes,
        count(&|l| l.plan_matches),
        count(&|l| l.counts_agree()),
        count(&|l| l.vm_module.tlb_flushes == l.sim_module.tlb_flushes),
        count(&|l| l.vm_meminfo == l.sim_meminfo),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A churn log of a 64 MiB pool on a 2 GiB VM whose second GiB is one 1G
    /// leaf, as the simulation itself would have counted it.
    fn synthetic(policy: &str) -> String {
        let params = churn::Params {
            seed: 3,
            pages: 64 * 256,
            percent: 25,
            max_run: 32,
        };
        let mut s = format!(
            "churn version=1 policy={policy} seed=3 pool_mb=64 regions=32 pages={} lifetimes=2 percent=25 max_run=32 huge_every=16 runs_every=4\n",
            params.pages
        );
        s += "ptmap L0 0 1 H\nptmap L0 1 511 M\nptmap L0 512 512 G\n";
        let start = MemInfo {
            kb_4k: 2048,
            kb_2m: (1 << 20) - 2048,
            kb_1g: 1 << 20,
        };
        let mut k =
            Kernel::from_classes(&[&[b'H'][..], &[b'M'; 511], &[b'G'; 512]].concat(), start)
                .unwrap();
        let mut m = Module::new(policy_of(policy).unwrap(), k.cells());
        let snap = |s: &mut String, label: &str, k: &Kernel, m: &Module| {
            let (i, v, c) = (k.meminfo, k.vmstat, m.counters);
            *s += &format!(
                "meminfo {label} DirectMap4k={} DirectMap2M={} DirectMap1G={}\n",
                i.kb_4k, i.kb_2m, i.kb_1g
            );
            *s += &format!(
                "vmstat {label} direct_map_level2_splits={} direct_map_level3_splits={} direct_map_level2_collapses={} direct_map_level3_collapses={}\n",
                v.level2_splits, v.level3_splits, v.level2_collapses, v.level3_collapses
            );
            *s += &format!(
                "stats {label} dm_splits_2m={} dm_splits_1g={} dm_merges_2m={} dm_merges_1g={} dm_unmapped_pages={} tlb_flushes={}\n",
                c.splits_2m, c.splits_1g, c.merges_2m, c.merges_1g, c.unmapped, c.tlb_flushes
            );
        };
        snap(&mut s, "L0", &k, &m);
        for lt in 1..=2u64 {
            // The pool in the 1G leaf, its regions in reverse order, as two runs.
            let base = (1 << 18) + lt * 64 * 512;
            let region_pfn: Vec<u64> = (0..32).map(|r| base + (31 - r) * 512).collect();
            for r in 0..32 {
                s += &format!("churnpool L{lt} {r} 1 {}\n", region_pfn[r as usize]);
            }
            let ops = churn::plan(&params, lt).unwrap();
            s += &format!(
                "churnplan L{lt} huge=2 runs=0 pages4k=0 hash={:#x}\n",
                churn::hash(&ops)
            );
            convert(&mut m, &mut k, &ops, &region_pfn, true).unwrap();
            convert(&mut m, &mut k, &ops, &region_pfn, false).unwrap();
            snap(&mut s, &format!("L{lt}"), &k, &m);
        }
        s
    }

    #[test]
    fn replays_a_run_it_could_have_counted() {
        for policy in ["split", "perpage", "coalesce"] {
            let log = Log::parse(&synthetic(policy)).unwrap();
            assert_eq!(log.classes.len(), 1024);
            let lts = replay(&log).unwrap();
            assert_eq!(lts.len(), 2);
            assert!(
                lts.iter()
                    .all(|l| l.counts_agree() && l.vm_meminfo == l.sim_meminfo),
                "{policy}"
            );
            assert!(report(&log, &lts).contains("counts_agree=2 flushes_agree=2 directmap_agree=2"));
            if policy == "coalesce" {
                assert_eq!(lts[1].sim_meminfo, log.meminfo["L0"]);
            }
        }
    }

    #[test]
    fn a_different_count_or_placement_is_a_disagreement() {
        // The VM's kernel split one more 2M leaf in lifetime 1.
        let text: String = synthetic("coalesce")
            .lines()
            .map(
                |l| match l.strip_prefix("vmstat L1 direct_map_level2_splits=") {
                    Some(rest) => format!("vmstat L1 direct_map_level2_splits=9{rest}\n"),
                    None => format!("{l}\n"),
                },
            )
            .collect();
        let log = Log::parse(&text).unwrap();
        let lts = replay(&log).unwrap();
        assert!(!lts[0].counts_agree());
        let mut log = Log::parse(&synthetic("split")).unwrap();
        *log.hashes.get_mut(&2).unwrap() ^= 1;
        let lts = replay(&log).unwrap();
        assert!(lts[0].counts_agree() && !lts[1].plan_matches && !lts[1].counts_agree());
        assert!(Log::parse("meminfo L0 DirectMap4k=1\n").is_err());
        assert!(
            Log::parse(&synthetic("split").replace("churnpool L1 3 1", "churnpool L1 3 x"))
                .is_err()
        );
    }
}
