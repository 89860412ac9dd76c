# Shared settings for the setup and build scripts. Sourced, not run.
CACHE=${DM_THIN_RS_CACHE:-$HOME/.cache/dm-thin-rs}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The pinned kernel source package, and the series to fall back on.
KVER_PKG=7.3.4-1~bpo13+1
KSERIES=7.3
LLVM_SUFFIX=-19
BINDGEN_VERSION=0.73.0

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
