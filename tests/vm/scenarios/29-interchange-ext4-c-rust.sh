# Files written through one module are read back through the other, both
# ways: an ext4 thin and a snapshot of it made by the C dm-thin-pool, opened
# by dm_thin_rs.ko (raw contents and files verified by sha256, then new
# writes to both and a new snapshot), then opened by C again and verified.
# Runs under IMPL=rust with the C module loaded beside it (target names given).
APPLIES="rust"
C_POOL=thin-pool C_THIN=thin R_POOL=rthin-pool R_THIN=rthin
SZ=$((64 * 2048))
MNTOPT=noinit_itable
activate() { must dmsetup create "$2" --table "0 $SZ $1 /dev/mapper/pool $3"; }  # activate TARGET NAME ID
mnt() { mkdir -p "$2"; must mount -o $MNTOPT "/dev/mapper/$1" "$2"; }
fsck_clean() { e2fsck -fn "/dev/mapper/$1" >/tmp/fsck.out 2>&1 || { tail -n 5 /tmp/fsck.out; fail "e2fsck $1 ($2)"; }; }

main() {
    must sh /tests/load.sh c
    # --- C: thin 1 with files, snapshot 2, then thin 1 changes.
    pool_create_on $C_POOL pool $META $DATA
    must dmsetup message pool 0 "create_thin 1"
    activate $C_THIN t1 1
    must mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/t1
    mnt t1 /mnt/o
    mkdir -p /mnt/o/d/e
    pattern 1 256 > /mnt/o/f1
    pattern 2 1024 > /mnt/o/f2
    pattern 3 3073 > /mnt/o/d/f3
    echo "made by the C dm-thin-pool" > /mnt/o/d/e/small
    must umount /mnt/o
    mnt t1 /mnt/o; manifest /mnt/o > /tmp/m_snap; must umount /mnt/o
    snap_create pool 1 t1 2
    mnt t1 /mnt/o
    rm /mnt/o/f1
    pattern 4 128 | dd of=/mnt/o/f2 bs=1024 seek=100 conv=notrunc 2>/dev/null
    pattern 5 2048 > /mnt/o/d/f5
    must umount /mnt/o
    mnt t1 /mnt/o; manifest /mnt/o > /tmp/m_orig; must umount /mnt/o
    activate $C_THIN t2 2
    sum1=$(dev_sum /dev/mapper/t1); sum2=$(dev_sum /dev/mapper/t2)
    used=$(pool_used_data pool)
    must dmsetup remove t1; must dmsetup remove t2; must dmsetup remove pool
    check_metadata $META

    # --- dm_thin_rs.ko opens it: same bytes, same files.
    pool_create_on $R_POOL pool $META $DATA
    assert_eq "$(pool_field pool 3)" "$R_POOL" "target"
    assert_eq "$(pool_used_data pool)" "$used" "data blocks used, as C left them"
    activate $R_THIN t1 1; activate $R_THIN t2 2
    assert_eq "$(dev_sum /dev/mapper/t1)" "$sum1" "thin 1 contents under $R_THIN"
    assert_eq "$(dev_sum /dev/mapper/t2)" "$sum2" "snapshot 2 contents under $R_THIN"
    fsck_clean t1 "C's thin under Rust"; fsck_clean t2 "C's snapshot under Rust"
    mnt t1 /mnt/o; mnt t2 /mnt/s
    check_manifest /mnt/o /tmp/m_orig "thin 1 under $R_THIN"
    check_manifest /mnt/s /tmp/m_snap "snapshot 2 under $R_THIN"
    assert_eq "$(cat /mnt/s/d/e/small)" "made by the C dm-thin-pool" "small file"
    # New writes through Rust to both (breaking sharing), then a Rust snapshot.
    pattern 6 4096 > /mnt/o/f6
    pattern 7 64 | dd of=/mnt/o/d/f3 bs=1024 seek=1000 conv=notrunc 2>/dev/null
    rm /mnt/s/f2
    pattern 8 1536 > /mnt/s/d/f8
    echo "written by dm_thin_rs.ko" > /mnt/s/d/e/small
    sync
    manifest /mnt/s > /tmp/m_snap2
    manifest /mnt/o > /tmp/m_snap3
    snap_create pool 1 t1 3                      # suspend freezes the mounted ext4
    pattern 9 512 > /mnt/o/d/e/f9
    rm /mnt/o/d/f5
    must umount /mnt/o; must umount /mnt/s
    mnt t1 /mnt/o; manifest /mnt/o > /tmp/m_orig2; must umount /mnt/o
    activate $R_THIN t3 3
    fsck_clean t3 "Rust's snapshot of a mounted thin"
    sum1=$(dev_sum /dev/mapper/t1); sum2=$(dev_sum /dev/mapper/t2); sum3=$(dev_sum /dev/mapper/t3)
    used=$(pool_used_data pool)
    must dmsetup remove t1; must dmsetup remove t2; must dmsetup remove t3; must dmsetup remove pool
    check_metadata $META
    assert_eq "$(dump_devices $META | sed 's/:[0-9]*//g')" "1 2 3" "devices on disk"

    # --- C opens it again.
    pool_create_on $C_POOL pool $META $DATA
    assert_eq "$(pool_used_data pool)" "$used" "data blocks used, as Rust left them"
    activate $C_THIN t1 1; activate $C_THIN t2 2; activate $C_THIN t3 3
    assert_eq "$(dev_sum /dev/mapper/t1)" "$sum1" "thin 1 contents under C"
    assert_eq "$(dev_sum /dev/mapper/t2)" "$sum2" "snapshot 2 contents under C"
    assert_eq "$(dev_sum /dev/mapper/t3)" "$sum3" "snapshot 3 contents under C"
    for t in t1 t2 t3; do fsck_clean $t "under C after Rust"; done
    mnt t1 /mnt/o; mnt t2 /mnt/s; mnt t3 /mnt/t
    check_manifest /mnt/o /tmp/m_orig2 "thin 1 back under C"
    check_manifest /mnt/s /tmp/m_snap2 "snapshot 2 back under C"
    check_manifest /mnt/t /tmp/m_snap3 "snapshot 3 (made by Rust) under C"
    assert_eq "$(cat /mnt/s/d/e/small)" "written by dm_thin_rs.ko" "small file rewritten by Rust"
    pattern 10 1024 > /mnt/t/f10
    sync
    assert_eq "$(sha256sum /mnt/t/f10 | cut -d' ' -f1)" "$(pattern_sum 10 1024)" "new file under C"
    must umount /mnt/o; must umount /mnt/s; must umount /mnt/t
    fsck_clean t3 "after writing under C"
    must dmsetup remove t1; must dmsetup remove t2; must dmsetup remove t3; must dmsetup remove pool
    check_metadata $META
    must sh /tests/load.sh unload-c
}
