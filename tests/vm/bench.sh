#!/bin/sh
# `make bench`: fio on brd RAM disks against dm-linear (the limit), the C thin
# target and the Rust one (rthin), in one boot of the bench kernel (no KASAN,
# no lockdep). Every workload runs on every target in each of BENCH_ROUNDS
# rounds, the target order rotating from round to round; the table keeps each
# target's best IOPS and prints Rust/C and Rust/linear.
#   BENCH_RUNTIME (s, per fio job, default 5), BENCH_ROUNDS (default 3),
#   BENCH_WORKLOADS (default all, names as in the table),
#   BENCH_PROFILE (workloads to run once more on C and Rust under `perf record
#   -a` after the table, printing each one's top kernel symbols; default none).
# `make bench BENCH_ARGS="BENCH_ROUNDS=2 BENCH_PROFILE='randread4k overwrite4k'"`
# sets them: /etc/vm-args holds one KEY=VALUE a line (init splits on spaces).
[ -f /etc/vm-args ] && while IFS= read -r a; do
    case "$a" in BENCH_*=*) export "$a" ;; esac
done < /etc/vm-args
. /tests/lib.sh
RUNTIME=${BENCH_RUNTIME:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WORKLOADS=${BENCH_WORKLOADS:-"provision64k overwrite4k randread4k fsync4k snapcow4k discard64k"}

# Two 1 GiB RAM disks: metadata and data. The thin is the whole data size.
insmod /modules/brd.ko rd_nr=2 rd_size=1048576 max_part=0 || exit 1
META=/dev/ram0 DATA=/dev/ram1
THIN_SECTORS=$(sectors $DATA)
REGION=256M    # filled, then overwritten / read (time-based, RUNTIME each)
BIG=1G         # filled for the discards, so that they last about a second or more
SNAP=480M      # filled, then snapshotted; its COW copies fit in the rest of the pool
sh /tests/load.sh c || exit 1
sh /tests/load.sh rust || exit 1
: > /tmp/bench.txt

# fio_run DEV RW BS [extra...]: one fio job; prints "IOPS SYS_CPU%".
fio_run() {
    dev=$1 rw=$2 bs=$3; shift 3
    $FIO_PREFIX fio --name=b --filename="$dev" --rw="$rw" --bs="$bs" --direct=1 --ioengine=libaio \
        --iodepth=16 --runtime="$RUNTIME" --size="$REGION" --randrepeat=1 --norandommap \
        --output-format=json "$@" 2>/tmp/fio.err |
        awk -F: '/"iops" :/ { gsub(/[ ,]/, "", $2); s += $2 }
                 /"sys_cpu" :/ { gsub(/[ ,]/, "", $2); c = $2 }
                 END { printf "%d %.0f\n", s, c }'
}
fill() { # fill DEV [SIZE]: the first SIZE (default REGION) of DEV, 64 KiB writes
    fio --name=f --filename="$1" --rw=write --bs=64k --direct=1 --ioengine=libaio \
        --iodepth=16 --size="${2:-$REGION}" --output-format=terse >/dev/null 2>&1
}

clean_slate() {
    dmsetup remove_all >/dev/null 2>&1
    blkdiscard $DATA 2>/dev/null   # brd frees its pages: every target starts cold
}
# make_dev TARGET: /dev/mapper/bt, a linear device or a fresh thin in a fresh pool.
make_dev() {
    clean_slate
    case $1 in
        linear) dmsetup create bt --table "0 $THIN_SECTORS linear $DATA 0" ;;
        c|rust)
            IMPL=$1; . /tests/lib.sh; META=/dev/ram0 DATA=/dev/ram1
            wipe_meta
            dmsetup create bpool --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA $BLOCK_SECTORS 0" &&
            dmsetup message /dev/mapper/bpool 0 "create_thin 1" &&
            dmsetup create bt --table "0 $THIN_SECTORS $THIN_TARGET /dev/mapper/bpool 1" ;;
    esac
}

# run_workload TARGET WORKLOAD: prints "IOPS SYS_CPU%" (or "n/a").
run_workload() {
    t=$1 w=$2
    make_dev $t >/dev/null 2>&1 || { echo n/a; return; }
    dev=/dev/mapper/bt
    case $w in
        provision64k)   # every write provisions a new 64 KiB block (linear: fresh brd pages)
            fio_run $dev write 64k --size=$((THIN_SECTORS / 2))k ;;
        overwrite4k)
            fill $dev; fio_run $dev randwrite 4k --time_based ;;
        randread4k)
            fill $dev; fio_run $dev randread 4k --time_based ;;
        fsync4k)        # a journal: sequential 4k writes, fsync after each, on a fresh thin
            fio_run $dev write 4k --ioengine=psync --iodepth=1 --fsync=1 ;;
        snapcow4k)      # one 4k write in each 64 KiB block of a fresh snapshot: each breaks sharing
            fill $dev $SNAP
            if [ $t != linear ]; then
                dmsetup suspend bt && dmsetup message /dev/mapper/bpool 0 "create_snap 2 1" &&
                dmsetup resume bt &&
                dmsetup create bs --table "0 $THIN_SECTORS $THIN_TARGET /dev/mapper/bpool 2" ||
                    { echo n/a; return; }
                dev=/dev/mapper/bs
            fi
            fio_run $dev write:60k 4k --size=$SNAP ;;
        discard64k)     # 64 KiB discards (one block each) over a filled region
            fill $dev $BIG; fio_run $dev trim 64k --ioengine=psync --iodepth=1 --size=$BIG ;;
        *) echo n/a; return ;;
    esac
}

targets_for_round() { # rotate the order so no target always runs first
    case $(($1 % 3)) in
        1) echo linear c rust ;; 2) echo c rust linear ;; 0) echo rust linear c ;;
    esac
}

start=$(date +%s)
r=1
while [ $r -le $ROUNDS ]; do
    for w in $WORKLOADS; do
        for t in $(targets_for_round $r); do
            v=$(run_workload $t $w)
            [ -n "$v" ] || v=n/a
            echo "$w $t $v" >> /tmp/bench.txt
            echo "  .. round $r $w on $t: $v (IOPS, fio sys CPU %)"
        done
    done
    r=$((r + 1))
done
dmsetup remove_all >/dev/null 2>&1
dmesg | grep -iE 'error|fail|timed out' | tail -n 5

best() { # best IOPS of W on T, and the sys CPU % of that run
    awk -v w=$1 -v t=$2 '$1==w && $2==t && $3 != "n/a" && $3+0 > b { b = $3 + 0; c = $4 }
        END { if (b > 0) print b, c; else print "n/a n/a" }' /tmp/bench.txt
}
ratio() { case "$1$2" in *n/a*) echo n/a ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }' ;; esac; }

echo
echo "BENCH best of $ROUNDS rounds, ${RUNTIME}s per fio job, IOPS (fio sys CPU % of that run)"
printf 'BENCH %-13s %14s %14s %14s %8s %8s %8s\n' workload dm-linear "C thin" "Rust thin" rust/C rust/lin C/lin
for w in $WORKLOADS; do
    set -- $(best $w linear); l=$1 lc=$2
    set -- $(best $w c); c=$1 cc=$2
    set -- $(best $w rust); rr=$1 rc=$2
    printf 'BENCH %-13s %14s %14s %14s %8s %8s %8s\n' $w "$l ($lc)" "$c ($cc)" "$rr ($rc)" \
        "$(ratio $rr $c)" "$(ratio $rr $l)" "$(ratio $c $l)"
done
echo "BENCH total $(( $(date +%s) - start ))s; goals: rust/C >= 0.80 everywhere, rust/lin >= 0.90 for overwrite4k and randread4k"

# Where the time goes: one more run per target under perf (cpu-clock samples
# of the whole guest), the top symbols by share of all samples.
if [ -n "${BENCH_PROFILE:-}" ] && command -v perf >/dev/null; then
    for w in $BENCH_PROFILE; do
        for t in c rust; do
            FIO_PREFIX="perf record -q -a -F 2000 -o /tmp/perf.data --"
            v=$(run_workload $t $w 2>/dev/null)
            FIO_PREFIX=
            echo "PROFILE $w on $t: $v (IOPS, sys CPU %); top symbols:"
            perf report -i /tmp/perf.data --stdio --no-children --sort dso,sym 2>/dev/null |
                grep -E '^ +[0-9]' | head -n 25 | sed 's/^/PROFILE   /'
            dmsetup remove_all >/dev/null 2>&1
        done
    done
fi
