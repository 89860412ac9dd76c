#!/bin/sh
# The used-by flow, step by step: insmod, pool and thin, create_thin,
# create_snap, mkfs, mount -o discard, write, fstrim, delete, status.
. /tests/lib.sh
step() { echo; echo "\$ $*"; "$@"; r=$?; [ $r -eq 0 ] || echo "(exit $r)"; return $r; }

echo "=== dm-thin-rs demo"
step insmod /modules/dm_thin_rs.ko pool_target=rthin-pool thin_target=rthin
step dmsetup targets
wipe_meta
echo; echo "# dm_thin_rs.ko checks the whole table line like dm-thin.c, e.g. a bad block size:"
dmesg -c >/dev/null
step dmsetup create rpool --table "0 $(sectors $DATA) rthin-pool $META $DATA 100 0"
echo "kernel: $(dmesg | grep -o 'rthin-pool: .*')"
echo; echo "# ... and a valid line: the Rust pool engine (the I/O-path issue) is not built yet:"
dmesg -c >/dev/null
step dmsetup create rpool --table "0 $(sectors $DATA) rthin-pool $META $DATA 128 0"
echo "kernel: $(dmesg | grep -o 'rthin-pool: .*')"
step rmmod dm_thin_rs

echo; echo "=== the same flow against the C dm-thin-pool module (until the Rust I/O path lands)"
IMPL=c; . /tests/lib.sh
step sh /tests/load.sh c || exit 1
wipe_meta
step dmsetup create pool --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA 128 0 0" || exit 1
step dmsetup message /dev/mapper/pool 0 "create_thin 1" || exit 1
step dmsetup create thin1 --table "0 524288 $THIN_TARGET /dev/mapper/pool 1" || exit 1
step mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/thin1 || exit 1
mkdir -p /mnt/thin1
step mount -o discard,noinit_itable /dev/mapper/thin1 /mnt/thin1 || exit 1
step dd if=/dev/urandom of=/mnt/thin1/file bs=1M count=16 conv=fsync
step sha256sum /mnt/thin1/file
step dmsetup status pool
step dmsetup suspend thin1
step dmsetup message /dev/mapper/pool 0 "create_snap 2 1"
step dmsetup resume thin1
step dmsetup create snap2 --table "0 524288 $THIN_TARGET /dev/mapper/pool 2"
step rm /mnt/thin1/file
step sync
step fstrim -v /mnt/thin1
echo "# the snapshot still holds the file's blocks:"
step dmsetup status pool
step umount /mnt/thin1
step dmsetup remove snap2
step dmsetup message /dev/mapper/pool 0 "delete 2"
echo "# after deleting the snapshot its blocks return to the pool:"
step dmsetup status pool
step dmsetup status thin1
step dmsetup table pool
step dmsetup remove thin1
step dmsetup remove pool
step thin_check $META
step thin_ls $META
step sh /tests/load.sh unload-c
