//! The `GFP_NOIO` allocation scope (`memalloc_noio_save`/`restore`).
//!
//! The kernel crate's allocation flags have no `GFP_NOIO`. A pool's worker,
//! messages and constructor must not let an allocation recurse into reclaim
//! that waits on I/O to the pool's own devices (C allocates with `GFP_NOIO`
//! there), so they run inside a [`noio`] scope: every allocation the task
//! makes meanwhile, `GFP_KERNEL` ones included, behaves as `GFP_NOIO`.
//!
//! The scope is a closure, not a guard: it cannot be ended out of order,
//! outlive its task, or be forgotten. The layer enters it itself around
//! every process-context callback of a target ([`super::Target`]) and every
//! item of a [`super::Worker`], so the targets never need to.

use crate::bindings;

/// Runs `f` in a `memalloc_noio` scope of the current task.
///
/// Scopes nest; each ends when its closure returns.
pub fn noio<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sets a flag of the current task; always allowed.
    let flags = unsafe { bindings::dmrs_memalloc_noio_save() };
    let r = f();
    // SAFETY: restores what the save above returned, on the same task, after
    // every scope `f` entered has ended (they are closures too).
    unsafe { bindings::dmrs_memalloc_noio_restore(flags) };
    r
}
