# Power cut right after fsync: the pool's metadata and data devices are
# dm-linear devices that are switched to dm-flakey drop_writes (every later
# write and flush acknowledged and lost). Files on ext4 and ranges of a raw
# thin (buffered + fsync, and O_DIRECT + fsync), some over blocks shared with a
# snapshot, are written; right after the last fsync the power goes; more is
# written and everything is torn down (the pool's final commits are lost);
# with plain linear devices back the pool and thins reopen and everything fsync
# acknowledged is there, the filesystem is consistent, and what came after the
# cut (a new thin) is not.
APPLIES="c rust"
MNTOPT=noatime,noinit_itable
main() {
    crashable_create cmeta $META
    crashable_create cdata $DATA
    META=/dev/mapper/cmeta DATA=/dev/mapper/cdata
    pool_create pool
    thin_create pool 1 fs 64
    thin_create pool 2 raw 32
    must mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/fs
    mkdir -p /mnt/fs
    must mount -o $MNTOPT /dev/mapper/fs /mnt/fs
    pattern 41 1024 > /mnt/fs/before-snap
    write_pattern /dev/mapper/raw 42 4096 0                 # blocks 0-63
    sync
    note "ext4 made, first data written"
    snap_create pool 1 fs 3                                 # freezes and thaws the ext4
    snap_create pool 2 raw 4
    # Acknowledged by fsync: a file (new blocks and a rewrite of a shared file)...
    pattern 43 3072 | dd of=/mnt/fs/f1 bs=4096 conv=fsync 2>/dev/null || fail "write f1"
    pattern 44 256 | dd of=/mnt/fs/before-snap bs=1024 seek=512 conv=notrunc,fsync 2>/dev/null || fail "rewrite before-snap"
    # ... raw ranges over shared blocks (partial blocks too) and fresh blocks.
    write_pattern /dev/mapper/raw 45 1000 100                # buffered, fsync, shared, unaligned
    pattern 46 2048 | dd of=/dev/mapper/raw bs=4096 seek=1024 iflag=fullblock oflag=direct conv=notrunc,fsync 2>/dev/null || fail "direct write"
    pattern 47 512 | dd of=/dev/mapper/raw bs=4096 seek=2048 iflag=fullblock oflag=direct conv=notrunc,fsync 2>/dev/null || fail "direct write 2"
    s_f1=$(sha256sum /mnt/fs/f1 | cut -d' ' -f1)
    s_bs=$(sha256sum /mnt/fs/before-snap | cut -d' ' -f1)
    assert_eq "$s_f1" "$(pattern_sum 43 3072)" "f1 before the cut"
    s_raw=$(sum_range /dev/mapper/raw 12288 0)
    used=$(pool_used_data pool)
    note "pool status at the cut: $(dmsetup status pool)"

    # The power goes.
    note "power cut"
    crash_writes cmeta /dev/vda
    crash_writes cdata /dev/vdb
    # After the cut: nothing of this may matter or survive.
    pattern 48 2048 > /mnt/fs/after-cut
    write_pattern /dev/mapper/raw 49 1024 16384
    must dmsetup message pool 0 "create_thin 9"
    must umount /mnt/fs
    must dmsetup remove fs; must dmsetup remove raw; must dmsetup remove pool

    # The power is back.
    note "power back"
    crash_restore cmeta /dev/vda
    crash_restore cdata /dev/vdb
    pool_create pool
    note "pool status after reopening: $(dmsetup status pool)"
    assert_eq "$(pool_used_data pool)" "$used" "data blocks used, as at the last commit before the cut"
    if dmsetup create t9 --table "0 2048 $THIN_TARGET /dev/mapper/pool 9" 2>/dev/null; then
        fail "thin 9, created after the cut, exists: the metadata writes were not dropped"
    fi
    thin_activate pool 1 fs 64
    thin_activate pool 2 raw 32
    thin_activate pool 3 fssnap 64
    thin_activate pool 4 rawsnap 32
    assert_eq "$(sum_range /dev/mapper/raw 12288 0)" "$s_raw" "raw thin: every fsync'd range"
    assert_eq "$(sum_range /dev/mapper/raw 2048 4096)" "$(pattern_sum 46 2048)" "raw thin: O_DIRECT range"
    assert_eq "$(sum_range /dev/mapper/rawsnap 4096 0)" "$(pattern_sum 42 4096)" "raw snapshot keeps the old data"
    assert_eq "$(sum_range /dev/mapper/rawsnap 4096 4096)" "$(zero_sum 4096)" "raw snapshot: nothing beyond"
    note "raw thin verified"
    must mount -o $MNTOPT /dev/mapper/fs /mnt/fs                 # replays the journal
    assert_eq "$(sha256sum /mnt/fs/f1 | cut -d' ' -f1)" "$s_f1" "f1, fsync'd right before the cut"
    assert_eq "$(sha256sum /mnt/fs/before-snap | cut -d' ' -f1)" "$s_bs" "rewritten file, fsync'd"
    must umount /mnt/fs
    e2fsck -fn /dev/mapper/fs >/tmp/fsck.out 2>&1 || { tail -n 5 /tmp/fsck.out; fail "e2fsck of the thin after the cut"; }
    must mount -o ro,$MNTOPT /dev/mapper/fssnap /mnt/fs
    assert_eq "$(sha256sum /mnt/fs/before-snap | cut -d' ' -f1)" "$(pattern_sum 41 1024)" "snapshot's file"
    [ -e /mnt/fs/f1 ] && fail "f1 in the snapshot taken before it"
    must umount /mnt/fs
    must dmsetup remove fs; must dmsetup remove raw; must dmsetup remove fssnap; must dmsetup remove rawsnap
    must dmsetup remove pool
    must dmsetup remove cmeta; must dmsetup remove cdata
}
