# A read_only pool serves reads of mapped blocks and refuses provisioning and messages.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 81 1024 0
    must dmsetup remove t1; must dmsetup remove pool
    pool_create pool read_only
    set -- $(dmsetup status pool)
    assert_eq "$8" "ro" "status mode"
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 81 1024)" "reads work"
    must_fail dmsetup message pool 0 "create_thin 2"
    if dd if=/dev/zero of=/dev/mapper/t1 bs=64k seek=50 count=1 oflag=direct 2>/dev/null; then
        fail "write to an unprovisioned block of a read-only pool succeeded"
    fi
    assert_eq "$(pool_used_data pool)" "16" "nothing provisioned"
}
