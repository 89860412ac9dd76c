# set_transaction_id checks the old id, and the new id shows in status and survives reload.
APPLIES="c rust"
main() {
    pool_create pool
    assert_eq "$(pool_trans_id pool)" "0" "initial id"
    must dmsetup message pool 0 "set_transaction_id 0 7"
    assert_eq "$(pool_trans_id pool)" "7" "id set"
    must_fail dmsetup message pool 0 "set_transaction_id 0 9"
    assert_eq "$(pool_trans_id pool)" "7" "wrong old id changes nothing"
    must_fail dmsetup message pool 0 "set_transaction_id 7"
    must_fail dmsetup message pool 0 "set_transaction_id x 9"
    must dmsetup message pool 0 "set_transaction_id 7 8"
    must dmsetup remove pool
    pool_create pool
    assert_eq "$(pool_trans_id pool)" "8" "id persists across reactivation"
}
