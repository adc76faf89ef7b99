#!/usr/bin/env bash
# rustfmt --check over the module's Rust sources with the formatter that matches
# the kernel's rustc (Debian's rustfmt-web), using the kernel's .rustfmt.toml.
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=${KDIR:-$(bash "$top/scripts/kernel.sh" dir)}
cd "$top"
git ls-files -co --exclude-standard '*.rs' | grep -v '^fuzz/\|^benches/\|^tests/' |
	xargs "$RUSTFMT_DEB" --check --edition 2021 --config-path "$kdir/.rustfmt.toml"
