# Allocation failures: failslab fails a share of the slab allocations made
# with the module under test on the stack (its text range from /proc/modules
# as failslab's require-start/end; sleeping allocations too) while two thins
# take fsynced writes, discards and snapshot/delete messages. No hang, no
# kernel report; a bio may fail, a message may fail; every write whose fsync
# succeeded reads back after the faults stop (unless the pool failed, when
# every bio errors) and after repair and a reopen; a message that failed changed nothing while
# the pool stayed rw. The default run uses one seeded probability (seed
# printed); DMRS_SWEEP=all runs 1, 2, 5 and 10 percent.
APPLIES="c rust"
SLOW="c"

FS=/sys/kernel/debug/failslab
failslab_on() { # failslab_on PERCENT MODULE
    debugfs_mount
    # Module text sits in the top 4 GiB: its address is ffffffff + 8 hex digits.
    set -- "$1" "$2" $(awk -v m="$2" '$1 == m { print $6, $2 }' /proc/modules)
    [ -n "$3" ] || fail "module $2 not loaded"
    local hi=${3%????????} lo=${3#${3%????????}}
    [ "$hi" = 0xffffffff ] || fail "module address $3 not readable (kptr_restrict?)"
    local end=$(printf '%08x' $((0x$lo + $4)))
    echo 0 > $FS/probability; echo 0 > $FS/verbose; echo 1 > $FS/interval
    echo -1 > $FS/times; echo 0 > $FS/space; echo N > $FS/ignore-gfp-wait
    echo 32 > $FS/stacktrace-depth
    echo "$3" > $FS/require-start; echo "0xffffffff$end" > $FS/require-end
    echo "$1" > $FS/probability
}
failslab_off() { echo 0 > $FS/probability; }
modname() { [ "$IMPL" = rust ] && echo dm_thin_rs || echo dm_thin_pool; }

msg() { dmsetup message /dev/mapper/pool 0 "$*" 2>/dev/null; }
wr() { # wr DEV SEED BLOCK: one 64 KiB block, fsynced
    pattern "$2" 64 > /tmp/wr.in
    dd if=/tmp/wr.in of="$1" bs=65536 seek="$3" count=1 conv=notrunc,fsync 2>/dev/null
}
# run_load PERCENT: the workload under failslab; ACKED lists "DEV SEED BLOCK"
# of the writes whose fsync succeeded (the last one per block counts).
run_load() {
    local pct=$1 i dev blk seed snaps=10
    : > /tmp/acked; DEVS="1 2"; MSGFAIL=0; WFAIL=0
    failslab_on "$pct" "$(modname)"
    for i in $(seq 40); do
        rnd 2; dev=/dev/mapper/t$((R + 1)); rnd 32; blk=$R; seed=$((7000 + i))
        if bounded 60 wr $dev $seed $blk; then
            grep -v "^$dev [0-9]* $blk\$" /tmp/acked > /tmp/acked.new; mv /tmp/acked.new /tmp/acked
            echo "$dev $seed $blk" >> /tmp/acked
        else
            [ $? = 124 ] && hung_fail "write $i under failslab $pct%"
            WFAIL=$((WFAIL + 1))
            # A failed write leaves its block unknown.
            grep -v "^$dev [0-9]* $blk\$" /tmp/acked > /tmp/acked.new; mv /tmp/acked.new /tmp/acked
        fi
        case $((i % 8)) in
            3) bounded 60 blkdiscard -o $((blk * 65536)) -l 65536 $dev
               [ $? = 124 ] && hung_fail "discard under failslab"
               grep -v "^$dev [0-9]* $blk\$" /tmp/acked > /tmp/acked.new; mv /tmp/acked.new /tmp/acked ;;
            5) snaps=$((snaps + 1))
               if bounded 60 msg "create_snap $snaps 1"; then DEVS="$DEVS $snaps"; else
                   [ $? = 124 ] && hung_fail "create_snap under failslab"; MSGFAIL=$((MSGFAIL + 1)); fi ;;
            7) if bounded 60 msg "delete $snaps"; then DEVS=$(echo $DEVS | tr ' ' '\n' | grep -vx "$snaps" | tr '\n' ' '); else
                   [ $? = 124 ] && hung_fail "delete under failslab"; MSGFAIL=$((MSGFAIL + 1)); fi ;;
        esac
    done
    failslab_off
}
check_acked() {
    LOST=0
    local dev seed blk
    while read -r dev seed blk; do
        [ "$(sum_range $dev 64 $((blk * 64)))" = "$(pattern_sum $seed 64)" ] || { note "lost: $dev block $blk (seed $seed)"; LOST=$((LOST + 1)); }
    done < /tmp/acked
}
run_pct() {
    local pct=$1
    wipe_meta
    pool_create pool
    thin_create pool 1 t1 4
    thin_create pool 2 t2 4
    run_load "$pct"
    MODE=$(pool_mode pool)
    # A failed pool errors every bio (C's fail mode too): its writes are
    # checked after the repair only.
    local lost_live=0
    if [ "$MODE" != Fail ]; then
        check_acked
        lost_live=$LOST
    fi
    bounded 120 teardown || hung_fail "teardown after failslab $pct%"
    if [ "$MODE" = rw ]; then
        # Messages that failed changed nothing: the devices are those that
        # the successful messages left.
        assert_eq "$(dump_devices $META | sed 's/:[0-9]*//g' | tr ' ' '\n' | sort -n | tr '\n' ' ')" \
                  "$(echo $DEVS | tr ' ' '\n' | sort -n | tr '\n' ' ')" "devices after failslab $pct%"
    fi
    repair_metadata $META || fail "metadata after failslab $pct% not repairable"
    pool_create pool
    thin_activate pool 1 t1 4
    thin_activate pool 2 t2 4
    check_acked
    bounded 120 teardown || hung_fail "teardown after the check"
    echo "SWEEP failslab $IMPL pct=$pct write_failures=$WFAIL message_failures=$MSGFAIL mode=$MODE lost=$((LOST + lost_live))"
    S_RUNS=$((S_RUNS + 1)) S_WFAIL=$((S_WFAIL + WFAIL)) S_MFAIL=$((S_MFAIL + MSGFAIL)) S_LOST=$((S_LOST + LOST + lost_live))
    [ "$MODE" = rw ] || S_DEGRADED=$((S_DEGRADED + 1))
    if [ $((LOST + lost_live)) != 0 ]; then
        # C 7.3 can acknowledge an fsync over writes an aborted commit lost.
        [ "$IMPL" = c ] && note "C lost fsynced writes (known C defect)" || fail "$((LOST + lost_live)) fsynced writes lost under failslab $pct%"
    fi
}
main() {
    sweep_seed
    if [ "${DMRS_SWEEP:-}" = all ]; then pcts="1 2 5 10"; else rnd 3; pcts=$((R + 1)); fi
    S_RUNS=0 S_WFAIL=0 S_MFAIL=0 S_LOST=0 S_DEGRADED=0
    for p in $pcts; do run_pct "$p"; done
    echo "SWEEP-SUMMARY failslab $IMPL rates=$(echo $pcts | tr ' ' ,)% writes=$((S_RUNS * 40)) write_failures=$S_WFAIL message_failures=$S_MFAIL degraded_runs=$S_DEGRADED lost_flushes=$S_LOST hangs=0"
}
