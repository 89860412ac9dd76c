# Issue 16, beyond C: no fsync succeeds over lost writes. A thin has
# acknowledged writes (new blocks, no flush yet) when the metadata device
# starts refusing writes; the periodic commit fails, the transaction is
# aborted (the writes' mappings are gone: those blocks read zeroes) and the
# pool goes read-only. From then on every FLUSH or FUA on that thin fails
# with EIO: an fsync must not tell the writer that data is safe which is
# lost. Another thin of the pool, with no changes in the aborted transaction,
# flushes and writes FUA to its mapped blocks as before.
# Rust only: C 7.3 means to do this (dm_thin_aborted_changes), but
# __write_changed_details clears td->changed before the metadata writes that
# then fail, so __set_abort_with_changes_flags finds nothing changed and the
# fsync "succeeds" (seen in this VM with APPLIES="c rust": the fsync and the
# FUA write on t1 return 0 while the written block reads zeroes).
APPLIES="rust"
swap_meta() { # swap_meta TABLE_TAIL: the metadata device becomes TABLE_TAIL
    must dmsetup load meta --table "0 $(sectors $rawm) $1"
    must dmsetup suspend meta
    must dmsetup resume meta
}
fsync_dev() { bounded 20 dd if=/dev/null of="$1" conv=fsync; }
fua_write() { # fua_write DEV BLOCK: one O_DIRECT|O_SYNC (REQ_FUA) 4 KiB write
    bounded 20 fio --name=fua --filename="$1" --rw=write --bs=4k --size=4k --offset=$(($2 * 65536)) \
        --direct=1 --sync=1 --ioengine=psync
}
main() {
    t_start=$(uptime_cs)
    load_flakey
    rawm=$META
    must dmsetup create meta --table "0 $(sectors $rawm) linear $rawm 0"
    META=/dev/mapper/meta
    pool_create pool
    thin_create pool 1 t1 8
    thin_create pool 2 t2 8
    write_pattern /dev/mapper/t1 630 256 0      # blocks 0-3, committed (fsync)
    write_pattern /dev/mapper/t2 631 256 0
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${11}" "8/32768 rw -" "status before the failure"
    dmesg -c >/dev/null
    swap_meta "flakey $rawm 0 0 1 1 error_writes"
    # An acknowledged write to a new block of t1, not yet committed: one bio,
    # so the periodic commit (nothing to commit before it) cannot fall
    # between two writes and fail the second one.
    pattern 632 64 | dd of=/dev/mapper/t1 bs=65536 seek=8 oflag=direct 2>/dev/null \
        || fail "write to a new block before the commit (nothing has failed yet)"
    # The periodic commit (every second) fails.
    wait_for 10 pool_mode_is pool ro || fail "pool not ro after the periodic commit: $(dmsetup status pool)"
    logged "aborting current metadata transaction"
    assert_eq "$(dmsetup status pool | awk '{print $11}')" "needs_check" "needs_check"
    assert_eq "$(sum_range /dev/mapper/t1 64 512)" "$(zero_sum 64)" "the aborted write is lost (block 8 reads zeroes)"

    # t1 had acknowledged writes in the aborted transaction: flushes fail.
    fsync_dev /dev/mapper/t1
    case $? in
        0) fail "fsync of t1 succeeded over writes lost with the aborted transaction" ;;
        124) hung_fail "fsync of t1" ;;
    esac
    grep -q "Input/output error" /tmp/bg.bounded.out || fail "fsync of t1: not EIO: $(cat /tmp/bg.bounded.out)"
    fua_write /dev/mapper/t1 0
    case $? in
        0) fail "a FUA write to t1 succeeded over writes lost with the aborted transaction" ;;
        124) hung_fail "FUA write to t1" ;;
    esac
    fsync_dev /dev/mapper/t1
    [ $? = 1 ] || fail "a second fsync of t1 does not fail"
    # t2 had no changes: flush and FUA to a mapped block work.
    fsync_dev /dev/mapper/t2 || fail "fsync of t2 (no changes in the aborted transaction): rc $?: $(cat /tmp/bg.bounded.out)"
    fua_write /dev/mapper/t2 1 || { tail -n 3 /tmp/bg.bounded.out; fail "FUA write to t2's mapped block 1"; }
    assert_eq "$(sum_range /dev/mapper/t2 64 0)" "$(pattern_sum 631 64)" "t2's block 0"
    assert_eq "$(sum_range /dev/mapper/t1 192 64)" "$(pattern 630 256 | dd bs=1024 skip=64 2>/dev/null | sha256sum | cut -d' ' -f1)" "t1's committed blocks 1-3"

    bounded 20 dmsetup remove t1 || hung_fail "dmsetup remove t1 (rc $?)"
    bounded 20 dmsetup remove t2 || hung_fail "dmsetup remove t2 (rc $?)"
    bounded 20 dmsetup remove pool || hung_fail "dmsetup remove pool (rc $?)"
    swap_meta "linear $rawm 0"
    must dmsetup remove meta
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
