# Several pools at once:
# - two pools side by side (META/DATA and META2/DATA2), thins written in
#   parallel, each pool's messages and data its own;
# - stacked pools: the upper pool's data device is a thin of the lower
#   pool; writes to the upper thin provision both; a discard of half the
#   upper thin frees upper blocks, and lower blocks only when the upper
#   pool passes discards down (C do_discard_levels): upper passdown,
#   upper no_discard_passdown, upper ignore_discard (discard refused),
#   lower ignore_discard (the upper pool disables passdown: its data
#   device takes no discards).
# On C the lower pool is dm_thin_rs.ko's: C's pools share one lockdep class
# for their throttle rwsem (dm-thin.c `struct throttle`). Once the upper
# pool's worker has run for a second it holds its throttle for write, and
# its commit's flush reaches the lower thin's thin_map, which takes the
# lower pool's throttle for read: lockdep reports recursive locking (a
# false positive, two instances), and is off for the rest of the boot.
APPLIES="c rust"
LOWER_POOL=rthin-pool LOWER_THIN=rthin
stack() { # stack "LOWER_FEATURES" "UPPER_FEATURES": lower pool, 64 MiB thin lt, upper pool on lt, 32 MiB thin ut with 2 MiB written
    wipe_meta $META; wipe_meta $META2
    pool_create_on $LOWER_POOL lower $META $DATA $1
    must dmsetup message lower 0 "create_thin 1"
    must dmsetup create lt --table "0 $((64 * 2048)) $LOWER_THIN /dev/mapper/lower 1"
    pool_create_on $POOL_TARGET upper $META2 /dev/mapper/lt $2
    thin_create upper 1 ut 32
    write_pattern /dev/mapper/ut 550 2048 0
    assert_eq "$(pool_used_data upper) $(pool_used_data lower)" "32 32" "blocks used after writing the upper thin"
}
unstack() {
    must dmsetup remove ut; must dmsetup remove upper
    must dmsetup remove lt; must dmsetup remove lower
}
discard_half() { blkdiscard -o 0 -l 1048576 /dev/mapper/ut; }
main() {
    note "two pools side by side"
    pool_create_on $POOL_TARGET p1 $META $DATA
    pool_create_on $POOL_TARGET p2 $META2 $DATA2
    thin_create p1 1 a 16
    thin_create p2 1 b 16
    must dmsetup message p2 0 "create_thin 2"
    must dmsetup message p1 0 "set_transaction_id 0 1"
    must dmsetup message p2 0 "set_transaction_id 0 2"
    write_pattern /dev/mapper/a 551 8192 0 &
    w1=$!
    write_pattern /dev/mapper/b 552 8192 0 &
    w2=$!
    wait $w1 || fail "write to a"
    wait $w2 || fail "write to b"
    assert_eq "$(sum_range /dev/mapper/a 8192 0)" "$(pattern_sum 551 8192)" "data of a"
    assert_eq "$(sum_range /dev/mapper/b 8192 0)" "$(pattern_sum 552 8192)" "data of b"
    set -- $(dmsetup status p1); s1="$4 $6"
    set -- $(dmsetup status p2); s2="$4 $6"
    assert_eq "$s1 $s2" "1 128/32768 2 128/32768" "transaction ids and usage of both pools"
    must dmsetup remove a; must dmsetup remove b
    must dmsetup remove p1; must dmsetup remove p2
    assert_eq "$(dump_devices $META)" "1:128" "devices of p1"
    assert_eq "$(dump_devices $META2)" "1:128 2:0" "devices of p2"
    check_metadata $META2

    [ $IMPL = rust ] || must sh /tests/load.sh rust
    note "stacked, passdown at both levels"
    stack "" ""
    assert_eq "$(sum_range /dev/mapper/ut 2048 0)" "$(pattern_sum 550 2048)" "data through two pools"
    must discard_half
    assert_eq "$(pool_used_data upper) $(pool_used_data lower)" "16 16" "blocks after the discard"
    assert_eq "$(sum_range /dev/mapper/ut 1024 1024)" "$(pattern 550 2048 | dd bs=1024 skip=1024 2>/dev/null | sha256sum | cut -d' ' -f1)" "the half kept"
    assert_eq "$(sum_range /dev/mapper/ut 1024 0)" "$(zero_sum 1024)" "the half discarded reads zeroes"
    unstack
    check_metadata $META2

    note "stacked, upper no_discard_passdown"
    stack "" "no_discard_passdown"
    must discard_half
    assert_eq "$(pool_used_data upper) $(pool_used_data lower)" "16 32" "blocks after the discard"
    unstack

    note "stacked, upper ignore_discard"
    stack "" "ignore_discard"
    discard_half 2>/dev/null && fail "discard worked on an ignore_discard pool's thin"
    assert_eq "$(pool_used_data upper) $(pool_used_data lower)" "32 32" "blocks after the refused discard"
    unstack

    note "stacked, lower ignore_discard"
    dmesg -c >/dev/null
    stack "ignore_discard" ""
    logged "Data device (dm-$(maj_min /dev/mapper/lt | cut -d: -f2)) discard unsupported: Disabling discard passdown."
    assert_eq "$(pool_field upper 9) $(pool_field lower 9)" "no_discard_passdown ignore_discard" "passdown of both pools"
    must discard_half
    assert_eq "$(pool_used_data upper) $(pool_used_data lower)" "16 32" "blocks after the discard"
    unstack
    check_metadata $META2
    [ $IMPL = rust ] || must sh /tests/load.sh unload-rust
}
