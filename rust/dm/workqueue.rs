//! The pool's worker: an owned, ordered `WQ_MEM_RECLAIM` workqueue with one
//! work item and one delayed work item (C: `pool->wq`, `pool->worker`,
//! `pool->waker`).
//!
//! The kernel crate has no call that allocates a workqueue, and its work
//! items are reference-counted objects queued by value; a pool wants the C
//! shape instead: one queue it owns, work items embedded in it, cancelled
//! and drained when it goes. [`Worker`] is that: it owns the queue, the two
//! items and an `Arc` of the handler they call; dropping it disables the
//! delayed item (`disable_delayed_work_sync`: unlike a cancel, no item
//! running or queued later can arm it again), then destroys the queue,
//! which runs what is queued first.

use super::noio::noio;
use crate::bindings;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use kernel::alloc::KBox;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// What a [`Worker`]'s items run. Both run on the worker's queue, one at a
/// time (the queue is ordered), in process context (they may sleep), inside
/// a [`super::noio`] scope.
pub trait WorkHandler: Send + Sync + Sized + 'static {
    /// The work item ([`Worker::queue`]).
    fn work(&self, worker: &WorkerRef<'_, Self>);
    /// The delayed work item ([`Worker::queue_delayed_ms`]).
    fn timer(&self, worker: &WorkerRef<'_, Self>);
}

struct Inner<H: WorkHandler> {
    work: Opaque<bindings::work_struct>,
    dwork: Opaque<bindings::delayed_work>,
    // INVARIANT: a workqueue this struct allocated and destroys in drop.
    wq: NonNull<bindings::workqueue_struct>,
    handler: Arc<H>,
    _pin: PhantomPinned,
}

impl<H: WorkHandler> Inner<H> {
    fn queue(&self) -> bool {
        // SAFETY: the queue and the item live until the worker's drop, which
        // destroys the queue (running what is queued) before freeing them.
        unsafe { bindings::dmrs_queue_work(self.wq.as_ptr(), self.work.get()) }
    }

    fn queue_delayed_ms(&self, ms: u32) -> bool {
        // SAFETY: as above; drop disables the item (after which queueing it
        // does nothing) before destroying the queue.
        unsafe { bindings::dmrs_queue_delayed_work_ms(self.wq.as_ptr(), self.dwork.get(), ms) }
    }
}

/// The worker as its own items see it: they may queue either item again.
pub struct WorkerRef<'a, H: WorkHandler> {
    inner: &'a Inner<H>,
}

impl<H: WorkHandler> WorkerRef<'_, H> {
    /// Queues the work item; `false` if already queued.
    pub fn queue(&self) -> bool {
        self.inner.queue()
    }

    /// Queues the delayed item to run in `ms` milliseconds; `false` if
    /// already queued or disabled.
    pub fn queue_delayed_ms(&self, ms: u32) -> bool {
        self.inner.queue_delayed_ms(ms)
    }
}

/// An owned ordered workqueue with its work items; see the module docs.
pub struct Worker<H: WorkHandler> {
    inner: Pin<KBox<Inner<H>>>,
}

// SAFETY: queueing and cancelling are thread-safe workqueue operations, and
// the handler is `Send + Sync`.
unsafe impl<H: WorkHandler> Send for Worker<H> {}
// SAFETY: as above; every method takes `&self` and calls thread-safe C.
unsafe impl<H: WorkHandler> Sync for Worker<H> {}

unsafe extern "C" fn work_fn<H: WorkHandler>(w: *mut bindings::work_struct) {
    let off = core::mem::offset_of!(Inner<H>, work);
    // SAFETY: `w` is the `work` field of a pinned, live `Inner<H>` (only
    // queued by it); the queue is destroyed before the Inner is freed.
    let inner = unsafe { &*w.cast::<u8>().sub(off).cast::<Inner<H>>() };
    noio(|| inner.handler.work(&WorkerRef { inner }));
}

unsafe extern "C" fn timer_fn<H: WorkHandler>(w: *mut bindings::work_struct) {
    let off = core::mem::offset_of!(Inner<H>, dwork) + core::mem::offset_of!(bindings::delayed_work, work);
    // SAFETY: `w` is the work of the `dwork` field of a live `Inner<H>`, as
    // for `work_fn`.
    let inner = unsafe { &*w.cast::<u8>().sub(off).cast::<Inner<H>>() };
    noio(|| inner.handler.timer(&WorkerRef { inner }));
}

impl<H: WorkHandler> Worker<H> {
    /// Allocates an ordered `WQ_MEM_RECLAIM` queue named `name` (as the C
    /// pool's `alloc_ordered_workqueue`) whose items call `handler`. Sleeps.
    pub fn new(name: &CStr, handler: Arc<H>) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; the workqueue copies it.
        let wq = unsafe { bindings::dmrs_alloc_ordered_workqueue(name.as_ptr().cast()) };
        let wq = NonNull::new(wq).ok_or(ENOMEM)?;
        let b = KBox::new(
            Inner {
                work: Opaque::uninit(),
                dwork: Opaque::uninit(),
                wq,
                handler,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        );
        let b = match b {
            Ok(b) => KBox::into_pin(b),
            Err(e) => {
                // SAFETY: allocated above, never used.
                unsafe { bindings::destroy_workqueue(wq.as_ptr()) };
                return Err(e.into());
            }
        };
        // SAFETY: the items are pinned in the box and initialised once,
        // before anything can queue them.
        unsafe {
            bindings::dmrs_init_work(b.work.get(), Some(work_fn::<H>));
            bindings::dmrs_init_delayed_work(b.dwork.get(), Some(timer_fn::<H>));
        }
        Ok(Worker { inner: b })
    }

    /// The handler the items call.
    pub fn handler(&self) -> &Arc<H> {
        &self.inner.handler
    }

    /// Queues the work item; `false` if already queued.
    pub fn queue(&self) -> bool {
        self.inner.queue()
    }

    /// Queues the delayed item to run in `ms` milliseconds; `false` if
    /// already queued or disabled.
    pub fn queue_delayed_ms(&self, ms: u32) -> bool {
        self.inner.queue_delayed_ms(ms)
    }

    /// Cancels the delayed item and waits for it if it is running. Sleeps;
    /// not to be called from the worker's own items.
    pub fn cancel_delayed_sync(&self) {
        // SAFETY: an initialised item of a live worker.
        unsafe { bindings::cancel_delayed_work_sync(self.inner.dwork.get()) };
    }

    /// Stops the delayed item for good (`disable_delayed_work_sync`):
    /// cancels it, waits for it if it is running, and makes every later
    /// attempt to queue it fail. Sleeps; not from the worker's own items.
    pub fn disable_delayed_sync(&self) {
        // SAFETY: an initialised item of a live worker.
        unsafe { bindings::disable_delayed_work_sync(self.inner.dwork.get()) };
    }

    /// Waits until everything queued so far has run. Sleeps; not to be
    /// called from the worker's own items.
    pub fn flush(&self) {
        // SAFETY: a live queue.
        unsafe { bindings::dmrs_flush_workqueue(self.inner.wq.as_ptr()) };
    }
}

impl<H: WorkHandler> Drop for Worker<H> {
    fn drop(&mut self) {
        self.disable_delayed_sync();
        // Destroying drains the queue (the work item may re-queue itself; the
        // delayed one can no longer be armed) before the box frees the items.
        // SAFETY: allocated in `new`, destroyed once, here.
        unsafe { bindings::destroy_workqueue(self.inner.wq.as_ptr()) };
    }
}
