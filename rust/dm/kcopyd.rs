//! Copies and zeroing of data blocks through the kernel's `dm-kcopyd`,
//! asynchronously: the caller's completion runs later, in kcopyd's own
//! process context (it may sleep), once per request.
//!
//! Devices: each request holds counted references on the devices it reads
//! and writes ([`KcopydRefs`], kept in the completion object until kcopyd
//! gives it back), so they stay open until the copy is done whatever their
//! owners do.
//!
//! Destruction: `dm_kcopyd_client_destroy` waits for every request,
//! completions included, so it must never run inside one of its own
//! completions (it would wait for itself). The owner therefore destroys
//! the client explicitly ([`KcopydClient::destroy`]) on its shutdown path,
//! in process context, while it is still alive, so no completion can be
//! the last holder of the owner: afterwards no completion runs any more.
//! Neither path can deadlock even if misused: [`KcopydClient::destroy`]
//! called from one of the client's own completions does nothing, and a
//! client dropped undestroyed there is left allocated (both logged).

use super::block_io::{BdevFile, BdevRef};
use super::log::dmerr;
use crate::bindings;
use crate::bindings::ffi::{c_int, c_ulong, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::alloc::KBox;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::task::Task;

/// The completion of a kcopyd request, told whether it succeeded.
///
/// `Send + 'static`: it runs later on kcopyd's thread, so it may borrow
/// nothing from the submitter's stack frame. It must not submit to the
/// same client (a submission may wait for kcopyd's reserve, which earlier
/// requests refill once their completions return).
pub trait KcopydDone: Send + Sized + 'static {
    /// Where the layer keeps the request's references while kcopyd runs it.
    fn refs(&mut self) -> &mut KcopydRefs;
    /// The request finished; `ok` is false on any read or write error.
    fn done(this: KBox<Self>, ok: bool);
}

/// What a kcopyd request holds until it completes: counted references on
/// its devices and on the client.
///
/// Made empty by the completion's owner ([`KcopydRefs::new`]), filled by
/// [`KcopydClient::copy`] and [`KcopydClient::zero`], emptied again when
/// the completion is dropped or submitted anew.
pub struct KcopydRefs {
    devs: [Option<BdevRef>; 2],
    client: Option<Arc<Shared>>,
}

impl KcopydRefs {
    /// Nothing held yet.
    pub const fn new() -> Self {
        KcopydRefs {
            devs: [None, None],
            client: None,
        }
    }
}

impl Default for KcopydRefs {
    fn default() -> Self {
        Self::new()
    }
}

/// A client pointer.
struct Kc(NonNull<bindings::dm_kcopyd_client>);

// SAFETY: a kcopyd client may be used and destroyed from any thread.
unsafe impl Send for Kc {}

/// The client's state, shared with its requests in flight.
#[pin_data]
struct Shared {
    // INVARIANT: `Some` holds a client from dm_kcopyd_client_create, not yet
    // destroyed; it is taken out (under the mutex) to destroy it.
    #[pin]
    kc: Mutex<Option<Kc>>,
    /// The task running one of this client's completions, if any (kcopyd
    /// runs a client's completions one at a time, from its one work item).
    in_callback: AtomicPtr<kernel::bindings::task_struct>,
}

/// A kcopyd client (`dm_kcopyd_client_create`); see the module
/// documentation for how it is destroyed.
pub struct KcopydClient {
    shared: Arc<Shared>,
}

unsafe extern "C" fn notify<C: KcopydDone>(read_err: c_int, write_err: c_ulong, ctx: *mut c_void) {
    // SAFETY: `ctx` is the `KBox<C>` leaked by `submit` (for `copy` or
    // `zero`), given back exactly once by kcopyd's single completion call.
    let mut c = unsafe { KBox::from_raw(ctx.cast::<C>()) };
    let client = c.refs().client.take();
    if let Some(s) = &client {
        s.in_callback.store(Task::current_raw(), Ordering::Relaxed);
    }
    C::done(c, read_err == 0 && write_err == 0);
    if let Some(s) = &client {
        s.in_callback.store(core::ptr::null_mut(), Ordering::Relaxed);
    }
}

impl KcopydClient {
    /// Creates a client (unthrottled, as the C pool's). Sleeps.
    pub fn new() -> Result<Self> {
        // SAFETY: a NULL throttle is allowed.
        let kc = unsafe { bindings::dm_kcopyd_client_create(core::ptr::null_mut()) };
        if kc.is_null() || (kc as isize) < 0 && (kc as isize) >= -4095 {
            return Err(ENOMEM);
        }
        // SAFETY: checked non-null above.
        let kc = Kc(unsafe { NonNull::new_unchecked(kc) });
        let init = pin_init!(Shared {
            kc <- new_mutex!(None),
            in_callback: AtomicPtr::new(core::ptr::null_mut()),
        });
        let shared = match Arc::pin_init(init, GFP_KERNEL) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: created above, never used.
                unsafe { bindings::dm_kcopyd_client_destroy(kc.0.as_ptr()) };
                return Err(e);
            }
        };
        // INVARIANT: created just now.
        *shared.kc.lock() = Some(kc);
        Ok(KcopydClient { shared })
    }

    /// Submits a request through `submit` with the client, after filling
    /// `done`'s references; once destroyed, completes `done` at once with
    /// failure, in the caller's context.
    fn submit<C: KcopydDone>(
        &self,
        devs: [Option<BdevRef>; 2],
        mut done: KBox<C>,
        submit: impl FnOnce(NonNull<bindings::dm_kcopyd_client>, *mut c_void),
    ) {
        let guard = self.shared.kc.lock();
        let Some(kc) = guard.as_ref().map(|k| k.0) else {
            drop(guard);
            C::done(done, false);
            return;
        };
        let refs = done.refs();
        refs.devs = devs;
        refs.client = Some(self.shared.clone());
        let ctx = KBox::into_raw(done).cast::<c_void>();
        // The mutex is held across the submission, so `destroy` cannot run
        // between the check above and the request being counted by kcopyd.
        submit(kc, ctx);
        drop(guard);
    }

    /// Copies `count` sectors from `from` at `from_sector` to `to` at
    /// `to_sector`, then calls `done`; both devices are held (counted)
    /// until then. Sleeps.
    pub fn copy<C: KcopydDone>(
        &self,
        from: &BdevFile,
        from_sector: u64,
        to: &BdevFile,
        to_sector: u64,
        count: u64,
        done: KBox<C>,
    ) {
        let devs = [Some(from.counted()), Some(to.counted())];
        self.submit(devs, done, |kc, ctx| {
            // SAFETY: a live client (not destroyed: its mutex is held) and
            // open devices, held by the request until `notify::<C>`, which
            // takes the context back exactly once.
            unsafe {
                bindings::dmrs_kcopyd_copy(
                    kc.as_ptr(),
                    from.bdev().as_ptr(),
                    from_sector,
                    to.bdev().as_ptr(),
                    to_sector,
                    count,
                    Some(notify::<C>),
                    ctx,
                )
            };
        });
    }

    /// Writes zeroes to `count` sectors of `dev` at `sector`, then calls
    /// `done`; as [`KcopydClient::copy`].
    pub fn zero<C: KcopydDone>(&self, dev: &BdevFile, sector: u64, count: u64, done: KBox<C>) {
        self.submit([Some(dev.counted()), None], done, |kc, ctx| {
            // SAFETY: as for `copy`.
            unsafe {
                bindings::dmrs_kcopyd_zero(
                    kc.as_ptr(),
                    dev.bdev().as_ptr(),
                    sector,
                    count,
                    Some(notify::<C>),
                    ctx,
                )
            };
        });
    }

    /// Whether the current task is running one of this client's completions.
    fn in_own_completion(&self) -> bool {
        self.shared.in_callback.load(Ordering::Relaxed) == Task::current_raw()
    }

    /// Waits for every request (their completions included) and destroys
    /// the client; later requests fail at once. Sleeps.
    ///
    /// Called from one of the client's own completions, it would wait for
    /// itself: it then logs and does nothing.
    pub fn destroy(&self) {
        if self.in_own_completion() {
            dmerr!("kcopyd client destroyed in its own completion: not destroyed");
            return;
        }
        let kc = self.shared.kc.lock().take();
        if let Some(kc) = kc {
            // SAFETY: taken out of the state, so destroyed once; no request
            // can be submitted any more; not from one of its own
            // completions (checked above), so the wait ends.
            unsafe { bindings::dm_kcopyd_client_destroy(kc.0.as_ptr()) };
        }
    }
}

impl Drop for KcopydClient {
    fn drop(&mut self) {
        let kc = self.shared.kc.lock().take();
        let Some(kc) = kc else { return };
        if self.in_own_completion() {
            // Destroying would wait for this very completion to return.
            dmerr!("kcopyd client dropped in its own completion: left allocated");
            core::mem::forget(kc);
            return;
        }
        // SAFETY: taken out of the state, so destroyed once; not from one of
        // its own completions (checked above), so the wait ends.
        unsafe { bindings::dm_kcopyd_client_destroy(kc.0.as_ptr()) };
    }
}
