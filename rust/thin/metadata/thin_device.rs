//! One thin device's in-core state (`struct dm_thin_device`) and the
//! per-device operations: lookups, inserts, removals, counts.
//!
//! A device's details are loaded from the details tree the first time an
//! operation names it and kept in core, changed in place, until the next
//! commit writes them back (and forgets devices nobody holds open).

use super::block_time::{BlockTime, MAX_BLOCK};
use super::device_details::DeviceDetails;
use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use super::value_types::{BOTTOM_LEVEL, MAPPING_TREE, TOP_LEVEL};
use crate::pdata::block_device::BlockDevice;
use crate::pdata::btree::BTREE_NODE_VALIDATOR;
use crate::pdata::transaction_manager::Transaction;
use core::sync::atomic::{AtomicU64, Ordering::{Acquire, Relaxed, Release}};

/// A thin device id (`dm_thin_id`): 24 bits are usable from the target
/// line, but the trees take any `u64`.
pub type ThinId = u64;

/// In-core state of a thin device (`struct dm_thin_device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinDevice {
    /// Device id.
    pub id: ThinId,
    /// Holders from [`PoolMetadata::open_thin_device`].
    pub open_count: u32,
    /// Details differ from the details tree.
    pub changed: bool,
    /// The last abort threw away changes to this device.
    pub aborted_with_changes: bool,
    /// Mapped virtual blocks.
    pub mapped_blocks: u64,
    /// Pool transaction id at creation.
    pub transaction_id: u64,
    /// Pool time at creation.
    pub creation_time: u32,
    /// Pool time of the last snapshot of (or as) this device.
    pub snapshotted_time: u32,
    /// The root of this device's mapping tree as found in the top level,
    /// used while the pool's generation is unchanged, so repeated lookups
    /// skip the top level.
    pub(super) root_cache: RootCache,
}

/// A device's mapping-tree root and the pool generation it was found in.
///
/// Lookups through `&self` (several at once, under the owner's lock held
/// shared) remember it too, so it is two atomics: the root is stored
/// before the generation (release) and loaded after it (acquire). Every
/// change to the trees bumps the generation and needs `&mut`, so all the
/// lookups that may store at once found the same root in the same
/// generation: a generation seen current comes with its root.
#[derive(Default)]
pub(super) struct RootCache {
    /// The generation plus one; 0 when nothing is remembered.
    generation: AtomicU64,
    root: AtomicU64,
}

impl RootCache {
    /// The remembered root, if it was found in `generation`.
    fn get(&self, generation: u64) -> Option<u64> {
        (self.generation.load(Acquire) == generation.wrapping_add(1))
            .then(|| self.root.load(Relaxed))
    }

    /// Remembers `root`, found in `generation`.
    fn set(&self, generation: u64, root: u64) {
        self.root.store(root, Relaxed);
        self.generation.store(generation.wrapping_add(1), Release);
    }

    /// Forgets the root.
    pub(super) fn clear(&mut self) {
        *self.generation.get_mut() = 0;
    }

    fn pair(&self) -> (u64, u64) {
        (self.generation.load(Acquire), self.root.load(Relaxed))
    }
}

impl Clone for RootCache {
    fn clone(&self) -> Self {
        let (generation, root) = self.pair();
        RootCache { generation: AtomicU64::new(generation), root: AtomicU64::new(root) }
    }
}

impl PartialEq for RootCache {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for RootCache {}

impl core::fmt::Debug for RootCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (generation, root) = self.pair();
        match generation.checked_sub(1) {
            Some(g) => write!(f, "Some(({g}, {root}))"),
            None => f.write_str("None"),
        }
    }
}

impl ThinDevice {
    /// A device with zeroed details.
    pub fn new(id: ThinId) -> Self {
        ThinDevice {
            id,
            open_count: 0,
            changed: false,
            aborted_with_changes: false,
            mapped_blocks: 0,
            transaction_id: 0,
            creation_time: 0,
            snapshotted_time: 0,
            root_cache: RootCache::default(),
        }
    }

    /// Takes the details read from disk.
    pub fn load(&mut self, d: &DeviceDetails) {
        self.mapped_blocks = d.mapped_blocks;
        self.transaction_id = d.transaction_id;
        self.creation_time = d.creation_time;
        self.snapshotted_time = d.snapshotted_time;
    }

    /// The details to write back.
    pub fn details(&self) -> DeviceDetails {
        DeviceDetails {
            mapped_blocks: self.mapped_blocks,
            transaction_id: self.transaction_id,
            creation_time: self.creation_time,
            snapshotted_time: self.snapshotted_time,
        }
    }

    /// `__snapshotted_since`: a mapping made at `time` is older than this
    /// device's last snapshot, so its block may be shared with a snapshot.
    /// Mappings made after the last snapshot are necessarily private.
    pub fn snapshotted_since(&self, time: u32) -> bool {
        self.snapshotted_time > time
    }

    fn lookup_result(&self, bt: BlockTime) -> LookupResult {
        LookupResult {
            block: bt.block,
            shared: self.snapshotted_since(bt.time),
        }
    }
}

/// Why [`PoolMetadata::find_block_or_miss`] did not answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// A node to read first.
    Node(NodeMiss),
    /// What the blocking lookup would answer too (or `WouldBlock`: a node
    /// is write-locked, the device's details are not loaded).
    Error(Error),
}

/// A btree node a shared lookup missed, and the block manager's write
/// epoch when it did.
#[derive(Debug, PartialEq, Eq)]
pub struct NodeMiss {
    /// The node's block.
    pub block: u64,
    epoch: u64,
}

/// A found mapping (`struct dm_thin_lookup_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupResult {
    /// The data block.
    pub block: u64,
    /// The block may be shared with a snapshot: break sharing before writing.
    pub shared: bool,
}

/// A run of mappings found by [`PoolMetadata::find_mapped_range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRange {
    /// First virtual block of the run.
    pub thin_begin: u64,
    /// One past the last virtual block of the run.
    pub thin_end: u64,
    /// Data block of `thin_begin`; the run is contiguous on the data device.
    pub pool_begin: u64,
    /// Every block of the run has this sharing state.
    pub maybe_shared: bool,
}

impl<D: BlockDevice> PoolMetadata<D> {
    fn device_index(&mut self, dev: ThinId) -> Result<usize> {
        self.get_device(dev)?.ok_or(Error::NoSuchDevice)
    }

    fn device(&mut self, dev: ThinId) -> Result<&mut ThinDevice> {
        let i = self.device_index(dev)?;
        self.devices.get_mut(i).ok_or(Error::Corrupt)
    }

    /// `dm_thin_find_block`: the mapping of virtual `block` of `dev`, `None`
    /// if unmapped. With `can_issue_io` false the lookup only uses cached
    /// metadata and fails with [`Error::WouldBlock`] if it would need I/O
    /// (the target's `map()` path).
    pub fn find_block(
        &mut self,
        dev: ThinId,
        block: u64,
        can_issue_io: bool,
    ) -> Result<Option<LookupResult>> {
        if self.pd.is_none() {
            return Err(Error::FailIo);
        }
        // Cached, unlocked nodes first, as `map` reads them: no locks or
        // counters to keep. Anything else takes the full way below, which
        // reads, or gives the error.
        if let Ok(r) = self.find_shared(dev, block, &mut None) {
            return Ok(r);
        }
        // A device not held open may need its details read: not in map().
        if !can_issue_io && !self.devices.iter().any(|td| td.id == dev) {
            return Err(Error::WouldBlock);
        }
        let i = self.device_index(dev)?;
        let (root, generation) = (self.root, self.generation);
        let nr_data = self.data_dev_size()?;
        let cached = match self.devices.get(i) {
            Some(td) => td.root_cache.get(generation),
            None => return Err(Error::Corrupt),
        };
        let pd = self.pd()?;
        // The two-level lookup of the C code, in two steps so that the
        // first can be remembered.
        let subtree = match cached {
            Some(r) => r,
            None => {
                let r = if can_issue_io {
                    TOP_LEVEL.lookup(&mut pd.tm, root, &[dev])?
                } else {
                    TOP_LEVEL.lookup(&mut pd.tm.non_blocking(), root, &[dev])?
                };
                r.ok_or(Error::Corrupt)?
            }
        };
        let v = if can_issue_io {
            BOTTOM_LEVEL.lookup(&mut pd.tm, subtree, &[block])?
        } else {
            BOTTOM_LEVEL.lookup(&mut pd.tm.non_blocking(), subtree, &[block])?
        };
        if v.is_some_and(|bt| bt.block >= nr_data) {
            return Err(Error::DataBlockOutOfRange);
        }
        let td = self.devices.get_mut(i).ok_or(Error::Corrupt)?;
        td.root_cache.set(generation, subtree);
        Ok(v.map(|bt| td.lookup_result(bt)))
    }

    /// [`find_block`](Self::find_block) with `can_issue_io` false, through
    /// `&self`: for `map()`, several at once, under the owner's lock held
    /// shared (see [`BlockManager::peek`](crate::pdata::block_manager::BlockManager::peek)).
    /// Cached blocks only; it remembers the thin's subtree root as the
    /// blocking lookup does ([`RootCache`]). `Err(WouldBlock)` where the blocking
    /// lookup would read, wait, or load the device's details.
    pub fn find_block_shared(&self, dev: ThinId, block: u64) -> Result<Option<LookupResult>> {
        self.find_shared(dev, block, &mut None)
    }

    /// [`find_block_shared`](Self::find_block_shared) for a lookup that
    /// may read: `Err(Miss)` names the node to read (outside the lock, and
    /// [`install_node`](Self::install_node) it) before trying again.
    pub fn find_block_or_miss(&self, dev: ThinId, block: u64) -> core::result::Result<Option<LookupResult>, Miss> {
        let mut miss = None;
        self.find_shared(dev, block, &mut miss).map_err(|e| match (e, miss) {
            (Error::WouldBlock, Some(block)) => Miss::Node(NodeMiss {
                block,
                epoch: self.pd.as_ref().map_or(0, |pd| pd.tm.bm_ref().write_epoch()),
            }),
            (e, _) => Miss::Error(e),
        })
    }

    /// Puts a node [`find_block_or_miss`](Self::find_block_or_miss) named,
    /// as read from the metadata device since, in the cache (see
    /// [`BlockManager::install`](crate::pdata::block_manager::BlockManager::install)).
    /// Whether it was put or not, the lookup is tried again.
    pub fn install_node(&mut self, miss: &NodeMiss, data: &[u8]) -> Result<()> {
        let pd = self.pd()?;
        pd.tm.bm().install(miss.block, data, &BTREE_NODE_VALIDATOR, miss.epoch)?;
        Ok(())
    }

    fn find_shared(&self, dev: ThinId, block: u64, miss: &mut Option<u64>) -> Result<Option<LookupResult>> {
        let pd = self.pd.as_ref().ok_or(Error::FailIo)?;
        let td = self
            .devices
            .iter()
            .find(|td| td.id == dev)
            .ok_or(Error::WouldBlock)?;
        let nr_data = self.data_dev_size()?;
        let bm = pd.tm.bm_ref();
        let subtree = match td.root_cache.get(self.generation) {
            Some(r) => r,
            None => {
                let r = TOP_LEVEL
                    .lookup_shared(bm, self.root, &[dev], miss)?
                    .ok_or(Error::Corrupt)?;
                td.root_cache.set(self.generation, r);
                r
            }
        };
        let v = BOTTOM_LEVEL.lookup_shared(bm, subtree, &[block], miss)?;
        if v.is_some_and(|bt| bt.block >= nr_data) {
            return Err(Error::DataBlockOutOfRange);
        }
        Ok(v.map(|bt| td.lookup_result(bt)))
    }

    /// `dm_thin_find_mapped_range`: the first run of mappings in
    /// `begin..end` that are contiguous on the data device and alike in
    /// sharing, `None` if nothing in the range is mapped.
    pub fn find_mapped_range(
        &mut self,
        dev: ThinId,
        begin: u64,
        end: u64,
    ) -> Result<Option<MappedRange>> {
        if end < begin {
            return Ok(None);
        }
        let i = self.device_index(dev)?;
        let root = self.root;
        let nr_data = self.data_dev_size()?;
        let pd = self.pd()?;
        let Some((first, bt)) = MAPPING_TREE.lookup_next(&mut pd.tm, root, &[dev, begin])? else {
            return Ok(None);
        };
        if first >= end {
            return Ok(None);
        }
        // Every block of the run is checked: the run is contiguous, so
        // `pool_begin + len <= nr_data` follows.
        if bt.block >= nr_data {
            return Err(Error::DataBlockOutOfRange);
        }
        let td = self.devices.get(i).ok_or(Error::Corrupt)?.clone();
        let start = td.lookup_result(bt);
        let mut cur = first.saturating_add(1);
        let mut pool_end = start.block.saturating_add(1);
        let pd = self.pd()?;
        while cur < end {
            match MAPPING_TREE.lookup(&mut pd.tm, root, &[dev, cur])? {
                Some(bt) => {
                    if bt.block >= nr_data {
                        return Err(Error::DataBlockOutOfRange);
                    }
                    let r = td.lookup_result(bt);
                    if r.block != pool_end || r.shared != start.shared {
                        break;
                    }
                }
                None => break,
            }
            pool_end = pool_end.saturating_add(1);
            cur += 1;
        }
        Ok(Some(MappedRange {
            thin_begin: first,
            thin_end: cur,
            pool_begin: start.block,
            maybe_shared: start.shared,
        }))
    }

    /// `dm_thin_insert_block`: maps virtual `block` of `dev` to
    /// `data_block`, stamped with the current pool time. The caller's
    /// reference to `data_block` (from [`PoolMetadata::alloc_data_block`])
    /// passes to the mapping; an overwritten mapping drops its reference.
    pub fn insert_block(&mut self, dev: ThinId, block: u64, data_block: u64) -> Result<()> {
        self.write_begin()?;
        if data_block > MAX_BLOCK {
            return Err(Error::Invalid);
        }
        let i = self.device_index(dev)?;
        let (root, time) = (self.root, self.time);
        let pd = self.pd()?;
        let value = BlockTime::new(data_block, time);
        let (r, inserted) =
            MAPPING_TREE.insert_notify(&mut pd.tm, &mut pd.data_sm, root, &[dev, block], &value)?;
        self.root = r;
        let td = self.devices.get_mut(i).ok_or(Error::Corrupt)?;
        td.changed = true;
        if inserted {
            td.mapped_blocks = td.mapped_blocks.saturating_add(1);
        }
        Ok(())
    }

    /// `__remove`: unmaps virtual `block` of `dev`, dropping the data
    /// block's reference. `false` if it was not mapped.
    pub fn remove_block(&mut self, dev: ThinId, block: u64) -> Result<bool> {
        self.write_begin()?;
        let i = self.device_index(dev)?;
        let root = self.root;
        let pd = self.pd()?;
        let (r, found) = MAPPING_TREE.remove(&mut pd.tm, &mut pd.data_sm, root, &[dev, block])?;
        self.root = r;
        if found {
            let td = self.devices.get_mut(i).ok_or(Error::Corrupt)?;
            td.mapped_blocks = td.mapped_blocks.checked_sub(1).ok_or(Error::Corrupt)?;
            td.changed = true;
        }
        Ok(found)
    }

    /// `dm_thin_remove_range`: unmaps every virtual block of `dev` in
    /// `begin..end`. Returns how many mappings went.
    pub fn remove_range(&mut self, dev: ThinId, begin: u64, end: u64) -> Result<u64> {
        Ok(self.remove_range_at_most(dev, begin, end, u64::MAX)?.0)
    }

    /// [`Self::remove_range`] that stops after `max` mappings: returns how
    /// many went and the block to go on from (`end` once none is left in
    /// the range). The device's tree is taken out of the top level while
    /// it is trimmed (one extra reference keeps it alive), then put back.
    pub fn remove_range_at_most(
        &mut self,
        dev: ThinId,
        begin: u64,
        end: u64,
        max: u64,
    ) -> Result<(u64, u64)> {
        self.write_begin()?;
        let i = self.device_index(dev)?;
        let root = self.root;
        let pd = self.pd()?;
        let mapping_root = TOP_LEVEL
            .lookup(&mut pd.tm, root, &[dev])?
            .ok_or(Error::Corrupt)?;
        pd.tm.inc(mapping_root)?;
        let (r, _) = TOP_LEVEL.remove(&mut pd.tm, &mut pd.data_sm, root, &[dev])?;
        self.root = r;
        let pd = self.pd()?;
        let (mapping_root, count, next) = BOTTOM_LEVEL.remove_range_at_most(
            &mut pd.tm,
            &mut pd.data_sm,
            mapping_root,
            &[],
            begin,
            end,
            max,
        )?;
        let td = self.devices.get_mut(i).ok_or(Error::Corrupt)?;
        td.mapped_blocks = td.mapped_blocks.checked_sub(count).ok_or(Error::Corrupt)?;
        td.changed = true;
        let root = self.root;
        let pd = self.pd()?;
        self.root = TOP_LEVEL.insert(&mut pd.tm, &mut pd.data_sm, root, &[dev], &mapping_root)?;
        Ok((count, next))
    }

    /// `dm_thin_get_mapped_count`.
    pub fn mapped_count(&mut self, dev: ThinId) -> Result<u64> {
        Ok(self.device(dev)?.mapped_blocks)
    }

    /// `dm_thin_get_highest_mapped_block`: `None` if nothing is mapped.
    pub fn highest_mapped_block(&mut self, dev: ThinId) -> Result<Option<u64>> {
        self.device_index(dev)?;
        let root = self.root;
        let pd = self.pd()?;
        let thin_root = TOP_LEVEL
            .lookup(&mut pd.tm, root, &[dev])?
            .ok_or(Error::Corrupt)?;
        Ok(BOTTOM_LEVEL.find_highest_key(&mut pd.tm, thin_root)?)
    }

    /// `dm_thin_changed_this_transaction`.
    pub fn thin_changed_this_transaction(&mut self, dev: ThinId) -> Result<bool> {
        Ok(self.device(dev)?.changed)
    }

    /// `dm_thin_aborted_changes`.
    pub fn thin_aborted_changes(&mut self, dev: ThinId) -> Result<bool> {
        Ok(self.device(dev)?.aborted_with_changes)
    }

    /// Whether a flush of `dev` needs nothing from the metadata: its
    /// details are loaded, it did not change in this transaction and no
    /// abort threw its changes away. Through `&self`, for `map()`; `false`
    /// also where only the blocking questions above can tell.
    pub fn thin_flush_needs_no_commit(&self, dev: ThinId) -> bool {
        self.pd.is_some()
            && self
                .devices
                .iter()
                .any(|td| td.id == dev && !td.changed && !td.aborted_with_changes)
    }

    /// The details of `dev` as they stand in this transaction.
    pub fn device_details(&mut self, dev: ThinId) -> Result<Option<DeviceDetails>> {
        match self.get_device(dev)? {
            Some(i) => Ok(self.devices.get(i).map(|td| td.details())),
            None => Ok(None),
        }
    }

    /// Calls `f(virtual block, mapping)` for every mapping of `dev` in
    /// virtual block order (`thin_dump`).
    pub fn walk_mappings<F>(&mut self, dev: ThinId, mut f: F) -> Result<()>
    where
        F: FnMut(u64, BlockTime) -> Result<()>,
    {
        let root = self.root;
        let pd = self.pd()?;
        let thin_root = TOP_LEVEL
            .lookup(&mut pd.tm, root, &[dev])?
            .ok_or(Error::NoSuchDevice)?;
        let mut err = None;
        let r = BOTTOM_LEVEL.walk(&mut pd.tm, thin_root, |keys, bt| {
            let k = keys.first().copied().unwrap_or(0);
            if let Err(e) = f(k, *bt) {
                err = Some(e);
                return Err(crate::pdata::error::Error::Invalid);
            }
            Ok(())
        });
        if let Some(e) = err {
            return Err(e);
        }
        r.map_err(Error::from)
    }
}
