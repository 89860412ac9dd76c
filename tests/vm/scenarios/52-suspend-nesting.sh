# Suspends of the pool and its thins nest as C's internal suspend does
# (dm_internal_suspend_noflush of every active thin):
# - a pool with no thins, or with thins not active, suspends and resumes;
# - a thin suspended before the pool: both resume, in either order;
# - the pool suspended: `dmsetup resume` of the thin is a no-op and its I/O
#   still waits; `dmsetup suspend` of the thin waits for the pool's resume;
# - thin suspended, then the pool: the thin's resume waits for the pool's;
# - a thin with a second (inactive) table loaded: the pool suspends and
#   resumes, and the new table swaps in afterwards.
APPLIES="c rust"
running() { kill -0 $1 2>/dev/null; }
main() {
    note "no thins, inactive thins"
    pool_create pool
    must dmsetup suspend pool; must dmsetup resume pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup suspend pool; must dmsetup resume pool
    thin_activate pool 1 t1 8
    thin_activate pool 2 t2 8
    must dmsetup suspend pool; must dmsetup resume pool
    write_pattern /dev/mapper/t1 520 256 0

    note "thin suspended first"
    must dmsetup suspend t1
    must dmsetup suspend pool
    must dmsetup resume pool
    dmsetup info t1 | grep -q SUSPENDED || fail "t1 resumed by the pool: $(dmsetup info t1)"
    must dmsetup resume t1
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 520 256)" "t1 after nested suspends"

    note "resume of a thin the pool holds suspended"
    must dmsetup suspend pool
    must dmsetup resume t1
    write_pattern /dev/mapper/t1 521 64 512 &
    w=$!
    sleep 3
    running $w || fail "t1 I/O completed while the pool was suspended"
    must dmsetup resume pool
    wait $w || fail "t1 write after the pool resumed"
    assert_eq "$(sum_range /dev/mapper/t1 64 512)" "$(pattern_sum 521 64)" "t1 write across the suspend"

    note "suspend of a thin while the pool is suspended"
    must dmsetup suspend pool
    dmsetup suspend t2 &
    s=$!
    sleep 3
    running $s || fail "t2 suspended while the pool held it suspended"
    must dmsetup resume pool
    wait $s || fail "t2 suspend after the pool resumed"
    dmsetup info t2 | grep -q SUSPENDED || fail "t2 not suspended: $(dmsetup info t2)"
    must dmsetup resume t2
    write_pattern /dev/mapper/t2 522 64 0
    assert_eq "$(sum_range /dev/mapper/t2 64 0)" "$(pattern_sum 522 64)" "t2 after its suspend"

    note "resume of a suspended thin while the pool is suspended"
    must dmsetup suspend t1
    must dmsetup suspend pool
    dmsetup resume t1 &
    r=$!
    sleep 3
    running $r || fail "t1 resumed while the pool held it suspended"
    must dmsetup resume pool
    wait $r || fail "t1 resume after the pool resumed"
    dmsetup info t1 | grep -q SUSPENDED && fail "t1 still suspended: $(dmsetup info t1)"
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 520 256)" "t1 after its resume"

    note "a thin with an inactive table"
    must dmsetup load t1 --table "$(dmsetup table t1)"
    dmsetup table --inactive t1 | grep -q "$THIN_TARGET" || fail "no inactive table on t1"
    must dmsetup suspend pool; must dmsetup resume pool
    write_pattern /dev/mapper/t1 523 64 1024
    must dmsetup suspend t1; must dmsetup resume t1
    dmsetup table --inactive t1 | grep -q "$THIN_TARGET" && fail "inactive table still there"
    assert_eq "$(sum_range /dev/mapper/t1 64 1024)" "$(pattern_sum 523 64)" "t1 with its new table"
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 520 256)" "t1 old data with its new table"
    must dmsetup suspend pool; must dmsetup resume pool
    must dmsetup remove t1; must dmsetup remove t2
    must dmsetup suspend pool; must dmsetup resume pool
}
