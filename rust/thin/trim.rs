//! Online trim (beyond C): the `trim` pool message discards, on the data
//! device, every data block the pool does not use, while the pool runs; and
//! a `delete` with discard passdown on discards the blocks it freed once
//! its commit is done. C's only way to give free space back to the device
//! is `thin_trim` on an inactive pool.
//!
//! # What may be discarded
//!
//! A block is discarded only while it is free in the space map now *and*
//! at the last commit: nothing maps it in core or on disk, so a crash at
//! any point finds no mapping to it (a block freed since the last commit is
//! left for a later trim: until that commit, a crash brings its mapping
//! back). Each run is taken with an in-flight reference
//! ([`PoolMetadata::take_free_run`](super::metadata::PoolMetadata::take_free_run))
//! before its discard is issued and dropped after it completes, so no
//! allocation can take (and write) a block under its discard, and no
//! commit writes the reference.
//!
//! # Batches
//!
//! A trim runs in the message's own context, in batches of at most
//! [`BATCH_BLOCKS`] blocks: the pool lock is held only to take a batch's
//! runs and to give them back, never across a discard, so I/O and the
//! worker go on meanwhile. A batch takes at most a quarter of the free
//! blocks above the low water mark, so a trim never makes the pool look
//! full, nor raises the low-water event.
//!
//! # Suspend
//!
//! Each batch holds the pool's trim lock; the pool's presuspend takes it
//! after marking the pool suspended, so a suspend waits for the batch in
//! flight, and the trim stops at the next one: no discard reaches the data
//! device of a suspended pool. The trim then ends, saying where it
//! stopped; a later `trim` starts over.

use super::pool::{PoolCore, PoolMode};
use crate::dm::{dmerr, dminfo};
use kernel::prelude::*;

/// Most data blocks one batch discards.
pub const BATCH_BLOCKS: u64 = 4096;

/// Most runs (discards) in one batch.
const BATCH_RUNS: usize = 32;

/// What a trim did.
#[derive(Default, Clone, Copy)]
pub struct TrimDone {
    /// Data blocks discarded.
    pub blocks: u64,
    /// Discards issued.
    pub runs: u64,
}

impl PoolCore {
    /// Discards every unused data block in `begin..end` (see the module
    /// documentation). A no-op when discard passdown is off or the data
    /// device takes no discards. Stops early, with an error, when the pool
    /// is suspended, degrades or a discard fails. Sleeps.
    pub(crate) fn trim(&self, begin: u64, end: u64) -> Result<TrimDone> {
        let mut done = TrimDone::default();
        if !self.lock().pf.discard_passdown || !self.data.discard_supported() {
            return Ok(done);
        }
        let bs = u64::from(self.block_size());
        let mut at = begin;
        let r = loop {
            if at >= end {
                break Ok(());
            }
            self.stats.trim_progress(at, end);
            let _batch = self.trim_lock.lock();
            if self.is_suspended() {
                break Err(EBUSY);
            }
            let mut runs = [(0u64, 0u64); BATCH_RUNS];
            let mut n = 0;
            let mut failed = None;
            {
                let mut st = self.lock();
                if st.mode() >= PoolMode::OutOfMetadataSpace {
                    break Err(EOPNOTSUPP);
                }
                let free = match st.pmd.free_data_blocks() {
                    Ok(f) => f,
                    Err(_) => break Err(EIO),
                };
                let mut budget = BATCH_BLOCKS.min(free.saturating_sub(st.low_water_blocks) / 4);
                while n < BATCH_RUNS && budget > 0 && at < end {
                    match st.pmd.take_free_run(at, budget.min(end - at)) {
                        Ok(Some((b, e))) if b < end => {
                            runs[n] = (b, e);
                            n += 1;
                            budget -= e - b;
                            at = e;
                        }
                        Ok(Some((b, e))) => {
                            // Past the range: give it back, done.
                            let _ = st.pmd.drop_in_flight(b, e);
                            at = end;
                        }
                        Ok(None) => at = end,
                        Err(e) => {
                            // The abort forgets the runs taken so far.
                            st.metadata_operation_failed(self.name(), "trim", e);
                            n = 0;
                            failed = Some(EIO);
                            break;
                        }
                    }
                }
                if n == 0 && budget == 0 && at < end {
                    // Too little free space above the low water mark to
                    // hold any back: the rest is left for a later trim.
                    drop(st);
                    break Err(ENOSPC);
                }
            }
            for &(b, e) in &runs[..n] {
                if failed.is_none() {
                    match self.data.discard(b * bs, (e - b) * bs) {
                        Ok(()) => {
                            done.blocks += e - b;
                            done.runs += 1;
                            self.stats.trimmed(e - b);
                        }
                        Err(err) => failed = Some(err),
                    }
                }
            }
            {
                let mut st = self.lock();
                for &(b, e) in &runs[..n] {
                    if let Err(err) = st.pmd.drop_in_flight(b, e) {
                        st.metadata_operation_failed(self.name(), "trim", err);
                        break;
                    }
                }
            }
            if let Some(err) = failed {
                dmerr!("{}: trim: stopped by an error", self.name());
                break Err(err);
            }
        };
        self.stats.trim_progress(0, 0);
        match r {
            Ok(()) => dminfo!(
                "{}: trim of blocks {}..{}: {} blocks discarded in {} runs",
                self.name(),
                begin,
                end,
                done.blocks,
                done.runs
            ),
            Err(e) => dminfo!(
                "{}: trim of blocks {}..{} stopped at {} ({}): {} blocks discarded",
                self.name(),
                begin,
                end,
                at,
                e.to_errno(),
                done.blocks
            ),
        }
        r.map(|()| done)
    }
}
