#!/bin/sh
# run.sh [IMPL[:SCENARIO]...]: the acceptance suite inside the VM.
# With no arguments: every scenario against the C module, then every
# scenario that applies to dm_thin_rs.ko. IMPL:NAME runs one scenario
# (NAME is a file name under scenarios/, without .sh); IMPL alone runs all
# that apply to it; NAME=VALUE sets a variable for the scenarios. Prints
# one RESULT line per scenario run.
# NAME=VALUE arguments are exported to the scenarios, e.g.
# `make vm-test SCENARIOS="REPLAY_ALL=1 c:67-crash-replay"`.
# A scenario whose header has SLOW="IMPL..." is left out of the default run
# (`make test`) for those modules and runs when named (IMPL:NAME) or with
# DMRS_FULL=1 (`make test-long`): the slowest C reference runs, which C has
# passed unchanged, so `make test` keeps within its time budget.
cd /tests
specs=""
for a in "$@"; do
    case "$a" in
        [A-Z]*=*) export "$a"; echo "run.sh: $a" ;;
        *) specs="$specs $a" ;;
    esac
done
set -- $specs
[ $# -gt 0 ] || set -- c rust
SCENARIO_TIMEOUT=${DMRS_SCENARIO_TIMEOUT:-${SCENARIO_TIMEOUT:-600}}

run_one() { # run_one IMPL FILE
    impl=$1 f=$2 name=$(basename "$2" .sh)
    applies=$(sed -n 's/^APPLIES="\(.*\)"/\1/p' "$f")
    case " $applies " in *" $impl "*) ;; *) echo "SKIP $impl $name (applies to: $applies)"; return ;; esac
    slow=$(sed -n 's/^SLOW="\(.*\)"/\1/p' "$f")
    if [ -z "$only" ] && [ "${DMRS_FULL:-0}" != 1 ]; then
        case " $slow " in *" $impl "*) echo "SKIP $impl $name (SLOW: make test-long runs it)"; return ;; esac
    fi
    echo "=== $impl $name"
    t0=$(awk '{print int($1)}' /proc/uptime)
    dmesg -c >/dev/null
    wipe_meta $META; wipe_meta $META2
    IMPL=$impl timeout "$SCENARIO_TIMEOUT" sh -c ". /tests/lib.sh; . $f; main" 2>&1
    rc=$?
    # Tear down whatever is left and check the pool metadata, after every scenario.
    if [ $rc -eq 0 ]; then
        IMPL=$impl sh -c '. /tests/lib.sh; teardown; if [ "$(dd if=$META bs=4096 count=1 2>/dev/null | tr -d "\\0" | wc -c)" != 0 ]; then check_metadata $META; fi' 2>&1 || rc=$?
    else
        IMPL=$impl sh -c '. /tests/lib.sh; teardown' >/dev/null 2>&1
    fi
    secs=$(( $(awk '{print int($1)}' /proc/uptime) - t0 ))
    if [ $rc -eq 0 ]; then echo "RESULT PASS $impl $name (${secs}s)"; else echo "RESULT FAIL $impl $name (rc=$rc, ${secs}s)"; fi
}

for spec in "$@"; do
    impl=${spec%%:*}
    [ "$spec" = "$impl" ] && only="" || only=${spec#*:}
    . /tests/lib.sh
    sh /tests/load.sh $impl || { echo "RESULT FAIL $impl load-module"; continue; }
    for f in scenarios/*.sh; do
        if [ -n "$only" ] && [ "$(basename $f .sh)" != "$only" ]; then continue; fi
        run_one $impl $f
    done
    sh /tests/load.sh unload-$impl || echo "RESULT FAIL $impl unload-module"
done
exit 0
