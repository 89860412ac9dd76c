//! In-flight I/O accounting by epochs (C `pool->all_io_ds`, a
//! `dm_deferred_set`): before the worker removes mappings or moves a block
//! out from under a thin, it waits for every bio already sent to the data
//! device to complete, so no stale write lands in a block that is reused.
//!
//! A bio is counted in the current epoch ([`IoEpochs::enter`]) *before* its
//! thin checks the prison and looks its block up, and uncounted when it
//! completes. The worker puts its cell in the prison first, then
//! [`IoEpochs::drain`]s: it flips the epoch and waits for the old one to
//! empty. A bio counted before the flip is waited for; one counted after it
//! sees the cell and waits in it.
//!
//! Unlike C's deferred set, which queues the waiting job and lets the
//! worker go on, the drain sleeps (the last completion of the old epoch
//! wakes it): the worker waits for bios already on their way to the data
//! device, never for anything that needs the worker.

use crate::dm::Inflight;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Two epoch counters and the current epoch.
pub struct IoEpochs {
    current: AtomicUsize,
    counts: [Inflight; 2],
}

/// The epoch a bio was counted in (1 or 2; 0 in per-bio data means none).
pub type Epoch = u8;

impl IoEpochs {
    /// No I/O in flight.
    pub const fn new() -> Self {
        IoEpochs {
            current: AtomicUsize::new(0),
            counts: [Inflight::new(), Inflight::new()],
        }
    }

    /// Counts one bio in the current epoch. Never sleeps.
    pub fn enter(&self) -> Epoch {
        loop {
            let e = self.current.load(SeqCst) & 1;
            self.counts[e].inc();
            if self.current.load(SeqCst) & 1 == e {
                return e as Epoch + 1;
            }
            // The worker flipped meanwhile: count in the new epoch instead.
            self.counts[e].dec();
        }
    }

    /// Uncounts a bio counted by [`IoEpochs::enter`].
    pub fn exit(&self, e: Epoch) {
        if let Some(c) = self.counts.get(usize::from(e).wrapping_sub(1)) {
            c.dec();
        }
    }

    /// Starts a new epoch and waits until every bio counted in the old one
    /// has completed. Worker only (one drain at a time). Sleeps.
    pub fn drain(&self) {
        let old = self.current.fetch_add(1, SeqCst) & 1;
        self.counts[old].wait_zero();
    }
}
