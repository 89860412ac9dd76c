//! The transaction manager: copy-on-write shadowing of metadata blocks and
//! the commit protocol (`dm-transaction-manager.c`).
//!
//! Every block reachable from the last committed superblock is immutable
//! until the next commit. To change one, it is *shadowed*: a new block is
//! allocated from the metadata space map, the old contents copied in, and the
//! old block's reference count dropped. A block that is already a shadow (or
//! was allocated) in this transaction is written in place, unless its
//! reference count says it is shared (then the caller must also increment
//! the children, which [`Transaction::shadow_block`] reports).
//!
//! # The commit contract
//!
//! 1. The owner's barrier: nothing here knows of data blocks, so the owner
//!    makes the data the metadata will name durable first. `PoolMetadata`
//!    calls the device's `BlockDevice::pre_commit` (the pool's data-device
//!    flush) before anything of a commit is written, on every path that
//!    commits; a failure there stops the commit with nothing written.
//! 2. The owner commits its other space maps (`DiskSpaceMap::commit`) and
//!    takes their roots.
//! 3. [`TransactionManager::pre_commit`] writes the metadata space map's
//!    index; then [`TransactionManager::sm_root`] is final.
//! 4. The owner write-locks the superblock, fills in every root, and hands
//!    the lock to [`TransactionManager::commit`]: every other dirty block
//!    in one batch, one flush, then the superblock alone with FUA. The
//!    superblock write is the atomic commit point; a crash before it leaves
//!    the previous commit, whole, in charge. No write lock may be held.
//!
//! [`TransactionManager::commit_with`] does 3 and 4 with a closure that
//! fills the superblock. If a commit fails half way, call
//! [`TransactionManager::abort`] before anything else: it drops all dirty
//! blocks and returns the metadata space map to the last commit that
//! reached the disk; the owner reverts its own maps and roots.
//!
//! Rust shape: the C code calls back into the metadata space map from inside
//! space-map operations (the space map's own bitmaps and ref-count btree are
//! shadowed through the same transaction manager). Here the btree code is
//! generic over the [`Transaction`] trait; the top-level
//! [`TransactionManager`] implements it, and so does the space map's internal
//! recursive context, which defers reference-count changes to an explicit
//! pending-operations queue (see `space_map::metadata`).

use super::block_device::{BlockDevice, BLOCK_SIZE};
use super::block_manager::{BlockManager, BlockValidator, ReadLock, WriteLock};
use super::error::{Error, Result};
use super::space_map::metadata::MetadataSpaceMap;
use super::space_map::SmRoot;

/// What btrees and space maps need from a transaction.
///
/// Implemented by [`TransactionManager`], by its non-blocking view
/// [`NonBlocking`], and internally by the metadata space map's recursive
/// context. Locks returned must be released through [`Transaction::bm`]
/// (`unlock` / `unlock_write`).
pub trait Transaction {
    /// The device under the block manager.
    type Dev: BlockDevice;

    /// The block manager, for data access and unlocking.
    fn bm(&mut self) -> &mut BlockManager<Self::Dev>;

    /// Read-locks a block (`dm_tm_read_lock`).
    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock>;

    /// Allocates a block and write-locks it zeroed (`dm_tm_new_block`).
    /// `Err(NoSpace)` if the metadata device is full.
    fn new_block(&mut self, v: &'static dyn BlockValidator) -> Result<WriteLock>;

    /// Shadows `b` (`dm_tm_shadow_block`): returns a write lock on a private
    /// copy and whether the original was shared (so the caller must
    /// increment the children it references).
    fn shadow_block(&mut self, b: u64, v: &'static dyn BlockValidator)
        -> Result<(WriteLock, bool)>;

    /// Increments a block's reference count (`dm_tm_inc`).
    fn inc(&mut self, b: u64) -> Result<()>;

    /// Decrements a block's reference count (`dm_tm_dec`).
    fn dec(&mut self, b: u64) -> Result<()>;

    /// A block's reference count (`dm_tm_ref`).
    fn ref_count(&mut self, b: u64) -> Result<u32>;

    /// Whether a block's count is above one (`dm_tm_block_is_shared`).
    fn is_shared(&mut self, b: u64) -> Result<bool>;
}

/// An open-addressing set of block numbers: the blocks shadowed or
/// allocated in this transaction (C: a 256-bucket hash of `shadow_info`).
pub struct ShadowSet {
    table: super::alloc::Vec<u64>,
    len: usize,
}

const EMPTY: u64 = u64::MAX;
const TOMBSTONE: u64 = u64::MAX - 1;

impl ShadowSet {
    /// An empty set.
    pub fn new() -> Self {
        ShadowSet {
            table: super::alloc::Vec::new(),
            len: 0,
        }
    }

    fn slot(b: u64, mask: usize) -> usize {
        (b.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as usize & mask
    }

    /// Whether `b` is in the set.
    pub fn contains(&self, b: u64) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let mask = self.table.len() - 1;
        let mut i = Self::slot(b, mask);
        loop {
            match self.table.get(i) {
                Some(&x) if x == b => return true,
                Some(&EMPTY) | None => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Forgets `b` (it gained a reference, so it must be shadowed again).
    pub fn remove(&mut self, b: u64) {
        if self.table.is_empty() {
            return;
        }
        let mask = self.table.len() - 1;
        let mut i = Self::slot(b, mask);
        loop {
            match self.table.get(i) {
                Some(&x) if x == b => {
                    self.table[i] = TOMBSTONE;
                    return;
                }
                Some(&EMPTY) | None => return,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `b`. Like C, failing to allocate just forgets the shadow (a
    /// redundant shadow later is harmless), so this never fails.
    pub fn insert(&mut self, b: u64) {
        if b >= TOMBSTONE || self.contains(b) {
            return;
        }
        if (self.len + 1) * 2 > self.table.len() && self.grow().is_err() {
            return;
        }
        let mask = self.table.len() - 1;
        let mut i = Self::slot(b, mask);
        while self.table[i] != EMPTY && self.table[i] != TOMBSTONE {
            i = (i + 1) & mask;
        }
        self.table[i] = b;
        self.len += 1;
    }

    fn grow(&mut self) -> Result<()> {
        let n = (self.table.len() * 2).max(256);
        let mut t = super::alloc::Vec::new();
        t.resize(n, EMPTY)?;
        let old = core::mem::replace(&mut self.table, t);
        self.len = 0;
        for &b in old.iter() {
            if b < TOMBSTONE {
                self.insert(b);
            }
        }
        Ok(())
    }

    /// Empties the set (`wipe_shadow_table`).
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.table.fill(EMPTY);
            self.len = 0;
        }
    }
}

impl Default for ShadowSet {
    fn default() -> Self {
        Self::new()
    }
}

/// The block manager plus the shadow set: the part of a transaction that
/// the metadata space map's recursive context shares with the top level.
pub struct TmCore<D: BlockDevice> {
    /// The block manager.
    pub bm: BlockManager<D>,
    /// Blocks shadowed or allocated this transaction.
    pub shadows: ShadowSet,
}

/// How a transaction allocates and counts metadata blocks: the top-level
/// metadata space map, or its recursive (deferred) mode.
pub(crate) trait MetaAlloc<D: BlockDevice> {
    /// A free block, now counted as used; `None` if the device is full.
    fn alloc(&mut self, core: &mut TmCore<D>) -> Result<Option<u64>>;
    fn inc(&mut self, core: &mut TmCore<D>, b: u64) -> Result<()>;
    fn dec(&mut self, core: &mut TmCore<D>, b: u64) -> Result<()>;
    fn count(&mut self, core: &mut TmCore<D>, b: u64) -> Result<u32>;
    fn more_than_one(&mut self, core: &mut TmCore<D>, b: u64) -> Result<bool>;
}

impl<D: BlockDevice> TmCore<D> {
    pub(crate) fn new_block<A: MetaAlloc<D>>(
        &mut self,
        a: &mut A,
        v: &'static dyn BlockValidator,
    ) -> Result<WriteLock> {
        if self.bm.is_read_only() {
            return Err(Error::Invalid);
        }
        let b = a.alloc(self)?.ok_or(Error::NoSpace)?;
        match self.bm.write_lock_zero(b, v) {
            Ok(l) => {
                self.shadows.insert(b);
                Ok(l)
            }
            Err(e) => {
                let _ = a.dec(self, b);
                Err(e)
            }
        }
    }

    pub(crate) fn shadow_block<A: MetaAlloc<D>>(
        &mut self,
        a: &mut A,
        orig: u64,
        v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        if self.bm.is_read_only() {
            return Err(Error::Invalid);
        }
        // A block shadowed or allocated in this transaction has exactly one
        // reference unless it was incremented since, and every increment
        // removes it from the set; so the set alone answers C's
        // `is_shadow(b) && !count_is_more_than_one(b)` without a space-map
        // lookup.
        if self.shadows.contains(orig) {
            return Ok((self.bm.write_lock(orig, v)?, false));
        }
        let inc_children = a.more_than_one(self, orig)?;
        // __shadow_block
        let new = a.alloc(self)?.ok_or(Error::NoSpace)?;
        a.dec(self, orig)?;
        let r = self.bm.read_lock(orig, v)?;
        let w = match self.bm.write_lock_zero(new, v) {
            Ok(w) => w,
            Err(e) => {
                self.bm.unlock(r);
                return Err(e);
            }
        };
        {
            let (src, dst) = self.bm.data_rw(&r, &w)?;
            dst.copy_from_slice(src);
        }
        self.bm.unlock(r);
        self.shadows.insert(new);
        Ok((w, inc_children))
    }
}

/// The transaction manager over the metadata device (`struct
/// dm_transaction_manager` plus its metadata space map).
///
/// Owns the block manager and the metadata space map. Single-threaded:
/// the pool keeps it behind a mutex. Created by [`TransactionManager::create`]
/// (format) or [`TransactionManager::open`] (from a saved space-map root).
pub struct TransactionManager<D: BlockDevice> {
    core: TmCore<D>,
    sm: MetadataSpaceMap,
    /// The metadata space-map root of the last commit that reached the
    /// disk (`None` before the first one after `create`).
    durable: Option<SmRoot>,
}

impl<D: BlockDevice> TransactionManager<D> {
    /// `dm_tm_create_with_sm`: formats a metadata space map covering the
    /// whole device (capped at `DM_SM_METADATA_MAX_BLOCKS`), with blocks
    /// `0..=sb_location` counted as used (the superblock lives there).
    /// The new space map is committed in memory; nothing is durable until
    /// the first [`TransactionManager::commit`].
    pub fn create(bm: BlockManager<D>, sb_location: u64) -> Result<Self> {
        let nr_blocks = bm.nr_blocks();
        let mut core = TmCore {
            bm,
            shadows: ShadowSet::new(),
        };
        let sm = MetadataSpaceMap::create(&mut core, nr_blocks, sb_location)?;
        Ok(TransactionManager {
            core,
            sm,
            durable: None,
        })
    }

    /// `dm_tm_open_with_sm`: opens with the metadata space map whose root
    /// (`SmRoot`, 32 bytes; the superblock reserves 128) was saved at the
    /// last commit.
    pub fn open(bm: BlockManager<D>, _sb_location: u64, sm_root: &[u8]) -> Result<Self> {
        let mut core = TmCore {
            bm,
            shadows: ShadowSet::new(),
        };
        let root = SmRoot::unpack(sm_root)?;
        let sm = MetadataSpaceMap::open(&mut core, &root)?;
        Ok(TransactionManager {
            core,
            sm,
            durable: Some(root),
        })
    }

    /// The block manager.
    pub fn bm_ref(&self) -> &BlockManager<D> {
        &self.core.bm
    }

    /// The metadata space map (read-only queries: `nr_free`, `nr_blocks`).
    pub fn sm(&self) -> &MetadataSpaceMap {
        &self.sm
    }

    /// Number of free metadata blocks (`dm_sm_get_nr_free`).
    pub fn nr_free(&self) -> u64 {
        self.sm.nr_free()
    }

    /// Number of metadata blocks the space map covers.
    pub fn nr_blocks(&self) -> u64 {
        self.sm.nr_blocks()
    }

    /// The metadata space map root to save in the superblock.
    pub fn sm_root(&self) -> SmRoot {
        self.sm.root()
    }

    /// `dm_sm_copy_root`: writes the 32-byte root into `out`.
    pub fn copy_sm_root(&self, out: &mut [u8]) -> Result<()> {
        self.sm.root().pack(out)
    }

    /// Arms the metadata low-space event at `blocks` free blocks
    /// (`dm_sm_register_threshold_callback`; poll with
    /// [`Self::take_threshold_events`]).
    pub fn set_metadata_threshold(&mut self, blocks: u64) {
        self.sm.set_threshold(blocks);
    }

    /// How many times free metadata dropped to the threshold since the
    /// last call.
    pub fn take_threshold_events(&mut self) -> u32 {
        self.sm.take_threshold_events()
    }

    /// Grows the metadata space map by `extra` blocks (`dm_sm_extend`).
    pub fn extend_metadata(&mut self, extra: u64) -> Result<()> {
        self.core.bm.refresh_nr_blocks();
        self.sm.extend(&mut self.core, extra)
    }

    /// `dm_tm_pre_commit`: commits the metadata space map (writes its index).
    /// Call before reading [`Self::sm_root`] for the superblock.
    pub fn pre_commit(&mut self) -> Result<()> {
        self.sm.commit(&mut self.core)
    }

    /// `dm_tm_commit`: forgets the shadows, writes every dirty block,
    /// flushes, then writes the superblock `sb` (a write lock obtained with
    /// its validator) with FUA. Call [`Self::pre_commit`] first.
    pub fn commit(&mut self, sb: WriteLock) -> Result<()> {
        self.core.shadows.clear();
        let root = self.sm.root();
        self.core.bm.flush_and_unlock(sb)?;
        self.durable = Some(root);
        Ok(())
    }

    /// The whole commit sequence with a superblock-writing closure:
    /// pre-commit, lock the superblock (`zero`: without reading it, for
    /// format), let `fill` update it given the metadata space-map root, then
    /// commit. The closure gets the block's bytes and may fail (nothing is
    /// written then; the transaction stays open).
    pub fn commit_with<F>(
        &mut self,
        sb_location: u64,
        v: &'static dyn BlockValidator,
        zero: bool,
        fill: F,
    ) -> Result<()>
    where
        F: FnOnce(&mut [u8], &SmRoot) -> Result<()>,
    {
        self.pre_commit()?;
        let root = self.sm.root();
        let sb = if zero {
            self.core.bm.write_lock_zero(sb_location, v)?
        } else {
            self.core.bm.write_lock(sb_location, v)?
        };
        if let Err(e) = fill(self.core.bm.data_mut(&sb), &root) {
            self.core.bm.unlock_write(sb);
            return Err(e);
        }
        self.commit(sb)
    }

    /// Abandons the transaction: releases any locks still held, drops every
    /// dirty block and returns the metadata space map to the last commit
    /// that reached the disk (re-reading its index block), so this also
    /// recovers from a commit that failed half way. Other space maps (the
    /// data map) must be reverted by their owner: [`DiskSpaceMap::abort`]
    /// when no commit was attempted, otherwise reopen it from the
    /// superblock.
    ///
    /// [`DiskSpaceMap::abort`]: super::space_map::DiskSpaceMap::abort
    pub fn abort(&mut self) -> Result<()> {
        self.core.bm.discard_dirty()?;
        self.core.shadows.clear();
        match self.durable {
            Some(root) => self.sm = MetadataSpaceMap::open(&mut self.core, &root)?,
            None => self.sm.abort(),
        }
        Ok(())
    }

    /// A view that never blocks: reads that miss the cache and every write
    /// fail with `WouldBlock` (`dm_tm_create_non_blocking_clone`).
    pub fn non_blocking(&mut self) -> NonBlocking<'_, D> {
        NonBlocking { tm: self }
    }

    /// The metadata reference count of `b` (`dm_sm_get_count`).
    pub fn get_count(&mut self, b: u64) -> Result<u32> {
        self.sm.count(&mut self.core, b)
    }

    /// Gives back the block manager (dirty blocks stay unwritten).
    pub fn into_bm(self) -> BlockManager<D> {
        self.core.bm
    }
}

impl<D: BlockDevice> Transaction for TransactionManager<D> {
    type Dev = D;

    fn bm(&mut self) -> &mut BlockManager<D> {
        &mut self.core.bm
    }

    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        self.core.bm.read_lock(b, v)
    }

    fn new_block(&mut self, v: &'static dyn BlockValidator) -> Result<WriteLock> {
        self.core.new_block(&mut self.sm, v)
    }

    fn shadow_block(
        &mut self,
        b: u64,
        v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        self.core.shadow_block(&mut self.sm, b, v)
    }

    fn inc(&mut self, b: u64) -> Result<()> {
        self.core.shadows.remove(b);
        MetaAlloc::inc(&mut self.sm, &mut self.core, b)
    }

    fn dec(&mut self, b: u64) -> Result<()> {
        MetaAlloc::dec(&mut self.sm, &mut self.core, b)
    }

    fn ref_count(&mut self, b: u64) -> Result<u32> {
        self.sm.count(&mut self.core, b)
    }

    fn is_shared(&mut self, b: u64) -> Result<bool> {
        self.sm.more_than_one(&mut self.core, b)
    }
}

/// A non-blocking view of a [`TransactionManager`]: lookups are served from
/// the cache only, and anything else fails with `WouldBlock`.
pub struct NonBlocking<'a, D: BlockDevice> {
    tm: &'a mut TransactionManager<D>,
}

impl<D: BlockDevice> Transaction for NonBlocking<'_, D> {
    type Dev = D;

    fn bm(&mut self) -> &mut BlockManager<D> {
        &mut self.tm.core.bm
    }

    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        self.tm.core.bm.read_try_lock(b, v)
    }

    fn new_block(&mut self, _v: &'static dyn BlockValidator) -> Result<WriteLock> {
        Err(Error::WouldBlock)
    }

    fn shadow_block(
        &mut self,
        _b: u64,
        _v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        Err(Error::WouldBlock)
    }

    fn inc(&mut self, _b: u64) -> Result<()> {
        Err(Error::WouldBlock)
    }

    fn dec(&mut self, _b: u64) -> Result<()> {
        Err(Error::WouldBlock)
    }

    fn ref_count(&mut self, _b: u64) -> Result<u32> {
        Err(Error::WouldBlock)
    }

    fn is_shared(&mut self, _b: u64) -> Result<bool> {
        Err(Error::WouldBlock)
    }
}

/// Size of a block, re-exported for callers that fill superblocks.
pub const TM_BLOCK_SIZE: usize = BLOCK_SIZE;
