//! The kernel's crc32c, for the persistent-data block checksums.

use crate::bindings;

/// Raw CRC-32C of `data` continuing from `seed` (no final inversion), as the
/// kernel's `crc32c()` computes it (hardware-accelerated where available).
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is a valid slice of `data.len()` readable bytes; crc32c
    // only reads them.
    unsafe { bindings::crc32c(seed, data.as_ptr().cast(), data.len()) }
}
