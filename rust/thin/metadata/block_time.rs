//! The value stored in the bottom level of the mapping tree.
//!
//! A mapping value is one little-endian `u64`: the data block in the top 40
//! bits and the pool time at which the mapping was made in the low 24 bits.
//! The time is what tells a thin device whether a block may be shared with a
//! snapshot (see [`super::thin_device`]).

/// Number of bits of a [`BlockTime`] that hold the time.
pub const TIME_BITS: u32 = 24;

/// Largest time that fits; the pool time wraps past it on disk.
pub const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// Largest data block number that fits in the 40 block bits.
pub const MAX_BLOCK: u64 = (1 << (64 - TIME_BITS)) - 1;

/// A data block and the time it was mapped, as packed in a mapping leaf
/// (`pack_block_time`/`unpack_block_time` in the C code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTime {
    /// Data block number (40 bits are kept on disk).
    pub block: u64,
    /// Pool time when the mapping was made (24 bits are kept on disk).
    pub time: u32,
}

impl BlockTime {
    /// A block/time pair.
    pub const fn new(block: u64, time: u32) -> Self {
        BlockTime { block, time }
    }

    /// The on-disk `u64` (before little-endian conversion). Bits that do
    /// not fit are dropped, as in C.
    pub const fn pack(self) -> u64 {
        (self.block << TIME_BITS) | (self.time as u64 & TIME_MASK)
    }

    /// Splits an on-disk value.
    pub const fn unpack(v: u64) -> Self {
        BlockTime {
            block: v >> TIME_BITS,
            time: (v & TIME_MASK) as u32,
        }
    }

    /// Packs into the 8 little-endian bytes of a btree value.
    pub const fn to_le_bytes(self) -> [u8; 8] {
        self.pack().to_le_bytes()
    }

    /// Unpacks from the 8 little-endian bytes of a btree value.
    pub const fn from_le_bytes(b: [u8; 8]) -> Self {
        Self::unpack(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for &(b, t) in &[
            (0u64, 0u32),
            (1, 1),
            (MAX_BLOCK, TIME_MASK as u32),
            (12345, 678),
        ] {
            let bt = BlockTime::new(b, t);
            assert_eq!(BlockTime::unpack(bt.pack()), bt);
            assert_eq!(BlockTime::from_le_bytes(bt.to_le_bytes()), bt);
        }
    }

    #[test]
    fn layout() {
        assert_eq!(BlockTime::new(1, 0).pack(), 1 << 24);
        assert_eq!(BlockTime::new(0, 5).pack(), 5);
        assert_eq!(
            BlockTime::unpack(0x0000_0000_0a00_0003),
            BlockTime::new(10, 3)
        );
        // Times wrap at 24 bits.
        assert_eq!(BlockTime::new(2, 0x0100_0001).pack(), (2 << 24) | 1);
    }
}
