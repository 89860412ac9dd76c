#!/bin/sh
# load.sh c|rust|unload-c|unload-rust: (un)load one implementation.
# The C dm-thin-pool needs dm-bufio, dm-bio-prison and dm-persistent-data first.
case "$1" in
    c)
        for m in dm-bufio dm-bio-prison dm-persistent-data dm-thin-pool; do
            grep -q "^$(echo $m | tr - _) " /proc/modules || insmod /modules/$m.ko || exit 1
        done ;;
    rust)
        grep -q '^dm_thin_rs ' /proc/modules ||
            insmod /modules/dm_thin_rs.ko pool_target=rthin-pool thin_target=rthin || exit 1 ;;
    unload-c)
        for m in dm_thin_pool dm_persistent_data dm_bio_prison dm_bufio; do
            rmmod $m || exit 1
        done ;;
    unload-rust)
        rmmod dm_thin_rs || exit 1 ;;
    *) echo "usage: load.sh c|rust|unload-c|unload-rust" >&2; exit 2 ;;
esac
