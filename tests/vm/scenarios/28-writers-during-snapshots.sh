# Four processes write and verify patterns on three active thins while
# snapshots of those thins are created (suspend, create_snap, resume) and some
# deleted. Each writer cycles over NSLOTS slots of 96 KiB (not block aligned,
# so overwrites of shared blocks copy the rest of the block). At the end every
# thin holds the last round of each slot, and every kept snapshot holds, for
# each slot, what the writer had completed (fsync returned) before the
# suspend; slots a writer was writing during the snapshot are not compared.
APPLIES="c rust"
SLOW="c"
SLOT_KIB=96 NSLOTS=6 MAXROUNDS=400
slot_off() { echo $(($1 + $2 * SLOT_KIB)); }  # slot_off BASE_KIB SLOT
seed() { echo $(($1 * 1000 + $2)); }           # seed WRITER ROUND
set_count() { echo "$2" > "$1.tmp" && mv "$1.tmp" "$1"; }

writer() { # writer W DEV BASE_KIB
    local w=$1 dev=$2 base=$3 r=0 s off
    while [ ! -e /tmp/w.stop ] && [ $r -lt $MAXROUNDS ]; do
        r=$((r + 1)); s=$(((r - 1) % NSLOTS)); off=$(slot_off $base $s)
        set_count /tmp/w$w.started $r
        if ! pattern $(seed $w $r) $SLOT_KIB | dd of=$dev bs=4096 seek=$((off / 4)) conv=notrunc,fsync 2>/dev/null; then
            echo "writer $w round $r: write to $dev failed" > /tmp/w$w.err; exit 1
        fi
        if [ "$(sum_range $dev $SLOT_KIB $off)" != "$(pattern_sum $(seed $w $r) $SLOT_KIB)" ]; then
            echo "writer $w round $r: $dev slot $s (KiB $off) reads back wrong" > /tmp/w$w.err; exit 1
        fi
        set_count /tmp/w$w.done $r
    done
}
# last_round DONE SLOT: the last round <= DONE that wrote SLOT (0: none).
last_round() {
    if [ $1 -le $2 ]; then echo 0; else echo $(($2 + 1 + (($1 - $2 - 1) / NSLOTS) * NSLOTS)); fi
}
# check_slots DEV W BASE DONE STARTED WHAT: slots not written by rounds
# DONE+1..STARTED hold the last completed round's pattern (or zeroes).
# CHECKED: how many slots were compared.
check_slots() {
    local dev=$1 w=$2 base=$3 done=$4 started=$5 what=$6 s r lr busy want
    CHECKED=0
    for s in $(seq 0 $((NSLOTS - 1))); do
        busy=0
        for r in $(seq $((done + 1)) $started); do
            [ $(((r - 1) % NSLOTS)) = $s ] && busy=1
        done
        [ $busy = 1 ] && continue
        lr=$(last_round $done $s)
        if [ $lr = 0 ]; then want=$(zero_sum $SLOT_KIB); else want=$(pattern_sum $(seed $w $lr) $SLOT_KIB); fi
        assert_eq "$(sum_range $dev $SLOT_KIB $(slot_off $base $s))" "$want" "$what: writer $w slot $s (round $lr)"
        CHECKED=$((CHECKED + 1))
    done
}
writers_of() { case $1 in 1) echo "1 4" ;; 2) echo 2 ;; 3) echo 3 ;; esac; }
base_of() { case $1 in 4) echo 8192 ;; *) echo 0 ;; esac; }
dev_of() { case $1 in 1|4) echo /dev/mapper/t1 ;; 2) echo /dev/mapper/t2 ;; 3) echo /dev/mapper/t3 ;; esac; }
count() { cat /tmp/w$1.$2 2>/dev/null || echo 0; }
# wait_rounds N: until every writer has done N more rounds (or one stopped).
wait_rounds() {
    local w t1 t2 t3 t4 t0
    t1=$(count 1 done) t2=$(count 2 done) t3=$(count 3 done) t4=$(count 4 done)
    for w in 1 2 3 4; do
        eval t0=\$t$w
        for _ in $(seq 600); do
            [ $(count $w done) -ge $((t0 + $1)) ] && break
            [ -e /tmp/w$w.err ] && fail "$(cat /tmp/w$w.err)"
            sleep 0.2
        done
    done
}

main() {
    rm -f /tmp/w*
    pool_create pool
    thin_create pool 1 t1 32
    thin_create pool 2 t2 32
    thin_create pool 3 t3 32
    pids=""
    for w in 1 2 3 4; do
        writer $w $(dev_of $w) $(base_of $w) &
        pids="$pids $!"
    done
    kept="" deleted=""
    k=0
    for origin in 1 2 3 1 2; do
        k=$((k + 1)); sid=$((10 + k))
        wait_rounds 2
        info="$sid $origin"
        d1=$(count 1 done) d2=$(count 2 done) d3=$(count 3 done) d4=$(count 4 done)
        snap_create pool $origin t$origin $sid
        for w in $(writers_of $origin); do
            eval d=\$d$w
            info="$info $w:$d:$(count $w started)"
        done
        echo "$info" >> /tmp/w.snaps
        note "snapshot $info (id origin writer:done:started)"
        kept="$kept $sid"
        case $k in 3|5)
            victim=$((sid - 1))
            must dmsetup message pool 0 "delete $victim"
            kept=$(echo $kept | tr ' ' '\n' | grep -vx $victim | tr '\n' ' ')
            deleted="$deleted $victim"
            note "deleted snapshot $victim while the writers run" ;;
        esac
    done
    # Enough rounds that every slot has been overwritten after some snapshot.
    for w in 1 2 3 4; do
        for _ in $(seq 3000); do
            [ $(count $w done) -ge $((2 * NSLOTS + 2)) ] && break
            [ -e /tmp/w$w.err ] && break
            sleep 0.2
        done
    done
    touch /tmp/w.stop
    for p in $pids; do wait $p || true; done
    for w in 1 2 3 4; do
        [ -e /tmp/w$w.err ] && fail "$(cat /tmp/w$w.err)"
        note "writer $w: $(count $w done) rounds"
        assert_le $((2 * NSLOTS)) $(count $w done) "writer $w rounds"
    done

    for w in 1 2 3 4; do
        d=$(count $w done)
        check_slots $(dev_of $w) $w $(base_of $w) $d $d "thin after the run"
        assert_eq "$CHECKED" "$NSLOTS" "slots checked on the thin of writer $w"
    done
    total=0
    for sid in $kept; do
        set -- $(grep "^$sid " /tmp/w.snaps)
        origin=$2; shift 2
        thin_activate pool $sid s$sid 32
        for spec in "$@"; do
            w=${spec%%:*}; ds=${spec#*:}
            check_slots /dev/mapper/s$sid $w $(base_of $w) ${ds%%:*} ${ds#*:} "snapshot $sid of thin $origin"
            total=$((total + CHECKED))
        done
        # Everything outside the writers' slots is still zero.
        assert_eq "$(sum_range /dev/mapper/s$sid 4096 16384)" "$(zero_sum 4096)" "snapshot $sid beyond the slots"
        must dmsetup remove s$sid
    done
    note "$total snapshot slots compared"
    assert_lt 10 $total "snapshot slots compared"
    for sid in $deleted; do
        if dmsetup create s$sid --table "0 65536 $THIN_TARGET /dev/mapper/pool $sid" 2>/dev/null; then
            fail "deleted snapshot $sid activated"
        fi
    done
}
