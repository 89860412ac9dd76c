# Discards reach the data device with passdown on, and do not with no_discard_passdown.
APPLIES="c rust"
main() {
    must dmsetup create data --table "0 $(sectors $DATA) linear $DATA 0"
    DATA=/dev/mapper/data
    pool_create pool
    thin_create pool 1 thin1 16
    write_pattern /dev/mapper/thin1 11 4096 0
    d0=$(discard_sectors $DATA)
    must blkdiscard /dev/mapper/thin1
    d1=$(discard_sectors $DATA)
    note "data device discarded sectors: $d0 -> $d1"
    assert_le $((d0 + 4096 * 2)) $d1 "passdown sent the freed blocks' discards to the data device"
    must dmsetup remove thin1
    must dmsetup remove pool
    wipe_meta
    pool_create pool no_discard_passdown
    thin_create pool 1 thin1 16
    write_pattern /dev/mapper/thin1 11 4096 0
    d2=$(discard_sectors $DATA)
    must blkdiscard /dev/mapper/thin1
    assert_eq "$(discard_sectors $DATA)" "$d2" "no discards with no_discard_passdown"
    assert_eq "$(pool_used_data pool)" "0" "blocks still freed without passdown"
}
