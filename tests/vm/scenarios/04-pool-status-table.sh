# A fresh pool's status and table lines have the C format and values.
APPLIES="c rust"
main() {
    pool_create pool
    total=$(( $(sectors $DATA) / BLOCK_SECTORS ))
    set -- $(dmsetup status pool)
    assert_eq "$1 $2 $3" "0 $(sectors $DATA) $POOL_TARGET" "status prefix"
    assert_eq "$4" "0" "transaction id"
    assert_eq "${6}" "0/$total" "data usage"
    assert_eq "$7 $8 $9 ${10} ${11}" "- rw discard_passdown queue_if_no_space -" "status flags"
    meta_total=$(( $(sectors $META) / 8 ))
    assert_eq "${5#*/}" "$meta_total" "metadata total blocks"
    mm=$(maj_min $META); dm=$(maj_min $DATA)
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 0 " "table line (C leaves a trailing blank)"
    must dmsetup remove pool
    pool_create pool skip_block_zeroing no_discard_passdown error_if_no_space
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 3 skip_block_zeroing no_discard_passdown error_if_no_space " "table with features"
    set -- $(dmsetup status pool)
    assert_eq "$8 $9 ${10}" "rw no_discard_passdown error_if_no_space" "status with features"
}
