# error_if_no_space: writes past the data device's capacity fail instead of queueing.
APPLIES="c rust"
main() {
    must dmsetup create small --table "0 2048 linear $DATA 0"      # 1 MiB = 16 blocks
    DATA=/dev/mapper/small
    pool_create pool error_if_no_space
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 91 1024 0
    assert_eq "$(pool_used_data pool)/$(pool_total_data pool)" "16/16" "pool full"
    if dd if=/dev/zero of=/dev/mapper/t1 bs=64k seek=20 count=1 oflag=direct 2>/dev/null; then
        fail "write beyond capacity succeeded"
    fi
    set -- $(dmsetup status pool)
    assert_eq "$8" "out_of_data_space" "pool mode"
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 91 1024)" "existing data readable"
}
