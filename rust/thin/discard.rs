//! Discards (C `process_discard_bio`, `process_prepared_discard_passdown_pt1`
//! and `_pt2`, and `passdown_double_checking_shared_status`).
//!
//! A discard first waits, parked, for the bios in flight when it took its
//! range (see `io_epochs.rs`). The whole blocks of a discarded range are
//! unmapped run by run (a run:
//! virtual blocks mapped to consecutive data blocks). With passdown on, the
//! data blocks of a run that nothing else references any more are then
//! discarded on the data device, asynchronously: the discards are chained
//! to the thin's bio ([`crate::dm::DiscardChain`]), whose `end_io` hands it
//! back to the worker ([`PoolCore::finish_passdown`]) to go on with the
//! next run. While its passdown is in flight a run's data blocks keep an
//! extra reference, so they cannot be reallocated (and written) under it;
//! the reference is in flight (`metadata::in_flight`): no commit writes
//! it, so a crash meanwhile leaks nothing (C's can).
//! The range stays in the prison until the bio completes. Partial blocks at
//! the edges are dropped, as in C.

use super::pool::PoolCore;
use super::thin::{Thin, ThinBio};
use super::worker::{Step, WorkState};
use crate::dm::{Bio, BlkStatus};
use core::sync::atomic::Ordering;
use kernel::sync::Arc;

impl PoolCore {
    /// C `process_discard_bio`: takes the range into the prison, waits for
    /// bios in flight to it, and starts unmapping.
    pub(crate) fn process_discard(&self, ws: &mut WorkState, thin: &Arc<Thin>, mut bio: Bio<ThinBio>) -> Step {
        let (begin, end) = self.discard_blocks(&bio);
        if begin >= end {
            bio.endio(BlkStatus::OK);
            return Step::Done;
        }
        {
            let mut p = self.prison.lock();
            if let Some(cell) = p.find(thin.id, begin, end) {
                bio.data_mut().thin = Some(thin.clone());
                cell.waiters.push(bio);
                return Step::Done;
            }
            if !p.insert(thin.id, begin, end) {
                drop(p);
                bio.data_mut().thin = Some(thin.clone());
                return Step::Retry(bio);
            }
        }
        bio.data_mut().discard_next = begin;
        // Nothing may still be writing to blocks about to be unmapped: the
        // discard waits, parked, for the bios in flight now (C adds it to
        // `all_io_ds`); later ones wait in its cell.
        if let Some(t) = self.io.barrier() {
            let mut d = bio.data_mut();
            d.ticket = Some(t);
            d.thin = Some(thin.clone());
            self.io.set_parked(true);
            ws.parked_discards.push(bio);
            return Step::Done;
        }
        self.continue_discard(ws, thin, bio);
        Step::Done
    }

    /// A parked discard whose bios in flight have completed goes on.
    pub(crate) fn resume_discard(&self, ws: &mut WorkState, mut bio: Bio<ThinBio>) {
        match bio.data_mut().thin.take() {
            Some(thin) => self.continue_discard(ws, &thin, bio),
            None => bio.endio(BlkStatus::IOERR),
        }
    }

    /// The whole blocks a discard covers.
    fn discard_blocks(&self, bio: &Bio<ThinBio>) -> (u64, u64) {
        let bs = self.bs();
        (bio.sector().div_ceil(bs), (bio.sector() + bio.sectors()) / bs)
    }

    /// C `process_prepared_discard_passdown_pt2`: a run's passdown is done
    /// (whatever its outcome), so its data blocks lose their extra
    /// reference, and the discard goes on.
    pub(crate) fn finish_passdown(&self, ws: &mut WorkState, mut bio: Bio<ThinBio>) {
        let Some(thin) = bio.data_mut().thin.take() else {
            bio.endio(BlkStatus::IOERR);
            return;
        };
        let (begin, end) = bio.data().passdown_blocks;
        if self.release_run(begin, end) {
            self.continue_discard(ws, &thin, bio);
        } else {
            self.end_discard(ws, &thin, bio, BlkStatus::IOERR);
        }
    }

    /// Unmaps the discard's mapped runs from its next block on, until a run
    /// is passed down (the bio comes back to [`PoolCore::finish_passdown`])
    /// or none is left (the bio completes).
    fn continue_discard(&self, ws: &mut WorkState, thin: &Arc<Thin>, mut bio: Bio<ThinBio>) {
        let (_, end) = self.discard_blocks(&bio);
        let passdown = self.lock().pf.discard_passdown && self.data.discard_supported();
        let status = loop {
            let cur = bio.data().discard_next;
            let mut st = self.lock();
            let run = match st.pmd.find_mapped_range(thin.id, cur, end) {
                Ok(Some(run)) => run,
                Ok(None) => break BlkStatus::OK,
                Err(e) => {
                    st.metadata_operation_failed(self.name(), "dm_thin_find_mapped_range", e);
                    break BlkStatus::IOERR;
                }
            };
            let data_end = run.pool_begin + (run.thin_end - run.thin_begin);
            let r = if passdown {
                st.pmd.inc_in_flight(run.pool_begin, data_end)
            } else {
                Ok(())
            }
            .and_then(|()| st.pmd.remove_range(thin.id, run.thin_begin, run.thin_end).map(|_| ()));
            if let Err(e) = r {
                st.metadata_operation_failed(self.name(), "dm_thin_remove_range", e);
                break BlkStatus::IOERR;
            }
            drop(st);
            bio.data_mut().discard_next = run.thin_end;
            if passdown {
                match self.pass_down(thin, bio, run.pool_begin, data_end, run.maybe_shared) {
                    None => return,
                    Some(b) => bio = b,
                }
                if !self.release_run(run.pool_begin, data_end) {
                    break BlkStatus::IOERR;
                }
            }
        };
        self.end_discard(ws, thin, bio, status);
    }

    /// Discards the data blocks of `begin..end` that nothing references
    /// (a block still shared with a snapshot is never discarded; each is
    /// checked only if the run may be shared), chained to `bio`; gives the
    /// bio back if there is none.
    fn pass_down(
        &self,
        thin: &Arc<Thin>,
        mut bio: Bio<ThinBio>,
        begin: u64,
        end: u64,
        maybe_shared: bool,
    ) -> Option<Bio<ThinBio>> {
        let shared = |b: u64| maybe_shared && self.lock().pmd.block_is_shared(b).unwrap_or(true);
        let Some(mut b) = (begin..end).find(|&b| !shared(b)) else {
            return Some(bio);
        };
        {
            let mut d = bio.data_mut();
            d.passdown_blocks = (begin, end);
            d.thin = Some(thin.clone());
            d.passdown.store(true, Ordering::SeqCst);
        }
        let bs = self.bs();
        let mut chain = bio.chain_discards(&self.data);
        // Each block is looked at once: `b` starts an unshared run.
        loop {
            let start = b;
            b += 1;
            while b < end && !shared(b) {
                b += 1;
            }
            chain.discard(start * bs, (b - start) * bs);
            match (b + 1..end).find(|&x| !shared(x)) {
                Some(next) => b = next,
                None => return None,
            }
        }
    }

    /// Drops the extra reference a run's data blocks held for passdown;
    /// false if the metadata failed.
    fn release_run(&self, begin: u64, end: u64) -> bool {
        let mut st = self.lock();
        match st.pmd.drop_in_flight(begin, end) {
            Ok(()) => true,
            Err(e) => {
                st.metadata_operation_failed(self.name(), "dm_pool_dec_data_range", e);
                false
            }
        }
    }

    /// Releases the discard's range from the prison and completes it.
    fn end_discard(&self, ws: &mut WorkState, thin: &Arc<Thin>, bio: Bio<ThinBio>, status: BlkStatus) {
        let (begin, end) = self.discard_blocks(&bio);
        let waiters = self.prison.lock().release(thin.id, begin, end);
        self.release_waiters(ws, thin, waiters, None);
        bio.endio(status);
    }
}
