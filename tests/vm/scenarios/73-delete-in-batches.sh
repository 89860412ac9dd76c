# Beyond C (issue 19): a delete of a large thin never stalls the pool. The
# thin's id goes at once; its mappings are released by the worker in
# batches across commits, and the blocks each batch freed are discarded
# (passdown on) once a commit made them free. On brd, whose discards free
# its pages, a discarded block reads as zeroes. Thins of BIG and MID
# mappings are made with thin_restore (their data is never written: brd
# pages are only allocated for what is written):
# - a delete sent to a suspended pool detaches the thin and releases
#   nothing; the pool's removal leaves metadata thin_check accepts, with
#   the thin detached (dev 16777215, marked); the next open releases it;
# - a delete of BIG mappings returns at once while another thin is read
#   and verified; used blocks come down in steps; every freed block is
#   discarded; the other thin's data is intact;
# - in a full pool (out_of_data_space, a write queued), a delete of the
#   thin holding every block gives the space back: the pool returns to
#   write mode and the queued write completes and reads back.
APPLIES="rust"
BIG=${DELETE_BIG:-100000}
MID=10000
NR=262144
RID=16777215
BLK=$((BLOCK_SECTORS * 512))
ms() { awk -v k="$1" '$1 == k { print $2 }' /sys/kernel/debug/dm_thin_rs/$(maj_min /dev/mapper/pool)/stats; }
data_sum() { dd if=$D bs=$BLK skip=$1 count=$2 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
zeros() { dd if=/dev/zero bs=$BLK count=$1 2>/dev/null | sha256sum | cut -d' ' -f1; }
pool_up() { must dmsetup create pool --table "0 $((NR * BLOCK_SECTORS)) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"; }
used() { pool_used_data pool; }
reader() { # reader: t2 read and verified until /tmp/r.stop
    local i=0
    while [ ! -e /tmp/r.stop ]; do
        [ "$(sum_range /dev/mapper/t2 4096 0)" = "$T2SUM" ] || { echo "read $i of t2 wrong" > /tmp/r.err; return; }
        i=$((i + 1)); echo $i > /tmp/r.count
    done
}
main() {
    debugfs_mount
    grep -q '^brd ' /proc/modules && must rmmod brd
    must insmod /modules/brd.ko rd_nr=2 rd_size=$((NR * BLK / 1024)) max_part=0
    D=/dev/ram1
    must dmsetup create m --table "0 262144 linear /dev/ram0 0"
    { echo "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"$BLOCK_SECTORS\" nr_data_blocks=\"$NR\">"
      echo "  <device dev_id=\"1\" mapped_blocks=\"$BIG\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">"
      echo "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"$BIG\" time=\"0\"/>"
      echo "  </device>"
      echo "  <device dev_id=\"3\" mapped_blocks=\"$MID\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">"
      echo "    <range_mapping origin_begin=\"0\" data_begin=\"$BIG\" length=\"$MID\" time=\"0\"/>"
      echo "  </device>"
      echo "</superblock>"; } > /tmp/d.xml
    t0=$(uptime_cs)
    must thin_restore -i /tmp/d.xml -o /dev/mapper/m
    note "restored $BIG + $MID mappings in $(($(uptime_cs) - t0)) cs"
    # Something to see discarded: the first blocks of both thins.
    write_pattern $D 7301 1024 0
    write_pattern $D 7303 1024 $((BIG * BLK / 1024))
    pool_up
    assert_eq "$(used)" $((BIG + MID)) "used blocks after the restore"

    note "a delete sent to a suspended pool releases nothing until it opens again"
    must dmsetup suspend pool
    must dmsetup message /dev/mapper/pool 0 "delete 3"
    sleep 2
    assert_eq "$(used)" $((BIG + MID)) "used blocks while suspended"
    must dmsetup remove pool
    check_metadata /dev/mapper/m
    thin_dump /dev/mapper/m > /tmp/dump.xml 2>/dev/null || fail "thin_dump of the detached delete"
    grep -q 'dev_id="3"' /tmp/dump.xml && fail "thin 3 still listed: $(grep dev_id /tmp/dump.xml)"
    grep -q "dev_id=\"$RID\" mapped_blocks=\"$MID\" transaction=\"18446744073709551615\"" /tmp/dump.xml ||
        fail "no detached thin in the dump: $(grep dev_id /tmp/dump.xml)"
    pool_up
    wait_for 120 sh -c "[ \$(dmsetup status pool | awk '{print \$6}' | cut -d/ -f1) -eq $BIG ]" ||
        fail "thin 3's delete was not resumed: used $(used)"
    assert_eq "$(ms reclaimed)" $MID "mappings reclaimed after the open"
    wait_for 60 sh -c "[ \"\$(dd if=$D bs=$BLK skip=$BIG count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)\" = \"$(zeros 16)\" ]" ||
        fail "thin 3's blocks not discarded"
    must_fail dmsetup create t3 --table "0 2048 $THIN_TARGET /dev/mapper/pool 3"

    note "a delete of $BIG mappings returns at once while another thin is read"
    thin_create pool 2 t2 4
    write_pattern /dev/mapper/t2 7302 4096 0
    T2SUM=$(pattern_sum 7302 4096)
    rm -f /tmp/r.stop /tmp/r.err /tmp/r.count
    reader &
    rp=$!
    trap 'touch /tmp/r.stop; wait' EXIT
    sleep 1
    r0=$(ms reclaim_batches)
    t0=$(uptime_cs)
    bounded 60 dmsetup message /dev/mapper/pool 0 "delete 1" || fail "delete 1: $(cat /tmp/bg.bounded.out)"
    dt=$(($(uptime_cs) - t0))
    steps=0 last=$(used)
    end=$(($(uptime_cs) + 30000))
    while [ "$(used)" -gt 64 ]; do
        [ $(uptime_cs) -lt $end ] || fail "the delete did not finish in 300 s: used $(used)"
        u=$(used)
        # A discard after a commit holds its free blocks for a moment (at
        # most a trim batch, 4096), so they count as used meanwhile.
        [ "$u" -le $((last + 4096)) ] || fail "used blocks went up during the delete: $last then $u"
        [ "$u" -ge "$last" ] || steps=$((steps + 1))
        last=$u
        sleep 0.2
    done
    dd_total=$(($(uptime_cs) - t0))
    touch /tmp/r.stop; wait $rp
    [ ! -e /tmp/r.err ] || fail "reader: $(cat /tmp/r.err)"
    note "delete returned in $dt cs; space back in $dd_total cs, in $steps steps, $(($(ms reclaim_batches) - r0)) batches; t2 read $(cat /tmp/r.count) times meanwhile"
    assert_lt "$dt" 500 "cs for the delete message"
    assert_gt "$steps" 1 "steps of used blocks during the delete"
    assert_eq "$(ms reclaimed)" $((BIG + MID)) "mappings reclaimed"
    wait_for 120 sh -c "[ \"\$(dd if=$D bs=$BLK count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)\" = \"$(zeros 16)\" ]" ||
        fail "thin 1's blocks not discarded"
    assert_eq "$(sum_range /dev/mapper/t2 4096 0)" "$T2SUM" "t2 after the delete"
    must dmsetup remove t2
    must dmsetup remove pool
    check_metadata /dev/mapper/m
    thin_dump /dev/mapper/m > /tmp/dump.xml 2>/dev/null || fail "thin_dump after the delete"
    assert_eq "$(grep -c 'dev_id=' /tmp/dump.xml)" 1 "devices left (t2)"

    note "a delete in a full pool gives the space back to a queued write"
    FULL=20000
    { echo "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"$BLOCK_SECTORS\" nr_data_blocks=\"$FULL\">"
      echo "  <device dev_id=\"1\" mapped_blocks=\"$FULL\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">"
      echo "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"$FULL\" time=\"0\"/>"
      echo "  </device>"
      echo "  <device dev_id=\"2\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">"
      echo "  </device>"
      echo "</superblock>"; } > /tmp/full.xml
    dd if=/dev/zero of=/dev/mapper/m bs=4096 count=1 conv=fsync 2>/dev/null
    must thin_restore -i /tmp/full.xml -o /dev/mapper/m
    must dmsetup create pool --table "0 $((FULL * BLOCK_SECTORS)) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"
    must dmsetup create t2 --table "0 8192 $THIN_TARGET /dev/mapper/pool 2"
    pattern 7304 64 > /tmp/w64
    bg_start full dd if=/tmp/w64 of=/dev/mapper/t2 bs=65536 count=1 oflag=direct
    wait_for 60 pool_mode_is pool out_of_data_space || fail "pool never out_of_data_space (mode $(pool_mode pool))"
    bg_done full && fail "the write to a full pool completed: $(cat /tmp/bg.full.out)"
    must dmsetup message /dev/mapper/pool 0 "delete 1"
    bg_wait full 120 || fail "the queued write did not complete after the delete (mode $(pool_mode pool), used $(used))"
    assert_eq "$(bg_rc full)" 0 "the queued write"
    assert_eq "$(pool_mode pool)" rw "pool mode after the delete"
    assert_eq "$(sum_range /dev/mapper/t2 64 0)" "$(pattern_sum 7304 64)" "the queued write read back"
    must dmsetup remove t2
    must dmsetup remove pool
    check_metadata /dev/mapper/m
    must dmsetup remove m
    must rmmod brd
}
