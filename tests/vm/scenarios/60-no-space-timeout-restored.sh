# Issue 16, defect 3: error_if_no_space set by no_space_timeout is a state of
# the out-of-data-space episode, not of the pool: when space returns (here a
# thin is deleted; not a grow or a reload, which build the features anew),
# C's set_pool_mode(PM_WRITE) restores the table's requested mode. So after
# the delete the status says queue_if_no_space again, and when the pool is
# full once more a write needing space is queued (held for the timeout)
# rather than failed at once.
APPLIES="c rust"
# timed_write SEEK_BLOCK: one 64 KiB O_DIRECT write to t1, bounded; sets WRC
# (exit status) and WCS (elapsed hundredths of a second).
timed_write() {
    local t0=$(uptime_cs)
    bounded 30 dd if=/dev/zero of=/dev/mapper/t1 bs=65536 seek=$1 count=1 oflag=direct
    WRC=$?
    WCS=$(( $(uptime_cs) - t0 ))
    [ $WRC = 124 ] && hung_fail "write to block $1 still waiting after 30 s (no_space_timeout is 2 s)"
    note "write to block $1: rc $WRC after ${WCS}0 ms: $(grep -i error /tmp/bg.bounded.out | tail -n1)"
}
main() {
    t_start=$(uptime_cs)
    param=$(nst_param)
    [ -w "$param" ] || fail "no writable $param"
    raw=$DATA
    must dmsetup create small --table "0 2048 linear $raw 0"        # 16 blocks
    DATA=/dev/mapper/small
    trap "echo 60 > $param" EXIT
    echo 2 > "$param" || fail "cannot write $param"
    pool_create pool
    thin_create pool 1 t1 8
    thin_create pool 2 t2 8
    write_pattern /dev/mapper/t2 600 256 0          # 4 blocks
    write_pattern /dev/mapper/t1 601 768 0          # 12 blocks: the pool is full
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10}" "16/16 rw queue_if_no_space" "full pool"

    # The timeout switches the pool to error IO.
    timed_write 20
    assert_eq "$WRC" "1" "queued write fails after the timeout"
    assert_le 100 "$WCS" "queued write held at least ~1 s"
    set -- $(dmsetup status pool)
    assert_eq "$8 ${10}" "out_of_data_space error_if_no_space" "status after the timeout"

    # Space returns: thin 2 deleted (the message commits; the commit finds free space).
    must dmsetup remove t2
    must dmsetup message pool 0 "delete 2"
    wait_for 5 pool_mode_is pool rw || fail "pool not rw after the delete: $(dmsetup status pool)"
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10}" "12/16 rw queue_if_no_space" "status after space returned (C restores the table's queue_if_no_space)"
    assert_eq "$(dmsetup table pool | awk '{print $8}')" "0" "table features unchanged"

    # Full again: a write needing space is queued for the timeout again.
    write_pattern /dev/mapper/t1 602 256 1024      # blocks 16-19 of t1: full
    assert_eq "$(pool_used_data pool)/$(pool_total_data pool)" "16/16" "full again"
    timed_write 21
    assert_eq "$WRC" "1" "second queued write fails after the timeout"
    assert_le 100 "$WCS" "a write needing space is queued again, not failed at once"
    set -- $(dmsetup status pool)
    assert_eq "$8 ${10}" "out_of_data_space error_if_no_space" "status after the second timeout"
    assert_eq "$(sum_range /dev/mapper/t1 768 0)" "$(pattern_sum 601 768)" "t1's first blocks"
    assert_eq "$(sum_range /dev/mapper/t1 256 1024)" "$(pattern_sum 602 256)" "t1's blocks written after the delete"
    echo 60 > "$param"; trap - EXIT
    must dmsetup remove t1; must dmsetup remove pool
    must dmsetup remove small
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
