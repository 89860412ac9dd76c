# Message rate (each message is a metadata commit): 200 set_transaction_id
# messages, timed, printed as "MSGRATE <impl> <messages/s>", with the rate of
# N/2 `dmsetup status` calls (no commit when nothing changed) beside it as
# "STATUSRATE <impl> <calls/s>": under TCG starting dmsetup costs ~100 ms, so
# "MSGCOST <impl> <ms>" (message time minus status time, per call) is the
# message's own cost. Only success is asserted.
APPLIES="c"
N=200
now_ns() { # nanoseconds if busybox date has %N, else from /proc/uptime
    t=$(date +%s%N 2>/dev/null)
    case "$t" in *N|"") awk '{printf "%d0000000\n", $1 * 100}' /proc/uptime ;; *) echo "$t" ;; esac
}
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n * 1e9 / (b - a) }'; }
main() {
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    i=0; t0=$(now_ns)
    while [ $i -lt $N ]; do
        dmsetup message pool 0 "set_transaction_id $i $((i + 1))" || fail "message $i"
        i=$((i + 1))
    done
    t1=$(now_ns)
    assert_eq "$(pool_trans_id pool)" "$N" "transaction id after $N messages"
    i=0
    while [ $i -lt $((N / 2)) ]; do
        dmsetup status pool >/dev/null || fail "status $i"
        i=$((i + 1))
    done
    t2=$(now_ns)
    echo "MSGRATE $IMPL $(rate $N $t0 $t1)"
    echo "STATUSRATE $IMPL $(rate $((N / 2)) $t1 $t2)"
    echo "MSGCOST $IMPL $(awk -v n=$N -v a=$t0 -v b=$t1 -v c=$t2 'BEGIN { printf "%.1f", ((b - a) / n - (c - b) / (n / 2)) / 1e6 }')"
    must dmsetup remove pool
}
