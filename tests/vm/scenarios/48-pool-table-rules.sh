# Which pool tables are accepted, as C's pool_ctr and the target flags decide:
# - a live pool's discard support cannot change by reload, either way
#   ("Discard support cannot be disabled once enabled"), and the refused
#   table leaves the pool as it was;
# - the pool target is a singleton and immutable: it cannot share a table
#   with another target (nor a second pool line), a linear table cannot
#   replace it, but a pool table can replace a linear device's table;
# - block sizes: the largest (2^21 sectors) and a multiple of 128 sectors
#   that is not a power of two are accepted; a metadata device of 16 KiB is
#   refused ("Error creating metadata object"); a pool reopened with another
#   block size is refused the same way and its metadata is untouched.
APPLIES="c rust"
pool_error() { # pool_error EXPECTED CMD...: CMD fails with the pool ctr error EXPECTED
    local expected=$1; shift
    dmesg -c >/dev/null
    must_fail "$@"
    assert_eq "$(last_target_error $POOL_TARGET)" "$expected" "error of: $*"
}
main() {
    mm=$(maj_min $META); dm=$(maj_min $DATA)
    note "discard support is fixed for the life of the pool"
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "set_transaction_id 0 4"
    before=$(dmsetup status pool)
    pool_error "Discard support cannot be disabled once enabled" \
        dmsetup load pool --table "$(pool_line_on $META $DATA 0 ignore_discard)"
    pool_error "Discard support cannot be disabled once enabled" \
        dmsetup load pool --table "$(pool_line_on $META $DATA 0 skip_block_zeroing ignore_discard no_discard_passdown)"
    dmsetup table --inactive pool | grep -q . && fail "an inactive table was left: $(dmsetup table --inactive pool)"
    must dmsetup suspend pool; must dmsetup resume pool
    assert_eq "$(dmsetup status pool)" "$before" "status after the refused loads"
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 0 " "table after the refused loads"
    # Other features may change; passdown is not "discard support".
    pool_reload pool $META $DATA 0 no_discard_passdown
    assert_eq "$(pool_field pool 9)" "no_discard_passdown" "passdown off by reload"
    must dmsetup remove pool

    pool_create pool ignore_discard
    assert_eq "$(pool_field pool 9)" "ignore_discard" "status of an ignore_discard pool"
    pool_error "Discard support cannot be disabled once enabled" \
        dmsetup load pool --table "$(pool_line_on $META $DATA 0)"
    pool_error "Discard support cannot be disabled once enabled" \
        dmsetup load pool --table "$(pool_line_on $META $DATA 0 no_discard_passdown)"
    pool_reload pool $META $DATA 0 ignore_discard error_if_no_space
    set -- $(dmsetup status pool)
    assert_eq "$4 $8 $9 ${10}" "4 rw ignore_discard error_if_no_space" "ignore_discard pool reloaded with another feature"
    # Removed and created again, the pool may take discards again.
    must dmsetup remove pool
    pool_create pool
    assert_eq "$(pool_field pool 9)" "discard_passdown" "discards again in a new pool"

    note "singleton and immutable"
    must dmsetup create lin --table "0 2048 linear $DATA2 0"
    lines="0 $(sectors $DATA) $POOL_TARGET $META2 $DATA2 $BLOCK_SECTORS 0
$(sectors $DATA) 2048 linear $DATA2 0"
    must_fail dmsetup create mixed --table "$lines"
    dmsetup info mixed >/dev/null 2>&1 && fail "pool + linear table created a device"
    lines="0 2048 linear $DATA2 0
2048 $(sectors $DATA) $POOL_TARGET $META2 $DATA2 $BLOCK_SECTORS 0"
    must_fail dmsetup create mixed --table "$lines"
    dmsetup info mixed >/dev/null 2>&1 && fail "linear + pool table created a device"
    must_fail dmsetup load pool --table "0 2048 linear $DATA2 0"
    must_fail dmsetup load pool --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA $BLOCK_SECTORS 0
$(sectors $DATA) 2048 linear $DATA2 0"
    dmsetup table --inactive pool | grep -q . && fail "an inactive table was left on the pool"
    # A linear device becomes a pool (on the second pair of devices).
    wipe_meta $META2
    must dmsetup load lin --table "0 $(sectors $DATA2) $POOL_TARGET $META2 $DATA2 $BLOCK_SECTORS 0"
    must dmsetup suspend lin; must dmsetup resume lin
    set -- $(dmsetup status lin)
    assert_eq "$3 $4 $8" "$POOL_TARGET 0 rw" "the former linear device is a pool"
    must dmsetup message lin 0 "create_thin 7"
    must dmsetup remove lin
    assert_eq "$(dump_devices $META2)" "7:0" "devices of the pool made from a linear device"
    must dmsetup suspend pool; must dmsetup resume pool
    assert_eq "$(pool_field pool 4)" "4" "first pool unaffected"
    must dmsetup remove pool

    note "block sizes and metadata size"
    wipe_meta
    must dmsetup create big --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA 2097152 0"
    set -- $(dmsetup status big)
    assert_eq "$6" "0/$(( $(sectors $DATA) / 2097152 ))" "data blocks of 1 GiB"
    assert_eq "$(dmsetup table big)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 2097152 0 0 " "table with the largest block size"
    must dmsetup message big 0 "create_thin 1"
    must dmsetup remove big
    # The block size cannot change under existing metadata.
    pool_error "Error creating metadata object" \
        dmsetup create big --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA 128 0"
    dmsetup info big >/dev/null 2>&1 && fail "pool created with another block size"
    logged "changing the data block size (from 2097152 to 128) is not supported"
    assert_eq "$(dump_devices $META)" "1:0" "metadata untouched by the refused block size"
    assert_eq "$(dump_attr data_block_size)" "2097152" "block size on disk"
    wipe_meta
    must dmsetup create odd --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA 384 0"
    assert_eq "$(pool_total_data odd)" "$(( $(sectors $DATA) / 384 ))" "data blocks of 192 KiB"
    thin_create odd 1 t1 8
    write_pattern /dev/mapper/t1 48 1024 100
    assert_eq "$(sum_range /dev/mapper/t1 1024 100)" "$(pattern_sum 48 1024)" "data on 192 KiB blocks"
    assert_eq "$(pool_used_data odd)" "6" "192 KiB blocks used by 1 MiB at 100 KiB"
    must dmsetup remove t1
    must dmsetup remove odd
    check_metadata $META
    # 16 KiB of metadata is too small to format.
    must dmsetup create tiny --table "0 32 linear $META2 0"
    wipe_meta /dev/mapper/tiny
    pool_error "Error creating metadata object" \
        dmsetup create smallmd --table "0 $(sectors $DATA2) $POOL_TARGET /dev/mapper/tiny $DATA2 $BLOCK_SECTORS 0"
    dmsetup info smallmd >/dev/null 2>&1 && fail "pool created on 16 KiB of metadata"
    must dmsetup remove tiny
}
