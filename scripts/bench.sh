#!/usr/bin/env bash
# make bench: the direct-map benchmark of issue 5, with the fault phase of issue 9.
#
# Boots a fresh test VM per direct-map policy (snp_host.ko loaded with
# directmap=<policy>), runs the same seeded workload (vm/bench.c) in each, and
# writes to build/bench/:
#   <policy>.log    the workload's lines (vm/bench.c says what they mean)
#   report.txt      the report, also printed (scripts/bench-report.py)
#   directmap.svg   the direct map per policy and phase, from the page-table dump
#   vm-<policy>/    each VM's console.log, qemu.log and initramfs
#
# BENCH_POLICIES  policies, in order (default: split perpage coalesce)
# BENCH_SEED      seed of the workload (default 1)
# BENCH_ARGS      more options for vm/bench.c, comma-separated, e.g. -m,512,-f,10
#                 (-F,<regions>,-R,<runs> size the fault phase: 32 regions x 5 runs)
# VM_TIMEOUT      seconds each VM may take (default 300, see scripts/vm.sh)
# BENCH_NO_KVM    set: skip the KVM workload (scripts/kvm-bench.sh says what it runs)
#
# Exits non-zero when a VM failed, a run lacked a piece of issue 5 or 9, or the
# fault phase missed its goal (its counts are deterministic); the report is
# printed either way, with n/a for what could not be measured.
set -euo pipefail
. "$(dirname "$0")/env.sh"

out=$top/build/bench
bin=$out/bench
policies=${BENCH_POLICIES:-split perpage coalesce}
seed=${BENCH_SEED:-1}

# `make bench` builds first; run on its own, this script does it.
if [ -z "${SNP_BENCH_BUILT:-}" ]; then
	make -C "$top" --no-print-directory modules "$bin"
fi
[ -x "$bin" ] || die "no bench program at $bin (run: make bench)"
mkdir -p "$out"

rc=0
logs=()
for p in $policies; do
	log=$out/$p.log
	note "directmap=$p: booting a fresh VM (seed $seed)"
	start=$SECONDS
	if ! BENCH_POLICY=$p BENCH_BIN=$bin BENCH_ARGS="-s,$seed${BENCH_ARGS:+,$BENCH_ARGS}" \
		bash "$top/scripts/vm.sh" bench >"$log"; then
		note "directmap=$p: the run failed (see $log and $out/vm-$p/console.log)"
		rc=1
	fi
	note "directmap=$p: done in $((SECONDS - start)) s"
	logs+=("$log")
done

python3 "$top/scripts/bench-report.py" --svg "$out/directmap.svg" "${logs[@]}" |
	tee "$out/report.txt" || rc=1

# The KVM workload (issue 10): its own VM, report and goals (scripts/kvm-bench.sh).
if [ -z "${BENCH_NO_KVM:-}" ]; then
	SNP_BENCH_BUILT=1 bash "$top/scripts/kvm-bench.sh" || rc=1
fi
exit "$rc"
