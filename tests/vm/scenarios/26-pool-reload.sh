# A live pool's table reloaded over the same metadata device keeps the pool:
# transaction id, devices and a held metadata snapshot stay, the new features
# show in the table and status, messages work after the reload, read_only
# taken on and off by reloads. Pool only, no thins.
APPLIES="c rust"
pool_line() { # pool_line [FEATURE...]
    local feat=""
    [ $# -gt 0 ] && feat="$# $*"
    echo "0 $(sectors $DATA) $POOL_TARGET $META $DATA $BLOCK_SECTORS 0 $feat"
}
reload() { # reload [FEATURE...]: load, suspend, resume
    must dmsetup load pool --table "$(pool_line "$@")"
    must dmsetup suspend pool
    must dmsetup resume pool
}
main() {
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_snap 2 1"
    must dmsetup message pool 0 "set_transaction_id 0 11"
    must dmsetup message pool 0 reserve_metadata_snap
    held=$(pool_field pool 7)
    mm=$(maj_min $META); dm=$(maj_min $DATA)
    set -- $(dmsetup status pool); before="$4 $5 $6 $7"

    reload skip_block_zeroing
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 1 skip_block_zeroing " "table after reload"
    set -- $(dmsetup status pool)
    assert_eq "$4 $5 $6 $7" "$before" "transaction id, usage and held root after reload"
    assert_eq "$8 $9 ${10} ${11}" "rw discard_passdown queue_if_no_space -" "status flags after reload"

    # Messages work on the reloaded pool.
    must dmsetup message pool 0 "create_thin 3"
    must dmsetup message pool 0 "set_transaction_id 11 12"
    must dmsetup message pool 0 release_metadata_snap
    assert_eq "$(pool_trans_id pool)" "12" "transaction id after a message on the reloaded pool"
    assert_eq "$(pool_field pool 7)" "-" "held root released after reload"

    # A loaded but never resumed table changes nothing.
    must dmsetup load pool --table "$(pool_line no_discard_passdown)"
    must dmsetup clear pool
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 1 skip_block_zeroing " "table after a cleared load"

    # Several features at once, then back to none.
    reload error_if_no_space no_discard_passdown
    set -- $(dmsetup status pool)
    assert_eq "$4 $8 $9 ${10}" "12 rw no_discard_passdown error_if_no_space" "status with the reloaded features"
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 2 no_discard_passdown error_if_no_space " "table with the reloaded features"
    reload
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 0 " "table back without features"
    set -- $(dmsetup status pool)
    assert_eq "$4 $8 $9 ${10}" "12 rw discard_passdown queue_if_no_space" "status back without features"

    # read_only by reload: messages refused; back to read-write: they work.
    reload read_only
    assert_eq "$(pool_field pool 8)" "ro" "mode after reload read_only"
    msg_fails "Operation not supported" pool "create_thin 4"
    reload
    assert_eq "$(pool_field pool 8)" "rw" "mode after reload without read_only"
    must dmsetup message pool 0 "create_thin 4"
    must dmsetup message pool 0 "set_transaction_id 12 13"

    # The pool's devices cannot change under it, nor a second pool share them.
    dmesg -c >/dev/null
    must_fail dmsetup load pool --table "0 $(sectors $DATA2) $POOL_TARGET $META2 $DATA2 $BLOCK_SECTORS 0"
    assert_eq "$(last_target_error $POOL_TARGET)" "different pool cannot replace a pool" "reload onto other devices"
    dmesg -c >/dev/null
    must_fail dmsetup load pool --table "0 $(sectors $DATA2) $POOL_TARGET $META $DATA2 $BLOCK_SECTORS 0"
    assert_eq "$(last_target_error $POOL_TARGET)" "data device already in use by a pool" "reload onto another data device"
    dmesg -c >/dev/null
    must_fail dmsetup create pool2 --table "$(pool_line)"
    assert_eq "$(last_target_error $POOL_TARGET)" "metadata device already in use by a pool" "second pool on the same metadata"
    dmsetup info pool2 >/dev/null 2>&1 && fail "pool2 left behind"
    set -- $(dmsetup status pool)
    assert_eq "$4 $8" "13 rw" "pool untouched by refused tables"
    must dmsetup message pool 0 "create_thin 5"
    must dmsetup remove pool
    assert_eq "$(dump_devices $META)" "1:0 2:0 3:0 4:0 5:0" "devices on disk"
    assert_eq "$(dump_attr transaction)" "13" "transaction id on disk"
}
