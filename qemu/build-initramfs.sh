#!/usr/bin/env bash
# Builds the guest initramfs: busybox-static, the userspace tools the suite
# uses (with the libraries ldd lists), the C dm-thin modules of the kernel
# KDIR (test or bench), dm_thin_rs.ko, and tests/vm.  Usage: build-initramfs.sh KDIR OUT MODE [ARGS...]
set -euo pipefail
kdir=$1 out=$2 mode=$3; shift 3
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/common.sh"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,mnt,etc,modules,run,var/tmp}

cp /bin/busybox "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
    [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done

copy_with_libs() { # copy_with_libs SRC DEST-IN-STAGE
    local src=$1 dst=$2
    mkdir -p "$stage/$(dirname "$dst")"
    cp -L "$src" "$stage/$dst"
    ldd "$src" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
        [ -e "$stage$lib" ] || { mkdir -p "$stage$(dirname "$lib")"; cp -L "$lib" "$stage$lib"; }
    done
}

for tool in /usr/sbin/dmsetup /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/bin/fio \
            /usr/sbin/fstrim /usr/sbin/blkdiscard /usr/sbin/pdata_tools; do
    [ -x "$tool" ] || { echo "missing $tool: run make setup" >&2; exit 1; }
    copy_with_libs "$tool" "$tool"
done
for t in thin_check thin_dump thin_restore thin_repair thin_ls thin_metadata_size thin_delta thin_rmap; do
    ln -sf pdata_tools "$stage/usr/sbin/$t"
done
ln -sf mke2fs "$stage/usr/sbin/mkfs.ext4"
ln -sf e2fsck "$stage/usr/sbin/fsck.ext4"
# The second oracle, thin-provisioning-tools 1.1.0.
tpt11="$CACHE/tools/tpt-1.1.0/usr/sbin/pdata_tools"
# It dispatches on its own name, so it keeps it, in a directory of its own.
[ -x "$tpt11" ] || { echo "missing $tpt11: run make setup" >&2; exit 1; }
copy_with_libs "$tpt11" /opt/tpt11/pdata_tools
# perf for `make bench BENCH_ARGS=BENCH_PROFILE=...` (when the host has it).
if [ "$mode" = bench ] && [ -x /usr/bin/perf ]; then copy_with_libs /usr/bin/perf /usr/bin/perf; fi
# logreplay (the crash-replay scenario's tool), from the host crate; cargo
# rebuilds it when its sources changed.
target_dir=${CARGO_TARGET_DIR:-$top/target}
(cd "$top" && cargo build --release --quiet --bin logreplay) || { echo "cannot build logreplay" >&2; exit 1; }
copy_with_libs "$target_dir/release/logreplay" /usr/bin/logreplay
cp /etc/mke2fs.conf "$stage/etc/" 2>/dev/null || true
echo "root:x:0:0:root:/:/bin/sh" > "$stage/etc/passwd"

# Modules: the C thin-pool and its dependencies, the helpers, and ours.
for m in drivers/md/dm-bufio.ko drivers/md/dm-bio-prison.ko \
         drivers/md/persistent-data/dm-persistent-data.ko drivers/md/dm-thin-pool.ko \
         drivers/md/dm-flakey.ko drivers/md/dm-log-writes.ko drivers/md/dm-delay.ko \
         drivers/block/brd.ko drivers/block/null_blk/null_blk.ko fs/configfs/configfs.ko; do
    [ -f "$kdir/$m" ] || { echo "missing module $kdir/$m" >&2; exit 1; }
    cp "$kdir/$m" "$stage/modules/"
done
# DMRS_KO: the module built for another kernel (make bench: build/bench-mod).
ko=${DMRS_KO:-$top/dm_thin_rs.ko}
[ -f "$ko" ] || { echo "missing $ko: run make" >&2; exit 1; }
cp "$ko" "$stage/modules/dm_thin_rs.ko"

cp -r "$top/tests/vm" "$stage/tests"
# The hostile-metadata corpus of scenario 68, written by the host tool.
if [ "$mode" = test ]; then
    (cd "$top" && cargo build --release --quiet --bin thinmeta) || exit 1
    "$top/target/release/thinmeta" hostile-corpus "$stage/corpus" \
        --seed "${HOSTILE_CORPUS_SEED:-68}" --count "${HOSTILE_CORPUS_COUNT:-40}" || exit 1
fi
printf '%s\n' "$mode" > "$stage/etc/vm-mode"
printf '%s\n' "$@" > "$stage/etc/vm-args"
# The host's DMRS_*, HOSTILE_* and REPLAY_* variables (DMRS_SWEEP=all,
# DMRS_SEED=..., HOSTILE_ALL=1, ...) reach the guest's scenarios.
env | grep -E '^(DMRS|HOSTILE|REPLAY)_[A-Z0-9_]+=' | sed -E "s/^([^=]*)=(.*)$/export \1='\2'/" > "$stage/etc/vm-env" || true
cp "$top/qemu/init" "$stage/init"
chmod +x "$stage/init"

(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
