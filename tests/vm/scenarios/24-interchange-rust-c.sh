# A pool formatted by dm_thin_rs.ko, given thins, a snapshot and a transaction
# id by messages, is clean for thin_check and opens in the C module, which
# activates the devices and carries data on them; dm_thin_rs.ko then opens
# the result with the same status C shows.
# Runs under IMPL=rust with the C module loaded beside it (other target names).
# APPLIES="" until rthin-pool opens pools (then "rust").
APPLIES="rust"
C_POOL=thin-pool C_THIN=thin R_POOL=rthin-pool
main() {
    must sh /tests/load.sh c
    pool_create_on $R_POOL pool $META $DATA
    assert_eq "$(pool_field pool 3)" "$R_POOL" "target"
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup message pool 0 "create_snap 3 1"
    must dmsetup message pool 0 "create_snap 5 3"
    must dmsetup message pool 0 "delete 5"
    must dmsetup message pool 0 "set_transaction_id 0 9"
    r_status=$(pool_status_body pool)
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META)" "1:0 2:0 3:0" "devices made by $R_POOL"
    assert_eq "$(dump_attr transaction)" "9" "transaction id on disk"
    assert_eq "$(dump_attr data_block_size)" "$BLOCK_SECTORS" "data block size on disk"
    assert_eq "$(dump_attr nr_data_blocks)" "$(( $(sectors $DATA) / BLOCK_SECTORS ))" "nr_data_blocks"

    pool_create_on $C_POOL pool $META $DATA
    assert_eq "$(pool_status_body pool)" "$r_status" "status under C of the pool $R_POOL made"
    must dmsetup create t1 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 1"
    must dmsetup create t2 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 2"
    must dmsetup create t3 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 3"
    if dmsetup create t5 --table "0 $((8 * 2048)) $C_THIN /dev/mapper/pool 5" 2>/dev/null; then
        fail "deleted thin 5 activated"
    fi
    for t in t1 t2 t3; do
        assert_eq "$(sum_range /dev/mapper/$t 1024 0)" "$(zero_sum 1024)" "$t reads zeroes"
    done
    write_pattern /dev/mapper/t1 241 1024 0
    write_pattern /dev/mapper/t2 242 512 1024
    write_pattern /dev/mapper/t3 243 256 4096
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 241 1024)" "thin 1 data"
    assert_eq "$(sum_range /dev/mapper/t2 512 1024)" "$(pattern_sum 242 512)" "thin 2 data"
    assert_eq "$(sum_range /dev/mapper/t3 256 4096)" "$(pattern_sum 243 256)" "thin 3 data"
    assert_eq "$(sum_range /dev/mapper/t3 1024 0)" "$(zero_sum 1024)" "snapshot 3 does not see thin 1's later writes"
    assert_eq "$(pool_used_data pool)" "28" "data blocks used under C"
    must dmsetup message pool 0 "set_transaction_id 9 10"
    must dmsetup remove t1; must dmsetup remove t2; must dmsetup remove t3
    c_status=$(pool_status_body pool)
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META)" "1:16 2:8 3:4" "devices after C"

    pool_create_on $R_POOL pool $META $DATA
    assert_eq "$(pool_status_body pool)" "$c_status" "status under $R_POOL of the pool C wrote"
    must dmsetup message pool 0 "delete 2"
    assert_eq "$(pool_used_data pool)" "20" "delete 2 returned its 8 blocks"
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META)" "1:16 3:4" "devices at the end"
    must sh /tests/load.sh unload-c
}
