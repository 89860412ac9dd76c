# Bad thin table lines fail with the C ti->error strings and create nothing.
APPLIES="c rust"
try_thin() { # try_thin EXPECTED ARGS...
    expected=$1; shift
    dmesg -c >/dev/null
    must_fail dmsetup create badthin --table "0 2048 $THIN_TARGET $*"
    got=$(last_target_error $THIN_TARGET)
    assert_eq "$got" "$expected" "thin line '$*'"
    dmsetup info badthin >/dev/null 2>&1 && fail "badthin left behind by '$*'"
    return 0
}
main() {
    # A device-mapper device that is not a pool.
    must dmsetup create notapool --table "0 2048 linear $DATA2 0"
    L=/dev/mapper/notapool
    try_thin "Invalid argument count" $L
    try_thin "Invalid argument count" $L 0 $DATA2 extra
    try_thin "Error setting origin device" $L 0 $L
    try_thin "Error opening origin device" $L 0 /dev/nonexistent
    try_thin "Error opening pool device" /dev/nonexistent 0
    try_thin "Invalid device id" $L abc
    try_thin "Invalid device id" $L 16777216
    try_thin "Invalid device id" $L -1
    try_thin "Couldn't get pool mapped device" $DATA2 0
    try_thin "Couldn't find pool object" $L 0
    try_thin "Couldn't find pool object" $L 16777215
}
