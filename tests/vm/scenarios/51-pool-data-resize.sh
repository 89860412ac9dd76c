# The pool's data size follows its table length (C maybe_resize_data_dev):
# - grown by reloads in steps, each logged "growing the data device from N
#   to M blocks", with the new total in the status and the data intact;
# - a shorter table loads but its resume is refused: "pool target (N
#   blocks) too small: expected M", the pool stays suspended with its old
#   size; the right table resumes it;
# - out of data space (error_if_no_space): deleting the thin returns the
#   blocks and the pool is rw again; so does a discard of the thin's blocks.
APPLIES="c rust"
line() { # line BLOCKS [FEATURE...]: a pool table of BLOCKS data blocks over DATA
    local blocks=$1; shift
    local feat=""
    [ $# -gt 0 ] && feat="$# $*"
    echo "0 $((blocks * BLOCK_SECTORS)) $POOL_TARGET $META $DATA $BLOCK_SECTORS 0 $feat"
}
reload_to() { # reload_to BLOCKS [FEATURE...]
    must dmsetup load pool --table "$(line "$@")"
    must dmsetup suspend pool
    must dmsetup resume pool
}
fill() { # fill THIN: write until ENOSPC (error_if_no_space), which must come
    if dd if=/dev/zero of=/dev/mapper/$1 bs=65536 oflag=direct 2>/tmp/dd.err; then
        fail "writing all of $1 worked on a pool too small for it"
    fi
    grep -q "No space left on device" /tmp/dd.err || fail "dd error: $(cat /tmp/dd.err)"
}
main() {
    note "grow in steps"
    must dmsetup create pool --table "$(line 64)"
    thin_create pool 1 t1 32
    write_pattern /dev/mapper/t1 51 2048 0
    for n in 96 200 512; do
        old=$(pool_total_data pool)
        dmesg -c >/dev/null
        reload_to $n
        logged "growing the data device from $old to $n blocks"
        set -- $(dmsetup status pool)
        assert_eq "$6 $8" "32/$n rw" "status after growing to $n blocks"
    done
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$(pattern_sum 51 2048)" "data after growing"

    note "shrink refused"
    dmesg -c >/dev/null
    must dmsetup load pool --table "$(line 100)"
    must dmsetup suspend pool
    must_fail dmsetup resume pool
    logged "pool target (100 blocks) too small: expected 512"
    dmsetup info pool | grep -q SUSPENDED || fail "pool not left suspended: $(dmsetup info pool)"
    dmesg -c >/dev/null
    must dmsetup load pool --table "$(line 511)"
    must_fail dmsetup resume pool
    logged "pool target (511 blocks) too small: expected 512"
    must dmsetup load pool --table "$(line 512)"
    must dmsetup resume pool
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "32/512 rw" "status after the refused shrinks"
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$(pattern_sum 51 2048)" "data after the refused shrinks"
    write_pattern /dev/mapper/t1 52 64 4096
    assert_eq "$(pool_used_data pool)" "33" "provisioning after the refused shrinks"
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata $META

    note "delete after out of data space"
    wipe_meta
    must dmsetup create pool --table "$(line 64 error_if_no_space)"
    thin_create pool 1 t1 8
    fill t1
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "64/64 out_of_data_space" "status when full"
    must dmsetup remove t1
    must dmsetup message pool 0 "delete 1"
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "0/64 rw" "status after the delete"

    note "discard after out of data space"
    thin_create pool 2 t2 8
    fill t2
    assert_eq "$(pool_mode pool)" "out_of_data_space" "mode when full again"
    must blkdiscard /dev/mapper/t2
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "0/64 rw" "status after the discard"
    write_pattern /dev/mapper/t2 53 1024 0
    assert_eq "$(sum_range /dev/mapper/t2 1024 0)" "$(pattern_sum 53 1024)" "writes after the discard"
}
