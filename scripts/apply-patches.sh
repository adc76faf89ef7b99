#!/usr/bin/env bash
# Apply patches/series to a kernel tree, idempotently.
#
# The tree records what has been applied to it, one "name hash" line per patch
# in order, in .snp-host-applied (appended as each patch applies, so an
# interrupted run resumes).  Patches already recorded are skipped; a recorded
# patch that the series no longer has at that place stops everything, since it
# must be reverted first (scripts/kernel.sh does).  Testing "is it applied?" by
# reversing each patch does not work once later patches touch the same lines.
# A patch that does not apply stops everything with its name, so a kernel
# update that breaks the series is noticed at once instead of producing a
# silently different kernel.
set -euo pipefail
. "$(dirname "$0")/env.sh"

tree=${1:?usage: apply-patches.sh <kernel tree>}
# A patch file that the series does not name would be checked (make checkpatch)
# and reviewed as part of the kernel side without ever being applied.
for f in "$top"/patches/*.patch; do
	grep -qxF "$(basename "$f")" "$top/patches/series" ||
		die "patches/$(basename "$f") is not in patches/series: add it or remove it"
done

state=$tree/.snp-host-applied
if [ ! -f "$state" ]; then
	# A tree finished before this record existed: its series record says what it has.
	if [ -f "$tree/.snp-host-series" ]; then
		cp "$tree/.snp-host-series" "$state"
	else
		: >"$state"
	fi
fi
mapfile -t applied <"$state"

i=0
while read -r p; do
	case "$p" in "" | "#"*) continue ;; esac
	f=$top/patches/$p
	[ -f "$f" ] || die "patches/series names $p, which does not exist"
	want="$p $(sha256sum <"$f" | cut -c1-16)"
	if [ "$i" -lt "${#applied[@]}" ]; then
		[ "${applied[i]}" = "$want" ] ||
			die "$tree has ${applied[i]%% *} (as recorded in $state) where the series has $p: revert it first"
		i=$((i + 1))
		continue
	fi
	if ! patch -d "$tree" -p1 -N -s -f --dry-run <"$f" >/dev/null 2>&1; then
		patch -d "$tree" -p1 -N -f --dry-run <"$f" >&2 || true
		die "patches/$p does not apply to $tree (kernel $KERNEL_VERSION): refresh it"
	fi
	note "applying $p"
	patch -d "$tree" -p1 -N -s -f <"$f"
	echo "$want" >>"$state"
	i=$((i + 1))
done <"$top/patches/series"
[ "$i" -ge "${#applied[@]}" ] ||
	die "$tree has patches applied after ${applied[i - 1]%% *} that the series does not have: revert them first"
