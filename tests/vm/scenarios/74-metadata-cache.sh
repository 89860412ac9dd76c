# Issue 18: the metadata cache is sized from memory like dm-bufio's (2% of
# RAM, at least 16 MiB; `metadata_cache_mb=` sets it) and gives clean
# blocks back under memory pressure through a shrinker:
# - a pool's cache_capacity (debugfs stats) is 2% of MemTotal in 4 KiB
#   blocks (at least 4096, at most the metadata device's blocks), or the
#   parameter's size for a pool made after it was set;
# - with the metadata of a thin of 60000 mappings cached (a write in every
#   200th block reads every leaf), dropping the kernel's slab caches
#   (drop_caches=2 runs every shrinker) gives blocks back, every written
#   block still reads back, and the metadata is clean afterwards;
# - the worker's lookups read the cold tree's nodes with no lock held
#   (`lookup_reads` in the stats).
APPLIES="rust"
N=60000
PARAM=/sys/module/dm_thin_rs/parameters/metadata_cache_mb
ms() { awk -v k="$1" '$1 == k { print $2 }' /sys/kernel/debug/dm_thin_rs/$(maj_min /dev/mapper/pool)/stats; }
main() {
    debugfs_mount
    grep -q '^brd ' /proc/modules && must rmmod brd
    must insmod /modules/brd.ko rd_nr=2 rd_size=$((N * 64 + 65536)) max_part=0
    D=/dev/ram1
    must dmsetup create m --table "0 131072 linear /dev/ram0 0"
    { echo "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"$BLOCK_SECTORS\" nr_data_blocks=\"$((N + 1024))\">"
      echo "  <device dev_id=\"1\" mapped_blocks=\"$N\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">"
      echo "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"$N\" time=\"0\"/>"
      echo "  </device>"
      echo "</superblock>"; } > /tmp/c.xml
    must thin_restore -i /tmp/c.xml -o /dev/mapper/m
    must dmsetup create pool --table "0 $(((N + 1024) * BLOCK_SECTORS)) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"
    must dmsetup create t1 --table "0 $((N * BLOCK_SECTORS)) $THIN_TARGET /dev/mapper/pool 1"
    pages=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 4))
    want=$((pages / 50)); [ $want -ge 4096 ] || want=4096
    [ $want -le 16384 ] || want=16384    # no more than the metadata device's blocks
    assert_eq "$(ms cache_capacity)" $want "cache blocks by default (2% of $pages pages)"

    note "the metadata of $N mappings cached, then given back"
    # One 4 KiB write in every 200th block: every leaf of the tree is read.
    pattern 7400 4 > /tmp/p4
    PSUM=$(sha256sum < /tmp/p4 | cut -d' ' -f1)
    i=0
    while [ $i -lt $N ]; do
        dd if=/tmp/p4 of=/dev/mapper/t1 bs=4096 seek=$((i * 16)) oflag=direct conv=notrunc 2>/dev/null ||
            fail "write at block $i"
        i=$((i + 200))
    done
    sync
    # The cold tree was read by the worker's lookups with no lock held
    # (rust/thin/lookup.rs), not under the exclusive lock.
    note "worker lookups: $(ms lookup_reads) nodes read outside the lock, $(ms lookup_locked) lookups locked"
    assert_gt "$(ms lookup_reads)" 50 "metadata nodes the worker read outside the pool lock"
    s0=$(ms cache_shrunk)
    echo 2 > /proc/sys/vm/drop_caches
    s1=$(ms cache_shrunk)
    note "drop_caches gave back $((s1 - s0)) metadata blocks"
    assert_gt $((s1 - s0)) 50 "metadata blocks the shrinker gave back"
    i=0
    while [ $i -lt $N ]; do
        [ "$(dd if=/dev/mapper/t1 bs=4096 skip=$((i * 16)) count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$PSUM" ] ||
            fail "block $i after the shrink"
        i=$((i + 200))
    done
    must dmsetup remove t1
    must dmsetup remove pool
    check_metadata /dev/mapper/m

    note "metadata_cache_mb sets the size of pools made after it"
    echo 20 > $PARAM || fail "set $PARAM"
    must dmsetup create pool --table "0 $(((N + 1024) * BLOCK_SECTORS)) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"
    c=$(ms cache_capacity)
    echo 0 > $PARAM
    assert_eq "$c" 5120 "cache blocks with metadata_cache_mb=20"
    must dmsetup remove pool
    must dmsetup remove m
    must rmmod brd
}
