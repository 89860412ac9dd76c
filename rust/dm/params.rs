//! The module's parameters, kept in the C helper file (Rust module
//! parameters are integers only, and the string ones must sit beside them).

use crate::bindings;
use core::ffi::CStr;

/// The name the pool target registers under (`pool_target=`, default `thin-pool`).
pub fn pool_target_name() -> &'static CStr {
    // SAFETY: returns a NUL-terminated static buffer that lives as long as
    // the module; the parameter is read-only (0444) after load.
    unsafe { CStr::from_ptr(bindings::dmrs_pool_target_name().cast()) }
}

/// The name the thin target registers under (`thin_target=`, default `thin`).
pub fn thin_target_name() -> &'static CStr {
    // SAFETY: as for `pool_target_name`.
    unsafe { CStr::from_ptr(bindings::dmrs_thin_target_name().cast()) }
}

/// `no_space_timeout=` (seconds, default 60, writable at run time as in C):
/// how long a pool out of data space queues bios before failing them;
/// 0 queues forever.
pub fn no_space_timeout_secs() -> u32 {
    // SAFETY: reads an integer module parameter.
    unsafe { bindings::dmrs_no_space_timeout() }
}

/// Metadata blocks a pool opened now caches at most (`metadata_cache_mb=`;
/// by default 2% of memory, dm-bufio's share, and at least 4096 blocks).
pub fn metadata_cache_blocks() -> usize {
    // SAFETY: reads an integer module parameter and the RAM size.
    let blocks = unsafe { bindings::dmrs_metadata_cache_blocks() };
    usize::try_from(blocks).unwrap_or(usize::MAX)
}
