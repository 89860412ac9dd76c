//! In-flight I/O accounting by epochs (C's `dm_deferred_set`, as
//! `pool->all_io_ds` and `pool->shared_read_ds`): before the worker removes
//! mappings or moves a block out from under a thin, the bios already sent
//! to the data device must complete, so no stale write lands in a block
//! that is reused and no stale read sees a reused block.
//!
//! A bio is counted in the current epoch ([`IoEpochs::enter`]) *before*
//! its thin checks the prison and looks its block up, and uncounted when
//! it completes ([`IoEpochs::exit`]). The worker puts its cell in the
//! prison first, then takes a [`Ticket`] ([`IoEpochs::barrier`]): the
//! epochs up to the current one must empty before the job goes on. A bio
//! counted before the barrier is waited for; one counted after it sees the
//! cell and waits in it.
//!
//! The worker never sleeps on a ticket. It parks the job with its ticket
//! and goes on with other work, as C's deferred sets queue the job; the
//! completion that empties an epoch while jobs are parked asks for the
//! worker to run again ([`IoEpochs::exit`] returns `true`), and the worker
//! then finds the job's ticket [`drained`](IoEpochs::drained). So a job
//! whose wait depends on the worker itself (a read of an external origin
//! that is a thin of the same pool, a FUA write held for the commit) never
//! deadlocks it, and a slow origin stalls only the jobs that wait for it.
//!
//! Epochs are numbered; [`SLOTS`] counters hold the live ones. The worker
//! starts a new epoch at a barrier only when the slot it reuses is empty,
//! so every bio in flight is counted in one of the last [`SLOTS`] epochs.
//! Counting is lock-free: a bio increments the current slot and checks the
//! epoch did not move meanwhile (if it did, it uncounts and tries again).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// How many epochs may have bios in flight at once (C `DEFERRED_SET_SIZE`).
pub const SLOTS: usize = 64;

/// Epoch counters; see the module documentation.
pub struct IoEpochs {
    /// The current epoch's number.
    current: AtomicUsize,
    /// Bios in flight, by epoch number modulo [`SLOTS`].
    counts: [AtomicUsize; SLOTS],
    /// The worker has jobs parked on tickets: an epoch that empties wakes it.
    parked: AtomicBool,
}

/// The slot a bio was counted in, plus one (0 in per-bio data means none).
pub type Epoch = u8;

/// The last epoch a parked job waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(usize);

impl IoEpochs {
    /// No I/O in flight.
    pub const fn new() -> Self {
        IoEpochs {
            current: AtomicUsize::new(0),
            counts: [const { AtomicUsize::new(0) }; SLOTS],
            parked: AtomicBool::new(false),
        }
    }

    /// Uncounts one bio of `slot`; whether the worker must run (the slot
    /// emptied while jobs are parked).
    fn dec(&self, slot: usize) -> bool {
        match self.counts.get(slot) {
            Some(c) => c.fetch_sub(1, SeqCst) == 1 && self.parked.load(SeqCst),
            None => false,
        }
    }

    /// Counts one bio in the current epoch. Never sleeps. The `bool` says
    /// whether the worker must be woken (a retry uncounted the last bio of
    /// an epoch a parked job waits for).
    pub fn enter(&self) -> (Epoch, bool) {
        let mut wake = false;
        loop {
            let e = self.current.load(SeqCst);
            let slot = e % SLOTS;
            self.counts[slot].fetch_add(1, SeqCst);
            if self.current.load(SeqCst) == e {
                return (slot as Epoch + 1, wake);
            }
            // The worker started a new epoch meanwhile: count in it instead.
            wake |= self.dec(slot);
        }
    }

    /// Uncounts a bio counted by [`IoEpochs::enter`]. Never sleeps (any
    /// context). Returns whether the worker must be woken.
    #[must_use]
    pub fn exit(&self, e: Epoch) -> bool {
        match usize::from(e).checked_sub(1) {
            Some(slot) => self.dec(slot),
            None => false,
        }
    }

    /// Worker only: a ticket for every bio counted so far, or `None` when
    /// none is in flight (the job goes on at once). A new epoch starts
    /// where it can, so bios counted from now on do not lengthen the wait.
    pub fn barrier(&self) -> Option<Ticket> {
        let e = self.current.load(SeqCst);
        let t = Ticket(e);
        if self.drained(t) {
            return None;
        }
        self.advance(e);
        Some(t)
    }

    /// Worker only: starts epoch `e + 1` if its slot is empty.
    fn advance(&self, e: usize) {
        let next = e.wrapping_add(1);
        if self.counts[next % SLOTS].load(SeqCst) == 0 {
            let _ = self.current.compare_exchange(e, next, SeqCst, SeqCst);
        }
    }

    /// Whether every bio counted up to the ticket's epoch has completed.
    pub fn drained(&self, t: Ticket) -> bool {
        let cur = self.current.load(SeqCst);
        if t.0 == cur {
            // Bios keep arriving in the ticket's epoch: move on if we can.
            self.advance(cur);
        }
        // Every bio in flight is counted in the last SLOTS epochs.
        let age = cur.wrapping_sub(t.0);
        if age >= SLOTS {
            return true;
        }
        (0..SLOTS - age).all(|back| {
            let epoch = t.0.wrapping_sub(back);
            self.counts[epoch % SLOTS].load(SeqCst) == 0
        })
    }

    /// Worker only: whether jobs are parked on tickets (set before the
    /// worker's last look at their tickets in a run, cleared when none is).
    pub fn set_parked(&self, parked: bool) {
        self.parked.store(parked, SeqCst);
    }
}
