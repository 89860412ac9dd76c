//! The registered target type ([`TargetType`]) and the generic trampolines
//! its `struct target_type` points to: each recovers the instance from
//! `ti->private` and calls the [`Target`] method.

use super::{MdHandle, StatusFlags, TableEvent, Target, TargetCtx, TargetRef};
use crate::bindings;
use crate::bindings::ffi::{c_char, c_int, c_uint, c_void};
use crate::dm::args::Args;
use crate::dm::bio::{slot, BlkStatus, EndIoBio, MapBio, Slot};
use crate::dm::device::DmDev;
use crate::dm::limits::QueueLimits;
use crate::dm::noio::noio;
use crate::dm::status::{StatusType, StatusWriter};
use core::ffi::CStr;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use kernel::alloc::{KBox, KVec};
use kernel::error::{code, Error};
use kernel::prelude::*;

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
        crate::dm::log::dmerr!("target type dropped while registered: left registered");
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
