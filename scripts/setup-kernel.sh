#!/usr/bin/env bash
# Downloads the pinned linux-source-7.3 and builds the test kernel from
# tinyconfig plus qemu/kernel.config. Prints the kernel tree's path on stdout.
# Cached under $CACHE/kernel/<version>-<config hash>; a finished build is reused.
set -euo pipefail
. "$(dirname "$0")/common.sh"
export PATH=$HOME/.cargo/bin:$PATH

frag="$TOP/qemu/kernel.config"
mkdir -p "$CACHE/downloads"

deb=$(ls "$CACHE"/downloads/linux-source-${KSERIES}_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    log "downloading linux-source-$KSERIES=$KVER_PKG"
    if ! (cd "$CACHE/downloads" && apt-get download -q "linux-source-$KSERIES=$KVER_PKG") >&2; then
        log "pinned $KVER_PKG is gone; falling back to the newest linux-source-$KSERIES"
        (cd "$CACHE/downloads" && apt-get download -q "linux-source-$KSERIES") >&2 \
            || die "could not download linux-source-$KSERIES"
    fi
    deb=$(ls "$CACHE"/downloads/linux-source-${KSERIES}_*.deb | head -n1)
fi
ver=$(basename "$deb" | sed -E 's/^linux-source-[0-9.]+_([^_]+)_.*/\1/')
# Bump RECIPE when the way the kernel is built changes (not for edits that don't).
RECIPE=1
key="$ver-$( (cat "$frag"; echo "recipe $RECIPE") | sha1sum | cut -c1-10)"
kdir="$CACHE/kernel/$key/linux"
if [ -f "$CACHE/kernel/$key/built" ]; then
    echo "$kdir"
    exit 0
fi

# A new version or config replaces older builds (each is several GiB).
rm -rf "$CACHE/kernel"
mkdir -p "$CACHE/kernel/$key/x"
log "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$CACHE/kernel/$key/x" || die "dpkg-deb failed"
tarball=$(ls "$CACHE/kernel/$key"/x/usr/src/linux-source-*.tar.* | head -n1)
mkdir -p "$kdir"
tar -xf "$tarball" -C "$kdir" --strip-components=1 || die "could not unpack $tarball"
rm -rf "$CACHE/kernel/$key/x"

mk() { make -C "$kdir" LLVM=$LLVM_SUFFIX "$@"; }
log "configuring: tinyconfig + $(basename "$frag")"
mk tinyconfig >/dev/null
"$kdir/scripts/kconfig/merge_config.sh" -m -O "$kdir" "$kdir/.config" "$frag" >/dev/null
mk olddefconfig >/dev/null
mk rustavailable >&2 || die "Rust is not available for the kernel build (see above)"
# Every option the fragment asks for must have survived olddefconfig.
missing=""
while read -r line; do
    case "$line" in CONFIG_*=*) grep -qx "$line" "$kdir/.config" || missing="$missing $line";; esac
done < "$frag"
[ -z "$missing" ] || die "kernel config lost:$missing"

log "building bzImage and modules (about 5-10 minutes on 2 cores)"
start=$(date +%s)
( mk -j"$(nproc)" bzImage modules 2>&1 | tee "$CACHE/kernel/$key/build.log" \
    | grep --line-buffered -E '^\s+(LD|AR)\s|error|Error' >&2 ) || true
[ -f "$kdir/arch/x86/boot/bzImage" ] && grep -q . "$kdir/Module.symvers" 2>/dev/null \
    || die "kernel build failed: see $CACHE/kernel/$key/build.log"
log "kernel built in $(( $(date +%s) - start ))s"
touch "$CACHE/kernel/$key/built"
echo "$kdir"
