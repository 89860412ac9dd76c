//! Little-endian field access within a block, as every on-disk struct is laid out.
//!
//! Offsets come from the format, but the buffers may be short (a damaged or
//! truncated value): reads past the end give 0 and writes past the end are
//! dropped, never a panic. Validators reject such blocks before they are used.

/// The `__le32` at `off`, or 0 if it lies past the end of `d`.
pub fn rd32(d: &[u8], off: usize) -> u32 {
    match d
        .get(off..off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    {
        Some(b) => u32::from_le_bytes(b),
        None => 0,
    }
}

/// The `__le64` at `off`, or 0 if it lies past the end of `d`.
pub fn rd64(d: &[u8], off: usize) -> u64 {
    match d
        .get(off..off + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
    {
        Some(b) => u64::from_le_bytes(b),
        None => 0,
    }
}

/// Stores `v` as `__le32` at `off` (dropped if past the end of `d`).
pub fn wr32(d: &mut [u8], off: usize, v: u32) {
    if let Some(b) = d.get_mut(off..off + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// Stores `v` as `__le64` at `off` (dropped if past the end of `d`).
pub fn wr64(d: &mut [u8], off: usize, v: u64) {
    if let Some(b) = d.get_mut(off..off + 8) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}
