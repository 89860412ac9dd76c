# error_if_no_space fails a write needing space at once; queue_if_no_space
# holds it for the module's no_space_timeout (set to 2 s here) and then
# fails it with ENOSPC, the pool switching to error IO; growing the pool
# brings it back to rw and queue_if_no_space.
APPLIES="c rust"
# timed_write SEEK_BLOCK: one 64 KiB O_DIRECT write; sets WRC (exit status)
# and WCS (elapsed hundredths of a second); dd's message in /tmp/dd.err.
timed_write() {
    local t0=$(uptime_cs)
    dd if=/dev/zero of=/dev/mapper/t1 bs=65536 seek=$1 count=1 oflag=direct 2>/tmp/dd.err
    WRC=$?
    WCS=$(( $(uptime_cs) - t0 ))
    note "write to block $1: rc $WRC after ${WCS}0 ms: $(tail -n1 /tmp/dd.err)"
}
main() {
    param=$(nst_param)
    [ -w "$param" ] || fail "no writable $param"
    assert_eq "$(cat $param)" "60" "default no_space_timeout"
    raw=$DATA
    must dmsetup create small --table "0 2048 linear $raw 0"        # 16 blocks
    DATA=/dev/mapper/small

    # error_if_no_space: the write fails at once with ENOSPC.
    pool_create pool error_if_no_space
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 420 1024 0
    assert_eq "$(pool_used_data pool)/$(pool_total_data pool)" "16/16" "pool full"
    timed_write 20
    assert_eq "$WRC" "1" "write needing space with error_if_no_space fails"
    grep -q "No space left on device" /tmp/dd.err || fail "error is not ENOSPC: $(cat /tmp/dd.err)"
    assert_lt "$WCS" 300 "error_if_no_space fails at once"
    set -- $(dmsetup status pool)
    assert_eq "$8 ${10}" "out_of_data_space error_if_no_space" "status with error_if_no_space"
    must dmsetup remove t1; must dmsetup remove pool
    wipe_meta

    # queue_if_no_space with no_space_timeout=2.
    trap "echo 60 > $param" EXIT
    echo 2 > "$param" || fail "cannot write $param"
    assert_eq "$(cat $param)" "2" "no_space_timeout set"
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 421 1024 0
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10}" "16/16 rw queue_if_no_space" "full pool before a write needs space"
    timed_write 20
    assert_eq "$WRC" "1" "queued write fails after the timeout"
    grep -q "No space left on device" /tmp/dd.err || fail "error is not ENOSPC: $(cat /tmp/dd.err)"
    assert_le 100 "$WCS" "queued write held at least ~1 s"
    assert_le "$WCS" 1000 "queued write failed within 10 s"
    set -- $(dmsetup status pool)
    assert_eq "$8 ${10}" "out_of_data_space error_if_no_space" "status after the timeout (error IO)"
    assert_eq "$(dmsetup table pool | awk '{print $8, $9}')" "0 " "table features unchanged"
    # Now in error IO mode: the next write fails at once.
    timed_write 21
    assert_eq "$WRC" "1" "second write fails"
    assert_lt "$WCS" 300 "second write fails at once"
    # Mapped blocks still work; nothing of the failed writes is mapped.
    write_pattern /dev/mapper/t1 422 64 64
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$( (pattern 421 64; pattern 422 64; pattern 421 1024 | dd bs=1024 skip=128 2>/dev/null) | sha256sum | cut -d' ' -f1)" "data after the timeouts"
    assert_eq "$(thin_mapped_sectors t1)" "$((16 * 128))" "no block mapped by failed writes"

    # Grow: rw and queue_if_no_space again, and the write needing space works.
    relinear small 4096 $raw
    pool_reload pool $META $DATA 0
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10}" "16/32 rw queue_if_no_space" "status after the grow"
    timed_write 20
    assert_eq "$WRC" "0" "write after the grow"
    echo 60 > "$param"; trap - EXIT
    assert_eq "$(cat $param)" "60" "no_space_timeout restored"
    must dmsetup remove t1; must dmsetup remove pool
}
