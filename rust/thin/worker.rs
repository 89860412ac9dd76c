//! The pool's worker (C `do_worker` and the `process_*` functions): the
//! bios `map` could not remap at once, and the mappings they lead to.
//!
//! Each run, in order: jobs and discards parked until the bios in flight
//! before them completed (see `io_epochs.rs`), mappings whose zeroing or
//! copy finished (kcopyd), whole-block overwrites that completed, discards
//! whose passdown finished, then the deferred bios (reads of unmapped blocks, provisioning, breaking
//! sharing, discards, flushes), and last one commit for every flush or FUA
//! bio that needs one (they share it), or the periodic commit the waker
//! asked for, and last one batch of a delete in progress (`reclaim.rs`).
//!
//! Everything here runs on the pool's ordered workqueue in a [`noio`](crate::dm::noio)
//! scope. The pool's state lock is taken per metadata operation, so `map`
//! (which only try-locks it, shared) is held up as little as possible;
//! lookups and mode checks take it shared too (see `lookup.rs`).

use crate::dm::{dmerr};
use super::mapping::{Job, JobList};
use super::pool::{errno, PoolCore, PoolMode};
use super::thin::{Thin, ThinBio};
use crate::dm::{Bio, BioList, BlkStatus, Op, WorkerRef};
use core::sync::atomic::Ordering;
use kernel::alloc::KBox;
use kernel::sync::Arc;

/// The worker's own lists (only the worker touches them).
#[derive(Default)]
pub struct WorkState {
    /// Mappings waiting for the bio that overwrites their whole block.
    pending_overwrites: JobList,
    /// Copies done, waiting for the reads of the shared block in flight
    /// before them (each job's ticket).
    pub(crate) parked_jobs: JobList,
    /// Discards waiting for the bios in flight before them (each bio's
    /// ticket).
    pub(crate) parked_discards: BioList<ThinBio>,
    /// Flush and FUA bios to issue (or, empty, to complete) after a commit.
    flush_bios: BioList<ThinBio>,
    /// Overwrites to complete after a commit (they were FUA).
    flush_completions: BioList<ThinBio>,
    /// What deletes in progress freed, for its discard (see `reclaim.rs`).
    pub(crate) reclaim_trim: super::reclaim::ReclaimTrim,
    /// The buffer of lookups' reads outside the lock (see `lookup.rs`).
    miss_buf: super::lookup::MissBuf,
}

/// The outcome of processing one deferred bio.
pub(crate) enum Step {
    /// Processed (issued, completed, queued or waiting in a cell).
    Done,
    /// Out of cells: the bio goes back and the run stops here.
    Retry(Bio<ThinBio>),
}

impl PoolCore {
    /// One run of the worker.
    pub(crate) fn do_work(&self, w: &WorkerRef<'_, PoolCore>) {
        let mut ws = self.work.lock();

        self.unpark(&mut ws);

        loop {
            // The guard must go before the job is finished (it sleeps).
            let job = self.prepared.lock().pop();
            let Some(job) = job else { break };
            self.finish_job(&mut ws, job);
        }

        let mut done = self.overwrite_done.lock().take();
        while let Some(bio) = done.pop() {
            self.finish_overwrite(&mut ws, bio);
        }

        let mut passed = self.passdown_done.lock().take();
        while let Some(bio) = passed.pop() {
            self.finish_passdown(&mut ws, bio);
        }

        let mut bios = self.deferred.lock().take();
        while let Some(bio) = bios.pop() {
            if let Step::Retry(bio) = self.process_bio(&mut ws, bio) {
                let mut d = self.deferred.lock();
                let mut rest = d.take();
                d.push(bio);
                d.append(&mut bios);
                d.append(&mut rest);
                break;
            }
        }

        self.process_commit(&mut ws);
        let reclaiming = self.reclaim(&mut ws);
        // Space came back (a commit freed blocks, or the pool grew), or
        // the pool can no longer serve bios waiting for space.
        self.settle_retries();
        let pending = !self.deferred.lock().is_empty();
        if (pending && self.prison_has_room()) || self.park_done(&mut ws) || reclaiming {
            w.queue();
        }
    }

    /// Takes back the parked jobs and discards whose bios in flight have
    /// completed.
    fn unpark(&self, ws: &mut WorkState) {
        let mut jobs = ws.parked_jobs.take_all();
        while let Some(mut job) = jobs.pop() {
            match job.ticket {
                Some(t) if !self.shared_io.drained(t) => ws.parked_jobs.push(job),
                _ => {
                    job.ticket = None;
                    self.finish_job(ws, job);
                }
            }
        }
        let mut discards = ws.parked_discards.take();
        while let Some(mut bio) = discards.pop() {
            match bio.data().ticket {
                Some(t) if !self.io.drained(t) => ws.parked_discards.push(bio),
                _ => {
                    bio.data_mut().ticket = None;
                    self.resume_discard(ws, bio);
                }
            }
        }
    }

    /// The end of a run: tells the counters whether anything is parked,
    /// and whether a parked item can go on already (the completion it
    /// waited for may have come before the flag was set).
    fn park_done(&self, ws: &mut WorkState) -> bool {
        let jobs = !ws.parked_jobs.is_empty();
        let discards = !ws.parked_discards.is_empty();
        self.shared_io.set_parked(jobs);
        self.io.set_parked(discards);
        let mut ready = ws.parked_jobs.any(|j| j.ticket.is_none_or(|t| self.shared_io.drained(t)));
        let mut discards = ws.parked_discards.take();
        while let Some(bio) = discards.pop() {
            ready |= bio.data().ticket.is_none_or(|t| self.io.drained(t));
            ws.parked_discards.push(bio);
        }
        ready
    }

    fn prison_has_room(&self) -> bool {
        self.prison.lock().has_room()
    }

    pub(crate) fn bs(&self) -> u64 {
        u64::from(self.block_size())
    }

    /// Counts the bio in the in-flight epoch (unless it is already).
    fn count(&self, bio: &mut Bio<ThinBio>) {
        if bio.data().epoch.load(Ordering::SeqCst) == 0 {
            // A wake-up it asks for is the end of this run's (`park_done`).
            let (e, _) = self.io.enter();
            bio.data_mut().epoch.store(e, Ordering::SeqCst);
        }
    }

    /// Counts the bio in the in-flight epoch and sends it down.
    pub(crate) fn submit(&self, mut bio: Bio<ThinBio>) {
        self.count(&mut bio);
        bio.submit();
    }

    /// What a flush or FUA bio of `thin` needs: `None` when a commit of the
    /// thin's changes failed since it was opened, so its flushes fail
    /// (beyond C, whose flag misses most failed commits); else whether
    /// the thin changed in this transaction, so the bio waits for the
    /// commit.
    fn flush_need(&self, thin: &Thin) -> Option<bool> {
        let mut st = self.lock();
        match st.pmd.thin_aborted_changes(thin.id) {
            Ok(false) => Some(st.pmd.thin_changed_this_transaction(thin.id).unwrap_or(true)),
            _ => None,
        }
    }

    /// C `issue`: a flush or FUA bio after changes waits for the commit,
    /// counted in flight already (a discard must wait for it); one of a
    /// thin whose changes were lost in an aborted commit fails.
    fn issue(&self, ws: &mut WorkState, thin: &Thin, mut bio: Bio<ThinBio>) {
        if !(bio.is_fua() || bio.is_preflush()) {
            return self.submit(bio);
        }
        match self.flush_need(thin) {
            None => bio.endio(BlkStatus::IOERR),
            Some(true) => {
                self.count(&mut bio);
                ws.flush_bios.push(bio);
            }
            Some(false) => self.submit(bio),
        }
    }

    fn remap_and_issue(&self, ws: &mut WorkState, thin: &Thin, mut bio: Bio<ThinBio>, data_block: u64) {
        let bs = self.bs();
        let offset = bio.sector() % bs;
        bio.remap_file(&self.data, data_block * bs + offset);
        self.issue(ws, thin, bio);
    }

    /// Sends a bio back to the deferred list (after a cell it waited in).
    pub(crate) fn redefer(&self, thin: &Arc<Thin>, mut bio: Bio<ThinBio>) {
        bio.data_mut().thin = Some(thin.clone());
        self.deferred.lock().push(bio);
    }

    /// Bios that waited in a released cell: reads and writes go to
    /// `data_block` without a second lookup, the rest is processed again.
    pub(crate) fn release_waiters(&self, ws: &mut WorkState, thin: &Arc<Thin>, mut list: BioList<ThinBio>, data_block: Option<u64>) {
        while let Some(mut bio) = list.pop() {
            bio.data_mut().thin = None;
            let plain = matches!(bio.op(), Op::Read | Op::Write) && bio.size() > 0;
            match data_block {
                Some(b) if plain => self.remap_and_issue(ws, thin, bio, b),
                _ => self.redefer(thin, bio),
            }
        }
    }

    fn error_waiters(&self, mut list: BioList<ThinBio>, status: BlkStatus) {
        while let Some(mut bio) = list.pop() {
            bio.data_mut().thin = None;
            bio.endio(status);
        }
    }

    /// C `process_bio` and friends, for one deferred bio.
    fn process_bio(&self, ws: &mut WorkState, mut bio: Bio<ThinBio>) -> Step {
        let Some(thin) = bio.data_mut().thin.take() else {
            bio.endio(BlkStatus::IOERR);
            return Step::Done;
        };
        if thin.requeue.load(Ordering::SeqCst) {
            bio.endio(BlkStatus::DM_REQUEUE);
            return Step::Done;
        }
        let mode = self.read().mode();
        if mode == PoolMode::Fail {
            bio.endio(BlkStatus::IOERR);
            return Step::Done;
        }
        // Out of data space and read-only modes serve what needs no new
        // block (C `process_bio_read_only`).
        let writable = mode == PoolMode::Write;
        let op = bio.op();
        if op == Op::Discard {
            if mode.is_read_only() {
                bio.endio(BlkStatus::OK);
                return Step::Done;
            }
            return self.process_discard(ws, &thin, bio);
        }
        if !matches!(op, Op::Read | Op::Write) {
            bio.endio(BlkStatus::NOTSUPP);
            return Step::Done;
        }
        if bio.size() == 0 {
            // An empty flush: committed changes are flushed by the commit,
            // otherwise the data device flushes.
            match self.flush_need(&thin) {
                None => bio.endio(BlkStatus::IOERR),
                Some(true) => ws.flush_bios.push(bio),
                Some(false) => {
                    bio.remap_file(&self.data, 0);
                    self.submit(bio);
                }
            }
            return Step::Done;
        }
        let vblock = bio.sector() / self.bs();
        {
            let mut p = self.prison.lock();
            if let Some(cell) = p.find(thin.id, vblock, vblock + 1) {
                bio.data_mut().thin = Some(thin);
                cell.waiters.push(bio);
                return Step::Done;
            }
        }
        let found = self.find_block(&mut ws.miss_buf, thin.id, vblock);
        match found {
            Ok(Some(m)) if !(op == Op::Write && m.shared) => {
                if m.shared {
                    // The cell check above was made by the worker, which
                    // alone adds cells: a later copy's barrier counts this.
                    let (e, _) = self.shared_io.enter();
                    bio.data_mut().shared_epoch.store(e, Ordering::SeqCst);
                }
                self.remap_and_issue(ws, &thin, bio, m.block);
                Step::Done
            }
            Ok(Some(_)) | Ok(None) if !writable && op == Op::Write => {
                self.handle_unserviceable(thin, bio);
                Step::Done
            }
            Ok(Some(m)) => self.new_mapping(ws, thin, bio, vblock, Some(m.block)),
            Ok(None) if op == Op::Read => {
                self.read_unmapped(&thin, bio);
                Step::Done
            }
            Ok(None) => self.new_mapping(ws, thin, bio, vblock, None),
            Err(e) => {
                dmerr!("{}: dm_thin_find_block() failed: error = {}", self.name(), errno(e).to_errno());
                bio.endio(BlkStatus::IOERR);
                Step::Done
            }
        }
    }

    /// C `provision_block` (`old` = None) and `break_sharing`: a new data
    /// block for `vblock`, zeroed, copied from `old`, or wholly overwritten
    /// by the bio.
    fn new_mapping(
        &self,
        ws: &mut WorkState,
        thin: Arc<Thin>,
        mut bio: Bio<ThinBio>,
        vblock: u64,
        old: Option<u64>,
    ) -> Step {
        if !self.prison.lock().insert(thin.id, vblock, vblock + 1) {
            bio.data_mut().thin = Some(thin);
            return Step::Retry(bio);
        }
        let (alloc, zero) = {
            let mut st = self.lock();
            let zero = st.pf.zero_new_blocks;
            (self.alloc_data_block(&mut st), zero)
        };
        let data_block = match alloc {
            Ok(Some(b)) => b,
            Ok(None) => {
                // Out of data space: queue or fail (C `retry_bios_on_resume`).
                let mut waiters = self.prison.lock().release(thin.id, vblock, vblock + 1);
                while let Some(mut w) = waiters.pop() {
                    w.data_mut().thin = None;
                    self.handle_unserviceable(thin.clone(), w);
                }
                self.handle_unserviceable(thin, bio);
                return Step::Done;
            }
            Err(e) => {
                self.lock()
                    .metadata_operation_failed(self.name(), "dm_pool_alloc_data_block", e);
                let waiters = self.prison.lock().release(thin.id, vblock, vblock + 1);
                self.error_waiters(waiters, BlkStatus::IOERR);
                bio.endio(BlkStatus::IOERR);
                return Step::Done;
            }
        };
        // Every job holds a cell, and the reserve has room for as many.
        let Some(slot) = self.jobs.lock().get() else {
            dmerr!("{}: no room for a new mapping", self.name());
            let _ = self.lock().pmd.drop_in_flight(data_block, data_block + 1);
            let waiters = self.prison.lock().release(thin.id, vblock, vblock + 1);
            self.error_waiters(waiters, BlkStatus::IOERR);
            bio.endio(BlkStatus::IOERR);
            return Step::Done;
        };
        let bs = self.bs();
        let overwrite = bio.op() == Op::Write && bio.sector() % bs == 0 && bio.sectors() == bs;
        // C `schedule_copy`: reads of the shared block in flight now must
        // complete before the mapping moves; later ones wait in the cell.
        let ticket = match old {
            Some(_) => self.shared_io.barrier(),
            None => None,
        };
        if overwrite {
            let job = KBox::write(slot, Job::new(thin.clone(), vblock, data_block, None, ticket));
            ws.pending_overwrites.push(job);
            {
                let mut d = bio.data_mut();
                d.hook_thin = thin.id;
                d.hook_block = vblock;
                d.hook.store(true, Ordering::SeqCst);
            }
            bio.remap_file(&self.data, data_block * bs);
            self.submit(bio);
            return Step::Done;
        }
        let origin_size = thin.origin_size.load(Ordering::SeqCst);
        let from_origin = old.is_none() && thin.origin.is_some() && vblock * bs < origin_size;
        let mut job = KBox::write(slot, Job::new(thin, vblock, data_block, Some(bio), ticket));
        match old {
            // C `schedule_external_copy`: the block's part inside the origin
            // is copied, the rest zeroed after.
            None if from_origin => {
                let len = (origin_size - vblock * bs).min(bs);
                if len < bs {
                    job.zero_from = Some(len);
                }
                let t = job.thin.clone();
                if let Some(origin) = &t.origin {
                    self.kcopyd
                        .copy(origin, vblock * bs, &self.data, data_block * bs, len, job);
                }
            }
            None if !zero => self.finish_job(ws, job),
            None => self.kcopyd.zero(&self.data, data_block * bs, bs, job),
            Some(o) => self
                .kcopyd
                .copy(&self.data, o * bs, &self.data, data_block * bs, bs, job),
        }
        Step::Done
    }

    /// A read of an unmapped block: from the external origin where it has
    /// data, zeroes beyond its end (C `process_bio`, `-ENODATA`).
    fn read_unmapped(&self, thin: &Thin, mut bio: Bio<ThinBio>) {
        let origin_size = thin.origin_size.load(Ordering::SeqCst);
        match &thin.origin {
            Some(origin) if bio.sector() < origin_size => {
                if bio.sector() + bio.sectors() > origin_size {
                    bio.zero_fill();
                    bio.truncate_sectors(origin_size - bio.sector());
                }
                let s = bio.sector();
                bio.remap_file(origin, s);
                self.submit(bio);
            }
            _ => {
                bio.zero_fill();
                bio.endio(BlkStatus::OK);
            }
        }
    }

    /// C `alloc_data_block`: `None` when the pool is out of data space (it
    /// is then in that mode) or a commit failed (it is then degraded).
    fn alloc_data_block(
        &self,
        st: &mut super::pool::PoolState,
    ) -> core::result::Result<Option<u64>, super::metadata::Error> {
        let name = self.name();
        let mut free = st.pmd.free_data_blocks()?;
        st.check_low_water_mark(name, free);
        if free == 0 {
            // A commit may free blocks released in this transaction.
            if st.commit(name).is_err() {
                return Ok(None);
            }
            free = st.pmd.free_data_blocks()?;
            if free == 0 {
                st.set_mode(name, PoolMode::OutOfDataSpace);
                return Ok(None);
            }
        }
        // The block's reference stays out of commits until the mapping
        // takes it (`finish_job`): a crash meanwhile leaks nothing.
        let Some(b) = st.pmd.alloc_in_flight()? else {
            st.set_mode(name, PoolMode::OutOfDataSpace);
            return Ok(None);
        };
        // Commit before this transaction eats into the metadata reserve: a
        // commit that finds no free metadata blocks left switches the pool
        // to out-of-metadata-space mode, where the prepared mapping fails
        // and `b` leaks, as in C.
        if st.pmd.free_metadata_blocks()? == 0 && st.commit(name).is_err() {
            return Ok(None);
        }
        Ok(Some(b))
    }

    /// C `handle_unserviceable_bio`: fail it, or keep it until the pool
    /// has space again (`queue_if_no_space`).
    fn handle_unserviceable(&self, thin: Arc<Thin>, mut bio: Bio<ThinBio>) {
        let (mode, eins) = {
            let st = self.lock();
            (st.mode(), st.pf.error_if_no_space)
        };
        let status = match mode {
            PoolMode::Write => {
                dmerr!("bio unserviceable, yet pool is in PM_WRITE mode");
                Some(BlkStatus::IOERR)
            }
            PoolMode::OutOfDataSpace if !eins => None,
            PoolMode::OutOfDataSpace => Some(BlkStatus::NOSPC),
            _ => Some(BlkStatus::IOERR),
        };
        match status {
            Some(s) => bio.endio(s),
            None => {
                bio.data_mut().thin = Some(thin);
                self.retry.lock().push(bio);
            }
        }
    }

    /// C `process_prepared_mapping`: insert the mapping, release the cell,
    /// issue the bios (or, on failure, fail them). A copy from an external
    /// origin that still has a tail to zero goes back to kcopyd; a copy
    /// whose shared block still has reads in flight is parked.
    fn finish_job(&self, ws: &mut WorkState, mut job: KBox<Job>) {
        if let (true, Some(from)) = (job.ok, job.zero_from.take()) {
            let bs = self.bs();
            let start = job.data_block * bs + from;
            self.kcopyd.zero(&self.data, start, bs - from, job);
            return;
        }
        if let (true, Some(t)) = (job.ok, job.ticket) {
            if !self.shared_io.drained(t) {
                self.shared_io.set_parked(true);
                ws.parked_jobs.push(job);
                return;
            }
        }
        let (vblock, data_block, ok) = (job.vblock, job.data_block, job.ok);
        let thin = job.thin.clone();
        let holder = job.holder.take();
        let overwrite = job.overwrite.take();
        self.jobs.lock().put(job);
        let r = if ok {
            let mut st = self.lock();
            if st.mode() >= PoolMode::OutOfMetadataSpace {
                // C `process_prepared_mapping_fail`: a read-only or failed
                // pool errors the mapping's bios and maps nothing; the
                // block's reference, never committed, is given up (C
                // leaks the block).
                let _ = st.pmd.drop_in_flight(data_block, data_block + 1);
                Err(())
            } else {
                match st.pmd.insert_block(thin.id, vblock, data_block) {
                    Ok(()) => {
                        st.pmd.map_in_flight(data_block, data_block + 1);
                        Ok(())
                    }
                    Err(e) => {
                        st.metadata_operation_failed(self.name(), "dm_thin_insert_block", e);
                        Err(())
                    }
                }
            }
        } else {
            dmerr!("{}: data block zeroing or copy failed", self.name());
            let _ = self.lock().pmd.drop_in_flight(data_block, data_block + 1);
            Err(())
        };
        let waiters = self.prison.lock().release(thin.id, vblock, vblock + 1);
        match r {
            Ok(()) => {
                self.release_waiters(ws, &thin, waiters, Some(data_block));
                if let Some(bio) = holder {
                    self.remap_and_issue(ws, &thin, bio, data_block);
                }
                if let Some(bio) = overwrite {
                    self.complete_overwrite(ws, &thin, bio);
                }
            }
            Err(()) => {
                self.error_waiters(waiters, BlkStatus::IOERR);
                // A written block that could not be mapped fails its write.
                for bio in [holder, overwrite].into_iter().flatten() {
                    bio.endio(BlkStatus::IOERR);
                }
            }
        }
    }

    /// A whole-block overwrite completed: map the block, then complete it
    /// (C `process_prepared_mapping` with `m->bio`).
    fn finish_overwrite(&self, ws: &mut WorkState, mut bio: Bio<ThinBio>) {
        let (thin_id, vblock, ok) = {
            let d = bio.data_mut();
            (d.hook_thin, d.hook_block, d.ok)
        };
        let Some(mut job) = ws.pending_overwrites.take(thin_id, vblock) else {
            bio.endio(BlkStatus::IOERR);
            return;
        };
        job.ok = ok;
        job.overwrite = Some(bio);
        self.finish_job(ws, job);
    }

    /// C `complete_overwrite_bio`: a FUA overwrite completes after the
    /// commit that maps its block; it fails if this thin's changes were
    /// lost in an aborted commit.
    fn complete_overwrite(&self, ws: &mut WorkState, thin: &Thin, bio: Bio<ThinBio>) {
        if !bio.is_fua() {
            return bio.endio(BlkStatus::OK);
        }
        match self.flush_need(thin) {
            None => bio.endio(BlkStatus::IOERR),
            Some(true) => ws.flush_completions.push(bio),
            Some(false) => bio.endio(BlkStatus::OK),
        }
    }

    /// One commit for every flush and FUA bio that needs it (C
    /// `process_deferred_bios`' tail), or the waker's periodic commit.
    fn process_commit(&self, ws: &mut WorkState) {
        let due = self.commit_due.swap(false, Ordering::SeqCst);
        let flushes = !ws.flush_bios.is_empty() || !ws.flush_completions.is_empty();
        if !flushes && !due {
            return;
        }
        // Looked at under the lock held for reading, so an idle pool's
        // `map`s do not defer for the waker's tick every second.
        let generation = {
            let st = self.read();
            let idle = !st.pmd.changed_this_transaction();
            if !flushes && (idle || st.mode() >= PoolMode::OutOfMetadataSpace) {
                return;
            }
            st.pmd.generation()
        };
        // The data device's flush, the commit's slow part, with no lock
        // held: `map`s go on meanwhile (see pool_metadata.rs, "Commits").
        // If it fails, the commit's own barrier flushes again and fails.
        let data_flushed = self.data.flush().is_ok();
        let r = {
            let mut st = self.lock();
            if !flushes && !st.pmd.changed_this_transaction() {
                return;
            }
            if data_flushed {
                st.pmd.data_flushed(generation);
            }
            if st.mode() >= PoolMode::OutOfMetadataSpace && !flushes {
                return;
            }
            st.commit(self.name())
        };
        let mut completions = ws.flush_completions.take();
        let mut bios = ws.flush_bios.take();
        if r.is_err() {
            self.error_waiters(completions, BlkStatus::IOERR);
            self.error_waiters(bios, BlkStatus::IOERR);
            return;
        }
        while let Some(bio) = completions.pop() {
            bio.endio(BlkStatus::OK);
        }
        while let Some(bio) = bios.pop() {
            // The commit flushed the data device: empty flushes are done.
            if bio.size() == 0 {
                bio.endio(BlkStatus::OK);
            } else {
                self.submit(bio);
            }
        }
    }
}
