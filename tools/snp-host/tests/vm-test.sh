#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The VM test of snp-host (issue 13): every command with and without --json,
# its JSON checked against what the module's ioctls (abi_probe, compiled from
# the header, not from the tool's code), debugfs and /proc say.  Needs
# snp_host.ko loaded; prints TAP; exit 0 pass, 4 skip, 1 fail.
#
#   vm-test.sh [SNP_HOST [ABI_PROBE]]    (default: snp-host, snp_host_abi_probe)
tool=${1:-snp-host}
probe=${2:-snp_host_abi_probe}
dfs=/sys/kernel/debug/snp_host
tmp=/tmp/snp-host-test.$$
mkdir -p "$tmp" || exit 1
n=0
failed=0
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { # check <description> <command...>: ok when the command succeeds
	d=$1
	shift
	if "$@" >"$tmp/why" 2>&1; then ok "$d"; else notok "$d" "$(head -c 2000 "$tmp/why")"; fi
}

# Loaded as snp_host.ko, or built in (CONFIG_SNP_HOST=y: no /proc/modules line).
if ! grep -q '^snp_host ' /proc/modules && ! [ -c /dev/snp_host ]; then
	echo "1..0 # SKIP snp_host is not loaded"
	exit 4
fi
command -v "$tool" >/dev/null || { echo "1..0 # SKIP no $tool"; exit 4; }

# serde_json's pretty output as "path value" lines: objects by key, arrays
# by index (entries.0.pfn), strings unquoted, empty containers as {} and [].
flatten() {
	awk '
	function path(key) {
		if (depth == 0) return key
		if (kind[depth] == "[") { key = idx[depth]++ }
		return prefix[depth] == "" ? key : prefix[depth] "." key
	}
	{
		line = $0
		sub(/^[ \t]+/, "", line)
		sub(/,$/, "", line)
		if (line == "}" || line == "]") { depth--; next }
		key = ""
		if (match(line, /^"[^"]*": /)) {
			key = substr(line, 2, RLENGTH - 4)
			line = substr(line, RLENGTH + 1)
		}
		if (NR == 1 && (line == "{" || line == "[")) {
			depth = 1; kind[1] = line; prefix[1] = ""; idx[1] = 0; next
		}
		p = path(key)
		if (line == "{" || line == "[") {
			depth++; kind[depth] = line; prefix[depth] = p; idx[depth] = 0; next
		}
		if (line ~ /^".*"$/) line = substr(line, 2, length(line) - 2)
		print p, line
	}
	END { if (depth != 0) exit 1 }'
}

# get <file> <path>: the value at <path> of a flattened document.
get() { awk -v p="$2" '$1 == p { $1 = ""; sub(/^ /, ""); print; found = 1 } END { exit !found }' "$1"; }

# Every command runs with and without --json; the JSON must flatten, carry
# "version 1", and the text must say something.
for c in ok status stats rmp directmap; do
	"$tool" "$c" >"$tmp/$c.txt" 2>"$tmp/$c.err"
	rc_text=$?
	"$tool" "$c" --json >"$tmp/$c.json" 2>>"$tmp/$c.err"
	rc_json=$?
	want=0
	[ "$c" = ok ] && want=$rc_json
	if [ "$rc_text" = "$want" ] && { [ "$c" = ok ] || [ "$rc_json" = 0 ]; } &&
		[ -s "$tmp/$c.txt" ] && flatten <"$tmp/$c.json" >"$tmp/$c.flat" &&
		[ "$(get "$tmp/$c.flat" version)" = 1 ]; then
		ok "snp-host $c, text and --json (exit $rc_text/$rc_json)"
	else
		notok "snp-host $c, text and --json" "exit $rc_text (text), $rc_json (json)" \
			"$(head -c 1500 "$tmp/$c.err")" "$(head -c 1500 "$tmp/$c.json")"
	fi
done

# status against SNP_HOST_GET_STATUS.
"$probe" status >"$tmp/probe.status" || notok "abi_probe status"
status_matches() {
	b=$(get "$tmp/probe.status" backend)
	case $b in 1) want=hardware ;; 2) want=emulated ;; *) want=unknown ;; esac
	[ "$(get "$tmp/status.flat" backend)" = "$want" ] || { echo "backend: $want expected"; return 1; }
	for f in rmp_base rmp_end max_pfn; do
		[ "$(get "$tmp/status.flat" $f)" = "$(get "$tmp/probe.status" $f)" ] ||
			{ echo "$f differs"; return 1; }
	done
	[ "$(get "$tmp/status.flat" flags.raw)" = "$(get "$tmp/probe.status" flags)" ] ||
		{ echo "flags differ"; return 1; }
	grep -q "^backend: $(get "$tmp/status.flat" backend)$" $dfs/status ||
		{ echo "debugfs backend differs"; return 1; }
	# The parameter as sysfs has it, the policy as the ioctl numbers it.
	p=$(get "$tmp/status.flat" directmap_policy)
	[ "$(cat /sys/module/snp_host/parameters/directmap)" = "$p" ] || { echo "policy $p"; return 1; }
	grep -q "backend *$(get "$tmp/status.flat" backend)" "$tmp/status.txt"
}
check "status --json matches SNP_HOST_GET_STATUS, debugfs and sysfs" status_matches

# ok: the exit status follows the required checks; the status flags decide
# the hook and KVM lines; the text has one line per check and the summary.
ok_consistent() {
	flags=$(get "$tmp/probe.status" flags)
	ready=$(get "$tmp/ok.flat" ready)
	bad=$(awk '$1 ~ /^checks\.[0-9]+\.required$/ && $2 == "true" { split($1, a, "."); r[a[2]] = 1 }
		$1 ~ /^checks\.[0-9]+\.result$/ { split($1, a, "."); v[a[2]] = $2 }
		END { for (i in r) if (v[i] != "PASS") n++; print n + 0 }' "$tmp/ok.flat")
	"$tool" ok >/dev/null
	rc=$?
	if [ "$bad" = 0 ]; then [ "$ready" = true ] && [ $rc = 0 ]; else [ "$ready" = false ] && [ $rc = 1 ]; fi ||
		{ echo "ready=$ready exit=$rc with $bad required checks not passing"; return 1; }
	verdict() { awk -v name="$1" '$1 ~ /\.name$/ && $2 == name { split($1, a, "."); i = a[2] }
		$1 == "checks." i ".result" && i != "" { print $2; exit }' "$tmp/ok.flat"; }
	want=FAIL
	[ $((flags & 12)) = 12 ] && want=PASS
	[ "$(verdict module.hooks)" = $want ] || { echo "module.hooks: $want expected"; return 1; }
	want=FAIL
	[ $((flags & 16)) = 16 ] && want=PASS
	[ "$(verdict module.kvm)" = $want ] || { echo "module.kvm: $want expected"; return 1; }
	[ "$(verdict module.loaded)" = PASS ] || { echo "module.loaded"; return 1; }
	if ! grep -qw sev_snp /proc/cpuinfo; then
		[ "$(get "$tmp/ok.flat" emulated_only)" = true ] || { echo "emulated_only"; return 1; }
		grep -q "only the emulated RMP is available" "$tmp/ok.txt" || { echo "no emulated note"; return 1; }
	fi
	checks=$(grep -c '\.name ' "$tmp/ok.flat")
	[ "$(grep -c '^\(PASS\|FAIL\|SKIP\)  ' "$tmp/ok.txt")" = "$checks" ] || { echo "lines"; return 1; }
	tail -n 1 "$tmp/ok.txt" | grep -q "^$(get "$tmp/ok.flat" summary | cut -c1-20)"
}
check "ok: exit status, module lines and text agree with the status flags" ok_consistent

# Counters: the JSON has every counter of the three ioctls, with their values.
counters_match() {
	"$probe" stats >"$tmp/probe.stats" || return 1
	"$tool" stats --json | flatten | grep -v '^version ' >"$tmp/stats.now" || return 1
	sort "$tmp/probe.stats" >"$tmp/a"
	sort "$tmp/stats.now" >"$tmp/b"
	cmp "$tmp/a" "$tmp/b" || { diff "$tmp/a" "$tmp/b"; return 1; }
	"$tool" stats >"$tmp/stats.txt" &&
		[ "$(grep -c '^  [a-z0-9_]* ' "$tmp/stats.txt")" = "$(wc -l <"$tmp/a")" ]
}
check "stats --json equals SNP_HOST_GET_{STATS,FAULT_STATS,KVM_STATS}, text has every counter" counters_match

# Pages made private by another process: stats, rmp and directmap see them.
"$probe" hold 4 >"$tmp/held" 2>&1 &
holder=$!
i=0
while ! grep -q '^ready' "$tmp/held" && [ $i -lt 100 ] && kill -0 $holder 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if grep -q '^ready' "$tmp/held"; then
	pfns=$(awk '$1 == "pfn" { print $2 }' "$tmp/held")
	first=$(echo "$pfns" | head -n 1)
	rmp_matches() {
		# shellcheck disable=SC2086 # one argument per PFN
		"$tool" rmp $pfns --json | flatten >"$tmp/rmp.flat" || return 1
		"$tool" rmp $pfns >"$tmp/rmp.txt" || return 1
		grep '^pfn' "$tmp/held" >"$tmp/pfnlines"
		i=0
		while read -r _ pfn _ gpa; do
			[ "$(printf '%d' "$pfn")" = "$(get "$tmp/rmp.flat" entries.$i.pfn)" ] &&
				[ "$(get "$tmp/rmp.flat" entries.$i.assigned)" = true ] &&
				[ "$(get "$tmp/rmp.flat" entries.$i.asid)" = 1 ] &&
				[ "$(printf '%d' "$gpa")" = "$(get "$tmp/rmp.flat" entries.$i.gpa)" ] &&
				[ "$(get "$tmp/rmp.flat" entries.$i.size)" = 4K ] ||
				{ echo "entry $i (pfn $pfn)"; cat "$tmp/rmp.flat"; return 1; }
			grep -q "^$pfn .* guest .* 1 $gpa " "$tmp/rmp.txt" || { echo "text $pfn"; return 1; }
			i=$((i + 1))
		done <"$tmp/pfnlines"
		# Every held PFN in the module's list, and a range that covers them.
		"$tool" rmp --json | flatten >"$tmp/all.flat" || return 1
		for p in $pfns; do
			grep -q "pfn $(printf '%d' "$p")$" "$tmp/all.flat" || { echo "$p not in rmp"; return 1; }
		done
		"$tool" rmp "$first+1" --json | flatten | grep -q '^entries.0.assigned true$'
	}
	check "rmp PFN... and rmp --json show the pages another process made private" rmp_matches
	held_counted() {
		"$probe" stats >"$tmp/probe.stats2" || return 1
		"$tool" stats --json | flatten >"$tmp/stats2.flat" || return 1
		p=$(get "$tmp/stats2.flat" module.private_4k)
		[ "$p" = "$(get "$tmp/probe.stats2" module.private_4k)" ] && [ "$p" -ge 4 ]
	}
	check "stats counts the held pages (private_4k >= 4, as the ioctl says)" held_counted
else
	notok "abi_probe hold 4" "$(cat "$tmp/held")"
fi

# directmap: /proc/meminfo, /proc/vmstat, the counters and debugfs regions.
directmap_matches() {
	"$tool" directmap --json | flatten >"$tmp/dm.flat" || return 1
	for k in DirectMap4k DirectMap2M DirectMap1G; do
		want=$(awk -v k="$k:" '$1 == k { print $2 }' /proc/meminfo)
		[ -z "$want" ] && continue
		[ "$(get "$tmp/dm.flat" meminfo_kb.$k)" = "$want" ] || { echo "$k: $want kB expected"; return 1; }
	done
	for k in direct_map_level2_splits direct_map_level3_splits; do
		want=$(awk -v k="$k" '$1 == k { print $2 }' /proc/vmstat)
		[ -z "$want" ] && continue
		[ "$(get "$tmp/dm.flat" vmstat.$k)" = "$want" ] || { echo "$k: $want expected"; return 1; }
	done
	"$probe" stats >"$tmp/probe.stats3" || return 1
	for k in dm_splits_2m dm_splits_1g dm_merges_2m dm_merges_1g dm_unmapped_pages tlb_flushes; do
		[ "$(get "$tmp/dm.flat" module.$k)" = "$(get "$tmp/probe.stats3" module.$k)" ] ||
			{ echo "module.$k"; return 1; }
	done
	want=$(wc -l <$dfs/directmap)
	got=$(grep -c '^regions\.[0-9]*\.pfn ' "$tmp/dm.flat")
	[ "$got" = "$want" ] || { echo "regions: $got, debugfs $want"; return 1; }
	if [ -r /sys/kernel/debug/page_tables/kernel ]; then
		[ "$(get "$tmp/dm.flat" picture.source)" = /sys/kernel/debug/page_tables/kernel ] ||
			{ echo "picture source"; return 1; }
	fi
	rows=$(grep -c '^picture\.rows\.' "$tmp/dm.flat")
	[ "$rows" -ge 1 ] && [ "$rows" -le 16 ] || { echo "rows $rows"; return 1; }
	"$tool" directmap >"$tmp/dm.txt" &&
		grep -q "DirectMap4k *$(awk '$1 == "DirectMap4k:" { print $2 }' /proc/meminfo) kB" "$tmp/dm.txt" &&
		[ "$(grep -c '|' "$tmp/dm.txt")" = "$rows" ]
}
check "directmap --json matches /proc/meminfo, /proc/vmstat, the counters and debugfs" directmap_matches

[ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
holder=

# Bad input is refused with a reason, not half-done.
refuses() { # refuses <want exit> <args...>
	want=$1
	shift
	"$tool" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc = "$want" ] && [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ] || { echo "exit $rc"; cat "$tmp/err"; return 1; }
}
check "rmp bogus is refused" refuses 1 rmp bogus
check "rmp 9-8 is refused" refuses 1 rmp 9-8
check "rmp beyond the RMP is refused" refuses 1 rmp 0xfffffffffff
check "an unknown command is a usage error" refuses 2 nosuch

echo "1..$n"
[ $failed = 0 ]
