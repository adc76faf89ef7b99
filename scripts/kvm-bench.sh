#!/usr/bin/env bash
# The KVM workload of `make bench` (issue 10): one upstream KVM selftest that
# converts a software-protected guest's memory private and back, run in one VM
# without the module and with it under each direct-map policy, the
# configurations alternating round by round (TCG's timings drift by up to 2x
# between runs of the same code, so every with-module run is compared with the
# no-module run of its own round).  Writes build/bench/kvm.log (the VM's lines)
# and build/bench/kvm-report.txt (scripts/kvm-bench-report.py, also printed).
#
# KVM_BENCH_TEST      the selftest and its arguments, comma-separated
#                     (default: x86/private_mem_conversions_test, its default sizes)
# KVM_BENCH_RUNS      rounds (default 5, at least 5 for the goal to be decided)
# KVM_BENCH_POLICIES  policies, comma-separated (default split,coalesce)
#
# Exits non-zero when the VM failed or a goal was missed.
set -euo pipefail
. "$(dirname "$0")/env.sh"

out=$top/build/bench
mkdir -p "$out"
export KVM_BENCH_TEST=${KVM_BENCH_TEST:-x86/private_mem_conversions_test}
export KVM_BENCH_RUNS=${KVM_BENCH_RUNS:-5}
export KVM_BENCH_POLICIES=${KVM_BENCH_POLICIES:-split,coalesce}
if [ -z "${SNP_BENCH_BUILT:-}" ]; then
	make -C "$top" --no-print-directory modules kvm-selftests
fi
note "kvm: $KVM_BENCH_RUNS rounds of ${KVM_BENCH_TEST//,/ } (none,$KVM_BENCH_POLICIES) in one VM"
start=$SECONDS
rc=0
VM_TIMEOUT=${VM_TIMEOUT:-600} bash "$top/scripts/vm.sh" kvmbench >"$out/kvm.log" || rc=1
note "kvm: done in $((SECONDS - start)) s"
python3 "$top/scripts/kvm-bench-report.py" --runs "$KVM_BENCH_RUNS" "$out/kvm.log" |
	tee "$out/kvm-report.txt" || rc=1
exit "$rc"
