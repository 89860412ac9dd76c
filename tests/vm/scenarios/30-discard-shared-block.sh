# A discard of blocks shared with a snapshot unmaps them in the thin only: the
# snapshot keeps its data and no discard reaches the data device (a dm-linear
# whose discard counter is read). A discard of blocks no one else references
# does reach it, and once the snapshot is the only owner its discards do too.
APPLIES="c rust"
MB=1048576
main() {
    must dmsetup create data --table "0 $(sectors $DATA) linear $DATA 0"
    DATA=/dev/mapper/data
    pool_create pool
    thin_create pool 1 origin 16
    write_pattern /dev/mapper/origin 31 2048 0          # blocks 0-31
    snap_create pool 1 origin 2
    thin_activate pool 2 snap 16
    assert_eq "$(pool_used_data pool)" "32" "used after writing 32 blocks and a snapshot"
    full=/tmp/p31; pattern 31 2048 > $full
    part_sum() { dd if=$full bs=1024 skip=$1 count=$2 2>/dev/null | sha256sum | cut -d' ' -f1; }

    # 1. Blocks 0-15 of the origin: all shared.
    d0=$(discard_sectors $DATA)
    must blkdiscard -o 0 -l $MB /dev/mapper/origin
    d1=$(discard_sectors $DATA)
    note "discard of 16 shared blocks: data device discarded sectors $d0 -> $d1"
    assert_eq "$d1" "$d0" "no discard reaches the data device for shared blocks"
    assert_eq "$(pool_used_data pool)" "32" "shared blocks stay allocated"
    assert_eq "$(thin_mapped_sectors origin)" "$((16 * BLOCK_SECTORS))" "origin mapped sectors after the discard"
    assert_eq "$(thin_mapped_sectors snap)" "$((32 * BLOCK_SECTORS))" "snapshot mapped sectors"
    assert_eq "$(sum_range /dev/mapper/origin 1024 0)" "$(zero_sum 1024)" "origin reads zeroes where discarded"
    assert_eq "$(sum_range /dev/mapper/snap 2048 0)" "$(pattern_sum 31 2048)" "snapshot keeps all its data"
    assert_eq "$(sum_range /dev/mapper/origin 1024 1024)" "$(part_sum 1024 1024)" "origin keeps blocks 16-31"

    # 2. Blocks 16-47 of the origin: 16-23 rewritten (sharing broken), 24-31
    #    shared, 32-39 fresh, 40-47 never mapped.
    write_pattern /dev/mapper/origin 32 512 1024
    write_pattern /dev/mapper/origin 33 512 2048
    assert_eq "$(pool_used_data pool)" "48" "used after breaking 8 blocks and provisioning 8"
    must blkdiscard -o $MB -l $((2 * MB)) /dev/mapper/origin
    d2=$(discard_sectors $DATA)
    note "discard of 16 unshared + 8 shared blocks: data device discarded sectors $d1 -> $d2"
    assert_eq "$d2" "$((d1 + 16 * BLOCK_SECTORS))" "only the 16 unshared blocks are discarded on the data device"
    assert_eq "$(pool_used_data pool)" "32" "the unshared blocks are freed, the shared ones kept"
    assert_eq "$(thin_mapped_sectors origin)" "0" "origin maps nothing"
    assert_eq "$(sum_range /dev/mapper/origin 4096 0)" "$(zero_sum 4096)" "origin reads zeroes"
    assert_eq "$(sum_range /dev/mapper/snap 2048 0)" "$(pattern_sum 31 2048)" "snapshot keeps all its data"

    # 3. The snapshot is now the only owner: its discards reach the data device.
    must blkdiscard -o 0 -l $MB /dev/mapper/snap
    d3=$(discard_sectors $DATA)
    note "discard of 16 blocks only the snapshot holds: $d2 -> $d3"
    assert_eq "$d3" "$((d2 + 16 * BLOCK_SECTORS))" "the snapshot's own blocks are discarded on the data device"
    assert_eq "$(pool_used_data pool)" "16" "used after the snapshot's discard"
    assert_eq "$(sum_range /dev/mapper/snap 1024 0)" "$(zero_sum 1024)" "snapshot reads zeroes where discarded"
    assert_eq "$(sum_range /dev/mapper/snap 1024 1024)" "$(part_sum 1024 1024)" "snapshot keeps blocks 16-31"
}
