//! A count of operations in flight that the worker can sleep on until it
//! drops to zero: the kernel's `wait_var_event` and `wake_up_var` on the
//! count's address, so nothing polls.

use crate::bindings;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The count; [`Inflight::dec`] wakes the waiter when it reaches zero.
pub struct Inflight {
    n: AtomicUsize,
}

impl Inflight {
    /// Nothing in flight.
    pub const fn new() -> Self {
        Inflight {
            n: AtomicUsize::new(0),
        }
    }

    /// Counts one more. Never sleeps.
    pub fn inc(&self) {
        self.n.fetch_add(1, SeqCst);
    }

    /// Counts one less, waking a [`Inflight::wait_zero`] when it was the
    /// last. Never sleeps (any context).
    pub fn dec(&self) {
        if self.n.fetch_sub(1, SeqCst) == 1 {
            // SAFETY: `wake_up_var` only hashes the address to find the
            // waiters (it never reads the counter), so it is sound even if a
            // waiter already saw zero and the counter is gone.
            unsafe { bindings::dmrs_wake_up_var(self.n.as_ptr().cast()) };
        }
    }

    /// Sleeps until the count is zero.
    pub fn wait_zero(&self) {
        // SAFETY: a live counter, read with READ_ONCE by the helper; `dec`
        // wakes its address.
        unsafe { bindings::dmrs_wait_var_zero(self.n.as_ptr().cast()) };
    }
}
