# Bad thin-pool table lines fail with the C ti->error strings and create nothing.
APPLIES="c rust"
try_pool() { # try_pool EXPECTED ARGS...
    expected=$1; shift
    dmesg -c >/dev/null
    must_fail dmsetup create badpool --table "0 $(sectors $DATA) $POOL_TARGET $*"
    got=$(last_target_error $POOL_TARGET)
    assert_eq "$got" "$expected" "pool line '$*'"
    dmsetup info badpool >/dev/null 2>&1 && fail "badpool left behind by '$*'"
    return 0
}
main() {
    try_pool "Invalid argument count" $META $DATA 128
    try_pool "Invalid argument count"
    try_pool "Error setting metadata or data device" $META $META 128 0
    try_pool "Invalid number of pool feature arguments" $META $DATA 128 0 5 a b c d e
    try_pool "Invalid number of pool feature arguments" $META $DATA 128 0 2 skip_block_zeroing
    try_pool "Invalid number of pool feature arguments" $META $DATA 128 0 x
    try_pool "Invalid number of pool feature arguments" $META $DATA 128 0 -1
    try_pool "Unrecognised pool feature requested" $META $DATA 128 0 1 bogus
    try_pool "Unrecognised pool feature requested" $META $DATA 128 0 2 read_only no_such
    try_pool "Error opening metadata block device" /dev/nonexistent $DATA 128 0
    try_pool "Error getting data device" $META /dev/nonexistent 128 0
    for bs in 0 64 100 129 192 4194304 2097280 abc -128 12x; do
        try_pool "Invalid block size" $META $DATA $bs 0
    done
    for lw in abc -1 1.5 18446744073709551616; do
        try_pool "Invalid low water mark" $META $DATA 128 $lw
    done
    # Feature words are case-insensitive, like strcasecmp: the line gets past
    # feature parsing and fails at the block size.
    try_pool "Invalid block size" $META $DATA 100 0 2 SKIP_BLOCK_ZEROING Read_Only
}
