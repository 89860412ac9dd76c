//! The btree value types of the thin metadata (`__setup_btree_details`).
//!
//! - [`DataBlockValue`]: a [`BlockTime`] whose references are counted in
//!   the data space map (`data_block_inc/dec/equal`); the bottom level of
//!   the mapping tree.
//! - [`SubtreeValue`]: the root of one device's mapping tree, used when the
//!   top level is handled alone (`subtree_inc/dec/equal`): deleting an entry
//!   deletes the device's whole tree.
//! - [`DetailsValue`]: packed [`DeviceDetails`](super::DeviceDetails), not
//!   reference counted.

use super::block_time::BlockTime;
use super::device_details::DEVICE_DETAILS_SIZE;
use crate::pdata::btree::{Btree, Bytes, ValueType};
use crate::pdata::error::Result;
use crate::pdata::space_map::DiskSpaceMap;
use crate::pdata::transaction_manager::Transaction;

/// A mapping: data block + time, counted in the data space map.
pub struct DataBlockValue;

impl ValueType for DataBlockValue {
    const SIZE: usize = 8;
    type Value = BlockTime;
    type Context = DiskSpaceMap;

    fn unpack(b: &[u8]) -> BlockTime {
        let mut x = [0u8; 8];
        if let Some(s) = b.get(..8) {
            x.copy_from_slice(s);
        }
        BlockTime::from_le_bytes(x)
    }

    fn pack(v: &BlockTime, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..8) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn inc<T: Transaction>(sm: &mut DiskSpaceMap, tm: &mut T, v: &BlockTime) -> Result<()> {
        sm.inc(tm, v.block)
    }

    fn dec<T: Transaction>(sm: &mut DiskSpaceMap, tm: &mut T, v: &BlockTime) -> Result<()> {
        sm.dec(tm, v.block)
    }

    /// Consecutive data blocks are decremented as one range (C's
    /// `dm_sm_dec_blocks` over runs).
    fn dec_many<T: Transaction>(sm: &mut DiskSpaceMap, tm: &mut T, vs: &[BlockTime]) -> Result<()> {
        let mut run: Option<(u64, u64)> = None;
        for v in vs {
            run = match run {
                Some((b, e)) if e == v.block => Some((b, e + 1)),
                Some((b, e)) => {
                    sm.dec_range(tm, b, e)?;
                    Some((v.block, v.block.saturating_add(1)))
                }
                None => Some((v.block, v.block.saturating_add(1))),
            };
        }
        match run {
            Some((b, e)) => sm.dec_range(tm, b, e),
            None => Ok(()),
        }
    }

    /// `data_block_equal`: the same data block, whatever the times.
    fn equal(a: &BlockTime, b: &BlockTime) -> bool {
        a.block == b.block
    }
}

/// The root of a device's mapping tree, as a top-level value on its own.
pub struct SubtreeValue;

impl ValueType for SubtreeValue {
    const SIZE: usize = 8;
    type Value = u64;
    type Context = DiskSpaceMap;

    fn unpack(b: &[u8]) -> u64 {
        let mut x = [0u8; 8];
        if let Some(s) = b.get(..8) {
            x.copy_from_slice(s);
        }
        u64::from_le_bytes(x)
    }

    fn pack(v: &u64, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..8) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// `subtree_inc`: one more reference to the subtree's root block.
    fn inc<T: Transaction>(_sm: &mut DiskSpaceMap, tm: &mut T, root: &u64) -> Result<()> {
        tm.inc(*root)
    }

    /// `subtree_dec`: drops the subtree (and, where no longer shared, its
    /// nodes and data block references).
    fn dec<T: Transaction>(sm: &mut DiskSpaceMap, tm: &mut T, root: &u64) -> Result<()> {
        BOTTOM_LEVEL.del(tm, sm, *root)
    }
}

/// Device details: opaque 24 bytes to the btree.
pub type DetailsValue = Bytes<DEVICE_DETAILS_SIZE>;

/// `pmd->info`: the whole two-level mapping tree (dev id, virtual block).
pub const MAPPING_TREE: Btree<DataBlockValue> = Btree::new(2);
/// `pmd->tl_info`: the top level alone (dev id -> subtree root).
pub const TOP_LEVEL: Btree<SubtreeValue> = Btree::new(1);
/// `pmd->bl_info`: one device's tree alone (virtual block -> block time).
pub const BOTTOM_LEVEL: Btree<DataBlockValue> = Btree::new(1);
/// `pmd->details_info`: dev id -> device details.
pub const DETAILS_TREE: Btree<DetailsValue> = Btree::new(1);
