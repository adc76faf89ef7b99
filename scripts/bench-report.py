#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the lines of `make bench` into a report and a picture of the direct map.

usage: bench-report.py [--svg FILE] [--churn LOG]... [--churn-svg FILE] [--replay FILE] [LOG...]

Each LOG is what one VM printed (scripts/vm.sh bench): the lines of vm/bench.c
for one direct-map policy.  The report goes to stdout: per policy the direct
map after each phase as /proc/meminfo, /proc/vmstat, the module's counters and
the kernel's page-table dump see it; conversion rates of the per-page ioctls
and of SNP_HOST_CONVERT_RANGE; every policy against `split`; the fault phase
(issue 9): RMP faults and PMD splits per region holding one private 4K page,
and the time to touch it against a region holding none; the churn workload
(issue 12, --churn: one log per policy of vm/bench.c -C): the direct map after
each guest lifetime, and the simulation's replay of it (--replay: what
`snp-host-simulate replay` printed); and the goals of issues 5, 9 and 12, each
met, not met or n/a.  Rates are from one run on an emulator: read them as
ratios, never as absolute speeds.

The SVG has one strip per phase per policy: the physical address space in 2M
cells, coloured by how the direct map maps each cell, and strips of the churn
runs after some of their lifetimes.  --churn-svg writes DirectMap4k against
the lifetime, one line per policy.

Exit status: 0 when every policy ran completely and met the fault phase's
goal and the churn goal under coalesce, 1 when a run reported a missing piece
("missing ...") or an error, did not finish, or missed one of those goals.  An unmet goal of issue 5 is a finding, not a
failure of the benchmark: those are about policies and speeds on an emulator.
The fault phase's counts are deterministic, so missing its goal is a bug; so
are the churn workload's under coalesce.
"""
import statistics
import argparse
import html
import os
import re
import sys

# The snapshots vm/bench.c takes, in order, and what they follow.
SNAPSHOTS = [
    ("before", "before the workload"),
    ("phase1", "phase 1: one 4K page per region"),
    ("phase2-page", "phase 2 via per-page ioctls"),
    ("phase2-restored", "phase 2 returned (per page)"),
    ("phase2", "phase 2 via CONVERT_RANGE"),
    ("phase3", "phase 3: 2M pages"),
    ("phase4", "phase 4: all shared"),
]
# The strips of the picture: the state each phase leaves.
STRIPS = [("before", "before"), ("phase1", "phase 1"), ("phase2", "phase 2"),
          ("phase3", "phase 3"), ("phase4", "phase 4")]
POLICIES = ["split", "perpage", "coalesce"]
DM_KEYS = ["DirectMap4k", "DirectMap2M", "DirectMap1G"]
VMSTAT_KEYS = [("direct_map_level2_splits", "l2 split"),
               ("direct_map_level3_splits", "l3 split"),
               ("direct_map_level2_collapses", "l2 merge"),
               ("direct_map_level3_collapses", "l3 merge")]
MODULE_KEYS = [("dm_splits_2m", "split 2M"), ("dm_splits_1g", "split 1G"),
               ("dm_merges_2m", "merge 2M"), ("dm_merges_1g", "merge 1G"),
               ("dm_unmapped_pages", "unmapped"), ("tlb_flushes", "flushes")]
# The classes vm/bench.c gives each 2M cell, by the page-table dump.
CLASSES = {
    "G": ("#1f4e79", "1G leaf"),
    "M": ("#6baed6", "2M leaf"),
    "P": ("#756bb1", "2M leaf, write-protected"),
    "K": ("#fd8d3c", "split to 4K"),
    "R": ("#e7298a", "4K, some pages write-protected"),
    "H": ("#b10026", "4K, some pages not present"),
    "N": ("#e6e6e6", "not present"),
}
SPLIT_CLASSES = ("K", "R", "H")
KV = re.compile(r"(\S+)=(\S+)")


def kv(text):
    """The key=value pairs of a line, values as int where they are numbers."""
    out = {}
    for k, v in KV.findall(text):
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


class Run:
    """What one VM (one policy) printed."""

    def __init__(self, path):
        self.path = path
        self.policy = None
        self.params = {}
        self.status = {}
        self.missing = []
        self.errors = []
        self.exit = None
        self.snap = {}  # label -> {"meminfo": {}, "vmstat": {}, ...}
        self.ptmap = {}  # label -> [(first, count, class)]
        self.pool = {}  # label -> {group: {...}}
        self.poolcells = []
        self.rates = []
        self.plan = {}
        self.faults = []  # one dict per region of the fault phase, "run" its label
        self.faultprep = {}  # run label -> {...}
        self.faultruns = {}  # run label -> {...}
        self.finished = False
        with open(path, errors="replace") as f:
            for line in f.read().splitlines():
                self.parse(line)
        if not self.policy:
            # A run that stopped early: scripts/bench.sh names its log <policy>.log.
            name = os.path.basename(path).removesuffix(".log")
            self.policy = name.removeprefix("churn-")

    def at(self, label):
        return self.snap.setdefault(label, {})

    def parse(self, line):
        word, _, rest = line.partition(" ")
        if word in ("bench", "churn"):
            self.params = kv(rest)
            self.policy = str(self.params.get("policy"))
        elif word == "status":
            self.status = kv(rest)
        elif word == "missing":
            self.missing.append(rest)
        elif word == "error" or line.startswith("error:"):
            self.errors.append(rest)
        elif word == "exit":
            self.exit = int(rest) if rest.strip().isdigit() else rest
        elif word == "done":
            self.finished = True
        elif word in ("meminfo", "vmstat", "stats", "ptdump", "dmfs"):
            label, _, fields = rest.partition(" ")
            self.at(label)[word] = kv(fields)
        elif word == "ptmap":
            label, first, count, cls = rest.split()
            self.ptmap.setdefault(label, []).append((int(first), int(count), cls))
        elif word == "pool":
            label, _, fields = rest.partition(" ")
            f = kv(fields)
            self.pool.setdefault(label, {})[f.get("group")] = f
        elif word == "poolcells":
            first, count = rest.split()
            self.poolcells.append((int(first), int(count)))
        elif word == "rate":
            name, _, fields = rest.partition(" ")
            r = kv(fields)
            r["name"] = name
            self.rates.append(r)
        elif word == "plan":
            self.plan.update(kv(rest))
        elif word in ("fault", "faultprep", "faultrun"):
            label, _, fields = rest.partition(" ")
            f = kv(fields)
            if word == "fault":
                f["run"] = label
                self.faults.append(f)
            elif word == "faultprep":
                self.faultprep[label] = f
            else:
                self.faultruns[label] = f

    def value(self, label, what, key):
        return self.snap.get(label, {}).get(what, {}).get(key)

    def rate(self, name, path, nth=0):
        found = [r for r in self.rates if r["name"] == name and r.get("path") == path]
        return found[nth] if len(found) > nth else None

    def cells(self, label):
        """The class of every 2M cell in the snapshot, as a list."""
        out = []
        for first, count, cls in sorted(self.ptmap.get(label, [])):
            out.extend([cls] * count)
        return out

    def newly_split(self, before, after):
        """Cells split to 4K in `after` that were not in `before` (the page-table dump)."""
        a, b = self.cells(before), self.cells(after)
        if not a or not b:
            return None
        return sum(1 for i, c in enumerate(b)
                   if c in SPLIT_CLASSES and (i >= len(a) or a[i] not in SPLIT_CLASSES))


def per_second(r):
    if not r or not r.get("ns"):
        return None
    return r["conversions"] * 1e9 / r["ns"]


def fmt(v, width=0):
    if v is None:
        s = "n/a"
    elif isinstance(v, float):
        s = f"{v:,.0f}"
    else:
        s = f"{v:,}"
    return s.rjust(width)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(v, width=0):
    return ("n/a" if v is None else f"{v:.2f}x").rjust(width)


def delta(run, label, prev, what, key):
    a, b = run.value(label, what, key), run.value(prev, what, key)
    if a is None or b is None:
        return None
    return a - b


def protected_pt(run, label):
    """4K pages the page-table dump shows newly not present or read-only since "before"."""
    total = 0
    for key, per in (("absent_4k", 1), ("ro_4k", 1), ("kb_2m_ro", 1 / 4)):
        a, b = run.value(label, "ptdump", key), run.value("before", "ptdump", key)
        if a is None or b is None:
            return None
        total += (a - b) * per
    ca, cb = run.cells(label), run.cells("before")
    if not ca or not cb:
        return None
    # A 2M leaf removed whole leaves no 4K entry behind: count its cell.
    return int(total) + 512 * (ca.count("N") - cb.count("N"))


def policy_table(run, out):
    pol = run.status.get("policy_name", "?")
    p = run.params
    out.append(f"== directmap={run.policy} (the module reports policy: {pol}, "
               f"backend {run.status.get('backend', '?')}) ==")
    if not run.snap:
        out.append("  no measurements")
        return
    out.append("  /proc/vmstat and the module's counters: changes since the row above;"
               " everything else: values.")
    head = (f"  {'after':<16}{'4k':>9}{'2M':>10}{'1G':>10} |"
            + "".join(f"{name:>9}" for _, name in VMSTAT_KEYS) + " |"
            + "".join(f"{name:>9}" for _, name in MODULE_KEYS) + " |"
            + f"{'protect':>9}{'pool 4K':>8}")
    out.append(f"  {'':<16}{'/proc/meminfo (kB)':^29} |{'/proc/vmstat':^36} |"
               f"{'module':^54} |{'page-table dump':^17}")
    out.append(head)
    prev = None
    for label, _ in SNAPSHOTS:
        if label not in run.snap:
            continue
        row = f"  {label:<16}"
        for k in DM_KEYS:
            row += fmt(run.value(label, "meminfo", k), 9 if k == "DirectMap4k" else 10)
        row += " |"
        for what, keys in (("vmstat", VMSTAT_KEYS), ("stats", MODULE_KEYS)):
            for k, _ in keys:
                if k == "dm_unmapped_pages":  # a level, not an event count
                    row += fmt(run.value(label, what, k), 9)
                elif prev:
                    row += fmt(delta(run, label, prev, what, k), 9)
                else:
                    row += ("-" if run.value(label, what, k) is not None else "n/a").rjust(9)
            row += " |"
        row += fmt(protected_pt(run, label), 9)
        g = run.pool.get(label, {}).get("all", {})
        split = sum(g.get(c, 0) for c in SPLIT_CLASSES) if g else None
        row += fmt(split, 8)
        out.append(row)
        prev = label
    out.append("  unmapped (module): pages it keeps out of the host's write path now;"
               " protect (page-table dump): pages newly read-only or not present since before;")
    out.append(f"  pool 4K: pool regions the page-table dump shows split to 4K"
               f" (of {p.get('regions', '?')}).")
    dm = [run.snap[l].get("dmfs") for l, _ in SNAPSHOTS if run.snap.get(l, {}).get("dmfs")]
    if dm:
        bad = sum(d.get("disagree_ptdump", 0) for d in dm)
        out.append(f"  debugfs directmap against the page-table dump: {bad} disagreeing lines"
                   f" over {len(dm)} snapshots")


def rate_rows(run):
    return [
        ("per-page private (phase 1, new splits)", per_second(run.rate("phase1", "page"))),
        ("per-page private (phase 2)", per_second(run.rate("phase2", "page"))),
        ("per-page shared (phase 2 back)", per_second(run.rate("phase2-restore", "page"))),
        ("range private (phase 2)", per_second(run.rate("phase2", "range"))),
        ("range shared (phase 4, phase 2's runs)", per_second(run.rate("phase4-runs", "range"))),
        ("2M private, per page (phase 3)", per_second(run.rate("phase3", "page"))),
        ("2M shared, range (phase 4)", per_second(run.rate("phase4-2m", "range"))),
    ]


def rates_table(runs, out):
    base = runs.get("split")
    names = [p for p in POLICIES if p in runs] + [p for p in runs if p not in POLICIES]
    out.append("== conversions per second (one run under QEMU/TCG: compare ratios, not values) ==")
    out.append("  " + f"{'':<40}" + "".join(f"{n:>22}" for n in names))
    base_rows = dict(rate_rows(base)) if base else {}
    for i, (what, _) in enumerate(rate_rows(next(iter(runs.values())))):
        row = f"  {what:<40}"
        for n in names:
            v = rate_rows(runs[n])[i][1]
            cell = fmt(v)
            if n != "split" and base:
                cell += f" ({fmt_ratio(ratio(v, base_rows.get(what)))})"
            row += cell.rjust(22)
        out.append(row)
    out.append("  (ratio) is against the same path under split.")
    if base:
        ref = per_second(base.rate("phase2", "page"))
        row = f"  {'range private / split per-page private':<40}"
        for n in names:
            row += fmt_ratio(ratio(per_second(runs[n].rate("phase2", "range")), ref), 22)
        out.append(row)
    row = f"  {'range private / per-page private, same VM':<40}"
    for n in names:
        row += fmt_ratio(ratio(per_second(runs[n].rate("phase2", "range")),
                               per_second(runs[n].rate("phase2", "page"))), 22)
    out.append(row)
    # A second per-page pass happens when CONVERT_RANGE is missing: the noise of one run.
    for n in names:
        a, b = runs[n].rate("phase2", "page"), runs[n].rate("phase2", "page", 1)
        if a and b:
            out.append(f"  {n}: phase 2 went through the per-page path twice (no CONVERT_RANGE);"
                       f" second pass / first = {fmt_ratio(ratio(per_second(b), per_second(a)))}"
                       " (run-to-run noise)")


def versus_split(runs, out):
    base = runs.get("split")
    if not base:
        return
    out.append("== every policy against split (value, ratio to split) ==")
    metrics = [
        ("DirectMap4k after phase 2 (kB)", lambda r: r.value("phase2", "meminfo", "DirectMap4k")),
        ("DirectMap4k after phase 4 (kB)", lambda r: r.value("phase4", "meminfo", "DirectMap4k")),
        ("DirectMap2M after phase 4 (kB)", lambda r: r.value("phase4", "meminfo", "DirectMap2M")),
        ("2M splits, whole workload (vmstat)",
         lambda r: delta(r, "phase4", "before", "vmstat", "direct_map_level2_splits")),
        ("2M merges, whole workload (vmstat)",
         lambda r: delta(r, "phase4", "before", "vmstat", "direct_map_level2_collapses")),
        ("pool regions at 4K after phase 4 (ptdump)",
         lambda r: (lambda g: g and sum(g.get(c, 0) for c in SPLIT_CLASSES))(
             r.pool.get("phase4", {}).get("all"))),
        ("TLB flushes, whole workload (module)",
         lambda r: delta(r, "phase4", "before", "stats", "tlb_flushes")),
        ("per-page private conversions/s", lambda r: per_second(r.rate("phase2", "page"))),
        ("range private conversions/s", lambda r: per_second(r.rate("phase2", "range"))),
    ]
    names = [p for p in POLICIES if p in runs]
    out.append("  " + f"{'':<42}" + "".join(f"{n:>24}" for n in names))
    for what, get in metrics:
        b = get(base)
        row = f"  {what:<42}"
        for n in names:
            v = get(runs[n])
            row += (fmt(v) + " (" + fmt_ratio(ratio(v, b)) + ")").rjust(24)
        out.append(row)


def fault_ratios(run):
    """Per run of the fault phase: the median over its pairs of private / control touch time.

    A median within the run as well: one touch the emulator's host happened to
    preempt (milliseconds instead of tens of microseconds) must not make its run
    an outlier, as it does to a ratio of summed times.
    """
    by_run = {}
    for f in run.faults:
        if f.get("control_ns") and "ns" in f:
            by_run.setdefault(f["run"], []).append(f["ns"] / f["control_ns"])
    return [statistics.median(v) for v in by_run.values()]


def fault_sum_ratios(run):
    """Per run of the fault phase: summed touch time of the private-page regions / controls."""
    return [f["ns"] / f["control_ns"] for f in run.faultruns.values() if f.get("control_ns")]


def fault_minmax(run, key):
    vals = [f.get(key) for f in run.faults]
    if not vals or None in vals:
        return None
    return (min(vals), max(vals))


def fmt_minmax(v):
    return "n/a" if v is None else f"{v[0]}/{v[1]}"


def fault_section(runs, out):
    names = [p for p in POLICIES if p in runs] + [p for p in runs if p not in POLICIES]
    first = next(iter(runs.values())).params
    out.append("== fault phase (issue 9): one store to each shared page of a THP holding one"
               " private 4K page ==")
    out.append(f"  per policy {first.get('fault_runs', '?')} runs x"
               f" {first.get('fault_regions', '?')} fresh THPs with a private page, each against"
               " a fresh THP with none (the control) given the same 511 stores")

    def row(what, get):
        out.append(f"  {what:<46}" + "".join(get(runs[n]).rjust(20) for n in names))

    def us(v):
        return "n/a" if v is None else f"{v / 1000:,.1f}"

    def median_of(r, key):
        vals = [f[key] for f in r.faults if key in f]
        return statistics.median(vals) if vals else None

    out.append("  " + f"{'':<46}" + "".join(f"{n:>20}" for n in names))
    row("regions with a private page", lambda r: fmt(len(r.faults)))
    row("RMP faults per region (min/max)", lambda r: fmt_minmax(fault_minmax(r, "faults")))
    row("splits per region, module (min/max)", lambda r: fmt_minmax(fault_minmax(r, "splits")))
    row("splits per region, thp_split_pmd (min/max)",
        lambda r: fmt_minmax(fault_minmax(r, "vm_splits")))
    row("SIGBUS per region, module/caught (max)",
        lambda r: "n/a" if not r.faults else
        f"{max(f.get('sigbus', 0) for f in r.faults)}/{max(f.get('caught', 0) for f in r.faults)}")
    row("control: faults/splits/SIGBUS (max)",
        lambda r: "n/a" if not r.faults else "/".join(
            str(max(max(f.get(k, 0) for k in keys) for f in r.faults))
            for keys in (("control_faults",), ("control_splits", "control_vm_splits"),
                         ("control_sigbus", "control_caught"))))
    row("MAKE_PRIVATE: faults/splits (sum)",
        lambda r: "n/a" if not r.faultprep else "/".join(
            str(sum(p.get(k, 0) for p in r.faultprep.values())) for k in ("faults", "vm_splits")))
    row("touch time per region, median (us)", lambda r: us(median_of(r, "ns")))
    row("control touch time per region, median (us)", lambda r: us(median_of(r, "control_ns")))
    row("touch-time ratio, private/control: median",
        lambda r: fmt_ratio(statistics.median(fault_ratios(r)) if fault_ratios(r) else None))
    row("  min..max over runs",
        lambda r: "n/a" if not fault_ratios(r) else
        f"{min(fault_ratios(r)):.2f}..{max(fault_ratios(r)):.2f}")
    row("summed-time ratio, median (min..max) of runs",
        lambda r: "n/a" if not fault_sum_ratios(r) else
        f"{statistics.median(fault_sum_ratios(r)):.2f}x"
        f" ({min(fault_sum_ratios(r)):.2f}..{max(fault_sum_ratios(r)):.2f})")
    out.append("  ratio: per run, the median over its pairs of the touch time of the region with"
               " a private page over that of its control;")
    out.append("  then the median over the runs (TCG timings are noisy: read it as a ratio, not"
               " as a speed). The summed-time ratio shows")
    out.append("  what one preempted touch does to a run's sum.")
    few = [n for n in names if runs[n].faultruns and len(runs[n].faultruns) < 5]
    if few:
        out.append(f"  fewer than 5 runs for {', '.join(few)}: the median is of too few runs")


def fault_goal(run):
    """The verdict and the reasons of the fault phase's goal for one policy."""
    if not run.faults:
        return "n/a", ["no fault phase in this run"]
    want = run.params.get("fault_runs", 0) * run.params.get("fault_regions", 0)
    why = [f"{len(run.faults)} regions (of {want} planned);"
           f" faults {fmt_minmax(fault_minmax(run, 'faults'))},"
           f" splits module {fmt_minmax(fault_minmax(run, 'splits'))},"
           f" thp_split_pmd {fmt_minmax(fault_minmax(run, 'vm_splits'))} (min/max per region)"]
    bad = []
    for f in run.faults:
        where = f"{f['run']} region {f.get('region')} (page {f.get('page')})"
        if f.get("splits") != 1 or f.get("vm_splits") != 1:
            bad.append(f"{where}: {f.get('splits')} splits (module),"
                       f" {f.get('vm_splits')} (thp_split_pmd)")
        if f.get("faults") is None or f["faults"] > 1:
            bad.append(f"{where}: {f.get('faults')} RMP faults")
        if f.get("sigbus") or f.get("caught"):
            bad.append(f"{where}: SIGBUS on a shared page ({f.get('sigbus')} by the module,"
                       f" {f.get('caught')} caught)")
        if f.get("control_faults") or f.get("control_splits") or f.get("control_vm_splits") \
                or f.get("control_sigbus") or f.get("control_caught"):
            bad.append(f"{where}: its control, with no private page, took faults, splits or"
                       " SIGBUS")
    if len(run.faults) != want:
        bad.append(f"{len(run.faults)} regions measured, {want} planned")
    flags = run.status
    if not flags.get("kernel_hooks") or not flags.get("user_wp"):
        why.append(f"module flags: kernel_hooks={flags.get('kernel_hooks', '?')}"
                   f" user_wp={flags.get('user_wp', '?')}")
    why.extend(bad[:8])
    if len(bad) > 8:
        why.append(f"... and {len(bad) - 8} more")
    return ("MET" if not bad else "NOT MET"), why


def goals(runs, out, churns, replay):
    out.append("== goals of issues 5, 9 and 12 ==")
    met = total = 0

    def say(name, verdict, why):
        nonlocal met, total
        total += 1
        met += verdict == "MET"
        out.append(f"  [{verdict}] {name}")
        for w in why:
            out.append(f"      {w}")

    c = runs.get("coalesce")
    # 1. coalesce: DirectMap* back to the values before the workload.
    name = "coalesce: after phase 4 DirectMap4k/2M/1G equal their values before the workload"
    if not c or "phase4" not in c.snap:
        say(name, "n/a", ["no complete coalesce run"])
    else:
        b = [c.value("before", "meminfo", k) for k in DM_KEYS]
        a = [c.value("phase4", "meminfo", k) for k in DM_KEYS]
        ok = a == b and None not in a
        why = [f"before {b}, after phase 4 {a} (kB)"]
        cb, ca = c.cells("before"), c.cells("phase4")
        if cb and ca:
            differ = sum(1 for x, y in zip(cb, ca) if x != y) + abs(len(cb) - len(ca))
            why.append(f"page-table dump: {differ} 2M cells mapped differently than before")
        if not c.status.get("directmap_policy"):
            say(name, "n/a", why + ["the module ignored directmap=coalesce"])
        else:
            say(name, "MET" if ok else "NOT MET", why)

    # 2. phase 1 splits exactly the regions that hold a private 4K page.
    for pol in [p for p in POLICIES if p in runs]:
        r = runs[pol]
        name = (f"{pol}: phase 1 splits as many 2M regions as hold a private 4K page"
                + (" (the goal is coalesce's)" if pol != "coalesce" else ""))
        g = r.pool.get("phase1", {}).get("priv4k")
        if not g:
            say(name, "n/a", ["no page-table dump of phase 1"])
            continue
        minimum = g["regions"] - g.get("was_split", 0)
        vm = delta(r, "phase1", "before", "vmstat", "direct_map_level2_splits")
        mod = delta(r, "phase1", "before", "stats", "dm_splits_2m")
        pt = r.newly_split("before", "phase1")
        why = [f"minimum {minimum} ({g['regions']} regions with a private 4K page,"
               f" {g.get('was_split', 0)} already at 4K before); split: vmstat {fmt(vm)},"
               f" module {fmt(mod)}, page-table dump {fmt(pt)} newly 4K cells"]
        counts = [x for x in (vm, mod, pt) if x is not None]
        if vm is None or not r.status.get("directmap_policy"):
            verdict = "n/a"
            why.append("needs the vmstat counters and the module's direct-map policy")
        else:
            verdict = "MET" if all(x == minimum for x in counts) else "NOT MET"
        if pol == "coalesce":
            say(name, verdict, why)
        else:
            out.append(f"  [info: {verdict}] {name}")
            out.extend(f"      {w}" for w in why)

    # 3. phase 3 splits no 2M region.
    for pol in [p for p in POLICIES if p in runs]:
        r = runs[pol]
        name = (f"{pol}: phase 3 (2M private pages) splits no 2M region"
                + (" (the goal is coalesce's)" if pol != "coalesce" else ""))
        vm = delta(r, "phase3", "phase2", "vmstat", "direct_map_level2_splits")
        mod = delta(r, "phase3", "phase2", "stats", "dm_splits_2m")
        pt = r.newly_split("phase2", "phase3")
        h = r.pool.get("phase3", {}).get("huge", {})
        huge4k = sum(h.get(c, 0) for c in SPLIT_CLASSES) if h else None
        why = [f"2M splits: vmstat {fmt(vm)}, module {fmt(mod)}, page-table dump {fmt(pt)}"
               f" newly 4K cells; 2M-private regions mapped at 4K: {fmt(huge4k)}, at 2M"
               f" write-protected: {fmt(h.get('P') if h else None)}, at 2M writable:"
               f" {fmt(h.get('M') if h else None)}, not present: {fmt(h.get('N') if h else None)},"
               f" in a 1G leaf: {fmt(h.get('G') if h else None)}"]
        if vm is None or not r.status.get("directmap_policy"):
            verdict = "n/a"
            why.append("needs the vmstat counters and the module's direct-map policy")
        else:
            ok = all(x == 0 for x in (vm, mod, pt, huge4k) if x is not None)
            verdict = "MET" if ok else "NOT MET"
        if pol == "coalesce":
            say(name, verdict, why)
        else:
            out.append(f"  [info: {verdict}] {name}")
            out.extend(f"      {w}" for w in why)

    # 4. CONVERT_RANGE at least 2x the split policy's per-page path.
    name = "CONVERT_RANGE (coalesce) >= 2x split's per-page path, to private (phase 2)"
    s = runs.get("split")
    ref = per_second(s.rate("phase2", "page")) if s else None
    got = per_second(c.rate("phase2", "range")) if c else None
    x = ratio(got, ref)
    why = [f"split per-page {fmt(ref)}/s, coalesce range {fmt(got)}/s: {fmt_ratio(x)}"]
    ref_sh = per_second(s.rate("phase2-restore", "page")) if s else None
    got_sh = per_second(c.rate("phase4-runs", "range")) if c else None
    why.append(f"to shared (not part of the goal): split per-page {fmt(ref_sh)}/s,"
               f" coalesce range {fmt(got_sh)}/s: {fmt_ratio(ratio(got_sh, ref_sh))}")
    if x is None or not (s and s.status.get("directmap_policy")):
        say(name, "n/a", why + ["needs CONVERT_RANGE and the split policy"])
    else:
        say(name, "MET" if x >= 2 else "NOT MET", why)

    # 5. Issue 9: the lazy split costs one fault and one split per region, under every policy.
    failed = []
    for pol in [p for p in POLICIES if p in runs] + [p for p in runs if p not in POLICIES]:
        verdict, why = fault_goal(runs[pol])
        say(f"{pol}: fault phase: 1 split and <=1 fault per region", verdict, why)
        if verdict == "NOT MET":
            failed.append(pol)
    # 6. Issue 12: the churn workload.
    if churns and churn_goals(churns, replay, say):
        failed.append("churn (coalesce)")
    out.append(f"  {met} of {total} goals met")
    return failed


# The churn workload (issue 12): one Run per policy, snapshots L0, L<n>-private, L<n>.
CHURN_STRIPS = [0, 1, 2, 5, 10, 20]  # lifetimes after which the picture shows the direct map
COLOURS = {"split": "#d62728", "perpage": "#ff7f0e", "coalesce": "#1f77b4"}
MIB = 1024  # kB


def lifetimes_of(run):
    """The lifetimes of a churn run with a snapshot after them, from 1 on."""
    out = []
    while f"L{len(out) + 1}" in run.snap:
        out.append(len(out) + 1)
    return out


def churn_dm(run, label):
    return [run.value(label, "meminfo", k) for k in DM_KEYS]


def churn_growth(run):
    """DirectMap4k before the first lifetime and after the last, in kB, and lifetimes."""
    lts = lifetimes_of(run)
    if not lts or run.value("L0", "meminfo", "DirectMap4k") is None:
        return None
    return (run.value("L0", "meminfo", "DirectMap4k"),
            run.value(f"L{lts[-1]}", "meminfo", "DirectMap4k"), lts[-1])


def read_replay(path):
    """The replay lines of snp-host-simulate: per policy its lifetimes and its summary."""
    lines, sums = {}, {}
    if not path:
        return lines, sums
    with open(path, errors="replace") as f:
        for line in f.read().splitlines():
            word, _, rest = line.partition(" ")
            if word == "replay":
                r = kv(rest)
                lines.setdefault(r.get("policy"), []).append(r)
            elif word == "replaysum":
                r = kv(rest)
                sums[r.get("policy")] = r
    return lines, sums


def churn_section(churns, replay, out):
    p = next(iter(churns.values())).params
    out.append("== churn (issue 12): guest lifetimes on a pool allocated afresh each time ==")
    out.append(f"  seed {p.get('seed', '?')}, {p.get('lifetimes', '?')} lifetimes of a"
               f" {p.get('pool_mb', '?')} MiB THP pool; in each, {p.get('percent', '?')}% of its pages"
               f" private through CONVERT_RANGE (one region in {p.get('huge_every', '?')} as a 2M page,"
               f" runs of 1..{p.get('max_run', '?')} 4K pages in one region in"
               f" {p.get('runs_every', '?')}), then all shared and the pool freed")
    out.append("  DirectMap (/proc/meminfo, kB) after the lifetime and, for 4k, while it was private;"
               " vmstat and module: changes during the lifetime; listed: regions in debugfs directmap")
    rlines, _ = replay
    for n in [x for x in POLICIES if x in churns] + [x for x in churns if x not in POLICIES]:
        r = churns[n]
        out.append("")
        out.append(f"  directmap={n} (the module reports policy: {r.status.get('policy_name', '?')})")
        out.append(f"  {'lifetime':>8}{'4k':>11}{'2M':>11}{'1G':>11}{'4k private':>12} |"
                   + "".join(f"{name:>9}" for _, name in VMSTAT_KEYS) + " |"
                   + "".join(f"{name:>9}" for name in ("split 2M", "split 1G", "merge 2M",
                                                        "merge 1G", "flushes")) + " |"
                   + f"{'listed':>7}" + (f" | {'simulation':>10}" if rlines.get(n) else ""))
        sim = {x.get("lifetime"): x for x in rlines.get(n, [])}
        dm0 = churn_dm(r, "L0")
        out.append(f"  {0:>8}" + "".join(fmt(v, 11) for v in dm0) + f"{'':>12} |"
                   + f"{'':>36} |{'':>45} |" + fmt(r.value("L0", "dmfs", "regions"), 7))
        for lt in lifetimes_of(r):
            label, prev = f"L{lt}", f"L{lt - 1}"
            row = f"  {lt:>8}" + "".join(fmt(v, 11) for v in churn_dm(r, label))
            row += fmt(r.value(f"{label}-private", "meminfo", "DirectMap4k"), 12) + " |"
            for k, _ in VMSTAT_KEYS:
                row += fmt(delta(r, label, prev, "vmstat", k), 9)
            row += " |"
            for k in ("dm_splits_2m", "dm_splits_1g", "dm_merges_2m", "dm_merges_1g", "tlb_flushes"):
                row += fmt(delta(r, label, prev, "stats", k), 9)
            row += " |" + fmt(r.value(label, "dmfs", "regions"), 7)
            if rlines.get(n):
                x = sim.get(lt)
                row += " | " + ("n/a" if not x else "agrees" if x.get("agree") == "yes"
                                else "DIFFERS").rjust(10)
            out.append(row)
        g = churn_growth(r)
        if g:
            a, b, lt = g
            d = delta(r, f"L{lt}", "L0", "vmstat", "direct_map_level2_splits")
            m = delta(r, f"L{lt}", "L0", "vmstat", "direct_map_level2_collapses")
            out.append(f"  over {lt} lifetimes: DirectMap4k {a / MIB:,.1f} -> {b / MIB:,.1f} MiB"
                       f" ({(b - a) / MIB:+,.1f} MiB, {(b - a) / MIB / lt:+,.1f} MiB per lifetime);"
                       f" 2M splits {fmt(d)}, merges {fmt(m)} (vmstat)")
    rl, sums = replay
    if sums:
        out.append("")
        out.append("  the simulation (make simulate's model: directmap/model on a model of the CPA code)"
                   " replaying each run's placement on the PFNs it recorded:")
        for n, x in sums.items():
            out.append(f"    directmap={n}: splits and merges (vmstat and the module) agree in"
                       f" {x.get('counts_agree')} of {x.get('planned')} lifetimes; placement hash"
                       f" {x.get('plans_match')}, TLB flushes {x.get('flushes_agree')},"
                       f" DirectMap4k/2M/1G {x.get('directmap_agree')}")


def churn_goals(churns, replay, say):
    """The two goals of the churn workload; returns whether the coalesce one failed."""
    name = "churn: under coalesce the direct map is back to its starting sizes after every lifetime"
    c = churns.get("coalesce")
    lts = lifetimes_of(c) if c else []
    failed = False
    if not c or not lts:
        say(name, "n/a", ["no churn run under coalesce"])
    else:
        want = c.params.get("lifetimes", 0)
        dm0 = churn_dm(c, "L0")
        back = [lt for lt in lts if churn_dm(c, f"L{lt}") == dm0 and None not in dm0]
        why = [f"back to DirectMap4k/2M/1G {dm0} kB after {len(back)} of {want} lifetimes"]
        differ = [lt for lt in lts if lt not in back]
        if differ:
            why.append("not after lifetimes " + ", ".join(map(str, differ[:10]))
                       + f" (after L{differ[0]}: {churn_dm(c, f'L{differ[0]}')})")
        for n in ("split", "perpage"):
            r = churns.get(n)
            g = churn_growth(r) if r else None
            if g:
                a, b, lt = g
                why.append(f"{n} accumulates: DirectMap4k {a / MIB:,.1f} -> {b / MIB:,.1f} MiB"
                           f" after {lt} lifetimes ({(b - a) / MIB:+,.1f} MiB, x{b / a:.1f})")
        ok = len(back) == want and len(lts) == want and c.finished
        failed = not ok and c.status.get("directmap_policy") is not None
        say(name, "MET" if ok else "NOT MET", why)
    name = "churn: the simulation replaying each run's placement counts the VM's splits and merges"
    _, sums = replay
    if not sums:
        say(name, "n/a", ["no replay of the churn runs (snp-host-simulate replay)"])
    else:
        why, ok = [], True
        for n in churns:
            x = sums.get(n)
            if not x:
                why.append(f"{n}: not replayed")
                ok = False
                continue
            agree = x.get("counts_agree") == x.get("planned") == x.get("lifetimes")
            ok &= agree
            why.append(f"{n}: {x.get('counts_agree')} of {x.get('planned')} lifetimes agree"
                       f" (placements {x.get('plans_match')}, flushes {x.get('flushes_agree')},"
                       f" DirectMap {x.get('directmap_agree')})")
        say(name, "MET" if ok else "NOT MET", why)
    return failed


def churn_svg(churns, path):
    """DirectMap4k in MiB against the lifetime, one line per policy (dashed: while private)."""
    names = [p for p in POLICIES if p in churns] + [p for p in churns if p not in POLICIES]
    series = []
    for n in names:
        r = churns[n]
        lts = [0] + lifetimes_of(r)
        after = [(lt, r.value(f"L{lt}", "meminfo", "DirectMap4k")) for lt in lts]
        peak = [(lt, r.value(f"L{lt}-private", "meminfo", "DirectMap4k")) for lt in lts[1:]]
        series.append((n, [(x, y / MIB) for x, y in after if y is not None],
                       [(x, y / MIB) for x, y in peak if y is not None]))
    xmax = max([x for _, a, _ in series for x, _ in a] + [1])
    ytop = max([y for _, a, b in series for _, y in a + b] + [1])
    ystep = next(s for s in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**9]
                 if s * 6 >= ytop)
    ymax = ystep * -(-ytop // ystep)
    w, h, left, right, top, bottom = 900, 480, 80, 220, 40, 50
    pw, ph = w - left - right, h - top - bottom

    def X(v):
        return left + v / xmax * pw

    def Y(v):
        return top + ph - v / ymax * ph

    esc = html.escape
    parts = [f'<rect width="{w}" height="{h}" fill="#fff"/>',
             f'<text x="{left}" y="24" font-size="15" font-weight="bold">snp_host churn:'
             ' DirectMap4k after each guest lifetime (make bench, /proc/meminfo)</text>']
    v = 0
    while v <= ymax:
        parts.append(f'<line x1="{left}" y1="{Y(v):.1f}" x2="{left + pw}" y2="{Y(v):.1f}"'
                     f' stroke="#ddd"/><text x="{left - 6}" y="{Y(v) + 4:.1f}" font-size="11"'
                     f' text-anchor="end">{v:g}</text>')
        v += ystep
    for lt in range(0, int(xmax) + 1):
        parts.append(f'<line x1="{X(lt):.1f}" y1="{top + ph}" x2="{X(lt):.1f}" y2="{top + ph + 5}"'
                     f' stroke="#000"/><text x="{X(lt):.1f}" y="{top + ph + 18}" font-size="11"'
                     f' text-anchor="middle">{lt}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#000"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 10}" font-size="12" text-anchor="middle">'
                 'guest lifetime</text>')
    parts.append(f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" font-size="12"'
                 ' text-anchor="middle">DirectMap4k (MiB)</text>')
    ly = top + 14
    for n, after, peak in series:
        colour = COLOURS.get(n, "#2ca02c")
        for pts, dash, what in ((after, "", "after the lifetime"),
                                (peak, ' stroke-dasharray="5 4"', "while private")):
            if not pts:
                continue
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
                         + " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
                         + f'"><title>{esc(n)}, {what}</title></polyline>')
            parts.append(f'<line x1="{left + pw + 12}" y1="{ly}" x2="{left + pw + 36}" y2="{ly}"'
                         f' stroke="{colour}" stroke-width="3"{dash}/><text x="{left + pw + 42}"'
                         f' y="{ly + 4}" font-size="12">{esc(n)}, {what}</text>')
            ly += 20
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"'
                f' viewBox="0 0 {w} {h}" font-family="sans-serif">\n')
        f.write("\n".join(parts))
        f.write("\n</svg>\n")


# The picture.
CELL_W = 1
STRIP_H = 16
LABEL_W = 190
RIGHT_W = 300


def svg(runs, path, churns):
    names = [p for p in POLICIES if p in runs] + [p for p in runs if p not in POLICIES]
    # The churn runs' strips: after the lifetimes of CHURN_STRIPS they have.
    cnames = [p for p in POLICIES if p in churns] + [p for p in churns if p not in POLICIES]
    ncells = max([sum(c for _, c, _ in m) for r in list(runs.values()) + list(churns.values())
                  for m in r.ptmap.values()] + [1])
    width = LABEL_W + ncells * CELL_W + RIGHT_W
    y = 58
    parts = []
    esc = html.escape

    def text(x, yy, s, size=12, anchor="start", weight="normal"):
        parts.append(f'<text x="{x}" y="{yy}" font-size="{size}" text-anchor="{anchor}"'
                     f' font-weight="{weight}">{esc(s)}</text>')

    first = next(iter(list(runs.values()) + list(churns.values())))
    p = first.params
    text(10, 20, "snp_host: the kernel direct map per policy and phase (and churn lifetime), from"
         " /sys/kernel/debug/page_tables/kernel", 15, weight="bold")
    text(10, 38, f"one column per 2M of physical memory ({ncells} x 2M);"
         f" pool {p.get('pool_mb', '?')} MiB, seed {p.get('seed', '?')};"
         " the black bar under a policy's name marks where its pool lies", 12)
    # Axis: a tick per GiB.
    for gib in range(0, ncells * 2 // 1024 + 1):
        x = LABEL_W + gib * 512 * CELL_W
        parts.append(f'<line x1="{x}" y1="{y - 6}" x2="{x}" y2="{y}" stroke="#000"/>')
        text(x, y - 8, f"{gib} GiB", 10, "middle")
    strips = [(f"directmap={n}", runs[n], STRIPS) for n in names]
    for n in cnames:
        r = churns[n]
        done = set(lifetimes_of(r))
        strips.append((f"churn, directmap={n}", r,
                       [(f"L{lt}", "before" if lt == 0 else f"after lifetime {lt}")
                        for lt in CHURN_STRIPS if lt == 0 or lt in done]))
    for title_, r, phases in strips:
        n = title_
        y += 8
        text(10, y + 12, title_, 13, weight="bold")
        if not r.status.get("directmap_policy"):
            text(10, y + 26, "(module ignored the policy)", 10)
        for first_cell, count in r.poolcells:
            parts.append(f'<rect x="{LABEL_W + first_cell * CELL_W}" y="{y + 2}"'
                         f' width="{count * CELL_W}" height="4" fill="#000"/>')
        y += 8
        for label, title in phases:
            text(LABEL_W - 8, y + STRIP_H - 4, title, 11, "end")
            runs_ = r.ptmap.get(label)
            if not runs_:
                parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{ncells * CELL_W}"'
                             f' height="{STRIP_H}" fill="none" stroke="#999"'
                             ' stroke-dasharray="4 3"/>')
                text(LABEL_W + 6, y + STRIP_H - 4, "no page-table dump for this phase", 11)
            else:
                for first_cell, count, cls in runs_:
                    colour = CLASSES.get(cls, ("#ff00ff", "?"))[0]
                    parts.append(f'<rect x="{LABEL_W + first_cell * CELL_W}" y="{y}"'
                                 f' width="{count * CELL_W}" height="{STRIP_H}" fill="{colour}">'
                                 f'<title>{esc(n)} {esc(title)}: cells {first_cell}..'
                                 f'{first_cell + count - 1} {esc(CLASSES.get(cls, ("", cls))[1])}'
                                 '</title></rect>')
            dm = r.snap.get(label, {}).get("meminfo", {})
            if dm:
                text(LABEL_W + ncells * CELL_W + 8, y + STRIP_H - 4,
                     "4k " + fmt(dm.get("DirectMap4k")) + " kB, 2M "
                     + fmt(dm.get("DirectMap2M")) + ", 1G " + fmt(dm.get("DirectMap1G")), 10)
            y += STRIP_H + 3
        y += 10
    # Legend.
    x = LABEL_W
    for cls, (colour, what) in CLASSES.items():
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{colour}"'
                     ' stroke="#555"/>')
        text(x + 18, y + 12, what, 11)
        x += 40 + 7 * len(what)
    y += 30
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}"'
                f' viewBox="0 0 {width} {y}" font-family="sans-serif"'
                ' shape-rendering="crispEdges">\n')
        f.write(f'<rect width="{width}" height="{y}" fill="#fff"/>\n')
        f.write("\n".join(parts))
        f.write("\n</svg>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--svg", help="write the picture of the direct map here")
    ap.add_argument("--churn", action="append", default=[], help="a churn log (vm/bench.c -C)")
    ap.add_argument("--churn-svg", help="write DirectMap4k against the churn lifetimes here")
    ap.add_argument("--replay", help="what snp-host-simulate replay printed for the churn logs")
    ap.add_argument("logs", nargs="*")
    args = ap.parse_args()
    if not args.logs and not args.churn:
        ap.error("no log given")
    runs, churns = {}, {}
    for path in args.logs:
        r = Run(path)
        runs[r.policy] = r
    for path in args.churn:
        r = Run(path)
        churns[r.policy] = r
    replay = read_replay(args.replay)
    out = []
    first = next(iter(list(runs.values()) + list(churns.values())))
    p = first.params
    out.append("snp_host direct-map benchmark (make bench)")
    if runs:
        out.append(f"  seed {p.get('seed', '?')}, pool {p.get('pool_mb', '?')} MiB"
                   f" ({p.get('regions', '?')} THP-backed 2M regions, {p.get('kept', '?')} kept for"
                   f" phase 3); phase 2 to {p.get('percent', '?')}% of the pool's pages in random"
                   f" runs of 1..{p.get('max_run', '?')} pages ({first.plan.get('runs', '?')} runs,"
                   f" mean {first.plan.get('mean_run', '?')})")
        out.append("  timing: phase 2 runs twice from the same state, per-page ioctls first, then"
                   " (after returning the pages per page) one CONVERT_RANGE per run;")
        out.append("  to shared: the per-page return of phase 2 against phase 4's CONVERT_RANGE"
                   " of the same runs.")
    bad = False
    for n, r in [(n, r) for n, r in runs.items()] + [(f"churn-{n}", r) for n, r in churns.items()]:
        problems = [f"missing {m}" for m in dict.fromkeys(r.missing)]
        problems += [f"error {e}" for e in r.errors]
        if not r.finished:
            problems.append("the workload did not finish")
        if not r.faults and not n.startswith("churn-"):
            problems.append("missing fault phase: no region measured")
        if r.exit not in (0, None) and not r.missing and not r.errors:
            problems.append(f"the workload exited with {r.exit}")
        if problems:
            bad = True
            out.append(f"  INCOMPLETE {n}:")
            out.extend(f"    {x}" for x in problems)
    if runs:
        for n in [p for p in POLICIES if p in runs] + [p for p in runs if p not in POLICIES]:
            out.append("")
            policy_table(runs[n], out)
        out.append("")
        rates_table(runs, out)
        out.append("")
        versus_split(runs, out)
        out.append("")
        fault_section(runs, out)
    if churns:
        out.append("")
        churn_section(churns, replay, out)
    out.append("")
    failed = goals(runs, out, churns, replay)
    if args.svg:
        svg(runs, args.svg, churns)
        out.append("")
        out.append(f"picture: {args.svg}")
    if args.churn_svg and churns:
        churn_svg(churns, args.churn_svg)
        out.append(f"picture: {args.churn_svg}")
    if bad:
        out.append("")
        out.append("INCOMPLETE: a run lacked a piece of issue 5, 9 or 12 or failed (see above);"
                   " n/a marks what it could not measure.")
    if failed:
        out.append("")
        out.append(f"FAILED: a goal whose counts are deterministic is not met for"
                   f" {', '.join(failed)} (the fault phase of issue 9, the churn workload under"
                   " coalesce): this is a bug.")
    print("\n".join(out))
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
