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
//! from memory, see `rust/thin/pool.rs`) holds at most `capacity` block
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
//! lock held for reading; see `rust/thin/pool.rs`). Nothing here panics on
//! disk content.

use super::alloc::{BigVec, Vec};
use super::block_device::{BlockDevice, BLOCK_SIZE};
use super::error::{Error, Result};
use core::sync::atomic::{AtomicBool, Ordering};

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

fn hash(b: u64, mask: usize) -> usize {
    (b.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
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

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn find(&self, b: u64) -> Option<usize> {
        let mut i = *self.buckets.get(hash(b, self.mask()))?;
        while i != NONE {
            let s = self.slots.get(i as usize)?;
            if s.block == b {
                return Some(i as usize);
            }
            i = s.next;
        }
        None
    }

    fn unhash(&mut self, idx: usize) {
        let b = match self.slots.get(idx) {
            Some(s) if s.block != EMPTY_BLOCK => s.block,
            _ => return,
        };
        let h = hash(b, self.mask());
        let next = self.slots[idx].next;
        if self.buckets[h] == idx as u32 {
            self.buckets[h] = next;
        } else {
            let mut i = self.buckets[h];
            while i != NONE {
                let n = self.slots[i as usize].next;
                if n == idx as u32 {
                    self.slots[i as usize].next = next;
                    break;
                }
                i = n;
            }
        }
        let s = &mut self.slots[idx];
        s.block = EMPTY_BLOCK;
        s.next = NONE;
        s.validator = None;
        s.dirty = false;
    }

    fn rehash(&mut self, idx: usize, b: u64) {
        let h = hash(b, self.mask());
        let s = &mut self.slots[idx];
        s.block = b;
        s.next = self.buckets[h];
        self.buckets[h] = idx as u32;
    }

    /// One turn of the clock: an unlocked slot that is empty, or clean and
    /// not referenced since the hand last passed (clearing the referenced
    /// bits it passes), unhashed. Dirty slots are passed over: writing one
    /// here would be a synchronous write under the caller's lock.
    fn clean_victim(&mut self) -> Option<usize> {
        let n = self.slots.len();
        for _ in 0..n.saturating_mul(2) {
            let i = self.hand;
            self.hand = (self.hand + 1) % n;
            let s = &mut self.slots[i];
            if s.readers > 0 || s.writer {
                continue;
            }
            if s.block == EMPTY_BLOCK {
                return Some(i);
            }
            if *s.referenced.get_mut() {
                *s.referenced.get_mut() = false;
                continue;
            }
            if s.dirty {
                continue;
            }
            self.unhash(i);
            return Some(i);
        }
        None
    }

    /// Finds a free or evictable slot (unhashed). A full cache gives up a
    /// clean block; when every unlocked block is dirty, all of them are
    /// written back in one batch first (dm-bufio writes dirty buffers
    /// asynchronously under memory pressure the same way), so a miss costs
    /// one batched write for many later ones. The cache grows past
    /// `capacity` only when every slot is locked.
    /// A free slot with a block buffer (a slot the shrinker emptied gets
    /// one again).
    fn get_slot(&mut self) -> Result<usize> {
        let i = self.free_slot()?;
        if self.slots[i].data.len() != BLOCK_SIZE {
            let mut data = Vec::new();
            data.resize(BLOCK_SIZE, 0u8)?;
            self.slots[i].data = data;
        }
        Ok(i)
    }

    fn free_slot(&mut self) -> Result<usize> {
        if self.slots.len() < self.capacity {
            return self.add_slot();
        }
        if let Some(i) = self.clean_victim() {
            return Ok(i);
        }
        if self.slots.iter().any(|s| s.dirty && !s.writer) {
            self.write_dirty(None)?;
            if let Some(i) = self.clean_victim() {
                return Ok(i);
            }
        }
        self.add_slot()
    }

    fn add_slot(&mut self) -> Result<usize> {
        let mut data = Vec::new();
        data.resize(BLOCK_SIZE, 0u8)?;
        let idx = self.slots.len();
        if idx >= (NONE as usize) - 1 {
            return Err(Error::NoMem);
        }
        self.slots.push(Slot {
            block: EMPTY_BLOCK,
            data,
            validator: None,
            dirty: false,
            readers: 0,
            writer: false,
            referenced: AtomicBool::new(false),
            next: NONE,
        })?;
        // Keep the hash table at least twice the number of slots.
        if self.slots.len() * 2 > self.buckets.len() {
            self.grow_buckets()?;
        }
        Ok(idx)
    }

    fn grow_buckets(&mut self) -> Result<()> {
        let nb = self.buckets.len().checked_mul(2).ok_or(Error::NoMem)?;
        let mut buckets = BigVec::new();
        buckets.resize(nb, NONE)?;
        self.buckets = buckets;
        for i in 0..self.slots.len() {
            let b = self.slots[i].block;
            if b != EMPTY_BLOCK {
                self.rehash(i, b);
            }
        }
        Ok(())
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

    /// Frees the buffers of up to `nr` clean, unlocked cached blocks, the
    /// least recently used first (one turn of the clock hand gives the
    /// referenced ones a second chance). Returns how many were freed.
    pub fn shrink(&mut self, nr: usize) -> usize {
        let n = self.slots.len();
        let mut freed = 0;
        let mut i = self.hand;
        for _ in 0..n.saturating_mul(2) {
            if freed >= nr || n == 0 {
                break;
            }
            i = (i + 1) % n;
            let s = &mut self.slots[i];
            if s.readers > 0 || s.writer || s.dirty || s.data.is_empty() {
                continue;
            }
            if s.block != EMPTY_BLOCK && *s.referenced.get_mut() {
                *s.referenced.get_mut() = false;
                continue;
            }
            if s.block != EMPTY_BLOCK {
                self.unhash(i);
            }
            self.slots[i].data = Vec::new();
            freed += 1;
        }
        freed
    }

    /// Most blocks cached (but see the module documentation).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Cached blocks [`Self::shrink`] could free now (clean, unlocked,
    /// holding a buffer).
    pub fn shrinkable(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.readers == 0 && !s.writer && !s.dirty && !s.data.is_empty())
            .count()
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

    /// The data of block `b` if it is cached, validated by `v` and not
    /// write-locked, through `&self`: `Err(WouldBlock)` where
    /// [`read_try_lock`](Self::read_try_lock) would read, `Err(Busy)` where
    /// it would wait or fail (locked for writing, another validator).
    /// No lock is taken, so the data is good only while nothing can change
    /// the manager: the caller holds the owner's lock *shared*, and every
    /// change (`&mut self`) is made under it held exclusively. Several
    /// threads may peek at once; each sets the block's referenced bit (an
    /// atomic) so the clock keeps it, and none counts a hit.
    pub fn peek(&self, b: u64, v: &'static dyn BlockValidator) -> Result<&[u8]> {
        self.check_location(b)?;
        let s = self
            .find(b)
            .and_then(|i| self.slots.get(i))
            .ok_or(Error::WouldBlock)?;
        match s.validator {
            Some(old) if !s.writer && same_validator(old, v) => {
                // Read first: a line every peeker only reads stays shared
                // between their CPUs (the root is in every lookup).
                if !s.referenced.load(Ordering::Relaxed) {
                    s.referenced.store(true, Ordering::Relaxed);
                }
                Ok(&s.data)
            }
            _ => Err(Error::Busy),
        }
    }

    /// A mark to read block `b` without the manager: pass it to
    /// [`install`](Self::install) with what was read. The device's copy of
    /// a block the cache does not hold changes only by a write through
    /// this manager, and each bumps the mark: so a copy read after the
    /// mark is taken (with no write in progress: the caller holds the
    /// owner's lock, shared at least) is current if no write came between.
    pub fn write_epoch(&self) -> u64 {
        self.write_epoch
    }

    /// Puts `data`, block `b` as read from the device by the caller since
    /// [`write_epoch`](Self::write_epoch) returned `epoch`, in the cache,
    /// validated by `v`: the miss of a lookup, read without the owner's
    /// lock held exclusively (the pool's worker reads it while `map`s go on
    /// looking up). Nothing is put if a write came since `epoch` (the copy
    /// may be stale) or the block is cached already (the cache's copy wins,
    /// dirty or not); `Ok(false)` then, and the caller looks up again.
    /// A copy that fails `v` is the same error a read would give.
    pub fn install(
        &mut self,
        b: u64,
        data: &[u8],
        v: &'static dyn BlockValidator,
        epoch: u64,
    ) -> Result<bool> {
        self.check_location(b)?;
        if data.len() != BLOCK_SIZE {
            return Err(Error::Invalid);
        }
        if epoch != self.write_epoch || self.find(b).is_some() {
            return Ok(false);
        }
        v.check(b, data)?;
        let i = self.get_slot()?;
        let s = &mut self.slots[i];
        s.data.copy_from_slice(data);
        s.validator = Some(v);
        s.dirty = false;
        *s.referenced.get_mut() = true;
        self.rehash(i, b);
        self.stats.reads += 1;
        Ok(true)
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

    /// Writes every dirty block that is not write-locked, except
    /// `except`, in one [`BlockDevice::write_blocks`] batch (no flush).
    pub fn write_dirty(&mut self, except: Option<u64>) -> Result<()> {
        let wanted = |s: &Slot| s.dirty && !s.writer && Some(s.block) != except;
        let mut n = 0u64;
        for s in self.slots.iter_mut().filter(|s| wanted(s)) {
            if let Some(v) = s.validator {
                v.prepare_for_write(s.block, &mut s.data);
            }
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        self.write_epoch = self.write_epoch.wrapping_add(1);
        let slots = &self.slots;
        self.dev.write_blocks(
            &mut slots
                .iter()
                .filter(|s| wanted(s))
                .map(|s| (s.block, &s.data[..])),
        )?;
        self.stats.writes += n;
        for s in self.slots.iter_mut().filter(|s| wanted(s)) {
            s.dirty = false;
        }
        Ok(())
    }

    /// Writes every dirty block and flushes the device (`dm_bm_flush`).
    pub fn flush(&mut self) -> Result<()> {
        if self.slots.iter().any(|s| s.writer) {
            return Err(Error::Busy);
        }
        self.write_dirty(None)?;
        self.dev.flush()
    }

    /// The commit sequence (`dm_tm_commit` over `dm_bm_flush`): every dirty
    /// block but `sb` in one batch, a flush, then `sb` alone with FUA: the
    /// superblock write is the commit point, and it is issued only once
    /// everything it names is durable. `sb` is a write lock on the
    /// superblock, released here. Any other lock still held is `Busy`.
    pub fn flush_and_unlock(&mut self, sb: WriteLock) -> Result<()> {
        let b = sb.block;
        self.unlock_write(sb);
        if self.slots.iter().any(|s| s.writer) {
            return Err(Error::Busy);
        }
        self.write_dirty(Some(b))?;
        self.dev.flush()?;
        if let Some(i) = self.find(b) {
            let s = &mut self.slots[i];
            if let Some(v) = s.validator {
                v.prepare_for_write(s.block, &mut s.data);
            }
            self.write_epoch = self.write_epoch.wrapping_add(1);
            self.dev.write_fua(b, &s.data)?;
            self.stats.writes += 1;
            self.slots[i].dirty = false;
        }
        Ok(())
    }

    /// Edits block `b` on the device at once, durably, whatever the state
    /// of the transaction: reads the device's copy (never a dirty cached
    /// one), lets `edit` change it, stamps it with `v` and writes it with
    /// FUA. A clean cached copy is replaced by the new contents; a dirty
    /// one (a commit that failed half way, not yet aborted) gets the same
    /// edit. Allowed in read-only mode: this is for a field of the last
    /// committed superblock that must reach the disk even then (the
    /// needs_check flag: `dm_pool_metadata_set_needs_check` "updates the
    /// superblock immediately"). `Busy` if `b` is locked.
    pub fn write_through(
        &mut self,
        b: u64,
        v: &'static dyn BlockValidator,
        edit: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_location(b)?;
        let cached = self.find(b);
        if let Some(i) = cached {
            let s = &self.slots[i];
            if s.readers > 0 || s.writer {
                return Err(Error::Busy);
            }
        }
        let mut buf = Vec::new();
        buf.resize(BLOCK_SIZE, 0u8)?;
        self.dev.read(b, &mut buf)?;
        self.stats.reads += 1;
        v.check(b, &buf)?;
        edit(&mut buf)?;
        v.prepare_for_write(b, &mut buf);
        self.write_epoch = self.write_epoch.wrapping_add(1);
        self.dev.write_fua(b, &buf)?;
        self.stats.writes += 1;
        if let Some(i) = cached {
            let s = &mut self.slots[i];
            if s.dirty {
                edit(&mut s.data)?;
            } else {
                s.data.copy_from_slice(&buf);
                s.validator = Some(v);
            }
        }
        Ok(())
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

    /// Drops every dirty block without writing it (abort), releasing any
    /// locks still held. Clean blocks stay cached.
    pub fn discard_dirty(&mut self) -> Result<()> {
        self.write_epoch = self.write_epoch.wrapping_add(1);
        self.force_unlock_all();
        for i in 0..self.slots.len() {
            if self.slots[i].dirty {
                self.unhash(i);
            }
        }
        Ok(())
    }

    /// Forgets every unlocked cached block (dirty ones are written first,
    /// in one batch).
    pub fn invalidate(&mut self) -> Result<()> {
        self.write_dirty(None)?;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.readers == 0 && !s.writer {
                self.unhash(i);
            }
        }
        Ok(())
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
