# The module loads, registers both targets under the chosen names, and unloads cleanly.
APPLIES="c rust"
main() {
    dmsetup targets > /tmp/targets
    grep -q "^$POOL_TARGET " /tmp/targets || fail "$POOL_TARGET not registered"
    grep -q "^$THIN_TARGET " /tmp/targets || fail "$THIN_TARGET not registered"
    assert_eq "$(awk -v t=$POOL_TARGET '$1==t {print $2}' /tmp/targets)" "v1.24.0" "pool target version"
    assert_eq "$(awk -v t=$THIN_TARGET '$1==t {print $2}' /tmp/targets)" "v1.24.0" "thin target version"
    # Unload and load again: registration is undone and redone.
    must sh /tests/load.sh unload-$IMPL
    dmsetup targets | grep -q "^$POOL_TARGET " && fail "$POOL_TARGET still registered after unload"
    must sh /tests/load.sh $IMPL
    dmsetup targets | grep -q "^$THIN_TARGET " || fail "$THIN_TARGET not registered after reload"
}
