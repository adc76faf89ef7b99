#!/usr/bin/env bash
# Fetch, patch, configure and build the project kernel, cached outside the work tree.
#
#   kernel.sh dir     print the build directory for the current key (may not exist yet)
#   kernel.sh build   build it unless the cache already holds it; print the directory
#   kernel.sh fetch   download the source tarball only
#   kernel.sh purge   drop every cached kernel (downloaded source and tools stay)
#   kernel.sh copy-driver <tree>  copy the driver into a kernel tree that has the
#                     series applied (for a distribution kernel with it built in)
#
# The cache key covers the kernel version, the config fragments and the patch
# series, so editing module code never rebuilds the kernel (INTREE=1 aside,
# below), and editing any of those always does.  DEBUG=1 adds kconfig/debug.config (lockdep, DEBUG_VM, KFENCE).
#
# INTREE=1 is the in-tree variant (make check-intree): the driver's sources
# are copied into the tree, to drivers/virt/coco/snp-host/ where patch 0030
# hooks it into Kconfig, and kconfig/intree.config builds it in.  The copy is
# made from the repository at every build of the variant and is part of its
# key (and of no other's), so editing module code rebuilds that kernel only.
set -euo pipefail
. "$(dirname "$0")/env.sh"

fragments=("$top/kconfig/snp_host.config")
[ "${DEBUG:-0}" = 1 ] && fragments+=("$top/kconfig/debug.config")
[ "${INTREE:-0}" = 1 ] && fragments+=("$top/kconfig/intree.config")

# Where the in-tree variant's copy of the driver goes (patch 0030).
driver_dir=drivers/virt/coco/snp-host

# The repository files that make up the driver, relative to the top: the
# crate (its root snp_host/ and the folders it includes by #[path]) and the
# uapi header; then the documentation.  The in-tree copy is made of these.
driver_files() {
	(cd "$top" && find snp_host rmp directmap fault rust -type f \
		\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild \) | LC_ALL=C sort)
	echo include/uapi/linux/snp_host.h
	echo Documentation/snp_host.rst
}

# Replaces the driver in tree $1 by a fresh copy of the repository's, read-only
# since it is generated.  The crate keeps the repository's layout under
# $driver_dir, so that its #[path] attributes and abi_header.c's
# "../include/uapi/linux/snp_host.h" resolve as they do out of tree; that
# include/ is a link to the tree's own, where the uapi header belongs (make
# headers_install ships it).  The documentation goes where the index of
# Documentation/virt/ (patch 0030) expects it.
copy_driver() {
	local tree=$1 f dst
	[ -f "$tree/$driver_dir/Kconfig" ] || die "$tree has no $driver_dir/Kconfig: is patch 0030 in patches/series?"
	rm -rf "${tree:?}/$driver_dir"/{snp_host,rmp,directmap,fault,rust,include}
	while read -r f; do
		case "$f" in
		include/*) dst=$tree/$f ;;
		Documentation/snp_host.rst) dst=$tree/Documentation/virt/coco/snp-host.rst ;;
		*) dst=$tree/$driver_dir/$f ;;
		esac
		mkdir -p "$(dirname "$dst")"
		rm -f "$dst"
		cp "$top/$f" "$dst"
		chmod a-w "$dst"
	done < <(driver_files)
	ln -s ../../../../include "$tree/$driver_dir/include"
}

series_files() {
	local p
	echo "$top/patches/series"
	while read -r p; do
		case "$p" in "" | "#"*) continue ;; esac
		echo "$top/patches/$p"
	done <"$top/patches/series"
}

cache_key() {
	{
		echo "linux-source-$KERNEL_VERSION llvm-$LLVM_VERSION"
		cat "${fragments[@]}"
		series_files | while read -r f; do
			[ -f "$f" ] || die "patches/series names $(basename "$f"), which does not exist"
			echo "== $(basename "$f")"
			cat "$f"
		done
		if [ "${INTREE:-0}" = 1 ]; then
			driver_files | while read -r f; do
				echo "== $f"
				cat "$top/$f"
			done
		fi
	} | sha256sum | cut -c1-16
}

kdir() {
	local variant=""
	[ "${DEBUG:-0}" = 1 ] && variant="-debug"
	[ "${INTREE:-0}" = 1 ] && variant+="-intree"
	echo "$SNP_HOST_CACHE/kernel/linux-$KERNEL_VERSION$variant-$(cache_key)"
}

# The Debian archive this machine already uses, read from its own apt configuration.
archive_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822: take the URIs of a "deb" stanza whose suites are not the security archive.
		awk 'BEGIN { RS = ""; FS = "\n" }
		     /(^|\n)Types:[^\n]*deb( |$|\n)/ && !/Suites:[^\n]*-security/ {
			for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit }
		     }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" && $0 !~ /-security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' "$f"
	done
}

# Download linux-source-$KERNEL_VERSION from $KERNEL_SUITE with a private apt state,
# leaving the host's apt lists untouched.  Prints the path of the source tarball.
fetch_source() {
	local dl=$SNP_HOST_CACHE/src tarball uri apt_dir
	tarball=$dl/linux-source-$KERNEL_VERSION.tar.xz
	if [ -f "$tarball" ]; then
		echo "$tarball"
		return
	fi
	uri=$(archive_uri | head -n1)
	[ -n "$uri" ] || die "cannot find a Debian archive in this machine's apt configuration"
	apt_dir=$SNP_HOST_CACHE/apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$dl"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $KERNEL_SUITE main" \
		>"$apt_dir/sources.list"
	local opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o "Dir::Etc::SourceParts=$apt_dir/parts" -o "Dir::Cache=$apt_dir/cache"
		-o "APT::Sandbox::User=$(id -un)" -o Debug::NoLocking=1)
	note "fetching the $KERNEL_SUITE package index"
	apt-get "${opts[@]}" update -qq || die "apt-get update of $KERNEL_SUITE failed"
	if ! apt-cache "${opts[@]}" show "linux-source-$KERNEL_VERSION" >/dev/null 2>&1; then
		echo "error: linux-source-$KERNEL_VERSION is no longer served by $KERNEL_SUITE." >&2
		echo "It carries: $(apt-cache "${opts[@]}" pkgnames linux-source- | sort -V | tr '\n' ' ')" >&2
		echo "Move on by setting KERNEL_VERSION in scripts/env.sh to one of those, rebuilding" >&2
		echo "(make check), and refreshing patches/ where they no longer apply." >&2
		exit 1
	fi
	local tmp
	tmp=$(mktemp -d "$dl/fetch.XXXXXX")
	(cd "$tmp" && apt-get "${opts[@]}" download -qq "linux-source-$KERNEL_VERSION") ||
		die "downloading linux-source-$KERNEL_VERSION failed"
	dpkg-deb -x "$tmp"/linux-source-"$KERNEL_VERSION"_*.deb "$tmp/x"
	mv "$tmp/x/usr/src/linux-source-$KERNEL_VERSION.tar.xz" "$tarball"
	rm -rf "$tmp"
	echo "$tarball"
}

# The other trees of the variant of tree $1 (its key aside), newest first.
variant_trees() {
	local d
	for d in $(ls -dt "${1%-*}"-* 2>/dev/null); do
		# linux-7.3-<key> must not match linux-7.3-debug-<key>.
		[[ ${d#"${1%-*}"-} =~ ^[0-9a-f]{16}$ ]] && [ -d "$d" ] && [ "$d" != "$1" ] && echo "$d"
	done
	return 0
}

# One line per patch in series order: name and content hash.
series_state() {
	series_files | tail -n +2 | while read -r f; do
		echo "$(basename "$f") $(sha256sum <"$f" | cut -c1-16)"
	done
}

# The newest finished tree of this variant that ours can start from: one whose
# applied patches are a prefix of ours, or which kept copies of the patches
# where the series differ, so that it can revert them. Prints "dir keep", keep
# being the number of leading patches both have in common.
reusable_tree() {
	local want d have keep others=""
	want=$(series_state)
	# The first in-tree kernel starts from a tree of the out-of-tree variant:
	# only the driver and what its config option touches need building.
	if [ "${INTREE:-0}" = 1 ]; then
		others=$(variant_trees "${1%-intree-*}-0000000000000000")
	fi
	for d in $(variant_trees "$1") $others; do
		[ -f "$d/.snp-host-built" ] || continue
		have=$(cat "$d/.snp-host-series" 2>/dev/null) || continue
		keep=$(common_prefix "$have" "$want")
		if [ "$keep" = "$(grep -c . <<<"$have")" ] || [ -d "$d/.snp-host-patches" ]; then
			echo "$d $keep"
			return
		fi
	done
}

# How many leading lines two series states share.
common_prefix() {
	local n=0 a b
	while IFS= read -r a && IFS= read -r b <&3; do
		[ "$a" = "$b" ] || break
		n=$((n + 1))
	done <<<"$1" 3<<<"$2"
	echo "$n"
}

# Reverts, newest first, the patches of tree $1 after the first $2 (from its copies),
# keeping the tree's record of applied patches (apply-patches.sh) in step.
revert_tail() {
	local dir=$1 keep=$2 names
	mapfile -t names < <(cut -d' ' -f1 "$dir/.snp-host-series" | tail -n +"$((keep + 1))")
	cp "$dir/.snp-host-series" "$dir/.snp-host-applied"
	for ((i = ${#names[@]} - 1; i >= 0; i--)); do
		note "reverting ${names[i]} (changed or dropped since that tree was built)"
		patch -d "$dir" -p1 -R -s -f <"$dir/.snp-host-patches/${names[i]}" ||
			die "cannot revert ${names[i]} in $dir"
		head -n "$((keep + i))" "$dir/.snp-host-series" >"$dir/.snp-host-applied"
	done
}

# Drop what an earlier key left behind: unfinished builds, and all but the
# newest few finished ones of this variant (a kernel tree is a few GiB; a few
# let work trees on different patch series share the cache without
# rebuilding each other's kernel in turn).
prune() {
	local keep=$1 d finished=()
	for d in $(variant_trees "$keep"); do
		if [ -f "$d/.snp-host-built" ]; then
			finished+=("$d")
		else
			rm -rf "$d"
		fi
	done
	if [ ${#finished[@]} -gt "$KEEP_TREES" ]; then
		ls -dt "${finished[@]}" | tail -n +"$((KEEP_TREES + 1))" | xargs rm -rf
	fi
}

# Finished trees kept per variant besides the one being built.
KEEP_TREES=${SNP_HOST_KEEP_TREES:-3}

build() {
	local dir tarball
	dir=$(kdir)
	if [ -f "$dir/.snp-host-built" ]; then
		echo "$dir"
		return
	fi
	# One kernel build at a time (two on 2 cores take longer than two in a row, and
	# two on the same tree corrupt it); whoever waited finds the tree built.
	mkdir -p "$SNP_HOST_CACHE/kernel"
	exec 9>"$SNP_HOST_CACHE/kernel/.build-lock"
	if ! flock -n 9; then
		note "another kernel build is running; waiting for it"
		flock 9
	fi
	if [ -f "$dir/.snp-host-built" ]; then
		echo "$dir"
		return
	fi
	[ -f "$SNP_HOST_CACHE/tools/.deps-ok" ] || bash "$top/scripts/deps.sh"
	prune "$dir"
	# An interrupted build resumes in place: same key, same inputs, make is incremental.
	if [ ! -f "$dir/Makefile" ]; then
		rm -rf "$dir"
		local base keep
		read -r base keep < <(reusable_tree "$dir") || true
		if [ -n "$base" ]; then
			# A changed patch or config: start from a finished tree, revert the
			# patches that differ, apply ours; make rebuilds only what changed.
			note "starting from $(basename "$base") ($keep patches in common)"
			cp -a "$base" "$dir"
			rm -f "$dir/.snp-host-built"
			revert_tail "$dir" "$keep"
		else
			tarball=$(fetch_source)
			note "unpacking $(basename "$tarball")"
			mkdir -p "$dir"
			tar -xf "$tarball" -C "$dir" --strip-components=1
		fi
	fi
	bash "$top/scripts/apply-patches.sh" "$dir"
	[ "${INTREE:-0}" = 1 ] && copy_driver "$dir"
	series_state >"$dir/.snp-host-series"
	# Keep what was applied, so that a later series can revert it (reusable_tree).
	rm -rf "$dir/.snp-host-patches"
	mkdir -p "$dir/.snp-host-patches"
	series_files | tail -n +2 | xargs -r cp -t "$dir/.snp-host-patches"
	local vars
	mapfile -t vars < <(kmake_vars)
	local km=(make -C "$dir" -s "${vars[@]}")
	note "configuring: tinyconfig + ${fragments[*]##*/}"
	"${km[@]}" tinyconfig >/dev/null
	"$dir/scripts/kconfig/merge_config.sh" -m -O "$dir" "$dir/.config" "${fragments[@]}" >/dev/null
	"${km[@]}" olddefconfig >/dev/null
	# Kconfig silently drops an option whose dependencies are missing: insist on every one.
	local bad=() opt
	while read -r opt; do
		grep -qx "$opt" "$dir/.config" || bad+=("${opt%%=*}")
	done < <(cat "${fragments[@]}" | grep -E '^CONFIG_[A-Z0-9_]+=')
	if [ ${#bad[@]} -gt 0 ]; then
		die "after olddefconfig these options are not as the fragment asks: ${bad[*]}"
	fi
	note "building the kernel with $(nproc) jobs (10-15 minutes on 2 cores)"
	"${km[@]}" -j"$(nproc)" bzImage modules
	touch "$dir/.snp-host-built"
	echo "$dir"
}

case "${1:-}" in
dir) kdir ;;
build) build ;;
fetch) fetch_source ;;
copy-driver) copy_driver "${2:?usage: $0 copy-driver <kernel tree>}" ;;
purge)
	note "removing $SNP_HOST_CACHE/kernel"
	rm -rf "$SNP_HOST_CACHE/kernel"
	;;
*) die "usage: $0 dir|build|fetch|purge|copy-driver <tree>" ;;
esac
