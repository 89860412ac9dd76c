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
# Workloads: provision64k overwrite4k randread4k fsync4k snapcow4k discard64k
# (the default set), and for the scaling issue randread4k_jN / overwrite4k_jN
# (N fio jobs on one thin: run them in a boot with VM_SMP=N vCPUs),
# fsync4k_x4 (four writers on four fresh thins, fsync after each 4k write,
# each write provisioning), discard1m (1 MiB discards over a filled 1 GiB;
# "IOPS" are discards), discard1g (blkdiscard of a whole filled 1 GiB
# thin; "IOPS" is MiB discarded per second) and bigmeta_randread4k (random
# 4k reads over a thin of 2,097,152 mappings restored with thin_restore, on a
# null_blk data device: metadata far beyond the Rust module's cache).
# delete1m (issue 19) deletes a thin of 1,048,576 restored mappings while fio
# reads another thin of the pool (4k random, iodepth 1, null_blk data); its
# "IOPS" are those reads, and a DELETE table after the main one shows, per
# run, the delete message's time, the time until the space was back in the
# status line, and the worst and 99.9th-percentile read latency.
# For each Rust run the table's last column is the share of bios `map`
# deferred to the worker (debugfs stats: deferred/total).
# `make bench BENCH_ARGS="BENCH_ROUNDS=2 BENCH_PROFILE='randread4k overwrite4k'"`
# sets them: /etc/vm-args holds one KEY=VALUE a line (init splits on spaces).
[ -f /etc/vm-args ] && while IFS= read -r a; do
    case "$a" in BENCH_*=*) export "$a" ;; esac
done < /etc/vm-args
. /tests/lib.sh
RUNTIME=${BENCH_RUNTIME:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WORKLOADS=${BENCH_WORKLOADS:-"provision64k overwrite4k randread4k fsync4k snapcow4k discard64k"}
grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug 2>/dev/null

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
    ms_mark
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
    grep -q '^null_blk ' /proc/modules && rmmod null_blk
    blkdiscard $DATA 2>/dev/null   # brd frees its pages: every target starts cold
}
# ms_raw: "DEFERRED TOTAL" of the Rust pool's stats (0 0 elsewhere);
# ms_mark before a measured run; map_share after it: deferred/total of the
# bios of the run alone (not of the fill before it).
ms_raw() {
    f=$(ls /sys/kernel/debug/dm_thin_rs/*/stats 2>/dev/null | head -n 1)
    [ -r "$f" ] || { echo 0 0; return; }
    awk '$1 == "deferred" { d = $2 } $1 == "total" { t = $2 } END { print d + 0, t + 0 }' "$f"
}
ms_mark() { ms_raw > /tmp/ms0; }
map_share() {
    set -- $(cat /tmp/ms0 2>/dev/null || echo 0 0) $(ms_raw)
    [ $(($4 - $2)) -gt 0 ] && awk -v d=$(($3 - $1)) -v t=$(($4 - $2)) 'BEGIN { printf "%.3f", d / t }'
}
# make_thins TARGET N: /dev/mapper/bt1..btN, 256 MiB each (linear: slices;
# thins: ids 11.., beside make_dev's thin 1).
make_thins() {
    make_dev $1 || return 1
    dmsetup remove bt || return 1
    i=1
    while [ $i -le $2 ]; do
        case $1 in
            linear) dmsetup create bt$i --table "0 524288 linear $DATA $(( (i - 1) * 524288 ))" ;;
            *) dmsetup message /dev/mapper/bpool 0 "create_thin $((10 + i))" &&
               dmsetup create bt$i --table "0 524288 $THIN_TARGET /dev/mapper/bpool $((10 + i))" ;;
        esac || return 1
        i=$((i + 1))
    done
}
# bigmeta TARGET: /dev/mapper/bt, a thin of 2 Mi mappings (one range) over a
# 128 GiB null_blk data device (linear: the null_blk device itself).
bigmeta() {
    clean_slate
    grep -q '^configfs ' /proc/modules || insmod /modules/configfs.ko || return 1
    insmod /modules/null_blk.ko nr_devices=1 gb=128 bs=4096 queue_mode=2 irqmode=0 || return 1
    nb=/dev/nullb0
    case $1 in
        linear) dmsetup create bt --table "0 $((2097152 * 128)) linear $nb 0" ;;
        *) IMPL=$1; . /tests/lib.sh; META=/dev/ram0 DATA=/dev/ram1
           { echo '<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="2097152">'
             echo '  <device dev_id="1" mapped_blocks="2097152" transaction="0" creation_time="0" snap_time="0">'
             echo '    <range_mapping origin_begin="0" data_begin="0" length="2097152" time="0"/>'
             echo '  </device>'
             echo '</superblock>'; } > /tmp/big.xml
           thin_restore -i /tmp/big.xml -o $META >/dev/null 2>&1 || return 1
           dmsetup create bpool --table "0 $((2097152 * 128)) $POOL_TARGET $META $nb 128 0 1 no_discard_passdown" &&
           dmsetup create bt --table "0 $((2097152 * 128)) $THIN_TARGET /dev/mapper/bpool 1" ;;
    esac
}
# delete_latency TARGET: prints "IOPS 0" of fio's reads of thin 2 while thin 1
# (1 Mi mappings) is deleted, and appends "TARGET delete_ms space_ms
# max_ms p999_ms" to /tmp/delete.txt.
delete_latency() {
    t=$1
    [ $t != linear ] || { echo n/a; return; }
    clean_slate
    grep -q '^configfs ' /proc/modules || insmod /modules/configfs.ko || return 1
    insmod /modules/null_blk.ko nr_devices=1 gb=128 bs=4096 queue_mode=2 irqmode=0 || return 1
    IMPL=$t; . /tests/lib.sh; META=/dev/ram0
    { echo '<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="2097152">'
      echo '  <device dev_id="1" mapped_blocks="1048576" transaction="0" creation_time="0" snap_time="0">'
      echo '    <range_mapping origin_begin="0" data_begin="0" length="1048576" time="0"/>'
      echo '  </device>'
      echo '  <device dev_id="2" mapped_blocks="16384" transaction="0" creation_time="0" snap_time="0">'
      echo '    <range_mapping origin_begin="0" data_begin="1048576" length="16384" time="0"/>'
      echo '  </device>'
      echo '</superblock>'; } > /tmp/del.xml
    thin_restore -i /tmp/del.xml -o $META >/dev/null 2>&1 || return 1
    dmsetup create bpool --table "0 $((2097152 * 128)) $POOL_TARGET $META /dev/nullb0 128 0 1 no_discard_passdown" &&
        dmsetup create bt --table "0 $((16384 * 128)) $THIN_TARGET /dev/mapper/bpool 2" || return 1
    used() { dmsetup status bpool | awk '{print $6}' | cut -d/ -f1; }
    fio --name=d --filename=/dev/mapper/bt --rw=randread --bs=4k --direct=1 --ioengine=psync \
        --runtime=$((RUNTIME + 10)) --time_based --norandommap --output-format=json \
        --percentile_list=99.9 > /tmp/del.json 2>/tmp/fio.err &
    fp=$!
    sleep 3
    t0=$(uptime_cs)
    dmsetup message /dev/mapper/bpool 0 "delete 1" || { wait $fp; echo n/a; return; }
    t1=$(uptime_cs)
    n=0
    while [ "$(used)" -gt 16384 ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n + 1)); done
    t2=$(uptime_cs)
    wait $fp
    awk -F: -v t=$t -v d=$(((t1 - t0) * 10)) -v s=$(((t2 - t0) * 10)) '
        /"read" :/ { r = 1 } /"write" :/ { r = 0 }
        r && /"iops" :/ && iops == "" { gsub(/[ ,]/, "", $2); iops = $2 }
        r && /"99.900000"/ && p == "" { gsub(/[ ,]/, "", $2); p = $2 }
        r && /"lat_ns"/ { l = 1 }
        l && /"max"/ && m == "" { gsub(/[ ,]/, "", $2); m = $2 }
        END { printf "%s %d %d %.1f %.1f\n", t, d, s, m / 1e6, p / 1e6 >> "/tmp/delete.txt"
              printf "%d 0\n", iops }' /tmp/del.json
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
        discard1m)      # 1 MiB discards (16 blocks each) over a filled region
            fill $dev $BIG; fio_run $dev trim 1m --ioengine=psync --iodepth=1 --size=$BIG ;;
        randread4k_j*|overwrite4k_j*)   # N jobs on one region
            n=${w#*_j}; rw=randread; case $w in overwrite*) rw=randwrite ;; esac
            fill $dev; fio_run $dev $rw 4k --time_based --numjobs=$n ;;
        fsync4k_x4)     # four journals on four fresh thins
            make_thins $t 4 >/tmp/thins.out 2>&1 || { cat /tmp/thins.out >&2; echo n/a; return; }
            ms_mark
            $FIO_PREFIX fio --rw=write --bs=4k --direct=1 --ioengine=psync --fsync=1 --runtime="$RUNTIME" \
                --size=64M --output-format=json \
                --name=a --filename=/dev/mapper/bt1 --name=b --filename=/dev/mapper/bt2 \
                --name=c --filename=/dev/mapper/bt3 --name=d --filename=/dev/mapper/bt4 2>/tmp/fio.err |
                awk -F: '/"iops" :/ { gsub(/[ ,]/, "", $2); s += $2 } /"sys_cpu" :/ { gsub(/[ ,]/, "", $2); c = $2 }
                         END { printf "%d %.0f\n", s, c }' ;;
        discard1g)      # a whole filled 1 GiB thin at once
            fill $dev $BIG
            ms_mark; t0=$(uptime_cs); blkdiscard -l $((1024 * 1048576)) $dev >&2 || { echo n/a; return; }; t1=$(uptime_cs)
            echo "$(( 1024 * 100 / (t1 - t0 + 1) )) 0" ;;
        delete1m)
            delete_latency $t 2>/tmp/del.out || { cat /tmp/del.out >&2; echo n/a; } ;;
        bigmeta_randread4k)
            bigmeta $t >/tmp/bigmeta.out 2>&1 || { cat /tmp/bigmeta.out >&2; echo n/a; return; }
            fio_run /dev/mapper/bt randread 4k --time_based --size=128G ;;
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
            rm -f /tmp/ms0
            v=$(run_workload $t $w)
            [ -n "$v" ] || v=n/a
            [ $t = rust ] && v="$v $(map_share)"
            echo "$w $t $v" >> /tmp/bench.txt
            echo "  .. round $r $w on $t: $v (IOPS, fio sys CPU %)"
        done
    done
    r=$((r + 1))
done
dmsetup remove_all >/dev/null 2>&1
dmesg | grep -iE 'error|fail|timed out' | tail -n 5

best() { # best IOPS of W on T, the sys CPU % and deferred share of that run
    awk -v w=$1 -v t=$2 '$1==w && $2==t && $3 != "n/a" && $3+0 > b { b = $3 + 0; c = $4; d = $5 }
        END { if (b > 0) print b, c, (d == "" ? "-" : d); else print "n/a n/a -" }' /tmp/bench.txt
}
ratio() { case "$1$2" in *n/a*) echo n/a ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }' ;; esac; }

echo
echo "BENCH best of $ROUNDS rounds, ${RUNTIME}s per fio job, IOPS (fio sys CPU % of that run)"
echo "BENCH $(nproc) vCPUs; deferred: share of the Rust run's bios that map sent to the worker"
printf 'BENCH %-18s %14s %14s %14s %8s %8s %8s %8s\n' workload dm-linear "C thin" "Rust thin" rust/C rust/lin C/lin deferred
for w in $WORKLOADS; do
    set -- $(best $w linear); l=$1 lc=$2
    set -- $(best $w c); c=$1 cc=$2
    set -- $(best $w rust); rr=$1 rc=$2 rd=$3
    printf 'BENCH %-18s %14s %14s %14s %8s %8s %8s %8s\n' $w "$l ($lc)" "$c ($cc)" "$rr ($rc)" \
        "$(ratio $rr $c)" "$(ratio $rr $l)" "$(ratio $c $l)" "$rd"
done
if [ -s /tmp/delete.txt ]; then
    echo "BENCH DELETE of 1 Mi mappings while thin 2 is read (4k random, iodepth 1), per run:"
    printf 'BENCH DELETE %-6s %12s %14s %14s %14s\n' target "message ms" "space back ms" "read max ms" "read p99.9 ms"
    while read -r t d s m p; do
        printf 'BENCH DELETE %-6s %12s %14s %14s %14s\n' $t $d $s $m $p
    done < /tmp/delete.txt
fi
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
