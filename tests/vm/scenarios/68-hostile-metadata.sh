# Hostile metadata: images with valid checksums and malicious contents (the
# corpus `thinmeta hostile-corpus` wrote into /corpus at initramfs build
# time: entry counts past the maximum, keys out of order, loops, shared
# nodes, block numbers past either device, reference counts at their
# limits, bitmaps calling used blocks free, superblock fields at extremes).
# Each is written to a 1 MiB metadata device; the pool is created over it
# (a refusal is fine), thin 0 activated, and reads, a write, a discard and
# the messages create_thin, create_snap and delete run, each bounded. The
# outcome must be an error, read-only or fail mode: never a kernel report
# (the harness fails the run on one), a hang, or I/O outside the devices.
# C 7.3 follows a btree loop for ever: images where a tree loops are skipped
# on C, with a note naming them; Rust must survive them.
# A seeded sample by default (HOSTILE_SEED, HOSTILE_SAMPLE); HOSTILE_ALL=1
# (make vm-test HOSTILE_ALL=1 ...) runs the whole corpus.
APPLIES="c rust"
HMETA_BLOCKS=256                 # hostile::META_BLOCKS
HDATA_SECTORS=$((1024 * 128))    # hostile::DATA_BLOCKS of 64 KiB
T=15                             # seconds for any one step

step() { # step WHAT CMD...: CMD bounded by T; a hang fails the scenario
    what=$1; shift; bounded $T "$@"
    rc=$?
    [ $rc -ne 124 ] || fail "$img: $what did not end within ${T}s (hang)"
    return $rc
}
one_image() { # one_image NAME: runs one image, counts its outcome
    img=$1
    must dd if=/dev/zero of=/dev/mapper/hmeta bs=4096 count=$HMETA_BLOCKS conv=fsync 2>/dev/null
    must dd if=/corpus/$img.img of=/dev/mapper/hmeta bs=4096 conv=notrunc,fsync 2>/dev/null
    dmesg -c >/dev/null
    if ! step "pool create" dmsetup create hpool --table \
        "0 $HDATA_SECTORS $POOL_TARGET /dev/mapper/hmeta /dev/mapper/hdata $BLOCK_SECTORS 0 1 error_if_no_space"; then
        n_err=$((n_err + 1))
        note "$img: refused: $(dmesg | grep -m1 -E 'device-mapper|thin' | cut -c1-120)"
        dmsetup remove hpool >/dev/null 2>&1
        return
    fi
    if step "thin create" dmsetup create hthin --table "0 $HDATA_SECTORS $THIN_TARGET /dev/mapper/hpool 0"; then
        step read dd if=/dev/mapper/hthin of=/dev/null bs=65536 count=64 iflag=direct
        step write dd if=/dev/zero of=/dev/mapper/hthin bs=65536 count=4 seek=2 oflag=direct
        step discard blkdiscard -o 0 -l 262144 /dev/mapper/hthin
        step read-back dd if=/dev/mapper/hthin of=/dev/null bs=65536 count=8 iflag=direct
        step "thin remove" dmsetup remove hthin
    fi
    step create_thin dmsetup message hpool 0 create_thin 10
    step create_snap dmsetup message hpool 0 create_snap 11 0
    step delete dmsetup message hpool 0 delete 11
    step status dmsetup status hpool
    mode=$(pool_mode hpool)
    case "$mode" in
        rw) n_fine=$((n_fine + 1)) ;;
        ro) n_ro=$((n_ro + 1)) ;;
        Fail) n_fail=$((n_fail + 1)) ;;
        *) n_other=$((n_other + 1)) ;;
    esac
    note "$img: opened, ends $mode"
    step "pool remove" dmsetup remove hpool || fail "$img: pool remove failed: $(cat /tmp/bg.bounded.out)"
}
main() {
    [ -s /corpus/MANIFEST ] || fail "no corpus in the initramfs"
    must dmsetup create hmeta --table "0 $((HMETA_BLOCKS * 8)) linear $META 0"
    must dmsetup create hdata --table "0 $HDATA_SECTORS linear $DATA 0"
    seed=${HOSTILE_SEED:-$(($(date +%s) % 10000))}
    sample=${HOSTILE_SAMPLE:-6}
    total=$(wc -l < /corpus/MANIFEST)
    if [ "${HOSTILE_ALL:-0}" = 1 ]; then
        list=$(awk '{print $1}' /corpus/MANIFEST)
        note "whole corpus: $total images"
    else
        # Image 000 (a mapping node pointing at itself) and a seeded sample.
        list=$(awk -v s="$seed" -v k="$sample" 'BEGIN{srand(s)} NR==1{print $1; next} {print rand() " " $1}' /corpus/MANIFEST \
            | { read first; echo "$first"; sort -n | head -n $((sample - 1)) | awk '{print $2}'; })
        note "sample of $sample of $total images, HOSTILE_SEED=$seed (HOSTILE_ALL=1 for all)"
    fi
    n_err=0 n_ro=0 n_fail=0 n_fine=0 n_other=0 n_skip=0
    start=$(uptime_cs)
    for img in $list; do
        if [ "$IMPL" = c ] && grep -q "^$img loop " /corpus/MANIFEST; then
            n_skip=$((n_skip + 1))
            note "$img: skipped on C: a btree loops, C 7.3 follows it for ever (hangs)"
            continue
        fi
        one_image "$img"
    done
    note "outcomes on $IMPL: $n_err refused, $n_ro ro, $n_fail fail, $n_fine rw, $n_other other, $n_skip skipped; $(( ($(uptime_cs) - start) / 100 )) s"
    echo "SWEEP-SUMMARY hostile-metadata $IMPL images=$(echo $list | wc -w) of $total refused=$n_err ro=$n_ro fail=$n_fail rw=$n_fine other=$n_other skipped_hang=$n_skip hangs=0"
    assert_eq "$n_other" 0 "pools in a mode other than rw, ro or fail"
    must dmsetup remove hdata; must dmsetup remove hmeta
    # The harness checks $META after each scenario: leave no hostile image there.
    wipe_meta $META
}
