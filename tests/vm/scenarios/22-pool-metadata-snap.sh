# Metadata snapshots on a pool alone (20-metadata-snap with a thin and data
# does the rest): reserve_metadata_snap shows the held root in status field 7,
# a second reserve fails, thin_dump reads the snapshot (and not what changed
# after it), the held root survives reactivation, release shows '-' again and
# a second release fails.
APPLIES="c rust"
main() {
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup message pool 0 "create_snap 3 1"
    must dmsetup message pool 0 "set_transaction_id 0 6"
    assert_eq "$(pool_field pool 7)" "-" "no held root before reserve"
    must dmsetup message pool 0 reserve_metadata_snap
    held=$(pool_field pool 7)
    case "$held" in ""|-|*[!0-9]*) fail "held root after reserve_metadata_snap is '$held'" ;; esac
    assert_gt "$held" 0 "held root is not the superblock"
    assert_lt "$held" "$(pool_field pool 5 | cut -d/ -f2)" "held root inside the metadata device"
    dmesg -c >/dev/null
    msg_fails "Device or resource busy" pool reserve_metadata_snap
    logged "Pool metadata snapshot already exists: release this before taking another."
    logged "reserve_metadata_snap message failed."
    assert_eq "$(pool_field pool 7)" "$held" "a failed second reserve keeps the root"

    # What changes after the reserve is not in the snapshot.
    must dmsetup message pool 0 "delete 2"
    must dmsetup message pool 0 "create_thin 4"
    must dmsetup message pool 0 "set_transaction_id 6 7"
    assert_eq "$(dump_devices --metadata-snap=$held $META)" "1:0 2:0 3:0" "thin_dump --metadata-snap=ROOT of the live pool"
    assert_eq "$(dump_attr transaction)" "6" "transaction id in the snapshot"
    # C wipes the space map roots in the snapshot's superblock copy, so
    # thin_dump finds no data blocks there.
    assert_eq "$(dump_attr nr_data_blocks)" "0" "nr_data_blocks in the snapshot"
    assert_eq "$(dump_devices -m $META)" "1:0 2:0 3:0" "thin_dump -m (root from the superblock) of the live pool"
    # (thin_dump without -m refuses live metadata: "cannot run this tool with these options on live metadata".)

    # The held root is on disk: it survives reactivation, and thin_check
    # checks the metadata with the snapshot in it.
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices -m $META)" "1:0 2:0 3:0" "snapshot after removal"
    assert_eq "$(dump_devices $META)" "1:0 3:0 4:0" "committed devices after removal"
    assert_eq "$(dump_attr transaction)" "7" "committed transaction id"
    pool_create pool
    assert_eq "$(pool_field pool 7)" "$held" "held root after reactivation"
    assert_eq "$(pool_trans_id pool)" "7" "transaction id after reactivation"

    must dmsetup message pool 0 release_metadata_snap
    assert_eq "$(pool_field pool 7)" "-" "held root released"
    dmesg -c >/dev/null
    msg_fails "Invalid argument" pool release_metadata_snap
    logged "No pool metadata snapshot found: nothing to release."
    assert_eq "$(pool_field pool 7)" "-" "still no held root"
    # A new snapshot can be taken after a release, and sees the current devices.
    must dmsetup message pool 0 reserve_metadata_snap
    held2=$(pool_field pool 7)
    case "$held2" in ""|-|*[!0-9]*) fail "held root after the second reserve is '$held2'" ;; esac
    assert_eq "$(dump_devices -m $META)" "1:0 3:0 4:0" "second snapshot"
    must dmsetup message pool 0 release_metadata_snap
    assert_eq "$(pool_field pool 7)" "-" "second held root released"
    must dmsetup remove pool
    if thin_dump -m $META >/dev/null 2>&1; then fail "thin_dump -m found a snapshot after release"; fi
    assert_eq "$(dump_devices $META)" "1:0 3:0 4:0" "devices after release"
}
