//! Thin devices in the pool's metadata: loading a device's details,
//! creating thins and snapshots, deleting, holding open, listing
//! (`dm_pool_create_thin`, `dm_pool_create_snap`,
//! `dm_pool_delete_thin_device`, `__open_device`).
//!
//! Per-device mapping operations are in [`super::thin_device`]; deletes
//! done in batches in [`super::deleting`].

use super::device_details::DeviceDetails;
use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use super::thin_device::{ThinDevice, ThinId};
use super::value_types::{DETAILS_TREE, TOP_LEVEL};
use crate::pdata::alloc::Vec;
use crate::pdata::block_device::BlockDevice;
use crate::pdata::transaction_manager::Transaction;

impl<D: BlockDevice> PoolMetadata<D> {
    /// `__open_device` with `create = false`: index of `dev` in the in-core
    /// list, loading its details if needed. `None` if no such device.
    pub(super) fn get_device(&mut self, dev: ThinId) -> Result<Option<usize>> {
        // In-core device state is stale in the failed state too.
        if self.pd.is_none() {
            return Err(Error::FailIo);
        }
        if let Some(i) = self.devices.iter().position(|td| td.id == dev) {
            return Ok(Some(i));
        }
        let details_root = self.details_root;
        let pd = self.pd()?;
        let Some(b) = DETAILS_TREE.lookup(&mut pd.tm, details_root, &[dev])? else {
            return Ok(None);
        };
        let d = DeviceDetails::unpack(&b).ok_or(Error::Corrupt)?;
        let mut td = ThinDevice::new(dev);
        td.load(&d);
        self.devices.push(td)?;
        Ok(Some(self.devices.len() - 1))
    }

    /// `__open_device` with `create = true` for a device known not to exist.
    fn new_device(&mut self, dev: ThinId) -> Result<usize> {
        let mut td = ThinDevice::new(dev);
        td.changed = true;
        td.transaction_id = self.trans_id;
        td.creation_time = self.time;
        td.snapshotted_time = self.time;
        self.devices.push(td)?;
        Ok(self.devices.len() - 1)
    }

    pub(super) fn device_exists(&mut self, dev: ThinId) -> Result<bool> {
        if self.devices.iter().any(|td| td.id == dev) {
            return Ok(true);
        }
        let details_root = self.details_root;
        let pd = self.pd()?;
        Ok(DETAILS_TREE
            .lookup(&mut pd.tm, details_root, &[dev])?
            .is_some())
    }

    /// `dm_pool_create_thin`: a new, empty thin device.
    ///
    /// Either the device exists afterwards or nothing changed: room in the
    /// in-core device list is made before the trees change, and a device
    /// that still cannot be listed is taken out of the mapping tree again
    /// (C `__create_thin`).
    pub fn create_thin(&mut self, dev: ThinId) -> Result<()> {
        self.write_begin()?;
        if self.device_exists(dev)? {
            return Err(Error::Exists);
        }
        self.devices.reserve(1)?;
        let root = self.root;
        let pd = self.pd()?;
        let dev_root = super::value_types::BOTTOM_LEVEL.empty(&mut pd.tm)?;
        match TOP_LEVEL.insert(&mut pd.tm, &mut pd.data_sm, root, &[dev], &dev_root) {
            Ok(r) => self.root = r,
            Err(e) => {
                let _ = super::value_types::BOTTOM_LEVEL.del(&mut pd.tm, &mut pd.data_sm, dev_root);
                return Err(e.into());
            }
        }
        if let Err(e) = self.new_device(dev) {
            self.unlink_new_device(dev);
            return Err(e);
        }
        Ok(())
    }

    /// Takes a device whose creation failed after its top-level entry was
    /// inserted out of the mapping tree again; dropping the entry drops
    /// its subtree's reference (C: `dm_btree_remove` on the `bad:` path).
    fn unlink_new_device(&mut self, dev: ThinId) {
        let root = self.root;
        if let Ok(pd) = self.pd() {
            if let Ok((r, _)) = TOP_LEVEL.remove(&mut pd.tm, &mut pd.data_sm, root, &[dev]) {
                self.root = r;
            }
        }
    }

    /// `dm_pool_create_snap`: a new device `dev` sharing every mapping of
    /// `origin`. The pool time goes up so that both devices see the shared
    /// mappings as older than their last snapshot.
    ///
    /// Either the snapshot exists afterwards or nothing changed (trees,
    /// pool time, the origin's snapshot time), as for [`Self::create_thin`].
    pub fn create_snap(&mut self, dev: ThinId, origin: ThinId) -> Result<()> {
        self.write_begin()?;
        if self.device_exists(dev)? {
            return Err(Error::Exists);
        }
        if self.is_being_deleted(origin) {
            return Err(Error::NoSuchDevice);
        }
        let root = self.root;
        let pd = self.pd()?;
        let origin_root = TOP_LEVEL
            .lookup(&mut pd.tm, root, &[origin])?
            .ok_or(Error::NoSuchDevice)?;
        let oi = self.get_device(origin)?.ok_or(Error::Corrupt)?;
        self.devices.reserve(1)?;
        let pd = self.pd()?;
        // Clone the origin's tree: one more reference to its root will do.
        pd.tm.inc(origin_root)?;
        match TOP_LEVEL.insert(&mut pd.tm, &mut pd.data_sm, root, &[dev], &origin_root) {
            Ok(r) => self.root = r,
            Err(e) => {
                let _ = pd.tm.dec(origin_root);
                return Err(e.into());
            }
        }
        let old_time = self.time;
        self.time = self.time.wrapping_add(1);
        let time = self.time;
        let si = match self.new_device(dev) {
            Ok(si) => si,
            Err(e) => {
                self.time = old_time;
                self.unlink_new_device(dev);
                return Err(e);
            }
        };
        let mapped = match self.devices.get_mut(oi) {
            Some(o) => {
                o.changed = true;
                o.snapshotted_time = time;
                o.mapped_blocks
            }
            None => return Err(Error::Corrupt),
        };
        if let Some(s) = self.devices.get_mut(si) {
            s.mapped_blocks = mapped;
            s.snapshotted_time = time;
        }
        Ok(())
    }

    /// `dm_pool_delete_thin_device`: removes a device, its details and its
    /// whole mapping tree (data blocks no longer referenced become free at
    /// the next commit). `Busy` if the device is open.
    ///
    /// A device being deleted (see [`super::deleting`]) goes at once.
    pub fn delete_thin_device(&mut self, dev: ThinId) -> Result<()> {
        self.write_begin()?;
        let i = self.get_device(dev)?.ok_or(Error::NoSuchDevice)?;
        if self.devices.get(i).is_some_and(|td| td.open_count > 0) {
            return Err(Error::Busy);
        }
        self.devices.remove(i);
        let (root, details_root) = (self.root, self.details_root);
        let pd = self.pd()?;
        let (dr, _) = DETAILS_TREE.remove(&mut pd.tm, &mut (), details_root, &[dev])?;
        self.details_root = dr;
        let pd = self.pd()?;
        let (r, found) = TOP_LEVEL.remove(&mut pd.tm, &mut pd.data_sm, root, &[dev])?;
        self.root = r;
        if !found {
            return Err(Error::Corrupt);
        }
        if let Some(k) = self.deleting.iter().position(|&d| d == dev) {
            self.deleting.remove(k);
        }
        Ok(())
    }

    /// `dm_pool_open_thin_device`: holds `dev` open (it cannot be deleted
    /// while open). Pair with [`Self::close_thin_device`].
    pub fn open_thin_device(&mut self, dev: ThinId) -> Result<()> {
        if self.pd.is_none() {
            return Err(Error::FailIo);
        }
        // A device being deleted is no longer the user's.
        if self.is_being_deleted(dev) {
            return Err(Error::NoSuchDevice);
        }
        let i = self.get_device(dev)?.ok_or(Error::NoSuchDevice)?;
        if let Some(td) = self.devices.get_mut(i) {
            td.open_count = td.open_count.saturating_add(1);
        }
        Ok(())
    }

    /// `dm_pool_close_thin_device`.
    pub fn close_thin_device(&mut self, dev: ThinId) {
        if let Some(td) = self.devices.iter_mut().find(|td| td.id == dev) {
            td.open_count = td.open_count.saturating_sub(1);
        }
    }

    /// Every device with its details as they stand in this transaction,
    /// in id order (`thin_dump`, `thin_ls`): the details tree overlaid with
    /// the in-core state of devices changed or created since the commit.
    pub fn walk_devices<F>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(ThinId, &DeviceDetails) -> Result<()>,
    {
        let details_root = self.details_root;
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let devices = &self.devices;
        let mut all: Vec<(ThinId, DeviceDetails)> = Vec::new();
        let mut err = None;
        let r = DETAILS_TREE.walk(&mut pd.tm, details_root, |keys, v| {
            let id = keys.first().copied().unwrap_or(0);
            let d = match devices.iter().find(|td| td.id == id) {
                Some(td) => td.details(),
                None => DeviceDetails::unpack(v).ok_or(crate::pdata::error::Error::ValueSize)?,
            };
            all.push((id, d))
                .inspect_err(|e| err = Some(Error::from(*e)))
        });
        if let Some(e) = err {
            return Err(e);
        }
        r?;
        // Devices created in this transaction are not in the tree yet.
        let known = all.len();
        for td in devices.iter() {
            let listed = all
                .get(..known)
                .is_some_and(|a| a.iter().any(|(id, _)| *id == td.id));
            if !listed {
                all.push((td.id, td.details()))?;
            }
        }
        all.sort_unstable_by_key(|(id, _)| *id);
        for (id, d) in all.iter() {
            f(*id, d)?;
        }
        Ok(())
    }
}
