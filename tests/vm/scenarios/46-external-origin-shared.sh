# One read-only external origin under two thins: each reads the origin,
# writes its own blocks (whole, partial, past the origin's end, and the
# same blocks at the same time), neither sees the other's writes, the
# origin is never written; a thin reactivated keeps its data.
APPLIES="c rust"
main() {
    # A 2 MiB origin (32 blocks) under two 4 MiB thins.
    must dmsetup create origin --table "0 4096 linear $DATA2 0"
    write_pattern /dev/mapper/origin 460 2048 0
    must blockdev --setro /dev/mapper/origin
    osum=$(sum_range /dev/mapper/origin 2048 0)
    dd if=/dev/mapper/origin bs=65536 count=32 2>/dev/null > /tmp/origin.img
    dd if=/dev/zero bs=65536 count=32 2>/dev/null >> /tmp/origin.img
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    must dmsetup message pool 0 "create_thin 2"
    for i in 1 2; do
        must dmsetup create ext$i --table "0 8192 $THIN_TARGET /dev/mapper/pool $i /dev/mapper/origin"
        assert_eq "$(sum_range /dev/mapper/ext$i 4096 0)" "$(sha256sum < /tmp/origin.img | cut -d' ' -f1)" "ext$i reads the origin (zeroes past its end)"
        cp /tmp/origin.img /tmp/expect$i
    done
    assert_eq "$(pool_used_data pool)" "0" "reads provision nothing"

    # put I SEED KIB OFFSET_KIB: write to ext I and to its expected image.
    put() {
        write_pattern /dev/mapper/ext$1 $2 $3 $4
        pattern $2 $3 | dd of=/tmp/expect$1 bs=1024 seek=$4 conv=notrunc 2>/dev/null
    }
    put 1 461 64 192            # ext1: whole block 3
    put 1 462 4 1028            # ext1: 4 KiB inside block 16
    put 2 463 64 320            # ext2: whole block 5
    put 2 464 4 200             # ext2: 4 KiB inside block 3 (ext1 wrote all of it)
    put 2 465 128 2560          # ext2: blocks 40-41, past the origin's end
    # Both thins write block 8 at the same time.
    pattern 466 64 | dd of=/dev/mapper/ext1 bs=65536 seek=8 oflag=direct 2>/dev/null &
    p1=$!
    pattern 467 64 | dd of=/dev/mapper/ext2 bs=65536 seek=8 oflag=direct 2>/dev/null &
    p2=$!
    wait $p1 || fail "concurrent write to ext1"
    wait $p2 || fail "concurrent write to ext2"
    pattern 466 64 | dd of=/tmp/expect1 bs=1024 seek=512 conv=notrunc 2>/dev/null
    pattern 467 64 | dd of=/tmp/expect2 bs=1024 seek=512 conv=notrunc 2>/dev/null
    for i in 1 2; do
        assert_eq "$(sum_range /dev/mapper/ext$i 4096 0)" "$(sha256sum < /tmp/expect$i | cut -d' ' -f1)" "ext$i sees its own writes only"
    done
    assert_eq "$(sum_range /dev/mapper/origin 2048 0)" "$osum" "origin unchanged"
    # ext1: blocks 3, 16, 8; ext2: 5, 3, 40, 41, 8.
    assert_eq "$(thin_mapped_sectors ext1) $(thin_mapped_sectors ext2)" "$((3 * 128)) $((5 * 128))" "mapped sectors per thin"
    assert_eq "$(pool_used_data pool)" "8" "pool blocks used"

    # ext1 removed and reactivated: both still right.
    must dmsetup remove ext1
    assert_eq "$(sum_range /dev/mapper/ext2 4096 0)" "$(sha256sum < /tmp/expect2 | cut -d' ' -f1)" "ext2 with ext1 gone"
    must dmsetup create ext1 --table "0 8192 $THIN_TARGET /dev/mapper/pool 1 /dev/mapper/origin"
    assert_eq "$(sum_range /dev/mapper/ext1 4096 0)" "$(sha256sum < /tmp/expect1 | cut -d' ' -f1)" "ext1 after reactivation"
    assert_eq "$(sum_range /dev/mapper/origin 2048 0)" "$osum" "origin still unchanged"
    must dmsetup remove ext1; must dmsetup remove ext2
    must dmsetup remove pool
    must blockdev --setrw /dev/mapper/origin
    must dmsetup remove origin
}
