#!/bin/sh
# The used-by flow, step by step, on dm_thin_rs.ko: insmod, pool and thin,
# create_thin, create_snap, mkfs, mount -o discard, write and verify, rm,
# fstrim, delete, with `dmsetup status` after every step. Then the same flow
# on the C dm-thin-pool module, for comparison.
. /tests/lib.sh
status() { dmsetup status 2>/dev/null | sed 's/^/    | /'; }
step() {
    echo; echo "\$ $*"; "$@"; r=$?
    [ $r -eq 0 ] || echo "(exit $r)"
    echo "  dmsetup status:"; status
    return $r
}
verify() { # verify FILE SUM
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" = "$2" ]; then echo "  verified: $1 sha256 $got"; else echo "  MISMATCH: $1 sha256 $got, wrote $2"; return 1; fi
}

# flow POOL_TARGET THIN_TARGET: the whole flow on one implementation.
flow() {
    P=$1 T=$2
    wipe_meta
    echo "  dmsetup status (before):"; status
    step dmsetup create pool --table "0 $(sectors $DATA) $P $META $DATA 128 0" || return 1
    step dmsetup message /dev/mapper/pool 0 "create_thin 1" || return 1
    step dmsetup create thin1 --table "0 524288 $T /dev/mapper/pool 1" || return 1
    step mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/thin1 || return 1
    mkdir -p /mnt/thin1
    step mount -o discard,noinit_itable /dev/mapper/thin1 /mnt/thin1 || return 1
    pattern 1 16384 > /tmp/demo.data
    sum=$(sha256sum /tmp/demo.data | cut -d' ' -f1)
    step dd if=/tmp/demo.data of=/mnt/thin1/file bs=1M conv=fsync || return 1
    step sh -c 'echo 3 > /proc/sys/vm/drop_caches'
    verify /mnt/thin1/file "$sum" || return 1
    step dmsetup suspend thin1 || return 1
    step dmsetup message /dev/mapper/pool 0 "create_snap 2 1" || return 1
    step dmsetup resume thin1 || return 1
    step dmsetup create snap2 --table "0 524288 $T /dev/mapper/pool 2" || return 1
    mkdir -p /mnt/snap2
    step mount -o ro,noinit_itable /dev/mapper/snap2 /mnt/snap2 || return 1
    verify /mnt/snap2/file "$sum" || return 1
    step rm /mnt/thin1/file
    step sync
    step fstrim -v /mnt/thin1
    echo "# the snapshot still holds the file's blocks:"
    verify /mnt/snap2/file "$sum" || return 1
    step umount /mnt/snap2
    step dmsetup remove snap2
    step dmsetup message /dev/mapper/pool 0 "delete 2" || return 1
    echo "# after deleting the snapshot its blocks return to the pool (see used data blocks)"
    step umount /mnt/thin1
    step dmsetup table pool
    step dmsetup remove thin1
    step dmsetup remove pool
    step thin_check $META || return 1
    step thin_ls $META
}

echo "=== dm-thin-rs demo: the used-by flow on dm_thin_rs.ko (targets rthin-pool, rthin)"
step insmod /modules/dm_thin_rs.ko pool_target=rthin-pool thin_target=rthin || exit 1
step dmsetup targets
step sh -c 'grep dm_thin /proc/modules'
flow rthin-pool rthin; rc=$?
teardown >/dev/null 2>&1
step rmmod dm_thin_rs
if [ $rc -eq 0 ]; then echo "=== DEMO OK: the whole flow ran on dm_thin_rs.ko"; else echo "=== DEMO FAILED on dm_thin_rs.ko"; fi

echo; echo "=== the same flow on the C dm-thin-pool module (targets thin-pool, thin)"
step sh /tests/load.sh c || exit 1
flow thin-pool thin; crc=$?
teardown >/dev/null 2>&1
step sh /tests/load.sh unload-c
[ $crc -eq 0 ] && echo "=== the C module ran the same flow" || echo "=== the flow FAILED on the C module"
[ $rc -eq 0 ] && [ $crc -eq 0 ]
