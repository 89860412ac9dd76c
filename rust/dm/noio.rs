//! The `GFP_NOIO` allocation scope (`memalloc_noio_save`/`restore`).
//!
//! The kernel crate's allocation flags have no `GFP_NOIO`. A pool's worker,
//! messages and constructor must not let an allocation recurse into reclaim
//! that waits on I/O to the pool's own devices (C allocates with `GFP_NOIO`
//! there), so they run inside a [`NoIo`] scope: every allocation the task
//! makes meanwhile, `GFP_KERNEL` ones included, behaves as `GFP_NOIO`.

use crate::bindings;
use core::marker::PhantomData;

/// A `memalloc_noio` scope of the current task, ended when dropped.
///
/// Not `Send`: the scope belongs to the task that entered it. Scopes nest.
pub struct NoIo {
    flags: u32,
    _not_send: PhantomData<*mut ()>,
}

impl NoIo {
    /// Enters the scope.
    pub fn enter() -> Self {
        // SAFETY: sets a flag of the current task; always allowed.
        let flags = unsafe { bindings::dmrs_memalloc_noio_save() };
        NoIo {
            flags,
            _not_send: PhantomData,
        }
    }
}

impl Drop for NoIo {
    fn drop(&mut self) {
        // SAFETY: restores what `enter` saved, on the same task (not Send).
        unsafe { bindings::dmrs_memalloc_noio_restore(self.flags) };
    }
}
