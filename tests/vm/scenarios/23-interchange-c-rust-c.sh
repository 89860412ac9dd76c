# A pool made by the C module (thins, data, a snapshot, a transaction id) opens
# in dm_thin_rs.ko with the same status; messages work on it; the result is
# clean for thin_check, thin_dump lists exactly the expected devices, and the
# C module opens it again with the data intact.
# Runs under IMPL=rust with the C module loaded beside it (other target names).
# APPLIES="" until rthin-pool opens pools (then "rust").
APPLIES="rust"
C_POOL=thin-pool C_THIN=thin R_POOL=rthin-pool
main() {
    must sh /tests/load.sh c
    # The C module: thins 1 and 2 with data, snapshot 3 of 1, then 1 diverges.
    pool_create_on $C_POOL pool $META $DATA
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup create t1 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 1"
    must dmsetup create t2 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 2"
    write_pattern /dev/mapper/t1 231 1024 0          # 16 blocks
    write_pattern /dev/mapper/t2 232 512 2048        # 8 blocks
    snap_create pool 1 t1 3
    write_pattern /dev/mapper/t1 233 256 0           # 4 blocks broken out of sharing
    must dmsetup message pool 0 "set_transaction_id 0 23"
    must dmsetup remove t1; must dmsetup remove t2
    assert_eq "$(pool_used_data pool)" "28" "data blocks used under C"
    c_status=$(pool_status_body pool)
    must dmsetup remove pool

    # dm_thin_rs.ko opens it.
    pool_create_on $R_POOL pool $META $DATA
    assert_eq "$(pool_field pool 3)" "$R_POOL" "target"
    assert_eq "$(pool_status_body pool)" "$c_status" "status under $R_POOL of the pool C made"
    must dmsetup message pool 0 "create_thin 4"
    must dmsetup message pool 0 "delete 2"
    must dmsetup message pool 0 "set_transaction_id 23 24"
    assert_eq "$(pool_trans_id pool)" "24" "transaction id under $R_POOL"
    assert_eq "$(pool_used_data pool)" "20" "delete 2 returned its 8 blocks"
    dmesg -c >/dev/null
    msg_fails "File exists" pool "create_thin 1"
    msg_fails "No data available" pool "delete 2"
    r_status=$(pool_status_body pool)
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META)" "1:16 3:16 4:0" "devices after $R_POOL"
    assert_eq "$(dump_attr transaction)" "24" "transaction id on disk"
    assert_eq "$(dump_attr nr_data_blocks)" "$(( $(sectors $DATA) / BLOCK_SECTORS ))" "nr_data_blocks"

    # The C module opens it again: same status, data intact, snapshot intact.
    pool_create_on $C_POOL pool $META $DATA
    assert_eq "$(pool_status_body pool)" "$r_status" "status under C of the pool $R_POOL changed"
    must dmsetup create t1 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 1"
    must dmsetup create t3 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 3"
    must dmsetup create t4 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 4"
    if dmsetup create t2 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 2" 2>/dev/null; then
        fail "deleted thin 2 activated"
    fi
    assert_eq "$(sum_range /dev/mapper/t1 256 0)" "$(pattern_sum 233 256)" "thin 1 rewritten part"
    pattern 231 1024 > /tmp/p231
    assert_eq "$(sum_range /dev/mapper/t1 768 256)" "$(dd if=/tmp/p231 bs=1024 skip=256 2>/dev/null | sha256sum | cut -d' ' -f1)" "thin 1 shared part"
    assert_eq "$(sum_range /dev/mapper/t3 1024 0)" "$(pattern_sum 231 1024)" "snapshot 3 keeps the old data"
    assert_eq "$(sum_range /dev/mapper/t4 1024 0)" "$(zero_sum 1024)" "new thin 4 reads zeroes"
    write_pattern /dev/mapper/t4 234 512 0
    assert_eq "$(sum_range /dev/mapper/t4 512 0)" "$(pattern_sum 234 512)" "thin 4 written under C"
    set -- $(dmsetup status pool)
    assert_eq "$3 $4 $7 $8" "$C_POOL 24 - rw" "status under C"
    assert_eq "${6%/*}" "28" "data blocks used under C after writing thin 4"
    must dmsetup remove t1; must dmsetup remove t3; must dmsetup remove t4
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META)" "1:16 3:16 4:8" "devices at the end"
    must sh /tests/load.sh unload-c
}
