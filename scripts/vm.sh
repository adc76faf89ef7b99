#!/usr/bin/env bash
# Boot the test VM: QEMU/TCG with -cpu EPYC,+svm,+npt (nested SVM with NPT, so
# that KVM runs guests inside it), an initramfs of busybox-static, snp_host.ko,
# the statically linked selftests and the upstream KVM selftests of
# vm/kvm-tests (build/kvm, run under build/vm/kvm_check).
#
#   vm.sh run     load the module and tell, in words, what it found and did
#   vm.sh check   run KUnit + selftests (+ EXTRA_TESTS), scan the kernel log, summarise
#   vm.sh shell   the same VM with an interactive shell
#   vm.sh bench   one policy of `make bench`: BENCH_POLICY=split|perpage|coalesce loads the
#                 module with directmap=$BENCH_POLICY and runs the workload BENCH_BIN
#                 (default build/bench/bench) with BENCH_ARGS (comma-separated options);
#                 prints its lines.  It lives in build/bench/vm-$BENCH_NAME (default: the
#                 policy), apart from build/vm, so a bench and a check do not share an initramfs.
#   vm.sh kvmbench the KVM workload of `make bench`: KVM_BENCH_RUNS rounds of the upstream
#                 selftest KVM_BENCH_TEST (words comma-separated, path under build/kvm)
#                 without the module and with it under each of KVM_BENCH_POLICIES
#                 (comma-separated); lives in build/bench/vm-kvm.
#   vm.sh stress  `make stress`: build/vm/stress with STRESS_OPS (default 100000),
#                 STRESS_SEED, STRESS_INJECT, next to a KVM guest; ends with the line
#                 "stress: N operations, N mismatches, N splats, N pages lost", the
#                 splats counted in the whole kernel log (VM_TIMEOUT default 3600).
#
# The guest's console (kernel log) goes to build/vm/console.log; its results
# come back on a second serial port to build/vm/results.log.  A guest that does
# not power off within VM_TIMEOUT seconds is killed and counts as a failure.
set -euo pipefail
. "$(dirname "$0")/env.sh"

mode=${1:?usage: vm.sh run|check|shell|bench|kvmbench|stress}
kdir=${KDIR:-$(bash "$top/scripts/kernel.sh" dir)}
out=$top/build/vm
if [ "$mode" = bench ]; then
	bench_policy=${BENCH_POLICY:?vm.sh bench needs BENCH_POLICY}
	bench_bin=${BENCH_BIN:-$top/build/bench/bench}
	bench_args=${BENCH_ARGS:-}
	bench_name=${BENCH_NAME:-$bench_policy}
	case "$bench_policy$bench_args$bench_name" in
	*[!A-Za-z0-9,._-]*) die "BENCH_POLICY, BENCH_ARGS and BENCH_NAME may hold only letters, digits and , . _ -" ;;
	esac
	[ -x "$bench_bin" ] || die "no bench program at $bench_bin (run: make bench)"
	out=$top/build/bench/vm-$bench_name
fi
if [ "$mode" = kvmbench ]; then
	kvm_test=${KVM_BENCH_TEST:?vm.sh kvmbench needs KVM_BENCH_TEST}
	kvm_runs=${KVM_BENCH_RUNS:-5}
	kvm_policies=${KVM_BENCH_POLICIES:-split,coalesce}
	case "$kvm_test$kvm_runs$kvm_policies" in
	*[!A-Za-z0-9,._/-]*) die "KVM_BENCH_* may hold only letters, digits and , . _ / -" ;;
	esac
	out=$top/build/bench/vm-kvm
fi
if [ "$mode" = stress ]; then
	stress_args="${STRESS_OPS:-100000},${STRESS_SEED:-},${STRESS_INJECT:-}"
	case "$stress_args" in
	*[!0-9,]*) die "STRESS_OPS, STRESS_SEED and STRESS_INJECT must be numbers" ;;
	esac
	out=$top/build/stress
	VM_TIMEOUT=${VM_TIMEOUT:-3600}
fi
root=$out/root
# The debug kernel (KASAN, lockdep) runs the suite three to four times slower
# under TCG than the default one (make check DEBUG=1: about 12 minutes).
if [ "${DEBUG:-}" = 1 ]; then
	VM_TIMEOUT=${VM_TIMEOUT:-1800}
	# There x86/private_mem_conversions_test -n 4 -m 2 takes 70-90 s
	# (8 s on the default kernel) and set_memory_region_test up to 150 s.
	KVM_TIMEOUT=${KVM_TIMEOUT:-450}
fi
VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_MEM=${VM_MEM:-3G}
VM_CPU=${VM_CPU:-EPYC,+svm,+npt}
# vCPUs: 2 by default, as the machines have 2 cores; 1 shows what the
# cross-CPU TLB flushes (IPIs) cost under TCG.
VM_SMP=${VM_SMP:-2}
case "$VM_SMP" in '' | *[!0-9]* | 0*) die "VM_SMP must be a number of vCPUs" ;; esac

kernel=$kdir/arch/x86/boot/bzImage
module=${MODULE:-$top/build/module/snp_host/snp_host.ko}
[ -f "$kernel" ] || die "no kernel at $kernel (run: make kernel)"
# The in-tree kernel (make check-intree) has the driver built in: nothing to
# load, and /init is told so; the rest of the VM is the same.
builtin=0
grep -qx CONFIG_SNP_HOST=y "$kdir/.config" 2>/dev/null && builtin=1
case "$builtin$mode" in
0*) [ -f "$module" ] || die "no module at $module (run: make)" ;;
1check | 1shell) module= ;;
*) die "vm.sh $mode needs snp_host.ko; $kdir has it built in (use make check-intree)" ;;
esac
busybox=$(command -v busybox) || die "busybox-static is not installed (run: make deps)"

# Assemble the initramfs.
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules,tests,extra,kvm}
cp "$busybox" "$root/bin/busybox"
[ -z "$module" ] || cp "$module" "$root/lib/modules/"
cp "$top/vm/init" "$root/init"
[ -x "$out/demo" ] && cp "$out/demo" "$root/bin/snp_host_demo"
[ -x "$top/build/vm/stress" ] && cp "$top/build/vm/stress" "$root/bin/snp_host_stress"
# snp-host (make tool): the operator's tool for run and shell, and its test.
if [ -x "$top/build/snp-host/snp-host" ]; then
	cp "$top/build/snp-host/snp-host" "$root/bin/snp-host"
	if [ "$mode" = check ] && [ -x "$top/build/snp-host/abi_probe" ]; then
		cp "$top/build/snp-host/abi_probe" "$root/bin/snp_host_abi_probe"
		cp "$top/tools/snp-host/tests/vm-test.sh" "$root/tests/snp_host_cli_test"
	fi
fi
if [ "$mode" = bench ]; then
	cp "$bench_bin" "$root/bin/snp_host_bench"
fi
chmod +x "$root/init"
find "$top/build/selftests" -maxdepth 1 -type f -perm -u+x -exec cp {} "$root/tests/" \; 2>/dev/null || true
# The KVM selftests keep their paths (x86/...), as vm/kvm-tests names them.
if [ "$mode" = kvmbench ]; then
	t=${kvm_test%%,*}
	[ -x "$top/build/vm/kvm_check" ] || die "no build/vm/kvm_check (run: make kvm-selftests)"
	[ -x "$top/build/kvm/$t" ] || die "no KVM selftest at build/kvm/$t (run: make kvm-selftests)"
	cp "$top/build/vm/kvm_check" "$root/bin/kvm_check"
	mkdir -p "$root/kvm/$(dirname "$t")"
	cp "$top/build/kvm/$t" "$root/kvm/$t"
fi
if [ "$mode" = stress ]; then
	mkdir -p "$root/kvm/x86"
	cp "$top/build/kvm/x86/private_mem_conversions_test" "$root/kvm/x86/" ||
		die "no KVM selftest to run next to the stress (run: make kvm-selftests)"
fi
if [ "$mode" = check ] && [ -x "$out/kvm_check" ]; then
	cp "$out/kvm_check" "$root/bin/kvm_check"
	[ -x "$out/kvm_busy" ] && cp "$out/kvm_busy" "$root/bin/kvm_busy"
	cp "$top/vm/kvm-tests" "$root/kvm/tests"
	for t in $(sed -e 's/#.*//' "$top/vm/kvm-tests" | awk 'NF { print $2 }' | sort -u); do
		[ -x "$top/build/kvm/$t" ] || die "no KVM selftest at build/kvm/$t (run: make kvm-selftests)"
		mkdir -p "$root/kvm/$(dirname "$t")"
		cp "$top/build/kvm/$t" "$root/kvm/$t"
	done
fi
if [ -n "${EXTRA_TESTS:-}" ]; then
	[ -d "$EXTRA_TESTS" ] || die "EXTRA_TESTS=$EXTRA_TESTS is not a directory"
	find "$EXTRA_TESTS" -maxdepth 1 -type f -perm -u+x -exec cp {} "$root/extra/" \;
fi
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"

qemu=(qemu-system-x86_64 -accel tcg -cpu "$VM_CPU" -smp "$VM_SMP" -m "$VM_MEM" -no-reboot
	-kernel "$kernel" -initrd "$out/initramfs.cpio.gz")
# An unknown name=value on the command line reaches /init as an environment variable.
append="console=ttyS0 panic=-1 vmmode=$mode"
# The ABI fuzzer's knobs (make check FUZZ_SECONDS=600 FUZZ_SEED=0x...) reach
# abi_fuzz_test through /init's environment; a long run gets the time it needs.
for v in FUZZ_SECONDS FUZZ_SEED FUZZ_CALLS FUZZ_THREADS; do
	[ -n "${!v:-}" ] || continue
	case "${!v}" in *[!0-9a-fA-Fx]*) die "$v must be a number" ;; esac
	append+=" SNP_$v=${!v}"
done
if [ -n "${FUZZ_SECONDS:-}" ]; then
	append+=" TEST_TIMEOUT=$((2 * FUZZ_SECONDS + 120))"
	VM_TIMEOUT=$((VM_TIMEOUT + 2 * FUZZ_SECONDS))
elif [ -n "${TEST_TIMEOUT:-}" ]; then
	# Seconds each selftest and EXTRA_TESTS program may take (default 120).
	case "$TEST_TIMEOUT" in *[!0-9]* | 0*) die "TEST_TIMEOUT must be a number of seconds" ;; esac
	append+=" TEST_TIMEOUT=$TEST_TIMEOUT"
fi
# Seconds each KVM selftest may take (default 150, 450 on the debug kernel;
# see vm/kvm_check.c -t).
if [ -n "${KVM_TIMEOUT:-}" ]; then
	case "$KVM_TIMEOUT" in *[!0-9]* | 0*) die "KVM_TIMEOUT must be a number of seconds" ;; esac
	append+=" KVM_TIMEOUT=$KVM_TIMEOUT"
fi
if [ "$mode" = bench ]; then
	# nokaslr: the kernel image at the same physical place in every VM, so each
	# policy starts from the same direct map and the pool lands alike.
	append+=" nokaslr benchpolicy=$bench_policy benchargs=$bench_args"
fi
if [ "$mode" = kvmbench ]; then
	append+=" nokaslr kvmtest=$kvm_test kvmruns=$kvm_runs kvmpolicies=$kvm_policies"
fi
# Built in, parameters come from the command line: module_test checks that
# backend= arrives (emulated is what auto picks under TCG anyway).
if [ "$builtin" = 1 ]; then
	append+=" snpbuiltin=1 snp_host.backend=emulated"
fi

[ "$mode" = stress ] && append+=" stressargs=$stress_args"

if [ "$mode" = shell ]; then
	exec "${qemu[@]}" -nographic -append "$append"
fi

: >"$out/console.log"
: >"$out/results.log"
rc=0
# QEMU's stderr (TCG's notes on CPU features it does not emulate) is kept in qemu.log.
timeout -k 5 "$VM_TIMEOUT" "${qemu[@]}" -display none -monitor none \
	-serial "file:$out/console.log" -serial "file:$out/results.log" \
	-append "$append" </dev/null 2>"$out/qemu.log" || rc=$?
# The guest's ttys end lines with CR LF.
sed -i 's/\r$//' "$out/console.log" "$out/results.log"
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "error: the VM did not power off within ${VM_TIMEOUT}s; last console lines:" >&2
	sed -i 's/\r$//' "$out/console.log"
	tail -n 30 "$out/console.log" >&2
	exit 1
fi

case "$mode" in
run)
	if ! grep -q '^=== end$' "$out/results.log"; then
		echo "error: the VM stopped before it finished (qemu exit $rc); console:" >&2
		cat "$out/qemu.log" >&2
		tail -n 40 "$out/console.log" >&2
		exit 1
	fi
	sed '/^=== end$/d' "$out/results.log"
	;;
check)
	python3 "$top/scripts/tap-summary.py" "$out/results.log" "$out/console.log"
	;;
bench | kvmbench)
	# A benchmark whose kernel oopsed measured nothing (the patterns of tap-summary.py).
	if ! python3 "$top/scripts/tap-summary.py" --splats "$out/console.log" >"$out/splats.log"; then
		echo "error: the kernel log of the ${bench_policy:+directmap=$bench_policy }$mode run is not clean:" >&2
		cat "$out/splats.log" >&2
		echo "error kernel log not clean (see $out/console.log)"
		bench_rc=1
	fi
	if ! grep -q '^=== end$' "$out/results.log"; then
		echo "error: the VM stopped before it finished (qemu exit $rc); console:" >&2
		cat "$out/qemu.log" >&2
		tail -n 40 "$out/console.log" >&2
		echo "error the VM stopped before it finished"
		bench_rc=1
	fi
	sed '/^=== end$/d' "$out/results.log"
	exit "${bench_rc:-0}"
	;;
stress)
	sed '/^=== end$/d' "$out/results.log"
	line=$(grep -E '^stress: [0-9]+ operations, ' "$out/results.log" | tail -n 1) || true
	if [ -z "$line" ] || ! grep -q '^=== end$' "$out/results.log"; then
		echo "error: the stress run did not finish (qemu exit $rc); console:" >&2
		tail -n 40 "$out/console.log" >&2
		exit 1
	fi
	# The guest counted splats from its own start; the host counts the whole log.
	host=$(python3 "$top/scripts/tap-summary.py" --count-splats "$out/console.log")
	read -r ops mism guest lost <<<"$(echo "$line" | tr -cs '0-9' ' ')"
	splats=$((host > guest ? host : guest))
	python3 "$top/scripts/tap-summary.py" --splats "$out/console.log" >&2 || true
	echo "stress: $ops operations, $mism mismatches, $splats splats, $lost pages lost"
	# vm/init says "rmmod refused: ..." instead when injected failures leaked KVM
	# pages, which hold the module by design.
	grep -q '^rmmod ok$\|^rmmod refused: ' "$out/results.log" ||
		{ echo "error: rmmod snp_host failed" >&2; exit 1; }
	[ "$mism" = 0 ] && [ "$splats" = 0 ] && [ "$lost" = 0 ]
	;;
esac
