//! References to data blocks that live in core only while their I/O is in
//! flight, and are kept out of every commit.
//!
//! The pool target takes a reference to a data block before the block is
//! mapped or after it is unmapped:
//! - a new block (provisioning, breaking sharing) is allocated, then
//!   zeroed, copied or overwritten, and only when that I/O ends is the
//!   mapping inserted, taking over the reference;
//! - a discarded run's blocks keep an extra reference while their discard
//!   is passed down to the data device, so they cannot be reallocated (and
//!   written) under it.
//!
//! In C (`alloc_data_block`, `process_prepared_discard_passdown_pt1`) these
//! references are ordinary counts, so a commit that runs meanwhile (the
//! periodic one, another thin's flush) writes them, and a crash before the
//! mapping is inserted or the extra count dropped leaves blocks that are
//! counted used and mapped by nothing: `thin_check` reports them as leaked
//! and the pool needs `thin_check --auto-repair` before LVM activates it.
//!
//! Here the caller names such a reference in flight ([`PoolMetadata::
//! alloc_in_flight`], [`PoolMetadata::inc_in_flight`]) and settles it when
//! its I/O ends ([`PoolMetadata::map_in_flight`] once the mapping holds it,
//! [`PoolMetadata::drop_in_flight`] to give it up). Every commit writes the
//! data space map without the references in flight (decremented before
//! the space map is written, incremented again once the superblock is), so
//! a crash at any point leaves them as if never taken, while in core they
//! keep the blocks from being reallocated. An abort forgets them with the
//! rest of the transaction: settling a reference taken before an abort
//! changes nothing (the block's count is the committed one again).
//!
//! The list is bounded by the pool's cells (each in-flight reference
//! belongs to a cell), so it is sized once and does not grow in practice.

use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use crate::pdata::block_device::BlockDevice;

/// Ranges the list has room for without growing (the prison's cells).
pub(super) const IN_FLIGHT_RESERVE: usize = 1024;

impl<D: BlockDevice> PoolMetadata<D> {
    /// [`Self::alloc_data_block`] with the new block's reference in flight
    /// until [`Self::map_in_flight`] or [`Self::drop_in_flight`].
    pub fn alloc_in_flight(&mut self) -> Result<Option<u64>> {
        let Some(b) = self.alloc_data_block()? else {
            return Ok(None);
        };
        if let Err(e) = self.in_flight.push((b, b + 1)) {
            // Nothing to track it with: give the block back.
            let _ = self.dec_data_range(b, b + 1);
            return Err(e.into());
        }
        Ok(Some(b))
    }

    /// [`Self::inc_data_range`] with the new references in flight until
    /// [`Self::drop_in_flight`].
    pub fn inc_in_flight(&mut self, b: u64, e: u64) -> Result<()> {
        if b >= e {
            return Ok(());
        }
        self.in_flight.reserve(1)?;
        self.inc_data_range(b, e)?;
        self.in_flight.push((b, e))?;
        Ok(())
    }

    /// The in-flight reference to `b..e` now belongs to a mapping (inserted
    /// with [`Self::insert_block`]): later commits write it.
    pub fn map_in_flight(&mut self, b: u64, e: u64) {
        self.forget_in_flight(b, e);
    }

    /// Gives up the in-flight reference to `b..e`. After an abort it is
    /// gone already and nothing changes.
    pub fn drop_in_flight(&mut self, b: u64, e: u64) -> Result<()> {
        if self.forget_in_flight(b, e) {
            self.dec_data_range(b, e)?;
        }
        Ok(())
    }

    /// Takes the first run of data blocks at or after `begin`, at most
    /// `max` long, that nothing references now or at the last commit, with
    /// an in-flight reference each: so they can be discarded while the pool
    /// runs (a trim), no allocation takes them until
    /// [`Self::drop_in_flight`]. `None` when no such block is left.
    pub fn take_free_run(&mut self, begin: u64, max: u64) -> Result<Option<(u64, u64)>> {
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let Some((b, e)) = pd.data_sm.find_free_run(&mut pd.tm, begin, max)? else {
            return Ok(None);
        };
        self.inc_in_flight(b, e)?;
        Ok(Some((b, e)))
    }

    /// The data blocks freed since the last call, lowest to highest + 1
    /// (what a delete freed, for the trim after its commit).
    pub fn take_freed_range(&mut self) -> Option<(u64, u64)> {
        self.pd.as_mut().and_then(|pd| pd.data_sm.take_freed_range())
    }

    /// References in flight now (blocks, counting a block once per
    /// reference).
    pub fn in_flight_blocks(&self) -> u64 {
        self.in_flight.iter().map(|&(b, e)| e - b).sum()
    }

    /// Removes one `(b, e)` entry; whether there was one.
    fn forget_in_flight(&mut self, b: u64, e: u64) -> bool {
        match self.in_flight.iter().position(|&r| r == (b, e)) {
            Some(i) => {
                self.in_flight.remove(i);
                true
            }
            None => false,
        }
    }

    /// Before the data space map is written: the references in flight
    /// out. On failure the ones already taken out are put back (and if
    /// that fails too the metadata is failed: it can no longer tell which
    /// blocks are in use).
    pub(super) fn in_flight_out(&mut self) -> Result<()> {
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        let mut done = 0usize;
        let mut r = Ok(());
        for x in self.in_flight.iter().flat_map(|&(b, e)| b..e) {
            if let Err(e) = pd.data_sm.dec(&mut pd.tm, x) {
                r = Err(e.into());
                break;
            }
            done += 1;
        }
        if r.is_err() {
            for x in self.in_flight.iter().flat_map(|&(b, e)| b..e).take(done) {
                if pd.data_sm.inc(&mut pd.tm, x).is_err() {
                    self.pd = None;
                    return Err(Error::FailIo);
                }
            }
        }
        r
    }

    /// After the superblock is written (or the commit failed): the
    /// references in flight back in. A failure fails the metadata (the
    /// blocks would look free while their I/O is in flight).
    pub(super) fn in_flight_in(&mut self) -> Result<()> {
        let pd = self.pd.as_mut().ok_or(Error::FailIo)?;
        for x in self.in_flight.iter().flat_map(|&(b, e)| b..e) {
            if pd.data_sm.inc(&mut pd.tm, x).is_err() {
                self.pd = None;
                return Err(Error::FailIo);
            }
        }
        Ok(())
    }
}
