//! The `thin` target: one thin device of a pool.

use super::table_line::{self, msg};
use crate::dm::{Args, Bio, CtrError, DmDev, MapResult, Mode, Target, TargetCtx};

/// One `thin` table line's target.
///
/// A thin is built on a pool object; until the pool engine exists (the
/// I/O-path issue) no pool object can be found, so the constructor always
/// stops at "Couldn't find pool object", as C does for a device that is not
/// a pool.
pub struct ThinTarget {
    _pool_dev: DmDev,
    _origin_dev: Option<DmDev>,
    _dev_id: u64,
}

impl ThinTarget {
    /// `DM_TARGET_PASSES_CRYPTO`, as the C thin target.
    pub const FEATURES: u64 = crate::bindings::DM_TARGET_PASSES_CRYPTO as u64;
}

impl Target for ThinTarget {
    type PerBio = ();

    /// `thin <pool dev> <dev id> [<external origin dev>]`, checked in
    /// `thin_ctr`'s order.
    fn ctr(ctx: &mut TargetCtx<'_>, args: &Args<'_>) -> Result<Self, CtrError> {
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
        let _pool_md = pool_dev
            .mapped_device()
            .ok_or(CtrError::inval(msg::POOL_MD))?;
        // `__pool_table_lookup(pool_md)`: no pool object exists before the
        // pool engine lands, so the lookup finds none.
        let _ = (origin_dev, dev_id);
        Err(CtrError::inval(msg::POOL_OBJECT))
    }

    /// Never reached: the constructor cannot succeed without a pool object.
    fn map(&self, bio: Bio) -> MapResult<()> {
        MapResult::Kill(bio)
    }
}
