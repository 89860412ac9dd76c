# Fill a queue_if_no_space pool while four processes write: the pool reports
# out_of_data_space, their bios wait, writes to already mapped blocks still
# work; then grow the data device and reload the pool: the queued writes
# complete with their data intact, the pool is rw again with the new totals.
APPLIES="c rust"
writer() { # writer N: 1 MiB (16 blocks) of pattern 410+N at MiB N, O_DIRECT
    pattern $((410 + $1)) 1024 | dd of=/dev/mapper/t1 bs=65536 seek=$((16 * $1)) oflag=direct 2>/tmp/w$1.err
    echo $? > /tmp/w$1.rc
}
main() {
    rm -f /tmp/w?.rc
    # 2 MiB of data: 32 blocks.
    raw=$DATA
    must dmsetup create data --table "0 4096 linear $raw 0"
    DATA=/dev/mapper/data
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 400 256 0                  # blocks 0-3 mapped
    assert_eq "$(pool_used_data pool)/$(pool_total_data pool)" "4/32" "before the writers"
    t0=$(uptime_cs)
    for n in 1 2 3 4; do writer $n & done                    # 64 blocks wanted, 28 free
    wait_for 60 pool_mode_is pool out_of_data_space || fail "pool never out_of_data_space (mode $(pool_mode pool))"
    note "out_of_data_space after $(( ($(uptime_cs) - t0) / 100 )) s"
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10}" "32/32 out_of_data_space queue_if_no_space" "status when full"
    sleep 1
    for n in 1 2 3 4; do
        [ -e /tmp/w$n.rc ] && fail "writer $n finished while the pool is full (rc $(cat /tmp/w$n.rc): $(cat /tmp/w$n.err))"
    done
    # Mapped blocks still take writes (and reads) while the pool is full.
    pattern 401 256 | timeout 20 dd of=/dev/mapper/t1 bs=65536 oflag=direct 2>/dev/null || fail "overwrite of mapped blocks while full"
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 401 256)" "mapped blocks rewritten while full"
    assert_eq "$(pool_mode pool)" "out_of_data_space" "still full after the overwrite"

    # Grow: data linear to 8 MiB (128 blocks), then reload the pool.
    relinear data 16384 $raw
    pool_reload pool $META $DATA 0
    for n in 1 2 3 4; do
        wait_for 60 test -e /tmp/w$n.rc || fail "writer $n still blocked after the grow"
        assert_eq "$(cat /tmp/w$n.rc)" "0" "writer $n exit status ($(cat /tmp/w$n.err))"
    done
    wait
    note "writers done after $(( ($(uptime_cs) - t0) / 100 )) s"
    assert_lt $(( $(uptime_cs) - t0 )) 5000 "the whole fill and grow well inside no_space_timeout"
    for n in 1 2 3 4; do
        assert_eq "$(sum_range /dev/mapper/t1 1024 $((1024 * n)))" "$(pattern_sum $((410 + n)) 1024)" "writer $n data"
    done
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 401 256)" "rewritten blocks after the grow"
    assert_eq "$(sum_range /dev/mapper/t1 768 256)" "$(zero_sum 768)" "blocks nobody wrote"
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10} ${11}" "68/128 rw queue_if_no_space -" "status after the grow"
    assert_eq "$(thin_mapped_sectors t1)" "$((68 * 128))" "thin mapped sectors"
    # New writes provision again.
    write_pattern /dev/mapper/t1 402 64 7168
    assert_eq "$(pool_used_data pool)" "69" "a new block after the grow"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META
}
