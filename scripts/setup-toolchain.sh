#!/usr/bin/env bash
# Rust pieces the kernel's Rust support needs: rust-src and a pinned bindgen-cli.
set -euo pipefail
. "$(dirname "$0")/common.sh"
export PATH=$HOME/.cargo/bin:$PATH

if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    log "rustup component add rust-src"
    rustup component add rust-src || die "could not add rust-src"
fi
if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
    log "cargo install bindgen-cli $BINDGEN_VERSION (a few minutes)"
    cargo install --locked bindgen-cli --version "$BINDGEN_VERSION" \
        || die "cargo install bindgen-cli failed"
fi
