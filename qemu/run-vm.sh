#!/usr/bin/env bash
# Boots the kernel of KDIR once under QEMU and runs one mode inside (bench:
# the bench kernel, see `make bench`; the others: the test kernel):
#   run-vm.sh test KDIR [IMPL:SCENARIO ...]   the acceptance suite (tests/vm)
#   run-vm.sh demo KDIR                       the used-by flow
#   run-vm.sh bench KDIR [BENCH_X=Y ...]      fio against dm-linear, C and Rust
#   run-vm.sh shell KDIR                      an interactive shell
# The whole console goes to build/vm-<mode>.log. Any oops, BUG, WARNING,
# KASAN or lockdep report, or a guest that does not finish, fails the run.
set -uo pipefail
mode=$1 kdir=$2; shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build"; mkdir -p "$out"
log="$out/vm-$mode.log"
img="$out/vm-$mode.initrd.gz"
disks="$out/disks-$mode"
case "$mode" in
    test) limit=${VM_TIMEOUT:-4500} ;;   # both modules, every scenario, under TCG + KASAN
    bench) limit=${VM_TIMEOUT:-1800} ;;
    demo) limit=${VM_TIMEOUT:-900} ;;
    *) limit=0 ;;
esac

bash "$top/qemu/build-initramfs.sh" "$kdir" "$img" "$mode" "$@" || exit 1
rm -rf "$disks"; mkdir -p "$disks"
truncate -s 64M "$disks/meta.img"; truncate -s 2G "$disks/data.img"
truncate -s 64M "$disks/meta2.img"; truncate -s 2G "$disks/data2.img"
drives=()
for d in meta data meta2 data2; do
    drives+=(-drive "file=$disks/$d.img,if=virtio,format=raw,cache=unsafe,discard=unmap")
done
# VM_SMP: vCPUs (default 2; the bench kernel takes up to 8).
# no5lvl: 4-level paging. `-cpu max` offers LA57, and with 5-level paging an
# interrupt that lands while the boot CPU re-reads its feature bits
# (identify_boot_cpu clears them, LA57 included) makes KASAN see the
# direct map as wild memory: a false report at boot, before any test.
qemu=(qemu-system-x86_64 -m 3G -smp "${VM_SMP:-2}" -no-reboot -kernel "$kdir/arch/x86/boot/bzImage"
      -initrd "$img" -append "console=ttyS0 panic=-1 oops=panic rdinit=/init no5lvl"
      "${drives[@]}" -display none -vga none -net none)

if [ "$mode" = shell ]; then
    exec "${qemu[@]}" -cpu max -serial mon:stdio
fi

# KVM hangs before the first line on some nested hosts: give it 30s to boot.
accel=(-cpu max)
if [ -w /dev/kvm ] && [ -z "${VM_NO_KVM:-}" ]; then
    : > "$log"
    ( exec timeout 30 "${qemu[@]}" -enable-kvm -cpu host -serial "file:$log.kvm" ) >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 30); do
        grep -q VM-BOOTED "$log.kvm" 2>/dev/null && break
        kill -0 $pid 2>/dev/null || break
        sleep 1
    done
    kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
    if grep -q VM-BOOTED "$log.kvm" 2>/dev/null; then
        accel=(-enable-kvm -cpu host)
        echo "[vm] KVM works here"
    else
        echo "[vm] KVM did not boot within 30s; using TCG"
    fi
    rm -f "$log.kvm"
    rm -rf "$disks"; mkdir -p "$disks"
    for d in meta meta2; do truncate -s 64M "$disks/$d.img"; done
    for d in data data2; do truncate -s 2G "$disks/$d.img"; done
fi

echo "[vm] booting ($mode), console log: $log, limit ${limit}s"
timeout --foreground -k 10 "$limit" "${qemu[@]}" "${accel[@]}" -serial stdio < /dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
rm -rf "$disks"

fail=0
if [ "$status" = 124 ]; then
    echo "[vm] FAIL: the guest did not finish within ${limit}s"; fail=1
elif ! grep -q '^VM-DONE' "$log"; then
    echo "[vm] FAIL: the guest stopped before finishing (status $status)"; fail=1
fi
splat='\] (BUG:|WARNING:|Oops|general protection fault|Kernel panic|KASAN|UBSAN|INFO: possible|INFO: trying to register|possible circular locking|possible recursive locking|inconsistent lock state|DEBUG_LOCKS_WARN|BUG kmalloc|kernel BUG)'
if grep -E "$splat" "$log" >/dev/null; then
    echo "[vm] FAIL: kernel splat in the console log:"
    grep -nE "$splat" "$log" | head -20
    fail=1
fi
if [ "$mode" = test ]; then
    passed=$(grep -c '^RESULT PASS' "$log")
    failed=$(grep -c '^RESULT FAIL' "$log")
    echo "VM-SUMMARY $passed passed, $((failed + fail)) failed"
    # Each failure with its assertion and last lines, so a CI tail says why.
    grep '^RESULT FAIL' "$log" | while read -r _ _ impl name _; do
        echo "[vm] RESULT FAIL $impl $name:"
        awk -v h="=== $impl $name" '$0 == h {f = 1; n = 0; next}
            f && /^RESULT / {exit}
            f {last[n++ % 6] = $0; if (/ASSERT-FAIL|HANG/) print "[vm]   " $0}
            END {for (i = (n > 6 ? n - 6 : 0); i < n; i++) print "[vm]   | " last[i % 6]}' "$log"
    done
fi
grep -q '^VM-DONE rc=0' "$log" || fail=1
exit $fail
