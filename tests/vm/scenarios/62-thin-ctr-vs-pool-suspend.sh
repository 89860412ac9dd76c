# Issue 16, defect 5: the thin constructor must check "pool suspended" and
# join the pool's active thins in one step (C: both under pool->lock), or a
# thin made while the pool presuspends escapes quiescing. A bounded stress,
# for RUN_SECS, seeded:
# - one loop suspends and resumes the pool; the first time and every third
#   time after, while the pool is suspended, it reads one block of every
#   active thin in the background and checks, after a second, that none of
#   those reads has completed (the pool quiesces its active thins, C
#   pool_suspend_active_thins), then resumes and waits for them;
# - two other loops activate thins (one 10 and 11 in turn, the other 12 and
#   13), do I/O on each, remove it; every activation either works or fails
#   with "Unable to activate thin device while pool is suspended".
# Nothing may hang (deadline), and no kernel report (the harness).
APPLIES="c rust"
RUN_SECS=${DMRS_STRESS_SECS:-12}
suspender() {
    local n=0 r t
    RND=6201
    while [ "$(uptime_cs)" -lt "$END" ]; do
        n=$((n + 1))
        dmsetup suspend pool || { echo "suspend $n failed"; return 1; }
        if [ $((n % 3)) = 1 ]; then                 # rounds 1, 4, 7, ...: check
            rm -f /tmp/62/rd.*
            for t in t1 $(cd /tmp/62 && ls live.* 2>/dev/null | sed 's/^live\.//'); do
                ( dd if=/dev/mapper/$t of=/dev/null bs=4096 count=1 iflag=direct >/tmp/62/rd.$t.out 2>&1
                  echo $? > /tmp/62/rd.$t ) &
            done
            sleep 1
            for r in $(cd /tmp/62 && ls rd.* 2>/dev/null | grep -v '\.out$'); do
                t=${r#rd.}
                if [ "$(cat /tmp/62/$r)" = 0 ]; then
                    echo "VIOLATION: a read of $t completed while the pool was suspended (round $n)"
                elif ! grep -qiE "can't open|no such" /tmp/62/$r.out; then
                    echo "VIOLATION: a read of $t failed while the pool was suspended (round $n): $(cat /tmp/62/$r.out)"
                fi
            done
            checked=$((checked + 1))
        fi
        dmsetup resume pool || { echo "resume $n failed"; return 1; }
        # The check reads end once the pool has resumed (the deadline of
        # main catches one that does not).
        wait
        rnd 4; [ $R = 0 ] || sleep 0.$R
    done
    echo "suspends: $n, with a read check: $checked"
}
creator() { # creator FIRST_ID: thins FIRST_ID and FIRST_ID + 1 in turn
    local n=0 ok=0 refused=0 id t e try
    while [ "$(uptime_cs)" -lt "$END" ]; do
        id=$(($1 + n % 2)) t=t$(($1 + n % 2)); n=$((n + 1))
        if dmsetup create $t --table "0 2048 $THIN_TARGET /dev/mapper/pool $id" 2>/tmp/62/create.$t.err; then
            ok=$((ok + 1))
            touch /tmp/62/live.$t
            pattern $((6200 + n)) 64 | dd of=/dev/mapper/$t bs=65536 seek=$((n % 16)) conv=fsync 2>/dev/null \
                || { echo "write to $t failed"; return 1; }
            [ "$(sum_range /dev/mapper/$t 64 $((n % 16 * 64)))" = "$(pattern_sum $((6200 + n)) 64)" ] \
                || { echo "read back of $t differs"; return 1; }
            rm -f /tmp/62/live.$t
            try=0
            until dmsetup remove $t 2>/dev/null; do         # busy while a check read holds it
                try=$((try + 1)); [ $try -lt 150 ] || { echo "cannot remove $t"; return 1; }
                sleep 0.2
            done
        else
            e=$(last_target_error "$THIN_TARGET")
            [ "$e" = "Unable to activate thin device while pool is suspended" ] \
                || { echo "activation of $t failed: '$e' ($(cat /tmp/62/create.$t.err))"; return 1; }
            refused=$((refused + 1))
            dmsetup remove $t 2>/dev/null
        fi
    done
    echo "activations: $n, worked: $ok, refused while suspended: $refused"
}
main() {
    t_start=$(uptime_cs)
    rm -rf /tmp/62; mkdir -p /tmp/62
    pool_create pool
    thin_create pool 1 t1 8
    write_pattern /dev/mapper/t1 620 64 0
    for id in 10 11 12 13; do must dmsetup message pool 0 "create_thin $id"; done
    dmesg -c >/dev/null
    checked=0
    END=$(( $(uptime_cs) + RUN_SECS * 100 ))
    bg_start susp suspender
    bg_start creat1 creator 10
    bg_start creat2 creator 12
    for j in susp creat1 creat2; do
        if ! bg_wait $j $((RUN_SECS + 60)); then
            note "pool: $(dmsetup info pool | grep State)"
            hung_fail "$j has not ended $((RUN_SECS + 60)) s after the start of a ${RUN_SECS} s run"
        fi
    done
    for j in susp creat1 creat2; do
        note "$j: $(tail -n 1 /tmp/bg.$j.out)"
        [ "$(bg_rc $j)" = 0 ] || { tail -n 5 /tmp/bg.$j.out; fail "$j failed"; }
    done
    if grep VIOLATION /tmp/bg.susp.out; then fail "thin I/O was not held while the pool was suspended"; fi
    grep -q "with a read check: [1-9]" /tmp/bg.susp.out || fail "no read check ran"
    assert_eq "$(dmsetup info pool | sed -n 's/^State: *//p')" "ACTIVE" "pool state"
    assert_eq "$(sum_range /dev/mapper/t1 64 0)" "$(pattern_sum 620 64)" "t1's data"
    [ -z "$(dmsetup ls | grep -E '^t1[0-3]\s')" ] || fail "thins left: $(dmsetup ls)"
    must dmsetup remove t1
    must dmsetup remove pool
    note "wall time $(( ($(uptime_cs) - t_start) / 100 )) s"
}
