//! Safe device-mapper abstractions: the only home of FFI `unsafe` in dm-thin-rs.
//!
//! The pool and thin targets (`rust/thin/`) implement [`Target`] and are
//! registered with [`TargetType`]; they see bios as [`MapBio`], [`EndIoBio`]
//! and [`Bio`], devices as [`DmDev`] (table-owned) and [`BdevFile`] (their
//! own opens, for metadata I/O), arguments as [`Args`], status buffers as
//! [`StatusWriter`], and run deferred work on a [`Worker`]; callbacks that
//! may sleep run inside a [`noio`] scope. Every raw pointer the kernel hands over is wrapped here, once, with
//! the invariant that makes its use sound written beside it.

mod args;
mod bio;
mod block_io;
mod checksum;
mod device;
mod discard_chain;
mod inflight;
mod io_buf;
mod kcopyd;
mod limits;
mod log;
mod noio;
mod params;
mod rwsem;
mod shrinker;
mod status;
mod target;
mod workqueue;

pub use args::Args;
pub use bio::{Bio, BioList, BlkStatus, EndIoBio, Ended, MapBio, Mapped, Op, PerBioData};
pub use block_io::{BdevFile, SECTOR_SIZE};
pub use checksum::crc32c;
pub use device::{BdevName, DevT, DmDev, MdId, Mode};
pub use discard_chain::DiscardChain;
pub use inflight::Inflight;
pub use io_buf::IoBuf;
pub use kcopyd::{KcopydClient, KcopydDone, KcopydRefs};
pub use limits::QueueLimits;
pub use log::{dm_log, LogLevel};
pub(crate) use log::{dmerr, dmerr_metadata, dminfo, dmwarn, dmwarn_metadata};
pub use noio::noio;
pub use params::{metadata_cache_blocks, no_space_timeout_secs, pool_target_name, thin_target_name};
pub use rwsem::{ReadGuard, RwSem, WriteGuard};
pub use shrinker::{ShrinkHandler, Shrinker};
pub use status::{StatusType, StatusWriter};
pub use target::{
    CtrError, MdHandle, StatusFlags, TableEvent, Target, TargetCtx, TargetRef, TargetType,
};
pub use workqueue::{WorkHandler, Worker, WorkerRef};
