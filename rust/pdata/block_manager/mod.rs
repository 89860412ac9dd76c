//! The block manager: a bounded cache of metadata blocks with read and write
//! locks, validators and write-back (the kernel's `dm-block-manager.c` over
//! dm-bufio).
//!
//! Design:
//! - Blocks live in cache *slots*, each with its own 4 KiB heap buffer (a
//!   separate `alloc::Vec`, kmalloc in the kernel, so a bio can carry it as
//!   one page; no 4 KiB buffer is ever on the stack). A small chained hash
//!   (arrays of `u32`) maps block numbers to slots. The slot and hash
//!   arrays are `alloc::BigVec` (may be vmalloc'ed in the kernel).
//! - A lock is a small handle ([`ReadLock`], [`WriteLock`]) that does *not*
//!   borrow the manager: several blocks may be locked at once (a btree shadow
//!   spine holds parent and child, rebalancing holds four), and the manager
//!   stays usable for other calls in between. Data is reached through the
//!   manager ([`BlockManager::data`], [`BlockManager::data_mut`],
//!   [`BlockManager::data_mut2`], ...), so every access is checked against the
//!   lock kind: only a `WriteLock` gives `&mut` data. Locks are released with
//!   [`BlockManager::unlock`] / [`BlockManager::unlock_write`]; a slot with a
//!   lock is never evicted. Holding a lock across calls to other parts of
//!   the engine is fine; [`BlockManager::force_unlock_all`] (recovery only)
//!   makes every outstanding handle stale.
//! - Validators check a block when it is read from the device (once per cache
//!   fill) and stamp it (`prepare_for_write`: block number and checksum) when
//!   a dirty block is written back, as `dm_block_validator` does. A cached
//!   block locked with a different validator is `ValidatorMismatch`.
//! - Non-blocking mode: [`BlockManager::read_try_lock`] returns
//!   `Err(WouldBlock)` instead of doing I/O on a miss, and instead of
//!   waiting on a write-locked block (`dm_bm_read_try_lock`): the caller
//!   (the target's `map()`) defers to a worker, which takes the blocking
//!   path.
//!
//! # I/O
//!
//! All writes go through [`BlockDevice::write_blocks`] batches, never one
//! block at a time:
//! - Commit ([`BlockManager::flush_and_unlock`], what `dm_tm_commit` does):
//!   every dirty block but the superblock in one batch, one flush, then the
//!   superblock alone with FUA. The superblock write is the commit point;
//!   everything it names is durable before it is issued.
//! - Eviction: when the cache is full, the clock hand takes an unlocked,
//!   clean block not referenced since its last turn. Dirty blocks are passed
//!   over; only when every unlocked block is dirty are all of them written
//!   back in one batch (as dm-bufio writes dirty buffers asynchronously under
//!   pressure), after which they are clean victims. A miss under the
//!   caller's lock therefore costs at most one read and, rarely, one batch.
//! - Reads are one block per call, on a miss.
//!
//! # Memory bound
//!
//! A manager of `capacity` slots (16 to 2^24; the pool target sizes it
//! from memory, see `rust/thin/pool/`) holds at most `capacity` block
//! buffers of 4 KiB plus about 64 bytes of slot each, and a hash table of at
//! most `4 * capacity` `u32`s: about 16.3 MiB for 4096 slots. Slots and
//! buffers are allocated on first use. The cache grows past `capacity` only
//! while every slot is locked, by one slot per block locked beyond that;
//! engine operations hold a handful of locks at once (a btree rebalance
//! four), far below the 16-slot minimum, so in practice the bound is
//! `capacity`.
//!
//! [`BlockManager::shrink`] gives clean, unlocked blocks back (their
//! buffers are freed; the slot stays, empty, for a later miss): the pool's
//! shrinker calls it under memory pressure, as dm-bufio's shrinker frees
//! clean buffers. Dirty blocks stay until written.
//!
//! Single-threaded but for one call: methods take `&mut self`, and the owner
//! puts the whole manager behind a lock. [`BlockManager::peek`] takes
//! `&self`, for lookups that share that lock (`map()` under the pool's
//! lock held for reading; see `rust/thin/pool/mod.rs`). Nothing here panics on
//! disk content.

mod cache;
mod shared;
mod writeback;

use super::alloc::{BigVec, Vec};
use super::block_device::{BlockDevice, BLOCK_SIZE};
use super::error::{Error, Result};
use core::sync::atomic::AtomicBool;

/// Checks blocks read from disk and prepares blocks for writing.
pub trait BlockValidator: Sync {
    /// Name for diagnostics; validators are told apart by name.
    fn name(&self) -> &'static str;
    /// Fills in self-describing fields (block number, checksum) before a write.
    fn prepare_for_write(&self, location: u64, data: &mut [u8]);
    /// Checks a block just read from `location`.
    fn check(&self, location: u64, data: &[u8]) -> Result<()>;
}

/// A validator that checks nothing (raw blocks, tests).
pub struct NoopValidator;

impl BlockValidator for NoopValidator {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn prepare_for_write(&self, _location: u64, _data: &mut [u8]) {}
    fn check(&self, _location: u64, _data: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// The shared no-op validator.
pub static NOOP_VALIDATOR: NoopValidator = NoopValidator;

const NONE: u32 = u32::MAX;
const EMPTY_BLOCK: u64 = u64::MAX;

/// Slots allocated up front (the array grows past it on use).
const PREALLOCATED_SLOTS: usize = 4096;

/// A read lock on a cached block. Release with [`BlockManager::unlock`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub struct ReadLock {
    slot: u32,
    block: u64,
}

impl ReadLock {
    /// The block number.
    pub fn location(&self) -> u64 {
        self.block
    }
}

/// A write lock on a cached block; the block is dirty. Release with
/// [`BlockManager::unlock_write`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub struct WriteLock {
    slot: u32,
    block: u64,
}

impl WriteLock {
    /// The block number.
    pub fn location(&self) -> u64 {
        self.block
    }
}

struct Slot {
    block: u64,
    data: Vec<u8>,
    validator: Option<&'static dyn BlockValidator>,
    dirty: bool,
    readers: u32,
    writer: bool,
    /// Set on every use (an atomic: [`BlockManager::peek`] sets it through `&self`).
    referenced: AtomicBool,
    next: u32,
}

/// I/O counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct BmStats {
    /// Blocks read from the device.
    pub reads: u64,
    /// Blocks written to the device.
    pub writes: u64,
    /// Cache hits.
    pub hits: u64,
}

/// A bounded write-back cache of validated metadata blocks.
///
/// Owns the device. Lifetime: created over a device, dropped without writing
/// (call [`BlockManager::flush`] or commit through the transaction manager
/// first). Not internally locked: the owner serialises access.
pub struct BlockManager<D: BlockDevice> {
    dev: D,
    nr_blocks: u64,
    slots: BigVec<Slot>,
    buckets: BigVec<u32>,
    capacity: usize,
    hand: usize,
    read_only: bool,
    stats: BmStats,
    /// Bumped before every write to the device (see [`BlockManager::install`]).
    write_epoch: u64,
}

fn same_validator(a: &dyn BlockValidator, b: &dyn BlockValidator) -> bool {
    core::ptr::addr_eq(
        a as *const dyn BlockValidator,
        b as *const dyn BlockValidator,
    ) || a.name() == b.name()
}

impl<D: BlockDevice> BlockManager<D> {
    /// A manager caching up to `capacity` blocks of `dev` (at least 16).
    /// The cache grows past `capacity` only if every slot is locked.
    pub fn new(dev: D, capacity: usize) -> Result<Self> {
        // No more slots than the device has blocks.
        let blocks = usize::try_from(dev.nr_blocks()).unwrap_or(usize::MAX);
        let capacity = capacity.min(blocks).clamp(16, 1 << 24);
        // The hash table starts at twice the preallocated slots and grows
        // with them.
        let mut nb = 1usize;
        while nb < capacity.min(PREALLOCATED_SLOTS) * 2 {
            nb = nb.checked_mul(2).ok_or(Error::Invalid)?;
        }
        let mut buckets = BigVec::new();
        buckets.resize(nb, NONE)?;
        let nr_blocks = dev.nr_blocks();
        Ok(BlockManager {
            dev,
            nr_blocks,
            slots: BigVec::with_capacity(capacity.min(PREALLOCATED_SLOTS))?,
            buckets,
            capacity,
            hand: 0,
            read_only: false,
            stats: BmStats::default(),
            write_epoch: 0,
        })
    }

    /// Number of blocks on the device.
    pub fn nr_blocks(&self) -> u64 {
        self.nr_blocks
    }

    /// Re-reads the device size (after the device was resized).
    pub fn refresh_nr_blocks(&mut self) {
        self.nr_blocks = self.dev.nr_blocks();
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    /// I/O counters.
    pub fn stats(&self) -> BmStats {
        self.stats
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (tests: fault injection).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Gives the device back, dropping the cache (dirty blocks are lost).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// In read-only mode every write lock fails with `Invalid` (`dm_bm_set_read_only`).
    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
    }

    /// Whether the manager is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn check_location(&self, b: u64) -> Result<()> {
        if b >= self.nr_blocks {
            Err(Error::OutOfBounds)
        } else {
            Ok(())
        }
    }

    /// Looks a block up, reading it (and validating) on a miss unless
    /// `nonblocking`. Returns the slot index.
    fn get(
        &mut self,
        b: u64,
        v: &'static dyn BlockValidator,
        nonblocking: bool,
        zero: bool,
    ) -> Result<usize> {
        self.check_location(b)?;
        if let Some(i) = self.find(b) {
            self.stats.hits += 1;
            let s = &mut self.slots[i];
            *s.referenced.get_mut() = true;
            if zero {
                s.data.fill(0);
                s.validator = Some(v);
                return Ok(i);
            }
            match s.validator {
                Some(old) if same_validator(old, v) => {}
                Some(_) => return Err(Error::ValidatorMismatch),
                None => {
                    v.check(b, &s.data)?;
                    s.validator = Some(v);
                }
            }
            return Ok(i);
        }
        if nonblocking && !zero {
            return Err(Error::WouldBlock);
        }
        let i = self.get_slot()?;
        if zero {
            self.slots[i].data.fill(0);
        } else {
            let s = &mut self.slots[i];
            self.dev.read(b, &mut s.data)?;
            self.stats.reads += 1;
            v.check(b, &self.slots[i].data)?;
        }
        let s = &mut self.slots[i];
        s.validator = Some(v);
        s.dirty = false;
        *s.referenced.get_mut() = true;
        self.rehash(i, b);
        Ok(i)
    }

    /// Read-locks block `b`, reading and validating it on a cache miss.
    pub fn read_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        let i = self.get(b, v, false, false)?;
        self.take_read(i, b)
    }

    /// Like [`Self::read_lock`] but never waits: `WouldBlock` on a cache
    /// miss and on a block that is write-locked (`dm_bm_read_try_lock`:
    /// `dm_bufio_get` misses, or the block lock is not free), so the
    /// caller defers instead of failing.
    pub fn read_try_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<ReadLock> {
        let i = self.get(b, v, true, false)?;
        if self.slots[i].writer {
            return Err(Error::WouldBlock);
        }
        self.take_read(i, b)
    }

    fn take_read(&mut self, i: usize, b: u64) -> Result<ReadLock> {
        let s = &mut self.slots[i];
        if s.writer {
            return Err(Error::Busy);
        }
        s.readers = s.readers.checked_add(1).ok_or(Error::Busy)?;
        Ok(ReadLock {
            slot: i as u32,
            block: b,
        })
    }

    /// Write-locks block `b` (reading it on a miss); the block becomes dirty.
    pub fn write_lock(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<WriteLock> {
        if self.read_only {
            return Err(Error::Invalid);
        }
        let i = self.get(b, v, false, false)?;
        self.take_write(i, b)
    }

    /// Write-locks block `b` without reading it; its contents are zeroed.
    pub fn write_lock_zero(&mut self, b: u64, v: &'static dyn BlockValidator) -> Result<WriteLock> {
        if self.read_only {
            return Err(Error::Invalid);
        }
        if let Some(i) = self.find(b) {
            let s = &self.slots[i];
            if s.readers > 0 || s.writer {
                return Err(Error::Busy);
            }
        }
        let i = self.get(b, v, false, true)?;
        self.take_write(i, b)
    }

    fn take_write(&mut self, i: usize, b: u64) -> Result<WriteLock> {
        let s = &mut self.slots[i];
        if s.writer || s.readers > 0 {
            return Err(Error::Busy);
        }
        s.writer = true;
        s.dirty = true;
        Ok(WriteLock {
            slot: i as u32,
            block: b,
        })
    }

    /// Releases a read lock.
    pub fn unlock(&mut self, l: ReadLock) {
        if let Some(s) = self.slots.get_mut(l.slot as usize) {
            s.readers = s.readers.saturating_sub(1);
        }
    }

    /// Releases a write lock (the block stays dirty in the cache).
    pub fn unlock_write(&mut self, l: WriteLock) {
        if let Some(s) = self.slots.get_mut(l.slot as usize) {
            s.writer = false;
        }
    }

    /// The data of a read-locked block.
    pub fn data(&self, l: &ReadLock) -> &[u8] {
        // A handle always names an existing slot of this manager; a foreign
        // one gets an empty buffer (which no node or bitmap view accepts).
        self.slots.get(l.slot as usize).map_or(&[], |s| &s.data)
    }

    /// The data of a write-locked block, read-only.
    pub fn data_w(&self, l: &WriteLock) -> &[u8] {
        self.slots.get(l.slot as usize).map_or(&[], |s| &s.data)
    }

    /// The data of a write-locked block.
    pub fn data_mut(&mut self, l: &WriteLock) -> &mut [u8] {
        match self.slots.get_mut(l.slot as usize) {
            Some(s) => &mut s.data,
            None => &mut [],
        }
    }

    /// Two write-locked blocks at once. Locks are distinct by construction;
    /// handles kept across [`Self::force_unlock_all`] might not be, which
    /// gives `Err(Busy)` rather than two references to one buffer.
    pub fn data_mut2(&mut self, a: &WriteLock, b: &WriteLock) -> Result<(&mut [u8], &mut [u8])> {
        let [x, y] = self.slots_mut([a.slot as usize, b.slot as usize])?;
        Ok((x, y))
    }

    /// A read-locked block and a write-locked block at once.
    pub fn data_rw(&mut self, r: &ReadLock, w: &WriteLock) -> Result<(&[u8], &mut [u8])> {
        let [x, y] = self.slots_mut([r.slot as usize, w.slot as usize])?;
        Ok((x, y))
    }

    /// Three write-locked blocks at once.
    pub fn data_mut3(
        &mut self,
        a: &WriteLock,
        b: &WriteLock,
        c: &WriteLock,
    ) -> Result<(&mut [u8], &mut [u8], &mut [u8])> {
        let [x, y, z] = self.slots_mut([a.slot as usize, b.slot as usize, c.slot as usize])?;
        Ok((x, y, z))
    }

    /// The buffers of `N` distinct slots, mutably (`Err(Busy)` if two are
    /// the same slot or one is out of range).
    fn slots_mut<const N: usize>(&mut self, idx: [usize; N]) -> Result<[&mut [u8]; N]> {
        for (k, a) in idx.iter().enumerate() {
            if idx[..k].contains(a) || *a >= self.slots.len() {
                return Err(Error::Busy);
            }
        }
        let mut out: [Option<&mut [u8]>; N] = [const { None }; N];
        let mut rest: &mut [Slot] = &mut self.slots;
        let mut base = 0usize;
        // Hand out the wanted slots in increasing order by splitting.
        let mut order = idx;
        order.sort_unstable();
        for want in order {
            let (_, tail) = core::mem::take(&mut rest).split_at_mut(want - base);
            let (first, tail) = tail.split_first_mut().ok_or(Error::Busy)?;
            if let Some(k) = idx.iter().position(|&x| x == want) {
                out[k] = Some(&mut first.data);
            }
            rest = tail;
            base = want + 1;
        }
        if out.iter().any(Option::is_none) {
            return Err(Error::Busy);
        }
        Ok(out.map(Option::unwrap_or_default))
    }

    /// Number of locks currently held (for debugging and commit checks).
    pub fn nr_locks(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.readers as usize + s.writer as usize)
            .sum()
    }

    /// Releases every lock at once (after an error path lost track of
    /// some). Outstanding [`ReadLock`]/[`WriteLock`] handles become stale:
    /// using them afterwards reaches whatever block the slot then holds.
    pub fn force_unlock_all(&mut self) {
        for s in self.slots.iter_mut() {
            s.readers = 0;
            s.writer = false;
        }
    }

    /// Reads block `b` into the cache if it is not there (`dm_bm_prefetch`,
    /// synchronous here). Errors are ignored, as a prefetch is only a hint.
    pub fn prefetch(&mut self, b: u64, v: &'static dyn BlockValidator) {
        if let Ok(l) = self.read_lock(b, v) {
            self.unlock(l);
        }
    }

    /// Whether block `b` is cached.
    pub fn is_cached(&self, b: u64) -> bool {
        self.find(b).is_some()
    }
}
