# A pool on a 512 KiB metadata device (128 blocks) fills its metadata with
# empty thins (each create_thin takes a new btree leaf): the metadata low
# water mark (C: the smaller of 4 MiB and a quarter of the device, 32 blocks
# here) raises one table event with C's log line; when a commit leaves no
# free metadata block beyond the reserve (a tenth of the device), the pool
# goes read-only (out-of-metadata-space: status "ro", no needs_check):
# messages are refused, reads and writes to mapped blocks work, writes that
# need a new block fail. Growing the metadata device brings it back to rw.
APPLIES="c rust"
SLOW="c"
main() {
    rawm=$META
    must dmsetup create meta --table "0 1024 linear $rawm 0"        # 128 blocks
    META=/dev/mapper/meta
    wipe_meta $META
    pool_create pool
    thin_create pool 1 t1 16
    write_pattern /dev/mapper/t1 390 512 0                          # 8 blocks
    e0=$(event_nr pool)
    dmesg -c >/dev/null
    n=1 low="" full=""
    while [ $n -lt 400 ]; do
        n=$((n + 1))
        dmsetup message pool 0 "create_thin $n" 2>/dev/null || break
        [ -z "$low" ] && [ "$(event_nr pool)" != "$e0" ] && low=$n
        if pool_mode_is pool ro; then full=$n; break; fi
    done
    note "metadata: low water event at thin $low, read-only after thin $full; status: $(dmsetup status pool)"
    [ -n "$low" ] || fail "no metadata low water event"
    [ -n "$full" ] || fail "pool not read-only after $n thins: $(dmsetup status pool)"
    logged "reached low water mark for metadata device: sending event."
    logged "No free metadata blocks"
    # One event per crossing of the mark (the count depends on how commits
    # free and reuse blocks around it), and one for the mode change.
    lows=$(dmesg | grep -c "reached low water mark for metadata device: sending event.")
    assert_gt "$lows" 0 "metadata low water log lines"
    assert_eq "$(event_nr pool)" "$((e0 + lows + 1))" "events: one per low water line and the mode change"
    logged "No free metadata blocks"
    logged "switching pool to read-only mode"
    set -- $(dmsetup status pool)
    assert_eq "$5 $8 ${11}" "128/128 ro -" "status when out of metadata space"
    # Read-only: messages refused, mapped blocks readable and writable,
    # nothing new provisioned.
    msg_fails "Operation not supported" pool "create_thin 500"
    assert_eq "$(sum_range /dev/mapper/t1 512 0)" "$(pattern_sum 390 512)" "data while out of metadata space"
    write_pattern /dev/mapper/t1 391 64 64
    must_fail dd if=/dev/zero of=/dev/mapper/t1 bs=64k seek=100 count=1 oflag=direct
    assert_eq "$(pool_used_data pool)" "8" "nothing provisioned while out of metadata space"

    # Twice the metadata device: back to rw, messages and provisioning work.
    relinear meta 2048 $rawm
    pool_reload pool $META $DATA 0
    logged "growing the metadata device from 128 to 256 blocks"
    assert_eq "$(pool_mode pool)" "rw" "mode after the metadata grew"
    must dmsetup message pool 0 "create_thin 500"
    write_pattern /dev/mapper/t1 392 64 6400
    assert_eq "$(pool_used_data pool)" "9" "provisioning after the metadata grew"
    assert_eq "$(sum_range /dev/mapper/t1 64 64)" "$(pattern_sum 391 64)" "write while out of metadata space"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META | wc -w)" "$((full + 1))" "devices on disk"
    must dmsetup remove meta
}
