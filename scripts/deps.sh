#!/usr/bin/env bash
# Install what building and testing snp_host needs on Debian 12.
#
# As root, missing packages are installed with apt-get.  Otherwise the exact
# command is printed and the script stops, so nothing is installed behind the
# user's back.  bindgen goes into the project cache, not into the system.
set -euo pipefail
. "$(dirname "$0")/env.sh"

packages=(
	rustc-web rust-web-src rust-web-clippy rustfmt-web
	"clang-$LLVM_VERSION" "lld-$LLVM_VERSION" "llvm-$LLVM_VERSION" "libclang-$LLVM_VERSION-dev"
	make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio python3 xz-utils
	qemu-system-x86 busybox-static
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	cmd="apt-get install -y --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "snp_host needs these Debian packages: ${missing[*]}" >&2
		echo "Install them as root, then run make again:" >&2
		echo "    sudo apt-get update && sudo $cmd" >&2
		exit 1
	fi
	note "installing ${missing[*]}"
	apt-get update -qq
	# One retry: an interrupted dpkg run leaves work that a second install finishes.
	if ! DEBIAN_FRONTEND=noninteractive $cmd >/dev/null; then
		dpkg --configure -a
		DEBIAN_FRONTEND=noninteractive $cmd >/dev/null || die "apt-get install failed: $cmd"
	fi
fi

command -v cargo >/dev/null ||
	die "cargo not found: install a Rust toolchain with rustup (host-side tests and bindgen need it)"

if ! "$BINDGEN" --version 2>/dev/null | grep -qF "bindgen $BINDGEN_VERSION"; then
	note "installing bindgen-cli $BINDGEN_VERSION into $SNP_HOST_CACHE/tools (2-3 minutes)"
	cargo install --quiet bindgen-cli --version "$BINDGEN_VERSION" --locked \
		--root "$SNP_HOST_CACHE/tools"
fi

# Catch a toolchain that installed but cannot build a Rust kernel early, with the kernel's own check.
touch "$SNP_HOST_CACHE/tools/.deps-ok"
