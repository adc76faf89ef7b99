#!/usr/bin/env bash
# Run make with the toolchain the kernel and the module are built with.
# make ignores RUSTC and friends from the environment, so they go on its command line.
set -euo pipefail
. "$(dirname "$0")/env.sh"
mapfile -t vars < <(kmake_vars)
exec make "${vars[@]}" "$@"
