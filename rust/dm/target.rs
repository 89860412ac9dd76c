//! Target types: registration and the callbacks device-mapper makes.
//!
//! A [`Target`] implementation is the target's per-instance object (what C
//! keeps in `ti->private`). [`TargetType`] registers a `struct target_type`
//! whose function pointers are the generic trampolines below; each one
//! recovers `&T` from `ti->private` and calls the trait method.

use super::args::Args;
use super::bio::{Bio, BlkStatus};
use super::device::{DmDev, Mode};
use super::limits::QueueLimits;
use super::status::{StatusType, StatusWriter};
use crate::bindings;
use crate::bindings::ffi::{c_char, c_int, c_uint, c_void};
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::alloc::KBox;
use kernel::error::{code, Error};
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

/// What `map` did with a bio.
pub enum MapResult<P> {
    /// Remapped: device-mapper submits it (`DM_MAPIO_REMAPPED`).
    Remapped(Bio<P>),
    /// The target took it (deferred, submitted or ended): `DM_MAPIO_SUBMITTED`.
    Submitted,
    /// Fail it with an I/O error (`DM_MAPIO_KILL`).
    Kill(Bio<P>),
    /// Ask device-mapper to requeue it (`DM_MAPIO_REQUEUE`).
    Requeue(Bio<P>),
}

/// What `end_io` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndIo {
    /// Let the completion proceed (`DM_ENDIO_DONE`).
    Done,
    /// The target took the bio back and will complete it later.
    Incomplete,
    /// Requeue the bio (`DM_ENDIO_REQUEUE`).
    Requeue,
}

/// A device-mapper target instance. Callbacks the kernel makes concurrently
/// (map, end_io, status, message, ...) take `&self`; state they change lives
/// behind the implementation's own locks.
pub trait Target: Sized + Send + Sync {
    /// Per-bio data device-mapper keeps beside each bio for this target.
    type PerBio: Default + Send;

    /// Builds the target from its table line; `Err` sets `ti->error`.
    fn ctr(ctx: &mut TargetCtx<'_>, args: &Args<'_>) -> Result<Self, CtrError>;

    /// Maps a bio.
    fn map(&self, bio: Bio<Self::PerBio>) -> MapResult<Self::PerBio>;

    /// Sees a bio's completion.
    fn end_io(&self, _bio: &mut Bio<Self::PerBio>, _status: &mut BlkStatus) -> EndIo {
        EndIo::Done
    }

    /// Writes the status (`dmsetup status`) or table (`dmsetup table`) line.
    fn status(&self, _kind: StatusType, _out: &mut StatusWriter<'_>) {}

    /// Handles `dmsetup message`.
    fn message(&self, _args: &Args<'_>, _out: &mut StatusWriter<'_>) -> Result {
        Err(code::EINVAL)
    }

    /// Before a suspend.
    fn presuspend(&self) {}
    /// A suspend that `presuspend` began was cancelled.
    fn presuspend_undo(&self) {}
    /// After a suspend, with no I/O in flight.
    fn postsuspend(&self) {}
    /// Before a resume; an error keeps the device suspended.
    fn preresume(&self) -> Result {
        Ok(())
    }
    /// On resume.
    fn resume(&self) {}

    /// Calls `f(device, start, len)` for each underlying device; stops at and
    /// returns the first non-zero result.
    fn iterate_devices(&self, _f: &mut dyn FnMut(&DmDev, u64, u64) -> i32) -> i32 {
        0
    }

    /// Adjusts the queue limits.
    fn io_hints(&self, _limits: &mut QueueLimits<'_>) {}
}

/// The target being constructed, for use inside [`Target::ctr`].
pub struct TargetCtx<'a> {
    // INVARIANT: `ti` is the dm_target under construction, valid for `'a`.
    ti: NonNull<bindings::dm_target>,
    _p: PhantomData<&'a mut bindings::dm_target>,
}

impl TargetCtx<'_> {
    fn ti(&mut self) -> &mut bindings::dm_target {
        // SAFETY: valid and exclusively ours during the constructor.
        unsafe { self.ti.as_mut() }
    }

    /// Opens an underlying device (`dm_get_device`). The handle must be kept
    /// in the target object, which is what guarantees it does not outlive it.
    pub fn get_device(&mut self, path: &CStr, mode: Mode) -> Result<DmDev> {
        // SAFETY: `ti` is the target under construction; the target object
        // that will own the DmDev is dropped in dtr, before `ti` goes away.
        unsafe { DmDev::open(self.ti, path, mode) }
    }

    /// The mode of the table being loaded (`dm_table_get_mode`).
    pub fn table_mode(&mut self) -> Mode {
        let table = self.ti().table;
        // SAFETY: the table of a target under construction is valid.
        Mode(unsafe { bindings::dm_table_get_mode(table) })
    }

    /// A handle that raises table events for this target's table.
    pub fn table_event(&mut self) -> Result<TableEvent> {
        let table = NonNull::new(self.ti().table).ok_or(code::EINVAL)?;
        // INVARIANT: the table of the target under construction; the caller
        // keeps the handle in the target object.
        Ok(TableEvent { table })
    }

    /// Length of the target in sectors.
    pub fn len(&mut self) -> u64 {
        self.ti().len
    }

    /// Splits bios at `sectors` boundaries (`dm_set_target_max_io_len`).
    pub fn set_max_io_len(&mut self, sectors: u64) -> Result {
        // SAFETY: `ti` is valid.
        let r = unsafe { bindings::dm_set_target_max_io_len(self.ti.as_ptr(), sectors) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::from_errno(r))
        }
    }

    /// Number of flush bios the target wants per flush.
    pub fn set_num_flush_bios(&mut self, n: u32) {
        self.ti().num_flush_bios = n;
    }

    /// Number of discard bios the target wants per discard; with
    /// `supported`, discards reach it even if the devices below lack them.
    pub fn set_discards(&mut self, n: u32, supported: bool) {
        let ti = self.ti();
        ti.num_discard_bios = n;
        ti.set_discards_supported(supported);
        ti.set_max_discard_granularity(supported);
    }

    /// Whether the target handles flushes itself.
    pub fn set_flush_supported(&mut self, v: bool) {
        self.ti().set_flush_supported(v);
    }

    /// Swap bios are limited like the C targets do.
    pub fn set_limit_swap_bios(&mut self, v: bool) {
        self.ti().set_limit_swap_bios(v);
    }

    /// The target accounts remapped I/O itself.
    pub fn set_accounts_remapped_io(&mut self, v: bool) {
        self.ti().set_accounts_remapped_io(v);
    }
}

/// Raises device-mapper table events (`dm_table_event`) for the target that
/// created it, e.g. when a pool reaches its low water mark or changes mode.
///
/// Created in the constructor and kept in the target object, so it never
/// outlives the target's table.
pub struct TableEvent {
    // INVARIANT: `table` is the table of the target that created this handle;
    // the handle lives inside that target object, dropped in dtr before the
    // table is destroyed.
    table: NonNull<bindings::dm_table>,
}

// SAFETY: dm_table_event may be called from any context that may sleep, on
// any thread, while the table lives.
unsafe impl Send for TableEvent {}
// SAFETY: `trigger` takes `&self` and dm_table_event does its own locking.
unsafe impl Sync for TableEvent {}

impl TableEvent {
    /// Signals a table event to userspace (`dmsetup wait`, lvm's monitor).
    pub fn trigger(&self) {
        // SAFETY: the table outlives the handle (type invariant).
        unsafe { bindings::dm_table_event(self.table.as_ptr()) };
    }
}

/// A registered target type; unregistered when dropped.
pub struct TargetType<T: Target> {
    // INVARIANT: `raw` is registered with device-mapper from creation until
    // drop, and its heap address never changes while registered.
    raw: KBox<bindings::target_type>,
    _p: PhantomData<T>,
}

// SAFETY: the registered target_type is only touched by device-mapper under
// its own locks; we only unregister it, from module exit.
unsafe impl<T: Target> Send for TargetType<T> {}
// SAFETY: no method reads or writes through `&self`.
unsafe impl<T: Target> Sync for TargetType<T> {}

impl<T: Target> TargetType<T> {
    /// Registers target type `name` (`dm_register_target`).
    ///
    /// `name` must live as long as the module (a string literal or a module
    /// parameter), which `'static` ensures.
    pub fn register(
        name: &'static CStr,
        version: [u32; 3],
        features: u64,
        module: &'static ThisModule,
    ) -> Result<Self> {
        let tt = bindings::target_type {
            features,
            name: name.as_ptr().cast(),
            module: module.as_ptr().cast(),
            version,
            ctr: Some(ctr::<T>),
            dtr: Some(dtr::<T>),
            map: Some(map::<T>),
            end_io: Some(end_io::<T>),
            presuspend: Some(presuspend::<T>),
            presuspend_undo: Some(presuspend_undo::<T>),
            postsuspend: Some(postsuspend::<T>),
            preresume: Some(preresume::<T>),
            resume: Some(resume::<T>),
            status: Some(status::<T>),
            message: Some(message::<T>),
            iterate_devices: Some(iterate_devices::<T>),
            io_hints: Some(io_hints::<T>),
            ..Default::default()
        };
        let mut raw = KBox::new(tt, GFP_KERNEL)?;
        // SAFETY: `raw` is a fully initialised target_type at a stable heap
        // address that stays registered until `drop`.
        let r = unsafe { bindings::dm_register_target(&mut *raw) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        // INVARIANT: registered just now.
        Ok(TargetType {
            raw,
            _p: PhantomData,
        })
    }
}

impl<T: Target> Drop for TargetType<T> {
    fn drop(&mut self) {
        // SAFETY: registered since creation (type invariant); dm refuses to
        // unload a module whose targets are in use, so none is live.
        unsafe { bindings::dm_unregister_target(&mut *self.raw) };
    }
}

/// # Safety
///
/// `ti` must be a constructed target of type `T` (ctr succeeded).
unsafe fn target<'a, T: Target>(ti: *mut bindings::dm_target) -> &'a T {
    // SAFETY: ctr stored a `KBox<T>` in `private`; dtr has not run yet.
    unsafe { &*((*ti).private as *const T) }
}

unsafe extern "C" fn ctr<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    let Some(ti) = NonNull::new(ti) else {
        return code::EINVAL.to_errno();
    };
    // SAFETY: device-mapper passes `argc` valid strings, alive during ctr.
    let args = unsafe { Args::from_raw(argc, argv) };
    // INVARIANT: `ti` is the target under construction for this call.
    let mut ctx = TargetCtx {
        ti,
        _p: PhantomData,
    };
    let size = core::mem::size_of::<T::PerBio>();
    // SAFETY: `ti` is valid and ours during ctr.
    unsafe { (*ti.as_ptr()).per_io_data_size = size as c_uint };
    let result = T::ctr(&mut ctx, &args).and_then(|t| {
        KBox::new(t, GFP_KERNEL).map_err(|_| CtrError {
            msg: c"Cannot allocate memory",
            err: code::ENOMEM,
        })
    });
    match result {
        Ok(b) => {
            // SAFETY: `ti` is ours during ctr; dtr turns this back into a KBox.
            unsafe { (*ti.as_ptr()).private = KBox::into_raw(b).cast() };
            0
        }
        Err(e) => {
            // SAFETY: `ti->error` takes a static string, as C string literals are.
            unsafe { (*ti.as_ptr()).error = e.msg.as_ptr().cast_mut().cast() };
            e.err.to_errno()
        }
    }
}

unsafe extern "C" fn dtr<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: ctr succeeded and stored a `KBox<T>`; dtr is called once.
    let b = unsafe { KBox::from_raw((*ti).private.cast::<T>()) };
    drop(b);
}

unsafe extern "C" fn map<T: Target>(
    ti: *mut bindings::dm_target,
    bio: *mut bindings::bio,
) -> c_int {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    let Some(raw) = NonNull::new(bio) else {
        return bindings::DM_MAPIO_KILL as c_int;
    };
    // SAFETY: device-mapper reserved `per_io_data_size` bytes for each bio
    // (set in ctr); we initialise them before wrapping the bio.
    unsafe {
        let data = bindings::dm_per_bio_data(raw.as_ptr(), core::mem::size_of::<T::PerBio>());
        data.cast::<T::PerBio>().write(T::PerBio::default());
    }
    // SAFETY: the bio is handed to the target by map; its per-bio data is
    // initialised just above.
    let bio = unsafe { Bio::from_raw(raw) };
    match t.map(bio) {
        MapResult::Remapped(b) => {
            b.into_raw();
            bindings::DM_MAPIO_REMAPPED as c_int
        }
        MapResult::Submitted => bindings::DM_MAPIO_SUBMITTED as c_int,
        MapResult::Kill(b) => {
            b.into_raw();
            bindings::DM_MAPIO_KILL as c_int
        }
        MapResult::Requeue(b) => {
            b.into_raw();
            bindings::DM_MAPIO_REQUEUE as c_int
        }
    }
}

unsafe extern "C" fn end_io<T: Target>(
    ti: *mut bindings::dm_target,
    bio: *mut bindings::bio,
    error: *mut bindings::blk_status_t,
) -> c_int {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    let (Some(raw), false) = (NonNull::new(bio), error.is_null()) else {
        return bindings::DM_ENDIO_DONE as c_int;
    };
    // SAFETY: a bio this target mapped (so its per-bio data is initialised),
    // borrowed for the call.
    let mut bio = unsafe { Bio::<T::PerBio>::borrowed(raw) };
    // SAFETY: `error` is a valid in/out status for the call.
    let mut status = BlkStatus(unsafe { *error });
    let r = t.end_io(&mut bio, &mut status);
    // SAFETY: as above.
    unsafe { *error = status.0 };
    match r {
        EndIo::Done => bindings::DM_ENDIO_DONE as c_int,
        EndIo::Incomplete => bindings::DM_ENDIO_INCOMPLETE as c_int,
        EndIo::Requeue => bindings::DM_ENDIO_REQUEUE as c_int,
    }
}

unsafe extern "C" fn presuspend<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target.
    unsafe { target::<T>(ti) }.presuspend()
}

unsafe extern "C" fn presuspend_undo<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target.
    unsafe { target::<T>(ti) }.presuspend_undo()
}

unsafe extern "C" fn postsuspend<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target.
    unsafe { target::<T>(ti) }.postsuspend()
}

unsafe extern "C" fn preresume<T: Target>(ti: *mut bindings::dm_target) -> c_int {
    // SAFETY: a constructed target.
    match unsafe { target::<T>(ti) }.preresume() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn resume<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target.
    unsafe { target::<T>(ti) }.resume()
}

unsafe extern "C" fn status<T: Target>(
    ti: *mut bindings::dm_target,
    kind: bindings::status_type_t,
    _flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    // SAFETY: device-mapper gives `maxlen` writable bytes at `result`.
    let mut out = unsafe { StatusWriter::from_raw(result, maxlen) };
    t.status(StatusType::from_raw(kind), &mut out);
}

unsafe extern "C" fn message<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    // SAFETY: `argc` valid strings for the call.
    let args = unsafe { Args::from_raw(argc, argv) };
    // SAFETY: `maxlen` writable bytes at `result`.
    let mut out = unsafe { StatusWriter::from_raw(result, maxlen) };
    match t.message(&args, &mut out) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn iterate_devices<T: Target>(
    ti: *mut bindings::dm_target,
    f: bindings::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    let Some(f) = f else {
        return 0;
    };
    let mut visit = |dev: &DmDev, start: u64, len: u64| -> i32 {
        // SAFETY: calls device-mapper's callout with its own `data` and a
        // device this target holds.
        unsafe { f(ti, dev.as_raw(), start, len, data) }
    };
    t.iterate_devices(&mut visit)
}

unsafe extern "C" fn io_hints<T: Target>(
    ti: *mut bindings::dm_target,
    limits: *mut bindings::queue_limits,
) {
    // SAFETY: a constructed target.
    let t = unsafe { target::<T>(ti) };
    if limits.is_null() {
        return;
    }
    // SAFETY: device-mapper passes the limits being stacked, ours for the call.
    let mut l = unsafe { QueueLimits::from_raw(limits) };
    t.io_hints(&mut l);
}
