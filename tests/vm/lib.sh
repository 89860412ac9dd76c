# Helpers for the VM scenarios. Sourced by run.sh, demo.sh and each scenario.
# IMPL (c or rust) selects POOL_TARGET and THIN_TARGET; the same scenario
# text runs against both implementations.

META=/dev/vda
DATA=/dev/vdb
META2=/dev/vdc
DATA2=/dev/vdd
BLOCK_SECTORS=128          # 64 KiB data blocks
case "${IMPL:-c}" in
    c) POOL_TARGET=thin-pool THIN_TARGET=thin ;;
    rust) POOL_TARGET=rthin-pool THIN_TARGET=rthin ;;
esac

fail() { echo "ASSERT-FAIL: $*"; exit 1; }
note() { echo "  .. $*"; }
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
assert_lt() { [ "$1" -lt "$2" ] || fail "$3: expected $1 < $2"; }
assert_le() { [ "$1" -le "$2" ] || fail "$3: expected $1 <= $2"; }
assert_gt() { [ "$1" -gt "$2" ] || fail "$3: expected $1 > $2"; }
must() { "$@" || fail "command failed: $*"; }
must_fail() { if "$@" 2>/dev/null; then fail "command should have failed: $*"; fi; }

sectors() { blockdev --getsz "$1"; }
wipe_meta() { dd if=/dev/zero of="${1:-$META}" bs=4096 count=1 conv=fsync 2>/dev/null; }

# pool_create NAME [FEATURE...]: a pool on META/DATA with 64 KiB blocks.
pool_create() {
    local name=$1; shift
    local nf=$#
    local feat=""
    [ $nf -gt 0 ] && feat="$nf $*"
    must dmsetup create "$name" --table "0 $(sectors $DATA) $POOL_TARGET $META $DATA $BLOCK_SECTORS 0 $feat"
}
# thin_create POOL ID NAME SIZE_MB: create_thin and activate it.
thin_create() {
    must dmsetup message "/dev/mapper/$1" 0 "create_thin $2"
    thin_activate "$@"
}
thin_activate() {
    must dmsetup create "$3" --table "0 $(($4 * 2048)) $THIN_TARGET /dev/mapper/$1 $2"
}
# snap_create POOL ORIGIN_ID ORIGIN_NAME SNAP_ID: suspend the active origin, snapshot, resume.
snap_create() {
    if [ -n "$3" ]; then must dmsetup suspend "$3"; fi
    must dmsetup message "/dev/mapper/$1" 0 "create_snap $4 $2"
    if [ -n "$3" ]; then must dmsetup resume "$3"; fi
}
# Fields of `dmsetup status` for a pool: transaction id, used metadata, used data, ...
pool_field() { dmsetup status "$1" | awk -v f="$2" '{print $f}'; }
pool_trans_id() { pool_field "$1" 4; }
pool_used_data() { pool_field "$1" 6 | cut -d/ -f1; }
pool_total_data() { pool_field "$1" 6 | cut -d/ -f2; }
thin_mapped_sectors() { dmsetup status "$1" | awk '{print $4}'; }
thin_highest() { dmsetup status "$1" | awk '{print $5}'; }
# Discarded sectors seen by a block device (field 14 of its stat file).
discard_sectors() { awk '{print $14}' "/sys/dev/block/$(maj_min "$1")/stat"; }
dm_sysname() { basename "$(readlink -f "/dev/mapper/$1")"; }

# pattern SEED KIB: KIB KiB of reproducible data. A 4 KiB random base made
# from SEED, each 4 KiB sector stamped with its index so no two sectors of a
# stream are equal (a misplaced block cannot go unnoticed).
pattern() {
    awk -v s="$1" -v n="$2" 'BEGIN {
        srand(s); base = ""
        for (i = 0; i < 256; i++) base = base sprintf("%08x%08x", int(rand() * 4294967295), int(rand() * 4294967295))
        base = substr(base, 17)
        for (i = 0; i < int(n / 4); i++) printf "%015d:%s", i, base
        if (n % 4) printf "%s", substr(sprintf("%015d:%s", i, base), 1, (n % 4) * 1024)
    }'
}
write_pattern() { # write_pattern DEV SEED KIB OFFSET_KIB
    if [ $(($3 % 4)) = 0 ] && [ $(($4 % 4)) = 0 ]; then
        pattern "$2" "$3" | dd of="$1" bs=4096 seek=$(($4 / 4)) conv=notrunc,fsync 2>/dev/null || fail "write to $1"
    else
        pattern "$2" "$3" | dd of="$1" bs=1024 seek="$4" conv=notrunc,fsync 2>/dev/null || fail "write to $1"
    fi
}
sum_range() { # sum_range DEV KIB OFFSET_KIB
    if [ $(($2 % 64)) = 0 ] && [ $(($3 % 64)) = 0 ]; then
        dd if="$1" bs=65536 count=$(($2 / 64)) skip=$(($3 / 64)) iflag=direct 2>/dev/null
    else
        dd if="$1" bs=1024 count="$2" skip="$3" iflag=direct 2>/dev/null
    fi | sha256sum | cut -d' ' -f1
}
pattern_sum() { pattern "$1" "$2" | sha256sum | cut -d' ' -f1; }
zero_sum() { dd if=/dev/zero bs=1024 count="$1" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# The last ti->error device-mapper logged for TARGET (since dmesg -c).
last_target_error() {
    dmesg | grep -o "$1: .*" | tail -n1 | sed -E "s/^$1: //; s/ \((-E[A-Z]+|-[0-9]+)\)\$//"
}

# teardown: unmount and remove every dm device; thin_check the pool metadata.
teardown() {
    for m in $(awk '$2 ~ "^/mnt/" {print $2}' /proc/mounts | sort -r); do umount "$m" || umount -l "$m"; done
    for try in 1 2 3; do
        dmsetup remove_all >/dev/null 2>&1 && break
        sleep 1
    done
    [ -z "$(dmsetup ls 2>/dev/null | grep -v 'No devices')" ] || fail "devices left after teardown"
}
check_metadata() { # check_metadata DEV: both thin_check versions must be clean
    thin_check "$1" >/tmp/tc.out 2>&1 || { cat /tmp/tc.out; fail "thin_check 0.9 on $1"; }
    /opt/tpt11/pdata_tools thin_check "$1" >/tmp/tc.out 2>&1 || { cat /tmp/tc.out; fail "thin_check 1.1 on $1"; }
}
maj_min() { set -- $(stat -L -c '%t %T' "$1"); printf '%d:%d' "0x$1" "0x$2"; }

# pool_create_on TARGET NAME METADEV DATADEV [FEATURE...]: a pool of any target
# on any pair of devices, 64 KiB blocks (for scenarios that run C and Rust side by side).
pool_create_on() {
    local target=$1 name=$2 meta=$3 data=$4; shift 4
    local feat=""
    [ $# -gt 0 ] && feat="$# $*"
    must dmsetup create "$name" --table "0 $(sectors $data) $target $meta $data $BLOCK_SECTORS 0 $feat"
}
# pool_status_body NAME: the status line without the target name (field 3),
# to compare a pool's status under thin-pool and rthin-pool.
pool_status_body() { dmsetup status "$1" | awk '{$3 = ""; print}'; }
# msg_fails ERRNO_TEXT POOL MESSAGE: the message fails and dmsetup reports the
# errno's text (strerror, e.g. "Invalid argument").
msg_fails() {
    if dmsetup message "$2" 0 "$3" 2>/tmp/msg.err; then fail "message '$3' to $2 succeeded"; fi
    grep -qF -- "$1" /tmp/msg.err || fail "message '$3': expected '$1', dmsetup said: $(cat /tmp/msg.err)"
}
# logged TEXT: the kernel log (since the last dmesg -c) has a line containing TEXT.
logged() { dmesg | grep -qF -- "$1" || fail "no log line '$1' in: $(dmesg | tail -n 3)"; }
# dump_devices [THIN_DUMP_ARGS...] DEV: "ID:MAPPED_BLOCKS ..." for every device
# thin_dump lists, in its order.
dump_devices() {
    thin_dump "$@" > /tmp/dump.xml || fail "thin_dump $*"
    sed -n 's/.*<device dev_id="\([0-9]*\)" mapped_blocks="\([0-9]*\)".*/\1:\2/p' /tmp/dump.xml | tr '\n' ' ' | sed 's/ $//'
}
# dump_attr ATTR: an attribute of the superblock element of the last dump_devices.
dump_attr() { sed -n "s/.*<superblock .*[ ]$1=\"\([^\"]*\)\".*/\1/p" /tmp/dump.xml; }

# Power cut: a device NAME that is dm-linear over DEV and whose table can be
# swapped to dm-flakey drop_writes, after which every write and flush sent to
# it is acknowledged and thrown away, as after the power went off.
load_flakey() { grep -q '^dm_flakey ' /proc/modules || must insmod /modules/dm-flakey.ko; }
crashable_create() { # crashable_create NAME DEV
    load_flakey
    must dmsetup create "$1" --table "0 $(sectors $2) linear $2 0"
}
crash_writes() { # crash_writes NAME DEV: from now on writes to NAME are lost
    must dmsetup load "$1" --table "0 $(sectors $2) flakey $2 0 0 3600 1 drop_writes"
    must dmsetup suspend "$1"
    must dmsetup resume "$1"
    dmsetup table "$1" | grep -q 'flakey.*drop_writes' || fail "$1 not switched to drop_writes"
}
crash_restore() { # crash_restore NAME DEV: a plain linear again ("power back")
    must dmsetup load "$1" --table "0 $(sectors $2) linear $2 0"
    must dmsetup suspend "$1"
    must dmsetup resume "$1"
}
# A directory's files and their sha256, and the check of such a manifest.
manifest() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
check_manifest() { # check_manifest DIR FILE WHAT
    (cd "$1" && sha256sum -c "$2" >/tmp/cm.out 2>&1) || { grep -v ': OK$' /tmp/cm.out | head; fail "$3: files differ"; }
    assert_eq "$(cd "$1" && find . -type f | wc -l)" "$(wc -l < "$2")" "$3: number of files"
}
# dev_sum DEV: sha256 of a whole device, read with O_DIRECT.
dev_sum() { dd if="$1" bs=65536 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
# ---- Helpers for the pool-mode scenarios (41 and up) ----
# nst_param: the no_space_timeout module parameter of the module under test.
nst_param() {
    case "${IMPL:-c}" in
        rust) echo /sys/module/dm_thin_rs/parameters/no_space_timeout ;;
        *) echo /sys/module/dm_thin_pool/parameters/no_space_timeout ;;
    esac
}
# event_nr DEV: the device's event counter ("Event number" of dmsetup info).
event_nr() { dmsetup info "$1" | sed -n 's/^Event number: *//p'; }
# pool_mode POOL: status field 8 (rw, out_of_data_space, ro), or Fail.
pool_mode() {
    set -- $(dmsetup status "$1")
    if [ "$4" = Fail ]; then echo Fail; else echo "$8"; fi
}
pool_mode_is() { [ "$(pool_mode "$1")" = "$2" ]; }
# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds; 1 on timeout.
wait_for() {
    local n=$(($1 * 5)); shift
    until "$@"; do
        n=$((n - 1)); [ $n -gt 0 ] || return 1
        sleep 0.2
    done
}
# uptime_cs: the time since boot in hundredths of a second.
uptime_cs() { awk '{printf "%d\n", $1 * 100}' /proc/uptime; }
# relinear NAME SECTORS DEV: reload linear device NAME with a new length.
relinear() {
    must dmsetup load "$1" --table "0 $2 linear $3 0"
    must dmsetup suspend "$1"
    must dmsetup resume "$1"
}
# pool_line META DATA LWM [FEATURE...]: a pool table line over the whole DATA.
pool_line_on() {
    local meta=$1 data=$2 lwm=$3; shift 3
    local feat=""
    [ $# -gt 0 ] && feat="$# $*"
    echo "0 $(sectors $data) $POOL_TARGET $meta $data $BLOCK_SECTORS $lwm $feat"
}
# pool_reload POOL META DATA LWM [FEATURE...]: load, suspend, resume the pool.
pool_reload() {
    local pool=$1; shift
    must dmsetup load "$pool" --table "$(pool_line_on "$@")"
    must dmsetup suspend "$pool"
    must dmsetup resume "$pool"
}
# ---- Helpers for the bounded-I/O scenarios (58 and up) ----
# A hung bio must fail a scenario, not hang the VM: risky commands run in the
# background with a marker file written when they end (kill -0 cannot tell a
# finished, unreaped child from a running one), and waits have deadlines.
# bg_start NAME CMD...: run CMD in the background; its exit status goes to
# /tmp/bg.NAME.rc when it ends, its output to /tmp/bg.NAME.out.
bg_start() {
    local name=$1; shift
    rm -f /tmp/bg.$name.rc
    ( "$@" >/tmp/bg.$name.out 2>&1; echo $? > /tmp/bg.$name.rc.tmp; mv /tmp/bg.$name.rc.tmp /tmp/bg.$name.rc ) &
    eval "BG_$name=$!"
}
bg_done() { [ -s /tmp/bg.$1.rc ]; }
bg_rc() { cat /tmp/bg.$1.rc; }
# bg_wait NAME SECONDS: 0 when NAME has ended within SECONDS, else 1.
bg_wait() { wait_for "$2" bg_done "$1"; }
# bounded SECONDS CMD...: CMD with a deadline; its exit status, or 124 when
# it is still running after SECONDS (then left running: D state cannot be killed).
bounded() {
    local secs=$1; shift
    bg_start bounded "$@"
    if bg_wait bounded "$secs"; then wait $BG_bounded 2>/dev/null; return "$(bg_rc bounded)"; fi
    return 124
}
# blocked_tasks: the D-state tasks with their kernel stacks (and sysrq w when the
# kernel has it), for a scenario that has found a hang.
blocked_tasks() {
    [ -w /proc/sysrq-trigger ] && echo w > /proc/sysrq-trigger 2>/dev/null
    local p
    for p in /proc/[0-9]*; do
        [ "$(awk '{print $3}' $p/stat 2>/dev/null)" = D ] || continue
        echo "  .. D-state: ${p#/proc/} $(tr '\0' ' ' < $p/cmdline) wchan=$(cat $p/wchan 2>/dev/null)"
        [ -r $p/stack ] && sed 's/^/  ..     /' $p/stack 2>/dev/null | head -n 12
    done
}
# hung_fail WHAT: report a hang and fail; the devices in use stay (the harness's
# teardown skips open devices rather than waiting on them).
hung_fail() { blocked_tasks; fail "HANG: $*"; }
# rnd N: R becomes the next value in [0, N) of a reproducible pseudo-random
# sequence seeded by setting RND (no fork: it runs in the calling shell).
rnd() { RND=$(( (${RND:-1} * 1103515245 + 12345) % 2147483648 )); R=$(( (RND >> 8) % $1 )); }
# ---- Helpers for the fault sweeps (64 and up) ----
# DMRS_SWEEP=all (make test-faults) runs every fault point; by default a
# sweep runs a small sample chosen by a printed seed (DMRS_SEED replays one).
sweep_seed() {
    SEED=${DMRS_SEED:-$(( $(od -An -N2 -tu2 /dev/urandom) + 1 ))}
    RND=$SEED
    note "sweep seed $SEED (DMRS_SEED=$SEED replays this sample)"
}
# sweep_points N SAMPLE: the fault points to try out of 0..N-1: all of them
# with DMRS_SWEEP=all, else the first, the last and SAMPLE seeded others.
sweep_points() {
    local n=$1 k=$2 i pts
    if [ "${DMRS_SWEEP:-}" = all ]; then seq 0 $((n - 1)); return; fi
    pts="0 $((n - 1))"
    for i in $(seq "$k"); do rnd "$n"; pts="$pts $R"; done
    echo $pts | tr ' ' '\n' | sort -un
}
debugfs_mount() { grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug; }
FMR=/sys/kernel/debug/fail_make_request
# fmr_arm DEV SPACE: the first bio to DEV after SPACE bytes of bios fails
# (fail_make_request: space, then probability 100, once).
fmr_arm() {
    debugfs_mount
    echo 0 > $FMR/probability; echo 0 > $FMR/verbose; echo 1 > $FMR/interval
    echo 1 > $FMR/times; echo "$2" > $FMR/space; echo 100 > $FMR/probability
    echo 1 > "/sys/block/$(basename "$(readlink -f "$1")")/make-it-fail"
}
# fmr_disarm DEV: no more failures; prints whether the armed one fired (1/0).
fmr_disarm() {
    echo 0 > "/sys/block/$(basename "$(readlink -f "$1")")/make-it-fail"
    echo 0 > $FMR/probability
    [ "$(cat $FMR/times)" = 0 ] && echo 1 || echo 0
}
# io_bytes DEV: bytes read plus written on DEV so far.
io_bytes() { awk '{print ($3 + $7) * 512}' "/sys/block/$(basename "$(readlink -f "$1")")/stat"; }
# part_sum SEED KIB SKIP_KIB LEN_KIB: sha256 of LEN_KIB KiB of pattern SEED
# (KIB long) from SKIP_KIB on.
part_sum() { pattern "$1" "$2" | dd bs=1024 skip="$3" count="$4" 2>/dev/null | sha256sum | cut -d' ' -f1; }
# repair_metadata DEV: thin_check (both), and where it fails thin_repair through
# META2 and back; then the needs_check flag cleared. 0 when DEV is usable.
repair_metadata() {
    if ! thin_check -q "$1" >/dev/null 2>&1 || ! /opt/tpt11/pdata_tools thin_check -q "$1" >/dev/null 2>&1; then
        note "thin_check failed on $1: thin_repair"
        wipe_meta $META2
        thin_repair -i "$1" -o $META2 >/tmp/tr.out 2>&1 || { cat /tmp/tr.out; return 1; }
        dd if=$META2 of="$1" bs=1M conv=fsync 2>/dev/null || return 1
    fi
    thin_check --clear-needs-check-flag "$1" >/dev/null 2>&1
    check_metadata "$1"
}
