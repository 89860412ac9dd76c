# create_thin, activation, status of an empty and a written thin, and the table line.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 0 thin0 64
    assert_eq "$(dmsetup status thin0)" "0 131072 $THIN_TARGET 0 -" "empty thin status"
    write_pattern /dev/mapper/thin0 1 64 0          # one 64 KiB block at 0
    write_pattern /dev/mapper/thin0 2 64 1024       # one block at 1 MiB
    sync
    assert_eq "$(thin_mapped_sectors thin0)" "256" "mapped sectors"
    assert_eq "$(thin_highest thin0)" "2175" "highest mapped sector"
    assert_eq "$(pool_used_data pool)" "2" "pool data blocks used"
    pmm=$(dmsetup info -c --noheadings -o major,minor pool | tr -d ' ')
    assert_eq "$(dmsetup table thin0)" "0 131072 $THIN_TARGET $pmm 0" "thin table line"
}
