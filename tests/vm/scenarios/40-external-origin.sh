# A thin over an external origin: unmapped blocks read from the origin
# (zeroes beyond its end), the first write to a block copies it from the
# origin, the origin is never written, and a snapshot of the thin shares it.
APPLIES="c rust"
main() {
    # A 1.5 MiB origin (24 blocks; its last block ends inside thin block 23).
    must dmsetup create origin --table "0 3000 linear $DATA2 0"
    write_pattern /dev/mapper/origin 41 1500 0
    must blockdev --setro /dev/mapper/origin
    osum=$(sum_range /dev/mapper/origin 1500 0)
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup create ext --table "0 8192 $THIN_TARGET /dev/mapper/pool 1 /dev/mapper/origin"
    assert_eq "$(dmsetup table ext | awk '{print $6}')" "$(maj_min /dev/mapper/origin)" "table names the origin"
    assert_eq "$(sum_range /dev/mapper/ext 1500 0)" "$osum" "unmapped blocks read from the origin"
    assert_eq "$(sum_range /dev/mapper/ext 1024 2048)" "$(zero_sum 1024)" "beyond the origin reads zeroes"
    assert_eq "$(pool_used_data pool)" "0" "reads provision nothing"
    # A 4 KiB write into block 2: the rest of the block comes from the origin.
    write_pattern /dev/mapper/ext 42 4 136
    dd if=/dev/mapper/origin bs=1024 count=1500 2>/dev/null > /tmp/expect
    pattern 42 4 | dd of=/tmp/expect bs=1024 seek=136 conv=notrunc 2>/dev/null
    assert_eq "$(sum_range /dev/mapper/ext 1500 0)" "$(sha256sum < /tmp/expect | cut -d' ' -f1)" "copy on first write keeps the origin's other data"
    # The block straddling the origin's end: copied part, zeroed rest.
    write_pattern /dev/mapper/ext 43 4 1480
    assert_eq "$(sum_range /dev/mapper/ext 20 1500)" "$(zero_sum 20)" "tail of the straddling block is zero"
    assert_eq "$(pool_used_data pool)" "2" "two blocks provisioned"
    assert_eq "$(sum_range /dev/mapper/origin 1500 0)" "$osum" "origin untouched"
    # A snapshot of the external-origin thin sees the same data.
    snap_create pool 1 ext 2
    must dmsetup create snap --table "0 8192 $THIN_TARGET /dev/mapper/pool 2 /dev/mapper/origin"
    tsum=$(sum_range /dev/mapper/ext 1500 0)
    assert_eq "$(sum_range /dev/mapper/snap 1500 0)" "$tsum" "snapshot sees the thin's data"
    write_pattern /dev/mapper/snap 44 64 640
    assert_eq "$(sum_range /dev/mapper/snap 64 640)" "$(pattern_sum 44 64)" "snapshot's own write"
    assert_eq "$(sum_range /dev/mapper/ext 1500 0)" "$tsum" "thin unchanged by the snapshot's write"
    assert_eq "$(sum_range /dev/mapper/origin 1500 0)" "$osum" "origin still untouched"
    must dmsetup remove snap; must dmsetup remove ext
    must dmsetup remove pool
    must blockdev --setrw /dev/mapper/origin
    must dmsetup remove origin
}
