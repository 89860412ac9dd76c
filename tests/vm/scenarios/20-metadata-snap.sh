# reserve_metadata_snap shows a held root; thin_dump -m reads it; release clears it.
APPLIES="c rust"
main() {
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 101 512 0
    must dmsetup message pool 0 reserve_metadata_snap
    held=$(pool_field pool 7)
    [ "$held" != "-" ] || fail "no held root after reserve_metadata_snap"
    must_fail dmsetup message pool 0 reserve_metadata_snap
    thin_dump -m "$held" $META > /tmp/dump.xml 2>/dev/null || thin_dump -m $META > /tmp/dump.xml || fail "thin_dump -m"
    grep -q 'dev_id="1"' /tmp/dump.xml || fail "device 1 missing in the metadata snapshot"
    must dmsetup message pool 0 release_metadata_snap
    assert_eq "$(pool_field pool 7)" "-" "held root released"
}
