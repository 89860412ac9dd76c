#!/usr/bin/env bash
# Downloads the pinned linux-source-7.3 and builds a kernel from it:
#   setup-kernel.sh [test]  tinyconfig + qemu/kernel.config (KASAN, lockdep, ...)
#   setup-kernel.sh bench   the same + qemu/kernel-bench.config (no debugging, -O2)
# Prints the kernel tree's path on stdout. Cached under $CACHE/kernel/<key>
# (test) or $CACHE/kernel-bench/<key> (bench), key = <version>-<config hash>;
# a finished build is reused, and each flavour replaces only its own old builds.
set -euo pipefail
. "$(dirname "$0")/common.sh"
export PATH=$HOME/.cargo/bin:$PATH

flavour=${1:-test}
case "$flavour" in
    test) frags=("$TOP/qemu/kernel.config"); kcache="$CACHE/kernel" ;;
    bench) frags=("$TOP/qemu/kernel.config" "$TOP/qemu/kernel-bench.config"); kcache="$CACHE/kernel-bench" ;;
    *) die "unknown kernel flavour '$flavour' (test or bench)" ;;
esac
mkdir -p "$CACHE/downloads"

deb=$(ls "$CACHE"/downloads/linux-source-${KSERIES}_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    log "downloading linux-source-$KSERIES=$KVER_PKG"
    if ! (cd "$CACHE/downloads" && apt-get -o DPkg::Lock::Timeout=600 download -q "linux-source-$KSERIES=$KVER_PKG") >&2; then
        log "pinned $KVER_PKG is gone; falling back to the newest linux-source-$KSERIES"
        (cd "$CACHE/downloads" && apt-get -o DPkg::Lock::Timeout=600 download -q "linux-source-$KSERIES") >&2 \
            || die "could not download linux-source-$KSERIES"
    fi
    deb=$(ls "$CACHE"/downloads/linux-source-${KSERIES}_*.deb | head -n1)
fi
ver=$(basename "$deb" | sed -E 's/^linux-source-[0-9.]+_([^_]+)_.*/\1/')
# Bump RECIPE when the way the kernel is built changes (not for edits that don't).
RECIPE=1
key="$ver-$( (cat "${frags[@]}"; echo "recipe $RECIPE") | sha1sum | cut -c1-10)"
kdir="$kcache/$key/linux"
if [ -f "$kcache/$key/built" ]; then
    echo "$kdir"
    exit 0
fi

# A new version or config replaces older builds (each is several GiB); the
# newest finished one stays, as a run elsewhere may still be using it.
# (None yet on a fresh machine: `ls` then fails, which pipefail must not see.)
prev=$( { ls -1td "$kcache"/*/built 2>/dev/null || true; } | head -n1 | xargs -r dirname)
for d in "$kcache"/*; do
    if [ -d "$d" ] && [ "$d" != "$prev" ]; then rm -rf "$d"; fi
done
mkdir -p "$kcache/$key/x"
log "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$kcache/$key/x" || die "dpkg-deb failed"
tarball=$(ls "$kcache/$key"/x/usr/src/linux-source-*.tar.* | head -n1)
mkdir -p "$kdir"
tar -xf "$tarball" -C "$kdir" --strip-components=1 || die "could not unpack $tarball"
rm -rf "$kcache/$key/x"

mk() { make -C "$kdir" LLVM=$LLVM_SUFFIX "$@"; }
log "configuring ($flavour kernel): tinyconfig + $(for f in "${frags[@]}"; do basename "$f"; done | paste -sd+)"
mk tinyconfig >/dev/null
"$kdir/scripts/kconfig/merge_config.sh" -m -O "$kdir" "$kdir/.config" "${frags[@]}" >/dev/null
mk olddefconfig >/dev/null
mk rustavailable >&2 || die "Rust is not available for the kernel build (see above)"
# Every option the fragments ask for (the last fragment to name it wins) must
# have survived olddefconfig: set ones as asked, "is not set" ones unset.
missing=""
while read -r opt want; do
    if [ "$want" = n ]; then
        if grep -q "^$opt=" "$kdir/.config"; then missing="$missing $opt=n"; fi
    else
        grep -qx "$opt=$want" "$kdir/.config" || missing="$missing $opt=$want"
    fi
done < <(cat "${frags[@]}" | sed -nE 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)/\1 \2/p; s/^# (CONFIG_[A-Za-z0-9_]+) is not set/\1 n/p' \
         | awk '{ v[$1] = $2; if (!($1 in o)) { o[$1] = n++; k[n - 1] = $1 } } END { for (i = 0; i < n; i++) print k[i], v[k[i]] }')
[ -z "$missing" ] || die "kernel config lost:$missing"

log "building the $flavour kernel: bzImage and modules (about 5-10 minutes on 2 cores)"
start=$(date +%s)
( mk -j"$(nproc)" bzImage modules 2>&1 | tee "$kcache/$key/build.log" \
    | grep --line-buffered -E '^\s+(LD|AR)\s|error|Error' >&2 ) || true
[ -f "$kdir/arch/x86/boot/bzImage" ] && grep -q . "$kdir/Module.symvers" 2>/dev/null \
    || die "kernel build failed: see $kcache/$key/build.log"
log "kernel built in $(( $(date +%s) - start ))s"
touch "$kcache/$key/built"
echo "$kdir"
