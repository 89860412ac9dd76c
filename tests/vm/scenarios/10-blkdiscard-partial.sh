# Partial, unaligned blkdiscard: whole blocks inside the range are unmapped,
# partial blocks at its ends keep their data, data outside is untouched.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 4 thin4 16
    write_pattern /dev/mapper/thin4 4 16384 0            # 256 blocks of 64 KiB
    before=$(pool_used_data pool)
    # Bytes 100 KiB .. 100 KiB + 1000 KiB: blocks 2..16 (15 whole blocks) lie inside.
    must blkdiscard -o $((100 * 1024)) -l $((1000 * 1024)) /dev/mapper/thin4
    assert_eq "$(pool_used_data pool)" "$((before - 15))" "15 whole blocks freed"
    assert_eq "$(thin_mapped_sectors thin4)" "$(((256 - 15) * 128))" "mapped sectors"
    # Outside the range the pattern is intact.
    full=/tmp/full; pattern 4 16384 > $full
    assert_eq "$(sum_range /dev/mapper/thin4 100 0)" "$(dd if=$full bs=1024 count=100 2>/dev/null | sha256sum | cut -d' ' -f1)" "head intact"
    assert_eq "$(sum_range /dev/mapper/thin4 15284 1100)" "$(dd if=$full bs=1024 skip=1100 count=15284 2>/dev/null | sha256sum | cut -d' ' -f1)" "tail intact"
    # The whole blocks inside read back as zeroes.
    assert_eq "$(sum_range /dev/mapper/thin4 960 128)" "$(zero_sum 960)" "discarded blocks read zero"
    # A discard smaller than a block frees nothing.
    must blkdiscard -o $((2048 * 1024)) -l 4096 /dev/mapper/thin4
    assert_eq "$(pool_used_data pool)" "$((before - 15))" "sub-block discard frees nothing"
}
