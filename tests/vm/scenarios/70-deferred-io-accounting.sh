# Deferred bios are accounted on the thin's dm device as C's issue() does
# (dm_submit_bio_remap): writes that provision new blocks are all deferred
# to the pool's worker; with the data device slowed to 200 ms per write,
# /sys/block/dm-N/inflight shows them in flight while they are below, the
# stat file shows their writes, write ticks and io_ticks after, and the
# in-flight count is back to 0 once they are done.
APPLIES="c rust"
# stat_field SYSDIR N: field N of a block device's stat file.
stat_field() { awk -v f="$2" '{print $f}' "$1/stat"; }
# inflight SYSDIR: "READS WRITES" in flight.
inflight() { awk '{print $1, $2}' "$1/inflight"; }
main() {
    grep -q '^dm_delay ' /proc/modules || must insmod /modules/dm-delay.ko
    raw=$DATA
    must dmsetup create slowdata --table "0 $(sectors $raw) delay $raw 0 0 $raw 0 200"
    DATA=/dev/mapper/slowdata
    pool_create pool
    thin_create pool 1 thin1 64
    dm=/sys/dev/block/$(maj_min /dev/mapper/thin1)
    assert_eq "$(inflight "$dm")" "0 0" "in flight before"
    w0=$(stat_field "$dm" 5)
    pattern 70 1024 > /tmp/p70
    # 16 whole-block writes, one after the other, each a new block.
    dd if=/tmp/p70 of=/dev/mapper/thin1 bs=65536 count=16 oflag=direct 2>/tmp/dd.err &
    ddpid=$!
    max=0
    while kill -0 $ddpid 2>/dev/null; do
        n=$(awk '{print $2}' "$dm/inflight")
        [ "$n" -gt "$max" ] && max=$n
        sleep 0.05
    done
    wait $ddpid || fail "provisioning writes: $(cat /tmp/dd.err)"
    note "most writes seen in flight: $max"
    assert_gt "$max" 0 "deferred writes counted in flight while below"
    assert_eq "$(inflight "$dm")" "0 0" "in flight after"
    assert_eq "$(stat_field "$dm" 9)" "0" "stat in_flight after"
    writes=$(( $(stat_field "$dm" 5) - w0 ))
    assert_le 16 "$writes" "writes completed"
    wticks=$(stat_field "$dm" 8)
    ioticks=$(stat_field "$dm" 10)
    note "write ticks ${wticks} ms, io_ticks ${ioticks} ms"
    assert_gt "$wticks" 1600 "write ticks cover 16 writes of 200 ms"
    assert_gt "$ioticks" 1600 "io_ticks cover 16 writes of 200 ms"
    assert_eq "$(thin_mapped_sectors thin1)" "$((16 * BLOCK_SECTORS))" "blocks provisioned"
    assert_eq "$(sum_range /dev/mapper/thin1 1024 0)" "$(pattern_sum 70 1024)" "data read back"
}
