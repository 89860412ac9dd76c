# Issue 16, defect 1: a write queued because the pool is out of data space
# (queue_if_no_space) must not wait for ever when the pool then leaves the
# writable modes. C's set_pool_mode errors every thin's retry list on the
# switch to READ_ONLY, OUT_OF_METADATA_SPACE and FAIL (error_retry_list).
# - read-only: the metadata device refuses writes (dm-flakey error_writes);
#   a create_thin message (allowed out of data space) makes the pool commit,
#   the commit fails, the pool goes ro with needs_check, and the queued write
#   fails (C: ENOSPC) within seconds; thin and pool remove.
# - Fail: the metadata device refuses all I/O (dm error); the same message
#   makes the abort fail too, the pool goes to Fail and the queued write fails.
# The queued write runs in the background under a deadline: a write that
# never completes fails the scenario (and leaves its devices to the harness,
# whose remove_all skips devices held open, so the VM goes on).
APPLIES="c rust"
swap_meta() { # swap_meta TABLE_TAIL: the metadata device becomes TABLE_TAIL
    must dmsetup load meta --table "0 $(sectors $rawm) $1"
    must dmsetup suspend meta
    must dmsetup resume meta
}
# queued_write_then MODE META_TABLE: a full pool in queue mode with a write
# waiting for space; the metadata device becomes META_TABLE and a message
# makes the pool commit; the pool must reach MODE and the write must fail.
queued_write_then() {
    local mode=$1 mtable=$2
    wipe_meta $rawm
    must dmsetup create meta --table "0 $(sectors $rawm) linear $rawm 0"
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 580 1024 0
    set -- $(dmsetup status pool)
    assert_eq "$6 $8 ${10} ${11}" "16/16 rw queue_if_no_space -" "full pool"
    # A write needing a new block: queued for space.
    bg_start qw dd if=/dev/zero of=/dev/mapper/t1 bs=65536 seek=40 count=1 oflag=direct
    wait_for 10 pool_mode_is pool out_of_data_space || fail "pool not out of data space: $(dmsetup status pool)"
    sleep 1
    bg_done qw && fail "write needing space completed on a full pool in queue mode: rc $(bg_rc qw)"
    note "write queued: $(dmsetup status pool)"
    dmesg -c >/dev/null
    swap_meta "$mtable"
    # Out of data space is not read-only: C services messages; this one
    # changes the metadata and commits, and the commit fails.
    dmsetup message pool 0 "create_thin 2" 2>/tmp/msg.err || note "create_thin 2: $(cat /tmp/msg.err)"
    t0=$(uptime_cs)
    if ! wait_for 10 pool_mode_is pool $mode; then
        fail "pool not $mode after the failed commit: $(dmsetup status pool)"
    fi
    if ! bg_wait qw 15; then
        note "pool: $(dmsetup status pool)"
        hung_fail "the write queued for space is still waiting 15 s after the pool went $mode (C errors the retry list)"
    fi
    note "queued write ended after $(( $(uptime_cs) - t0 ))0 ms: rc $(bg_rc qw): $(grep -i error /tmp/bg.qw.out | tail -n1)"
    assert_eq "$(bg_rc qw)" "1" "the queued write fails"
    # C: ENOSPC (the pool still counts as out of data space, so
    # get_pool_io_error_code picks NOSPC); EIO would do as well.
    grep -qE "No space left on device|Input/output error" /tmp/bg.qw.out || fail "queued write's error is neither ENOSPC nor EIO: $(cat /tmp/bg.qw.out)"
}
main() {
    t_start=$(uptime_cs)
    load_flakey
    rawm=$META
    META=/dev/mapper/meta
    raw=$DATA
    must dmsetup create small --table "0 2048 linear $raw 0"        # 16 blocks
    DATA=/dev/mapper/small

    note "metadata writes fail: read-only"
    queued_write_then ro "flakey $rawm 0 0 1 1 error_writes"
    set -- $(dmsetup status pool)
    assert_eq "$8 ${11}" "ro needs_check" "status after the failed commit"
    logged "aborting current metadata transaction"
    logged "switching pool to read-only mode"
    # ro: mapped blocks read, a write needing space fails at once.
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 580 1024)" "mapped blocks read in ro"
    bounded 10 dd if=/dev/zero of=/dev/mapper/t1 bs=65536 seek=41 count=1 oflag=direct
    case $? in
        0) fail "write needing space succeeded in ro" ;;
        124) hung_fail "a write needing space in ro waits" ;;
    esac
    bounded 20 dmsetup remove t1 || hung_fail "dmsetup remove t1 (rc $?)"
    bounded 20 dmsetup remove pool || hung_fail "dmsetup remove pool (rc $?)"
    must dmsetup remove meta

    note "all metadata I/O fails: Fail"
    queued_write_then Fail "error"
    assert_eq "$(dmsetup status t1 | awk '{print $4}')" "Fail" "thin status"
    logged "switching pool to fail mode"
    bounded 20 dmsetup remove t1 || hung_fail "dmsetup remove t1 (rc $?)"
    bounded 20 dmsetup remove pool || hung_fail "dmsetup remove pool (rc $?)"
    swap_meta "linear $rawm 0"
    must dmsetup remove meta
    # needs_check never reached the disk in Fail: the last commit comes back.
    check_metadata $rawm
    META=$rawm
    pool_create pool
    thin_activate pool 1 t1 8
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 580 1024)" "committed blocks after Fail"
    must dmsetup remove t1; must dmsetup remove pool
    must dmsetup remove small
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
