#!/usr/bin/env bash
# Apply patches/series to a kernel tree, idempotently.
#
# A patch that is already applied is skipped; one that neither applies nor is
# applied stops everything with its name, so a kernel update that breaks the
# series is noticed at once instead of producing a silently different kernel.
set -euo pipefail
. "$(dirname "$0")/env.sh"

tree=${1:?usage: apply-patches.sh <kernel tree>}
while read -r p; do
	case "$p" in "" | "#"*) continue ;; esac
	f=$top/patches/$p
	[ -f "$f" ] || die "patches/series names $p, which does not exist"
	if patch -d "$tree" -p1 -R -s -f --dry-run <"$f" >/dev/null 2>&1; then
		continue
	fi
	if ! patch -d "$tree" -p1 -N -s -f --dry-run <"$f" >/dev/null 2>&1; then
		patch -d "$tree" -p1 -N -f --dry-run <"$f" >&2 || true
		die "patches/$p does not apply to $tree (kernel $KERNEL_VERSION): refresh it"
	fi
	note "applying $p"
	patch -d "$tree" -p1 -N -s -f <"$f"
done <"$top/patches/series"
