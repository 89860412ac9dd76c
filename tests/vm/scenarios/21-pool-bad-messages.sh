# Bad pool messages fail with C's errno and log line and change nothing; the
# accepted spellings work; a read-only pool refuses messages. Pool only: no
# thin is activated and no data is written (17-bad-messages does that part).
APPLIES="c rust"
EINVAL="Invalid argument"
bad() { # bad ERRNO_TEXT LOG_TEXT MESSAGE
    dmesg -c >/dev/null
    msg_fails "$1" pool "$3"
    logged "$2"
}
main() {
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_snap 2 1"
    must dmsetup message pool 0 "set_transaction_id 0 3"
    before=$(dmsetup status pool)
    bad "$EINVAL" "Message received with 1 arguments instead of 2." "create_thin"
    bad "$EINVAL" "Message received with 3 arguments instead of 2." "create_thin 2 3"
    bad "$EINVAL" "Message received with invalid device id: x" "create_thin x"
    bad "$EINVAL" "Message received with invalid device id: 16777216" "create_thin 16777216"
    bad "$EINVAL" "Message received with invalid device id: -1" "create_thin -1"
    bad "$EINVAL" "Message received with invalid device id: 0x5" "create_thin 0x5"
    bad "$EINVAL" "Message received with invalid device id: 5x" "create_thin 5x"
    bad "$EINVAL" "Message received with invalid device id: 18446744073709551617" "create_thin 18446744073709551617"
    bad "File exists" "Creation of new thinly-provisioned device with id 1 failed." "create_thin 1"
    bad "File exists" "Creation of new thinly-provisioned device with id 2 failed." "create_thin 2"
    bad "$EINVAL" "Message received with 2 arguments instead of 3." "create_snap 3"
    bad "$EINVAL" "Message received with 4 arguments instead of 3." "create_snap 3 1 1"
    bad "$EINVAL" "Message received with invalid device id: y" "create_snap 3 y"
    bad "$EINVAL" "Message received with invalid device id: y" "create_snap y 1"
    bad "No data available" "Creation of new snapshot 3 of device 9 failed." "create_snap 3 9"
    bad "File exists" "Creation of new snapshot 1 of device 2 failed." "create_snap 1 2"
    bad "File exists" "Creation of new snapshot 2 of device 2 failed." "create_snap 2 2"
    bad "$EINVAL" "Message received with 1 arguments instead of 2." "delete"
    bad "$EINVAL" "Message received with 3 arguments instead of 2." "delete 1 2"
    bad "$EINVAL" "Message received with invalid device id: z" "delete z"
    bad "No data available" "Deletion of thin device 9 failed." "delete 9"
    bad "$EINVAL" "Failed to change transaction id from 0 to 4." "set_transaction_id 0 4"
    logged "mismatched transaction id"
    bad "$EINVAL" "Message received with 2 arguments instead of 3." "set_transaction_id 3"
    bad "$EINVAL" "Message received with 4 arguments instead of 3." "set_transaction_id 3 4 5"
    bad "$EINVAL" "set_transaction_id message: Unrecognised id x." "set_transaction_id x 4"
    bad "$EINVAL" "set_transaction_id message: Unrecognised new id y." "set_transaction_id 3 y"
    bad "$EINVAL" "set_transaction_id message: Unrecognised new id 18446744073709551616." "set_transaction_id 3 18446744073709551616"
    bad "$EINVAL" "Unrecognised thin pool target message received: frobnicate" "frobnicate"
    bad "$EINVAL" "Unrecognised thin pool target message received: create_thin2" "create_thin2 5"
    bad "$EINVAL" "Message received with 2 arguments instead of 1." "reserve_metadata_snap x"
    bad "$EINVAL" "Message received with 2 arguments instead of 1." "release_metadata_snap x"
    bad "$EINVAL" "No pool metadata snapshot found: nothing to release." "release_metadata_snap"
    logged "release_metadata_snap message failed."
    assert_eq "$(dmsetup status pool)" "$before" "status unchanged by bad messages"

    # Message names are matched with strcasecmp; ids are parsed by kstrtoull
    # (a leading '+' and leading zeros are accepted); the limits are inclusive.
    must dmsetup message pool 0 "CREATE_THIN 4"
    must dmsetup message pool 0 "Create_Snap +5 4"
    must dmsetup message pool 0 "create_thin 16777215"
    must dmsetup message pool 0 "delete 04"
    must dmsetup message pool 0 "Set_Transaction_Id 03 18446744073709551615"
    assert_eq "$(pool_trans_id pool)" "18446744073709551615" "largest transaction id"
    must dmsetup message pool 0 "set_transaction_id 18446744073709551615 4"
    assert_eq "$(pool_trans_id pool)" "4" "transaction id after the accepted spellings"

    # A read-only pool refuses every message, valid or not, and changes nothing.
    must dmsetup remove pool
    pool_create pool read_only
    before=$(dmsetup status pool)
    # C logs it after the pool's device number: "thin: 253:0: unable ...".
    ro=": unable to service pool target messages in READ_ONLY or FAIL mode"
    for m in "create_thin 6" "create_snap 6 1" "delete 1" "set_transaction_id 4 5" \
             reserve_metadata_snap release_metadata_snap frobnicate; do
        bad "Operation not supported" "$ro" "$m"
    done
    assert_eq "$(dmsetup status pool)" "$before" "read-only pool unchanged by messages"
    must dmsetup remove pool
    assert_eq "$(dump_devices $META)" "1:0 2:0 5:0 16777215:0" "devices on disk"
    assert_eq "$(dump_attr transaction)" "4" "transaction id on disk"
}
