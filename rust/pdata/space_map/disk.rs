//! The data device's space map (`dm-space-map-disk.c`).
//!
//! Its bitmaps, index btree and ref-count btree live on the *metadata*
//! device and are changed through the transaction manager like any other
//! metadata; the map itself only keeps the current and committed roots and
//! counters. Every method takes the transaction it works in.
//!
//! Changed index entries are cached (64 direct-mapped slots, 7.3's
//! `ie_cache`) and reach the index btree only at [`DiskSpaceMap::commit`]:
//! take [`DiskSpaceMap::root`] after `commit`, as C calls `dm_sm_commit`
//! before `dm_sm_copy_root`.
//!
//! Abort: [`DiskSpaceMap::abort`] returns to the last in-memory `commit`.
//! That is the last durable state only if no metadata commit was attempted
//! since; after a failed metadata commit reopen the map from the
//! superblock's root instead (`PoolMetadata::abort` always reopens).

use super::{
    ll_extend, ll_find_common_free, ll_lookup, ll_lookup_bitmap, ll_mutate, ll_mutate_range, Event, IndexEntry, IndexEntryValue,
    LlCounts, LlEnv, Op, SmRoot,
};
use crate::pdata::alloc::Vec;
use crate::pdata::block_manager::{BlockManager, BlockValidator, ReadLock, WriteLock};
use crate::pdata::btree::{Btree, U32Value};
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

const INDEX_TREE: Btree<IndexEntryValue> = Btree::new(1);

/// Slots in an index-entry cache (C: `IE_CACHE_SIZE`).
const IE_CACHE_SIZE: usize = 64;

#[derive(Clone, Copy, Default)]
struct IeSlot {
    valid: bool,
    dirty: bool,
    index: u64,
    ie: IndexEntry,
}

/// A direct-mapped cache of index entries (C 7.3's `ie_cache`): changes to
/// an entry stay here and reach the index btree when evicted or at commit,
/// instead of a btree insert per reference-count change.
struct IeCache {
    slots: Vec<IeSlot>,
}

impl IeCache {
    fn new() -> Result<Self> {
        let mut slots = Vec::new();
        slots.resize(IE_CACHE_SIZE, IeSlot::default())?;
        Ok(IeCache { slots })
    }

    fn slot(&mut self, index: u64) -> Result<&mut IeSlot> {
        self.slots
            .get_mut(index as usize % IE_CACHE_SIZE)
            .ok_or(Error::Invalid)
    }

    fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            *s = IeSlot::default();
        }
    }
}

/// Writes a dirty slot back to the index tree.
fn write_back<T: Transaction>(tm: &mut T, root: &mut u64, s: &mut IeSlot) -> Result<()> {
    if s.valid && s.dirty {
        *root = INDEX_TREE.insert(tm, &mut (), *root, &[s.index], &s.ie)?;
        s.dirty = false;
    }
    Ok(())
}

struct DiskEnv<'a, T: Transaction> {
    tm: &'a mut T,
    root: &'a mut u64,
    cache: &'a mut IeCache,
    old_root: u64,
    old_cache: &'a mut IeCache,
}

impl<T: Transaction> Transaction for DiskEnv<'_, T> {
    type Dev = T::Dev;
    fn bm(&mut self) -> &mut BlockManager<T::Dev> {
        self.tm.bm()
    }
    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        self.tm.read_lock(b, v)
    }
    fn new_block(&mut self, v: &'static dyn BlockValidator) -> Result<WriteLock> {
        self.tm.new_block(v)
    }
    fn shadow_block(
        &mut self,
        b: u64,
        v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        self.tm.shadow_block(b, v)
    }
    fn inc(&mut self, b: u64) -> Result<()> {
        self.tm.inc(b)
    }
    fn dec(&mut self, b: u64) -> Result<()> {
        self.tm.dec(b)
    }
    fn ref_count(&mut self, b: u64) -> Result<u32> {
        self.tm.ref_count(b)
    }
    fn is_shared(&mut self, b: u64) -> Result<bool> {
        self.tm.is_shared(b)
    }
}

impl<T: Transaction> LlEnv for DiskEnv<'_, T> {
    fn load_ie(&mut self, i: u64) -> Result<IndexEntry> {
        let s = *self.cache.slot(i)?;
        if s.valid && s.index == i {
            return Ok(s.ie);
        }
        let ie = INDEX_TREE
            .lookup(self.tm, *self.root, &[i])?
            .ok_or(Error::BadSpaceMap)?;
        let slot = self.cache.slot(i)?;
        write_back(self.tm, self.root, slot)?;
        *slot = IeSlot {
            valid: true,
            dirty: false,
            index: i,
            ie,
        };
        Ok(ie)
    }
    fn save_ie(&mut self, i: u64, ie: &IndexEntry) -> Result<()> {
        let slot = self.cache.slot(i)?;
        if !(slot.valid && slot.index == i) {
            write_back(self.tm, self.root, slot)?;
        }
        *slot = IeSlot {
            valid: true,
            dirty: true,
            index: i,
            ie: *ie,
        };
        Ok(())
    }
    fn load_old_ie(&mut self, i: u64) -> Result<IndexEntry> {
        let s = *self.old_cache.slot(i)?;
        if s.valid && s.index == i {
            return Ok(s.ie);
        }
        let ie = INDEX_TREE
            .lookup(self.tm, self.old_root, &[i])?
            .ok_or(Error::BadSpaceMap)?;
        *self.old_cache.slot(i)? = IeSlot {
            valid: true,
            dirty: false,
            index: i,
            ie,
        };
        Ok(ie)
    }
    fn max_index_entries(&self) -> u64 {
        u64::MAX
    }
}

/// The data device's space map (`struct sm_disk`).
///
/// Owned by the pool metadata next to the transaction manager; every call
/// takes that transaction. Lifetime: one per open pool. "No free block" is
/// `Ok(None)`.
pub struct DiskSpaceMap {
    counts: LlCounts,
    bitmap_root: u64,
    cache: IeCache,
    old_cache: IeCache,
    old_counts: LlCounts,
    old_bitmap_root: u64,
    begin: u64,
    nr_allocated_this_transaction: i64,
    /// The lowest and highest block freed since [`Self::take_freed_range`]
    /// (the range a trim after a delete looks at).
    freed: Option<(u64, u64)>,
}

impl DiskSpaceMap {
    fn env<'a, T: Transaction>(&'a mut self, tm: &'a mut T) -> (DiskEnv<'a, T>, &'a mut LlCounts) {
        (
            DiskEnv {
                tm,
                root: &mut self.bitmap_root,
                cache: &mut self.cache,
                old_root: self.old_bitmap_root,
                old_cache: &mut self.old_cache,
            },
            &mut self.counts,
        )
    }

    /// `dm_sm_disk_create`: a map of `nr_blocks` free blocks (committed in
    /// memory: its blocks become durable with the next metadata commit).
    pub fn create<T: Transaction>(tm: &mut T, nr_blocks: u64) -> Result<Self> {
        let bitmap_root = INDEX_TREE.empty(tm)?;
        let ref_count_root = Btree::<U32Value>::new(1).empty(tm)?;
        let mut sm = DiskSpaceMap {
            counts: LlCounts {
                nr_blocks: 0,
                nr_allocated: 0,
                ref_count_root,
            },
            bitmap_root,
            cache: IeCache::new()?,
            old_cache: IeCache::new()?,
            old_counts: LlCounts::default(),
            old_bitmap_root: bitmap_root,
            begin: 0,
            nr_allocated_this_transaction: 0,
            freed: None,
        };
        {
            let (mut env, counts) = sm.env(tm);
            ll_extend(&mut env, counts, nr_blocks)?;
        }
        sm.commit(tm)?;
        Ok(sm)
    }

    /// `dm_sm_disk_open`: opens the map whose root (32 bytes) was saved.
    pub fn open<T: Transaction>(_tm: &mut T, root: &[u8]) -> Result<Self> {
        let r = SmRoot::unpack(root)?;
        if r.nr_allocated > r.nr_blocks {
            return Err(Error::BadSpaceMap);
        }
        let counts = LlCounts {
            nr_blocks: r.nr_blocks,
            nr_allocated: r.nr_allocated,
            ref_count_root: r.ref_count_root,
        };
        Ok(DiskSpaceMap {
            counts,
            bitmap_root: r.bitmap_root,
            cache: IeCache::new()?,
            old_cache: IeCache::new()?,
            old_counts: counts,
            old_bitmap_root: r.bitmap_root,
            begin: 0,
            nr_allocated_this_transaction: 0,
            freed: None,
        })
    }

    /// `sm_disk_extend`: covers `extra` more blocks.
    pub fn extend<T: Transaction>(&mut self, tm: &mut T, extra: u64) -> Result<()> {
        let (mut env, counts) = self.env(tm);
        ll_extend(&mut env, counts, extra)
    }

    /// Blocks covered (as of the last commit, like C).
    pub fn nr_blocks(&self) -> u64 {
        self.old_counts.nr_blocks
    }

    /// Free blocks (`sm_disk_get_nr_free`).
    pub fn nr_free(&self) -> u64 {
        let base = self
            .old_counts
            .nr_blocks
            .saturating_sub(self.old_counts.nr_allocated);
        let d = self.nr_allocated_this_transaction;
        if d >= 0 {
            base.saturating_sub(d as u64)
        } else {
            base.saturating_add(d.unsigned_abs())
        }
    }

    /// Blocks in use now.
    pub fn nr_allocated(&self) -> u64 {
        self.counts.nr_allocated
    }

    /// The reference count of `b`.
    pub fn get_count<T: Transaction>(&mut self, tm: &mut T, b: u64) -> Result<u32> {
        let (mut env, counts) = self.env(tm);
        ll_lookup(&mut env, counts, b)
    }

    /// Whether `b` has more than one reference.
    pub fn count_is_more_than_one<T: Transaction>(&mut self, tm: &mut T, b: u64) -> Result<bool> {
        Ok(self.get_count(tm, b)? > 1)
    }

    fn mutate<T: Transaction>(&mut self, tm: &mut T, b: u64, op: Op) -> Result<()> {
        let ev = {
            let (mut env, counts) = self.env(tm);
            ll_mutate(&mut env, counts, b, op)?
        };
        match ev {
            Event::Alloc => self.nr_allocated_this_transaction += 1,
            Event::Free => {
                self.nr_allocated_this_transaction -= 1;
                self.freed = Some(match self.freed {
                    Some((lo, hi)) => (lo.min(b), hi.max(b + 1)),
                    None => (b, b + 1),
                });
            }
            Event::None => {}
        }
        Ok(())
    }

    /// Sets the reference count of `b`.
    pub fn set_count<T: Transaction>(&mut self, tm: &mut T, b: u64, count: u32) -> Result<()> {
        self.mutate(tm, b, Op::Set(count))
    }

    /// Increments the reference count of `b`.
    pub fn inc<T: Transaction>(&mut self, tm: &mut T, b: u64) -> Result<()> {
        self.mutate(tm, b, Op::Inc)
    }

    /// Decrements the reference count of `b` (`Err(RefCount)` below zero).
    pub fn dec<T: Transaction>(&mut self, tm: &mut T, b: u64) -> Result<()> {
        self.mutate(tm, b, Op::Dec)
    }

    /// Increments every block in `b..e` (one bitmap block at a time).
    pub fn inc_range<T: Transaction>(&mut self, tm: &mut T, b: u64, e: u64) -> Result<()> {
        self.mutate_range(tm, b, e, Op::Inc)
    }

    /// Decrements every block in `b..e` (one bitmap block at a time; a
    /// count below zero is refused with `Err(RefCount)`, and the caller
    /// aborts the transaction).
    pub fn dec_range<T: Transaction>(&mut self, tm: &mut T, b: u64, e: u64) -> Result<()> {
        self.mutate_range(tm, b, e, Op::Dec)
    }

    fn mutate_range<T: Transaction>(&mut self, tm: &mut T, b: u64, e: u64, op: Op) -> Result<()> {
        if b >= e {
            return Ok(());
        }
        let ev = {
            let (mut env, counts) = self.env(tm);
            ll_mutate_range(&mut env, counts, b, e, op)?
        };
        let delta = i64::try_from(ev.allocs).unwrap_or(i64::MAX) - i64::try_from(ev.frees).unwrap_or(i64::MAX);
        self.nr_allocated_this_transaction += delta;
        if let Some((lo, hi)) = ev.freed {
            self.freed = Some(match self.freed {
                Some((a, z)) => (a.min(lo), z.max(hi)),
                None => (lo, hi),
            });
        }
        Ok(())
    }

    /// `sm_disk_new_block`: allocates a block free both now and at the last
    /// commit, searching from after the last allocation and wrapping once.
    /// `Ok(None)` if there is none.
    pub fn new_block<T: Transaction>(&mut self, tm: &mut T) -> Result<Option<u64>> {
        let begin = self.begin;
        let old_counts = self.old_counts;
        let b = {
            let (mut env, counts) = self.env(tm);
            match ll_find_common_free(&mut env, &old_counts, counts, begin)? {
                Some(b) => Some(b),
                // Something below `begin` may have been freed (and committed).
                None if begin > 0 => ll_find_common_free(&mut env, &old_counts, counts, 0)?,
                None => None,
            }
        };
        let b = match b {
            None => return Ok(None),
            Some(b) => b,
        };
        self.begin = b + 1;
        self.inc(tm, b)?;
        Ok(Some(b))
    }

    /// The blocks freed since the last call (lowest to highest + 1), if any.
    pub fn take_freed_range(&mut self) -> Option<(u64, u64)> {
        self.freed.take()
    }

    /// The first run of blocks at or after `begin`, at most `max` long,
    /// that are free now *and* were free at the last commit: nothing
    /// references them in core or on disk, and no allocation can be
    /// writing them (an allocation holds its block from the moment it takes
    /// it). `None` if no such block is left.
    pub fn find_free_run<T: Transaction>(
        &mut self,
        tm: &mut T,
        begin: u64,
        max: u64,
    ) -> Result<Option<(u64, u64)>> {
        let old_counts = self.old_counts;
        let (mut env, counts) = self.env(tm);
        let Some(b) = ll_find_common_free(&mut env, &old_counts, counts, begin)? else {
            return Ok(None);
        };
        let limit = counts.nr_blocks.min(b.saturating_add(max.max(1)));
        let mut e = b + 1;
        while e < limit {
            let free_now = ll_lookup_bitmap(&mut env, counts, e, false)? == 0;
            let free_then =
                e >= old_counts.nr_blocks || ll_lookup_bitmap(&mut env, &old_counts, e, true)? == 0;
            if !free_now || !free_then || env.is_pending(e) {
                break;
            }
            e += 1;
        }
        Ok(Some((b, e)))
    }

    /// `sm_disk_commit`: the current state becomes the committed one. Call
    /// before the metadata commit that makes it durable.
    pub fn commit<T: Transaction>(&mut self, tm: &mut T) -> Result<()> {
        // Flush the index-entry cache (`disk_ll_commit`).
        for i in 0..IE_CACHE_SIZE {
            if let Some(slot) = self.cache.slots.get_mut(i) {
                write_back(tm, &mut self.bitmap_root, slot)?;
            }
        }
        self.old_counts = self.counts;
        self.old_bitmap_root = self.bitmap_root;
        self.old_cache.clear();
        self.nr_allocated_this_transaction = 0;
        Ok(())
    }

    /// Returns to the state of the last [`Self::commit`] (with the metadata
    /// abort). After a failed metadata commit that state may not be the
    /// durable one: reopen from the superblock then.
    pub fn abort(&mut self) {
        self.counts = self.old_counts;
        self.bitmap_root = self.old_bitmap_root;
        self.cache.clear();
        self.nr_allocated_this_transaction = 0;
        self.begin = 0;
    }

    /// The root to save in the superblock: valid after [`Self::commit`]
    /// (which flushes the cached index entries into the index tree).
    pub fn root(&self) -> SmRoot {
        SmRoot {
            nr_blocks: self.counts.nr_blocks,
            nr_allocated: self.counts.nr_allocated,
            bitmap_root: self.bitmap_root,
            ref_count_root: self.counts.ref_count_root,
        }
    }

    /// `dm_sm_copy_root`: writes the 32-byte root into `out`.
    pub fn copy_root(&self, out: &mut [u8]) -> Result<()> {
        self.root().pack(out)
    }

    /// `dm_sm_root_size`.
    pub fn root_size(&self) -> usize {
        super::SM_ROOT_SIZE
    }
}
