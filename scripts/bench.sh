#!/usr/bin/env bash
# make bench: the direct-map benchmark of issue 5, with the fault phase of issue 9
# and the churn workload of issue 12.
#
# Then the timing rounds of issue 12: BENCH_ROUNDS rounds (default 5) in which
# split and coalesce each run the conversion steps alone (vm/bench.c -T) in a
# fresh VM, the policies alternating (coalesce first in even rounds); the
# phases run above is round 1.  A fresh VM per run rather than one VM that
# reloads the module, because split marks the direct map 4K for good
# (set_memory_4k()), and the next policy would start from its leftovers.
#
# Boots a fresh test VM per direct-map policy (snp_host.ko loaded with
# directmap=<policy>), runs the same seeded workload (vm/bench.c) in each, then
# one more fresh VM per policy for the churn workload (vm/bench.c -C: guest
# lifetimes one after the other on a pool allocated afresh each time), replays
# the churn runs' placement in the host-side simulation (make simulate), and
# writes to build/bench/:
#   <policy>.log        the workload's lines (vm/bench.c says what they mean)
#   churn-<policy>.log  the churn workload's lines
#   time<r>-<policy>.log a timing round's lines
#   replay.txt          the simulation's replay of the churn runs, against their counts
#   report.txt          the report, also printed (scripts/bench-report.py)
#   directmap.svg       the direct map per policy and phase, from the page-table dump,
#                       and per policy after chosen lifetimes of the churn run
#   churn.svg           DirectMap4k against the lifetime, one line per policy
#   vm-<policy>/, vm-churn-<policy>/  each VM's console.log, qemu.log and initramfs
#
# BENCH_POLICIES  policies, in order (default: split perpage coalesce)
# BENCH_SEED      seed of the workload (default 1)
# BENCH_ARGS      more options for vm/bench.c, comma-separated, e.g. -m,512,-f,10
#                 (-F,<regions>,-R,<runs> size the fault phase: 32 regions x 5 runs)
# BENCH_WORKLOADS which to run: "phases churn" (default), "phases" or "churn"
# BENCH_LIFETIMES lifetimes of the churn workload (default 20)
# BENCH_ROUNDS    timing rounds, counting the phases run (default 5; 1: none more)
# VM_TIMEOUT      seconds each VM may take (default 300, see scripts/vm.sh; 900 for churn)
# BENCH_NO_KVM    set: skip the KVM workload (scripts/kvm-bench.sh says what it runs)
#
# Exits non-zero when a VM failed, a run lacked a piece of issue 5, 9 or 12, or
# a goal whose counts are deterministic was missed (the fault phase, the churn
# goal under coalesce); the report is printed either way, with n/a for what
# could not be measured.
set -euo pipefail
. "$(dirname "$0")/env.sh"

out=$top/build/bench
bin=$out/bench
policies=${BENCH_POLICIES:-split perpage coalesce}
seed=${BENCH_SEED:-1}
workloads=${BENCH_WORKLOADS:-phases churn}
lifetimes=${BENCH_LIFETIMES:-20}
rounds=${BENCH_ROUNDS:-5}
case "$lifetimes$rounds" in
'' | *[!0-9]*) die "BENCH_LIFETIMES and BENCH_ROUNDS must be numbers" ;;
esac

# `make bench` builds first; run on its own, this script does it.
if [ -z "${SNP_BENCH_BUILT:-}" ]; then
	make -C "$top" --no-print-directory modules "$bin"
fi
[ -x "$bin" ] || die "no bench program at $bin (run: make bench)"
mkdir -p "$out"

rc=0
# One fresh VM: bench_vm <name> <policy> <log> <options for vm/bench.c>.
bench_vm() {
	local name=$1 p=$2 log=$3 args=$4 start=$SECONDS
	note "$name (directmap=$p): booting a fresh VM (seed $seed)"
	if ! BENCH_NAME=$name BENCH_POLICY=$p BENCH_BIN=$bin BENCH_ARGS="$args" \
		bash "$top/scripts/vm.sh" bench >"$log"; then
		note "$name: the run failed (see $log and $out/vm-$name/console.log)"
		rc=1
	fi
	note "$name: done in $((SECONDS - start)) s"
}

logs=()
churn_logs=()
report=()
for p in $policies; do
	case " $workloads " in *" phases "*) ;; *) break ;; esac
	bench_vm "$p" "$p" "$out/$p.log" "-s,$seed${BENCH_ARGS:+,$BENCH_ARGS}"
	logs+=("$out/$p.log")
done
timing=()
# Whether the word list $1 holds the word $2.
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
if has "$workloads" phases && has "$policies" split && has "$policies" coalesce; then
	for r in $(seq 2 "$rounds"); do
		order="split coalesce"
		[ $((r % 2)) -eq 0 ] && order="coalesce split"
		for p in $order; do
			bench_vm "time$r-$p" "$p" "$out/time$r-$p.log" \
				"-s,$seed,-T${BENCH_ARGS:+,$BENCH_ARGS}"
			timing+=(--timing "$r:$out/time$r-$p.log")
		done
	done
fi
for p in $policies; do
	case " $workloads " in *" churn "*) ;; *) break ;; esac
	[ "$lifetimes" -gt 0 ] || break
	VM_TIMEOUT=${VM_TIMEOUT:-900} bench_vm "churn-$p" "$p" "$out/churn-$p.log" \
		"-s,$seed,-C,$lifetimes${BENCH_ARGS:+,$BENCH_ARGS}"
	churn_logs+=("$out/churn-$p.log")
done

if [ ${#churn_logs[@]} -gt 0 ]; then
	# The simulation replays each run's placement on the PFNs it recorded.
	if cargo run --release --quiet --bin snp-host-simulate -- replay "${churn_logs[@]}" \
		>"$out/replay.txt" 2>"$out/replay.err"; then
		report+=(--replay "$out/replay.txt")
	else
		note "the simulation could not replay the churn runs (see $out/replay.err)"
		rc=1
	fi
	report+=(--churn-svg "$out/churn.svg")
	for l in "${churn_logs[@]}"; do
		report+=(--churn "$l")
	done
fi

python3 "$top/scripts/bench-report.py" --svg "$out/directmap.svg" "${report[@]}" \
	"${timing[@]}" "${logs[@]}" |
	tee "$out/report.txt" || rc=1

# The KVM workload (issue 10): its own VM, report and goals (scripts/kvm-bench.sh).
if [ -z "${BENCH_NO_KVM:-}" ]; then
	SNP_BENCH_BUILT=1 bash "$top/scripts/kvm-bench.sh" || rc=1
fi
exit "$rc"
