#!/usr/bin/env bash
# `make test`: host tests, then one VM boot running the acceptance suite
# against the C module and against dm_thin_rs.ko. Ends with one line
# "N passed, N failed" over all of them; exits non-zero on any failure.
# Arguments after KDIR go to the suite (run.sh), e.g. DMRS_FULL=1 for
# `make test-long`.
set -uo pipefail
kdir=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p build

bash scripts/host-test.sh | tee build/host-summary.log
read -r hp hf < <(sed -n 's/^HOST-SUMMARY \([0-9]*\) passed, \([0-9]*\) failed/\1 \2/p' build/host-summary.log)
hp=${hp:-0} hf=${hf:-1}

bash qemu/run-vm.sh test "$kdir" "$@" | tee build/vm-summary.log
read -r vp vf < <(sed -n 's/^VM-SUMMARY \([0-9]*\) passed, \([0-9]*\) failed/\1 \2/p' build/vm-summary.log)
vp=${vp:-0} vf=${vf:-1}

echo "host: $hp passed, $hf failed; vm: $vp passed, $vf failed"
echo "$((hp + vp)) passed, $((hf + vf)) failed"
[ $((hf + vf)) -eq 0 ]
