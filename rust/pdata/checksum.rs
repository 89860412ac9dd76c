//! CRC32c and the block checksum of `dm_bm_checksum`, plus every checksum
//! salt used by the on-disk format, in one place.
//!
//! The kernel's `crc32c(seed, data, len)` is the raw reflected CRC-32C
//! (Castagnoli, polynomial 0x82F63B78) with neither an initial nor a final
//! inversion applied by the function itself; `dm_bm_checksum` seeds it with
//! `~0` and xors the result with a per-structure salt:
//!
//! ```text
//! csum = crc32c(0xffffffff, block + 4, 4092) ^ salt
//! ```
//!
//! On the host the CRC is computed here with a slice-by-8 table (built at
//! compile time); in the kernel build it calls the exported `crc32c()`
//! through `crate::dm::crc32c`, which may be hardware accelerated.

/// Salt of btree nodes (`BTREE_CSUM_XOR`, dm-btree-spine.c).
pub const BTREE_CSUM_XOR: u32 = 121107;
/// Salt of space-map bitmap blocks (`BITMAP_CSUM_XOR`, dm-space-map-common.c).
pub const BITMAP_CSUM_XOR: u32 = 240779;
/// Salt of the metadata space-map index block (`INDEX_CSUM_XOR`, dm-space-map-common.c).
pub const INDEX_CSUM_XOR: u32 = 160478;
/// Salt of the thin-pool superblock (`SUPERBLOCK_CSUM_XOR`, dm-thin-metadata.c).
pub const SUPERBLOCK_CSUM_XOR: u32 = 160774;

const POLY: u32 = 0x82F6_3B78;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Raw CRC32c update, identical to the kernel's `crc32c(seed, data, len)`
/// (no inversion in or out). Pure Rust, slice-by-8.
pub fn crc32c_sw(seed: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut crc = seed;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u32) & 0xff) as usize];
    }
    crc
}

/// Raw CRC32c as the kernel computes it: `crc32c(seed, data)`.
#[cfg(not(dm_thin_kernel))]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    crc32c_sw(seed, data)
}

/// Raw CRC32c as the kernel computes it: `crc32c(seed, data)`.
#[cfg(dm_thin_kernel)]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    crate::dm::crc32c(seed, data)
}

/// `dm_bm_checksum(data, len, init_xor)`: `crc32c(~0, data) ^ init_xor`.
pub fn dm_bm_checksum(data: &[u8], init_xor: u32) -> u32 {
    crc32c(!0, data) ^ init_xor
}

/// The checksum of a whole metadata block: everything after the leading
/// 4-byte `csum` field, salted. Returns 0 for blocks shorter than 4 bytes.
pub fn block_checksum(block: &[u8], salt: u32) -> u32 {
    match block.get(4..) {
        Some(rest) => dm_bm_checksum(rest, salt),
        None => 0,
    }
}

/// Reads the little-endian `csum` field at the start of a block.
pub fn stored_checksum(block: &[u8]) -> u32 {
    match block.get(0..4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Computes and stores the checksum of `block` (first 4 bytes).
pub fn stamp_checksum(block: &mut [u8], salt: u32) {
    let c = block_checksum(block, salt);
    if let Some(dst) = block.get_mut(0..4) {
        dst.copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitwise(seed: u32, data: &[u8]) -> u32 {
        let mut crc = seed;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn standard_check_value() {
        // The standard CRC-32C check: init ~0, final xor ~0, "123456789".
        assert_eq!(!crc32c_sw(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn slice_by_8_matches_bitwise() {
        let mut data = [0u8; 1000];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 999, 1000] {
            assert_eq!(crc32c_sw(!0, &data[..len]), bitwise(!0, &data[..len]));
            assert_eq!(
                crc32c_sw(0x1234, &data[..len]),
                bitwise(0x1234, &data[..len])
            );
        }
    }
}
