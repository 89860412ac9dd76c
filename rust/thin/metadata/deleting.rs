//! Deletes that do not stall the pool (beyond C).
//!
//! C's `delete` drops the device's mapping tree in one call: `dm_btree_del`
//! walks every node and decrements every data block, in one transaction,
//! under the pool's metadata lock, so I/O to every other thin waits for the
//! whole walk (seconds for a device of millions of mappings).
//!
//! [`PoolMetadata::start_delete`] instead *detaches* a large device: its
//! mapping tree and details move, in one short transaction, to a free id
//! (the highest one a thin table line can name, and down), and its details
//! are marked as being deleted. The user's id is gone at once: it can be
//! created again, and the thin target no longer opens it. Then
//! [`PoolMetadata::reclaim_deleted`] removes the detached tree's mappings
//! in bounded batches (the pool's worker runs one between other work), each
//! batch a plain range removal, as a discard does; the data blocks come back
//! batch by batch, with each commit. When the tree is empty the device goes
//! as a C delete would.
//!
//! # The format
//!
//! Nothing new is stored: every commit in between is an ordinary pool in
//! which the detached device is a thin device like any other, with fewer
//! mappings at each commit. `thin_check` accepts it, `thin_dump` and
//! `thin_ls` list it, and C opens the pool (a C user may delete the device,
//! which then finishes in one walk). A crash in the middle leaves such a
//! pool, and the next open finds the marked device and goes on
//! ([`PoolMetadata::deleting`]).
//!
//! The mark is in the details C carries but never acts on: `transaction_id` and
//! `creation_time` both at their maximum, [`DELETING`]. C writes the pool's
//! transaction id and pool time there when it creates a device, so a real
//! device carries the mark only after four billion snapshots *and* a
//! transaction id set to 2^64 - 1.
//!
//! # What stays at once
//!
//! A device whose tree root is shared (a snapshot taken since its last
//! write: the delete only drops one reference) or that maps at most
//! [`DELETE_AT_ONCE`] blocks is deleted at once, as in C: its walk is as
//! short as a batch.

use super::device_details::DeviceDetails;
use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use super::thin_device::ThinId;
use super::value_types::{DETAILS_TREE, TOP_LEVEL};
use crate::pdata::block_device::BlockDevice;
use crate::pdata::transaction_manager::Transaction;

/// `(transaction_id, creation_time)` of a device being deleted.
pub const DELETING: (u64, u32) = (u64::MAX, u32::MAX);

/// The highest thin id a table line names (24 bits): detached trees take
/// the free ids from here down.
pub const MAX_THIN_ID: ThinId = (1 << 24) - 1;

/// Free ids tried for a detached tree before deleting at once instead.
const ID_TRIES: u64 = 64;

/// A device mapping at most this many blocks is deleted at once.
pub const DELETE_AT_ONCE: u64 = 1024;

impl DeviceDetails {
    /// Whether these are the details of a device being deleted.
    pub fn is_deleting(&self) -> bool {
        (self.transaction_id, self.creation_time) == DELETING
    }
}

/// What one [`PoolMetadata::reclaim_deleted`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reclaimed {
    /// Mappings removed.
    pub mappings: u64,
    /// A device being deleted is left (call again).
    pub more: bool,
}

impl<D: BlockDevice> PoolMetadata<D> {
    /// `delete` as the pool target runs it: like
    /// [`Self::delete_thin_device`], but a large device is detached and
    /// left to [`Self::reclaim_deleted`] (see the module documentation).
    /// Returns whether it was. Deleting a device already being deleted
    /// changes nothing.
    pub fn start_delete(&mut self, dev: ThinId) -> Result<bool> {
        self.write_begin()?;
        if self.deleting.contains(&dev) {
            return Ok(true);
        }
        let i = self.get_device(dev)?.ok_or(Error::NoSuchDevice)?;
        let td = self.devices.get(i).ok_or(Error::Corrupt)?;
        if td.open_count > 0 {
            return Err(Error::Busy);
        }
        if td.mapped_blocks <= DELETE_AT_ONCE {
            self.delete_thin_device(dev)?;
            return Ok(false);
        }
        let root = self.root;
        let pd = self.pd()?;
        let tree = TOP_LEVEL.lookup(&mut pd.tm, root, &[dev])?.ok_or(Error::Corrupt)?;
        if pd.tm.get_count(tree)? > 1 {
            self.delete_thin_device(dev)?;
            return Ok(false);
        }
        let Some(to) = self.free_id()? else {
            self.delete_thin_device(dev)?;
            return Ok(false);
        };
        self.detach(dev, to, tree)?;
        Ok(true)
    }

    /// Whether a device is being deleted (after an open too: the mark is
    /// on disk).
    pub fn deleting(&self) -> bool {
        !self.deleting.is_empty()
    }

    /// Removes up to `max` mappings of a device being deleted, and the
    /// device once it has none.
    pub fn reclaim_deleted(&mut self, max: u64) -> Result<Reclaimed> {
        let Some(&dev) = self.deleting.first() else {
            return Ok(Reclaimed::default());
        };
        self.write_begin()?;
        let (mappings, next) = self.remove_range_at_most(dev, 0, u64::MAX, max.max(1))?;
        self.reclaimed_uncommitted = true;
        if next == u64::MAX {
            self.delete_thin_device(dev)?;
            self.deleting.remove(0);
        }
        Ok(Reclaimed {
            mappings,
            more: self.deleting(),
        })
    }

    /// The highest id up to [`MAX_THIN_ID`] no device has, trying
    /// [`ID_TRIES`] ids.
    fn free_id(&mut self) -> Result<Option<ThinId>> {
        for id in (MAX_THIN_ID - ID_TRIES + 1..=MAX_THIN_ID).rev() {
            if !self.device_exists(id)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Moves `dev`'s mapping tree (root `tree`) and details to the free id
    /// `to`, marked as being deleted. Room in the lists is made first; a
    /// failure after the trees change leaves the transaction to the
    /// caller's abort, as every failed change does.
    fn detach(&mut self, dev: ThinId, to: ThinId, tree: u64) -> Result<()> {
        self.deleting.reserve(1)?;
        self.devices.reserve(1)?;
        let i = self.get_device(dev)?.ok_or(Error::Corrupt)?;
        let mut td = self.devices.remove(i).ok_or(Error::Corrupt)?;
        let (root, details_root) = (self.root, self.details_root);
        let pd = self.pd()?;
        let (dr, _) = DETAILS_TREE.remove(&mut pd.tm, &mut (), details_root, &[dev])?;
        self.details_root = dr;
        let pd = self.pd()?;
        // One more reference, so taking `dev` out of the top level drops
        // only that one and walks nothing.
        pd.tm.inc(tree)?;
        let (r, found) = TOP_LEVEL.remove(&mut pd.tm, &mut pd.data_sm, root, &[dev])?;
        if !found {
            return Err(Error::Corrupt);
        }
        self.root = TOP_LEVEL.insert(&mut pd.tm, &mut pd.data_sm, r, &[to], &tree)?;
        td.id = to;
        (td.transaction_id, td.creation_time) = DELETING;
        td.changed = true;
        td.root_cache.clear();
        self.devices.push(td)?;
        self.deleting.push(to)?;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// Lists the devices the details tree marks as being deleted (after an
    /// open or an abort).
    pub(super) fn find_deleting(&mut self) -> Result<()> {
        self.deleting.clear();
        let details_root = self.details_root;
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let deleting = &mut self.deleting;
        let mut err = None;
        let r = DETAILS_TREE.walk(&mut pd.tm, details_root, |keys, v| {
            let d = DeviceDetails::unpack(v).ok_or(crate::pdata::error::Error::ValueSize)?;
            match keys.first() {
                Some(&id) if d.is_deleting() => deleting
                    .push(id)
                    .inspect_err(|e| err = Some(Error::from(*e))),
                _ => Ok(()),
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        Ok(r?)
    }

    /// Whether `dev` is a device being deleted (no longer the user's).
    pub(super) fn is_being_deleted(&self, dev: ThinId) -> bool {
        self.deleting.contains(&dev)
    }
}
