#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Report of the KVM workload of `make bench` (scripts/kvm-bench.sh, issue 10).

Reads the lines the test VM's kvmbench mode wrote (vm/init): a header
"round <n> <none|policy>" before each run of the selftest under kvm_check,
whose own lines follow ("<test> ran for <s> s", "kvm: make_private +<n>,
make_shared +<n>, ...", "DirectMap4k <a> -> <b> kB, 2M ... 1G ...",
"direct map: 2M splits +<n>, merges +<n>, TLB flushes +<n>, ...") and
"exit <status>".

Prints, per configuration: wall time as the ratio to the no-module run of the
same round (min/median/max over the rounds), pages converted per second
through the provider, the direct-map work, and DirectMap* after the guest
exited against before it started.  Goals, decided from those numbers:
  - median coalesce within 1.25x of no module;
  - after every coalesce run DirectMap4k/2M/1G are back to where they were
    (and the report says what split left behind).
Exits 1 when a run failed or a goal was missed.
"""

import argparse
import re
import statistics
import sys

RATIO_GOAL = 1.25

ROUND = re.compile(r"^round (\d+) (\S+)$")
RAN = re.compile(r"ran for ([0-9.]+) s$")
KVM = re.compile(r"^kvm: make_private \+(\d+), make_shared \+(\d+)")
DMAP = re.compile(
    r"^DirectMap4k (\d+) -> (\d+) kB, 2M (\d+) -> (\d+) kB, 1G (\d+) -> (\d+) kB$"
)
WORK = re.compile(r"^direct map: 2M splits \+(\d+), merges \+(\d+), TLB flushes \+(\d+)")
EXIT = re.compile(r"^exit (\d+)$")


class Run:
    def __init__(self, rnd, config):
        self.round = rnd
        self.config = config
        self.seconds = None
        self.private = self.shared = 0
        self.dmap = None
        self.work = None
        self.exit = None


def parse(path):
    runs, errors, cur = [], [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = ROUND.match(line)
            if m:
                cur = Run(int(m.group(1)), m.group(2))
                runs.append(cur)
                continue
            if line.startswith("error"):
                errors.append(line)
                continue
            if cur is None:
                continue
            if m := RAN.search(line):
                cur.seconds = float(m.group(1))
            elif m := KVM.match(line):
                cur.private, cur.shared = int(m.group(1)), int(m.group(2))
            elif m := DMAP.match(line):
                cur.dmap = [int(x) for x in m.groups()]
            elif m := WORK.match(line):
                cur.work = [int(x) for x in m.groups()]
            elif m := EXIT.match(line):
                cur.exit = int(m.group(1))
    return runs, errors


def fmt_ratios(ratios):
    if not ratios:
        return "n/a"
    return "%.2fx / %.2fx / %.2fx" % (
        min(ratios),
        statistics.median(ratios),
        max(ratios),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="rounds the run was asked for")
    ap.add_argument("log")
    args = ap.parse_args()
    runs, errors = parse(args.log)
    ok = True
    for e in errors:
        print("error in the VM: " + e[len("error"):].strip())
        ok = False
    base = {r.round: r for r in runs if r.config == "none" and r.seconds}
    configs = []
    for r in runs:
        if r.config not in configs:
            configs.append(r.config)
    failed = [r for r in runs if r.exit != 0]
    for r in failed:
        print("run failed: round %d %s (exit %s)" % (r.round, r.config, r.exit))
        ok = False

    rounds = len(base)
    print("KVM workload: %d rounds, configurations alternating in each" % rounds)
    print("%-9s %-24s %-12s %-14s %s" % (
        "config", "time vs none min/med/max", "pages/s", "splits/merges",
        "TLB flushes"))
    summary = {}
    for c in configs:
        rs = [r for r in runs if r.config == c and r.seconds]
        ratios = [r.seconds / base[r.round].seconds for r in rs
                  if c != "none" and r.round in base]
        pages = sum(r.private + r.shared for r in rs)
        secs = sum(r.seconds for r in rs)
        rate = "%d" % (pages / secs) if c != "none" and secs else "-"
        if c == "none":
            ratios_s = "1.00x (%s s median)" % (
                "%.2f" % statistics.median(r.seconds for r in rs) if rs else "n/a")
        else:
            ratios_s = fmt_ratios(ratios)
        works = [r.work for r in rs if r.work]
        sm = ("%d/%d" % (sum(w[0] for w in works), sum(w[1] for w in works))
              if works else "-")
        fl = "%d" % sum(w[2] for w in works) if works else "-"
        print("%-9s %-24s %-12s %-14s %s" % (c, ratios_s, rate, sm, fl))
        summary[c] = (rs, ratios)

    print()
    print("DirectMap after the guest exited (kB, after - before, per run):")
    for c in configs:
        rs, _ = summary[c]
        deltas = []
        for r in rs:
            if r.dmap:
                d = r.dmap
                deltas.append("4k %+d 2M %+d 1G %+d" % (d[1] - d[0], d[3] - d[2], d[5] - d[4]))
        print("  %-9s %s" % (c, "; ".join(deltas) if deltas else "n/a"))

    print()
    print("Goals:")
    co_rs, co_ratios = summary.get("coalesce", ([], []))
    if len(co_ratios) >= 5:
        med = statistics.median(co_ratios)
        met = med <= RATIO_GOAL
        print("[%s] kvm speed: median coalesce/no-module %.2fx over %d rounds (goal <= %.2fx)"
              % ("MET" if met else "NOT MET", med, len(co_ratios), RATIO_GOAL))
        ok &= met
    else:
        print("[NOT MET] kvm speed: %d coalesce rounds with a baseline, need at least 5"
              % len(co_ratios))
        ok = False
    back = [r for r in co_rs if r.dmap and r.dmap[0] == r.dmap[1]
            and r.dmap[2] == r.dmap[3] and r.dmap[4] == r.dmap[5]]
    sp_rs, _ = summary.get("split", ([], []))
    sp_left = sum(r.dmap[1] - r.dmap[0] for r in sp_rs if r.dmap)
    met = bool(co_rs) and len(back) == len(co_rs)
    print("[%s] kvm direct map: coalesce back to its start after %d of %d runs; "
          "split left DirectMap4k %+d kB over its %d runs"
          % ("MET" if met else "NOT MET", len(back), len(co_rs), sp_left, len(sp_rs)))
    ok &= met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
