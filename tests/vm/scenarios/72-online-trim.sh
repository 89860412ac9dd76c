# Beyond C (issue 19): the `trim` pool message discards every unused data
# block while the pool runs, and a `delete` with discard passdown discards
# the blocks it freed once its commit is done. On brd, whose discards free
# its pages, a discarded block reads as zeroes:
# - a deleted thin's blocks read as zeroes on the data device, and the
#   pool's stats count them; another thin's blocks are intact;
# - a delete whose commit fails (metadata device failing writes) discards
#   nothing: the thin's data is still on the data device;
# - blocks freed while passdown was off stay until a `trim`, which
#   discards them while a writer provisions and verifies on another thin;
#   every block the writer wrote reads back;
# - `trim` is refused on a read-only pool and does nothing with
#   no_discard_passdown.
APPLIES="rust"
BLK=$((BLOCK_SECTORS * 512))
ms() { awk -v k="$1" '$1 == k { print $2 }' /sys/kernel/debug/dm_thin_rs/$(maj_min /dev/mapper/pool)/stats; }
# data_sum FIRST N: hash of data blocks FIRST.. on the data device itself.
data_sum() { dd if=$D bs=$BLK skip=$1 count=$2 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
zeros() { dd if=/dev/zero bs=$BLK count=$1 2>/dev/null | sha256sum | cut -d' ' -f1; }
reload() { # reload FEATURES...: the pool's table again, with these features
    local n=$#
    must dmsetup suspend pool
    must dmsetup load pool --table "0 $(sectors $D) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0 $n $*"
    must dmsetup resume pool
}
writer() { # writer: whole-block writes to new blocks of t2, each read back
    local i=0
    while [ ! -e /tmp/w.stop ]; do
        pattern $((7200 + i)) 64 > /tmp/w.in
        dd if=/tmp/w.in of=/dev/mapper/t2 bs=$BLK seek=$((256 + i)) count=1 oflag=direct 2>/dev/null || { echo "write $i failed" > /tmp/w.err; return; }
        [ "$(sum_range /dev/mapper/t2 64 $(((256 + i) * 64)))" = "$(pattern_sum $((7200 + i)) 64)" ] || { echo "block $i read back wrong" > /tmp/w.err; return; }
        i=$((i + 1)); echo $i > /tmp/w.count
        [ $i -lt 1500 ] || return
    done
}
main() {
    debugfs_mount
    load_flakey
    grep -q '^brd ' /proc/modules && must rmmod brd
    must insmod /modules/brd.ko rd_nr=2 rd_size=$((256 * 1024)) max_part=0
    D=/dev/ram1
    must dmsetup create m --table "0 32768 linear /dev/ram0 0"
    dd if=/dev/zero of=/dev/mapper/m bs=4096 count=1 conv=fsync 2>/dev/null
    must dmsetup create pool --table "0 $(sectors $D) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"
    thin_create pool 1 t1 64      # data blocks 0-255 (the allocator goes up from 0)
    thin_create pool 2 t2 128
    write_pattern /dev/mapper/t1 7201 16384 0
    write_pattern /dev/mapper/t2 7202 16384 0     # blocks 256-511
    assert_eq "$(data_sum 0 256)" "$(pattern_sum 7201 16384)" "t1 on the data device"

    note "a delete whose commit fails discards nothing"
    must dmsetup remove t1
    must dmsetup suspend m
    must dmsetup load m --table "0 32768 flakey /dev/ram0 0 0 3600 1 error_writes"
    must dmsetup resume m
    must_fail dmsetup message /dev/mapper/pool 0 "delete 1"
    assert_eq "$(pool_mode pool)" ro "pool mode after the failed commit"
    assert_eq "$(data_sum 0 256)" "$(pattern_sum 7201 16384)" "t1's blocks after the failed delete"
    must dmsetup remove t2; must dmsetup remove pool
    must dmsetup suspend m; must dmsetup load m --table "0 32768 linear /dev/ram0 0"; must dmsetup resume m
    repair_metadata /dev/mapper/m || fail "repair after the failed delete"
    must dmsetup create pool --table "0 $(sectors $D) $POOL_TARGET /dev/mapper/m $D $BLOCK_SECTORS 0"
    thin_activate pool 2 t2 128

    note "delete: the freed blocks are discarded after the commit"
    t0=$(ms trimmed)
    must dmsetup message /dev/mapper/pool 0 "delete 1"
    assert_eq "$(data_sum 0 256)" "$(zeros 256)" "t1's blocks on the data device after the delete"
    assert_le $((t0 + 256)) "$(ms trimmed)" "blocks trimmed by the delete"
    assert_eq "$(sum_range /dev/mapper/t2 16384 0)" "$(pattern_sum 7202 16384)" "t2 after the delete"

    note "trim: space freed without passdown goes while a writer runs"
    reload no_discard_passdown
    thin_create pool 3 t3 32
    write_pattern /dev/mapper/t3 7203 8192 0
    set -- $(dmsetup status pool); used=${6%/*}
    must dmsetup remove t3
    must dmsetup message /dev/mapper/pool 0 "delete 3"
    t0=$(ms trimmed)
    must dmsetup message /dev/mapper/pool 0 trim
    assert_eq "$(ms trimmed)" "$t0" "trim with no_discard_passdown"
    reload
    rm -f /tmp/w.stop /tmp/w.err /tmp/w.count
    writer &
    wp=$!
    sleep 1
    bounded 120 dmsetup message /dev/mapper/pool 0 trim || fail "trim: $(cat /tmp/bg.bounded.out)"
    t1=$(ms trimmed)
    # More trims while the writer allocates: each holds the free runs it
    # discards (again: harmless) while new blocks are taken around them.
    end=$(($(date +%s) + 6))
    while [ $(date +%s) -lt $end ] && [ ! -e /tmp/w.err ]; do
        bounded 60 dmsetup message /dev/mapper/pool 0 trim || fail "trim during writes: $(cat /tmp/bg.bounded.out)"
    done
    touch /tmp/w.stop; wait $wp
    [ ! -e /tmp/w.err ] || fail "writer during the trim: $(cat /tmp/w.err)"
    n=$(cat /tmp/w.count)
    note "the first trim discarded $((t1 - t0)) blocks; $(ms trimmed) blocks in $(ms trim_runs) runs in all; the writer wrote $n blocks"
    assert_le $((t0 + 128)) "$t1" "blocks trimmed online"
    assert_eq "$(ms trim_end)" 0 "no trim running"
    i=0
    while [ $i -lt $n ]; do
        [ "$(sum_range /dev/mapper/t2 64 $(((256 + i) * 64)))" = "$(pattern_sum $((7200 + i)) 64)" ] || fail "writer block $i lost after the trim"
        i=$((i + 1))
    done
    assert_eq "$(sum_range /dev/mapper/t2 16384 0)" "$(pattern_sum 7202 16384)" "t2 after the trim"
    # Every block the pool does not use reads as zeroes on the data device.
    dmsetup message /dev/mapper/pool 0 reserve_metadata_snap
    snap=$(dmsetup status pool | awk '{print $7}')
    thin_dump --metadata-snap=$snap /dev/mapper/m 2>/dev/null | awk '
        /single_mapping/ { for (i = 1; i <= NF; i++) if ($i ~ /^data_block=/) { split($i, a, "\""); u[a[2]] = 1 } }
        /range_mapping/ { for (i = 1; i <= NF; i++) { if ($i ~ /^data_begin=/) { split($i, a, "\""); b = a[2] } if ($i ~ /^length=/) { split($i, a, "\""); l = a[2] } } for (j = 0; j < l; j++) u[b + j] = 1 }
        END { for (k in u) print k }' | sort -n > /tmp/used
    dmsetup message /dev/mapper/pool 0 release_metadata_snap
    assert_eq "$(wc -l < /tmp/used)" "$(pool_used_data pool)" "mapped blocks listed"
    free_nonzero=0 b=0 total=$(pool_total_data pool)
    while [ $b -lt $total ]; do
        if ! grep -qx $b /tmp/used; then
            [ "$(data_sum $b 1)" = "$(zeros 1)" ] || free_nonzero=$((free_nonzero + 1))
        fi
        b=$((b + 64))   # a sample: every 64th block
    done
    assert_eq "$free_nonzero" 0 "sampled unused blocks with data left on the device"

    note "refused on a read-only pool"
    reload read_only
    must_fail dmsetup message /dev/mapper/pool 0 trim
    teardown
    must rmmod brd
}
