# Suspending the pool quiesces its active thins (C pool_suspend_active_thins):
# their I/O waits until the pool resumes, then completes with its data.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 47 256 0
    must dmsetup suspend pool
    # A new thin cannot be activated while the pool is suspended.
    must dmsetup message pool 0 "create_thin 2"
    must_fail dmsetup create t2 --table "0 16384 $THIN_TARGET /dev/mapper/pool 2"
    dmsetup remove t2 2>/dev/null
    # A write to the thin does not complete while the pool is suspended...
    write_pattern /dev/mapper/t1 48 64 1024 &
    w=$!
    sleep 3
    kill -0 $w 2>/dev/null || fail "thin I/O completed while the pool was suspended"
    # ...and does once it resumes.
    must dmsetup resume pool
    wait $w || fail "write after resume failed"
    assert_eq "$(sum_range /dev/mapper/t1 64 1024)" "$(pattern_sum 48 64)" "data written across the suspend"
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 47 256)" "earlier data intact"
    # The thin still suspends and resumes on its own afterwards.
    must dmsetup suspend t1; must dmsetup resume t1
    assert_eq "$(sum_range /dev/mapper/t1 64 1024)" "$(pattern_sum 48 64)" "data after a thin suspend"
}
