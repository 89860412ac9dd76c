# Message rate (each message is a metadata commit): 200 set_transaction_id
# messages, timed, printed as "MSGRATE <impl> <messages/s>". Under TCG
# starting dmsetup costs ~100 ms, so 100 `dmsetup status --noflush` calls (no
# commit) are timed too, interleaved in blocks with the messages so that host
# load hits both alike: "STATUSRATE <impl> <calls/s>", and "MSGCOST <impl>
# <ms>" is a message's time minus a status call's, the message's own cost.
# Only success is asserted.
APPLIES="c rust"
N=200
now() { # now=centiseconds since boot, from /proc/uptime, without a fork
    read up _ < /proc/uptime
    f=${up#*.}
    now=$(( ${up%.*} * 100 + ${f#0} ))
}
main() {
    pool_create pool
    must dmsetup message pool 0 "create_thin 1"
    i=0 msg_cs=0 st_cs=0
    while [ $i -lt $N ]; do
        now; a=$now
        j=0
        while [ $j -lt 10 ]; do
            dmsetup message pool 0 "set_transaction_id $i $((i + 1))" || fail "message $i"
            i=$((i + 1)) j=$((j + 1))
        done
        now; b=$now
        j=0
        while [ $j -lt 5 ]; do
            dmsetup status --noflush pool >/dev/null || fail "status"
            j=$((j + 1))
        done
        now
        msg_cs=$((msg_cs + b - a)) st_cs=$((st_cs + now - b))
    done
    assert_eq "$(pool_trans_id pool)" "$N" "transaction id after $N messages"
    awk -v impl="$IMPL" -v n=$N -v m=$msg_cs -v s=$st_cs 'BEGIN {
        printf "MSGRATE %s %.1f\n", impl, n * 100 / m
        printf "STATUSRATE %s %.1f\n", impl, (n / 2) * 100 / s
        printf "MSGCOST %s %.1f\n", impl, m * 10 / n - s * 10 / (n / 2)
    }'
    must dmsetup remove pool
}
