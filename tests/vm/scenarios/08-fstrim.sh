# fstrim on a filesystem mounted without discard returns deleted files' blocks.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 thin1 256
    must mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/thin1
    mkdir -p /mnt/a
    must mount -o noinit_itable /dev/mapper/thin1 /mnt/a
    pattern 8 16384 > /mnt/a/big; pattern 9 1024 > /mnt/a/keep; sync
    full=$(pool_used_data pool)
    rm /mnt/a/big; sync
    assert_eq "$(pool_used_data pool)" "$full" "no discard before fstrim"
    must fstrim /mnt/a
    after=$(pool_used_data pool)
    note "used data blocks: full $full, after fstrim $after"
    assert_lt $after $((full - 200)) "fstrim returned the deleted file's blocks"
    assert_eq "$(sha256sum /mnt/a/keep | cut -d' ' -f1)" "$(pattern_sum 9 1024)" "kept file intact"
}
