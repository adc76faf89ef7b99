# SPDX-License-Identifier: GPL-2.0
"""The cost of each conversion path in `make bench` (issue 12): counted work and timing.

scripts/bench-report.py imports this.  vm/bench.c prints, around every
conversion step, a "work" line with the changes of the module's counters
(SNP_HOST_GET_STATS) over the step; here they become work per converted page
(a 4K page, or a 2M page on the 2M paths), per policy and path:

  cpa calls    dm_cpa_calls: direct-map changes the module asked of the kernel
               (one set_memory_4k() per page, one protection call per batch,
               one restore per page, one merge call per batch)
  cpa changes  converted pages whose direct-map entry a call changed: the
               pages protected or restored (the change of dm_unmapped_pages),
               and under split the set_memory_4k() calls that marked an entry,
               which are the ones that flush (tlb_flushes)
  flushes      tlb_flushes
  walks        dm_walks: page-table walks the module made
  splits       dm_splits_2m + dm_splits_1g
  merges       dm_merges_2m + dm_merges_1g

The goal "range cost" compares coalesce with split on every range path,
term by term, against split plus what the protection itself needs: one CPA
change per page, one TLB flush per batch, and the calls that carry them (one
per batch to protect or to merge, one per page to restore: the kernel's
restore takes one run of pages, and a range gives each page back to its
owner as soon as its own restore is done).  Merges are the protection's
too: each undoes a split the protection needed, so a path may merge as many
regions as coalesce split over the workload, and no more, and read each back
with one page-table walk (only a walk tells which regions the kernel merged,
and how far).  Splits get no allowance.  Timing is compared per round of VMs that alternate the policies.
"""
import statistics

# (label, [(step name, path, level, dir)], range path?)
PATHS = [
    ("range to private, 4K", [("phase2", "range", 0, "private")], True),
    ("range to shared, 4K", [("phase4-runs", "range", 0, "shared"),
                             ("phase4-singles", "range", 0, "shared")], True),
    ("range to private, 2M", [("phase3", "range", 1, "private")], True),
    ("range to shared, 2M", [("phase4-2m", "range", 1, "shared")], True),
    ("per page to private, 4K (new splits)", [("phase1", "page", 0, "private")], False),
    ("per page to private, 4K", [("phase2", "page", 0, "private")], False),
    ("per page to shared, 4K", [("phase2-restore", "page", 0, "shared")], False),
    ("per page to private, 2M", [("phase3", "page", 1, "private")], False),
    ("per page to shared, 2M", [("phase3-restore", "page", 1, "shared")], False),
]
TERMS = ["cpa calls", "cpa changes", "flushes", "walks", "splits", "merges"]


def work_lines(run):
    """The "work" lines of a Run (bench-report.py keeps every line it did not parse)."""
    return getattr(run, "work", [])


def step(run, name, path, level, dirn):
    for w in work_lines(run):
        if (w.get("name"), w.get("path"), w.get("level"), w.get("dir")) == (name, path, level,
                                                                          dirn):
            return w
    return None


def counted(run, steps):
    """The summed work of `steps` in `run`: conversions, batches and each term, or None."""
    total = {"conversions": 0, "batches": 0, **{t: 0 for t in TERMS}}
    policy = run.policy
    for name, path, level, dirn in steps:
        w = step(run, name, path, level, dirn)
        if not w:
            return None
        unit = 512 if level else 1
        total["conversions"] += w["conversions"]
        total["batches"] += w["batches"]
        total["cpa calls"] += w["dm_cpa_calls"]
        changed = abs(w["unmapped"]) // unit
        if policy == "split":
            changed += w["tlb_flushes"]
        total["cpa changes"] += changed
        total["flushes"] += w["tlb_flushes"]
        total["walks"] += w["dm_walks"]
        total["splits"] += w["dm_splits_2m"] + w["dm_splits_1g"]
        total["merges"] += w["dm_merges_2m"] + w["dm_merges_1g"]
    return total


def per_page(total, term):
    if not total or not total["conversions"]:
        return None
    return total[term] / total["conversions"]


def fmt_pp(v):
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v else "0"


def work_section(runs, out):
    """The table of counted work per converted page."""
    names = [p for p in ("split", "perpage", "coalesce") if p in runs]
    if not any(work_lines(runs[n]) for n in names):
        out.append("== counted work per converted page: n/a (no work lines: an older bench program)"
                   " ==")
        return
    out.append("== counted work per converted page (the module's counters around each step;"
               " deterministic) ==")
    out.append("  " + f"{'':<40}{'policy':>9}" + "".join(f"{t:>12}" for t in TERMS)
               + f"{'pages':>9}{'batches':>9}")
    for label, steps, _ in PATHS:
        for i, n in enumerate(names):
            t = counted(runs[n], steps)
            row = f"  {label if i == 0 else '':<40}{n:>9}"
            row += "".join(f"{fmt_pp(per_page(t, term)):>12}" for term in TERMS)
            row += f"{t['conversions'] if t else 'n/a':>9}{t['batches'] if t else 'n/a':>9}"
            out.append(row)
    out.append("  per converted page (4K, or 2M on the 2M paths). cpa changes: pages protected or"
               " restored (the change of")
    out.append("  dm_unmapped_pages), under split the set_memory_4k() calls that marked an entry"
               " (those flush). Range to shared, 4K")
    out.append("  sums phase 4's runs and the single pages after them, which empty the regions"
               " and merge them.")


def allowance(term, t, merge_budget):
    """What the protection itself needs of `term`, per converted page, on a path with totals t."""
    n = t["conversions"]
    if term == "cpa changes":
        return 1.0
    if term == "flushes":
        return t["batches"] / n
    if term == "cpa calls":
        restores = t["cpa changes"] if t.get("dir") == "shared" else 0
        return (t["batches"] + restores) / n
    if term == "merges":
        return merge_budget / n
    if term == "walks":
        # Only a walk says what a merge did: one per region merged.
        return t["merges"] / n
    return 0.0


def cost_goal(runs, say):
    """[MET]/[NOT MET] range cost: counted work. Returns whether it was missed."""
    name = ("range cost: on every range path coalesce does no more counted work per page than"
            " split plus what the protection needs")
    s, c = runs.get("split"), runs.get("coalesce")
    if not (s and c and work_lines(s) and work_lines(c)):
        say(name, "n/a", ["needs the work lines of a split and a coalesce run"])
        return False
    # Every merge undoes one split the protection made: the workload's splits under
    # coalesce are what all its paths may merge, together.
    steps = [st for _, sts, _ in PATHS for st in sts]
    whole = counted(c, steps) or {"splits": 0}
    budget = whole["splits"]
    why, bad = [], False
    for label, steps, is_range in PATHS:
        ts, tc = counted(s, steps), counted(c, steps)
        if not ts or not tc:
            why.append(f"{label}: n/a")
            bad = bad or is_range
            continue
        tc["dir"] = steps[0][3]
        over = []
        for term in TERMS:
            limit = per_page(ts, term) + allowance(term, tc, budget)
            got = per_page(tc, term)
            if got > limit + 1e-9:
                over.append(f"{term} {fmt_pp(got)} > {fmt_pp(limit)}")
        parts = ", ".join(f"{term} {fmt_pp(per_page(tc, term))} (split {fmt_pp(per_page(ts, term))})"
                          for term in TERMS)
        if is_range:
            bad = bad or bool(over)
            why.append(f"{label}: {'within' if not over else 'OVER: ' + '; '.join(over)}")
            why.append(f"    {parts}")
        else:
            extra = per_page(tc, "flushes") - per_page(ts, "flushes")
            note = (f"{extra:+.3f} flushes per page against split" if extra > 1e-9
                    else "no flush more than split")
            why.append(f"{label} (per-page ioctl, not part of the goal): {note};"
                       f" {'within the range bound' if not over else 'over: ' + '; '.join(over)}")
    why.append(f"merges of the whole workload under coalesce: {whole.get('merges', 0)},"
               f" against the {budget} splits its protection made (a merge undoes one)")
    if whole.get("merges", 0) > budget:
        bad = True
    say(name, "NOT MET" if bad else "MET", why)
    return bad


def rate_of(run, steps):
    """Conversions per second over `steps` (summed), or None."""
    conv = ns = 0
    for name, path, _, dirn in steps:
        found = [r for r in run.rates if r["name"] == name and r.get("path") == path
                 and r.get("dir") == dirn]
        if not found or not found[0].get("ns"):
            return None
        conv += found[0]["conversions"]
        ns += found[0]["ns"]
    return conv * 1e9 / ns


def timing_rounds(runs, timing):
    """[(round, {policy: Run})]: the main runs are round 1, then the timing VMs."""
    rounds = {1: {p: r for p, r in runs.items() if p in ("split", "coalesce")}}
    for rnd, r in timing:
        rounds.setdefault(rnd, {})[r.policy] = r
    return sorted(rounds.items())


def timing_section(runs, timing, out, say):
    """coalesce/split per path as min/median/max over the rounds; the timing goal."""
    rounds = timing_rounds(runs, timing)
    out.append(f"== coalesce/split conversion rate per path over {len(rounds)} rounds"
               " (QEMU/TCG; VMs alternate the policies) ==")
    out.append("  round 1 is the full workload above (split before coalesce); rounds 2.. run"
               " only the conversion steps (vm/bench.c -T)")
    out.append("  in a fresh VM per policy, coalesce first in even rounds.")
    out.append("  " + f"{'':<40}{'min':>8}{'median':>8}{'max':>8}   per round")
    medians = {}
    for label, steps, is_range in PATHS:
        xs = []
        for _, pr in rounds:
            if "split" in pr and "coalesce" in pr:
                a, b = rate_of(pr["coalesce"], steps), rate_of(pr["split"], steps)
                if a and b:
                    xs.append(a / b)
        if not xs:
            out.append(f"  {label:<40}{'n/a':>8}")
            continue
        med = statistics.median(xs)
        if is_range:
            medians[label] = (med, len(xs))
        out.append(f"  {label:<40}{min(xs):>7.2f}x{med:>7.2f}x{max(xs):>7.2f}x   "
                   + " ".join(f"{x:.2f}" for x in xs))
    name = "range cost: coalesce's median rate on every range path >= 0.95x split's"
    why = [f"{label}: median {m:.2f}x over {k} rounds" for label, (m, k) in medians.items()]
    if len(medians) < 4 or min(k for _, k in medians.values()) < 5:
        say(name, "n/a", why + ["needs 5 rounds with split and coalesce on the 4 range paths"])
    else:
        ok = all(m >= 0.95 for m, _ in medians.values())
        say(name, "MET" if ok else "NOT MET", why)
