# Thin activation against the pool's state, with C thin_ctr's errors:
# - a thin id the pool does not have: "Couldn't open thin internal device"
#   (also in a read-only pool);
# - the pool suspended, or loaded but never resumed yet: "Unable to activate
#   thin device while pool is suspended"; after the resume it activates;
#   (the latter: a linear device with a pool table loaded);
# - the same thin id twice: both activate and see the same blocks; it cannot
#   be deleted until both are gone;
# - the pool in fail mode (metadata device swapped for dm-error, as in 45):
#   "Couldn't open thin device, Pool is in fail mode", and the thin status
#   of an active thin is "Fail".
APPLIES="c rust"
thin_error() { # thin_error EXPECTED NAME TABLE: creating NAME fails with EXPECTED
    dmesg -c >/dev/null
    must_fail dmsetup create "$2" --table "$3"
    assert_eq "$(last_target_error $THIN_TARGET)" "$1" "thin line '$3'"
    dmsetup info "$2" >/dev/null 2>&1 && fail "$2 left behind"
    return 0
}
thin_line() { echo "0 16384 $THIN_TARGET /dev/mapper/$1 $2"; }
main() {
    rawm=$META
    must dmsetup create meta --table "0 $(sectors $rawm) linear $rawm 0"
    META=/dev/mapper/meta

    note "a thin id the pool does not have"
    pool_create pool
    thin_error "Couldn't open thin internal device" t5 "$(thin_line pool 5)"
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup message pool 0 "delete 2"
    thin_error "Couldn't open thin internal device" t2 "$(thin_line pool 2)"
    thin_error "Couldn't open thin internal device" t3 "$(thin_line pool 16777215)"

    note "the same thin twice"
    thin_activate pool 1 a 8
    thin_activate pool 1 b 8
    write_pattern /dev/mapper/a 491 512 0
    assert_eq "$(sum_range /dev/mapper/b 512 0)" "$(pattern_sum 491 512)" "b reads what a wrote"
    write_pattern /dev/mapper/b 492 256 1024
    assert_eq "$(sum_range /dev/mapper/a 256 1024)" "$(pattern_sum 492 256)" "a reads what b wrote"
    assert_eq "$(thin_mapped_sectors a) $(thin_mapped_sectors b)" "1536 1536" "mapped sectors of both"
    assert_eq "$(pool_used_data pool)" "12" "blocks used once"
    must dmsetup remove a
    msg_fails "Device or resource busy" pool "delete 1"
    must dmsetup remove b

    note "the pool suspended"
    must dmsetup suspend pool
    thin_error "Unable to activate thin device while pool is suspended" t1 "$(thin_line pool 1)"
    thin_error "Couldn't open thin internal device" t5 "$(thin_line pool 5)"
    must dmsetup resume pool
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 512 0)" "$(pattern_sum 491 512)" "data after the suspend"
    must dmsetup remove t1
    must dmsetup remove pool

    note "the pool loaded but not resumed yet"
    # A linear device whose inactive table is a pool: the pool exists, but
    # has not resumed yet.
    must dmsetup create pool --table "0 2048 linear $DATA2 0"
    must dmsetup load pool --table "$(pool_line_on $META $DATA 0)"
    thin_error "Unable to activate thin device while pool is suspended" t1 "$(thin_line pool 1)"
    must dmsetup resume pool
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 512 0)" "$(pattern_sum 491 512)" "data once the pool resumed"
    must dmsetup remove t1
    must dmsetup remove pool

    note "a read-only pool"
    pool_create pool read_only
    thin_error "Couldn't open thin internal device" t5 "$(thin_line pool 5)"
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 512 0)" "$(pattern_sum 491 512)" "data in the read-only pool"
    must dmsetup remove t1
    must dmsetup remove pool

    note "the pool in fail mode"
    pool_create pool
    thin_activate pool 1 t1 8
    # Blocks 32-47 written first: what the next writes look up is cached.
    write_pattern /dev/mapper/t1 494 1024 2048
    must dmsetup load meta --table "0 $(sectors $rawm) error"
    must dmsetup suspend meta; must dmsetup resume meta
    if pattern 493 1024 | dd of=/dev/mapper/t1 bs=65536 seek=48 conv=fsync 2>/dev/null; then
        fail "writes needing metadata succeeded with the metadata device failing"
    fi
    assert_eq "$(pool_mode pool)" "Fail" "pool status"
    assert_eq "$(dmsetup status t1)" "0 16384 $THIN_TARGET Fail" "thin status"
    thin_error "Couldn't open thin device, Pool is in fail mode" t1b "$(thin_line pool 1)"
    thin_error "Couldn't open thin device, Pool is in fail mode" t5 "$(thin_line pool 5)"
    must dmsetup load meta --table "0 $(sectors $rawm) linear $rawm 0"
    must dmsetup suspend meta; must dmsetup resume meta
    thin_error "Couldn't open thin device, Pool is in fail mode" t1b "$(thin_line pool 1)"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META
    must dmsetup remove meta
}
