# Several writers in parallel, every write O_DIRECT|O_SYNC (REQ_FUA), on fresh
# thins, on a thin and on its snapshot over shared blocks (copy on write,
# partial blocks), with fio verifying as it goes. When all of them have
# finished the power goes (metadata and data devices switched to dm-flakey
# drop_writes, everything torn down), and after reopening the pool every
# acknowledged write is there: same bytes, and fio's verify of each job passes.
APPLIES="c rust"
SLOW="c"
# job NAME DEV OFFSET SIZE BS ENGINE IODEPTH [extra...]
job() {
    local name=$1 dev=$2 off=$3 size=$4 bs=$5 eng=$6 qd=$7; shift 7
    fio --name=$name --filename=$dev --rw=write --offset=$off --size=$size --bs=$bs \
        --ioengine=$eng --iodepth=$qd --direct=1 --sync=1 --verify=crc32c "$@" >/tmp/$name.out 2>&1
}
JOBS="w1 w2 w3 w4 w5"
spec() {
    case $1 in
        w1) echo "/dev/mapper/t1 0 2M 4k psync 1" ;;          # over shared blocks
        w2) echo "/dev/mapper/t2 4M 1536k 12k psync 1" ;;     # the snapshot, shared, partial
        w3) echo "/dev/mapper/t3 0 8M 64k libaio 8" ;;        # fresh, whole blocks, queued
        w4) echo "/dev/mapper/t4 1052672 3M 16k libaio 4" ;;  # fresh, unaligned to blocks
        w5) echo "/dev/mapper/t1 16M 2M 8k libaio 2" ;;       # fresh, beside w1 on the same thin
    esac
}
regions() { # the ranges (DEV KIB OFFSET_KIB) whose bytes must survive
    echo "/dev/mapper/t1 8192 0"; echo "/dev/mapper/t1 2048 16384"
    echo "/dev/mapper/t2 8192 0"; echo "/dev/mapper/t3 8192 0"; echo "/dev/mapper/t4 5120 0"
}
main() {
    crashable_create cmeta $META
    crashable_create cdata $DATA
    META=/dev/mapper/cmeta DATA=/dev/mapper/cdata
    pool_create pool
    thin_create pool 1 t1 32
    write_pattern /dev/mapper/t1 51 8192 0
    snap_create pool 1 t1 2
    thin_activate pool 2 t2 32
    thin_create pool 3 t3 32
    thin_create pool 4 t4 32
    q=/sys/dev/block/$(maj_min /dev/mapper/t1)/queue
    note "thin queue: fua=$(cat $q/fua) write_cache=$(cat $q/write_cache)"
    pids=""
    for j in $JOBS; do
        job $j $(spec $j) --do_verify=1 &
        pids="$pids $!"
    done
    i=0
    for p in $pids; do
        i=$((i + 1)); j=$(echo $JOBS | cut -d' ' -f$i)
        wait $p || { tail -n 5 /tmp/$j.out; fail "fio job $j failed"; }
    done
    note "all writers done: $(dmsetup status pool)"
    regions > /tmp/regions
    while read dev kib off; do sum_range $dev $kib $off; done < /tmp/regions > /tmp/sums.before
    assert_eq "$(sed -n 1p /tmp/sums.before)" "$(sum_range /dev/mapper/t1 8192 0)" "sums are stable"
    assert_eq "$(sum_range /dev/mapper/t2 4096 0)" "$(pattern_sum 51 4096)" "snapshot outside w2's range"
    used=$(pool_used_data pool)

    crash_writes cmeta /dev/vda
    crash_writes cdata /dev/vdb
    must dmsetup message pool 0 "create_thin 9"
    for t in t1 t2 t3 t4; do must dmsetup remove $t; done
    must dmsetup remove pool

    crash_restore cmeta /dev/vda
    crash_restore cdata /dev/vdb
    pool_create pool
    assert_eq "$(pool_used_data pool)" "$used" "data blocks used after the cut"
    if dmsetup create t9 --table "0 2048 $THIN_TARGET /dev/mapper/pool 9" 2>/dev/null; then
        fail "thin 9, created after the cut, exists: the metadata writes were not dropped"
    fi
    for t in 1 2 3 4; do thin_activate pool $t t$t 32; done
    while read dev kib off; do sum_range $dev $kib $off; done < /tmp/regions > /tmp/sums.after
    n=0
    while read s; do
        n=$((n + 1))
        assert_eq "$(sed -n ${n}p /tmp/sums.after)" "$s" "after the cut: $(sed -n ${n}p /tmp/regions)"
    done < /tmp/sums.before
    for j in $JOBS; do
        job $j $(spec $j) --verify_only=1 || { tail -n 5 /tmp/$j.out; fail "fio verify of $j after the cut"; }
    done
    for t in t1 t2 t3 t4; do must dmsetup remove $t; done
    must dmsetup remove pool
    must dmsetup remove cmeta; must dmsetup remove cdata
}
