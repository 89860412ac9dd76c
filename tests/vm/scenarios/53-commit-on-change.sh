# The pool commits its metadata when something changed, and only then
# (C bio_triggers_commit, the periodic commit): the metadata device's write
# counter (sysfs stat) is read around each step.
# - an idle pool with active thins writes no metadata;
# - a flush after provisioning a block commits; a flush after overwriting
#   a block the thin already has does not, on a thin and on a snapshot;
# - a discard that unmaps a block commits at the next flush; another thin's
#   overwrite and flush then write nothing.
APPLIES="c rust"
md_writes() { awk '{print $5}' "/sys/dev/block/$(maj_min $META)/stat"; }
flush() { dd if=/dev/null of=/dev/mapper/$1 conv=notrunc,fsync status=none || fail "flush of $1"; }
write_block() { # write_block THIN BLOCK SEED: one 64 KiB block, O_DIRECT
    pattern $3 64 | dd of=/dev/mapper/$1 bs=65536 seek=$2 oflag=direct status=none || fail "write to $1"
}
check_commit() { # check_commit WHAT THIN BLOCK SEED: write a block, flush: commit expected
    flush $2; local w0=$(md_writes)
    write_block $2 $3 $4; flush $2
    [ "$(md_writes)" -gt "$w0" ] || fail "no commit after $1"
}
check_no_commit() { # check_no_commit WHAT THIN BLOCK SEED: no metadata write expected
    flush $2; local w0=$(md_writes)
    write_block $2 $3 $4; flush $2
    assert_eq "$(md_writes)" "$w0" "metadata writes after $1"
}
main() {
    pool_create pool
    thin_create pool 1 t1 8
    thin_create pool 2 t2 8
    sleep 2
    w0=$(md_writes)
    sleep 4
    assert_eq "$(md_writes)" "$w0" "metadata writes of an idle pool"

    check_commit "provisioning a block of t1" t1 0 530
    check_no_commit "overwriting it" t1 0 531
    check_commit "provisioning a block of t2" t2 5 532
    check_no_commit "overwriting it" t2 5 533
    check_no_commit "overwriting t1 again" t1 0 534

    snap_create pool 1 t1 3
    thin_activate pool 3 s3 8
    check_commit "breaking sharing of t1 block 0" t1 0 535
    check_no_commit "overwriting it" t1 0 536
    check_commit "breaking sharing in the snapshot" s3 0 537
    check_no_commit "overwriting it" s3 0 538
    check_commit "provisioning a block of the snapshot" s3 9 539
    check_no_commit "overwriting it" s3 9 540

    flush t1; w0=$(md_writes)
    must blkdiscard -o 0 -l 65536 /dev/mapper/t1
    flush t1
    [ "$(md_writes)" -gt "$w0" ] || fail "no commit after a discard"
    assert_eq "$(thin_mapped_sectors t1)" "0" "t1 after the discard"
    check_no_commit "overwriting a block of t2 after the discard" t2 5 541
    sleep 3
    w0=$(md_writes)
    sleep 3
    assert_eq "$(md_writes)" "$w0" "metadata writes of the idle pool at the end"
}
