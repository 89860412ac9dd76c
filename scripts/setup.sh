#!/usr/bin/env bash
# `make setup`: everything a fresh machine needs, idempotent and cached under
# $CACHE (default ~/.cache/dm-thin-rs). Prints the test kernel's tree on stdout
# (`setup.sh bench`: the bench kernel's, built on first use).
set -euo pipefail
here=$(dirname "$0")
bash "$here/setup-packages.sh" >&2
bash "$here/setup-toolchain.sh" >&2
bash "$here/setup-tools.sh" >&2
bash "$here/setup-kernel.sh" "$@"
