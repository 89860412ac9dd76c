# Snapshots of snapshots: each level keeps its own view.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 21 8192 0
    snap_create pool 1 t1 2
    thin_activate pool 2 t2 8
    write_pattern /dev/mapper/t2 22 1024 0
    snap_create pool 2 t2 3
    thin_activate pool 3 t3 8
    write_pattern /dev/mapper/t3 23 512 2048
    # Inactive origin: snapshot of t3 without suspending anything.
    must dmsetup message /dev/mapper/pool 0 "create_snap 4 3"
    thin_activate pool 4 t4 8
    write_pattern /dev/mapper/t1 24 8192 0
    full=/tmp/full; pattern 21 8192 > $full
    assert_eq "$(sum_range /dev/mapper/t1 8192 0)" "$(pattern_sum 24 8192)" "t1 rewritten"
    assert_eq "$(sum_range /dev/mapper/t2 1024 0)" "$(pattern_sum 22 1024)" "t2 head"
    assert_eq "$(sum_range /dev/mapper/t2 7168 1024)" "$(dd if=$full bs=1024 skip=1024 2>/dev/null | sha256sum | cut -d' ' -f1)" "t2 tail from t1's old data"
    for t in t3 t4; do
        assert_eq "$(sum_range /dev/mapper/$t 1024 0)" "$(pattern_sum 22 1024)" "$t head from t2"
        assert_eq "$(sum_range /dev/mapper/$t 512 2048)" "$(pattern_sum 23 512)" "$t own data"
        assert_eq "$(sum_range /dev/mapper/$t 1024 1024)" "$(dd if=$full bs=1024 skip=1024 count=1024 2>/dev/null | sha256sum | cut -d' ' -f1)" "$t from t1's old data"
    done
}
