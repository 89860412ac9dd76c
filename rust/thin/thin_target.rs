//! The `thin` target: one thin device of a pool.

use super::pool::SharedPools;
use super::table_line::{self, msg};
use crate::dm::{Args, CtrError, DmDev, MapBio, Mapped, Mode, NoIo, Target, TargetCtx, TargetRef};
use kernel::prelude::*;

/// One `thin` table line's target.
///
/// A thin is built on a pool object, found through the pool's mapped
/// device. Until the data path exists the constructor stops after finding
/// the pool, with [`NO_DATA_PATH`].
pub struct ThinTarget {
    _pool_dev: DmDev,
    _origin_dev: Option<DmDev>,
    _dev_id: u64,
}

/// `ti->error` for a thin of a live pool while thins cannot carry bios.
pub const NO_DATA_PATH: &core::ffi::CStr = c"Thin devices cannot be activated yet: no data path";

impl ThinTarget {
    /// `DM_TARGET_PASSES_CRYPTO`, as the C thin target.
    pub const FEATURES: u64 = crate::bindings::DM_TARGET_PASSES_CRYPTO as u64;
}

#[vtable]
impl Target for ThinTarget {
    type PerBio = ();
    type Context = SharedPools;

    /// `thin <pool dev> <dev id> [<external origin dev>]`, checked in
    /// `thin_ctr`'s order.
    fn ctr(
        ctx: &mut TargetCtx<'_>,
        pools: &SharedPools,
        args: &Args<'_>,
    ) -> Result<Self, CtrError> {
        let _noio = NoIo::enter();
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
        // The data path (map, worker) is not built: release the pool again.
        table.put(&pool);
        let _ = (origin_dev, dev_id);
        Err(CtrError {
            msg: NO_DATA_PATH,
            err: EOPNOTSUPP,
        })
    }

    /// Never reached: the constructor does not succeed yet.
    fn map<'a>(&self, _ti: &TargetRef<'_>, bio: MapBio<'a, ()>) -> Mapped<'a> {
        bio.kill()
    }
}
