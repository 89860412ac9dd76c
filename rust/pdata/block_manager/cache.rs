//! The slot cache: a chained hash from block numbers to slots, the clock
//! hand that picks a victim on a miss (writing every dirty block back in one
//! batch when nothing clean is left), slot allocation, and
//! [`BlockManager::shrink`], which gives clean buffers back.

use super::{BlockManager, Slot, EMPTY_BLOCK, NONE};
use crate::pdata::alloc::{BigVec, Vec};
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};
use core::sync::atomic::AtomicBool;

fn hash(b: u64, mask: usize) -> usize {
    (b.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

impl<D: BlockDevice> BlockManager<D> {
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    pub(super) fn find(&self, b: u64) -> Option<usize> {
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

    pub(super) fn unhash(&mut self, idx: usize) {
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

    pub(super) fn rehash(&mut self, idx: usize, b: u64) {
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
    pub(super) fn get_slot(&mut self) -> Result<usize> {
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
}
