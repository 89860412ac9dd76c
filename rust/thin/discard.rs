//! Discards (C `process_discard_bio`, `process_prepared_discard_passdown_pt1/2`
//! and `passdown_double_checking_shared_status`): the whole blocks of a
//! discarded range are unmapped run by run, and the data blocks nothing
//! else references are discarded on the data device when passdown is on.
//! The original bio completes after every passdown discard.

use super::pool::PoolCore;
use super::thin::{Thin, ThinBio};
use super::worker::{Step, WorkState};
use crate::dm::{Bio, BlkStatus};
use kernel::prelude::*;
use kernel::sync::Arc;

impl PoolCore {
    /// C `process_discard_bio` and the passdown mappings: whole blocks in
    /// the range are unmapped (range by range), and data blocks no longer
    /// used by anything are discarded on the data device when passdown is
    /// on. Partial blocks at the edges are dropped, as in C.
    pub(crate) fn process_discard(&self, ws: &mut WorkState, thin: &Arc<Thin>, mut bio: Bio<ThinBio>) -> Step {
        let bs = self.bs();
        let begin = bio.sector().div_ceil(bs);
        let end = (bio.sector() + bio.sectors()) / bs;
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
        // Nothing may still be writing to blocks about to be unmapped.
        self.io.drain();
        let passdown = self.lock().pf.discard_passdown && self.data.discard_supported();
        let mut status = BlkStatus::OK;
        let mut cur = begin;
        while cur < end {
            let run = {
                let mut st = self.lock();
                let run = match st.pmd.find_mapped_range(thin.id, cur, end) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        st.metadata_operation_failed(self.name(), "dm_thin_find_mapped_range", e);
                        status = BlkStatus::IOERR;
                        break;
                    }
                };
                let pool_end = run.pool_begin + (run.thin_end - run.thin_begin);
                let r = if passdown {
                    st.pmd.inc_data_range(run.pool_begin, pool_end)
                } else {
                    Ok(())
                }
                .and_then(|()| st.pmd.remove_range(thin.id, run.thin_begin, run.thin_end).map(|_| ()));
                if let Err(e) = r {
                    st.metadata_operation_failed(self.name(), "dm_thin_remove_range", e);
                    status = BlkStatus::IOERR;
                    break;
                }
                run
            };
            if passdown {
                let pool_end = run.pool_begin + (run.thin_end - run.thin_begin);
                self.passdown(run.pool_begin, pool_end);
                let r = self.lock().pmd.dec_data_range(run.pool_begin, pool_end);
                if let Err(e) = r {
                    self.lock()
                        .metadata_operation_failed(self.name(), "dm_pool_dec_data_range", e);
                    status = BlkStatus::IOERR;
                    break;
                }
            }
            cur = run.thin_end;
        }
        let waiters = self.prison.lock().release(thin.id, begin, end);
        self.release_waiters(ws, thin, waiters, None);
        bio.endio(status);
        Step::Done
    }

    /// Discards the runs of `begin..end` that nothing else references
    /// (a block still shared with a snapshot is never discarded).
    fn passdown(&self, begin: u64, end: u64) {
        let bs = self.bs();
        let mut b = begin;
        while b < end {
            let shared = |b: u64| self.lock().pmd.block_is_shared(b).unwrap_or(true);
            if shared(b) {
                b += 1;
                continue;
            }
            let start = b;
            while b < end && !shared(b) {
                b += 1;
            }
            if let Err(e) = self.data.discard(start * bs, (b - start) * bs) {
                pr_warn!("{}: discard passdown failed: {}\n", self.name(), e.to_errno());
            }
        }
    }

}
