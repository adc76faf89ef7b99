# shellcheck shell=bash
# Common settings for the project's scripts.  Sourced, never executed.
#
# Everything that names a version lives here, so that moving to the next
# kernel or toolchain is a one-line change.

# The Linux version we build against, as Debian names its linux-source-* package.
KERNEL_VERSION=${KERNEL_VERSION:-7.3}
# The Debian suite that carries linux-source-$KERNEL_VERSION.
KERNEL_SUITE=${KERNEL_SUITE:-trixie-backports}

LLVM_VERSION=19
BINDGEN_VERSION=0.71.1
# Debian's rustc-web: the rustup toolchain has no rust-src and cannot build the kernel crate.
RUSTC_DEB=/usr/bin/rustc
RUSTDOC_DEB=/usr/bin/rustdoc
CLIPPY_DEB=/usr/bin/clippy-driver
RUSTFMT_DEB=/usr/bin/rustfmt

# Build products that outlive a clean clone: downloaded source, tools, built kernels.
SNP_HOST_CACHE=${SNP_HOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snp-host}
BINDGEN=$SNP_HOST_CACHE/tools/bin/bindgen
LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VERSION/lib
export LIBCLANG_PATH

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	echo "error: $*" >&2
	exit 1
}

note() {
	echo ">>> $*" >&2
}

# The library source that rustc-web ships, wherever its version puts it.
rust_lib_src() {
	local d
	for d in /usr/src/rustc-*/library; do
		[ -d "$d" ] && { echo "$d"; return 0; }
	done
	return 1
}

# The make variables a kernel or module build needs with this toolchain.
# make ignores RUSTC and friends from the environment, so they go on the command line.
kmake_vars() {
	local src
	src=$(rust_lib_src) || die "rust-web-src is not installed (run: make deps)"
	printf '%s\n' "LLVM=-$LLVM_VERSION" "RUSTC=$RUSTC_DEB" "HOSTRUSTC=$RUSTC_DEB" \
		"RUSTDOC=$RUSTDOC_DEB" "RUSTFMT=$RUSTFMT_DEB" "CLIPPY_DRIVER=$CLIPPY_DEB" \
		"BINDGEN=$BINDGEN" "RUST_LIB_SRC=$src"
}
