//! Target types: registration and the callbacks device-mapper makes.
//!
//! A [`Target`] implementation is the target's per-instance object (what C
//! keeps in `ti->private`). [`TargetType`] registers a `struct target_type`
//! whose function pointers are the generic trampolines (`vtable.rs`); each
//! recovers the instance from `ti->private` and calls the trait method with
//! a [`TargetRef`] for `ti`. Optional callbacks a target does not implement
//! are left unset (`#[vtable]`), so device-mapper sees exactly what C would.
//!
//! Lifetime of an instance, as the trampolines enforce it:
//! - `ctr`: devices opened through [`TargetCtx`] are recorded by the layer.
//!   On failure they are put before returning; on success the target object
//!   and the record go into `ti->private` together.
//! - `dtr`: `ti->private` is cleared, the target object dropped, then every
//!   [`TableEvent`] and [`DmDev`] handle it created is revoked and the
//!   devices are put, so clones kept elsewhere (a shared pool) never reach a
//!   freed table or device.
//!
//! Context: `ctr`, `dtr`, `message`, `status`, the suspend and resume hooks
//! and `iterate_devices`/`io_hints` run in process context and may sleep;
//! the trampolines run them in a [`noio`](crate::dm::noio) scope
//! (allocations behave as `GFP_NOIO`). `map` and `end_io` must not sleep
//! (`end_io` may run in interrupt context).

mod ctx;
mod vtable;

pub use ctx::{MdHandle, TableEvent, TargetCtx};
pub use vtable::TargetType;

use super::args::Args;
use super::bio::{BlkStatus, EndIoBio, Ended, MapBio, Mapped, PerBioData};
use super::device::{DmDev, MdId};
use super::limits::QueueLimits;
use super::status::{StatusType, StatusWriter};
use crate::bindings;
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::error::{code, Error, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;

/// A constructor failure: the `ti->error` text and the errno returned.
#[derive(Debug, Clone, Copy)]
pub struct CtrError {
    /// Shown by device-mapper in the kernel log (`ti->error`).
    pub msg: &'static CStr,
    /// The error returned to the ioctl.
    pub err: Error,
}

impl CtrError {
    /// An `-EINVAL` failure with `msg`, the common case.
    pub const fn inval(msg: &'static CStr) -> Self {
        CtrError {
            msg,
            err: code::EINVAL,
        }
    }
}

/// The flags a status call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFlags(u32);

impl StatusFlags {
    /// `dmsetup status --noflush`: do not commit or flush anything to answer.
    pub fn noflush(self) -> bool {
        self.0 & bindings::DM_STATUS_NOFLUSH_FLAG != 0
    }
}

/// The `dm_target` a callback is made for, borrowed for the call.
pub struct TargetRef<'a> {
    // INVARIANT: a constructed target, valid for `'a`. Its fields are only
    // read through raw pointers: device-mapper owns the struct.
    ti: NonNull<bindings::dm_target>,
    _p: PhantomData<&'a bindings::dm_target>,
}

impl TargetRef<'_> {
    fn field<F: Copy>(&self, f: impl FnOnce(*const bindings::dm_target) -> *const F) -> F {
        // SAFETY: `ti` is valid (type invariant); `f` only projects a field.
        unsafe { core::ptr::read(f(self.ti.as_ptr())) }
    }

    fn table(&self) -> *mut bindings::dm_table {
        // SAFETY: projection of a field of a valid target.
        self.field(|ti| unsafe { core::ptr::addr_of!((*ti).table) })
    }

    /// First sector of the target in its device.
    pub fn begin(&self) -> u64 {
        // SAFETY: projection of a field of a valid target.
        self.field(|ti| unsafe { core::ptr::addr_of!((*ti).begin) })
    }

    /// Length of the target in sectors (`ti->len`).
    pub fn len(&self) -> u64 {
        // SAFETY: projection of a field of a valid target.
        self.field(|ti| unsafe { core::ptr::addr_of!((*ti).len) })
    }

    /// The mapped device the target's table belongs to.
    pub fn md_id(&self) -> MdId {
        // SAFETY: the table of a live target is valid; dm_table_get_md only
        // reads it.
        MdId::from_raw(unsafe { bindings::dm_table_get_md(self.table()) })
    }

    /// The name of the mapped device (`dm_device_name`), for log lines.
    pub fn device_name(&self) -> &CStr {
        // SAFETY: the mapped device outlives its tables' callbacks.
        let p = unsafe { bindings::dm_device_name(bindings::dm_table_get_md(self.table())) };
        if p.is_null() {
            return c"";
        }
        // SAFETY: a NUL-terminated name owned by the mapped device.
        unsafe { CStr::from_ptr(p.cast()) }
    }

    /// Whether the mapped device is suspended (`dm_suspended`).
    pub fn suspended(&self) -> bool {
        // SAFETY: `ti` is valid.
        unsafe { bindings::dm_suspended(self.ti.as_ptr()) != 0 }
    }

    /// Whether a noflush suspend is in progress (`dm_noflush_suspending`).
    pub fn noflush_suspending(&self) -> bool {
        // SAFETY: `ti` is valid.
        unsafe { bindings::dm_noflush_suspending(self.ti.as_ptr()) != 0 }
    }

    /// Signals a table event for this target's table. Sleeps.
    pub fn table_event(&self) {
        // SAFETY: the table of a live target is valid.
        unsafe { bindings::dm_table_event(self.table()) };
    }
}

/// A device-mapper target instance. Callbacks the kernel makes concurrently
/// (map, end_io, status, message, ...) take `&self`; state they change lives
/// behind the implementation's own locks.
#[vtable]
pub trait Target: Sized + Send + Sync {
    /// Per-bio data device-mapper keeps beside each bio for this target;
    /// dropped when the bio completes, possibly in interrupt context (see
    /// [`PerBioData`]).
    type PerBio: PerBioData;
    /// State shared by every instance of the target type, given at
    /// registration (the C module's globals, e.g. the pool table).
    type Context: Send + Sync;

    /// Builds the target from its table line; `Err` sets `ti->error`. Sleeps.
    fn ctr(
        ctx: &mut TargetCtx<'_>,
        shared: &Self::Context,
        args: &Args<'_>,
    ) -> Result<Self, CtrError>;

    /// Maps a bio. Must not sleep.
    fn map<'a>(&self, ti: &TargetRef<'_>, bio: MapBio<'a, Self::PerBio>) -> Mapped<'a>;

    /// Sees a bio's completion. Must not sleep.
    fn end_io<'a>(
        &self,
        _ti: &TargetRef<'_>,
        _bio: EndIoBio<'a, Self::PerBio>,
        _status: &mut BlkStatus,
    ) -> Ended<'a> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes the status (`dmsetup status`) or table (`dmsetup table`) line.
    fn status(
        &self,
        _ti: &TargetRef<'_>,
        _kind: StatusType,
        _flags: StatusFlags,
        _out: &mut StatusWriter<'_>,
    ) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles `dmsetup message`. Sleeps.
    fn message(&self, _ti: &TargetRef<'_>, _args: &Args<'_>, _out: &mut StatusWriter<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Before a suspend.
    fn presuspend(&self, _ti: &TargetRef<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// A suspend that `presuspend` began was cancelled.
    fn presuspend_undo(&self, _ti: &TargetRef<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// After a suspend, with no I/O in flight.
    fn postsuspend(&self, _ti: &TargetRef<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// Before a resume; an error keeps the device suspended.
    fn preresume(&self, _ti: &TargetRef<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// On resume.
    fn resume(&self, _ti: &TargetRef<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Calls `f(device, start, len)` for each underlying device; stops at and
    /// returns the first non-zero result. Only devices this target opened
    /// are passed on to device-mapper.
    fn iterate_devices(
        &self,
        _ti: &TargetRef<'_>,
        _f: &mut dyn FnMut(&DmDev, u64, u64) -> i32,
    ) -> i32 {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Adjusts the queue limits.
    fn io_hints(&self, _ti: &TargetRef<'_>, _limits: &mut QueueLimits<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}
