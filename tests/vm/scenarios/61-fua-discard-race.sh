# Issue 16, defect 4: a FUA write parked for the commit must count as I/O in
# flight on its block from the moment it is parked (C: inc_all_io_entry
# before the bio goes on deferred_flush_bios); otherwise a discard of the same
# block in the same worker run frees it, the commit makes it allocatable, the
# allocator hands it to another thin, and the stale write lands in that
# thin's data. A bounded, seeded stress on a small, nearly full pool (40
# blocks of 64 KiB):
# - thin B (16 blocks, filled first): fio FUA writers (O_DIRECT|O_SYNC, 4 KiB
#   random, queued) and whole-block discards of random ranges, both on the
#   same blocks, for RUN_SECS;
# - thin A (16 blocks): rounds of write 1 MiB (provisioning, from the blocks
#   B's discards free; one of 4 prepared images, dd O_DIRECT), check its
#   sha256, check it again after a pause, discard all of A: a stale write of
#   B landing in A's blocks fails a check.
# Afterwards, with the churn stopped, the data written last: A and B written
# once more by fio and fio-verified after a pause; metadata clean (the
# harness's thin_check), no kernel report.
APPLIES="c rust"
RUN_SECS=${DMRS_STRESS_SECS:-12}
a_round() { # a_round SEED ARGS...: fio's write+verify (or verify only) of all of thin A
    local seed=$1; shift
    fio --name=a$seed --filename=/dev/mapper/tA --rw=write --bs=64k --size=1M --direct=1 \
        --ioengine=psync --verify=crc32c --randseed=$seed "$@" >/tmp/61.a.out 2>&1
}
a_loop() {
    local r=0 k s
    while [ "$(uptime_cs)" -lt "$END" ]; do
        r=$((r + 1)) k=$((r % 4))
        dd if=/tmp/61/a.$k of=/dev/mapper/tA bs=65536 oflag=direct 2>/dev/null || { echo "round $r: write of A failed"; return 1; }
        eval "s=\$A_$k"
        [ "$(dev_sum /dev/mapper/tA)" = "$s" ] || { echo "round $r: A differs from what was written"; return 1; }
        sleep 0.3
        [ "$(dev_sum /dev/mapper/tA)" = "$s" ] || { echo "round $r: A differs from what was written after a pause"; return 1; }
        blkdiscard /dev/mapper/tA || { echo "round $r: discard of A failed"; return 1; }
    done
    echo "A rounds: $r"
}
b_fua() {
    fio --name=bfua --filename=/dev/mapper/tB --rw=randwrite --bs=4k --size=1M --direct=1 --sync=1 \
        --ioengine=libaio --iodepth=8 --time_based --runtime=$RUN_SECS --randseed=6101 \
        --group_reporting >/tmp/61.b.out 2>&1 || { tail -n 8 /tmp/61.b.out; echo "B's FUA writers failed"; return 1; }
    echo "B FUA writes: $(grep -o 'issued rwts: total=[0-9]*,[0-9]*' /tmp/61.b.out)"
}
b_discard() {
    local n=0 b len
    RND=6102
    while [ "$(uptime_cs)" -lt "$END" ]; do
        rnd 16; b=$R; rnd 4; len=$((R + 1))
        [ $((b + len)) -le 16 ] || len=$((16 - b))
        blkdiscard -o $((b * 65536)) -l $((len * 65536)) /dev/mapper/tB || { echo "discard of $len at $b failed"; return 1; }
        n=$((n + 1))
    done
    echo "B discards: $n"
}
main() {
    t_start=$(uptime_cs)
    rm -rf /tmp/61; mkdir -p /tmp/61
    for k in 0 1 2 3; do
        pattern $((6110 + k)) 1024 > /tmp/61/a.$k
        eval "A_$k=$(sha256sum < /tmp/61/a.$k | cut -d' ' -f1)"
    done
    raw=$DATA
    must dmsetup create small --table "0 5120 linear $raw 0"        # 40 blocks
    DATA=/dev/mapper/small
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup create tB --table "0 2048 $THIN_TARGET /dev/mapper/pool 1"
    must dmsetup create tA --table "0 2048 $THIN_TARGET /dev/mapper/pool 2"
    write_pattern /dev/mapper/tB 610 1024 0
    q=/sys/dev/block/$(maj_min /dev/mapper/tB)/queue
    note "thin queue: fua=$(cat $q/fua 2>/dev/null) write_cache=$(cat $q/write_cache 2>/dev/null)"
    grep -q "write back" $q/write_cache || fail "the thin has no write cache: O_SYNC writes would carry no FUA"

    END=$(( $(uptime_cs) + RUN_SECS * 100 ))
    bg_start a a_loop
    bg_start bfua b_fua
    bg_start bdisc b_discard
    for j in a bfua bdisc; do
        bg_wait $j $((RUN_SECS + 60)) || hung_fail "$j has not ended $((RUN_SECS + 60)) s after the start of a ${RUN_SECS} s run"
    done
    for j in a bfua bdisc; do
        note "$(tail -n 1 /tmp/bg.$j.out)"
        [ "$(bg_rc $j)" = 0 ] || { cat /tmp/bg.$j.out | tail -n 10; fail "$j failed"; }
    done
    note "pool after the run: $(dmsetup status pool)"
    # The data written last: A and all of B once more, verified after a pause.
    a_round 6199 --do_verify=1 || { tail -n 8 /tmp/61.a.out; fail "final write+verify of A"; }
    fio --name=bfinal --filename=/dev/mapper/tB --rw=write --bs=16k --size=1M --direct=1 --sync=1 \
        --ioengine=libaio --iodepth=4 --verify=crc32c --randseed=6198 --do_verify=0 >/tmp/61.bf.out 2>&1 \
        || { tail -n 8 /tmp/61.bf.out; fail "final write of B"; }
    sleep 1
    a_round 6199 --verify_only=1 || { tail -n 8 /tmp/61.a.out; fail "final verify of A"; }
    fio --name=bfinal --filename=/dev/mapper/tB --rw=write --bs=16k --size=1M --direct=1 \
        --ioengine=psync --verify=crc32c --randseed=6198 --verify_only=1 >/tmp/61.bf.out 2>&1 \
        || { tail -n 8 /tmp/61.bf.out; fail "final verify of B"; }
    set -- $(dmsetup status pool)
    assert_eq "$6 $8" "32/40 rw" "pool after the final writes"
    must dmsetup remove tA; must dmsetup remove tB
    must dmsetup remove pool
    must dmsetup remove small
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
