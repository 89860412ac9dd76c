# Two thins on a 256-block pool write, check and discard their regions at
# the same time, round after round, with passdown on: blocks one thin
# discards are soon provisioned by the other, so a passdown discard that
# reached a block after its reuse would show as lost data. Every read-back
# matches what was written, the usage returns to zero, and the metadata
# checks clean.
APPLIES="c rust"
SLOW="c"
churn() { # churn THIN SEED0: 8 rounds of write 96 blocks, check, discard
    local t=/dev/mapper/$1 seed r
    for r in 1 2 3 4 5 6 7 8; do
        seed=$(($2 + r))
        pattern $seed 6144 | dd of=$t bs=65536 oflag=direct 2>/dev/null || { echo "write $1 round $r" >> /tmp/churn.err; return; }
        [ "$(sum_range $t 6144 0)" = "$(pattern_sum $seed 6144)" ] || echo "$1 round $r: data differs" >> /tmp/churn.err
        blkdiscard $t || echo "discard $1 round $r" >> /tmp/churn.err
    done
}
main() {
    raw=$DATA
    must dmsetup create data --table "0 32768 linear $raw 0"        # 256 blocks
    DATA=/dev/mapper/data
    pool_create pool
    thin_create pool 1 t1 6
    thin_create pool 2 t2 6
    rm -f /tmp/churn.err
    d0=$(discard_sectors $DATA)
    churn t1 3300 & a=$!
    churn t2 3400 & b=$!
    wait $a $b
    [ -s /tmp/churn.err ] && fail "$(cat /tmp/churn.err)"
    note "data device discarded sectors: $d0 -> $(discard_sectors $DATA)"
    assert_eq "$(discard_sectors $DATA)" "$((d0 + 16 * 6144 * 2))" "every freed block passed down"
    assert_eq "$(thin_mapped_sectors t1) $(thin_mapped_sectors t2)" "0 0" "thins empty after the last discard"
    assert_eq "$(pool_used_data pool)" "0" "every block back in the pool"
    must dmsetup remove t1
    must dmsetup remove t2
    must dmsetup remove pool
    check_metadata $META
    must dmsetup remove data
}
