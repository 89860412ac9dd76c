//! A thin device as its bios and the pool's worker see it (the shared half
//! of C `struct thin_c`), and the per-bio data of the `thin` target.

use super::io_epochs::Ticket;
use super::metadata::ThinId;
use super::pool::Pool;
use crate::dm::{BdevFile, PerBioData};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use kernel::sync::Arc;

/// One active thin device of a pool.
pub struct Thin {
    /// Its id in the pool's metadata.
    pub id: ThinId,
    /// The pool, kept alive while the thin or any of its bios is.
    pub pool: Arc<Pool>,
    /// Deferred bios go back to device-mapper for requeueing (a noflush
    /// suspend is in progress, C `tc->requeue_mode`).
    pub requeue: AtomicBool,
    /// The external origin (read-only), opened by the thin itself so the
    /// worker and kcopyd can read it: unmapped blocks read from it and are
    /// copied from it on first write.
    pub origin: Option<BdevFile>,
    /// The origin's size in sectors, read on resume (C `tc->origin_size`).
    pub origin_size: AtomicU64,
}

/// What the `thin` target keeps beside each bio (C `struct dm_thin_endio_hook`).
#[derive(Default)]
pub struct ThinBio {
    /// Set while the bio waits for the worker (deferred or in a cell); the
    /// worker takes it out before the bio is issued or completed.
    pub thin: Option<Arc<Thin>>,
    /// The in-flight epoch the bio is counted in (0: none); uncounted once,
    /// at its first completion.
    pub epoch: AtomicU8,
    /// A read of a shared block: its epoch among the pool's shared reads
    /// (0: none), which a copy breaking that sharing waits for.
    pub shared_epoch: AtomicU8,
    /// A discard parked until the bios in flight before it complete.
    pub ticket: Option<Ticket>,
    /// The bio overwrites a whole new block: its completion goes to the
    /// worker, which maps the block and then completes the bio.
    pub hook: AtomicBool,
    /// With `hook`: the thin and virtual block of that new mapping.
    pub hook_thin: ThinId,
    /// With `hook`: the virtual block.
    pub hook_block: u64,
    /// With `hook`: whether the write succeeded.
    pub ok: bool,
    /// A discard whose passdown is in flight: its completion goes to the
    /// worker, which carries on with the rest of the discard.
    pub passdown: AtomicBool,
    /// A discard: the next virtual block to unmap.
    pub discard_next: u64,
    /// With `passdown`: the data blocks it covers (kept allocated until it
    /// is done).
    pub passdown_blocks: (u64, u64),
}

/// Dropped in a bio's completion, possibly in interrupt context: its
/// `Arc<Thin>` is never the last reference then, since the thin's target
/// holds one and device-mapper destroys a target only after its bios have
/// completed.
impl PerBioData for ThinBio {}
