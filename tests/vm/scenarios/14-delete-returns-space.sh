# delete of a thin returns its unshared blocks; shared blocks stay with the snapshot.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 16
    write_pattern /dev/mapper/t1 31 16384 0
    snap_create pool 1 t1 2
    write_pattern /dev/mapper/t1 32 4096 0           # 64 blocks broken out
    assert_eq "$(pool_used_data pool)" "320" "256 + 64 blocks"
    must dmsetup remove t1
    must dmsetup message /dev/mapper/pool 0 "delete 1"
    assert_eq "$(pool_used_data pool)" "256" "only the snapshot's blocks remain"
    thin_activate pool 2 t2 16
    assert_eq "$(sum_range /dev/mapper/t2 16384 0)" "$(pattern_sum 31 16384)" "snapshot intact after origin delete"
    must dmsetup remove t2
    must dmsetup message /dev/mapper/pool 0 "delete 2"
    assert_eq "$(pool_used_data pool)" "0" "everything returned"
    # Deleting again fails and changes nothing.
    must_fail dmsetup message /dev/mapper/pool 0 "delete 2"
    must_fail dmsetup create t2 --table "0 32768 $THIN_TARGET /dev/mapper/pool 2"
}
