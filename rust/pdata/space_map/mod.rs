//! Space maps: reference counts for every block of a device
//! (`dm-space-map-common.c`, `-disk.c`, `-metadata.c`).
//!
//! On-disk format (common to both maps):
//! - *bitmap blocks* hold 2 bits per block after a 16-byte header
//!   `{csum, not_used, blocknr}`: 0 = free, 1 and 2 = that many references,
//!   3 = "look in the ref-count tree";
//! - an *index* of `{blocknr, nr_free, none_free_before}` entries, one per
//!   bitmap. The data device's map (`DiskSpaceMap`) keeps it in a btree; the
//!   metadata device's map (`MetadataSpaceMap`) in one index block of at
//!   most 255 entries, which bounds the metadata device to
//!   [`DM_SM_METADATA_MAX_BLOCKS`];
//! - a *ref-count btree* (`u64` block -> `le32` count) for counts of 3 or more;
//! - the root saved in the superblock: [`SmRoot`].
//!
//! Both maps keep the state of the last commit next to the current one:
//! a new block must be free in *both*, so a block freed in this transaction
//! is not handed out again until the commit makes the free durable (the C
//! code's `old_ll` vs `ll`).
//!
//! Allocation (7.3's `sm_ll_find_common_free_block`): the search runs over
//! the *current* map first, from just after the last block handed out, and
//! takes the first block that is free at the last commit too, wrapping
//! once. The cursor survives commits, so allocation walks forward through
//! the device and comes back to fill holes. Blocks added by `extend` are
//! free in both maps, so usable at once, before any commit.
//!
//! "No free block" is `Ok(None)`, never an error.

pub mod disk;
pub mod metadata;

use crate::pdata::alloc::Vec;
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::block_manager::{BlockManager, BlockValidator, ReadLock, WriteLock};
use crate::pdata::btree::{Btree, U32Value, ValueType};
use crate::pdata::checksum::{block_checksum, stamp_checksum, stored_checksum};
use crate::pdata::checksum::{BITMAP_CSUM_XOR, INDEX_CSUM_XOR};
use crate::pdata::endian::{rd32, rd64, wr64};
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

pub use disk::DiskSpaceMap;
pub use metadata::MetadataSpaceMap;

/// Size of a bitmap block header (`struct disk_bitmap_header`).
pub const BITMAP_HEADER_SIZE: usize = 16;
/// Reference counts per bitmap block (`entries_per_block`): 16320 for 4 KiB.
pub const ENTRIES_PER_BLOCK: u64 = ((BLOCK_SIZE - BITMAP_HEADER_SIZE) * 4) as u64;
/// Index entries in the metadata index block (`MAX_METADATA_BITMAPS`).
pub const MAX_METADATA_BITMAPS: usize = 255;
/// Largest metadata device the metadata space map can describe
/// (`DM_SM_METADATA_MAX_BLOCKS`).
pub const DM_SM_METADATA_MAX_BLOCKS: u64 = 255 * ((1 << 14) - 64);
/// Bytes of a packed [`SmRoot`] (`sizeof(struct disk_sm_root)`).
pub const SM_ROOT_SIZE: usize = 32;

/// `struct disk_sm_root`: what the superblock stores for a space map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmRoot {
    /// Blocks covered.
    pub nr_blocks: u64,
    /// Blocks with a non-zero count.
    pub nr_allocated: u64,
    /// Index: btree root (disk map) or index block (metadata map).
    pub bitmap_root: u64,
    /// Root of the ref-count btree.
    pub ref_count_root: u64,
}

impl SmRoot {
    /// Reads a root from its 32 little-endian bytes.
    pub fn unpack(b: &[u8]) -> Result<Self> {
        if b.len() < SM_ROOT_SIZE {
            return Err(Error::Invalid);
        }
        Ok(SmRoot {
            nr_blocks: rd64(b, 0),
            nr_allocated: rd64(b, 8),
            bitmap_root: rd64(b, 16),
            ref_count_root: rd64(b, 24),
        })
    }

    /// Writes the root into `out` (at least 32 bytes).
    pub fn pack(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < SM_ROOT_SIZE {
            return Err(Error::NoSpace);
        }
        wr64(out, 0, self.nr_blocks);
        wr64(out, 8, self.nr_allocated);
        wr64(out, 16, self.bitmap_root);
        wr64(out, 24, self.ref_count_root);
        Ok(())
    }

    /// The packed bytes.
    pub fn to_bytes(&self) -> [u8; SM_ROOT_SIZE] {
        let mut b = [0u8; SM_ROOT_SIZE];
        let _ = self.pack(&mut b);
        b
    }
}

/// `struct disk_index_entry`: where a bitmap lives and a summary of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexEntry {
    /// The bitmap block.
    pub blocknr: u64,
    /// Free entries in the bitmap.
    pub nr_free: u32,
    /// No free entry below this bit.
    pub none_free_before: u32,
}

impl IndexEntry {
    /// Unpacks 16 little-endian bytes.
    pub fn unpack(b: &[u8]) -> Self {
        IndexEntry {
            blocknr: rd64(b, 0),
            nr_free: rd32(b, 8),
            none_free_before: rd32(b, 12),
        }
    }

    /// Packs into 16 bytes.
    pub fn pack(&self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..16) {
            o[0..8].copy_from_slice(&self.blocknr.to_le_bytes());
            o[8..12].copy_from_slice(&self.nr_free.to_le_bytes());
            o[12..16].copy_from_slice(&self.none_free_before.to_le_bytes());
        }
    }
}

/// Index entries as btree values (the disk map's index tree).
pub struct IndexEntryValue;

impl ValueType for IndexEntryValue {
    const SIZE: usize = 16;
    type Value = IndexEntry;
    type Context = ();
    fn unpack(b: &[u8]) -> IndexEntry {
        IndexEntry::unpack(b)
    }
    fn pack(v: &IndexEntry, out: &mut [u8]) {
        v.pack(out)
    }
}

/// The space maps' bitmap validator (`dm_sm_bitmap_validator`).
pub struct BitmapValidator;
/// The shared bitmap validator.
pub static BITMAP_VALIDATOR: BitmapValidator = BitmapValidator;

impl BlockValidator for BitmapValidator {
    fn name(&self) -> &'static str {
        "sm_bitmap"
    }
    fn prepare_for_write(&self, location: u64, data: &mut [u8]) {
        wr64(data, 8, location);
        stamp_checksum(data, BITMAP_CSUM_XOR);
    }
    fn check(&self, location: u64, data: &[u8]) -> Result<()> {
        if rd64(data, 8) != location {
            return Err(Error::BlockNr);
        }
        if block_checksum(data, BITMAP_CSUM_XOR) != stored_checksum(data) {
            return Err(Error::Checksum);
        }
        Ok(())
    }
}

/// The metadata index block validator (`index_validator`).
pub struct IndexValidator;
/// The shared index validator.
pub static INDEX_VALIDATOR: IndexValidator = IndexValidator;

impl BlockValidator for IndexValidator {
    fn name(&self) -> &'static str {
        "index"
    }
    fn prepare_for_write(&self, location: u64, data: &mut [u8]) {
        wr64(data, 8, location);
        stamp_checksum(data, INDEX_CSUM_XOR);
    }
    fn check(&self, location: u64, data: &[u8]) -> Result<()> {
        if rd64(data, 8) != location {
            return Err(Error::BlockNr);
        }
        if block_checksum(data, INDEX_CSUM_XOR) != stored_checksum(data) {
            return Err(Error::Checksum);
        }
        Ok(())
    }
}

const WORD_LO: u64 = 0x5555_5555_5555_5555;

/// `sm_lookup_bitmap`: the 2-bit count of entry `bit` of a bitmap block.
pub fn bitmap_lookup(block: &[u8], bit: u32) -> u32 {
    let w = rd64(block, BITMAP_HEADER_SIZE + 8 * (bit as usize / 32));
    let s = (bit % 32) * 2;
    let hi = ((w >> s) & 1) as u32;
    let lo = ((w >> (s + 1)) & 1) as u32;
    (hi << 1) | lo
}

/// `sm_set_bitmap`: sets entry `bit` to `val` (0..=3).
pub fn bitmap_set(block: &mut [u8], bit: u32, val: u32) {
    let off = BITMAP_HEADER_SIZE + 8 * (bit as usize / 32);
    let mut w = rd64(block, off);
    let s = (bit % 32) * 2;
    w &= !(3u64 << s);
    w |= (((val >> 1) & 1) as u64) << s;
    w |= ((val & 1) as u64) << (s + 1);
    wr64(block, off, w);
}

/// `sm_find_free`: the first free entry in `begin..end` of a bitmap.
pub fn bitmap_find_free(block: &[u8], begin: u32, end: u32) -> Option<u32> {
    let end = end.min(ENTRIES_PER_BLOCK as u32);
    let mut b = begin;
    while b < end {
        let word = b / 32;
        let w = rd64(block, BITMAP_HEADER_SIZE + 8 * word as usize);
        // bit 2e of `free` is set iff entry e of the word is 0.
        let mut free = !(w | (w >> 1)) & WORD_LO;
        let first = b % 32;
        free &= !0u64 << (2 * first);
        if free != 0 {
            let e = free.trailing_zeros() / 2;
            let pos = word * 32 + e;
            return if pos < end { Some(pos) } else { None };
        }
        b = (word + 1) * 32;
    }
    None
}

/// The mutable counters of a low-level map (`struct ll_disk` minus the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LlCounts {
    pub nr_blocks: u64,
    pub nr_allocated: u64,
    pub ref_count_root: u64,
}

/// What a mutation did to the allocation state (`enum allocation_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    None,
    Alloc,
    Free,
}

/// A reference-count change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Inc,
    Dec,
    Set(u32),
}

/// The low-level environment of a map: a transaction plus access to the
/// current and committed index (`load_ie`/`save_ie` in C).
pub(crate) trait LlEnv: Transaction {
    fn load_ie(&mut self, i: u64) -> Result<IndexEntry>;
    fn save_ie(&mut self, i: u64, ie: &IndexEntry) -> Result<()>;
    fn load_old_ie(&mut self, i: u64) -> Result<IndexEntry>;
    /// Whether `b` has a deferred operation queued (metadata map only).
    fn is_pending(&self, _b: u64) -> bool {
        false
    }
    /// Maximum number of index entries.
    fn max_index_entries(&self) -> u64;
}

const RC_TREE: Btree<U32Value> = Btree::new(1);

fn split_block(b: u64) -> (u64, u32) {
    (b / ENTRIES_PER_BLOCK, (b % ENTRIES_PER_BLOCK) as u32)
}

fn div_up(n: u64, d: u64) -> u64 {
    n.div_ceil(d)
}

/// `sm_ll_lookup_bitmap`.
pub(crate) fn ll_lookup_bitmap<E: LlEnv>(
    env: &mut E,
    counts: &LlCounts,
    b: u64,
    old: bool,
) -> Result<u32> {
    if b >= counts.nr_blocks {
        return Err(Error::OutOfBounds);
    }
    let (i, bit) = split_block(b);
    let ie = if old {
        env.load_old_ie(i)?
    } else {
        env.load_ie(i)?
    };
    let l = env.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
    let v = bitmap_lookup(env.bm().data(&l), bit);
    env.bm().unlock(l);
    Ok(v)
}

/// `sm_ll_lookup_big_ref_count`.
pub(crate) fn rc_lookup<T: Transaction>(tm: &mut T, root: u64, b: u64) -> Result<u32> {
    RC_TREE.lookup(tm, root, &[b])?.ok_or(Error::RefCount)
}

/// `sm_ll_lookup`: the full count of `b`.
pub(crate) fn ll_lookup<E: LlEnv>(env: &mut E, counts: &LlCounts, b: u64) -> Result<u32> {
    let v = ll_lookup_bitmap(env, counts, b, false)?;
    if v != 3 {
        return Ok(v);
    }
    rc_lookup(env, counts.ref_count_root, b)
}

/// `sm_ll_find_free_block` over the current or committed index.
pub(crate) fn ll_find_free<E: LlEnv>(
    env: &mut E,
    old: bool,
    begin: u64,
    end: u64,
) -> Result<Option<u64>> {
    if begin >= end {
        return Ok(None);
    }
    let index_begin = begin / ENTRIES_PER_BLOCK;
    let index_end = div_up(end, ENTRIES_PER_BLOCK);
    let mut bit_begin = (begin % ENTRIES_PER_BLOCK) as u32;
    let mut end_bit = (end % ENTRIES_PER_BLOCK) as u32;
    if end_bit == 0 {
        end_bit = ENTRIES_PER_BLOCK as u32;
    }
    for i in index_begin..index_end {
        let ie = if old {
            env.load_old_ie(i)?
        } else {
            env.load_ie(i)?
        };
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
        let l = env.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
        let pos = bitmap_find_free(env.bm().data(&l), start, bit_end);
        env.bm().unlock(l);
        if let Some(p) = pos {
            return Ok(Some(i * ENTRIES_PER_BLOCK + p as u64));
        }
    }
    Ok(None)
}

/// `sm_ll_find_common_free_block`: the first block at or after `begin`
/// that is free now *and* was free at the last commit (blocks beyond the
/// committed size count as free then). Like C, the search runs to the end
/// of the current map.
pub(crate) fn ll_find_common_free<E: LlEnv>(
    env: &mut E,
    old_counts: &LlCounts,
    counts: &LlCounts,
    mut begin: u64,
) -> Result<Option<u64>> {
    loop {
        let b = match ll_find_free(env, false, begin, counts.nr_blocks)? {
            None => return Ok(None),
            Some(b) => b,
        };
        let old_free =
            b >= old_counts.nr_blocks || ll_lookup_bitmap(env, old_counts, b, true)? == 0;
        if old_free && !env.is_pending(b) {
            return Ok(Some(b));
        }
        begin = b + 1;
    }
}

/// `sm_ll_mutate`: applies `op` to the count of `b`.
pub(crate) fn ll_mutate<E: LlEnv>(
    env: &mut E,
    counts: &mut LlCounts,
    b: u64,
    op: Op,
) -> Result<Event> {
    if b >= counts.nr_blocks {
        return Err(Error::OutOfBounds);
    }
    let (index, bit) = split_block(b);
    let mut ie = env.load_ie(index)?;
    // Work out the new count before changing anything, so that a refused
    // change (a count going below zero) leaves no trace.
    let old = {
        let l = env.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
        let v = bitmap_lookup(env.bm().data(&l), bit);
        env.bm().unlock(l);
        if v > 2 {
            rc_lookup(env, counts.ref_count_root, b)?
        } else {
            v
        }
    };
    let new = match op {
        Op::Inc => old.checked_add(1),
        Op::Dec => old.checked_sub(1),
        Op::Set(n) => Some(n),
    }
    .ok_or(Error::RefCount)?;
    if new == old {
        return Ok(Event::None);
    }
    let (nb, _) = env.shadow_block(ie.blocknr, &BITMAP_VALIDATOR)?;
    ie.blocknr = nb.location();
    bitmap_set(env.bm().data_mut(&nb), bit, new.min(3));
    // Unlocked before the reference-count tree changes: in the metadata
    // map those allocate, which may come back to this bitmap.
    env.bm().unlock_write(nb);
    let ev = finish_count(env, counts, &mut ie, b, bit, old, new)?;
    env.save_ie(index, &ie)?;
    Ok(ev)
}

/// What [`ll_mutate_range`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangeEvents {
    /// Blocks that went from free to used.
    pub allocs: u64,
    /// Blocks that went from used to free, and the lowest and highest + 1.
    pub frees: u64,
    pub freed: Option<(u64, u64)>,
}

/// [`ll_mutate`] (`Inc` or `Dec`) of every block in `b..e`, one bitmap block
/// at a time: its index entry is loaded and saved and the bitmap shadowed
/// once for all the blocks it covers (C `sm_ll_inc`/`sm_ll_dec` over a
/// range). Within one bitmap block nothing changes unless every count can
/// (a decrement below zero is refused first); blocks of earlier bitmap
/// blocks are changed by then, and the caller aborts the transaction.
///
/// For the data space map only: the bitmap stays locked while counts
/// above 2 change the reference-count tree, whose allocations go to the
/// *metadata* map (in the metadata map they could come back to the locked
/// bitmap; it uses [`ll_mutate`]).
pub(crate) fn ll_mutate_range<E: LlEnv>(
    env: &mut E,
    counts: &mut LlCounts,
    b: u64,
    e: u64,
    op: Op,
) -> Result<RangeEvents> {
    if b > e || e > counts.nr_blocks {
        return Err(Error::OutOfBounds);
    }
    let mut out = RangeEvents::default();
    let mut x = b;
    while x < e {
        let (index, bit0) = split_block(x);
        let n = (e - x).min(ENTRIES_PER_BLOCK - u64::from(bit0)) as u32;
        let mut ie = env.load_ie(index)?;
        if op == Op::Dec {
            let l = env.read_lock(ie.blocknr, &BITMAP_VALIDATOR)?;
            let zero = (bit0..bit0 + n).any(|bit| bitmap_lookup(env.bm().data(&l), bit) == 0);
            env.bm().unlock(l);
            if zero {
                return Err(Error::RefCount);
            }
        }
        let (nb, _) = env.shadow_block(ie.blocknr, &BITMAP_VALIDATOR)?;
        ie.blocknr = nb.location();
        let r = mutate_bits(env, counts, &mut ie, &nb, x, bit0, n, op, &mut out);
        env.bm().unlock_write(nb);
        r?;
        env.save_ie(index, &ie)?;
        x += u64::from(n);
    }
    Ok(out)
}

/// The `n` entries from `bit0` of the locked bitmap `nb` (block `x` is the
/// first), by `op`.
#[allow(clippy::too_many_arguments)]
fn mutate_bits<E: LlEnv>(
    env: &mut E,
    counts: &mut LlCounts,
    ie: &mut IndexEntry,
    nb: &WriteLock,
    x: u64,
    bit0: u32,
    n: u32,
    op: Op,
    out: &mut RangeEvents,
) -> Result<()> {
    for i in 0..n {
        let (bit, blk) = (bit0 + i, x + u64::from(i));
        let v = bitmap_lookup(env.bm().data_w(nb), bit);
        let old = if v > 2 { rc_lookup(env, counts.ref_count_root, blk)? } else { v };
        let new = match op {
            Op::Inc => old.checked_add(1),
            Op::Dec => old.checked_sub(1),
            Op::Set(c) => Some(c),
        }
        .ok_or(Error::RefCount)?;
        if new == old {
            continue;
        }
        bitmap_set(env.bm().data_mut(nb), bit, new.min(3));
        match finish_count(env, counts, ie, blk, bit, old, new)? {
            Event::Alloc => out.allocs += 1,
            Event::Free => {
                out.frees += 1;
                out.freed = Some(match out.freed {
                    Some((lo, hi)) => (lo.min(blk), hi.max(blk + 1)),
                    None => (blk, blk + 1),
                });
            }
            Event::None => {}
        }
    }
    Ok(())
}

/// The rest of a count change of block `b` (entry `bit` of the bitmap
/// `ie` describes, whose 2 bits are already set) from `old` to `new`: the
/// reference-count tree above 2, and the index entry's free count.
#[allow(clippy::too_many_arguments)]
fn finish_count<E: LlEnv>(
    env: &mut E,
    counts: &mut LlCounts,
    ie: &mut IndexEntry,
    b: u64,
    bit: u32,
    old: u32,
    new: u32,
) -> Result<Event> {
    if new <= 2 {
        if old > 2 {
            let (root, _) = RC_TREE.remove(env, &mut (), counts.ref_count_root, &[b])?;
            counts.ref_count_root = root;
        }
    } else {
        counts.ref_count_root = RC_TREE.insert(env, &mut (), counts.ref_count_root, &[b], &new)?;
    }
    Ok(if new > 0 && old == 0 {
        counts.nr_allocated = counts.nr_allocated.saturating_add(1);
        ie.nr_free = ie.nr_free.checked_sub(1).ok_or(Error::BadSpaceMap)?;
        if ie.none_free_before == bit {
            ie.none_free_before = bit + 1;
        }
        Event::Alloc
    } else if old > 0 && new == 0 {
        counts.nr_allocated = counts.nr_allocated.saturating_sub(1);
        ie.nr_free = ie.nr_free.saturating_add(1);
        ie.none_free_before = ie.none_free_before.min(bit);
        Event::Free
    } else {
        Event::None
    })
}

/// `sm_ll_extend`: adds bitmaps for `extra` more blocks.
pub(crate) fn ll_extend<E: LlEnv>(env: &mut E, counts: &mut LlCounts, extra: u64) -> Result<()> {
    let nr_blocks = counts.nr_blocks.checked_add(extra).ok_or(Error::Invalid)?;
    let old_blocks = div_up(counts.nr_blocks, ENTRIES_PER_BLOCK);
    let blocks = div_up(nr_blocks, ENTRIES_PER_BLOCK);
    if blocks > env.max_index_entries() {
        return Err(Error::Invalid);
    }
    // Set before new_block() below (the metadata map allocates from the new area).
    counts.nr_blocks = nr_blocks;
    for i in old_blocks..blocks {
        let w = env.new_block(&BITMAP_VALIDATOR)?;
        let loc = w.location();
        env.bm().unlock_write(w);
        let ie = IndexEntry {
            blocknr: loc,
            nr_free: ENTRIES_PER_BLOCK as u32,
            none_free_before: 0,
        };
        env.save_ie(i, &ie)?;
    }
    Ok(())
}

/// A deferred reference-count change of the metadata map (`struct block_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockOp {
    pub block: u64,
    pub inc: bool,
}

/// The metadata space map's queue of deferred operations: changes requested
/// while the map is itself being changed (C: recursion counter plus ring
/// buffer), applied in order once the outer operation finishes.
#[derive(Default)]
pub(crate) struct PendingOps {
    ops: Vec<BlockOp>,
    head: usize,
}

impl PendingOps {
    pub fn push(&mut self, op: BlockOp) -> Result<()> {
        self.ops.push(op)
    }

    /// The oldest queued operation, left in the queue (so that it still
    /// counts as pending while it is applied, as in C's `brb_peek`).
    pub fn peek(&self) -> Option<BlockOp> {
        self.ops.get(self.head).copied()
    }

    /// Drops the oldest queued operation (`brb_pop`).
    pub fn pop(&mut self) {
        if self.head < self.ops.len() {
            self.head += 1;
        }
        if self.head >= self.ops.len() {
            self.ops.clear();
            self.head = 0;
        }
    }

    pub fn clear(&mut self) {
        self.ops.clear();
        self.head = 0;
    }

    /// Net count change queued for `b`.
    pub fn adjustment(&self, b: u64) -> i64 {
        self.ops
            .get(self.head..)
            .unwrap_or(&[])
            .iter()
            .filter(|o| o.block == b)
            .map(|o| if o.inc { 1 } else { -1 })
            .sum()
    }

    pub fn contains(&self, b: u64) -> bool {
        self.ops
            .get(self.head..)
            .unwrap_or(&[])
            .iter()
            .any(|o| o.block == b)
    }
}

/// A read-only transaction over a bare block manager (lookups in the
/// space maps' own trees from inside the metadata map).
pub(crate) struct ReadOnlyTm<'a, D: BlockDevice>(pub &'a mut BlockManager<D>);

impl<D: BlockDevice> Transaction for ReadOnlyTm<'_, D> {
    type Dev = D;
    fn bm(&mut self) -> &mut BlockManager<D> {
        self.0
    }
    fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        self.0.read_lock(b, v)
    }
    fn new_block(&mut self, _v: &'static dyn BlockValidator) -> Result<WriteLock> {
        Err(Error::Invalid)
    }
    fn shadow_block(
        &mut self,
        _b: u64,
        _v: &'static dyn BlockValidator,
    ) -> Result<(WriteLock, bool)> {
        Err(Error::Invalid)
    }
    fn inc(&mut self, _b: u64) -> Result<()> {
        Err(Error::Invalid)
    }
    fn dec(&mut self, _b: u64) -> Result<()> {
        Err(Error::Invalid)
    }
    fn ref_count(&mut self, _b: u64) -> Result<u32> {
        Err(Error::Invalid)
    }
    fn is_shared(&mut self, _b: u64) -> Result<bool> {
        Err(Error::Invalid)
    }
}
