# A pool over a read-only metadata device (dmsetup --readonly linear), as
# read_only_metadata.rb: with the read_only feature it opens metadata made
# before (opening the device for reading only), its fully provisioned thin
# reads and overwrites. (A pool without read_only is not refused there by
# C either, as that suite notes: not asserted.)
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 4
    write_pattern /dev/mapper/t1 570 4096 0
    must dmsetup remove t1; must dmsetup remove pool
    must dmsetup create --readonly mro --table "0 $(sectors $META) linear $META 0"
    blockdev --getro /dev/mapper/mro | grep -qx 1 || fail "mro is not read-only"
    must dmsetup create pool --table "$(pool_line_on /dev/mapper/mro $DATA 0 read_only)"
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "64/32768 ro" "status of the read-only pool"
    thin_activate pool 1 t1 4
    assert_eq "$(sum_range /dev/mapper/t1 4096 0)" "$(pattern_sum 570 4096)" "reads"
    write_pattern /dev/mapper/t1 571 4096 0
    assert_eq "$(sum_range /dev/mapper/t1 4096 0)" "$(pattern_sum 571 4096)" "overwrites of mapped blocks"
    must dmsetup remove t1; must dmsetup remove pool; must dmsetup remove mro
}
