# A snapshot of an active origin: writes to either are independent (copy on write).
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 origin 16
    write_pattern /dev/mapper/origin 12 16384 0
    used=$(pool_used_data pool)
    snap_create pool 1 origin 2
    thin_activate pool 2 snap 16
    assert_eq "$(pool_used_data pool)" "$used" "a snapshot shares all blocks"
    assert_eq "$(sum_range /dev/mapper/snap 16384 0)" "$(pattern_sum 12 16384)" "snapshot sees the origin's data"
    # Overwrite the first MiB of the origin and a different MiB of the snapshot.
    write_pattern /dev/mapper/origin 13 1024 0
    write_pattern /dev/mapper/snap 14 1024 4096
    assert_eq "$(pool_used_data pool)" "$((used + 32))" "32 blocks broken out of sharing"
    full=/tmp/full; pattern 12 16384 > $full
    assert_eq "$(sum_range /dev/mapper/snap 1024 0)" "$(dd if=$full bs=1024 count=1024 2>/dev/null | sha256sum | cut -d' ' -f1)" "snapshot keeps old data where the origin changed"
    assert_eq "$(sum_range /dev/mapper/origin 1024 0)" "$(pattern_sum 13 1024)" "origin has its new data"
    assert_eq "$(sum_range /dev/mapper/snap 1024 4096)" "$(pattern_sum 14 1024)" "snapshot has its new data"
    assert_eq "$(sum_range /dev/mapper/origin 1024 4096)" "$(dd if=$full bs=1024 skip=4096 count=1024 2>/dev/null | sha256sum | cut -d' ' -f1)" "origin keeps old data where the snapshot changed"
    # A partial-block write to a shared block copies the rest of the block.
    echo -n "hello" | dd of=/dev/mapper/snap bs=1 seek=$((8 * 1024 * 1024 + 100)) conv=notrunc,fsync 2>/dev/null
    assert_eq "$(sum_range /dev/mapper/snap 64 $((8 * 1024 + 64)))" "$(dd if=$full bs=1024 skip=$((8 * 1024 + 64)) count=64 2>/dev/null | sha256sum | cut -d' ' -f1)" "rest of a COW block copied"
}
