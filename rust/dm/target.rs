//! Target types: registration and the callbacks device-mapper makes.
//!
//! A [`Target`] implementation is the target's per-instance object (what C
//! keeps in `ti->private`). [`TargetType`] registers a `struct target_type`
//! whose function pointers are the generic trampolines below; each recovers
//! the instance from `ti->private` and calls the trait method with a
//! [`TargetRef`] for `ti`. Optional callbacks a target does not implement
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
//! the trampolines run them in a [`noio`] scope (allocations behave as
//! `GFP_NOIO`). `map` and `end_io` must not sleep (`end_io` may run in
//! interrupt context).

use super::args::Args;
use super::bio::{slot, BlkStatus, EndIoBio, Ended, MapBio, Mapped, PerBioData, Slot};
use super::device::{DmDev, MdId, Mode};
use super::limits::QueueLimits;
use super::noio::noio;
use super::status::{StatusType, StatusWriter};
use crate::bindings;
use crate::bindings::ffi::{c_char, c_int, c_uint, c_void};
use core::ffi::CStr;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use kernel::alloc::{KBox, KVec};
use kernel::error::{code, Error, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};

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

/// The target being constructed, for use inside [`Target::ctr`].
pub struct TargetCtx<'a> {
    // INVARIANT: `ti` is the dm_target under construction, valid for `'a`.
    ti: NonNull<bindings::dm_target>,
    devs: KVec<DmDev>,
    events: KVec<TableEvent>,
    mds: KVec<MdHandle>,
    _p: PhantomData<&'a mut bindings::dm_target>,
}

impl TargetCtx<'_> {
    fn ti(&mut self) -> &mut bindings::dm_target {
        // SAFETY: valid and exclusively ours during the constructor.
        unsafe { self.ti.as_mut() }
    }

    /// The target as callbacks see it.
    pub fn target_ref(&self) -> TargetRef<'_> {
        // INVARIANT: valid for the borrow of the context.
        TargetRef {
            ti: self.ti,
            _p: PhantomData,
        }
    }

    /// Opens an underlying device (`dm_get_device`). The layer puts it when
    /// the target is destroyed (or its constructor fails). Sleeps.
    pub fn get_device(&mut self, path: &CStr, mode: Mode) -> Result<DmDev> {
        self.devs.reserve(1, GFP_KERNEL)?;
        // SAFETY: `ti` is the target under construction; the device is
        // recorded below and put by the ctr (on failure) or dtr trampoline.
        let dev = unsafe { DmDev::open(self.ti, path, mode) }?;
        self.devs.push(dev.clone(), GFP_KERNEL)?;
        Ok(dev)
    }

    /// The mode of the table being loaded (`dm_table_get_mode`).
    pub fn table_mode(&mut self) -> Mode {
        let table = self.ti().table;
        // SAFETY: the table of a target under construction is valid.
        Mode(unsafe { bindings::dm_table_get_mode(table) })
    }

    /// A handle that raises table events for this target's table, valid
    /// (and revoked) like the devices.
    pub fn table_event(&mut self) -> Result<TableEvent> {
        let table = NonNull::new(self.ti().table).ok_or(code::EINVAL)?;
        self.events.reserve(1, GFP_KERNEL)?;
        let inner = Arc::pin_init(new_mutex!(Some(TablePtr(table))), GFP_KERNEL)?;
        let ev = TableEvent { inner };
        self.events.push(ev.clone(), GFP_KERNEL)?;
        Ok(ev)
    }

    /// A handle on the mapped device of the table being loaded, for
    /// internal suspend and resume (C `dm_table_get_md` kept in `thin_c`),
    /// revoked like the devices.
    pub fn md_handle(&mut self) -> Result<MdHandle> {
        let table = self.ti().table;
        // SAFETY: the table of a target under construction is valid.
        let md = NonNull::new(unsafe { bindings::dm_table_get_md(table) }).ok_or(code::EINVAL)?;
        self.mds.reserve(1, GFP_KERNEL)?;
        let inner = Arc::pin_init(new_mutex!(Some(MdPtr(md))), GFP_KERNEL)?;
        let h = MdHandle { inner };
        self.mds.push(h.clone(), GFP_KERNEL)?;
        Ok(h)
    }

    /// The mapped device of the table being loaded.
    pub fn md_id(&self) -> MdId {
        self.target_ref().md_id()
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

    /// Revokes and puts everything recorded. Sleeps.
    fn release(
        ti: NonNull<bindings::dm_target>,
        devs: KVec<DmDev>,
        events: KVec<TableEvent>,
        mds: KVec<MdHandle>,
    ) {
        for ev in events.iter() {
            ev.revoke();
        }
        for md in mds.iter() {
            md.revoke();
        }
        for dev in devs.iter() {
            // SAFETY: each device was opened on `ti` by this context and is
            // put once, here, in ctr failure or dtr.
            unsafe { dev.put(ti) };
        }
    }
}

struct TablePtr(NonNull<bindings::dm_table>);

// SAFETY: a table pointer may be used from any thread while the table lives;
// the mutex around it and revocation in dtr bound that.
unsafe impl Send for TablePtr {}

/// Raises device-mapper table events (`dm_table_event`) for the table of the
/// target that created it, e.g. when a pool reaches its low water mark or
/// changes mode. Clones may be kept anywhere: once the table is destroyed
/// the handle is revoked and [`TableEvent::trigger`] does nothing.
#[derive(Clone)]
pub struct TableEvent {
    inner: Arc<Mutex<Option<TablePtr>>>,
}

impl TableEvent {
    /// Signals a table event to userspace (`dmsetup wait`, lvm's monitor);
    /// `false` if the table is gone. Sleeps.
    pub fn trigger(&self) -> bool {
        let guard = self.inner.lock();
        match &*guard {
            Some(t) => {
                // SAFETY: not revoked, so the table is alive; revocation
                // waits for this lock.
                unsafe { bindings::dm_table_event(t.0.as_ptr()) };
                true
            }
            None => false,
        }
    }

    fn revoke(&self) {
        *self.inner.lock() = None;
    }
}

struct MdPtr(NonNull<bindings::mapped_device>);

// SAFETY: a mapped device may be suspended and resumed from any thread
// while it lives; the mutex around it and revocation in dtr bound that.
unsafe impl Send for MdPtr {}

/// The mapped device of the target that created it, for suspending and
/// resuming it from another device's callbacks (a pool quiescing its
/// thins). Clones may be kept anywhere: once the target's table is
/// destroyed the handle is revoked and its calls do nothing.
#[derive(Clone)]
pub struct MdHandle {
    inner: Arc<Mutex<Option<MdPtr>>>,
}

impl MdHandle {
    /// `dm_internal_suspend_noflush`: waits for the device's in-flight I/O
    /// and holds new I/O back. Sleeps; not from the device's own callbacks.
    pub fn internal_suspend_noflush(&self) {
        let guard = self.inner.lock();
        if let Some(md) = &*guard {
            // SAFETY: not revoked, so the table, and its md, are alive;
            // revocation waits for this lock.
            unsafe { bindings::dm_internal_suspend_noflush(md.0.as_ptr()) };
        }
    }

    /// `dm_internal_resume`, undoing one internal suspend. Sleeps.
    pub fn internal_resume(&self) {
        let guard = self.inner.lock();
        if let Some(md) = &*guard {
            // SAFETY: as for `internal_suspend_noflush`.
            unsafe { bindings::dm_internal_resume(md.0.as_ptr()) };
        }
    }

    /// Whether `other` is a clone of this handle.
    pub fn same(&self, other: &MdHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn revoke(&self) {
        *self.inner.lock() = None;
    }
}

/// What `ti->private` points to: the target and what the layer owns for it.
struct Instance<T> {
    target: T,
    devs: KVec<DmDev>,
    events: KVec<TableEvent>,
    mds: KVec<MdHandle>,
}

/// The registered `target_type` and the type's shared context; device-mapper
/// knows only the first field, and the trampolines find the rest from
/// `ti->type`.
#[repr(C)]
struct TypeBox<T: Target> {
    raw: bindings::target_type,
    shared: T::Context,
}

/// A registered target type, unregistered only by [`TargetType::unregister`]
/// at module exit.
///
/// Device-mapper looks a type up by name for every table loaded, and each
/// table of the type holds a reference on the module, not on this object:
/// only once the module is going (no table left) may the type go. So
/// dropping a `TargetType` does not unregister it; a type dropped while
/// registered is left registered and allocated (and logged), never freed
/// under a table.
pub struct TargetType<T: Target> {
    // INVARIANT: `b.raw` is registered with device-mapper from creation until
    // `unregister`, and its heap address never changes while registered;
    // the box is freed only after unregistering.
    b: ManuallyDrop<KBox<TypeBox<T>>>,
}

// The context is `Send + Sync`.
// SAFETY: device-mapper touches the registered type under its own locks; we only unregister it.
unsafe impl<T: Target> Send for TargetType<T> {}
// SAFETY: no method reads or writes through `&self`.
unsafe impl<T: Target> Sync for TargetType<T> {}

impl<T: Target> TargetType<T> {
    /// Registers target type `name` (`dm_register_target`) with the context
    /// its instances share.
    ///
    /// `name` must live as long as the module (a string literal or a module
    /// parameter), which `'static` ensures.
    pub fn register(
        name: &'static CStr,
        version: [u32; 3],
        features: u64,
        module: &'static ThisModule,
        shared: T::Context,
    ) -> Result<Self> {
        let needs_end_io = T::HAS_END_IO || core::mem::needs_drop::<Slot<T::PerBio>>();
        let tt = bindings::target_type {
            features,
            name: name.as_ptr().cast(),
            module: module.as_ptr().cast(),
            version,
            ctr: Some(ctr::<T>),
            dtr: Some(dtr::<T>),
            map: Some(map::<T>),
            end_io: if needs_end_io { Some(end_io::<T>) } else { None },
            presuspend: if T::HAS_PRESUSPEND { Some(presuspend::<T>) } else { None },
            presuspend_undo: if T::HAS_PRESUSPEND_UNDO {
                Some(presuspend_undo::<T>)
            } else {
                None
            },
            postsuspend: if T::HAS_POSTSUSPEND { Some(postsuspend::<T>) } else { None },
            preresume: if T::HAS_PRERESUME { Some(preresume::<T>) } else { None },
            resume: if T::HAS_RESUME { Some(resume::<T>) } else { None },
            status: if T::HAS_STATUS { Some(status::<T>) } else { None },
            message: if T::HAS_MESSAGE { Some(message::<T>) } else { None },
            iterate_devices: if T::HAS_ITERATE_DEVICES {
                Some(iterate_devices::<T>)
            } else {
                None
            },
            io_hints: if T::HAS_IO_HINTS { Some(io_hints::<T>) } else { None },
            ..Default::default()
        };
        let mut b = KBox::new(TypeBox { raw: tt, shared }, GFP_KERNEL)?;
        // SAFETY: `b.raw` is a fully initialised target_type at a stable heap
        // address that stays registered, and allocated, until `unregister`.
        let r = unsafe { bindings::dm_register_target(&mut b.raw) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        // INVARIANT: registered just now.
        Ok(TargetType {
            b: ManuallyDrop::new(b),
        })
    }

    /// Unregisters the type (`dm_unregister_target`) and frees it: only at
    /// module exit (or when the module's init fails), when no table of the
    /// type can be left, since every table holds a reference on the module.
    pub fn unregister(mut self) {
        // SAFETY: registered since creation (type invariant), unregistered
        // once: `self` is consumed, and its drop below does nothing.
        unsafe { bindings::dm_unregister_target(&mut self.b.raw) };
        // SAFETY: unregistered just now, so device-mapper no longer reaches
        // the box; taken once, and `self` is forgotten after.
        drop(unsafe { ManuallyDrop::take(&mut self.b) });
        core::mem::forget(self);
    }
}

impl<T: Target> Drop for TargetType<T> {
    /// Only reached without [`TargetType::unregister`]: tables may still use
    /// the type, so it stays registered and allocated.
    fn drop(&mut self) {
        super::log::dmerr!("target type dropped while registered: left registered");
    }
}

/// # Safety
///
/// `ti` must be a constructed target of type `T` (ctr succeeded, dtr not yet
/// begun), and the result is used only during the current callback.
unsafe fn instance<'a, T: Target>(ti: *mut bindings::dm_target) -> (&'a T, TargetRef<'a>) {
    // SAFETY: ctr stored a `KBox<Instance<T>>` in `private`; dtr has not run.
    let inst = unsafe { &*((*ti).private as *const Instance<T>) };
    // INVARIANT: `ti` is valid for the callback (caller).
    let tref = TargetRef {
        // SAFETY: non-null: device-mapper passes a target.
        ti: unsafe { NonNull::new_unchecked(ti) },
        _p: PhantomData,
    };
    (&inst.target, tref)
}

unsafe extern "C" fn ctr<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    const {
        assert!(core::mem::align_of::<Slot<T::PerBio>>() <= core::mem::align_of::<bindings::bio>());
    }
    let Some(ti) = NonNull::new(ti) else {
        return code::EINVAL.to_errno();
    };
    // `ti->type` is the target_type `TargetType::<T>::register` registered.
    // SAFETY: it is the first field of a live repr(C) `TypeBox<T>`.
    let shared = unsafe { &(*((*ti.as_ptr()).type_ as *const TypeBox<T>)).shared };
    // SAFETY: device-mapper passes `argc` valid strings, alive during ctr.
    let args = unsafe { Args::from_raw(argc, argv) };
    // INVARIANT: `ti` is the target under construction for this call.
    let mut ctx = TargetCtx {
        ti,
        devs: KVec::new(),
        events: KVec::new(),
        mds: KVec::new(),
        _p: PhantomData,
    };
    let size = core::mem::size_of::<Slot<T::PerBio>>();
    // SAFETY: `ti` is valid and ours during ctr.
    unsafe { (*ti.as_ptr()).per_io_data_size = size as c_uint };
    // Allocated first, so that nothing can fail after the target is built.
    let Ok(slot) = KBox::<Instance<T>>::new_uninit(GFP_KERNEL) else {
        // SAFETY: `ti->error` takes a static string.
        unsafe { (*ti.as_ptr()).error = c"Cannot allocate memory".as_ptr().cast_mut().cast() };
        return code::ENOMEM.to_errno();
    };
    let result = noio(|| T::ctr(&mut ctx, shared, &args));
    let TargetCtx {
        devs, events, mds, ..
    } = ctx;
    match result {
        Ok(target) => {
            let b = KBox::write(
                slot,
                Instance {
                    target,
                    devs,
                    events,
                    mds,
                },
            );
            // SAFETY: `ti` is ours during ctr; dtr turns this back into a KBox.
            unsafe { (*ti.as_ptr()).private = KBox::into_raw(b).cast() };
            0
        }
        Err(e) => {
            noio(|| TargetCtx::release(ti, devs, events, mds));
            // SAFETY: `ti->error` takes a static string, as C string literals are.
            unsafe { (*ti.as_ptr()).error = e.msg.as_ptr().cast_mut().cast() };
            e.err.to_errno()
        }
    }
}

unsafe extern "C" fn dtr<T: Target>(ti: *mut bindings::dm_target) {
    let Some(ti) = NonNull::new(ti) else { return };
    // SAFETY: ctr succeeded and stored a `KBox<Instance<T>>`; dtr is called
    // once. `private` is cleared before anything is dropped.
    let inst = unsafe {
        let p = (*ti.as_ptr()).private.cast::<Instance<T>>();
        (*ti.as_ptr()).private = core::ptr::null_mut();
        KBox::from_raw(p)
    };
    let Instance {
        target,
        devs,
        events,
        mds,
    } = KBox::into_inner(inst);
    noio(|| {
        drop(target);
        TargetCtx::release(ti, devs, events, mds);
    });
}

unsafe extern "C" fn map<T: Target>(
    ti: *mut bindings::dm_target,
    bio: *mut bindings::bio,
) -> c_int {
    // SAFETY: a constructed target, for this call.
    let (t, tref) = unsafe { instance::<T>(ti) };
    let Some(raw) = NonNull::new(bio) else {
        return bindings::DM_MAPIO_KILL as c_int;
    };
    // Every bio passes through map once before end_io: its slot is made here.
    // SAFETY: a clone dm passed to this target's map; dm reserved
    // `per_io_data_size` (the slot's size, set in ctr) bytes in front of it,
    // aligned (checked in ctr), uninitialised until now.
    unsafe { slot::<T::PerBio>(raw).write(Slot::new(tref.ti)) };
    // SAFETY: the bio passed to this target's map, its slot initialised.
    let bio = unsafe { MapBio::new(raw, tref.ti) };
    t.map(&tref, bio).into_code() as c_int
}

unsafe extern "C" fn end_io<T: Target>(
    ti: *mut bindings::dm_target,
    bio: *mut bindings::bio,
    error: *mut bindings::blk_status_t,
) -> c_int {
    let (Some(raw), false) = (NonNull::new(bio), error.is_null()) else {
        return bindings::DM_ENDIO_DONE as c_int;
    };
    let code = if T::HAS_END_IO {
        // SAFETY: a constructed target, for this call.
        let (t, tref) = unsafe { instance::<T>(ti) };
        // SAFETY: `error` is a valid in/out status for the call.
        let mut status = BlkStatus(unsafe { *error });
        // SAFETY: a bio this target mapped, completing now.
        let ended = t.end_io(&tref, unsafe { EndIoBio::new(raw) }, &mut status);
        // SAFETY: as above.
        unsafe { *error = status.0 };
        ended.into_code()
    } else {
        bindings::DM_ENDIO_DONE
    };
    if code != bindings::DM_ENDIO_INCOMPLETE {
        // SAFETY: a clone this target mapped; device-mapper frees it after
        // DONE or REQUEUE, so its slot, made in map, is dropped once, now
        // (in whatever context the completion runs: `PerBioData`).
        unsafe { core::ptr::drop_in_place(slot::<T::PerBio>(raw)) };
    }
    code as c_int
}

unsafe extern "C" fn presuspend<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    noio(|| t.presuspend(&r))
}

unsafe extern "C" fn presuspend_undo<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    noio(|| t.presuspend_undo(&r))
}

unsafe extern "C" fn postsuspend<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    noio(|| t.postsuspend(&r))
}

unsafe extern "C" fn preresume<T: Target>(ti: *mut bindings::dm_target) -> c_int {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    match noio(|| t.preresume(&r)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn resume<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    noio(|| t.resume(&r))
}

unsafe extern "C" fn status<T: Target>(
    ti: *mut bindings::dm_target,
    kind: bindings::status_type_t,
    flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    // SAFETY: device-mapper gives `maxlen` writable bytes at `result`.
    let mut out = unsafe { StatusWriter::from_raw(result, maxlen) };
    noio(|| t.status(&r, StatusType::from_raw(kind), StatusFlags(flags), &mut out));
}

unsafe extern "C" fn message<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    // SAFETY: `argc` valid strings for the call.
    let args = unsafe { Args::from_raw(argc, argv) };
    // SAFETY: `maxlen` writable bytes at `result`.
    let mut out = unsafe { StatusWriter::from_raw(result, maxlen) };
    match noio(|| t.message(&r, &args, &mut out)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn iterate_devices<T: Target>(
    ti: *mut bindings::dm_target,
    f: bindings::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    let Some(f) = f else {
        return 0;
    };
    let this = r.ti;
    let mut visit = |dev: &DmDev, start: u64, len: u64| -> i32 {
        match dev.raw_for(this) {
            // SAFETY: device-mapper's callout with its own `data` and a
            // device this target opened, held until its dtr.
            Some((raw, _)) => unsafe { f(this.as_ptr(), raw.as_ptr(), start, len, data) },
            None => 0,
        }
    };
    noio(|| t.iterate_devices(&r, &mut visit))
}

unsafe extern "C" fn io_hints<T: Target>(
    ti: *mut bindings::dm_target,
    limits: *mut bindings::queue_limits,
) {
    // SAFETY: a constructed target, for this call.
    let (t, r) = unsafe { instance::<T>(ti) };
    if limits.is_null() {
        return;
    }
    // SAFETY: device-mapper passes the limits being stacked, ours for the call.
    let mut l = unsafe { QueueLimits::from_raw(limits) };
    noio(|| t.io_hints(&r, &mut l));
}
