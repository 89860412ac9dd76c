# The stats counters in debugfs (dm_thin_rs/<pool major:minor>/stats,
# issue 18): `map` counts what it remapped or answered as zeroes and, per
# reason, what it deferred to the worker. Reads of unprovisioned blocks of a
# thin without an origin are answered in `map` (zeroes, nothing deferred);
# with an external origin they go to the worker. Writes to new blocks are
# deferred as provisioning, flushes after them as special (they wait for
# the commit), flushes with nothing to commit are sent down in map
# (`flushed`), and reads of mapped blocks are remapped. A bio that finds the pool lock held (the worker's commit, say) or needs
# metadata I/O is deferred for that reason instead, so the counts of the
# bios of one kind are checked together with those two: every bio lands in
# exactly one counter. The file goes with the pool.
APPLIES="rust"
ms() { awk -v k="$1" '$1 == k { print $2 }' "$F"; }
# msum K...: the sum of counters K..., plus contended and cache_miss.
msum() { local t=0 k; for k in "$@" contended cache_miss; do t=$((t + $(ms $k))); done; echo $t; }
main() {
    debugfs_mount
    pool_create pool
    F=/sys/kernel/debug/dm_thin_rs/$(maj_min /dev/mapper/pool)/stats
    [ -r "$F" ] || fail "no $F"
    thin_create pool 1 t1 64
    # 32 reads of unprovisioned blocks: zeroes, answered in map once the
    # metadata they need is cached (the first pass warms it).
    sum_range /dev/mapper/t1 2048 0 >/dev/null
    z0=$(msum zeroed) u0=$(ms unmapped_read) zz=$(ms zeroed)
    assert_eq "$(sum_range /dev/mapper/t1 2048 0)" "$(zero_sum 2048)" "unprovisioned blocks read as zeroes"
    assert_le $((z0 + 32)) "$(msum zeroed)" "unprovisioned reads answered in map"
    assert_gt "$(ms zeroed)" "$zz" "unprovisioned reads answered in map as zeroes"
    assert_eq "$(ms unmapped_read)" "$u0" "unprovisioned reads deferred"
    p0=$(msum provision) pp=$(ms provision) s0=$(ms special)
    # 16 whole-block writes to new blocks, then a flush.
    pattern 71 1024 > /tmp/p71
    dd if=/tmp/p71 of=/dev/mapper/t1 bs=65536 count=16 oflag=direct 2>/dev/null || fail "writes"
    must sync /dev/mapper/t1
    blockdev --flushbufs /dev/mapper/t1
    assert_le $((p0 + 16)) "$(msum provision)" "writes to new blocks deferred as provisioning"
    assert_gt "$(ms provision)" "$pp" "writes to new blocks deferred as provisioning"
    assert_gt "$(ms special)" "$s0" "flushes deferred as special"
    # The sync committed the writes: a flush of a thin with nothing left to
    # commit goes to the data device from map, not through the worker.
    f0=$(ms flushed) s0=$(ms special)
    for i in 1 2 3 4; do must sync /dev/mapper/t1; done
    assert_gt "$(ms flushed)" "$f0" "flushes of a thin with nothing to commit sent down in map"
    assert_eq "$(ms special)" "$s0" "flushes of a thin with nothing to commit deferred"
    r0=$(msum remapped) rr=$(ms remapped)
    assert_eq "$(sum_range /dev/mapper/t1 1024 0)" "$(pattern_sum 71 1024)" "written blocks read back"
    assert_le $((r0 + 16)) "$(msum remapped)" "reads of mapped blocks remapped in map"
    assert_gt "$(ms remapped)" "$rr" "reads of mapped blocks remapped in map"
    # A thin with an external origin: its unprovisioned reads go to the worker.
    must dmsetup create origin --table "0 8192 linear $DATA2 0"
    write_pattern /dev/mapper/origin 72 4096 0
    must dmsetup message /dev/mapper/pool 0 "create_thin 2"
    must dmsetup create t2 --table "0 8192 $THIN_TARGET /dev/mapper/pool 2 /dev/mapper/origin"
    sum_range /dev/mapper/t2 1024 0 >/dev/null
    u0=$(msum unmapped_read) z0=$(ms zeroed)
    assert_eq "$(sum_range /dev/mapper/t2 1024 0)" "$(part_sum 72 4096 0 1024)" "origin read through"
    assert_le $((u0 + 16)) "$(msum unmapped_read)" "origin reads deferred"
    assert_eq "$(ms zeroed)" "$z0" "origin reads answered as zeroes"
    total=$(ms total) deferred=$(ms deferred)
    note "stats: $(tr '\n' ' ' < "$F")"
    assert_gt "$total" "$deferred" "total counts more than the deferred"
    must dmsetup remove t2; must dmsetup remove origin; must dmsetup remove t1; must dmsetup remove pool
    [ ! -e "$F" ] || fail "$F still there after the pool went"
}
