//! The `thin-pool` target: table line, devices, and (with the I/O path) the
//! pool that owns the metadata and the data device.

use super::table_line::{self, msg, PoolFeatures};
use crate::dm::{
    Args, Bio, CtrError, DmDev, MapResult, Mode, StatusType, StatusWriter, Target, TargetCtx,
};
use core::fmt::Write;

/// `ti->error` while the pool engine (the I/O-path issue) is not built: the
/// one temporary refusal in dm-thin-rs. Everything before it is checked as C
/// checks it.
const ENGINE_NOT_BUILT: &core::ffi::CStr =
    c"dm-thin-rs: pool engine not built yet (table line valid)";

/// One `thin-pool` table line's target: its devices and settings.
///
/// Created by the constructor, dropped by the destructor; immutable between.
pub struct PoolTarget {
    metadata_dev: DmDev,
    data_dev: DmDev,
    block_size: u32,
    low_water_blocks: u64,
    features: PoolFeatures,
}

impl PoolTarget {
    /// `DM_TARGET_SINGLETON | DM_TARGET_ALWAYS_WRITEABLE | DM_TARGET_IMMUTABLE
    /// | DM_TARGET_PASSES_CRYPTO`, as the C pool target.
    pub const FEATURES: u64 = crate::bindings::DM_TARGET_SINGLETON as u64
        | crate::bindings::DM_TARGET_ALWAYS_WRITEABLE as u64
        | crate::bindings::DM_TARGET_IMMUTABLE as u64
        | crate::bindings::DM_TARGET_PASSES_CRYPTO as u64;
}

fn arg<'a>(args: &Args<'a>, i: usize) -> Result<&'a core::ffi::CStr, CtrError> {
    args.get_cstr(i)
        .ok_or(CtrError::inval(msg::INVALID_ARGUMENT_COUNT))
}

impl Target for PoolTarget {
    type PerBio = ();

    /// `thin-pool <metadata dev> <data dev> <block size> <low water mark>
    /// [<#features> <feature>*]`, checked in `pool_ctr`'s order.
    fn ctr(ctx: &mut TargetCtx<'_>, args: &Args<'_>) -> Result<Self, CtrError> {
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
        let pool = PoolTarget {
            metadata_dev,
            data_dev,
            block_size,
            low_water_blocks,
            features,
        };
        // The line is valid and both devices are open; dropping `pool` puts
        // them. The pool engine (metadata open, worker, bio handling) comes
        // with the I/O-path issue.
        drop(pool);
        Err(CtrError::inval(ENGINE_NOT_BUILT))
    }

    /// The pool device passes every bio to the data device (C `pool_map`).
    fn map(&self, mut bio: Bio) -> MapResult<()> {
        let sector = bio.sector();
        bio.remap(&self.data_dev, sector);
        MapResult::Remapped(bio)
    }

    fn status(&self, kind: StatusType, out: &mut StatusWriter<'_>) {
        // Word for word what C `pool_status` emits, trailing blank included.
        if kind == StatusType::Table {
            let nr = self.features.words().count();
            let _ = write!(
                out,
                "{} {} {} {} {} ",
                self.metadata_dev.dev_t(),
                self.data_dev.dev_t(),
                self.block_size,
                self.low_water_blocks,
                nr
            );
            for w in self.features.words() {
                let _ = write!(out, "{} ", w);
            }
        }
    }

    fn iterate_devices(&self, f: &mut dyn FnMut(&DmDev, u64, u64) -> i32) -> i32 {
        f(&self.data_dev, 0, self.data_dev.nr_sectors())
    }
}
