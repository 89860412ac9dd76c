# The same messages, good and bad, sent to a fresh C pool (META/DATA) and a
# fresh dm_thin_rs.ko pool (META2/DATA2) in lockstep: after every step both
# give the same result, the same dmsetup error, the same status line (all but
# the target name), and in the end thin_dump prints the same metadata.
# Runs under IMPL=rust with the C module loaded beside it (other target names).
# APPLIES="" until rthin-pool opens pools (then "rust").
APPLIES="rust"
C_POOL=thin-pool R_POOL=rthin-pool
dump_snapshots() { # the metadata snapshots of both live pools read the same
    thin_dump -m $META > /tmp/c-snap.xml || fail "thin_dump -m of the C pool"
    thin_dump -m $META2 > /tmp/r-snap.xml || fail "thin_dump -m of the $R_POOL pool"
    grep -q 'dev_id="4"' /tmp/c-snap.xml || fail "device 4 missing in the C snapshot"
    grep -q 'dev_id="8"' /tmp/c-snap.xml && fail "device 8 (made after reserve) in the C snapshot"
    if ! cmp -s /tmp/c-snap.xml /tmp/r-snap.xml; then
        diff /tmp/c-snap.xml /tmp/r-snap.xml
        fail "thin_dump -m differs between $C_POOL and $R_POOL"
    fi
    note "metadata snapshots read the same"
}
step() { # step MESSAGE: send to both pools, compare everything visible
    dmsetup message cpool 0 "$1" 2>/tmp/c.err; crc=$?
    dmsetup message rpool 0 "$1" 2>/tmp/r.err; rrc=$?
    assert_eq "$rrc" "$crc" "exit code of '$1'"
    assert_eq "$(sed 's/rpool/POOL/g' /tmp/r.err)" "$(sed 's/cpool/POOL/g' /tmp/c.err)" "dmsetup error of '$1'"
    cs=$(pool_status_body cpool); rs=$(pool_status_body rpool)
    assert_eq "$rs" "$cs" "status after '$1'"
    note "$1 -> rc $crc: $cs"
    steps=$((steps + 1))
}
main() {
    steps=0
    must sh /tests/load.sh c
    pool_create_on $C_POOL cpool $META $DATA
    pool_create_on $R_POOL rpool $META2 $DATA2
    assert_eq "$(pool_status_body rpool)" "$(pool_status_body cpool)" "fresh pool status"
    for m in "create_thin 1" "create_thin 2" "create_thin 2" "create_snap 3 1" \
             "create_snap 4 3" "create_snap 6 9" "create_snap 4 1" "delete 2" "delete 2" \
             "delete 7" "create_thin" "create_thin x" "create_thin 16777216" \
             "set_transaction_id 1 5" "set_transaction_id 0 5" "set_transaction_id 0 6" \
             "set_transaction_id 5" "frobnicate 1" "release_metadata_snap" \
             "reserve_metadata_snap" "reserve_metadata_snap" "create_thin 8" \
             "dump_snapshots" "release_metadata_snap" "release_metadata_snap" "CREATE_THIN 10" \
             "delete 10" "set_transaction_id 5 6"; do
        if [ "$m" = dump_snapshots ]; then dump_snapshots; else step "$m"; fi
    done
    assert_eq "$steps" "27" "steps run"
    assert_eq "$(pool_trans_id rpool)" "6" "transaction id"
    must dmsetup remove cpool
    must dmsetup remove rpool
    check_metadata $META
    check_metadata $META2
    thin_dump $META > /tmp/c.xml || fail "thin_dump of the C pool"
    thin_dump $META2 > /tmp/r.xml || fail "thin_dump of the $R_POOL pool"
    grep -q 'transaction="6"' /tmp/c.xml || fail "C dump lacks the transaction id"
    assert_eq "$(dump_devices $META2)" "1:0 3:0 4:0 8:0" "devices"
    if ! cmp -s /tmp/c.xml /tmp/r.xml; then
        diff /tmp/c.xml /tmp/r.xml
        fail "thin_dump differs between $C_POOL and $R_POOL"
    fi
    # Opened again, both pools still show the same status.
    pool_create_on $C_POOL cpool $META $DATA
    pool_create_on $R_POOL rpool $META2 $DATA2
    assert_eq "$(pool_status_body rpool)" "$(pool_status_body cpool)" "status after reactivation"
    must dmsetup remove cpool
    must dmsetup remove rpool
    must sh /tests/load.sh unload-c
}
