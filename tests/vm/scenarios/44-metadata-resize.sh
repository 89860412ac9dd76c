# The metadata device grows under a live pool (reload of its dm-linear, then
# of the pool): the metadata total in the status grows and the metadata
# checks clean; a smaller metadata device is refused at resume with C's
# "metadata device (N blocks) too small: expected M", and the pool resumes
# once the device is back to its size.
APPLIES="c rust"
main() {
    rawm=$META
    must dmsetup create meta --table "0 16384 linear $rawm 0"       # 8 MiB: 2048 blocks
    META=/dev/mapper/meta
    pool_create pool
    thin_create pool 1 t1 16
    write_pattern /dev/mapper/t1 440 2048 0
    set -- $(dmsetup status pool)
    assert_eq "${5#*/} $6 $8" "2048 32/32768 rw" "metadata total before the grow"

    # Grow to 16 MiB: 4096 blocks.
    relinear meta 32768 $rawm
    assert_eq "$(pool_field pool 5 | cut -d/ -f2)" "2048" "no change before the pool reload"
    pool_reload pool $META $DATA 0
    set -- $(dmsetup status pool)
    assert_eq "${5#*/} $6 $8 ${11}" "4096 32/32768 rw -" "metadata total after the grow"
    logged "growing the metadata device from 2048 to 4096 blocks"
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$(pattern_sum 440 2048)" "data after the grow"
    write_pattern /dev/mapper/t1 441 1024 4096
    assert_eq "$(pool_used_data pool)" "48" "provisioning after the grow"
    must dmsetup message pool 0 "create_snap 2 1"
    must dmsetup message pool 0 "set_transaction_id 0 1"
    # The grown metadata checks clean (and thin_dump sees the new size).
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META
    dump_devices $META >/dev/null
    assert_eq "$(dump_attr nr_data_blocks)" "32768" "data blocks on disk"
    pool_create pool
    assert_eq "$(pool_field pool 5 | cut -d/ -f2)" "4096" "metadata total after reactivation"
    thin_activate pool 1 t1 16

    # Shrink to 8 MiB: the pool's resume is refused.
    must dmsetup suspend pool
    relinear meta 16384 $rawm
    dmesg -c >/dev/null
    must dmsetup load pool --table "$(pool_line_on $META $DATA 0)"
    must_fail dmsetup resume pool
    logged "metadata device (2048 blocks) too small: expected 4096"
    dmsetup info pool | grep -q SUSPENDED || fail "pool not left suspended: $(dmsetup info pool)"
    assert_eq "$(pool_field pool 5 | cut -d/ -f2)" "4096" "metadata total after the refused shrink"
    # Back to 16 MiB: the pool resumes, nothing lost.
    relinear meta 32768 $rawm
    must dmsetup resume pool
    set -- $(dmsetup status pool)
    assert_eq "${5#*/} $6 $8 ${11}" "4096 48/32768 rw -" "status after the pool resumed"
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$(pattern_sum 440 2048)" "data after the refused shrink"
    assert_eq "$(sum_range /dev/mapper/t1 1024 4096)" "$(pattern_sum 441 1024)" "data after the refused shrink (2)"
    write_pattern /dev/mapper/t1 442 64 8192
    assert_eq "$(pool_used_data pool)" "49" "provisioning after the refused shrink"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META
    must dmsetup remove meta
}
