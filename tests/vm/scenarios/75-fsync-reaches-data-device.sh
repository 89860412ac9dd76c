# Every fsync reaches the data device as a flush (issue 18: flushes of a
# thin with nothing to commit go down from map, and a commit flushes the data
# device before it takes the pool lock). dm-log-writes sits under the pool's
# data device. It logs a plain write only when a flush that came after the
# write completes (the write, then the flush entry), or at its removal: so
# the log shows what flushes made durable, and when.
# A thin gets: a write to a new block, then fsync; an overwrite of that
# mapped block, then fsync (nothing left to commit); a write to a new block
# left to the periodic commit, then fsync; eight overwrites, each fsynced.
# A mark goes in the log after each fsync. Asserted for each interval between
# two marks: its data writes are in it (a flush after them reached the data
# device before the mark), followed by a flush, whichever way the fsync went
# (through a commit, whose barrier flushes the data device, or straight
# down); and the data reads back.
APPLIES="c rust"
LOGDEV=$DATA2
mark() { must dmsetup message lwdata 0 mark "$1"; }
fsync_dev() { bounded 20 dd if=/dev/null of=/dev/mapper/t1 conv=fsync 2>/dev/null || fail "fsync"; }
write4k() { # write4k SEED BLOCK: one O_DIRECT 4 KiB write at the start of data block BLOCK
    pattern "$1" 4 | dd of=/dev/mapper/t1 bs=4096 seek=$(($2 * 16)) oflag=direct 2>/dev/null ||
        fail "write block $2"
}
main() {
    grep -q '^dm_log_writes ' /proc/modules || must insmod /modules/dm-log-writes.ko
    dd if=/dev/zero of=$LOGDEV bs=4096 count=16 conv=fsync 2>/dev/null
    must dmsetup create lwdata --table "0 $(sectors $DATA) log-writes $DATA $LOGDEV"
    wipe_meta
    pool_create_on $POOL_TARGET pool $META /dev/mapper/lwdata
    thin_create pool 1 t1 64
    fsync_dev
    mark start
    write4k 75 0; fsync_dev; mark provisioned
    write4k 76 0; fsync_dev; mark overwritten
    write4k 77 1; sleep 2; fsync_dev; mark committed
    for i in 1 2 3 4 5 6 7 8; do write4k $((77 + i)) 0; fsync_dev; mark "over$i"; done
    assert_eq "$(sum_range /dev/mapper/t1 4 0)" "$(pattern_sum 85 4)" "the last overwrite read back"
    assert_eq "$(sum_range /dev/mapper/t1 4 64)" "$(pattern_sum 77 4)" "the committed block read back"
    must dmsetup remove t1; must dmsetup remove pool
    must dmsetup remove lwdata   # logs the end mark
    logreplay list $LOGDEV > /tmp/lw75 || fail "logreplay list"
    note "data log: $(logreplay info $LOGDEV)"
    # Per interval (ended by a mark): whether a flush followed the last data write.
    awk '$4 ~ /MARK/ { if (w) print $5, "unflushed", n; else print $5, "ok", n; w = 0; n = 0; next }
         $3 > 0 && $4 !~ /DISCARD/ { w = 1; n++ }
         $4 ~ /FLUSH/ { w = 0 }' /tmp/lw75 > /tmp/lw75.sum
    note "intervals: $(tr '\n' ' ' < /tmp/lw75.sum)"
    assert_eq "$(grep -c . /tmp/lw75.sum)" 13 "marks in the data log (12 and the end)"
    bad=$(awk '$2 == "unflushed" { print $1 }' /tmp/lw75.sum | tr '\n' ' ')
    assert_eq "$bad" "" "intervals whose last data write no flush followed"
    written=$(awk '$1 != "start" && $1 != "dm-log-writes-end" && $3 == 0 { print $1 }' /tmp/lw75.sum | tr '\n' ' ')
    assert_eq "$written" "" "intervals that wrote nothing to the data device"
}
