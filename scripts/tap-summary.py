#!/usr/bin/env python3
"""Print the test VM's TAP results and summarise them.

usage: tap-summary.py RESULTS CONSOLE
       tap-summary.py --splats CONSOLE   (print the splats only; exit 1 if any)
       tap-summary.py --count-splats CONSOLE   (print how many lines are splats)

RESULTS is the TAP the guest wrote (nested KTAP from KUnit and kselftest
blocks, indented under the line that reports each program).  Only leaf results
are counted, so a suite is not counted on top of its tests; a parent that
failed while none of its children did (a program that crashed or exited
non-zero after passing tests) counts as one failure.  CONSOLE is the kernel
log, scanned for splats: any of them is a failure.  The last line printed is
"N passed, N failed, N skipped"; the exit status is non-zero on any failure,
on a missing end marker (crash, panic) and when nothing ran at all.
"""
import re
import sys

RESULT = re.compile(r"^(\s*)(ok|not ok) \d+\b(.*)$")
# Lockdep reports start with "WARNING:" or "BUG:" or name their problem below;
# the word "lockdep" alone also appears in the boot banner of a debug kernel
# ("RCU lockdep checking is enabled"), which is not a report.  The watchdogs
# say "BUG: soft lockup - CPU#n stuck for Ns!" and "INFO: task NAME:PID
# blocked for more than N seconds." (with "hung_task" in the panic and
# "Showing all locks held" lines around it); RCU says "detected stalls" or
# "self-detected stall".
SPLATS = re.compile(
    r"BUG:|WARNING:|Oops|KASAN|KFENCE: |UBSAN|possible circular locking|"
    r"possible recursive locking|inconsistent lock state|suspicious RCU usage|"
    r"lock held when returning|INFO: lockdep is turned off|Call Trace|"
    r"Kernel panic|general protection fault|RCU stall|self-detected stall|"
    r"detected stalls|soft lockup|hard LOCKUP|blocked for more than|hung_task"
)


def count(lines):
    passed = failed = skipped = 0
    # Stack of (indent, deeper_seen, deeper_failed) for open levels.
    deeper = {}  # indent -> (seen a deeper result, a deeper result failed)
    for line in lines:
        m = RESULT.match(line)
        if not m:
            continue
        indent, status, rest = len(m.group(1)), m.group(2), m.group(3)
        seen, child_failed = False, False
        for d in [d for d in deeper if d > indent]:
            s, f = deeper.pop(d)
            seen, child_failed = seen or s, child_failed or f
        is_fail = status == "not ok"
        if not seen:
            if is_fail:
                failed += 1
            elif re.search(r"#\s*SKIP", rest, re.I):
                skipped += 1
            else:
                passed += 1
        elif is_fail and not child_failed:
            failed += 1
        s, f = deeper.get(indent, (False, False))
        deeper[indent] = (True, f or is_fail or child_failed)
    return passed, failed, skipped


def splats_in(console):
    return [l for l in console if SPLATS.search(l)]


def main():
    if sys.argv[1] == "--count-splats":
        with open(sys.argv[2], errors="replace") as f:
            print(len(splats_in(f.read().splitlines())))
        return 0
    if sys.argv[1] == "--splats":
        with open(sys.argv[2], errors="replace") as f:
            found = splats_in(f.read().splitlines())
        for l in found[:40]:
            print(l)
        return 1 if found else 0
    results_path, console_path = sys.argv[1], sys.argv[2]
    with open(results_path, errors="replace") as f:
        lines = f.read().splitlines()
    with open(console_path, errors="replace") as f:
        console = f.read().splitlines()

    finished = "=== end" in lines
    for line in lines:
        if line != "=== end":
            print(line)
    passed, failed, skipped = count(lines)

    splats = splats_in(console)
    if splats:
        print("not ok - kernel log is clean")
        for l in splats[:40]:
            print("# " + l)
        failed += 1
    else:
        print("ok - kernel log is clean (no BUG/WARNING/Oops/KASAN/KFENCE/lockdep report/"
              "Call Trace/soft lockup/hung task/RCU stall)")
        passed += 1

    if not finished:
        print("not ok - the VM finished its run (it crashed or stopped early); console tail:")
        for l in console[-30:]:
            print("# " + l)
        failed += 1
    if passed + failed + skipped == 0:
        failed += 1

    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
