# SPDX-License-Identifier: GPL-2.0
#
# snp_host: the two commands are `make run` and `make check` (see README.md).
#
# KDIR is the kernel tree the module builds against.  Left unset, it is the
# project kernel in the cache ($SNP_HOST_CACHE, default ~/.cache/snp-host),
# built on first use from linux-source + kconfig/ + patches/.  Set it to use
# your own prepared tree: CONFIG_RUST=y and patches/ applied.

SHELL := /bin/bash
top := $(CURDIR)
BUILD := $(top)/build
KMAKE := bash $(top)/scripts/kmake.sh
# DEBUG=1 selects the lockdep/DEBUG_VM/KFENCE kernel (kconfig/debug.config).
DEBUG ?= 0
export DEBUG
# INTREE=1 selects the kernel with the driver built in (make check-intree).
INTREE ?= 0
export INTREE

ifeq ($(origin KDIR),undefined)
# $(shell) does not see exported variables (make 4.3): pass DEBUG explicitly.
KDIR := $(shell DEBUG=$(DEBUG) INTREE=$(INTREE) bash $(top)/scripts/kernel.sh dir)
OWN_KERNEL := 1
endif
# The scripts (vm.sh, rustfmt-check.sh) use the same tree as the build.
export KDIR

# Module objects go to build/module (MO=), keeping the source tree clean,
# which kbuild requires for the separate clippy build below.
MODULE := $(BUILD)/module/snp_host/snp_host.ko
SELFTESTS := $(top)/tools/testing/selftests/snp_host

.PHONY: all modules deps kernel selftests kvm-selftests run check host-check module-lint \
	rustfmtcheck checkpatch vm-check vm-shell stress stress-vm clean purge-cache help tool install

all: modules tool

help:
	@echo 'make run          set up on first use, boot the test VM, load snp_host and tell what it did'
	@echo 'make check        every test: host crate tests and lints, module lints, checkpatch, VM tests'
	@echo '                  EXTRA_TESTS=<dir> adds every executable in <dir> as one more VM test'
	@echo '                  FUZZ_SECONDS=<s> FUZZ_SEED=<n> runs the ABI fuzzer longer (default 3 s a phase)'
	@echo 'make              build build/module/snp_host/snp_host.ko (KDIR=<tree> for your own kernel)'
	@echo '                  and the operator'"'"'s tool build/snp-host/snp-host (tools/snp-host)'
	@echo 'make install      the module (modules_install) and snp-host into $$(DESTDIR)$$(SBINDIR)'
	@echo 'make checkpatch   the kernel'"'"'s checkpatch.pl --strict over patches/, the C selftests and vm/*.c'
	@echo 'make vm-shell     boot the test VM with an interactive shell'
	@echo 'make bench        direct-map benchmark: a fresh VM per policy; report and picture in build/bench/'
	@echo 'make stress       random operations against a model on the debug kernel (STRESS_OPS, STRESS_SEED)'
	@echo 'make simulate     the direct map of a 1 TiB host over 1,000 guest lifetimes, host only; build/simulate/'
	@echo 'make kernel       build (or find in the cache) the project kernel; DEBUG=1 for the debug variant'
	@echo 'make check-intree the VM tests on the kernel with the driver built in (CONFIG_SNP_HOST=y)'
	@echo 'make kvm-selftests  the upstream KVM selftests of vm/kvm-tests, static, into build/kvm'
	@echo 'make clean        remove build products from the work tree (the cache stays)'
	@echo 'make purge-cache  drop every cached kernel build'

deps:
	@bash scripts/deps.sh

kernel: deps
ifdef OWN_KERNEL
	@bash scripts/kernel.sh build >/dev/null
endif

# Objects built against another tree (DEBUG=1, another KDIR) are not reused:
# kbuild would keep a .ko whose struct module no longer matches.
modules: kernel
	@if [ "$$(cat $(BUILD)/module/.kdir 2>/dev/null)" != "$(KDIR)" ]; then \
		rm -rf $(BUILD)/module && mkdir -p $(BUILD)/module && \
		echo "$(KDIR)" >$(BUILD)/module/.kdir; fi
	+$(KMAKE) -C $(KDIR) M=$(top) MO=$(BUILD)/module modules

selftests: kernel
	+$(MAKE) -C $(SELFTESTS) KSFT_DIR=$(KDIR)/tools/testing/selftests OUTPUT=$(BUILD)/selftests

# Upstream's KVM selftests (issue 10), the ones vm/kvm-tests lists, built
# statically from the project kernel's own tree (after its uapi headers) into
# build/kvm; vm.sh runs each under build/vm/kvm_check, without the module and
# with it, and build/vm/kvm_busy (rmmod refused while a VM has private pages),
# which needs the same headers.
KVM_OUT := $(BUILD)/kvm
KVM_TESTS := $(sort $(shell sed -e 's/\#.*//' vm/kvm-tests | awk 'NF { print $$2 }'))

# Like the module's objects, they are rebuilt for another tree: their
# dependency files name the sources of the tree they were built from, which
# the kernel cache may have removed since.
kvm-selftests: kernel $(BUILD)/vm/kvm_check
	@if [ "$$(cat $(KVM_OUT)/.kdir 2>/dev/null)" != "$(KDIR)" ]; then \
		rm -rf $(KVM_OUT) && mkdir -p $(KVM_OUT) && echo "$(KDIR)" >$(KVM_OUT)/.kdir; fi
	+$(KMAKE) -C $(KDIR) -s headers
	+$(MAKE) -s -C $(KDIR)/tools/testing/selftests/kvm EXTRA_CFLAGS=-static OUTPUT=$(KVM_OUT) \
		$(addprefix $(KVM_OUT)/,$(KVM_TESTS))
	$(CC) -Wall -Wextra -O2 -static -Iinclude/uapi -isystem $(KDIR)/usr/include \
		-o $(BUILD)/vm/kvm_busy vm/kvm_busy.c

$(BUILD)/vm/kvm_check: vm/kvm_check.c include/uapi/linux/snp_host.h
	mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -O2 -static -Iinclude/uapi -o $@ $<

# The demo `make run` shows; like the selftests it runs inside the VM.
$(BUILD)/vm/demo: vm/demo.c include/uapi/linux/snp_host.h
	mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -O2 -static -Iinclude/uapi -o $@ $<

# The stress run of issue 11 (vm/stress.c); it includes the selftests' helpers.
$(BUILD)/vm/stress: vm/stress.c include/uapi/linux/snp_host.h $(SELFTESTS)/snp_host_util.h
	mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -O2 -static -pthread -Iinclude/uapi -I$(SELFTESTS) -o $@ $<

# `make stress` runs on the debug kernel: KDIR is chosen when the Makefile is
# read, so the run is a second make with DEBUG=1 (unless KDIR is your own).
stress:
ifeq ($(OWN_KERNEL)$(DEBUG),10)
	+@unset KDIR; $(MAKE) --no-print-directory DEBUG=1 stress-vm
else
	+@$(MAKE) --no-print-directory stress-vm
endif

stress-vm: modules kvm-selftests $(BUILD)/vm/stress
	@MODULE=$(MODULE) bash scripts/vm.sh stress

# The operator's tool (issue 13, tools/snp-host/README.md), linked statically
# so that it runs in the busybox VM as on any host; cargo decides what to
# rebuild.  --target keeps +crt-static away from build scripts and proc
# macros, and keeps these objects apart from host-check's.  Its VM test's
# probe reads the module through the header alone.
TOOL := $(BUILD)/snp-host/snp-host
TOOL_TARGET := x86_64-unknown-linux-gnu
SBINDIR ?= /usr/local/sbin

tool:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
		-p snp-host --target $(TOOL_TARGET)
	mkdir -p $(dir $(TOOL))
	cp target/$(TOOL_TARGET)/release/snp-host $(TOOL)
	$(CC) -Wall -Wextra -O2 -static -Iinclude/uapi -o $(BUILD)/snp-host/abi_probe \
		tools/snp-host/tests/abi_probe.c

# The module into $(DESTDIR)/lib/modules/<release>/updates (kbuild's
# modules_install), the tool into $(DESTDIR)$(SBINDIR).
install: modules tool
	+$(KMAKE) -C $(KDIR) M=$(top) MO=$(BUILD)/module \
		$(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR)) modules_install
	install -D -m 0755 $(TOOL) $(DESTDIR)$(SBINDIR)/snp-host

run: modules selftests $(BUILD)/vm/demo tool
	@MODULE=$(MODULE) bash scripts/vm.sh run

# The direct-map benchmark (issue 5): the workload runs inside the VM, one
# fresh VM per directmap= policy; scripts/bench.sh says what it writes.
$(BUILD)/bench/bench: vm/bench.c include/uapi/linux/snp_host.h
	mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -O2 -static -Iinclude/uapi -o $@ $<

.PHONY: bench
bench: modules $(BUILD)/bench/bench kvm-selftests
	@MODULE=$(MODULE) SNP_BENCH_BUILT=1 bash scripts/bench.sh

# The direct map of a 1 TiB host over 1,000 guest lifetimes, per policy (issue
# 12), simulated on the host with the module's planning code (tools/simulate);
# where `make bench` left churn logs, their replay says whether the simulation
# counts what the VM counted.
.PHONY: simulate
simulate:
	@mkdir -p $(BUILD)/simulate
	@set -o pipefail; cargo run --release --quiet --bin snp-host-simulate -- \
		host --svg $(BUILD)/simulate/directmap4k.svg | tee $(BUILD)/simulate/report.txt
	@logs=$$(ls $(BUILD)/bench/churn-*.log 2>/dev/null || true); \
	if [ -z "$$logs" ]; then echo "no churn logs in build/bench: make bench first to check the simulation against the VM"; \
	else echo; cargo run --release --quiet --bin snp-host-simulate -- replay $$logs \
		>$(BUILD)/simulate/replay.txt; rc=$$?; grep -v '^replay ' $(BUILD)/simulate/replay.txt; exit $$rc; fi

check: host-check module-lint checkpatch vm-check

host-check: deps
	cargo test --quiet --workspace
	cargo clippy --quiet --workspace --all-targets -- -D warnings
	cargo fmt --all --check
	python3 scripts/syzlang-check.py --self-test

# Lint in a separate output directory so that clippy really runs every time
# instead of seeing up-to-date objects; warnings are errors.
module-lint: kernel
	rm -rf $(BUILD)/clippy
	mkdir -p $(BUILD)/clippy
	+$(KMAKE) -C $(KDIR) M=$(top) MO=$(BUILD)/clippy CLIPPY=1 KRUSTFLAGS=-Dwarnings modules
	$(MAKE) rustfmtcheck

# The kernel's own rustfmtcheck only walks the kernel tree (M= has no such
# target), so check the module's sources with the same rustfmt and config.
rustfmtcheck: kernel
	KDIR=$(KDIR) bash scripts/rustfmt-check.sh

# The kernel's own style checker, --strict, over the C that reads like kernel
# code: every patch of the series, the selftests and the VM programs.  Any
# error, warning or check fails (checkpatch.pl exits non-zero on each).  It
# runs from the top with relative names, so that its path rules (tools/...)
# apply as in the kernel tree, and with GIT_DIR naming the kernel tree's (absent)
# .git: its git-based checks are about the kernel's history, not ours.
CHECKPATCH := GIT_DIR=$(KDIR)/.git $(KDIR)/scripts/checkpatch.pl --strict --quiet
CHECKPATCH_PATCHES := $(sort $(wildcard patches/*.patch))
CHECKPATCH_FILES := $(sort $(wildcard tools/testing/selftests/snp_host/*.c \
	tools/testing/selftests/snp_host/*.h vm/*.c snp_host/abi_header.c tools/snp-host/tests/*.c \
	include/uapi/linux/snp_host.h))

checkpatch: kernel
	@bad=0; \
	for f in $(CHECKPATCH_PATCHES); do \
		$(CHECKPATCH) "$$f" || { echo "checkpatch: $$f above"; bad=1; }; \
	done; \
	for f in $(CHECKPATCH_FILES); do \
		$(CHECKPATCH) -f "$$f" || { echo "checkpatch: $$f above"; bad=1; }; \
	done; \
	[ $$bad = 0 ] && echo "checkpatch --strict: $(words $(CHECKPATCH_PATCHES)) patches and $(words $(CHECKPATCH_FILES)) C files clean"

vm-check: modules selftests kvm-selftests tool $(BUILD)/vm/stress
	@MODULE=$(MODULE) bash scripts/vm.sh check

# The driver as part of the kernel tree (issue 14): the INTREE=1 kernel, with
# patch 0030 and a copy of the driver's sources made by scripts/kernel.sh,
# built in (kconfig/intree.config), and the whole VM suite on it; what loads
# or unloads the module skips there.  A sub-make, since KDIR names the kernel
# (the environment's KDIR would be this make's: drop it).
.PHONY: check-intree vm-check-intree
check-intree:
	+env -u KDIR $(MAKE) INTREE=1 vm-check-intree

vm-check-intree: selftests kvm-selftests tool
	@bash scripts/vm.sh check

vm-shell: modules selftests tool
	@MODULE=$(MODULE) bash scripts/vm.sh shell

clean:
	-$(MAKE) -C $(SELFTESTS) OUTPUT=$(BUILD)/selftests clean
	rm -rf $(BUILD) target

purge-cache:
	@bash scripts/kernel.sh purge
