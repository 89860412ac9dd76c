#!/usr/bin/env bash
# Builds dm_thin_rs.ko against the bench kernel without touching the
# test-kernel build in the checkout: the module's sources (Kbuild and the
# .rs/.c/.h files under rust/) are mirrored into OUT, only files that changed
# are rewritten (so kbuild stays incremental), and kbuild runs there.
# (kbuild's MO= is not used: with a separate output dir make's VPATH would
# find the checkout's own objects, built for the test kernel, as up to date.)
# Usage: bench-module.sh KDIR OUT  ->  OUT/dm_thin_rs.ko
set -euo pipefail
kdir=$1 out=$2
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/common.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)

list() { # the module's sources, relative to $1
    (cd "$1" && { [ -f Kbuild ] && echo Kbuild
        find rust -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) \
            ! -path rust/bindings/bindings_generated.rs; } | sort)
}
list "$top" | while read -r f; do
    if ! cmp -s "$top/$f" "$out/$f"; then
        mkdir -p "$out/$(dirname "$f")"
        cp "$top/$f" "$out/$f"
    fi
done
# Sources deleted in the checkout go from the mirror too.
comm -13 <(list "$top") <(list "$out") | while read -r f; do rm -f "$out/$f"; done

make -C "$kdir" M="$out" LLVM=$LLVM_SUFFIX modules
[ -f "$out/dm_thin_rs.ko" ] || die "no $out/dm_thin_rs.ko"
