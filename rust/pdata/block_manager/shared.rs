//! The shared (`&self`) access path: [`BlockManager::peek`] for lookups made
//! under the owner's lock held shared, and the write epoch with
//! [`BlockManager::install`], which put a block read with no lock held in
//! the cache.

use super::{same_validator, BlockManager, BlockValidator};
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};
use core::sync::atomic::Ordering;

impl<D: BlockDevice> BlockManager<D> {
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
}
