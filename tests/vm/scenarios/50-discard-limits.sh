# Discard limits of the pool and thin devices (sysfs queue/discard_*), and
# what the pool does when its data device takes no discards (C
# pool_io_hints / disable_discard_passdown_if_not_supported):
# - passdown: the pool has the data device's discard limits; a thin has
#   granularity = block size, max = 1024 blocks;
# - no_discard_passdown: the pool takes no discards, a thin still does and
#   unmaps; ignore_discard: neither takes discards (blkdiscard fails with
#   EOPNOTSUPP) and nothing is unmapped;
# - the data device with discard_max_bytes 0, or below one block: the pool
#   logs "Data device (ram0) discard unsupported: Disabling discard passdown."
#   (or "max discard sectors smaller than a block"), its status says
#   no_discard_passdown while its table keeps the requested features, a thin
#   still unmaps; once the data device takes whole blocks again a reload
#   brings discard_passdown back. No warning when passdown was not requested.
#   (The data device is a brd RAM disk whose sysfs discard_max_bytes is set.)
APPLIES="c rust"
qlim() { cat "/sys/block/$1/queue/discard_$2"; }  # qlim SYSNAME max_bytes|granularity
dlim() { # dlim NAME: "granularity max_bytes" of /dev/mapper/NAME
    local q=/sys/dev/block/$(maj_min /dev/mapper/$1)/queue
    echo "$(cat $q/discard_granularity) $(cat $q/discard_max_bytes)"
}
thin_limits_ok() { # thin_limits_ok NAME: granularity one block, max 1024 blocks
    assert_eq "$(dlim $1)" "$((BLOCK_SECTORS * 512)) $((BLOCK_SECTORS * 512 * 1024))" "discard limits of thin $1"
}
unmaps() { # unmaps POOL THIN: write 1 MiB, blkdiscard it all, nothing stays mapped
    write_pattern /dev/mapper/$2 50 1024 0
    assert_eq "$(pool_used_data $1)" "16" "blocks written on $2"
    must blkdiscard /dev/mapper/$2
    assert_eq "$(pool_used_data $1) $(thin_mapped_sectors $2)" "0 0" "blocks after blkdiscard of $2"
}
no_warning() { dmesg | grep -qF "Disabling discard passdown" && fail "unexpected warning: $(dmesg | grep -F 'Disabling discard passdown')"; return 0; }
main() {
    dsys=$(basename $(readlink -f $DATA))
    orig_max=$(qlim $dsys max_bytes)
    data_gran=$(qlim $dsys granularity)
    note "data device $dsys: discard granularity $data_gran, max $orig_max"
    [ "$orig_max" -gt $((BLOCK_SECTORS * 512)) ] || fail "the data device should take discards of a block"
    mm=$(maj_min $META); dm=$(maj_min $DATA)

    note "passdown"
    dmesg -c >/dev/null
    pool_create pool
    set -- $(dlim pool)
    assert_eq "$1" "$data_gran" "pool discard granularity"
    [ "$2" -gt 0 ] || fail "the pool takes no discards with passdown"
    thin_create pool 1 t1 8
    thin_limits_ok t1
    unmaps pool t1
    no_warning
    must dmsetup remove t1; must dmsetup remove pool; wipe_meta

    note "no_discard_passdown"
    pool_create pool no_discard_passdown
    assert_eq "$(dlim pool)" "0 0" "pool discard limits without passdown"
    thin_create pool 1 t1 8
    thin_limits_ok t1
    unmaps pool t1
    no_warning
    must dmsetup remove t1; must dmsetup remove pool; wipe_meta

    note "ignore_discard"
    pool_create pool ignore_discard
    assert_eq "$(dlim pool)" "0 0" "pool discard limits with ignore_discard"
    thin_create pool 1 t1 8
    assert_eq "$(dlim t1)" "0 0" "thin discard limits with ignore_discard"
    write_pattern /dev/mapper/t1 50 1024 0
    blkdiscard /dev/mapper/t1 2>/tmp/bd.err && fail "blkdiscard worked with ignore_discard"
    grep -q "Operation not supported" /tmp/bd.err || fail "blkdiscard error: $(cat /tmp/bd.err)"
    assert_eq "$(pool_used_data pool) $(thin_mapped_sectors t1)" "16 2048" "nothing unmapped with ignore_discard"
    must dmsetup remove t1; must dmsetup remove pool; wipe_meta

    # The data device's discard limits are changed through sysfs on a RAM
    # disk: once its discard_max_bytes is 0 the block layer takes no other
    # value, so the VM's disks are left alone.
    grep -q '^brd ' /proc/modules && must rmmod brd
    must insmod /modules/brd.ko rd_nr=1 rd_size=65536 max_part=0
    DATA=/dev/ram0 dsys=ram0
    orig_max=$(qlim $dsys max_bytes)
    data_gran=$(qlim $dsys granularity)
    note "ram0: discard granularity $data_gran, max $orig_max"
    mm=$(maj_min $META); dm=$(maj_min $DATA)
    wipe_meta

    note "data device with discards smaller than a block"
    echo $((BLOCK_SECTORS * 256)) > /sys/block/$dsys/queue/discard_max_bytes || fail "cannot set discard_max_bytes of $dsys"
    dmesg -c >/dev/null
    pool_create pool
    logged "Data device ($dsys) max discard sectors smaller than a block: Disabling discard passdown."
    set -- $(dmsetup status pool)
    assert_eq "$8 $9 ${10}" "rw no_discard_passdown queue_if_no_space" "status when discards are smaller than a block"
    assert_eq "$(dmsetup table pool)" "0 $(sectors $DATA) $POOL_TARGET $mm $dm 128 0 0 " "table keeps the requested features"
    assert_eq "$(dlim pool | cut -d' ' -f2)" "0" "pool max discard"
    thin_create pool 1 t1 8
    thin_limits_ok t1
    unmaps pool t1
    # A reload while the data device still cannot take them warns again.
    dmesg -c >/dev/null
    pool_reload pool $META $DATA 0
    logged "Data device ($dsys) max discard sectors smaller than a block: Disabling discard passdown."
    assert_eq "$(pool_field pool 9)" "no_discard_passdown" "status after a reload"
    # Passdown not requested: nothing to disable, no warning.
    dmesg -c >/dev/null
    pool_reload pool $META $DATA 0 no_discard_passdown
    no_warning
    assert_eq "$(pool_field pool 9)" "no_discard_passdown" "status with no_discard_passdown requested"
    # The data device takes whole blocks again: a reload brings passdown back.
    echo 1073741824 > /sys/block/$dsys/queue/discard_max_bytes || fail "cannot set discard_max_bytes of $dsys to 1 GiB"
    dmesg -c >/dev/null
    pool_reload pool $META $DATA 0
    no_warning
    assert_eq "$(pool_field pool 9)" "discard_passdown" "status once the data device takes discards"
    set -- $(dlim pool)
    [ "$2" -gt 0 ] || fail "the pool takes no discards after passdown came back"
    unmaps pool t1
    must dmsetup remove t1; must dmsetup remove pool; wipe_meta

    note "data device without discard"
    echo 0 > /sys/block/$dsys/queue/discard_max_bytes || fail "cannot set discard_max_bytes of $dsys"
    assert_eq "$(qlim $dsys max_bytes)" "0" "data device discard_max_bytes"
    dmesg -c >/dev/null
    pool_create pool
    logged "Data device ($dsys) discard unsupported: Disabling discard passdown."
    set -- $(dmsetup status pool)
    assert_eq "$8 $9 ${10}" "rw no_discard_passdown queue_if_no_space" "status when the data device takes no discards"
    assert_eq "$(dlim pool)" "0 0" "pool discard limits"
    thin_create pool 1 t1 8
    thin_limits_ok t1
    unmaps pool t1
    dmesg -c >/dev/null
    pool_reload pool $META $DATA 0 error_if_no_space
    logged "Data device ($dsys) discard unsupported: Disabling discard passdown."
    set -- $(dmsetup status pool)
    assert_eq "$8 $9 ${10}" "rw no_discard_passdown error_if_no_space" "status after a reload"
    unmaps pool t1
    must dmsetup remove t1; must dmsetup remove pool
    must rmmod brd
}
