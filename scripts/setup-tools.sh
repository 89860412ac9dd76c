#!/usr/bin/env bash
# The second oracle: thin-provisioning-tools 1.1.0 (Rust) from trixie, extracted
# (not installed) under $CACHE/tools/tpt-1.1.0, run as `pdata_tools thin_check`.
set -euo pipefail
. "$(dirname "$0")/common.sh"

dest="$CACHE/tools/tpt-1.1.0"
if [ -x "$dest/usr/sbin/pdata_tools" ]; then
    exit 0
fi
mkdir -p "$CACHE/downloads"
deb=$(ls "$CACHE"/downloads/thin-provisioning-tools_1.1.0*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    log "downloading thin-provisioning-tools 1.1.0 from trixie"
    (cd "$CACHE/downloads" && apt-get -o DPkg::Lock::Timeout=600 download -q thin-provisioning-tools/trixie) >&2 \
        || die "could not download thin-provisioning-tools from trixie"
    deb=$(ls "$CACHE"/downloads/thin-provisioning-tools_1.1.0*.deb | head -n1)
fi
rm -rf "$dest"; mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest" || die "dpkg-deb -x $deb failed"
"$dest/usr/sbin/pdata_tools" thin_check --version >/dev/null 2>&1 \
    || die "pdata_tools from $deb does not run here"
log "thin-provisioning-tools 1.1.0 ready in $dest"
