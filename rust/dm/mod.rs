//! Safe device-mapper abstractions: the only home of FFI `unsafe` in dm-thin-rs.
//!
//! The pool and thin targets (`rust/thin/`) implement [`Target`] and are
//! registered with [`TargetType`]; they see bios as [`Bio`], devices as
//! [`DmDev`], arguments as [`Args`] and status buffers as [`StatusWriter`].
//! Every raw pointer the kernel hands over is wrapped here, once, with the
//! invariant that makes its use sound written beside it.

mod args;
mod bio;
mod checksum;
mod device;
mod limits;
mod params;
mod status;
mod target;

pub use args::Args;
pub use bio::{Bio, BlkStatus, Op};
pub use checksum::crc32c;
pub use device::{DevT, DmDev, MappedDevice, Mode};
pub use limits::QueueLimits;
pub use params::{pool_target_name, thin_target_name};
pub use status::{StatusType, StatusWriter};
pub use target::{CtrError, EndIo, MapResult, TableEvent, Target, TargetCtx, TargetType};
