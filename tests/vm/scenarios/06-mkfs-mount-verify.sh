# mkfs.ext4 on a thin, mount -o discard, files verified by checksum across a remount.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 thin1 256
    must mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 /dev/mapper/thin1
    mkdir -p /mnt/a
    must mount -o discard,noinit_itable /dev/mapper/thin1 /mnt/a
    for i in 1 2 3 4; do pattern $i $((i * 512)) > /mnt/a/f$i; done
    sync
    for i in 1 2 3 4; do sha256sum /mnt/a/f$i | cut -d' ' -f1 > /tmp/sum$i; done
    must umount /mnt/a
    must dmsetup remove thin1
    thin_activate pool 1 thin1 256
    must mount -o discard,noinit_itable /dev/mapper/thin1 /mnt/a
    for i in 1 2 3 4; do
        assert_eq "$(sha256sum /mnt/a/f$i | cut -d' ' -f1)" "$(pattern_sum $i $((i * 512)))" "file f$i after remount"
    done
    must umount /mnt/a
    must e2fsck -fn /dev/mapper/thin1 >/dev/null
}
