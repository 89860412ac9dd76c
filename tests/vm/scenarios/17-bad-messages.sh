# Bad pool messages fail and change nothing.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 71 1024 0
    before=$(dmsetup status pool)
    for m in "create_thin" "create_thin x" "create_thin 1" "create_thin 16777216" \
             "create_snap 2" "create_snap 2 9" "create_snap 1 1" "delete" "delete 9" \
             "delete 1 2" "set_transaction_id 1 2" "frobnicate" "create_thin 2 3" \
             "reserve_metadata_snap x" "release_metadata_snap"; do
        must_fail dmsetup message pool 0 "$m"
    done
    assert_eq "$(dmsetup status pool)" "$before" "status unchanged by bad messages"
    # The active thin 1 cannot be deleted while open.
    must_fail dmsetup message pool 0 "delete 1"
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 71 1024)" "data intact"
}
