# A low water mark of 16 blocks on a 64-block pool: `dmsetup wait` wakes
# when a write finds free blocks at the mark (C checks before allocating, so
# the 49th block raises it), the event count rises once, further writes
# raise no more events; a reload rearms it.
APPLIES="c rust"
blocks() { # blocks FIRST COUNT SEED: COUNT blocks of pattern SEED from block FIRST
    pattern "$3" $(($2 * 64)) | dd of=/dev/mapper/t1 bs=65536 seek="$1" oflag=direct 2>/dev/null || fail "write blocks $1+$2"
}
main() {
    raw=$DATA
    must dmsetup create data --table "0 8192 linear $raw 0"         # 64 blocks
    DATA=/dev/mapper/data
    must dmsetup create pool --table "$(pool_line_on $META $DATA 16)"
    assert_eq "$(dmsetup table pool | awk '{print $7}')" "16" "low water mark in the table"
    thin_create pool 1 t1 16
    e0=$(event_nr pool)
    case "$e0" in ""|*[!0-9]*) fail "no event number: $(dmsetup info pool)" ;; esac
    blocks 0 40 430
    assert_eq "$(pool_used_data pool)" "40" "40 blocks used"
    assert_eq "$(event_nr pool)" "$e0" "no event above the mark"
    dmsetup wait pool "$e0" >/tmp/wait.out 2>&1 &
    waiter=$!
    echo "$waiter" > /tmp/waiter.pid
    blocks 40 8 431                                               # 48 used, 16 free
    sleep 1
    kill -0 $waiter 2>/dev/null || fail "dmsetup wait returned at 48 used (16 free, the check precedes allocation): $(cat /tmp/wait.out)"
    assert_eq "$(event_nr pool)" "$e0" "no event before a write finds 16 free"
    blocks 48 1 432                                               # finds 16 free
    wait_for 10 sh -c "! kill -0 $waiter 2>/dev/null" || { kill $waiter; fail "dmsetup wait did not wake at the low water mark"; }
    wait $waiter || fail "dmsetup wait failed: $(cat /tmp/wait.out)"
    assert_eq "$(event_nr pool)" "$((e0 + 1))" "one event at the mark"
    logged "reached low water mark for data device: sending event."
    assert_eq "$(pool_mode pool)" "rw" "still rw at the mark"
    blocks 49 8 433
    assert_eq "$(event_nr pool)" "$((e0 + 1))" "no second event below the mark"
    assert_eq "$(dmesg | grep -c 'reached low water mark for data device')" "1" "one log line"
    # A reload (here: grow to 128 blocks) rearms it; 71 free is above the mark.
    relinear data 16384 $raw
    pool_reload pool $META $DATA 16
    e1=$(event_nr pool)
    blocks 57 8 434
    assert_eq "$(event_nr pool)" "$e1" "no event above the mark after the grow"
    # Down to the mark again: 128 - 112 = 16 free when the 113th block is allocated.
    blocks 65 47 435
    assert_eq "$(event_nr pool)" "$e1" "no event at 112 used"
    blocks 112 1 436
    assert_eq "$(event_nr pool)" "$((e1 + 1))" "the rearmed mark raises one event"
    for s in 0:40:430 40:8:431 48:1:432 49:8:433 57:8:434 65:47:435 112:1:436; do
        IFS=: read f c seed <<X
$s
X
        assert_eq "$(sum_range /dev/mapper/t1 $((c * 64)) $((f * 64)))" "$(pattern_sum $seed $((c * 64)))" "blocks $f+$c"
    done
    must dmsetup remove t1; must dmsetup remove pool
}
