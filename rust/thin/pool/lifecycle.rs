//! The pool's life ([`Pool`]): creation, suspend and resume of the pool
//! and of its active thins, binding to the table that controls it, and
//! shutdown.

use super::{errno, ActiveThins, Name, Pool, PoolCore, PoolMode, PoolState, COMMIT_PERIOD_MS};
use crate::dm::{dmerr, dmerr_metadata, dmwarn};
use crate::dm::{
    BdevFile, BioList, DevT, KcopydClient, MdHandle, MdId, Shrinker, TableEvent, Worker,
};
use crate::thin::io_epochs::IoEpochs;
use crate::thin::mapping::{JobList, JobReserve};
use crate::thin::metadata::{Error as MdError, PoolMetadata};
use crate::thin::metadata_dev::MetadataDev;
use crate::thin::pool_stats::PoolStats;
use crate::thin::prison::{Prison, MAX_CELLS};
use crate::thin::table_line::PoolFeatures;
use crate::thin::worker::WorkState;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::alloc::KVec;
use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::sync::{new_mutex, new_spinlock, new_spinlock_irq, Arc};

impl Pool {
    /// C `pool_create`: opens the devices and the metadata (formatting it
    /// when block 0 is all zeroes, unless read-only) and starts the worker.
    /// `Err` carries the `ti->error` text. Sleeps.
    pub(crate) fn create(
        md: MdId,
        name: &CStr,
        metadata_dev: DevT,
        data_dev: DevT,
        block_size: u32,
        read_only: bool,
        debugfs: &Dir,
    ) -> core::result::Result<Arc<Pool>, (&'static CStr, Error)> {
        const MD_ERR: &CStr = c"Error creating metadata object";
        let meta = BdevFile::open(metadata_dev, !read_only).map_err(|e| (MD_ERR, e))?;
        let data = BdevFile::open(data_dev, true).map_err(|e| (MD_ERR, e))?;
        let data = Arc::new(data, GFP_KERNEL).map_err(|_| (MD_ERR, ENOMEM))?;
        let meta = Arc::new(meta, GFP_KERNEL).map_err(|_| (MD_ERR, ENOMEM))?;
        let dev = MetadataDev::new(meta.clone(), data.clone()).map_err(|e| (MD_ERR, e))?;
        let cache = crate::dm::metadata_cache_blocks();
        let pmd = PoolMetadata::open_with_cache(dev, Some(block_size), !read_only, cache).map_err(|e| {
            log_open_error(name, e, block_size);
            (MD_ERR, errno(e))
        })?;
        let state = PoolState {
            pmd,
            mode: PoolMode::Write,
            pf: PoolFeatures::default(),
            low_water_blocks: 0,
            low_water_triggered: false,
            bound: None,
            closed: false,
            oods_ticks: 0,
            requested_eins: false,
            out_of_data_space: false,
        };
        let prison = Prison::new().map_err(|_| (c"Error creating pool's bio prison", ENOMEM))?;
        let jobs = JobReserve::new(MAX_CELLS).map_err(|_| (c"Error creating pool's mapping mempool", ENOMEM))?;
        let kcopyd = KcopydClient::new().map_err(|e| (c"Error creating pool's kcopyd client", e))?;
        // A pool whose directory cannot be made (a name in use, no debugfs)
        // still counts; the file is just not shown.
        let stats = KBox::pin_init(
            debugfs.subdir(name).read_only_file(c"stats", PoolStats::default()),
            GFP_KERNEL,
        )
        .map_err(|_| (c"Error allocating memory for pool", ENOMEM))?;
        let core = Arc::pin_init(
            pin_init!(PoolCore {
                md,
                metadata_dev,
                data_dev,
                block_size,
                name: Name::new(name),
                data,
                meta,
                // C `pool_create`: suspended until its first resume.
                suspended: AtomicBool::new(true),
                state <- crate::new_rwsem!(state, c"PoolCore::state"),
                deferred <- new_spinlock_irq!(BioList::new()),
                overwrite_done <- new_spinlock_irq!(BioList::new()),
                passdown_done <- new_spinlock_irq!(BioList::new()),
                retry <- new_spinlock_irq!(BioList::new()),
                prepared <- new_spinlock!(JobList::new()),
                prison <- prison,
                work <- new_mutex!(WorkState::default()),
                io: IoEpochs::new(),
                shared_io: IoEpochs::new(),
                jobs <- new_spinlock!(jobs),
                kcopyd,
                commit_due: AtomicBool::new(false),
                reclaim_due: AtomicBool::new(true),
                thins <- new_mutex!(ActiveThins::default()),
                stats,
                trim_lock <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| (c"Error allocating memory for pool", ENOMEM))?;
        core.stats.set_cache_capacity(core.lock().pmd.cache_capacity() as u64);
        let worker = Worker::new(c"dm-thin-rs", core)
            .map_err(|e| (c"Error creating pool's workqueue", e))?;
        // A pool works without its shrinker (its cache is bounded anyway).
        let shrinker = Shrinker::new(name, worker.handler().clone()).ok();
        Arc::new(Pool { _shrinker: shrinker, worker }, GFP_KERNEL)
            .map_err(|_| (c"Error allocating memory for pool", ENOMEM))
    }

    /// The pool's core.
    pub fn core(&self) -> &PoolCore {
        self.worker.handler()
    }

    /// C `pool_presuspend` (the pool half) and `pool_presuspend_undo`.
    /// Set under the active thins' lock, so a thin constructor either sees
    /// the pool suspended or is on the list the suspend quiesces. Sleeps.
    pub fn set_suspended(&self, v: bool) {
        let _t = self.core().thins.lock();
        self.core().suspended.store(v, Ordering::Release);
    }

    /// Adds an active thin unless the pool is suspended (C `thin_ctr`
    /// checks `pool->suspended` and does `list_add_tail_rcu` under
    /// `pool->lock`): `Ok(false)` if it is. Sleeps.
    pub fn add_thin(&self, md: MdHandle) -> Result<bool> {
        let mut t = self.core().thins.lock();
        if self.suspended() {
            return Ok(false);
        }
        t.active.push(md, GFP_KERNEL)?;
        Ok(true)
    }

    /// Removes an active thin (C `thin_dtr`).
    pub fn remove_thin(&self, md: &MdHandle) {
        let mut t = self.core().thins.lock();
        t.active.retain(|h| !h.same(md));
        t.suspended.retain(|h| !h.same(md));
    }

    /// C `pool_suspend_active_thins`: every active thin is suspended
    /// (noflush) while the pool is. Sleeps.
    pub fn suspend_active_thins(&self) {
        let list = {
            let mut t = self.core().thins.lock();
            let mut list = KVec::new();
            for h in t.active.iter() {
                if list.push(h.clone(), GFP_KERNEL).is_err() {
                    break;
                }
            }
            // Recorded first, so a resume undoes exactly these.
            t.suspended = match KVec::with_capacity(list.len(), GFP_KERNEL) {
                Ok(v) => v,
                Err(_) => KVec::new(),
            };
            for h in list.iter() {
                let _ = t.suspended.push(h.clone(), GFP_KERNEL);
            }
            list
        };
        for h in list.iter() {
            h.internal_suspend_noflush();
        }
    }

    /// C `pool_resume_active_thins`: resumes the thins the pool's suspend
    /// suspended. Sleeps.
    pub fn resume_active_thins(&self) {
        let list = core::mem::take(&mut self.core().thins.lock().suspended);
        for h in list.iter() {
            h.internal_resume();
        }
    }

    /// C `pool_postsuspend`: stop the waker, drain the worker, commit.
    pub fn postsuspend(&self) {
        self.worker.cancel_delayed_sync();
        self.worker.flush();
        let core = self.core();
        let _ = core.lock().commit(core.name());
        // A failed commit made the pool read-only: nothing waits for space.
        if core.settle_retries() {
            self.wake();
        }
    }

    /// C `requeue_bios`: bios waiting for space go back to the worker.
    pub fn requeue_retries(&self) {
        let core = self.core();
        let mut r = core.retry.lock().take();
        if !r.is_empty() {
            core.deferred.lock().append(&mut r);
            self.wake();
        }
    }

    /// C `pool_resume` (the pool half): requeue, resume the thins, start
    /// the waker.
    pub fn resume(&self) {
        self.requeue_retries();
        self.resume_active_thins();
        {
            let mut st = self.core().lock();
            st.low_water_triggered = false;
        }
        self.set_suspended(false);
        self.core().reclaim_due.store(true, Ordering::Release);
        self.worker.queue();
        self.worker.queue_delayed_ms(COMMIT_PERIOD_MS);
    }

    /// C `bind_control_target`: the table resuming takes control of the
    /// pool: its features, low water mark and table events, then the mode
    /// it asks for.
    pub fn bind(
        &self,
        target: usize,
        pf: PoolFeatures,
        low_water_blocks: u64,
        events: TableEvent,
    ) {
        let core = self.core();
        let mut st = core.lock();
        // C keeps `adjusted_pf.mode` in step with the pool's mode, so a
        // reload does not lift out-of-space modes by itself.
        let new_mode = if pf.read_only {
            PoolMode::ReadOnly
        } else if matches!(st.mode, PoolMode::OutOfDataSpace | PoolMode::OutOfMetadataSpace) {
            st.mode
        } else {
            PoolMode::Write
        };
        st.pf = pf;
        st.requested_eins = pf.error_if_no_space;
        st.low_water_blocks = low_water_blocks;
        st.bound = Some((target, events));
        st.set_mode(core.name(), new_mode);
    }

    /// C `unbind_control_target`.
    pub fn unbind(&self, target: usize) {
        let mut st = self.core().lock();
        if matches!(&st.bound, Some((t, _)) if *t == target) {
            st.bound = None;
        }
    }

    /// Waits until the worker has run what is queued. Sleeps.
    pub fn flush_worker(&self) {
        self.worker.flush();
    }

    /// Wakes the worker (C `wake_worker`). Never sleeps.
    pub fn wake(&self) {
        self.worker.queue();
    }

    /// Whether the pool is suspended (C `pool->suspended`).
    pub fn suspended(&self) -> bool {
        self.core().suspended.load(Ordering::Acquire)
    }

    /// C `__pool_destroy`'s I/O half: stop the worker's timers for good,
    /// drain it, destroy the kcopyd client (while the pool table still
    /// holds the pool, so no kcopyd completion is ever its last holder),
    /// drain what those completions handed over, commit and close the
    /// metadata. Sleeps.
    pub(crate) fn shutdown(&self) {
        self.worker.disable_delayed_sync();
        self.worker.flush();
        self.core().kcopyd.destroy();
        self.worker.flush();
        let core = self.core();
        let mut st = core.lock();
        if !st.closed && st.mode < PoolMode::OutOfMetadataSpace {
            if let Err(e) = st.pmd.close() {
                dmwarn!("{}: dm_pool_metadata_close() failed: {}", core.name(), errno(e).to_errno());
            }
        } else if !st.closed && st.pmd.needs_check() {
            // C writes the dirty superblock when its block manager goes:
            // a needs_check flag that could not be written yet gets there.
            let _ = st.pmd.set_needs_check();
        }
        st.closed = true;
        st.bound = None;
    }
}

fn log_open_error(name: &CStr, e: MdError, block_size: u32) {
    match e {
        // dm-thin-metadata's line, which names no device.
        MdError::DataBlockSizeMismatch { on_disk } => dmerr_metadata!(
            "changing the data block size (from {} to {}) is not supported",
            on_disk,
            block_size
        ),
        MdError::SuperblockBadMagic | MdError::SuperblockBadChecksum | MdError::SuperblockBadBlocknr => {
            dmerr!("{}: superblock validator check failed: {:?}", name.to_str().unwrap_or("?"), e)
        }
        MdError::Unformatted => dmerr!(
            "{}: metadata device is not formatted and the pool is read-only",
            name.to_str().unwrap_or("?")
        ),
        _ => dmerr!(
            "{}: couldn't open pool metadata: {:?}",
            name.to_str().unwrap_or("?"),
            e
        ),
    }
}
