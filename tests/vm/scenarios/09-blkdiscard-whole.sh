# blkdiscard of a whole thin unmaps everything and frees every data block.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 3 thin3 32
    write_pattern /dev/mapper/thin3 3 32768 0
    assert_eq "$(thin_mapped_sectors thin3)" "65536" "fully mapped"
    assert_eq "$(pool_used_data pool)" "512" "512 blocks used"
    must blkdiscard /dev/mapper/thin3
    assert_eq "$(thin_mapped_sectors thin3)" "0" "nothing mapped after blkdiscard"
    assert_eq "$(pool_used_data pool)" "0" "no data blocks used"
    assert_eq "$(sum_range /dev/mapper/thin3 1024 0)" "$(zero_sum 1024)" "reads return zeroes"
}
