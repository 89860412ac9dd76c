#!/usr/bin/env bash
# Host tests: cargo test (release) over the pure layers, thinmeta and the oracles.
# Prints "HOST-SUMMARY N passed, N failed" last.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH=$HOME/.cargo/bin:$PATH
# The oracles sit in the setup cache: the one setting the scripts use.
source "$top/scripts/common.sh"
export DM_THIN_RS_CACHE=$CACHE
mkdir -p build
cargo test --release 2>&1 | tee build/host-test.log
rc=${PIPESTATUS[0]}
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' build/host-test.log | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed;' build/host-test.log | awk '{s += $1} END {print s + 0}')
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
    failed=1   # did not build, or a test binary crashed
fi
echo "HOST-SUMMARY $passed passed, $failed failed"
[ "$rc" = 0 ]
