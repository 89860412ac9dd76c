//! The worker's half of deletes that do not stall the pool (beyond C; the
//! metadata half is `metadata/deleting.rs`).
//!
//! A `delete` of a large thin detaches its mapping tree and returns. Each
//! worker run then releases at most [`RECLAIM_BATCH`] of its mappings,
//! after the bios and the commit of that run, and queues itself again while
//! some are left: the pool lock is held for one batch at a time, so `map`
//! and the worker's other work go on between batches. The blocks a batch
//! frees count as free at the next commit (the waker's, or a flush's).
//!
//! # Discards
//!
//! With discard passdown on, the blocks a batch freed are discarded on
//! the data device once a commit made them free on disk, as a `delete`
//! done at once discards them after its commit: each batch notes the
//! range it freed with the pool's commit count, and a range becomes ready
//! once a later commit has completed. Ready ranges go through
//! [`PoolCore::trim`] (which discards only blocks free now and at the last
//! commit, so an abort in between discards nothing that came back), at
//! most [`TRIM_CHUNK`] blocks of range per worker run.
//!
//! # Modes and suspend
//!
//! Batches run in write and out-of-data-space modes (where messages may
//! change metadata; a full pool is where the space is wanted), and not
//! while the pool is suspended: a delete left over then waits for the
//! resume, which wakes the worker. The
//! pool's `reclaim_due` hint spares the worker the pool lock while nothing
//! is being deleted; it is set when a delete detaches a device and on every
//! resume (which also follows the reload out of read-only mode after an
//! abort, and the first open, where a crash may have left a delete
//! half-done).

use super::pool::PoolCore;
use crate::dm::dminfo;
use super::worker::WorkState;
use core::sync::atomic::Ordering;

/// Most mappings one worker run releases.
pub const RECLAIM_BATCH: u64 = 1024;

/// Most blocks of freed range one worker run discards.
pub const TRIM_CHUNK: u64 = 4096;

/// Freed ranges waiting for their discard (the worker's own).
#[derive(Default)]
pub struct ReclaimTrim {
    /// Freed by batches since the commit count in `.2`: discarded once a
    /// later commit completed.
    waiting: Option<(u64, u64, u64)>,
    /// Free on disk: to discard.
    ready: Option<(u64, u64)>,
}

fn merge(a: Option<(u64, u64)>, b: (u64, u64)) -> (u64, u64) {
    match a {
        Some((x, y)) => (x.min(b.0), y.max(b.1)),
        None => b,
    }
}

impl PoolCore {
    /// One batch of a delete in progress, and the discards of what earlier
    /// batches freed. Returns whether the worker should run again.
    pub(crate) fn reclaim(&self, ws: &mut WorkState) -> bool {
        // A suspended pool changes nothing and discards nothing; its
        // resume wakes the worker again.
        if self.is_suspended() {
            return false;
        }
        let mut again = self.reclaim_batch(ws);
        let rt = &mut ws.reclaim_trim;
        if let Some((b, e)) = rt.ready {
            let end = e.min(b.saturating_add(TRIM_CHUNK));
            // A failure leaves the blocks to a later trim.
            let _ = self.trim(b, end);
            rt.ready = (end < e).then_some((end, e));
            again |= rt.ready.is_some();
        }
        again
    }

    /// Releases one batch if a delete is in progress and the pool may
    /// change; moves freed ranges whose commit completed to `ready`.
    fn reclaim_batch(&self, ws: &mut WorkState) -> bool {
        let rt = &mut ws.reclaim_trim;
        if !self.reclaim_due.load(Ordering::Acquire) && rt.waiting.is_none() {
            return false;
        }
        let mut st = self.lock();
        let commits = st.pmd.commits();
        if let Some((b, e, since)) = rt.waiting {
            if commits > since {
                rt.ready = Some(merge(rt.ready, (b, e)));
                rt.waiting = None;
            }
        }
        if !self.reclaim_due.load(Ordering::Acquire) {
            return false;
        }
        if !st.pmd.deleting() {
            self.reclaim_due.store(false, Ordering::Release);
            return false;
        }
        if !st.may_change() || self.is_suspended() {
            return false;
        }
        // What was freed outside the batch (a trim's blocks in flight coming
        // back, among others) is not the batch's to discard.
        let _ = st.pmd.take_freed_range();
        match st.pmd.reclaim_deleted(RECLAIM_BATCH) {
            Ok(r) => {
                self.stats.reclaimed(r.mappings);
                if !r.more {
                    dminfo!("{}: deleted thins released", self.name());
                }
                if let Some(range) = st.pmd.take_freed_range() {
                    let since = rt.waiting.map_or(commits, |w| w.2);
                    let (b, e) = merge(rt.waiting.map(|w| (w.0, w.1)), range);
                    rt.waiting = Some((b, e, since));
                }
                r.more
            }
            Err(e) => {
                st.metadata_operation_failed(self.name(), "reclaim_deleted", e);
                false
            }
        }
    }
}
