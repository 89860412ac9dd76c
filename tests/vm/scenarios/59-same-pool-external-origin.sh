# Issue 16, defect 2: a thin whose external origin is another thin of the
# same pool (C allows it, and runs it). Thin 1 holds a pattern in blocks
# 0-31 and nothing in 32-63 (reads of those go through the pool's worker);
# thin 2 is activated over the origin /dev/mapper/t1. For a bounded time,
# in parallel (seeded, reproducible op sequences):
# - reads of random blocks 0-47 of thin 2, each checked against what the
#   block may hold (the origin's block, or it with the writer's 4 KiB chunk);
# - 4 KiB writes into blocks 16-47 of thin 2 (each block always gets the
#   same chunk at the same place: provisioning copies the rest from the origin);
# - whole-block discards of blocks 16-63 of thin 2 (a discarded block of a
#   thin with an external origin reads the origin again);
# - load, unchecked: fio random reads of blocks 16-47 and random 4 KiB reads
#   and writes of blocks 48-63 (queued, libaio).
# Everything must end within a deadline (a pool that waits on its own origin
# reads hangs here); afterwards blocks 0-15 read the origin, every block of
# 16-47 reads either the origin or the origin with its chunk, the origin is
# unchanged, and the metadata is clean (the harness's thin_check).
APPLIES="c rust"
RUN_SECS=${DMRS_STRESS_SECS:-12}
BLOCKS=64
FIRST_W=16                                 # blocks FIRST_W.. are written and discarded
CHECKED=48                                 # blocks 0..CHECKED-1 have known contents
# The writer puts chunk B % 16 (4 KiB) of block B, always the same data.
blk_sum() { dd if="$1" bs=65536 skip="$2" count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
# ok_block B SUM: SUM is one of the two allowed contents of thin 2's block B
# (O_B: the origin's block; W_B: it with the writer's chunk).
ok_block() {
    eval "[ \"\$2\" = \"\$O_$1\" ] || [ \"\$2\" = \"\${W_$1:-none}\" ]"
}
reader() {
    local n=0 bad=0 s
    RND=59001
    while [ "$(uptime_cs)" -lt "$END" ]; do
        rnd $CHECKED; s=$(blk_sum /dev/mapper/t2 $R) || { echo "read of block $R failed"; return 1; }
        ok_block $R "$s" || { bad=$((bad + 1)); echo "block $R read $s"; }
        n=$((n + 1))
    done
    echo "reads: $n, unexpected: $bad"
    [ $bad = 0 ]
}
writer() {
    local n=0 b
    RND=59002
    while [ "$(uptime_cs)" -lt "$END" ]; do
        rnd $((CHECKED - FIRST_W)); b=$((FIRST_W + R))
        dd if=/tmp/59/chunk.$b of=/dev/mapper/t2 bs=4096 seek=$((b * 16 + $((b % 16)))) count=1 \
            oflag=direct conv=notrunc 2>/dev/null || { echo "write to block $b failed"; return 1; }
        n=$((n + 1))
    done
    echo "writes: $n"
}
discarder() {
    local n=0 b len
    RND=59003
    while [ "$(uptime_cs)" -lt "$END" ]; do
        rnd $((BLOCKS - FIRST_W)); b=$((FIRST_W + R)); rnd 3; len=$((R + 1))
        [ $((b + len)) -le $BLOCKS ] || len=$((BLOCKS - b))
        blkdiscard -o $((b * 65536)) -l $((len * 65536)) /dev/mapper/t2 || { echo "discard of $len at $b failed"; return 1; }
        n=$((n + 1))
    done
    echo "discards: $n"
}
fio_load() { # fio_load NAME RW OFFSET_BLOCKS BLOCKS
    fio --name=$1 --filename=/dev/mapper/t2 --rw=$2 --bs=4k --offset=$(($3 * 65536)) --size=$(($4 * 65536)) \
        --direct=1 --ioengine=libaio --iodepth=16 --time_based --runtime=$RUN_SECS --randseed=5904 \
        >/tmp/59/$1.out 2>&1 || { tail -n 5 /tmp/59/$1.out; return 1; }
    echo "$1: $(grep -o 'issued rwts: total=[0-9]*,[0-9]*' /tmp/59/$1.out)"
}
main() {
    t_start=$(uptime_cs)
    pool_create pool
    thin_create pool 1 t1 4
    write_pattern /dev/mapper/t1 590 2048 0
    must blockdev --setro /dev/mapper/t1
    must dmsetup message pool 0 "create_thin 2"
    must dmsetup create t2 --table "0 8192 $THIN_TARGET /dev/mapper/pool 2 /dev/mapper/t1"
    assert_eq "$(dmsetup table t2 | awk '{print $6}')" "$(maj_min /dev/mapper/t1)" "thin 2's origin is thin 1"
    osum=$(dev_sum /dev/mapper/t1)
    assert_eq "$(dev_sum /dev/mapper/t2)" "$osum" "before the run, thin 2 reads its origin"
    # The allowed contents of every block, in O_B and W_B.
    rm -rf /tmp/59; mkdir -p /tmp/59
    dd if=/dev/mapper/t1 of=/tmp/59/origin bs=65536 iflag=direct 2>/dev/null
    b=0
    while [ $b -lt $CHECKED ]; do
        dd if=/tmp/59/origin of=/tmp/59/blk bs=65536 skip=$b count=1 2>/dev/null
        eval "O_$b=$(sha256sum < /tmp/59/blk | cut -d' ' -f1)"
        if [ $b -ge $FIRST_W ]; then
            pattern $((5900 + b)) 4 > /tmp/59/chunk.$b
            dd if=/tmp/59/chunk.$b of=/tmp/59/blk bs=4096 seek=$((b % 16)) conv=notrunc 2>/dev/null
            eval "W_$b=$(sha256sum < /tmp/59/blk | cut -d' ' -f1)"
        fi
        b=$((b + 1))
    done
    assert_eq "$O_40" "$(zero_sum 64)" "thin 1's block 40 is unprovisioned (zeroes)"

    END=$(( $(uptime_cs) + RUN_SECS * 100 ))
    bg_start reader reader
    bg_start writer writer
    bg_start discarder discarder
    bg_start fioread fio_load fioread randread $FIRST_W $((CHECKED - FIRST_W))
    bg_start fiorw fio_load fiorw randrw $CHECKED $((BLOCKS - CHECKED))
    for j in reader writer discarder fioread fiorw; do
        if ! bg_wait $j $((RUN_SECS + 40)); then
            note "pool: $(dmsetup status pool)"
            hung_fail "$j has not ended $((RUN_SECS + 40)) s after the start of a ${RUN_SECS} s run (a same-pool origin read waits on its own pool?)"
        fi
    done
    for j in reader writer discarder fioread fiorw; do
        note "$j: $(tail -n 1 /tmp/bg.$j.out)"
        [ "$(bg_rc $j)" = 0 ] || { head -n 5 /tmp/bg.$j.out; fail "$j failed"; }
    done
    note "pool: $(dmsetup status pool); thin 2: $(dmsetup status t2)"

    # Every block's final content is one of its allowed ones.
    b=0 written=0
    while [ $b -lt $CHECKED ]; do
        s=$(blk_sum /dev/mapper/t2 $b)
        ok_block $b "$s" || fail "after the run: block $b of thin 2 holds neither the origin's data nor the origin with its written chunk"
        eval "[ \"\$s\" = \"\${W_$b:-none}\" ]" && written=$((written + 1))
        b=$((b + 1))
    done
    note "blocks holding a written chunk: $written; mapped in thin 2: $(( $(thin_mapped_sectors t2) / BLOCK_SECTORS ))"
    assert_eq "$(dev_sum /dev/mapper/t1)" "$osum" "the origin (thin 1) is unchanged"
    bounded 20 dmsetup remove t2 || hung_fail "dmsetup remove t2 (rc $?)"
    must blockdev --setrw /dev/mapper/t1
    must dmsetup remove t1
    must dmsetup remove pool
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
