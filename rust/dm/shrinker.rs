//! A shrinker (`shrinker_alloc` + `shrinker_register`): memory reclaim asks
//! its owner how much it could give back and to give some back, as
//! dm-bufio's shrinker does for its clean buffers.
//!
//! [`Shrinker`] owns the registration and an `Arc` of its handler: the
//! callbacks reach the handler through the shrinker's `private_data`, and
//! dropping the `Shrinker` calls `shrinker_free`, which returns only once
//! no callback runs or can start, before the `Arc` goes.
//!
//! The callbacks run in reclaim context, possibly inside an allocation
//! made under the handler's own locks: a handler must never block there
//! (try-lock, and report nothing when the lock is taken).

use crate::bindings;
use core::ffi::CStr;
use kernel::ffi::{c_ulong, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// What a [`Shrinker`] calls. Neither call may sleep or wait for a lock.
pub trait ShrinkHandler: Send + Sync + 'static {
    /// Objects [`Self::scan`] could free now (0 when that cannot be told
    /// without blocking).
    fn count(&self) -> usize;
    /// Frees up to `nr` objects; how many went, or `None` when nothing can
    /// be done now without blocking (reclaim then stops asking).
    fn scan(&self, nr: usize) -> Option<usize>;
}

/// A registered shrinker calling `H` (see the module documentation).
pub struct Shrinker<H: ShrinkHandler> {
    // INVARIANT: a shrinker `new` allocated and registered with
    // `private_data` pointing at `*_handler`; freed only in drop.
    ptr: NonNull<bindings::shrinker>,
    _handler: Arc<H>,
}

// SAFETY: the shrinker is only freed (in drop, once); the handler is
// `Send + Sync`.
unsafe impl<H: ShrinkHandler> Send for Shrinker<H> {}
// SAFETY: `&Shrinker` gives no access to anything.
unsafe impl<H: ShrinkHandler> Sync for Shrinker<H> {}

/// The handler of a shrinker `new` registered.
///
/// # Safety
///
/// `s` must be a shrinker made by [`Shrinker::new`] for `H` that is not yet
/// freed (the kernel calls back only until `shrinker_free` returns).
unsafe fn handler<'a, H: ShrinkHandler>(s: *mut bindings::shrinker) -> &'a H {
    // SAFETY: per the contract, `private_data` is `Arc::as_ptr` of the
    // handler the `Shrinker` holds until after `shrinker_free` returned.
    unsafe { &*((*s).private_data as *const H) }
}

unsafe extern "C" fn count_objects<H: ShrinkHandler>(
    s: *mut bindings::shrinker,
    _sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: the kernel calls this only for the registered, live shrinker.
    let h = unsafe { handler::<H>(s) };
    c_ulong::try_from(h.count()).unwrap_or(c_ulong::MAX - 1)
}

unsafe extern "C" fn scan_objects<H: ShrinkHandler>(
    s: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: as in `count_objects`.
    let h = unsafe { handler::<H>(s) };
    // SAFETY: the kernel passes a valid control for the call.
    let nr = unsafe { (*sc).nr_to_scan };
    match h.scan(usize::try_from(nr).unwrap_or(usize::MAX)) {
        Some(n) => c_ulong::try_from(n).unwrap_or(c_ulong::MAX - 1),
        None => bindings::SHRINK_STOP,
    }
}

impl<H: ShrinkHandler> Shrinker<H> {
    /// Registers a shrinker named `dm-thin-rs:<name>` calling `handler`.
    pub fn new(name: &CStr, handler: Arc<H>) -> Result<Self> {
        let private = Arc::as_ptr(&handler) as *mut c_void;
        // SAFETY: `name` is NUL-terminated (the kernel copies it); the callbacks have the
        // kernel's signatures; `private` outlives the registration (see the type's drop).
        let p = unsafe {
            bindings::dmrs_shrinker_create(
                name.as_ptr().cast(),
                Some(count_objects::<H>),
                Some(scan_objects::<H>),
                private,
            )
        };
        let ptr = NonNull::new(p).ok_or(ENOMEM)?;
        Ok(Shrinker { ptr, _handler: handler })
    }
}

impl<H: ShrinkHandler> Drop for Shrinker<H> {
    fn drop(&mut self) {
        // SAFETY: freed once, here; `shrinker_free` waits for running callbacks, so none
        // uses the handler (dropped after this) once it returns.
        unsafe { bindings::dmrs_shrinker_free(self.ptr.as_ptr()) };
    }
}
