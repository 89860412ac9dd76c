//! The metadata device's space map (`dm-space-map-metadata.c`).
//!
//! This map describes the very device its own bitmaps and ref-count tree
//! live on, so changing a count may need new blocks (to shadow a bitmap or
//! a ref-count tree node), whose counts must change too, and so on. The C
//! code tracks the recursion depth and queues the inner changes in a ring
//! buffer. Here that is explicit:
//!
//! - a top-level operation builds a `MetaEnv`: the transaction core plus a
//!   *recursive allocator* that allocates blocks free in both the committed
//!   and the current map and only *queues* their count changes
//!   (`PendingOps`);
//! - the low-level mutation runs inside that environment, then the queue is
//!   drained (each queued change may queue more) before returning.
//!
//! When the map is created or extended it is in *bootstrap* mode: blocks are
//! handed out linearly from the new area without looking at the bitmaps
//! (which do not exist yet), and counted once everything is in place.
//!
//! The index lives in memory (`255` entries) and is written to a shadowed
//! index block at commit.

use super::{
    bitmap_find_free, bitmap_lookup, ll_extend, ll_find_common_free, ll_lookup, ll_lookup_bitmap,
    ll_mutate, rc_lookup, BlockOp, Event, IndexEntry, LlCounts, LlEnv, Op, PendingOps, ReadOnlyTm,
    SmRoot, BITMAP_VALIDATOR, DM_SM_METADATA_MAX_BLOCKS, ENTRIES_PER_BLOCK, INDEX_VALIDATOR,
    MAX_METADATA_BITMAPS,
};
use crate::pdata::alloc::Vec;
use crate::pdata::block_device::BlockDevice;
use crate::pdata::block_manager::{BlockManager, BlockValidator, ReadLock, WriteLock};
use crate::pdata::btree::{Btree, U32Value};
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::{MetaAlloc, TmCore, Transaction};

/// Offset of the entries in the index block (after csum, padding, blocknr).
const INDEX_HEADER_SIZE: usize = 16;

/// The in-memory copy of the index block's entries (`mi_le.index`).
pub(crate) struct MetaIndex {
    entries: Vec<IndexEntry>,
}

impl MetaIndex {
    fn new() -> Result<Self> {
        let mut entries = Vec::new();
        entries.resize(MAX_METADATA_BITMAPS, IndexEntry::default())?;
        Ok(MetaIndex { entries })
    }

    fn try_clone(&self) -> Result<Self> {
        Ok(MetaIndex {
            entries: Vec::from_slice(&self.entries)?,
        })
    }

    fn get(&self, i: u64) -> Result<IndexEntry> {
        self.entries
            .get(usize::try_from(i).map_err(|_| Error::BadSpaceMap)?)
            .copied()
            .ok_or(Error::BadSpaceMap)
    }

    fn set(&mut self, i: u64, ie: &IndexEntry) -> Result<()> {
        let e = self
            .entries
            .get_mut(usize::try_from(i).map_err(|_| Error::BadSpaceMap)?)
            .ok_or(Error::BadSpaceMap)?;
        *e = *ie;
        Ok(())
    }

    fn load(data: &[u8]) -> Result<Self> {
        let mut m = Self::new()?;
        for (i, e) in m.entries.iter_mut().enumerate() {
            let off = INDEX_HEADER_SIZE + 16 * i;
            *e = IndexEntry::unpack(data.get(off..off + 16).ok_or(Error::BadSpaceMap)?);
        }
        Ok(m)
    }

    fn store(&self, data: &mut [u8]) {
        for (i, e) in self.entries.iter().enumerate() {
            let off = INDEX_HEADER_SIZE + 16 * i;
            if let Some(d) = data.get_mut(off..off + 16) {
                e.pack(d);
            }
        }
    }
}

/// Metadata bitmap lookup without a transaction (index in memory).
fn meta_lookup_bitmap<D: BlockDevice>(
    bm: &mut BlockManager<D>,
    index: &MetaIndex,
    nr_blocks: u64,
    b: u64,
) -> Result<u32> {
    if b >= nr_blocks {
        return Err(Error::OutOfBounds);
    }
    let ie = index.get(b / ENTRIES_PER_BLOCK)?;
    let l = bm.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
    let v = bitmap_lookup(bm.data(&l), (b % ENTRIES_PER_BLOCK) as u32);
    bm.unlock(l);
    Ok(v)
}

fn meta_find_free<D: BlockDevice>(
    bm: &mut BlockManager<D>,
    index: &MetaIndex,
    begin: u64,
    end: u64,
) -> Result<Option<u64>> {
    if begin >= end {
        return Ok(None);
    }
    let index_begin = begin / ENTRIES_PER_BLOCK;
    let index_end = end.div_ceil(ENTRIES_PER_BLOCK);
    let mut bit_begin = (begin % ENTRIES_PER_BLOCK) as u32;
    let mut end_bit = (end % ENTRIES_PER_BLOCK) as u32;
    if end_bit == 0 {
        end_bit = ENTRIES_PER_BLOCK as u32;
    }
    for i in index_begin..index_end {
        let ie = index.get(i)?;
        let start = bit_begin.max(ie.none_free_before);
        bit_begin = 0;
        if ie.nr_free == 0 {
            continue;
        }
        let bit_end = if i == index_end - 1 {
            end_bit
        } else {
            ENTRIES_PER_BLOCK as u32
        };
        let l = bm.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
        let pos = bitmap_find_free(bm.data(&l), start, bit_end);
        bm.unlock(l);
        if let Some(p) = pos {
            return Ok(Some(i * ENTRIES_PER_BLOCK + p as u64));
        }
    }
    Ok(None)
}

/// The allocator used while the map is being changed: allocations are
/// found in the bitmaps but their counts are queued, not applied.
pub(crate) struct RecAlloc<'a> {
    cur: &'a mut MetaIndex,
    cur_nr_blocks: u64,
    rc_root: u64,
    old: &'a MetaIndex,
    old_nr_blocks: u64,
    pending: &'a mut PendingOps,
    begin: &'a mut u64,
    allocated: &'a mut u64,
    bootstrap: bool,
}

impl RecAlloc<'_> {
    /// `sm_ll_find_common_free_block` over the in-memory indexes.
    fn find_common_free<D: BlockDevice>(
        &mut self,
        bm: &mut BlockManager<D>,
        mut begin: u64,
    ) -> Result<Option<u64>> {
        loop {
            let b = match meta_find_free(bm, self.cur, begin, self.cur_nr_blocks)? {
                None => return Ok(None),
                Some(b) => b,
            };
            let old_free = b >= self.old_nr_blocks
                || meta_lookup_bitmap(bm, self.old, self.old_nr_blocks, b)? == 0;
            if old_free && !self.pending.contains(b) {
                return Ok(Some(b));
            }
            begin = b + 1;
        }
    }
}

impl<D: BlockDevice> MetaAlloc<D> for RecAlloc<'_> {
    fn alloc(&mut self, core: &mut TmCore<D>) -> Result<Option<u64>> {
        if self.bootstrap {
            // We know the whole new area is unused.
            if *self.begin >= self.cur_nr_blocks {
                return Ok(None);
            }
            let b = *self.begin;
            *self.begin += 1;
            return Ok(Some(b));
        }
        let begin = *self.begin;
        let mut b = self.find_common_free(&mut core.bm, begin)?;
        if b.is_none() && begin > 0 {
            b = self.find_common_free(&mut core.bm, 0)?;
        }
        let b = match b {
            None => return Ok(None),
            Some(b) => b,
        };
        *self.begin = b + 1;
        self.pending.push(BlockOp {
            block: b,
            inc: true,
        })?;
        *self.allocated += 1;
        Ok(Some(b))
    }

    fn inc(&mut self, _core: &mut TmCore<D>, b: u64) -> Result<()> {
        self.pending.push(BlockOp {
            block: b,
            inc: true,
        })
    }

    fn dec(&mut self, _core: &mut TmCore<D>, b: u64) -> Result<()> {
        self.pending.push(BlockOp {
            block: b,
            inc: false,
        })
    }

    fn count(&mut self, core: &mut TmCore<D>, b: u64) -> Result<u32> {
        if self.bootstrap {
            return Ok((b < *self.begin) as u32);
        }
        let mut v = meta_lookup_bitmap(&mut core.bm, self.cur, self.cur_nr_blocks, b)?;
        if v == 3 {
            v = rc_lookup(&mut ReadOnlyTm(&mut core.bm), self.rc_root, b)?;
        }
        let adj = self.pending.adjustment(b);
        u32::try_from(v as i64 + adj).map_err(|_| Error::RefCount)
    }

    fn more_than_one(&mut self, core: &mut TmCore<D>, b: u64) -> Result<bool> {
        if self.bootstrap {
            return Ok(false);
        }
        let adj = self.pending.adjustment(b);
        if adj > 1 {
            return Ok(true);
        }
        let rc = meta_lookup_bitmap(&mut core.bm, self.cur, self.cur_nr_blocks, b)?;
        if rc == 3 {
            // Err on the side of caution, as C does.
            return Ok(true);
        }
        Ok(rc as i64 + adj > 1)
    }
}

/// The environment of a metadata-map mutation: the transaction core and
/// the recursive allocator, acting as a [`Transaction`] for the bitmaps and
/// the ref-count tree, and as the index store.
pub(crate) struct MetaEnv<'a, D: BlockDevice> {
    core: &'a mut TmCore<D>,
    rec: RecAlloc<'a>,
}

impl<D: BlockDevice> Transaction for MetaEnv<'_, D> {
    type Dev = D;
    fn bm(&mut self) -> &mut BlockManager<D> {
        &mut self.core.bm
    }
    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        self.core.bm.read_lock(b, v)
    }
    fn new_block(&mut self, v: &'static dyn BlockValidator) -> Result<WriteLock> {
        self.core.new_block(&mut self.rec, v)
    }
    fn shadow_block(
        &mut self,
        b: u64,
        v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        self.core.shadow_block(&mut self.rec, b, v)
    }
    fn inc(&mut self, b: u64) -> Result<()> {
        self.core.shadows.remove(b);
        MetaAlloc::<D>::inc(&mut self.rec, self.core, b)
    }
    fn dec(&mut self, b: u64) -> Result<()> {
        MetaAlloc::<D>::dec(&mut self.rec, self.core, b)
    }
    fn ref_count(&mut self, b: u64) -> Result<u32> {
        self.rec.count(self.core, b)
    }
    fn is_shared(&mut self, b: u64) -> Result<bool> {
        self.rec.more_than_one(self.core, b)
    }
}

impl<D: BlockDevice> LlEnv for MetaEnv<'_, D> {
    fn load_ie(&mut self, i: u64) -> Result<IndexEntry> {
        self.rec.cur.get(i)
    }
    fn save_ie(&mut self, i: u64, ie: &IndexEntry) -> Result<()> {
        self.rec.cur.set(i, ie)
    }
    fn load_old_ie(&mut self, i: u64) -> Result<IndexEntry> {
        self.rec.old.get(i)
    }
    fn is_pending(&self, b: u64) -> bool {
        self.rec.pending.contains(b)
    }
    fn max_index_entries(&self) -> u64 {
        MAX_METADATA_BITMAPS as u64
    }
}

impl<D: BlockDevice> MetaEnv<'_, D> {
    /// Applies queued changes until none are left (`apply_bops`).
    fn apply_pending(&mut self, counts: &mut LlCounts) -> Result<()> {
        while let Some(op) = self.rec.pending.peek() {
            let o = if op.inc { Op::Inc } else { Op::Dec };
            self.rec.rc_root = counts.ref_count_root;
            ll_mutate(self, counts, op.block, o)?;
            self.rec.pending.pop();
        }
        Ok(())
    }

    /// `metadata_ll_commit`: shadows the index block and writes the index
    /// into it (after applying the changes the shadowing queued).
    fn commit_index(&mut self, counts: &mut LlCounts, bitmap_root: &mut u64) -> Result<()> {
        let (w, _) = self
            .core
            .shadow_block(&mut self.rec, *bitmap_root, &INDEX_VALIDATOR)?;
        *bitmap_root = w.location();
        if let Err(e) = self.apply_pending(counts) {
            self.core.bm.unlock_write(w);
            return Err(e);
        }
        self.rec.cur.store(self.core.bm.data_mut(&w));
        self.core.bm.unlock_write(w);
        Ok(())
    }
}

/// The metadata device's space map.
///
/// Owned by the [`crate::pdata::transaction_manager::TransactionManager`];
/// read its state through it. Lifetime: one per open pool.
pub struct MetadataSpaceMap {
    counts: LlCounts,
    bitmap_root: u64,
    index: MetaIndex,
    index_changed: bool,
    old_counts: LlCounts,
    old_bitmap_root: u64,
    old_index: MetaIndex,
    begin: u64,
    allocated_this_transaction: u64,
    pending: PendingOps,
    threshold: Threshold,
}

/// An edge-triggered low-free-space threshold (`struct threshold`): the
/// event fires when the free count drops to or below the threshold, and
/// again only after it went back above. Polled instead of a callback: the
/// crossings since the last poll are counted, so the pool raises as many
/// events as C's callback would.
#[derive(Default, Clone, Copy)]
struct Threshold {
    threshold: Option<u64>,
    current: Option<u64>,
    events: u32,
}

impl Threshold {
    fn below(&self, v: u64) -> bool {
        matches!(self.threshold, Some(t) if v <= t)
    }

    fn check(&mut self, v: u64) {
        let already = matches!(self.current, Some(c) if self.below(c));
        if self.below(v) && !already {
            self.events = self.events.saturating_add(1);
        }
        self.current = Some(v);
    }
}

impl MetadataSpaceMap {
    /// `dm_sm_register_threshold_callback`: arms the low-space event at
    /// `blocks` free blocks.
    pub fn set_threshold(&mut self, blocks: u64) {
        self.threshold = Threshold {
            threshold: Some(blocks),
            current: None,
            events: 0,
        };
    }

    /// How many times the threshold was crossed since the last call.
    pub fn take_threshold_events(&mut self) -> u32 {
        core::mem::replace(&mut self.threshold.events, 0)
    }

    fn split<'a, D: BlockDevice>(
        &'a mut self,
        core: &'a mut TmCore<D>,
        bootstrap: bool,
    ) -> (MetaEnv<'a, D>, &'a mut LlCounts, &'a mut u64, &'a mut bool) {
        let env = MetaEnv {
            core,
            rec: RecAlloc {
                cur: &mut self.index,
                cur_nr_blocks: self.counts.nr_blocks,
                rc_root: self.counts.ref_count_root,
                old: &self.old_index,
                old_nr_blocks: self.old_counts.nr_blocks,
                pending: &mut self.pending,
                begin: &mut self.begin,
                allocated: &mut self.allocated_this_transaction,
                bootstrap,
            },
        };
        (
            env,
            &mut self.counts,
            &mut self.bitmap_root,
            &mut self.index_changed,
        )
    }

    /// `dm_sm_metadata_create`.
    pub(crate) fn create<D: BlockDevice>(
        core: &mut TmCore<D>,
        nr_blocks: u64,
        superblock: u64,
    ) -> Result<Self> {
        let mut sm = MetadataSpaceMap {
            counts: LlCounts::default(),
            bitmap_root: 0,
            index: MetaIndex::new()?,
            index_changed: false,
            old_counts: LlCounts::default(),
            old_bitmap_root: 0,
            old_index: MetaIndex::new()?,
            begin: superblock.checked_add(1).ok_or(Error::Invalid)?,
            allocated_this_transaction: 0,
            pending: PendingOps::default(),
            threshold: Threshold::default(),
        };
        let nr_blocks = nr_blocks.min(DM_SM_METADATA_MAX_BLOCKS);
        if superblock >= nr_blocks {
            return Err(Error::Invalid);
        }
        {
            let (mut env, counts, bitmap_root, _) = sm.split(core, true);
            // The linear allocator needs the size before anything exists.
            counts.nr_blocks = nr_blocks;
            env.rec.cur_nr_blocks = nr_blocks;
            // sm_ll_new_metadata
            let w = env.new_block(&INDEX_VALIDATOR)?;
            *bitmap_root = w.location();
            env.bm().unlock_write(w);
            counts.ref_count_root = Btree::<U32Value>::new(1).empty(&mut env)?;
            counts.nr_blocks = 0;
            ll_extend(&mut env, counts, nr_blocks)?;
            // Count the blocks the structures were built from.
            let mut counted = superblock;
            loop {
                let end = *env.rec.begin;
                for b in counted..end {
                    env.rec.pending.push(BlockOp {
                        block: b,
                        inc: true,
                    })?;
                }
                counted = end;
                env.apply_pending(counts)?;
                env.commit_index(counts, bitmap_root)?;
                if *env.rec.begin == counted {
                    break;
                }
            }
        }
        sm.index_changed = false;
        sm.finish_commit()?;
        Ok(sm)
    }

    /// `dm_sm_metadata_open`.
    pub(crate) fn open<D: BlockDevice>(core: &mut TmCore<D>, root: &SmRoot) -> Result<Self> {
        let max = (MAX_METADATA_BITMAPS as u64) * ENTRIES_PER_BLOCK;
        if root.nr_blocks > max || root.nr_allocated > root.nr_blocks {
            return Err(Error::BadSpaceMap);
        }
        let l = core.bm.read_lock(root.bitmap_root, &INDEX_VALIDATOR)?;
        let index = MetaIndex::load(core.bm.data(&l));
        core.bm.unlock(l);
        let index = index?;
        let counts = LlCounts {
            nr_blocks: root.nr_blocks,
            nr_allocated: root.nr_allocated,
            ref_count_root: root.ref_count_root,
        };
        Ok(MetadataSpaceMap {
            counts,
            bitmap_root: root.bitmap_root,
            old_index: index.try_clone()?,
            index,
            index_changed: false,
            old_counts: counts,
            old_bitmap_root: root.bitmap_root,
            begin: 0,
            allocated_this_transaction: 0,
            pending: PendingOps::default(),
            threshold: Threshold::default(),
        })
    }

    fn finish_commit(&mut self) -> Result<()> {
        self.old_index = self.index.try_clone()?;
        self.old_counts = self.counts;
        self.old_bitmap_root = self.bitmap_root;
        // Like C (since 5.x), `begin` is kept: allocation continues where
        // it stopped instead of rescanning from block 0.
        self.allocated_this_transaction = 0;
        Ok(())
    }

    /// `sm_metadata_commit`: writes the index (if changed) and makes the
    /// current state the committed one.
    pub(crate) fn commit<D: BlockDevice>(&mut self, core: &mut TmCore<D>) -> Result<()> {
        if self.index_changed {
            let (mut env, counts, bitmap_root, changed) = self.split(core, false);
            env.commit_index(counts, bitmap_root)?;
            *changed = false;
        }
        self.finish_commit()
    }

    /// Returns to the last committed state (after the block manager dropped
    /// the dirty blocks).
    pub(crate) fn abort(&mut self) {
        if let Ok(ix) = self.old_index.try_clone() {
            self.index = ix;
        } else {
            // Out of memory: swap instead (the old copy is rebuilt at commit).
            core::mem::swap(&mut self.index, &mut self.old_index);
        }
        self.counts = self.old_counts;
        self.bitmap_root = self.old_bitmap_root;
        self.index_changed = false;
        self.begin = 0;
        self.allocated_this_transaction = 0;
        self.pending.clear();
    }

    /// `sm_metadata_extend`: grows the map by `extra` blocks. The new
    /// bitmaps are allocated from the new area.
    pub(crate) fn extend<D: BlockDevice>(
        &mut self,
        core: &mut TmCore<D>,
        extra: u64,
    ) -> Result<()> {
        let old_len = self.counts.nr_blocks;
        let new_len = old_len.checked_add(extra).ok_or(Error::Invalid)?;
        if new_len > DM_SM_METADATA_MAX_BLOCKS || new_len > core.bm.nr_blocks() {
            return Err(Error::Invalid);
        }
        self.begin = old_len;
        let r = (|| -> Result<()> {
            let (mut env, counts, bitmap_root, changed) = self.split(core, true);
            env.rec.cur_nr_blocks = new_len;
            ll_extend(&mut env, counts, extra)?;
            let mut counted = old_len;
            loop {
                let end = *env.rec.begin;
                for b in counted..end {
                    env.rec.pending.push(BlockOp {
                        block: b,
                        inc: true,
                    })?;
                }
                counted = end;
                env.apply_pending(counts)?;
                env.commit_index(counts, bitmap_root)?;
                if *env.rec.begin == counted {
                    break;
                }
            }
            *changed = false;
            Ok(())
        })();
        r
    }

    fn top_level<D: BlockDevice>(&mut self, core: &mut TmCore<D>, b: u64, op: Op) -> Result<Event> {
        let (mut env, counts, _, changed) = self.split(core, false);
        *changed = true;
        let ev = ll_mutate(&mut env, counts, b, op)?;
        env.apply_pending(counts)?;
        Ok(ev)
    }

    /// Blocks covered.
    pub fn nr_blocks(&self) -> u64 {
        self.counts.nr_blocks
    }

    /// Free blocks: free at the last commit minus those allocated since.
    pub fn nr_free(&self) -> u64 {
        self.old_counts
            .nr_blocks
            .saturating_sub(self.old_counts.nr_allocated)
            .saturating_sub(self.allocated_this_transaction)
    }

    /// Blocks in use now.
    pub fn nr_allocated(&self) -> u64 {
        self.counts.nr_allocated
    }

    /// The root to save in the superblock (valid after a commit).
    pub fn root(&self) -> SmRoot {
        SmRoot {
            nr_blocks: self.counts.nr_blocks,
            nr_allocated: self.counts.nr_allocated,
            bitmap_root: self.bitmap_root,
            ref_count_root: self.counts.ref_count_root,
        }
    }
}

impl<D: BlockDevice> MetaAlloc<D> for MetadataSpaceMap {
    fn alloc(&mut self, core: &mut TmCore<D>) -> Result<Option<u64>> {
        let (mut env, counts, _, changed) = self.split(core, false);
        let old_counts = LlCounts {
            nr_blocks: env.rec.old_nr_blocks,
            ..LlCounts::default()
        };
        let begin = *env.rec.begin;
        let mut b = ll_find_common_free(&mut env, &old_counts, counts, begin)?;
        if b.is_none() && begin > 0 {
            b = ll_find_common_free(&mut env, &old_counts, counts, 0)?;
        }
        let b = match b {
            None => return Ok(None),
            Some(b) => b,
        };
        *env.rec.begin = b + 1;
        *changed = true;
        // Queue the increment rather than applying it directly: while it is
        // applied, `b` is still pending, so the recursive allocator cannot
        // hand it out a second time.
        env.rec.pending.push(BlockOp {
            block: b,
            inc: true,
        })?;
        *env.rec.allocated += 1;
        env.apply_pending(counts)?;
        let free = self.nr_free();
        self.threshold.check(free);
        Ok(Some(b))
    }

    fn inc(&mut self, core: &mut TmCore<D>, b: u64) -> Result<()> {
        self.top_level(core, b, Op::Inc).map(|_| ())
    }

    fn dec(&mut self, core: &mut TmCore<D>, b: u64) -> Result<()> {
        self.top_level(core, b, Op::Dec).map(|_| ())
    }

    fn count(&mut self, core: &mut TmCore<D>, b: u64) -> Result<u32> {
        let (mut env, counts, _, _) = self.split(core, false);
        let v = ll_lookup(&mut env, counts, b)?;
        let adj = env.rec.pending.adjustment(b);
        u32::try_from(v as i64 + adj).map_err(|_| Error::RefCount)
    }

    fn more_than_one(&mut self, core: &mut TmCore<D>, b: u64) -> Result<bool> {
        let (mut env, counts, _, _) = self.split(core, false);
        let adj = env.rec.pending.adjustment(b);
        if adj > 1 {
            return Ok(true);
        }
        let rc = ll_lookup_bitmap(&mut env, counts, b, false)?;
        if rc == 3 {
            return Ok(true);
        }
        Ok(rc as i64 + adj > 1)
    }
}
