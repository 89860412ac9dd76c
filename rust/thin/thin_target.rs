//! The `thin` target (C `thin_c` and the `thin_*` callbacks): one thin
//! device of a pool. `map` remaps what it can at once and defers the rest
//! to the pool's worker (see `worker.rs`).

use super::metadata::ThinId;
use super::pool::{errno, PoolMode};
use super::pool_stats::Deferral;
use super::pool_table::SharedPools;
use super::table_line::{self, msg};
use super::thin::{Thin, ThinBio};
use crate::dm::{
    Args, BdevFile, BlkStatus, CtrError, DmDev, EndIoBio, Ended, MapBio, Mapped, MdHandle, Mode,
    Op,
    QueueLimits, StatusFlags, StatusType, StatusWriter, Target, TargetCtx, TargetRef,
};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The largest discard a thin takes at once, in blocks (C `BIO_PRISON_MAX_RANGE`).
const MAX_DISCARD_BLOCKS: u64 = 1024;

/// One `thin` table line's target.
pub struct ThinTarget {
    thin: Arc<Thin>,
    pools: SharedPools,
    pool_dev: DmDev,
    origin_dev: Option<DmDev>,
    dev_id: ThinId,
    md: MdHandle,
}

impl ThinTarget {
    /// `DM_TARGET_PASSES_CRYPTO`, as the C thin target.
    pub const FEATURES: u64 = crate::bindings::DM_TARGET_PASSES_CRYPTO as u64;

    fn defer<'a>(&self, bio: MapBio<'a, ThinBio>) -> Mapped<'a> {
        let (mut b, m) = bio.defer();
        b.data_mut().thin = Some(self.thin.clone());
        let pool = &self.thin.pool;
        pool.core().deferred.lock().push(b);
        pool.wake();
        m
    }

    /// An empty flush (what `fsync` sends): when the thin has nothing
    /// uncommitted, the data device's flush is all it needs, and it goes
    /// there at once, as the worker would send it. A write that completed
    /// before the flush was mapped before it completed, under the lock held
    /// for writing, so the thin is seen changed; a commit holds that lock
    /// from its first write to its superblock, so under the lock held for
    /// reading the thin's changes are either all committed or not. Anything
    /// else (changes, an aborted commit, details not loaded, the lock held
    /// for writing) goes to the worker, which commits first or fails it.
    fn map_flush<'a>(&self, mut bio: MapBio<'a, ThinBio>) -> Mapped<'a> {
        enum Next {
            Down,
            Defer(Deferral),
            Kill,
        }
        let core = self.thin.pool.core();
        let (epoch, mut wake) = core.io.enter();
        let next = match core.read_for_map() {
            Some(st) if st.mode() == PoolMode::Fail => Next::Kill,
            Some(st) if st.pmd.thin_flush_needs_no_commit(self.thin.id) => Next::Down,
            Some(_) => Next::Defer(Deferral::Special),
            None => Next::Defer(Deferral::Contended),
        };
        if !matches!(next, Next::Down) {
            wake |= core.io.exit(epoch);
        }
        if wake {
            self.thin.pool.wake();
        }
        match next {
            Next::Kill => bio.kill(),
            Next::Defer(why) => {
                core.stats.deferred(why);
                self.defer(bio)
            }
            Next::Down => {
                bio.data_mut().epoch.store(epoch, Ordering::SeqCst);
                core.stats.flushed();
                bio.remap_file(&core.data, 0)
            }
        }
    }
}

#[vtable]
impl Target for ThinTarget {
    type PerBio = ThinBio;
    type Context = SharedPools;

    /// `thin <pool dev> <dev id> [<external origin dev>]`, checked in
    /// `thin_ctr`'s order.
    fn ctr(
        ctx: &mut TargetCtx<'_>,
        pools: &SharedPools,
        args: &Args<'_>,
    ) -> Result<Self, CtrError> {
        if args.len() != 2 && args.len() != 3 {
            return Err(CtrError::inval(msg::INVALID_ARGUMENT_COUNT));
        }
        let pool_path = args
            .get_cstr(0)
            .ok_or(CtrError::inval(msg::INVALID_ARGUMENT_COUNT))?;
        let origin_dev = match args.get_cstr(2) {
            Some(origin) if origin == pool_path => {
                return Err(CtrError::inval(msg::ORIGIN_SAME));
            }
            Some(origin) => Some(ctx.get_device(origin, Mode::READ).map_err(|err| CtrError {
                msg: msg::ORIGIN_DEV,
                err,
            })?),
            None => None,
        };
        // The worker and kcopyd read the origin through the thin's own open.
        let origin = match &origin_dev {
            Some(d) => Some(BdevFile::open(d.dev_t(), false).map_err(|err| CtrError {
                msg: msg::ORIGIN_DEV,
                err,
            })?),
            None => None,
        };
        let origin_size = origin.as_ref().map_or(0, |o| o.nr_sectors());
        let mode = ctx.table_mode();
        let pool_dev = ctx.get_device(pool_path, mode).map_err(|err| CtrError {
            msg: msg::POOL_DEV,
            err,
        })?;
        let dev_id = table_line::read_dev_id(args.get(1).unwrap_or(b""))
            .ok_or(CtrError::inval(msg::DEV_ID))?;
        let pool_md = pool_dev.md_id().ok_or(CtrError::inval(msg::POOL_MD))?;
        let mut table = pools.lock();
        let Some(pool) = table.get_by_md(pool_md) else {
            return Err(CtrError::inval(msg::POOL_OBJECT));
        };
        let fail = |table: &mut super::pool_table::PoolTable, e: CtrError| {
            table.put(&pool);
            Err(e)
        };
        let core = pool.core();
        let discard_enabled = {
            let mut st = core.lock();
            if st.mode() == PoolMode::Fail {
                drop(st);
                return fail(
                    &mut table,
                    CtrError::inval(c"Couldn't open thin device, Pool is in fail mode"),
                );
            }
            if let Err(e) = st.pmd.open_thin_device(dev_id) {
                drop(st);
                return fail(
                    &mut table,
                    CtrError {
                        msg: c"Couldn't open thin internal device",
                        err: errno(e),
                    },
                );
            }
            st.pf.discard_enabled
        };
        let close = |table: &mut super::pool_table::PoolTable, e: CtrError| {
            core.lock().pmd.close_thin_device(dev_id);
            fail(table, e)
        };
        if let Err(err) = ctx.set_max_io_len(u64::from(core.block_size())) {
            return close(&mut table, CtrError { msg: c"Couldn't set max io len", err });
        }
        if pool.suspended() {
            return close(
                &mut table,
                CtrError::inval(c"Unable to activate thin device while pool is suspended"),
            );
        }
        let thin = match Arc::new(
            Thin {
                id: dev_id,
                pool: pool.clone(),
                requeue: core::sync::atomic::AtomicBool::new(false),
                origin,
                origin_size: AtomicU64::new(origin_size),
            },
            GFP_KERNEL,
        ) {
            Ok(t) => t,
            Err(_) => {
                return close(
                    &mut table,
                    CtrError {
                        msg: c"Cannot allocate memory",
                        err: ENOMEM,
                    },
                )
            }
        };
        let md = match ctx.md_handle() {
            Ok(md) => md,
            Err(err) => return close(&mut table, CtrError { msg: c"Cannot allocate memory", err }),
        };
        match pool.add_thin(md.clone()) {
            Ok(true) => {}
            Ok(false) => {
                return close(
                    &mut table,
                    CtrError::inval(c"Unable to activate thin device while pool is suspended"),
                )
            }
            Err(err) => return close(&mut table, CtrError { msg: c"Cannot allocate memory", err }),
        }
        drop(table);
        ctx.set_num_flush_bios(1);
        ctx.set_limit_swap_bios(true);
        ctx.set_flush_supported(true);
        ctx.set_accounts_remapped_io(true);
        if discard_enabled {
            ctx.set_discards(1, true);
        }
        Ok(ThinTarget {
            thin,
            pools: pools.clone(),
            pool_dev,
            origin_dev,
            dev_id,
            md,
        })
    }

    /// C `thin_bio_map`: never sleeps, never does I/O; the lookup shares
    /// the pool's lock with other `map`s (see `pool/mod.rs`).
    fn map<'a>(&self, ti: &TargetRef<'_>, mut bio: MapBio<'a, ThinBio>) -> Mapped<'a> {
        if self.thin.requeue.load(Ordering::SeqCst) {
            return bio.requeue();
        }
        let core = self.thin.pool.core();
        let sector = bio.sector().wrapping_sub(ti.begin());
        bio.set_sector(sector);
        if bio.is_preflush() && bio.size() == 0 && bio.op() == Op::Write && !bio.is_fua() {
            return self.map_flush(bio);
        }
        if bio.op() == Op::Discard || bio.is_preflush() || bio.is_fua() {
            core.stats.deferred(Deferral::Special);
            return self.defer(bio);
        }
        let is_write = match bio.op() {
            Op::Read => false,
            Op::Write => true,
            _ => {
                core.stats.deferred(Deferral::Special);
                return self.defer(bio);
            }
        };
        let bs = u64::from(core.block_size());
        let vblock = sector / bs;
        // Counted before the cell check: see io_epochs.rs. A read may be of
        // a shared block, which only the lookup tells: it is counted among
        // the shared reads too until then.
        let mut wake = false;
        let (epoch, w) = core.io.enter();
        wake |= w;
        let shared_epoch = if is_write {
            0
        } else {
            let (e, w) = core.shared_io.enter();
            wake |= w;
            e
        };
        let uncount = |wake: bool| {
            let w = core.io.exit(epoch) | core.shared_io.exit(shared_epoch);
            if wake || w {
                self.thin.pool.wake();
            }
        };
        if core.prison.maybe_held() {
            let mut p = core.prison.lock();
            if let Some(cell) = p.find(self.thin.id, vblock, vblock + 1) {
                let (mut b, m) = bio.defer();
                b.data_mut().thin = Some(self.thin.clone());
                cell.waiters.push(b);
                drop(p);
                uncount(wake);
                core.stats.deferred(Deferral::Cell);
                return m;
            }
        }
        let found = match core.read_for_map() {
            Some(st) if st.mode() != PoolMode::Fail => {
                Some(st.pmd.find_block_shared(self.thin.id, vblock))
            }
            Some(_) => {
                uncount(wake);
                return bio.kill();
            }
            None => None,
        };
        match found {
            Some(Ok(Some(m))) if !(is_write && m.shared) => {
                let shared_epoch = if m.shared {
                    shared_epoch
                } else {
                    wake |= core.shared_io.exit(shared_epoch);
                    0
                };
                if wake {
                    self.thin.pool.wake();
                }
                let d = bio.data_mut();
                d.epoch.store(epoch, Ordering::SeqCst);
                d.shared_epoch.store(shared_epoch, Ordering::SeqCst);
                core.stats.remapped();
                bio.remap_file(&core.data, m.block * bs + sector % bs)
            }
            // An unprovisioned block of a thin with no origin reads as
            // zeroes: answered here, as the worker would (C defers it).
            // A write racing it is not yet in a cell or mapped, so the
            // read is simply ordered before it.
            Some(Ok(None)) if !is_write && self.thin.origin.is_none() => {
                uncount(wake);
                core.stats.zeroed();
                let (mut b, m) = bio.defer();
                b.zero_fill();
                b.endio(BlkStatus::OK);
                m
            }
            other => {
                uncount(wake);
                core.stats.deferred(match other {
                    None => Deferral::Contended,
                    Some(Err(_)) => Deferral::CacheMiss,
                    Some(Ok(None)) if is_write => Deferral::Provision,
                    Some(Ok(None)) => Deferral::UnmappedRead,
                    Some(Ok(Some(_))) => Deferral::Provision,
                });
                self.defer(bio)
            }
        }
    }

    /// C `thin_endio`: uncount the bio, and hand whole-block overwrites
    /// (and discards whose passdown finished) back to the worker, which
    /// maps the block (or goes on with the discard) before completing them.
    fn end_io<'a>(
        &self,
        _ti: &TargetRef<'_>,
        bio: EndIoBio<'a, ThinBio>,
        status: &mut BlkStatus,
    ) -> Ended<'a> {
        let (epoch, shared_epoch, hook, passdown) = {
            let d = bio.data();
            (
                d.epoch.swap(0, Ordering::SeqCst),
                d.shared_epoch.swap(0, Ordering::SeqCst),
                d.hook.swap(false, Ordering::SeqCst),
                d.passdown.swap(false, Ordering::SeqCst),
            )
        };
        let pool = &self.thin.pool;
        // The last bio of an epoch a parked job waits for wakes the worker.
        if pool.core().io.exit(epoch) | pool.core().shared_io.exit(shared_epoch) {
            pool.wake();
        }
        if hook {
            let (mut b, ended) = bio.take();
            b.data_mut().ok = status.is_ok();
            pool.core().overwrite_done.lock().push(b);
            pool.wake();
            return ended;
        }
        if passdown {
            // The data device's discards are done (their errors do not
            // matter, as in C `passdown_endio`).
            let (b, ended) = bio.take();
            pool.core().passdown_done.lock().push(b);
            pool.wake();
            return ended;
        }
        bio.done()
    }

    /// C `thin_status`.
    fn status(
        &self,
        _ti: &TargetRef<'_>,
        kind: StatusType,
        _flags: StatusFlags,
        out: &mut StatusWriter<'_>,
    ) {
        let core = self.thin.pool.core();
        match kind {
            StatusType::Info => {
                let mut st = core.lock();
                if st.mode() == PoolMode::Fail {
                    let _ = out.write_str("Fail");
                    return;
                }
                let bs = u64::from(core.block_size());
                let mapped = match st.pmd.mapped_count(self.dev_id) {
                    Ok(m) => m,
                    Err(_) => {
                        let _ = out.write_str("Error");
                        return;
                    }
                };
                let _ = write!(out, "{} ", mapped * bs);
                match st.pmd.highest_mapped_block(self.dev_id) {
                    Ok(Some(h)) => {
                        let _ = write!(out, "{}", (h + 1) * bs - 1);
                    }
                    Ok(None) => {
                        let _ = out.write_str("-");
                    }
                    Err(_) => {
                        let _ = out.write_str("Error");
                    }
                }
            }
            StatusType::Table => {
                if core.lock().mode() == PoolMode::Fail {
                    let _ = out.write_str("Fail");
                    return;
                }
                let _ = write!(out, "{} {}", self.pool_dev.dev_t(), self.dev_id);
                if let Some(o) = &self.origin_dev {
                    let _ = write!(out, " {}", o.dev_t());
                }
            }
            StatusType::Ima => {}
        }
    }

    /// A noflush suspend hands deferred bios back to device-mapper
    /// (C `thin_presuspend` with `do_noflush_start`).
    fn presuspend(&self, ti: &TargetRef<'_>) {
        if ti.noflush_suspending() {
            self.thin.requeue.store(true, Ordering::SeqCst);
            // Bios waiting for space go through the worker too, which
            // hands this thin's back to device-mapper (C `requeue_io`).
            self.thin.pool.requeue_retries();
            self.thin.pool.wake();
            self.thin.pool.flush_worker();
        }
    }

    /// C `thin_preresume`: the origin may have grown.
    fn preresume(&self, _ti: &TargetRef<'_>) -> Result {
        if let Some(o) = &self.thin.origin {
            self.thin.origin_size.store(o.nr_sectors(), Ordering::SeqCst);
        }
        Ok(())
    }

    /// C `thin_postsuspend` (`do_noflush_stop`).
    fn postsuspend(&self, _ti: &TargetRef<'_>) {
        self.thin.requeue.store(false, Ordering::SeqCst);
    }

    /// C `thin_iterate_devices`: the pool device, whole blocks of it.
    fn iterate_devices(
        &self,
        _ti: &TargetRef<'_>,
        f: &mut dyn FnMut(&DmDev, u64, u64) -> i32,
    ) -> i32 {
        let bs = u64::from(self.thin.pool.core().block_size());
        let len = self.pool_dev.nr_sectors().unwrap_or(0);
        let blocks = len / bs;
        if blocks == 0 {
            return 0;
        }
        f(&self.pool_dev, 0, blocks * bs)
    }

    /// C `thin_io_hints`: discards in whole blocks.
    fn io_hints(&self, _ti: &TargetRef<'_>, limits: &mut QueueLimits<'_>) {
        let core = self.thin.pool.core();
        if core.lock().pf.discard_enabled {
            let bs = core.block_size();
            limits.set_discard_granularity(bs << 9);
            limits.set_max_hw_discard_sectors(bs.saturating_mul(MAX_DISCARD_BLOCKS as u32));
        }
    }
}

impl Drop for ThinTarget {
    /// C `thin_dtr`: close the device and release the pool.
    fn drop(&mut self) {
        let mut table = self.pools.lock();
        let pool = self.thin.pool.clone();
        pool.remove_thin(&self.md);
        pool.core().lock().pmd.close_thin_device(self.dev_id);
        table.put(&pool);
    }
}
