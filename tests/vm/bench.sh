#!/bin/sh
# fio workloads on the same RAM-backed devices (brd) against dm-linear (the
# limit), the C thin target and, once its pool engine exists, the Rust one.
# Prints IOPS per workload and target, and each target's ratio to the C one.
. /tests/lib.sh
RUNTIME=${BENCH_RUNTIME:-10}
insmod /modules/brd.ko rd_nr=2 rd_size=524288 max_part=0 || exit 1
META=/dev/ram0 DATA=/dev/ram1
sh /tests/load.sh c || exit 1
sh /tests/load.sh rust || exit 1
WORKLOADS="provision overwrite randread snapshot-cow discard"

fio_iops() { # fio_iops DEV RW BS [extra...]: total IOPS of one run
    dev=$1 rw=$2 bs=$3; shift 3
    fio --name=b --filename="$dev" --rw="$rw" --bs="$bs" --direct=1 --ioengine=libaio \
        --iodepth=16 --runtime="$RUNTIME" --size=128M --randrepeat=1 --norandommap \
        --output-format=json "$@" 2>/dev/null |
        awk -F: '/"iops" :/ { gsub(/[ ,]/, "", $2); s += $2 } END { printf "%d\n", s }'
}
fill() { dd if=/dev/zero of="$1" bs=1M count=128 oflag=direct 2>/dev/null; }

setup_thin() { # setup_thin IMPL: a pool and a 128 MiB thin named bt
    IMPL=$1; . /tests/lib.sh; META=/dev/ram0 DATA=/dev/ram1
    dmsetup remove_all >/dev/null 2>&1
    blkdiscard $DATA 2>/dev/null; wipe_meta
    dmsetup create bpool --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA 128 0 1 skip_block_zeroing" 2>/dev/null || return 1
    dmsetup message /dev/mapper/bpool 0 "create_thin 1" || return 1
    dmsetup create bt --table "0 262144 $THIN_TARGET /dev/mapper/bpool 1" || return 1
}

run_workload() { # run_workload TARGET WORKLOAD
    t=$1 w=$2
    if [ "$t" = linear ]; then
        dmsetup remove_all >/dev/null 2>&1
        dmsetup create bt --table "0 262144 linear /dev/ram1 0" || return 1
        case $w in
            provision|overwrite|snapshot-cow) fio_iops /dev/mapper/bt randwrite 4k ;;
            randread) fill /dev/mapper/bt; fio_iops /dev/mapper/bt randread 4k ;;
            discard) fill /dev/mapper/bt; fio_iops /dev/mapper/bt trim 64k --ioengine=psync --iodepth=1 ;;
        esac
        return
    fi
    setup_thin $t || { echo n/a; return; }
    case $w in
        provision) fio_iops /dev/mapper/bt randwrite 4k ;;
        overwrite) fill /dev/mapper/bt; fio_iops /dev/mapper/bt randwrite 4k ;;
        randread) fill /dev/mapper/bt; fio_iops /dev/mapper/bt randread 4k ;;
        snapshot-cow)
            fill /dev/mapper/bt
            dmsetup suspend bt; dmsetup message /dev/mapper/bpool 0 "create_snap 2 1"; dmsetup resume bt
            dmsetup create bs --table "0 262144 $THIN_TARGET /dev/mapper/bpool 2"
            fio_iops /dev/mapper/bs randwrite 4k ;;
        discard) fill /dev/mapper/bt; fio_iops /dev/mapper/bt trim 64k --ioengine=psync --iodepth=1 ;;
    esac
}

for w in $WORKLOADS; do
    for t in linear c rust; do
        v=$(run_workload $t $w)
        [ -n "$v" ] || v=n/a
        echo "$w $t $v" >> /tmp/bench.txt
        echo "  .. $w on $t: $v IOPS"
    done
done
dmsetup remove_all >/dev/null 2>&1

echo
printf '%-14s %12s %12s %12s %10s %10s\n' workload dm-linear "C thin" "Rust thin" linear/C rust/C
for w in $WORKLOADS; do
    l=$(awk -v w=$w '$1==w && $2=="linear" {print $3}' /tmp/bench.txt)
    c=$(awk -v w=$w '$1==w && $2=="c" {print $3}' /tmp/bench.txt)
    r=$(awk -v w=$w '$1==w && $2=="rust" {print $3}' /tmp/bench.txt)
    ratio() { case "$1$2" in *n/a*|*-*) echo n/a ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }' ;; esac; }
    printf '%-14s %12s %12s %12s %10s %10s\n' $w $l $c $r "$(ratio $l $c)" "$(ratio $r $c)"
done
echo "(Rust thin: n/a while its pool engine is not built; IOPS under QEMU, compare ratios only)"
