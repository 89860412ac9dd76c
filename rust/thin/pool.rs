//! The pool object (C `struct pool`): one per metadata device, shared by
//! every `thin-pool` table loaded over it and, with the data path, by its
//! thins.
//!
//! - **Registry.** [`PoolTable`](super::pool_table::PoolTable) (C `dm_thin_pool_table`) lists the pools
//!   with a count of the targets using each. A `thin-pool` table finds an
//!   existing pool by its metadata device or its mapped device
//!   ([`find_or_create`](super::pool_table::PoolTable::find_or_create), C `__pool_find`), so a reload binds to
//!   the live pool; the last target to go removes the pool from the table
//!   and shuts it down (final commit) under the table lock, so a new table
//!   over the same devices never meets a half-closed pool.
//! - **Devices.** The pool opens its metadata and data devices itself
//!   ([`BdevFile`]), so it does not depend on any one table's `dm_dev`.
//! - **Modes** ([`PoolMode`]), ordered by degradation as C's `pool_mode`;
//!   [`PoolState::set_mode`] follows `set_pool_mode`: `Fail` is final,
//!   `needs_check` keeps the pool out of `Write`.
//! - **Commits**: after every successful message, at postsuspend, when the
//!   waker finds changes (every second, [`COMMIT_PERIOD_MS`]), and at
//!   shutdown. A failed commit aborts the transaction, sets `needs_check`
//!   and degrades the pool, as `metadata_operation_failed` does.
//! - **Shutdown** ([`Pool::shutdown`], by the last target to go) disables
//!   the waker, drains the worker and destroys the kcopyd client while the
//!   pool table still holds the pool: a kcopyd completion (which holds the
//!   pool through its job's thin) is never the pool's last holder, so the
//!   client is never destroyed from inside its own completion.
//! - **No I/O recursion.** Everything that allocates while it may hold up
//!   I/O to the pool's own devices (worker, messages, constructor, status,
//!   suspend hooks) runs in a [`noio`](crate::dm::noio) scope, which the dm
//!   layer enters around every such callback.
//!
//! - **Counters** ([`PoolStats`], debugfs `dm_thin_rs/<pool>/stats`): why
//!   `map` deferred bios, and what trims discarded.
//!
//! Locking: the table's mutex, then a pool's trim mutex (held by a trim
//! batch, and briefly by presuspend to wait for one: see `trim.rs`), then
//! its state lock, then the bound target's table-event mutex. The state
//! lock is held for writing across metadata writes, a commit's data-device
//! flush and the reads of cache misses that go by the block manager, never
//! across the I/O of data blocks (copies, zeroing, discards, bios). The
//! prison's spinlock and the bio lists' spinlocks are leaves: nothing is
//! taken under them.
//!
//! The state lock is a reader/writer semaphore ([`RwSem`]). Messages,
//! commits, status, the constructors and the worker's changes take it for
//! writing ([`PoolCore::lock`]). Lookups take it for reading, so they run
//! at once on any number of CPUs: `map`'s, last and alone and without
//! sleeping ([`PoolCore::read_for_map`]), through `&PoolState`
//! ([`PoolMetadata::find_block_shared`]), deferring the bio to the worker
//! only while a writer holds or waits for the lock; and the worker's
//! ([`PoolCore::read`], `lookup.rs`), which reads the nodes they miss with
//! no lock held and takes the lock for writing only to put them in the
//! cache. Nothing a reader reaches changes under the read lock: the block
//! manager's one `&self` call (`peek`) sets an atomic bit.

use crate::dm::{dmerr, dmerr_metadata, dminfo, dmwarn};
use super::io_epochs::IoEpochs;
use super::mapping::{JobList, JobReserve};
use super::prison::MAX_CELLS;
use super::metadata::{Error as MdError, PoolMetadata};
use super::metadata_dev::MetadataDev;
use super::pool_stats::PoolStats;
use super::prison::Prison;
use super::table_line::PoolFeatures;
use super::thin::ThinBio;
use super::worker::WorkState;
use crate::dm::{
    BdevFile, BioList, BlkStatus, DevT, KcopydClient, MdHandle, MdId, ReadGuard, RwSem, ShrinkHandler,
    Shrinker, TableEvent, WriteGuard,
    WorkHandler, Worker,
    WorkerRef,
};
use kernel::alloc::KVec;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::error::code;
use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::sync::{new_mutex, new_spinlock, new_spinlock_irq, Arc, Mutex, SpinLock, SpinLockIrq};

/// The largest metadata device C uses (`THIN_METADATA_MAX_SECTORS`, that
/// is `DM_SM_METADATA_MAX_SECTORS`: 255 bitmaps of `(1 << 14) - 64` blocks).
pub const THIN_METADATA_MAX_SECTORS: u64 = 255 * ((1 << 14) - 64) * 8;
/// Above this size C warns that the excess of a metadata device will not be
/// used (`THIN_METADATA_MAX_SECTORS_WARNING`: 16 GiB).
pub const THIN_METADATA_MAX_SECTORS_WARNING: u64 = 16 * (1024 * 1024 * 1024 >> 9);
/// How often the waker looks for changes to commit (C `COMMIT_PERIOD`).
pub const COMMIT_PERIOD_MS: u32 = 1000;

/// The pool's mode, ordered by degradation (C `enum pool_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolMode {
    /// Metadata and data may change.
    Write,
    /// No free data block: bios that need one wait or fail.
    OutOfDataSpace,
    /// No free metadata block: read-only until the device grows.
    OutOfMetadataSpace,
    /// Metadata may not change.
    ReadOnly,
    /// Metadata cannot be trusted: every bio fails.
    Fail,
}

impl PoolMode {
    /// C `is_read_only_pool_mode`.
    pub fn is_read_only(self) -> bool {
        matches!(self, PoolMode::OutOfMetadataSpace | PoolMode::ReadOnly)
    }

    /// The words of `notify_of_pool_mode_change`.
    fn desc(self) -> &'static str {
        match self {
            PoolMode::Write => "write",
            PoolMode::OutOfDataSpace => "out-of-data-space",
            PoolMode::OutOfMetadataSpace | PoolMode::ReadOnly => "read-only",
            PoolMode::Fail => "fail",
        }
    }
}

/// The errno C returns for a metadata error.
pub fn errno(e: MdError) -> Error {
    use crate::pdata::error::Error as P;
    match e {
        MdError::SuperblockBadBlocknr => code::ENOTBLK,
        MdError::SuperblockBadMagic | MdError::SuperblockBadChecksum => code::EILSEQ,
        MdError::Unformatted => code::EPERM,
        MdError::Exists => code::EEXIST,
        MdError::NoSuchDevice => code::ENODATA,
        MdError::Busy | MdError::MetadataSnapExists => code::EBUSY,
        MdError::NoDataSpace => code::ENOSPC,
        MdError::WouldBlock => code::EAGAIN,
        MdError::FailIo => code::EIO,
        MdError::Pdata(P::NoMem) => code::ENOMEM,
        MdError::Pdata(P::NoSpace) => code::ENOSPC,
        MdError::Pdata(P::Io) => code::EIO,
        MdError::Pdata(P::WouldBlock) => code::EAGAIN,
        MdError::Pdata(P::Busy) => code::EBUSY,
        MdError::Pdata(P::Checksum) | MdError::Pdata(P::ValidatorMismatch) => code::EILSEQ,
        MdError::Pdata(P::BlockNr) => code::ENOTBLK,
        _ => code::EINVAL,
    }
}

/// A pool name copied for log lines made outside a target callback.
struct Name {
    buf: [u8; 128],
    len: usize,
}

impl Name {
    fn new(s: &CStr) -> Self {
        let b = s.to_bytes();
        let len = b.len().min(127);
        let mut buf = [0u8; 128];
        buf[..len].copy_from_slice(&b[..len]);
        Name { buf, len }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// What the pool's mutex guards (the mutable half of C `struct pool`).
pub struct PoolState {
    /// The metadata (`pool->pmd`).
    pub pmd: PoolMetadata<MetadataDev>,
    mode: PoolMode,
    /// Features of the bound table (`pool->pf`, less the mode).
    pub pf: PoolFeatures,
    /// `pool->low_water_blocks`.
    pub low_water_blocks: u64,
    low_water_triggered: bool,
    /// The bound target's identity and its table-event handle.
    bound: Option<(usize, TableEvent)>,
    /// Set once the pool is shut down: nothing may commit after that.
    closed: bool,
    /// Waker periods spent out of data space (C's `no_space_timeout` work).
    oods_ticks: u32,
    /// The bound table's `error_if_no_space` (C `pt->requested_pf`): what
    /// a return to write mode restores after `no_space_timeout` set it.
    requested_eins: bool,
    /// Out of data space since the last write mode (C
    /// `pool->out_of_data_space`): queued bios then fail with ENOSPC.
    out_of_data_space: bool,
}

/// The pool's immutable identity and its locked state.
#[pin_data]
pub struct PoolCore {
    pub(crate) md: MdId,
    pub(crate) metadata_dev: DevT,
    pub(crate) data_dev: DevT,
    block_size: u32,
    name: Name,
    /// The data device, opened by the pool.
    pub(crate) data: Arc<BdevFile>,
    /// The metadata device, for reads without the state lock (the worker's
    /// lookups); writes go through the block manager only.
    pub(crate) meta: Arc<BdevFile>,
    suspended: AtomicBool,
    #[pin]
    state: RwSem<PoolState>,
    /// Bios `map` deferred to the worker.
    #[pin]
    pub(crate) deferred: SpinLockIrq<BioList<ThinBio>>,
    /// Bios that wait for the pool to get space (C `retry_on_resume_list`).
    #[pin]
    pub(crate) retry: SpinLockIrq<BioList<ThinBio>>,
    /// Whole-block overwrites that completed, for the worker to map.
    #[pin]
    pub(crate) overwrite_done: SpinLockIrq<BioList<ThinBio>>,
    /// Discards whose passdown to the data device finished.
    #[pin]
    pub(crate) passdown_done: SpinLockIrq<BioList<ThinBio>>,
    /// Mappings whose zeroing or copy finished (kcopyd).
    #[pin]
    pub(crate) prepared: SpinLock<JobList>,
    /// Blocks being provisioned, copied or discarded.
    #[pin]
    pub(crate) prison: Prison,
    /// The worker's own lists.
    #[pin]
    pub(crate) work: Mutex<WorkState>,
    /// Bios in flight to the data device (C `all_io_ds`).
    pub(crate) io: IoEpochs,
    /// Reads of shared blocks in flight (C `shared_read_ds`).
    pub(crate) shared_io: IoEpochs,
    /// Room for the prepared mappings (C's mapping mempool).
    #[pin]
    pub(crate) jobs: SpinLock<JobReserve>,
    /// Copies and zeroing of data blocks.
    pub(crate) kcopyd: KcopydClient,
    /// The waker asks the worker for a commit of what changed.
    pub(crate) commit_due: AtomicBool,
    /// A delete may be in progress (see `reclaim.rs`).
    pub(crate) reclaim_due: AtomicBool,
    /// The mapped devices of the active thins (C `pool->active_thins`),
    /// and those the pool's suspend holds suspended.
    #[pin]
    thins: Mutex<ActiveThins>,
    /// Why `map` deferred bios, shown in debugfs while the pool lives.
    pub(crate) stats: Pin<KBox<File<PoolStats>>>,
    /// Held by each trim batch, and by presuspend once the pool is marked
    /// suspended (see `trim.rs`).
    #[pin]
    pub(crate) trim_lock: Mutex<()>,
}

/// The pool's active thins, for quiescing them with the pool.
#[derive(Default)]
struct ActiveThins {
    active: KVec<MdHandle>,
    suspended: KVec<MdHandle>,
}

/// A pool: its core and the worker that commits for it.
pub struct Pool {
    /// Gives clean metadata blocks back under memory pressure (none if it
    /// could not be registered). Dropped before the worker.
    _shrinker: Option<Shrinker<PoolCore>>,
    worker: Worker<PoolCore>,
}


impl PoolState {
    /// The pool's mode.
    pub fn mode(&self) -> PoolMode {
        self.mode
    }

    fn notify(&self) {
        if let Some((_, ev)) = &self.bound {
            ev.trigger();
        }
    }

    /// C `set_pool_mode`.
    pub fn set_mode(&mut self, name: &str, mut new: PoolMode) {
        let old = self.mode;
        if new == PoolMode::Write && self.pmd.needs_check() {
            dmerr!("{}: unable to switch pool to write mode until repaired.", name);
            new = if old != new { old } else { PoolMode::ReadOnly };
        }
        if old == PoolMode::Fail {
            new = old;
        }
        match new {
            PoolMode::Fail | PoolMode::OutOfMetadataSpace | PoolMode::ReadOnly => {
                self.pmd.set_read_only()
            }
            PoolMode::OutOfDataSpace => {
                self.oods_ticks = 0;
                self.out_of_data_space = true;
            }
            PoolMode::Write => {
                self.out_of_data_space = false;
                self.pf.error_if_no_space = self.requested_eins;
                self.pmd.set_read_write();
            }
        }
        self.mode = new;
        if old != new {
            self.notify();
            let extra = match (new, self.pf.error_if_no_space) {
                (PoolMode::OutOfDataSpace, false) => " (queue IO)",
                (PoolMode::OutOfDataSpace, true) => " (error IO)",
                _ => "",
            };
            dminfo!("{}: switching pool to {}{} mode", name, new.desc(), extra);
        }
    }

    /// C `check_low_water_mark`: one table event when free data blocks
    /// fall to the low water mark (re-armed on resume).
    pub fn check_low_water_mark(&mut self, name: &str, free: u64) {
        if free <= self.low_water_blocks && !self.low_water_triggered {
            dmwarn!("{}: reached low water mark for data device: sending event.", name);
            self.low_water_triggered = true;
            self.notify();
        }
    }

    /// C `do_no_space_timeout`, counted in waker periods: once out of data
    /// space for `no_space_timeout` seconds, queued bios fail with ENOSPC.
    /// Returns whether the queued bios must be failed now.
    fn no_space_tick(&mut self, name: &str) -> bool {
        if self.mode != PoolMode::OutOfDataSpace || self.pf.error_if_no_space {
            return false;
        }
        self.oods_ticks = self.oods_ticks.saturating_add(1);
        let limit = crate::dm::no_space_timeout_secs();
        if limit == 0 || self.oods_ticks < limit {
            return false;
        }
        self.pf.error_if_no_space = true;
        self.notify();
        dminfo!("{}: switching pool to out-of-data-space (error IO) mode", name);
        true
    }

    /// What the retry list's bios get now (C `set_pool_mode` errors it
    /// leaving write and out-of-data-space modes, with
    /// `get_pool_io_error_code`); `None` while they may still be served.
    fn retry_verdict(&self) -> Option<BlkStatus> {
        match self.mode {
            PoolMode::Write | PoolMode::OutOfDataSpace => None,
            _ if self.out_of_data_space => Some(BlkStatus::NOSPC),
            _ => Some(BlkStatus::IOERR),
        }
    }

    /// Whether the worker may change the metadata on its own (write or
    /// out-of-data-space mode, as messages may; not shut down). Out of
    /// data space is where a delete's space is needed most.
    pub fn may_change(&self) -> bool {
        self.mode <= PoolMode::OutOfDataSpace && !self.closed
    }

    /// C `abort_transaction`.
    fn abort_transaction(&mut self, name: &str) {
        dmerr!("{}: aborting current metadata transaction", name);
        if self.pmd.abort().is_err() {
            dmerr!("{}: failed to abort metadata transaction", name);
            self.set_mode(name, PoolMode::Fail);
        }
        // As in C, the flag counts once it is set in core: if writing the
        // superblock fails now, it is written again when the pool closes.
        if self.pmd.set_needs_check().is_err() && !self.pmd.needs_check() {
            dmerr!("{}: failed to set 'needs_check' flag in metadata", name);
            self.set_mode(name, PoolMode::Fail);
        }
    }

    /// C `metadata_operation_failed`.
    pub fn metadata_operation_failed(&mut self, name: &str, op: &str, e: MdError) {
        dmerr!(
            "{}: metadata operation '{}' failed: error = {}",
            name,
            op,
            errno(e).to_errno()
        );
        self.abort_transaction(name);
        self.set_mode(name, PoolMode::ReadOnly);
    }

    /// C `commit`: `Err` in read-only and fail modes or when the commit
    /// failed (the pool is then degraded).
    pub fn commit(&mut self, name: &str) -> Result {
        if self.closed || self.mode >= PoolMode::OutOfMetadataSpace {
            return Err(EINVAL);
        }
        if let Err(e) = self.pmd.commit() {
            self.metadata_operation_failed(name, "dm_pool_commit_metadata", e);
            return Err(errno(e));
        }
        self.check_for_metadata_space(name);
        self.check_for_data_space(name);
        // C raises one event per crossing, from the space map's callback.
        for _ in 0..self.pmd.take_metadata_threshold_events() {
            dmwarn!("{}: reached low water mark for metadata device: sending event.", name);
            self.notify();
        }
        Ok(())
    }

    fn check_for_metadata_space(&mut self, name: &str) {
        let reason = match self.pmd.free_metadata_blocks() {
            Err(_) => Some("Could not get free metadata blocks"),
            Ok(0) => Some("No free metadata blocks"),
            Ok(_) => None,
        };
        if let Some(r) = reason {
            if !self.mode.is_read_only() {
                dmerr!("{}", r);
                self.set_mode(name, PoolMode::OutOfMetadataSpace);
            }
        }
    }

    fn check_for_data_space(&mut self, name: &str) {
        if self.mode != PoolMode::OutOfDataSpace {
            return;
        }
        if let Ok(n) = self.pmd.free_data_blocks() {
            if n > 0 {
                self.set_mode(name, PoolMode::Write);
            }
        }
    }
}

impl PoolCore {
    /// The pool's name (its mapped device's, when it was created).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The data block size in sectors.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whether the pool is suspended (C `pool->suspended`).
    pub fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Tries to lock the pool's state without sleeping (the shrinker).
    pub fn try_lock(&self) -> Option<StateGuard<'_>> {
        self.state.try_write()
    }

    /// Locks the pool's state. Sleeps.
    pub fn lock(&self) -> StateGuard<'_> {
        self.state.write()
    }

    /// Locks the pool's state for reading, shared with `map`s and other
    /// readers (the worker's lookups and mode checks). Sleeps.
    pub fn read(&self) -> ReadGuard<'_, PoolState> {
        self.state.read()
    }

    /// `map`'s hold of the pool's state: shared with other `map`s, `None`
    /// (the caller defers the bio) while anything else holds it or waits
    /// for it. Never sleeps.
    pub fn read_for_map(&self) -> Option<ReadGuard<'_, PoolState>> {
        self.state.try_read()
    }

    /// The retry list after a possible mode change: failed once the pool
    /// can no longer serve it (C `set_pool_mode`'s `error_retry_list` for
    /// read-only, out-of-metadata-space and fail modes), back to the
    /// deferred list in write mode (C `requeue_bios`). Returns whether bios
    /// were requeued (the worker must run). Sleeps.
    pub(crate) fn settle_retries(&self) -> bool {
        let (mode, verdict) = {
            let st = self.lock();
            (st.mode(), st.retry_verdict())
        };
        if let Some(status) = verdict {
            let mut failed = self.retry.lock().take();
            while let Some(mut bio) = failed.pop() {
                bio.data_mut().thin = None;
                bio.endio(status);
            }
            return false;
        }
        if mode != PoolMode::Write {
            return false;
        }
        let mut r = self.retry.lock().take();
        if r.is_empty() {
            return false;
        }
        self.deferred.lock().append(&mut r);
        true
    }

}

/// The pool's shrinker: clean metadata blocks go back under memory
/// pressure (dm-bufio's shrinker does the same for C's metadata). It only
/// try-locks the pool: reclaim may run inside an allocation made under
/// the pool lock.
impl ShrinkHandler for PoolCore {
    fn count(&self) -> usize {
        self.try_lock().map_or(0, |st| st.pmd.cache_shrinkable())
    }

    fn scan(&self, nr: usize) -> Option<usize> {
        let n = self.try_lock()?.pmd.shrink_cache(nr);
        self.stats.shrunk(n as u64);
        Some(n)
    }
}

impl WorkHandler for PoolCore {
    /// The worker (C `do_worker`); see `worker.rs`.
    fn work(&self, w: &WorkerRef<'_, Self>) {
        self.do_work(w);
    }

    /// The waker (C `do_waker`): asks for a commit of what changed, wakes
    /// the worker and re-arms itself.
    fn timer(&self, w: &WorkerRef<'_, Self>) {
        let fail_queued = {
            self.lock().no_space_tick(self.name())
        };
        if fail_queued {
            let mut queued = self.retry.lock().take();
            while let Some(mut bio) = queued.pop() {
                bio.data_mut().thin = None;
                bio.endio(crate::dm::BlkStatus::NOSPC);
            }
        }
        self.settle_retries();
        self.commit_due.store(true, Ordering::SeqCst);
        w.queue();
        w.queue_delayed_ms(COMMIT_PERIOD_MS);
    }
}

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

/// A hold of the pool's state by anything but `map` (exclusive).
pub type StateGuard<'a> = WriteGuard<'a, PoolState>;
