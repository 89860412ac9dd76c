//! The `thin-pool` target (C `pool_c` and the `pool_*` callbacks): one table
//! line over a [`Pool`] it finds or creates, binds on resume, and releases
//! when its table goes.

use crate::dm::{dmerr, dminfo, dmwarn};
use super::pool::{errno, Pool, PoolMode, THIN_METADATA_MAX_SECTORS, THIN_METADATA_MAX_SECTORS_WARNING};
use super::pool_table::{PoolKey, SharedPools};
use super::pool_message::pool_message;
use super::table_line::{self, msg, PoolFeatures};
use crate::dm::{
    Args, CtrError, DmDev, MapBio, Mapped, Mode, QueueLimits, StatusFlags, StatusType,
    StatusWriter, TableEvent, Target, TargetCtx, TargetRef,
};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// One `thin-pool` table line's target.
pub struct PoolTarget {
    pool: Arc<Pool>,
    pools: SharedPools,
    metadata_dev: DmDev,
    data_dev: DmDev,
    low_water_blocks: u64,
    /// The features as the table line gave them (`pt->requested_pf`).
    requested: PoolFeatures,
    /// Whether `io_hints` turned discard passdown off because the data
    /// device cannot take the discards (the one way C's `pt->adjusted_pf`
    /// departs from `requested_pf` before the bind).
    passdown_disabled: AtomicBool,
    events: TableEvent,
}

impl PoolTarget {
    /// `DM_TARGET_SINGLETON | DM_TARGET_ALWAYS_WRITEABLE | DM_TARGET_IMMUTABLE
    /// | DM_TARGET_PASSES_CRYPTO`, as the C pool target.
    pub const FEATURES: u64 = crate::bindings::DM_TARGET_SINGLETON as u64
        | crate::bindings::DM_TARGET_ALWAYS_WRITEABLE as u64
        | crate::bindings::DM_TARGET_IMMUTABLE as u64
        | crate::bindings::DM_TARGET_PASSES_CRYPTO as u64;

    /// This target's identity for the pool's binding (its address, stable
    /// once device-mapper holds it).
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// C `pt->adjusted_pf`: the features the pool takes when this table
    /// binds.
    fn adjusted(&self) -> PoolFeatures {
        let mut pf = self.requested;
        if self.passdown_disabled.load(Ordering::Acquire) {
            pf.discard_passdown = false;
        }
        pf
    }

    /// `trim` (beyond C): discards every data block the pool does not use,
    /// while it runs. Refused where C refuses messages; a no-op without
    /// discard passdown. Sleeps until done.
    fn trim_message(&self, args: &Args<'_>) -> Result {
        let core = self.pool.core();
        if args.len() != 1 {
            dmwarn!("Message received with {} arguments instead of 1.", args.len());
            return Err(EINVAL);
        }
        let end = {
            let st = core.lock();
            if st.mode() >= PoolMode::OutOfMetadataSpace {
                dmerr!(
                    "{}: unable to service pool target messages in READ_ONLY or FAIL mode",
                    core.name()
                );
                return Err(EOPNOTSUPP);
            }
            st.pmd.data_dev_size().map_err(errno)?
        };
        core.trim(0, end).map(|_| ())
    }

    /// C `disable_discard_passdown_if_not_supported`: passdown needs a data
    /// device that takes discards of at least a block.
    fn disable_discard_passdown_if_not_supported(&self) {
        if !self.adjusted().discard_passdown {
            return;
        }
        let max = self.data_dev.max_discard_sectors().unwrap_or(0);
        let reason = if max == 0 {
            "discard unsupported"
        } else if max < self.pool.core().block_size() {
            "max discard sectors smaller than a block"
        } else {
            return;
        };
        if let Some(name) = self.data_dev.bdev_name() {
            dmwarn!("Data device ({}) {}: Disabling discard passdown.", name, reason);
        }
        self.passdown_disabled.store(true, Ordering::Release);
    }

    /// C `calc_metadata_threshold`: 4 MiB or a quarter of the device.
    fn metadata_threshold(&self) -> u64 {
        let sectors = self.metadata_dev.nr_sectors().unwrap_or(0);
        let blocks = sectors.min(THIN_METADATA_MAX_SECTORS) / 8;
        (blocks / 4).min(1024)
    }

    /// C `maybe_resize_data_dev` and `maybe_resize_metadata_dev`; whether
    /// a commit is due.
    fn maybe_resize(&self, ti: &TargetRef<'_>) -> Result<bool> {
        let core = self.pool.core();
        let name = core.name();
        let mut st = core.lock();
        let mut need_commit = false;

        let data_size = ti.len() / u64::from(core.block_size());
        let sb_data_size = st.pmd.data_dev_size().map_err(|e| {
            dmerr!("{}: failed to retrieve data device size", name);
            super::pool::errno(e)
        })?;
        if data_size < sb_data_size {
            dmerr!(
                "{}: pool target ({} blocks) too small: expected {}",
                name,
                data_size,
                sb_data_size
            );
            return Err(EINVAL);
        } else if data_size > sb_data_size {
            if st.pmd.needs_check() {
                dmerr!("{}: unable to grow the data device until repaired.", name);
                return Ok(false);
            }
            if sb_data_size > 0 {
                dminfo!(
                    "{}: growing the data device from {} to {} blocks",
                    name,
                    sb_data_size,
                    data_size
                );
            }
            if let Err(e) = st.pmd.resize_data_dev(data_size) {
                st.metadata_operation_failed(name, "dm_pool_resize_data_dev", e);
                return Err(super::pool::errno(e));
            }
            need_commit = true;
        }

        let md_size = match st.pmd.device_mut() {
            Some(d) => crate::pdata::block_device::BlockDevice::nr_blocks(d),
            None => 0,
        };
        let sb_md_size = st.pmd.metadata_dev_size().map_err(|e| {
            dmerr!("{}: failed to retrieve metadata device size", name);
            super::pool::errno(e)
        })?;
        if md_size < sb_md_size {
            dmerr!(
                "{}: metadata device ({} blocks) too small: expected {}",
                name,
                md_size,
                sb_md_size
            );
            return Err(EINVAL);
        } else if md_size > sb_md_size {
            if st.pmd.needs_check() {
                dmerr!("{}: unable to grow the metadata device until repaired.", name);
                return Ok(need_commit);
            }
            warn_if_metadata_device_too_big(&self.metadata_dev);
            dminfo!(
                "{}: growing the metadata device from {} to {} blocks",
                name,
                sb_md_size,
                md_size
            );
            if st.mode() == PoolMode::OutOfMetadataSpace {
                st.set_mode(name, PoolMode::Write);
            }
            if let Err(e) = st.pmd.resize_metadata_dev(md_size) {
                st.metadata_operation_failed(name, "dm_pool_resize_metadata_dev", e);
                return Err(super::pool::errno(e));
            }
            need_commit = true;
        }
        Ok(need_commit)
    }
}

fn arg<'a>(args: &Args<'a>, i: usize) -> Result<&'a core::ffi::CStr, CtrError> {
    args.get_cstr(i)
        .ok_or(CtrError::inval(msg::INVALID_ARGUMENT_COUNT))
}

#[vtable]
impl Target for PoolTarget {
    type PerBio = ();
    type Context = SharedPools;

    /// `thin-pool <metadata dev> <data dev> <block size> <low water mark>
    /// [<#features> <feature>*]`, checked in `pool_ctr`'s order.
    fn ctr(
        ctx: &mut TargetCtx<'_>,
        pools: &SharedPools,
        args: &Args<'_>,
    ) -> Result<Self, CtrError> {
        let mut table = pools.lock();
        if args.len() < 4 {
            return Err(CtrError::inval(msg::INVALID_ARGUMENT_COUNT));
        }
        let (meta_path, data_path) = (arg(args, 0)?, arg(args, 1)?);
        if meta_path == data_path {
            return Err(CtrError::inval(msg::SAME_DEVICES));
        }
        let features =
            table_line::parse_pool_features(args.iter().skip(4)).map_err(CtrError::inval)?;
        let meta_mode = if features.read_only {
            Mode::READ
        } else {
            Mode::READ_WRITE
        };
        let metadata_dev = ctx
            .get_device(meta_path, meta_mode)
            .map_err(|err| CtrError {
                msg: msg::METADATA_DEV,
                err,
            })?;
        warn_if_metadata_device_too_big(&metadata_dev);
        let data_dev = ctx
            .get_device(data_path, Mode::READ_WRITE)
            .map_err(|err| CtrError {
                msg: msg::DATA_DEV,
                err,
            })?;
        let block_size =
            table_line::parse_block_size(args.get(2).unwrap_or(b"")).map_err(CtrError::inval)?;
        let low_water_blocks =
            table_line::parse_low_water(args.get(3).unwrap_or(b"")).map_err(CtrError::inval)?;
        let events = ctx.table_event().map_err(|err| CtrError {
            msg: c"Cannot allocate memory",
            err,
        })?;
        let tref = ctx.target_ref();
        let key = PoolKey {
            md: tref.md_id(),
            name: tref.device_name(),
            metadata_dev: metadata_dev.dev_t(),
            data_dev: data_dev.dev_t(),
            block_size,
            read_only: features.read_only,
        };
        let found = table.find_or_create(&key);
        drop(tref);
        let (pool, created) = found.map_err(|(msg, err)| CtrError { msg, err })?;
        let target = PoolTarget {
            pool,
            pools: pools.clone(),
            metadata_dev,
            data_dev,
            low_water_blocks,
            requested: features,
            passdown_disabled: AtomicBool::new(false),
            events,
        };
        // From here on, dropping `target` releases the pool (its Drop), which
        // takes the table lock: release ours first on every error path.
        let bound_discard = target.pool.core().lock().pf.discard_enabled;
        if !created && features.discard_enabled != bound_discard {
            drop(table);
            drop(target);
            return Err(CtrError::inval(
                c"Discard support cannot be disabled once enabled",
            ));
        }
        let threshold = target.metadata_threshold();
        if target
            .pool
            .core()
            .lock()
            .pmd
            .register_metadata_threshold(threshold)
            .is_err()
        {
            drop(table);
            drop(target);
            return Err(CtrError::inval(c"Error registering metadata threshold"));
        }
        drop(table);
        ctx.set_num_flush_bios(1);
        ctx.set_limit_swap_bios(true);
        if features.discard_enabled && features.discard_passdown {
            ctx.set_discards(1, true);
        }
        Ok(target)
    }

    /// The pool device passes every bio to the data device (C `pool_map`).
    fn map<'a>(&self, _ti: &TargetRef<'_>, bio: MapBio<'a, ()>) -> Mapped<'a> {
        let sector = bio.sector();
        bio.remap(&self.data_dev, sector)
    }

    /// C `pool_status`, word for word.
    fn status(
        &self,
        ti: &TargetRef<'_>,
        kind: StatusType,
        flags: StatusFlags,
        out: &mut StatusWriter<'_>,
    ) {
        match kind {
            StatusType::Info => {
                let core = self.pool.core();
                let mut st = core.lock();
                if st.mode() == PoolMode::Fail {
                    let _ = out.write_str("Fail");
                    return;
                }
                if !flags.noflush() && !ti.suspended() {
                    let _ = st.commit(core.name());
                }
                if write_info(&st, self.metadata_threshold(), out).is_err() {
                    dmerr!("{}: pool status could not be read", core.name());
                    let _ = out.write_str("Error");
                }
            }
            StatusType::Table => {
                let nr = self.requested.words().count();
                let _ = write!(
                    out,
                    "{} {} {} {} {} ",
                    self.metadata_dev.dev_t(),
                    self.data_dev.dev_t(),
                    self.pool.core().block_size(),
                    self.low_water_blocks,
                    nr
                );
                for w in self.requested.words() {
                    let _ = write!(out, "{} ", w);
                }
            }
            StatusType::Ima => {}
        }
    }

    /// C `pool_message`, and two beyond it (see `trim.rs`): `trim`, and
    /// the discard of what a `delete` freed once its commit is done.
    fn message(&self, _ti: &TargetRef<'_>, args: &Args<'_>, _out: &mut StatusWriter<'_>) -> Result {
        let core = self.pool.core();
        let cmd = args.get(0).unwrap_or(b"");
        if cmd.eq_ignore_ascii_case(b"trim") {
            return self.trim_message(args);
        }
        let (r, freed) = {
            let mut st = core.lock();
            let _ = st.pmd.take_freed_range();
            let r = pool_message(&mut st, core.name(), args);
            (r, st.pmd.take_freed_range())
        };
        // A failed commit may have made the pool read-only, or a delete
        // given space back: the bios waiting for space learn it now.
        if core.settle_retries() {
            self.pool.wake();
        }
        if r.is_ok() && cmd.eq_ignore_ascii_case(b"delete") {
            if let Some((b, e)) = freed {
                // The delete is committed: its blocks may go (an error here
                // leaves them for a later trim, and fails nothing).
                let _ = core.trim(b, e);
            }
            // A large thin was only detached: the worker releases it.
            core.reclaim_due.store(true, Ordering::Release);
            self.pool.wake();
        }
        r
    }

    /// C `pool_presuspend`: no new thins, and the active ones quiesce; a
    /// trim's batch in flight ends first (the trim stops after it).
    fn presuspend(&self, _ti: &TargetRef<'_>) {
        self.pool.set_suspended(true);
        drop(self.pool.core().trim_lock.lock());
        self.pool.suspend_active_thins();
    }

    /// C `pool_presuspend_undo`.
    fn presuspend_undo(&self, _ti: &TargetRef<'_>) {
        self.pool.resume_active_thins();
        self.pool.set_suspended(false);
    }

    fn postsuspend(&self, _ti: &TargetRef<'_>) {
        self.pool.postsuspend();
    }

    /// C `pool_preresume`: take control of the pool, grow it to the
    /// devices' sizes, commit.
    fn preresume(&self, ti: &TargetRef<'_>) -> Result {
        self.pool
            .bind(self.id(), self.adjusted(), self.low_water_blocks, self.events.clone());
        let r = match self.maybe_resize(ti) {
            Ok(true) => {
                let core = self.pool.core();
                let _ = core.lock().commit(core.name());
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        // A pool in fail mode resumes anyway, so queued I/O can be failed.
        match r {
            Err(_) if self.pool.core().lock().mode() == PoolMode::Fail => Ok(()),
            r => r,
        }
    }

    fn resume(&self, _ti: &TargetRef<'_>) {
        self.pool.resume();
    }

    fn iterate_devices(
        &self,
        ti: &TargetRef<'_>,
        f: &mut dyn FnMut(&DmDev, u64, u64) -> i32,
    ) -> i32 {
        f(&self.data_dev, 0, ti.len())
    }

    /// C `pool_io_hints`: I/O sizes follow the block size; discard limits
    /// follow the features.
    fn io_hints(&self, _ti: &TargetRef<'_>, limits: &mut QueueLimits<'_>) {
        let bs = self.pool.core().block_size();
        let is_factor = |a: u32, b: u32| b != 0 && a % b == 0;
        let mut max = limits.max_sectors();
        if max < bs && max > 0 {
            while !is_factor(bs, max) {
                if max & (max - 1) == 0 {
                    max -= 1;
                }
                max = 1 << (31 - max.leading_zeros());
            }
            limits.set_max_sectors(max);
        }
        let io_opt_sectors = limits.io_opt() >> 9;
        if io_opt_sectors < bs || !is_factor(io_opt_sectors, bs) {
            if is_factor(bs, max) {
                limits.set_io_min(max << 9);
            } else {
                limits.set_io_min(bs << 9);
            }
            limits.set_io_opt(bs << 9);
        }
        if self.requested.discard_enabled {
            self.disable_discard_passdown_if_not_supported();
            if !self.adjusted().discard_passdown {
                limits.set_max_hw_discard_sectors(0);
            }
        } else {
            limits.set_discard_granularity(0);
        }
    }
}

/// C `warn_if_metadata_device_too_big`.
fn warn_if_metadata_device_too_big(dev: &DmDev) {
    if dev.nr_sectors().unwrap_or(0) > THIN_METADATA_MAX_SECTORS_WARNING {
        if let Some(name) = dev.bdev_name() {
            dmwarn!(
                "Metadata device {} is larger than {} sectors: excess space will not be used.",
                name,
                THIN_METADATA_MAX_SECTORS
            );
        }
    }
}

fn write_info(
    st: &super::pool::PoolState,
    threshold: u64,
    out: &mut StatusWriter<'_>,
) -> core::result::Result<(), super::metadata::Error> {
    let trans = st.pmd.transaction_id()?;
    let free_md = st.pmd.free_metadata_blocks()?;
    let md_total = st.pmd.metadata_dev_size()?;
    let free_data = st.pmd.free_data_blocks()?;
    let data_total = st.pmd.data_dev_size()?;
    let held = st.pmd.metadata_snap()?;
    let _ = write!(
        out,
        "{} {}/{} {}/{} ",
        trans,
        md_total.saturating_sub(free_md),
        md_total,
        data_total.saturating_sub(free_data),
        data_total
    );
    match held {
        Some(root) if root != 0 => {
            let _ = write!(out, "{} ", root);
        }
        _ => {
            let _ = out.write_str("- ");
        }
    }
    let mode = st.mode();
    let _ = out.write_str(if mode == PoolMode::OutOfDataSpace {
        "out_of_data_space "
    } else if mode.is_read_only() {
        "ro "
    } else {
        "rw "
    });
    let _ = out.write_str(if !st.pf.discard_enabled {
        "ignore_discard "
    } else if st.pf.discard_passdown {
        "discard_passdown "
    } else {
        "no_discard_passdown "
    });
    let _ = out.write_str(if st.pf.error_if_no_space {
        "error_if_no_space "
    } else {
        "queue_if_no_space "
    });
    let _ = out.write_str(if st.pmd.needs_check() { "needs_check " } else { "- " });
    let _ = write!(out, "{} ", threshold);
    Ok(())
}

impl Drop for PoolTarget {
    /// C `pool_dtr`: unbind, and release the pool (the last user shuts it
    /// down, under the table lock).
    fn drop(&mut self) {
        let mut table = self.pools.lock();
        self.pool.unbind(self.id());
        table.put(&self.pool);
    }
}
