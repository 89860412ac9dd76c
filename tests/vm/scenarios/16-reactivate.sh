# Deactivate everything, reactivate, and the data is intact (metadata committed).
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 5 t5 32
    thin_create pool 6 t6 32
    write_pattern /dev/mapper/t5 51 8192 0
    write_pattern /dev/mapper/t6 61 4096 8192
    used=$(pool_used_data pool)
    must dmsetup remove t5; must dmsetup remove t6; must dmsetup remove pool
    pool_create pool
    assert_eq "$(pool_used_data pool)" "$used" "used blocks after reactivation"
    thin_activate pool 5 t5 32
    thin_activate pool 6 t6 32
    assert_eq "$(sum_range /dev/mapper/t5 8192 0)" "$(pattern_sum 51 8192)" "t5 data"
    assert_eq "$(sum_range /dev/mapper/t6 4096 8192)" "$(pattern_sum 61 4096)" "t6 data"
    assert_eq "$(sum_range /dev/mapper/t6 1024 0)" "$(zero_sum 1024)" "t6 unwritten reads zero"
}
