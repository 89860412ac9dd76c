# With mount -o discard, deleting files returns data blocks to the pool.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 thin1 256
    must mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/thin1
    mkdir -p /mnt/a
    must mount -o discard,noinit_itable /dev/mapper/thin1 /mnt/a
    base=$(pool_used_data pool)
    pattern 7 16384 > /mnt/a/big; sync
    full=$(pool_used_data pool)
    assert_gt $full $((base + 200)) "16 MiB written provisions at least 200 blocks"
    rm /mnt/a/big; sync
    # ext4 issues the discards when the journal commits the free; the pool
    # processes them in its worker. Give both up to 20 seconds.
    for i in $(seq 20); do
        after=$(pool_used_data pool)
        [ $after -lt $((base + 20)) ] && break
        sleep 1
    done
    note "used data blocks: base $base, full $full, after delete $after"
    assert_lt $after $((base + 20)) "blocks returned after delete with -o discard"
}
