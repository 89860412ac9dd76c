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

mod lifecycle;
mod state;

use super::io_epochs::IoEpochs;
use super::mapping::{JobList, JobReserve};
use super::metadata::{Error as MdError, PoolMetadata};
use super::metadata_dev::MetadataDev;
use super::pool_stats::PoolStats;
use super::prison::Prison;
use super::table_line::PoolFeatures;
use super::thin::ThinBio;
use super::worker::WorkState;
use crate::dm::{
    BdevFile, BioList, DevT, KcopydClient, MdHandle, MdId, ReadGuard, RwSem, ShrinkHandler,
    Shrinker, TableEvent, WriteGuard,
    WorkHandler, Worker,
    WorkerRef,
};
use kernel::alloc::KVec;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::error::code;
use kernel::debugfs::File;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex, SpinLock, SpinLockIrq};

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

/// A hold of the pool's state by anything but `map` (exclusive).
pub type StateGuard<'a> = WriteGuard<'a, PoolState>;
