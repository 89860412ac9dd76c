//! Copies and zeroing of data blocks through the kernel's `dm-kcopyd`,
//! asynchronously: the caller's completion runs later, in kcopyd's own
//! process context (it may sleep), once per request.

use super::block_io::BdevFile;
use crate::bindings;
use crate::bindings::ffi::{c_int, c_ulong, c_void};
use core::ptr::NonNull;
use kernel::alloc::KBox;
use kernel::prelude::*;

/// The completion of a kcopyd request, told whether it succeeded.
///
/// `Send + 'static`: it runs later on kcopyd's thread, so it may borrow
/// nothing from the submitter's stack frame.
pub trait KcopydDone: Send + Sized + 'static {
    /// The request finished; `ok` is false on any read or write error.
    fn done(this: KBox<Self>, ok: bool);
}

/// A kcopyd client (`dm_kcopyd_client_create`); destroying it waits for
/// every request it submitted.
pub struct KcopydClient {
    // INVARIANT: a client from dm_kcopyd_client_create, destroyed in drop.
    kc: NonNull<bindings::dm_kcopyd_client>,
}

// SAFETY: kcopyd clients are used from any thread; requests are queued
// under kcopyd's own locks.
unsafe impl Send for KcopydClient {}
// SAFETY: as above; every method takes `&self`.
unsafe impl Sync for KcopydClient {}

unsafe extern "C" fn notify<C: KcopydDone>(read_err: c_int, write_err: c_ulong, ctx: *mut c_void) {
    // SAFETY: `ctx` is the `KBox<C>` leaked by `copy`/`zero`, given back
    // exactly once by kcopyd's single completion call.
    let c = unsafe { KBox::from_raw(ctx.cast::<C>()) };
    C::done(c, read_err == 0 && write_err == 0);
}

impl KcopydClient {
    /// Creates a client (unthrottled, as the C pool's). Sleeps.
    pub fn new() -> Result<Self> {
        // SAFETY: a NULL throttle is allowed.
        let kc = unsafe { bindings::dm_kcopyd_client_create(core::ptr::null_mut()) };
        if kc.is_null() || (kc as isize) < 0 && (kc as isize) >= -4095 {
            return Err(ENOMEM);
        }
        // INVARIANT: created just now.
        Ok(KcopydClient {
            // SAFETY: checked non-null above.
            kc: unsafe { NonNull::new_unchecked(kc) },
        })
    }

    /// Copies `count` sectors from `from` at `from_sector` to `to` at
    /// `to_sector`, then calls `done`. The devices must stay open until
    /// then (the caller keeps them in an `Arc` that `done` holds).
    pub fn copy<C: KcopydDone>(
        &self,
        from: &BdevFile,
        from_sector: u64,
        to: &BdevFile,
        to_sector: u64,
        count: u64,
        done: KBox<C>,
    ) {
        let ctx = KBox::into_raw(done).cast::<c_void>();
        // SAFETY: a live client and open devices; `notify::<C>` takes the
        // context back exactly once.
        unsafe {
            bindings::dmrs_kcopyd_copy(
                self.kc.as_ptr(),
                from.bdev().as_ptr(),
                from_sector,
                to.bdev().as_ptr(),
                to_sector,
                count,
                Some(notify::<C>),
                ctx,
            )
        };
    }

    /// Writes zeroes to `count` sectors of `dev` at `sector`, then calls
    /// `done`; as [`KcopydClient::copy`].
    pub fn zero<C: KcopydDone>(&self, dev: &BdevFile, sector: u64, count: u64, done: KBox<C>) {
        let ctx = KBox::into_raw(done).cast::<c_void>();
        // SAFETY: as for `copy`.
        unsafe {
            bindings::dmrs_kcopyd_zero(
                self.kc.as_ptr(),
                dev.bdev().as_ptr(),
                sector,
                count,
                Some(notify::<C>),
                ctx,
            )
        };
    }
}

impl Drop for KcopydClient {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once; waits for its requests.
        unsafe { bindings::dm_kcopyd_client_destroy(self.kc.as_ptr()) };
    }
}
