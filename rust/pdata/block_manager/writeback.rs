//! Write-back and commit I/O: dirty blocks written in one batch, the commit
//! sequence (a batch, a flush, then the superblock alone with FUA), edits
//! written through to the device, and dropping or forgetting cached blocks.

use super::{BlockManager, BlockValidator, Slot, WriteLock};
use crate::pdata::alloc::Vec;
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};

impl<D: BlockDevice> BlockManager<D> {
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
}
