//! The pool's metadata as a whole (`struct dm_pool_metadata`): open or
//! format, commit and abort, the transaction id, read-only and
//! `needs_check`.
//!
//! Its other operations live beside it, one file each: devices (create,
//! snapshot, delete, open) in [`super::devices`], deletes done in batches
//! in [`super::deleting`], per-device lookups, inserts and removals in
//! [`super::thin_device`], space accounting in [`super::space`], metadata
//! snapshots in [`super::metadata_snap`], references in flight in
//! [`super::in_flight`].
//!
//! # Commits
//!
//! Every path that commits ([`PoolMetadata::commit`],
//! [`PoolMetadata::reserve_metadata_snap`], [`PoolMetadata::close`], and the
//! first commit of a format) goes through one function, which first calls
//! the device's [`BlockDevice::pre_commit`]: the pool's metadata device
//! flushes the data device there, so no superblock ever names a data block
//! whose contents are not durable (C: the callback of
//! `dm_pool_register_pre_commit_callback`). A failure there stops the
//! commit before anything is written. A pool with nothing changed since
//! the last commit skips both.
//!
//! The owner may flush the data device itself, with no lock held, before
//! it takes the metadata for a commit: it reads [`PoolMetadata::generation`]
//! first, and after the flush calls [`PoolMetadata::data_flushed`] with it.
//! The next commit then skips the barrier if nothing changed since that
//! read: every mapping it commits was made before the read, after its data
//! was written, so the flush covered that data. So the pool's `map`s go on
//! during the data device's flush, the slow part of a commit. Then: changed device details, the data
//! space map, the metadata space map, and the superblock last (see the
//! commit contract in `pdata::transaction_manager`): one batch of writes,
//! a flush, one FUA write.
//!
//! [`PoolMetadata::set_needs_check`] is not a commit: it edits the flags of
//! the committed superblock on disk at once, also in read-only mode, and
//! runs no barrier (the data device may be what failed).
//!
//! # Failure
//!
//! After a failed commit or any failed change, the owner calls
//! [`PoolMetadata::abort`], which reloads everything from the last
//! committed superblock. If the abort itself fails, the persistent objects
//! are dropped (C `fail_io`): every later call answers [`Error::FailIo`],
//! and only [`PoolMetadata::close`] is left. Read-only mode
//! ([`PoolMetadata::set_read_only`]) refuses every change and commit.
//!
//! # Non-blocking lookups
//!
//! [`PoolMetadata::find_block`] with `can_issue_io = false` is the target's
//! `map()` path: it answers from cached metadata only, and
//! [`Error::WouldBlock`] when it would need I/O (a cache miss, a block
//! write-locked, a device whose details are not in core); the caller defers
//! the bio to the worker, whose blocking lookup then warms the cache.

use super::device_details::DeviceDetails;
use super::error::{Error, Result};
use super::in_flight::IN_FLIGHT_RESERVE;
use super::superblock::{
    self, Superblock, SB_VALIDATOR, SPACE_MAP_ROOT_SIZE, THIN_METADATA_BLOCK_SIZE,
    THIN_METADATA_NEEDS_CHECK_FLAG, THIN_SUPERBLOCK_LOCATION, THIN_VERSION,
};
use super::thin_device::{ThinDevice, ThinId};
use super::value_types::{DETAILS_TREE, MAPPING_TREE};
use crate::pdata::alloc::Vec;
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::block_manager::BlockManager;
use crate::pdata::space_map::{DiskSpaceMap, DM_SM_METADATA_MAX_BLOCKS};
use crate::pdata::transaction_manager::{Transaction, TransactionManager};

/// Default number of metadata blocks the block manager caches.
pub const DEFAULT_CACHE_BLOCKS: usize = 4096;

/// Most metadata blocks held back from the reported free count (16 MiB).
const MAX_METADATA_RESERVE: u64 = 4096;

/// The persistent-data objects of an open pool: gone after a failed abort
/// (the C `fail_io` state), when only closing is possible.
pub(super) struct Persistent<D: BlockDevice> {
    pub(super) tm: TransactionManager<D>,
    pub(super) data_sm: DiskSpaceMap,
}

/// The metadata of one pool (`struct dm_pool_metadata`).
///
/// Locking: none inside. The owner (the pool target, or `thinmeta`) holds
/// it behind one lock; `&mut self` methods are the C `pmd_write_lock`
/// sections and the lookups take `&mut self` too, because a lookup may load
/// blocks into the cache; but for [`find_block_shared`](Self::find_block_shared),
/// through `&self`, which `map()` calls under the pool's lock held shared.
/// Lifetime: from [`PoolMetadata::open`] to
/// [`PoolMetadata::close`] (dropping it without closing loses the open
/// transaction, as a crash would).
pub struct PoolMetadata<D: BlockDevice> {
    /// `None` once an abort failed (`fail_io`).
    pub(super) pd: Option<Persistent<D>>,
    /// Pool time: bumped by every snapshot.
    pub(super) time: u32,
    /// Root of the two-level mapping tree.
    pub(super) root: u64,
    /// Root of the device details tree.
    pub(super) details_root: u64,
    /// Metadata snapshot root, 0 if none.
    pub(super) held_root: u64,
    /// Userspace transaction id.
    pub(super) trans_id: u64,
    /// Superblock flags (needs_check).
    pub(super) flags: u32,
    /// Data block size in sectors.
    pub(super) data_block_size: u32,
    /// Metadata blocks not reported as free.
    pub(super) metadata_reserve: u64,
    /// Devices opened or changed in this transaction (`thin_devices` list).
    pub(super) devices: Vec<ThinDevice>,
    /// Set by any operation that changes metadata: a pool never touched is
    /// not committed (so a read-only look leaves the superblock alone).
    pub(super) in_service: bool,
    /// Set by [`Self::set_read_only`]: no commits.
    pub(super) read_only: bool,
    /// Data device size after a resize in this transaction (the data space
    /// map reports its committed size until the commit).
    pub(super) data_nr_blocks_pending: Option<u64>,
    /// Bumped by every change: a device's cached mapping-tree root (see
    /// [`ThinDevice`]) is only used while the generation is unchanged.
    pub(super) generation: u64,
    /// The generation the owner read before it flushed the data device
    /// (see [`Self::data_flushed`]); taken by the next commit.
    data_flushed_at: Option<u64>,
    /// Registered low-water mark of free metadata blocks, re-applied to
    /// the new space map after an abort.
    pub(super) metadata_threshold: Option<u64>,
    /// Superblock format version (read-only here).
    pub(super) version: u32,
    /// Superblock uuid (zero in pools the kernel makes; read-only here).
    pub(super) uuid: [u8; 16],
    /// Data-block references kept out of commits while their I/O is in
    /// flight (see [`super::in_flight`]).
    pub(super) in_flight: Vec<(u64, u64)>,
    /// Devices being deleted, oldest first (see [`super::deleting`]).
    pub(super) deleting: Vec<ThinId>,
    /// Commits written since the open.
    pub(super) commits: u64,
    /// A delete in batches released mappings since the last commit (no
    /// device is left `changed` once the detached one goes).
    pub(super) reclaimed_uncommitted: bool,
}

fn lock_superblock<D: BlockDevice>(tm: &mut TransactionManager<D>) -> Result<Superblock> {
    let l = tm.read_lock(THIN_SUPERBLOCK_LOCATION, &SB_VALIDATOR)?;
    let sb = Superblock::unpack(tm.bm().data(&l));
    tm.bm().unlock(l);
    sb
}

/// The barrier before every commit: the device's [`BlockDevice::pre_commit`]
/// (C: the callback of `dm_pool_register_pre_commit_callback`; the pool
/// flushes its data device there).
fn pre_commit<D: BlockDevice>(pd: &mut Persistent<D>) -> Result<()> {
    Ok(pd.tm.bm().device_mut().pre_commit()?)
}

/// Reads block 0 straight from the device, before any block manager exists
/// (`__superblock_all_zeroes` reads it without a validator).
fn read_block0<D: BlockDevice>(dev: &mut D) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    buf.resize(BLOCK_SIZE, 0u8)?;
    dev.read(THIN_SUPERBLOCK_LOCATION, &mut buf)?;
    Ok(buf)
}

impl<D: BlockDevice> PoolMetadata<D> {
    /// `dm_pool_metadata_open`: opens the pool metadata on `dev`, formatting
    /// it first if block 0 is all zeroes and `format_device` is set. An
    /// existing pool must have been made with the same `data_block_size`.
    pub fn open(dev: D, data_block_size: u32, format_device: bool) -> Result<Self> {
        Self::open_with_cache(
            dev,
            Some(data_block_size),
            format_device,
            DEFAULT_CACHE_BLOCKS,
        )
    }

    /// Like [`Self::open`], caching up to `cache_blocks` metadata blocks.
    /// `data_block_size: None` opens an existing pool with whatever size it
    /// has (host tools); formatting needs a size.
    pub fn open_with_cache(
        mut dev: D,
        data_block_size: Option<u32>,
        format_device: bool,
        cache_blocks: usize,
    ) -> Result<Self> {
        let unformatted = superblock::all_zeroes(&read_block0(&mut dev)?);
        let nr_dev_blocks = dev.nr_blocks();
        let bm = BlockManager::new(dev, cache_blocks)?;
        let mut pmd = PoolMetadata {
            pd: None,
            time: 0,
            root: 0,
            details_root: 0,
            held_root: 0,
            trans_id: 0,
            flags: 0,
            data_block_size: data_block_size.unwrap_or(0),
            metadata_reserve: 0,
            devices: Vec::new(),
            in_service: false,
            read_only: false,
            data_nr_blocks_pending: None,
            generation: 0,
            data_flushed_at: None,
            metadata_threshold: None,
            version: THIN_VERSION,
            uuid: [0; 16],
            in_flight: Vec::with_capacity(IN_FLIGHT_RESERVE)?,
            deleting: Vec::new(),
            commits: 0,
            reclaimed_uncommitted: false,
        };
        if unformatted {
            if !format_device {
                return Err(Error::Unformatted);
            }
            let dbs = data_block_size.ok_or(Error::Invalid)?;
            if dbs == 0 {
                return Err(Error::Invalid);
            }
            pmd.format(bm, nr_dev_blocks)?;
        } else {
            pmd.open_metadata(bm, data_block_size)?;
        }
        pmd.begin_transaction()?;
        pmd.set_metadata_reserve();
        pmd.find_deleting()?;
        Ok(pmd)
    }

    /// `__format_metadata` + `__write_initial_superblock`.
    fn format(&mut self, bm: BlockManager<D>, nr_dev_blocks: u64) -> Result<()> {
        let mut tm = TransactionManager::create(bm, THIN_SUPERBLOCK_LOCATION)?;
        let mut data_sm = DiskSpaceMap::create(&mut tm, 0)?;
        let root = MAPPING_TREE.empty(&mut tm)?;
        let details_root = DETAILS_TREE.empty(&mut tm)?;
        data_sm.commit(&mut tm)?;
        let data_root = data_sm.root();
        let metadata_nr_blocks = nr_dev_blocks.min(DM_SM_METADATA_MAX_BLOCKS);
        let data_block_size = self.data_block_size;
        tm.bm().device_mut().pre_commit()?;
        tm.commit_with(
            THIN_SUPERBLOCK_LOCATION,
            &SB_VALIDATOR,
            true,
            |block, meta_root| {
                let mut sb = Superblock {
                    version: THIN_VERSION,
                    data_mapping_root: root,
                    device_details_root: details_root,
                    metadata_block_size: THIN_METADATA_BLOCK_SIZE,
                    metadata_nr_blocks,
                    data_block_size,
                    ..Superblock::default()
                };
                meta_root.pack(&mut sb.metadata_space_map_root)?;
                data_root.pack(&mut sb.data_space_map_root)?;
                sb.pack(block)
                    .map_err(|_| crate::pdata::error::Error::Invalid)
            },
        )?;
        self.root = root;
        self.details_root = details_root;
        self.pd = Some(Persistent { tm, data_sm });
        Ok(())
    }

    /// `__open_metadata`.
    fn open_metadata(&mut self, bm: BlockManager<D>, data_block_size: Option<u32>) -> Result<()> {
        let pd = Self::open_persistent(bm, data_block_size, self.read_only)?;
        self.pd = Some(pd);
        Ok(())
    }

    fn open_persistent(
        mut bm: BlockManager<D>,
        data_block_size: Option<u32>,
        read_only: bool,
    ) -> Result<Persistent<D>> {
        let sb = {
            let l = bm.read_lock(THIN_SUPERBLOCK_LOCATION, &SB_VALIDATOR)?;
            let sb = Superblock::unpack(bm.data(&l));
            bm.unlock(l);
            sb?
        };
        if let Some(dbs) = data_block_size {
            if sb.data_block_size != dbs {
                return Err(Error::DataBlockSizeMismatch {
                    on_disk: sb.data_block_size,
                });
            }
        }
        sb.check_features(read_only)?;
        let mut tm =
            TransactionManager::open(bm, THIN_SUPERBLOCK_LOCATION, &sb.metadata_space_map_root)?;
        let data_sm = DiskSpaceMap::open(&mut tm, &sb.data_space_map_root)?;
        Ok(Persistent { tm, data_sm })
    }

    /// `__begin_transaction`: reloads the in-core roots from the superblock.
    fn begin_transaction(&mut self) -> Result<()> {
        self.data_nr_blocks_pending = None;
        self.generation = self.generation.wrapping_add(1);
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let sb = lock_superblock(&mut pd.tm)?;
        self.time = sb.time;
        self.root = sb.data_mapping_root;
        self.details_root = sb.device_details_root;
        self.held_root = sb.held_root;
        self.trans_id = sb.trans_id;
        self.flags = sb.flags;
        self.data_block_size = sb.data_block_size;
        self.version = sb.version;
        self.uuid = sb.uuid;
        Ok(())
    }

    /// `__set_metadata_reserve`: a tenth of the metadata device, at most
    /// 16 MiB, is never reported as free.
    pub(super) fn set_metadata_reserve(&mut self) {
        self.metadata_reserve = match &self.pd {
            Some(pd) => MAX_METADATA_RESERVE.min(pd.tm.nr_blocks() / 10),
            None => MAX_METADATA_RESERVE,
        };
    }

    /// The persistent objects, or `FailIo`.
    pub(super) fn pd(&mut self) -> Result<&mut Persistent<D>> {
        self.pd.as_mut().ok_or(Error::FailIo)
    }

    /// `pmd_write_lock`: every change puts the pool in service.
    pub(super) fn write_begin(&mut self) -> Result<()> {
        if self.pd.is_none() {
            return Err(Error::FailIo);
        }
        self.in_service = true;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// `__write_changed_details`: stores the details of changed devices and
    /// forgets the ones nobody holds open. Open devices stay `changed`
    /// until the commit succeeds (unlike C, which clears the flag here): a
    /// commit that fails after this step must still know whose changes the
    /// abort throws away.
    fn write_changed_details(&mut self) -> Result<()> {
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let mut i = 0;
        while i < self.devices.len() {
            let Some(td) = self.devices.get_mut(i) else {
                break;
            };
            if td.changed {
                let details = td.details().pack();
                self.details_root = DETAILS_TREE.insert(
                    &mut pd.tm,
                    &mut (),
                    self.details_root,
                    &[td.id],
                    &details,
                )?;
                if td.open_count == 0 {
                    self.devices.remove(i);
                    continue;
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// `__commit_transaction`: every commit goes through here (commit,
    /// metadata snapshot, close). The pre-commit barrier runs first, before
    /// anything is written, as C runs `pre_commit_fn`.
    pub(super) fn commit_transaction(&mut self) -> Result<()> {
        if !self.in_service {
            return Ok(());
        }
        if self.data_flushed_at.take() != Some(self.generation) {
            pre_commit(self.pd()?)?;
        }
        self.write_changed_details()?;
        // Blocks whose I/O is in flight are written as if not yet taken.
        self.in_flight_out()?;
        let r = self.write_roots();
        let back = self.in_flight_in();
        r?;
        back?;
        for td in self.devices.iter_mut() {
            td.changed = false;
        }
        self.reclaimed_uncommitted = false;
        self.commits = self.commits.wrapping_add(1);
        Ok(())
    }

    /// The data space map, then the metadata space map and the superblock.
    fn write_roots(&mut self) -> Result<()> {
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        pd.data_sm.commit(&mut pd.tm)?;
        let data_root = pd.data_sm.root();
        let (time, root, details_root, held_root, trans_id, flags) = (
            self.time,
            self.root,
            self.details_root,
            self.held_root,
            self.trans_id,
            self.flags,
        );
        let mut failed = None;
        let r = pd.tm.commit_with(
            THIN_SUPERBLOCK_LOCATION,
            &SB_VALIDATOR,
            false,
            |block, meta_root| {
                let mut sb = match Superblock::unpack(block) {
                    Ok(sb) => sb,
                    Err(e) => {
                        failed = Some(e);
                        return Err(crate::pdata::error::Error::BadSuperblock);
                    }
                };
                sb.time = time;
                sb.data_mapping_root = root;
                sb.device_details_root = details_root;
                sb.held_root = held_root;
                sb.trans_id = trans_id;
                sb.flags = flags;
                sb.metadata_space_map_root = [0; SPACE_MAP_ROOT_SIZE];
                sb.data_space_map_root = [0; SPACE_MAP_ROOT_SIZE];
                meta_root.pack(&mut sb.metadata_space_map_root)?;
                data_root.pack(&mut sb.data_space_map_root)?;
                sb.pack(block)
                    .map_err(|_| crate::pdata::error::Error::Invalid)
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        r.map_err(Error::from)
    }

    /// A number every change to the metadata moves on (and only a change,
    /// or the start of a transaction): see [`Self::data_flushed`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The owner flushed the data device after reading `generation`: the
    /// next commit skips its pre-commit barrier if nothing changed since
    /// (see "Commits" above). A mark the next commit does not match is
    /// dropped.
    pub fn data_flushed(&mut self, generation: u64) {
        self.data_flushed_at = Some(generation);
    }

    /// `dm_pool_commit_metadata`: makes everything done so far durable and
    /// opens the next transaction. Does not put the pool in service.
    ///
    /// With anything to commit, the device's [`BlockDevice::pre_commit`]
    /// barrier (the pool's data-device flush) runs first, and its failure
    /// stops the commit before anything is written.
    pub fn commit(&mut self) -> Result<()> {
        if self.pd.is_none() {
            return Err(Error::FailIo);
        }
        if self.read_only {
            return Err(Error::Invalid);
        }
        self.commit_transaction()?;
        self.begin_transaction()
    }

    /// `dm_pool_abort_metadata`: throws away everything since the last
    /// commit by reopening the persistent objects from the superblock.
    /// If that fails the pool is left in the failed state (`fail_io`).
    ///
    /// Every step must succeed: until the roots are reloaded from the
    /// superblock the in-core ones name blocks of the thrown-away
    /// transaction, so any failure (re-reading the space maps, the
    /// superblock, the details of an open device) drops the persistent
    /// objects, and every later call but [`Self::close`] answers `FailIo`.
    pub fn abort(&mut self) -> Result<()> {
        let r = self.abort_transaction();
        if r.is_err() {
            self.pd = None;
        }
        r
    }

    fn abort_transaction(&mut self) -> Result<()> {
        let pd = self.pd.take().ok_or(Error::FailIo)?;
        self.in_service = true;
        self.generation = self.generation.wrapping_add(1);
        // Sticky until the device is reopened: a later flush of such a
        // device must not report its lost writes durable.
        for td in self.devices.iter_mut() {
            td.aborted_with_changes |= td.changed;
        }
        // References in flight go with the transaction that took them.
        self.in_flight.clear();
        self.reclaimed_uncommitted = false;
        let Persistent { mut tm, .. } = pd;
        tm.abort()?;
        let bm = tm.into_bm();
        let mut pd = Self::open_persistent(bm, None, self.read_only)?;
        if let Some(t) = self.metadata_threshold {
            pd.tm.set_metadata_threshold(t);
        }
        self.pd = Some(pd);
        // Forget in-core device state: reloaded from the details tree on use.
        let mut i = 0;
        while i < self.devices.len() {
            let id = match self.devices.get(i) {
                Some(td) => td.id,
                None => break,
            };
            let keep = match self.devices.get(i) {
                Some(td) => td.open_count > 0,
                None => false,
            };
            if keep {
                let details = self.lookup_details_after_abort(id)?;
                if let Some(td) = self.devices.get_mut(i) {
                    match details {
                        Some(d) => td.load(&d),
                        None => td.load(&DeviceDetails::default()),
                    }
                    td.changed = false;
                }
                i += 1;
            } else {
                self.devices.remove(i);
            }
        }
        self.begin_transaction()?;
        self.find_deleting()
    }

    fn lookup_details_after_abort(&mut self, id: ThinId) -> Result<Option<DeviceDetails>> {
        // begin_transaction has not run yet: read the committed root.
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let sb = lock_superblock(&mut pd.tm)?;
        let v = DETAILS_TREE.lookup(&mut pd.tm, sb.device_details_root, &[id])?;
        Ok(v.and_then(|b| DeviceDetails::unpack(&b)))
    }

    /// `dm_pool_metadata_close` without the free: commits (unless failed
    /// or read-only). `Busy` if a device is still open. Then
    /// [`Self::into_device`] gives the device back.
    pub fn close(&mut self) -> Result<()> {
        if self.devices.iter().any(|td| td.open_count > 0) {
            return Err(Error::Busy);
        }
        if self.pd.is_some() && !self.read_only {
            self.commit_transaction()?;
        }
        Ok(())
    }

    /// The metadata cache's size in blocks.
    pub fn cache_capacity(&self) -> usize {
        self.pd.as_ref().map_or(0, |pd| pd.tm.bm_ref().capacity())
    }

    /// Cached metadata blocks the cache could give back now (clean and
    /// unlocked): what the pool's shrinker reports.
    pub fn cache_shrinkable(&self) -> usize {
        self.pd.as_ref().map_or(0, |pd| pd.tm.bm_ref().shrinkable())
    }

    /// Frees up to `nr` clean cached metadata blocks (the pool's shrinker,
    /// under memory pressure); returns how many went. Nothing is written:
    /// dirty blocks stay until the commit.
    pub fn shrink_cache(&mut self, nr: usize) -> usize {
        self.pd.as_mut().map_or(0, |pd| pd.tm.bm().shrink(nr))
    }

    /// The device under the metadata (host tools and fault-injection
    /// tests); `None` in the failed state.
    pub fn device_mut(&mut self) -> Option<&mut D> {
        self.pd.as_mut().map(|pd| pd.tm.bm().device_mut())
    }

    /// Gives the device back. Whatever was not committed is lost, as in a
    /// crash; `None` in the failed state.
    pub fn into_device(mut self) -> Option<D> {
        self.pd.take().map(|pd| pd.tm.into_bm().into_device())
    }

    /// How many commits were written since the open: a change made when
    /// this was `n` is on disk once it is above `n`.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// `dm_pool_set_metadata_transaction_id`: `current_id` must match.
    pub fn set_transaction_id(&mut self, current_id: u64, new_id: u64) -> Result<()> {
        self.write_begin()?;
        if self.trans_id != current_id {
            return Err(Error::TransactionIdMismatch);
        }
        self.trans_id = new_id;
        Ok(())
    }

    /// `dm_pool_get_metadata_transaction_id`.
    pub fn transaction_id(&self) -> Result<u64> {
        self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(self.trans_id)
    }

    /// The pool time (bumped by each snapshot).
    pub fn time(&self) -> u32 {
        self.time
    }

    /// Data block size in 512-byte sectors.
    pub fn data_block_size(&self) -> u32 {
        self.data_block_size
    }

    /// `dm_pool_metadata_read_only`: refuse every later change and commit.
    pub fn set_read_only(&mut self) {
        self.read_only = true;
        if let Some(pd) = self.pd.as_mut() {
            pd.tm.bm().set_read_only(true);
        }
    }

    /// `dm_pool_metadata_read_write`.
    pub fn set_read_write(&mut self) {
        self.read_only = false;
        if let Some(pd) = self.pd.as_mut() {
            pd.tm.bm().set_read_only(false);
        }
    }

    /// `dm_pool_metadata_set_needs_check`: sets the flag in core and in the
    /// superblock on disk at once ("updates the superblock immediately"),
    /// in read-only mode too: the pool sets it when it gives up writing
    /// (after an abort, before going read-only or failing), and a later
    /// `thin_check` must see it whether or not the pool ever commits again.
    ///
    /// Only the flags field of the last committed superblock changes, so
    /// this is not a commit: the pre-commit barrier does not run (the data
    /// device may be what failed), and the open transaction is untouched.
    /// `FailIo` after a failed abort, as C refuses in `fail_io`.
    pub fn set_needs_check(&mut self) -> Result<()> {
        self.write_begin()?;
        self.flags |= THIN_METADATA_NEEDS_CHECK_FLAG;
        self.write_flags()
    }

    /// Clears the needs_check flag (as `thin_check --clear-needs-check-flag`),
    /// on disk at once like [`Self::set_needs_check`].
    pub fn clear_needs_check(&mut self) -> Result<()> {
        self.write_begin()?;
        self.flags &= !THIN_METADATA_NEEDS_CHECK_FLAG;
        self.write_flags()
    }

    /// Writes the in-core flags into the committed superblock, durably.
    fn write_flags(&mut self) -> Result<()> {
        let flags = self.flags;
        let pd = self.pd()?;
        let mut failed = None;
        let r = pd
            .tm
            .bm()
            .write_through(THIN_SUPERBLOCK_LOCATION, &SB_VALIDATOR, &mut |block| {
                let r = Superblock::unpack(block).and_then(|mut sb| {
                    sb.flags = flags;
                    sb.pack(block)
                });
                r.map_err(|e| {
                    failed = Some(e);
                    crate::pdata::error::Error::BadSuperblock
                })
            });
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(r?)
    }

    /// `dm_pool_metadata_needs_check`.
    pub fn needs_check(&self) -> bool {
        self.flags & THIN_METADATA_NEEDS_CHECK_FLAG != 0
    }

    /// Read-only view of the superblock fields that describe the pool.
    pub fn superblock_info(&self) -> SuperblockInfo {
        SuperblockInfo {
            time: self.time,
            trans_id: self.trans_id,
            flags: self.flags,
            data_block_size: self.data_block_size,
            held_root: self.held_root,
            version: self.version,
            uuid: self.uuid,
        }
    }
}

/// The in-core superblock fields (see [`PoolMetadata::superblock_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperblockInfo {
    /// Pool time.
    pub time: u32,
    /// Userspace transaction id.
    pub trans_id: u64,
    /// Superblock flags.
    pub flags: u32,
    /// Data block size in sectors.
    pub data_block_size: u32,
    /// Metadata snapshot root, 0 if none.
    pub held_root: u64,
    /// Format version.
    pub version: u32,
    /// The uuid bytes (zero unless a tool set them).
    pub uuid: [u8; 16],
}
