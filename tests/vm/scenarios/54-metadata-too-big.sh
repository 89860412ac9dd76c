# A metadata device larger than C uses (a sparse 17 GiB brd RAM disk):
# - the pool warns "Metadata device ram0 is larger than 33292800 sectors:
#   excess space will not be used." (C warn_if_metadata_device_too_big,
#   above 16 GiB) and uses 4161600 blocks (DM_SM_METADATA_MAX_BLOCKS);
# - a reload does not try to grow it; the pool works, its metadata checks
#   clean and reopens;
# - a 64 MiB dm-linear metadata device grown to the whole RAM disk under a
#   live pool: the same warning (for dm-N) and "growing the metadata device
#   from 16384 to 4161600 blocks".
APPLIES="c rust"
main() {
    grep -q '^brd ' /proc/modules && must rmmod brd
    must insmod /modules/brd.ko rd_nr=1 rd_size=$((17 * 1024 * 1024)) max_part=0
    RAM=/dev/ram0
    max_blocks=4161600
    warning="is larger than 33292800 sectors: excess space will not be used."

    note "a pool on the whole RAM disk"
    dmesg -c >/dev/null
    pool_create_on $POOL_TARGET pool $RAM $DATA
    logged "Metadata device ram0 $warning"
    set -- $(dmsetup status pool)
    assert_eq "${5#*/} $8" "$max_blocks rw" "metadata total and mode"
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 540 1024 0
    must dmsetup message pool 0 "set_transaction_id 0 54"
    dmesg -c >/dev/null
    pool_reload pool $RAM $DATA 0
    dmesg | grep -F "growing the metadata device" && fail "reload tried to grow the metadata"
    set -- $(dmsetup status pool)
    assert_eq "$4 ${5#*/} $6 $8" "54 $max_blocks 16/32768 rw" "status after the reload"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $RAM
    dmesg -c >/dev/null
    pool_create_on $POOL_TARGET pool $RAM $DATA
    logged "Metadata device ram0 $warning"
    set -- $(dmsetup status pool)
    assert_eq "$4 ${5#*/} $6" "54 $max_blocks 16/32768" "status after reopening"
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 540 1024)" "data after reopening"
    must dmsetup remove t1
    must dmsetup remove pool

    note "a metadata device grown past the limit"
    must dmsetup create meta --table "0 131072 linear $RAM 0"
    wipe_meta /dev/mapper/meta
    dmname=dm-$(maj_min /dev/mapper/meta | cut -d: -f2)
    dmesg -c >/dev/null
    pool_create_on $POOL_TARGET pool /dev/mapper/meta $DATA
    dmesg | grep -F "$warning" && fail "warning for a 64 MiB metadata device"
    assert_eq "$(pool_field pool 5 | cut -d/ -f2)" "16384" "metadata total before growing"
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 541 1024 0
    relinear meta $(sectors $RAM) $RAM
    dmesg -c >/dev/null
    pool_reload pool /dev/mapper/meta $DATA 0
    logged "Metadata device $dmname $warning"
    logged "growing the metadata device from 16384 to $max_blocks blocks"
    set -- $(dmsetup status pool)
    assert_eq "${5#*/} $6 $8" "$max_blocks 16/32768 rw" "status after growing"
    write_pattern /dev/mapper/t1 542 1024 1024
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$( (pattern 541 1024; pattern 542 1024) | sha256sum | cut -d' ' -f1)" "data after growing"
    dmesg -c >/dev/null
    pool_reload pool /dev/mapper/meta $DATA 0
    dmesg | grep -F "growing the metadata device" && fail "second reload grew the metadata again"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata /dev/mapper/meta
    must dmsetup remove meta
    must rmmod brd
}
