#!/usr/bin/env bash
# Installs the host packages dm-thin-rs needs: compiler, QEMU, the guest's tools.
# Idempotent: a stamp keyed by this file's content skips the work on a second run.
set -euo pipefail
. "$(dirname "$0")/common.sh"

stamp="$CACHE/stamps/packages-$(sha1sum "$0" | cut -c1-12)"
if [ -f "$stamp" ]; then
    exit 0
fi
mkdir -p "$CACHE/stamps"

log "adding bookworm-backports, trixie and trixie-backports (pinned low) to apt"
src=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$src" 2>/dev/null || true)
key=$(awk '/^Signed-By:/ {print $2; exit}' "$src" 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
key=${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
cat > /etc/apt/sources.list.d/dm-thin-rs.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: $key
SRC
# Nothing from trixie unless asked for by name.
cat > /etc/apt/preferences.d/dm-thin-rs <<PREF
Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: *
Pin: release n=trixie-backports
Pin-Priority: 1
PREF

# Another apt run (unattended upgrades, a second setup) holds the dpkg and
# lists locks: wait for it instead of failing at once.
APT_WAIT=(-o DPkg::Lock::Timeout=600)
log "apt-get update"
apt-get "${APT_WAIT[@]}" update -q || die "apt-get update failed"

log "installing build and guest packages"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends \
    clang-19 lld-19 llvm-19 libclang-19-dev \
    build-essential bc bison flex libelf-dev libssl-dev cpio kmod xz-utils zstd \
    busybox-static dmsetup e2fsprogs util-linux thin-provisioning-tools fio \
    ca-certificates python3 \
    || die "apt-get install of build packages failed"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends \
    -t bookworm-backports qemu-system-x86 \
    || die "apt-get install of qemu-system-x86 from bookworm-backports failed"

touch "$stamp"
log "packages ready"
