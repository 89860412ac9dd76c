//! The pool superblock in metadata block 0 (`struct thin_disk_superblock`).
//!
//! It is fewer than 512 bytes so that its write is atomic on any disk; the
//! rest of its 4 KiB block is zero. Committing a transaction means writing
//! this block last, after a flush: whatever roots it names are the pool.

use super::error::{Error, Result};
use crate::pdata::block_manager::BlockValidator;
use crate::pdata::error::{Error as PdataError, Result as PdataResult};

/// `THIN_SUPERBLOCK_MAGIC`.
pub const THIN_SUPERBLOCK_MAGIC: u64 = 27022010;
/// `THIN_SUPERBLOCK_LOCATION`: the superblock's metadata block.
pub const THIN_SUPERBLOCK_LOCATION: u64 = 0;
/// `THIN_VERSION`: the on-disk format version written by format.
pub const THIN_VERSION: u32 = 2;
/// Lowest version this code opens.
pub const THIN_MIN_VERSION: u32 = 1;
/// `SUPERBLOCK_CSUM_XOR`: the salt of the superblock checksum (kept with
/// the other salts in `pdata::checksum`).
pub use crate::pdata::checksum::SUPERBLOCK_CSUM_XOR;
/// `SPACE_MAP_ROOT_SIZE`: bytes reserved for each space map root.
pub const SPACE_MAP_ROOT_SIZE: usize = 128;
/// `THIN_METADATA_BLOCK_SIZE`, in 512-byte sectors.
pub const THIN_METADATA_BLOCK_SIZE: u32 = 8;
/// Metadata block size in bytes.
pub const METADATA_BLOCK_BYTES: usize = 4096;
/// `THIN_METADATA_NEEDS_CHECK_FLAG`: the pool must be checked before use.
pub const THIN_METADATA_NEEDS_CHECK_FLAG: u32 = 1 << 0;
/// `THIN_FEATURE_COMPAT_SUPP`.
pub const THIN_FEATURE_COMPAT_SUPP: u32 = 0;
/// `THIN_FEATURE_COMPAT_RO_SUPP`.
pub const THIN_FEATURE_COMPAT_RO_SUPP: u32 = 0;
/// `THIN_FEATURE_INCOMPAT_SUPP`.
pub const THIN_FEATURE_INCOMPAT_SUPP: u32 = 0;
/// Packed size of [`Superblock`].
pub const SUPERBLOCK_SIZE: usize = 364;

/// Bytes of the superblock covered by the checksum start here (after `csum`).
const CSUM_START: usize = 4;

/// Decoded superblock, fields in the C struct order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Checksum of the block from `flags` on (as read; recomputed on write).
    pub csum: u32,
    /// `THIN_METADATA_NEEDS_CHECK_FLAG` and nothing else so far.
    pub flags: u32,
    /// Block number this superblock was written to.
    pub blocknr: u64,
    /// Unused by the kernel; zero.
    pub uuid: [u8; 16],
    /// [`THIN_SUPERBLOCK_MAGIC`].
    pub magic: u64,
    /// Format version.
    pub version: u32,
    /// Pool time: bumped by each snapshot.
    pub time: u32,
    /// Userspace transaction id (`set_transaction_id`).
    pub trans_id: u64,
    /// Root of the metadata snapshot (a superblock copy), or 0.
    pub held_root: u64,
    /// Data space map root (`struct disk_sm_root`).
    pub data_space_map_root: [u8; SPACE_MAP_ROOT_SIZE],
    /// Metadata space map root.
    pub metadata_space_map_root: [u8; SPACE_MAP_ROOT_SIZE],
    /// Top of the two-level mapping tree (dev id, virtual block) -> block time.
    pub data_mapping_root: u64,
    /// Root of the device details tree dev id -> device details.
    pub device_details_root: u64,
    /// Data block size in 512-byte sectors.
    pub data_block_size: u32,
    /// Metadata block size in 512-byte sectors (8).
    pub metadata_block_size: u32,
    /// Metadata device size in metadata blocks.
    pub metadata_nr_blocks: u64,
    /// Compatible feature flags.
    pub compat_flags: u32,
    /// Features that prevent read-write opening if unknown.
    pub compat_ro_flags: u32,
    /// Features that prevent any opening if unknown.
    pub incompat_flags: u32,
}

impl Default for Superblock {
    fn default() -> Self {
        Superblock {
            csum: 0,
            flags: 0,
            blocknr: THIN_SUPERBLOCK_LOCATION,
            uuid: [0; 16],
            magic: THIN_SUPERBLOCK_MAGIC,
            version: THIN_VERSION,
            time: 0,
            trans_id: 0,
            held_root: 0,
            data_space_map_root: [0; SPACE_MAP_ROOT_SIZE],
            metadata_space_map_root: [0; SPACE_MAP_ROOT_SIZE],
            data_mapping_root: 0,
            device_details_root: 0,
            data_block_size: 0,
            metadata_block_size: THIN_METADATA_BLOCK_SIZE,
            metadata_nr_blocks: 0,
            compat_flags: 0,
            compat_ro_flags: 0,
            incompat_flags: 0,
        }
    }
}

/// Little-endian reader over a byte slice that never panics.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.at.checked_add(N).ok_or(Error::ShortBlock)?;
        let s = self.b.get(self.at..end).ok_or(Error::ShortBlock)?;
        self.at = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
}

/// Little-endian writer over a byte slice that never panics.
struct Wr<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl<'a> Wr<'a> {
    fn bytes(&mut self, v: &[u8]) -> Result<()> {
        let end = self.at.checked_add(v.len()).ok_or(Error::ShortBlock)?;
        self.b
            .get_mut(self.at..end)
            .ok_or(Error::ShortBlock)?
            .copy_from_slice(v);
        self.at = end;
        Ok(())
    }
    fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
}

impl Superblock {
    /// Decodes the superblock at the start of `b` without validating it.
    pub fn unpack(b: &[u8]) -> Result<Self> {
        let mut r = Rd { b, at: 0 };
        Ok(Superblock {
            csum: r.u32()?,
            flags: r.u32()?,
            blocknr: r.u64()?,
            uuid: r.bytes()?,
            magic: r.u64()?,
            version: r.u32()?,
            time: r.u32()?,
            trans_id: r.u64()?,
            held_root: r.u64()?,
            data_space_map_root: r.bytes()?,
            metadata_space_map_root: r.bytes()?,
            data_mapping_root: r.u64()?,
            device_details_root: r.u64()?,
            data_block_size: r.u32()?,
            metadata_block_size: r.u32()?,
            metadata_nr_blocks: r.u64()?,
            compat_flags: r.u32()?,
            compat_ro_flags: r.u32()?,
            incompat_flags: r.u32()?,
        })
    }

    /// Encodes into the start of `b`, fields in C order; the rest of `b` is
    /// left as it is. `csum` is written as stored: see [`prepare_for_write`].
    pub fn pack(&self, b: &mut [u8]) -> Result<()> {
        let mut w = Wr { b, at: 0 };
        w.u32(self.csum)?;
        w.u32(self.flags)?;
        w.u64(self.blocknr)?;
        w.bytes(&self.uuid)?;
        w.u64(self.magic)?;
        w.u32(self.version)?;
        w.u32(self.time)?;
        w.u64(self.trans_id)?;
        w.u64(self.held_root)?;
        w.bytes(&self.data_space_map_root)?;
        w.bytes(&self.metadata_space_map_root)?;
        w.u64(self.data_mapping_root)?;
        w.u64(self.device_details_root)?;
        w.u32(self.data_block_size)?;
        w.u32(self.metadata_block_size)?;
        w.u64(self.metadata_nr_blocks)?;
        w.u32(self.compat_flags)?;
        w.u32(self.compat_ro_flags)?;
        w.u32(self.incompat_flags)
    }

    /// Whether `THIN_METADATA_NEEDS_CHECK_FLAG` is set.
    pub fn needs_check(&self) -> bool {
        self.flags & THIN_METADATA_NEEDS_CHECK_FLAG != 0
    }

    /// Sets or clears `THIN_METADATA_NEEDS_CHECK_FLAG`.
    pub fn set_needs_check(&mut self, on: bool) {
        if on {
            self.flags |= THIN_METADATA_NEEDS_CHECK_FLAG;
        } else {
            self.flags &= !THIN_METADATA_NEEDS_CHECK_FLAG;
        }
    }

    /// `__check_incompat_features`: refuses unknown incompatible features,
    /// and unknown read-only-compatible ones when opening for writing.
    pub fn check_features(&self, read_only: bool) -> Result<()> {
        if self.incompat_flags & !THIN_FEATURE_INCOMPAT_SUPP != 0 {
            return Err(Error::UnsupportedIncompatFeatures);
        }
        if !read_only && self.compat_ro_flags & !THIN_FEATURE_COMPAT_RO_SUPP != 0 {
            return Err(Error::UnsupportedCompatRoFeatures);
        }
        Ok(())
    }
}

/// The superblock checksum of a whole block: crc32c of everything after the
/// `csum` field, xor [`SUPERBLOCK_CSUM_XOR`].
pub fn checksum(block: &[u8]) -> u32 {
    crate::pdata::checksum::dm_bm_checksum(
        block.get(CSUM_START..).unwrap_or(&[]),
        SUPERBLOCK_CSUM_XOR,
    )
}

/// The superblock's block validator (`sb_validator`) for the block manager.
pub struct SuperblockValidator;

/// The one [`SuperblockValidator`].
pub static SB_VALIDATOR: SuperblockValidator = SuperblockValidator;

impl BlockValidator for SuperblockValidator {
    fn name(&self) -> &'static str {
        "superblock"
    }

    fn prepare_for_write(&self, location: u64, data: &mut [u8]) {
        // Only fails on a short buffer, which the block manager never passes.
        let _ = prepare_for_write(data, location);
    }

    fn check(&self, location: u64, data: &[u8]) -> PdataResult<()> {
        check(data, location).map(|_| ()).map_err(|e| match e {
            Error::SuperblockBadBlocknr => PdataError::BlockNr,
            Error::SuperblockBadChecksum => PdataError::Checksum,
            _ => PdataError::BadSuperblock,
        })
    }
}

/// `sb_prepare_for_write`: stamps the block number and the checksum into a
/// packed superblock block.
pub fn prepare_for_write(block: &mut [u8], location: u64) -> Result<()> {
    block
        .get_mut(8..16)
        .ok_or(Error::ShortBlock)?
        .copy_from_slice(&location.to_le_bytes());
    let csum = checksum(block);
    block
        .get_mut(0..4)
        .ok_or(Error::ShortBlock)?
        .copy_from_slice(&csum.to_le_bytes());
    Ok(())
}

/// `sb_check`: validates a superblock block read from `location`, one
/// distinct error per failure, in the C order (block number, magic, checksum).
pub fn check(block: &[u8], location: u64) -> Result<Superblock> {
    let sb = Superblock::unpack(block)?;
    if sb.blocknr != location {
        return Err(Error::SuperblockBadBlocknr);
    }
    if sb.magic != THIN_SUPERBLOCK_MAGIC {
        return Err(Error::SuperblockBadMagic);
    }
    if checksum(block) != sb.csum {
        return Err(Error::SuperblockBadChecksum);
    }
    Ok(sb)
}

/// `__superblock_all_zeroes`: an unformatted device.
pub fn all_zeroes(block: &[u8]) -> bool {
    block.iter().all(|&b| b == 0)
}
