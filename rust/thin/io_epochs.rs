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
//! Counting is lock-free: a bio counts itself in the current slot and
//! checks the epoch did not move meanwhile (if it did, it uncounts and
//! tries again).
//!
//! The counts are striped by CPU (`per_cpu.rs`): a slot is two monotonic
//! counts per stripe, bios that entered it and bios that left it, each
//! added to on the CPU the bio is on at that moment (it may enter on one
//! and leave on another). So `map` and `end_io` touch only their CPU's
//! cache lines. A slot is empty when its summed leaves equal its summed
//! enters, the leaves summed *first*: every leave seen belongs to an enter
//! that happened before it, hence before the enters are summed, so it is
//! among the enters seen; equal sums then mean every enter seen has left,
//! and every bio that entered before the check began is among them. Sums
//! and counts wrap (`u32`): only their difference, the bios in flight,
//! matters.
//!
//! The worker keeps `oldest`, the oldest epoch it has not seen empty: an
//! epoch before the current one gets no new bios (an enter that raced the
//! move uncounts itself at once), so once seen empty it stays so, and the
//! worker's checks start from there instead of summing every slot. (A
//! stale `oldest` is only slower, so racing callers could not harm it.)

use super::per_cpu::{this_stripe, STRIPES, Stripe};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};

/// How many epochs may have bios in flight at once (C `DEFERRED_SET_SIZE`).
pub const SLOTS: usize = 64;

/// One stripe's counts: bios that entered and left each slot.
struct Counts {
    entered: [AtomicU32; SLOTS],
    left: [AtomicU32; SLOTS],
}

/// Epoch counters; see the module documentation.
pub struct IoEpochs {
    /// The current epoch's number.
    current: AtomicUsize,
    /// Worker only: the oldest epoch not yet seen empty (see above).
    oldest: AtomicUsize,
    /// Bios in and out, by epoch number modulo [`SLOTS`], per stripe.
    counts: [Stripe<Counts>; STRIPES],
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
            oldest: AtomicUsize::new(0),
            counts: [const {
                Stripe(Counts {
                    entered: [const { AtomicU32::new(0) }; SLOTS],
                    left: [const { AtomicU32::new(0) }; SLOTS],
                })
            }; STRIPES],
            parked: AtomicBool::new(false),
        }
    }

    /// Whether no bio counted in `slot` is in flight (leaves summed first,
    /// see the module documentation).
    fn empty(&self, slot: usize) -> bool {
        let sum = |pick: fn(&Counts) -> &[AtomicU32; SLOTS]| {
            self.counts
                .iter()
                .fold(0u32, |s, c| s.wrapping_add(pick(&c.0)[slot].load(SeqCst)))
        };
        let left = sum(|c| &c.left);
        let entered = sum(|c| &c.entered);
        entered == left
    }

    /// Uncounts one bio of `slot`; whether the worker must run (jobs are
    /// parked and the slot emptied: of the bios leaving it at once, the
    /// last to count itself out sees it empty).
    fn dec(&self, slot: usize) -> bool {
        if slot >= SLOTS {
            return false;
        }
        self.counts[this_stripe()].0.left[slot].fetch_add(1, SeqCst);
        self.parked.load(SeqCst) && self.empty(slot)
    }

    /// Counts one bio in the current epoch. Never sleeps. The `bool` says
    /// whether the worker must be woken (a retry uncounted the last bio of
    /// an epoch a parked job waits for).
    pub fn enter(&self) -> (Epoch, bool) {
        let mut wake = false;
        loop {
            let e = self.current.load(SeqCst);
            let slot = e % SLOTS;
            self.counts[this_stripe()].0.entered[slot].fetch_add(1, SeqCst);
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
        if self.empty(next % SLOTS) {
            let _ = self.current.compare_exchange(e, next, SeqCst, SeqCst);
        }
    }

    /// Worker only: whether every bio counted up to the ticket's epoch has
    /// completed.
    pub fn drained(&self, t: Ticket) -> bool {
        if t.0 == self.current.load(SeqCst) {
            // Bios keep arriving in the ticket's epoch: move on if we can.
            self.advance(t.0);
        }
        let cur = self.current.load(SeqCst);
        // Every bio in flight is counted in the last SLOTS epochs.
        if cur.wrapping_sub(t.0) >= SLOTS {
            return true;
        }
        let first = cur.wrapping_sub(SLOTS - 1);
        let mut e = self.oldest.load(SeqCst);
        if cur.wrapping_sub(e) >= SLOTS {
            e = first;
        }
        // Past epochs seen empty stay empty: `oldest` moves over them.
        while e != cur && self.empty(e % SLOTS) {
            e = e.wrapping_add(1);
        }
        self.oldest.store(e, SeqCst);
        // Every epoch before `e` is empty. The ticket is drained when its
        // epoch is one of them, or is `e` itself and empty now.
        let age = |x: usize| x.wrapping_sub(first);
        age(t.0) < age(e) || (t.0 == e && self.empty(e % SLOTS))
    }

    /// Worker only: whether jobs are parked on tickets (set before the
    /// worker's last look at their tickets in a run, cleared when none is).
    pub fn set_parked(&self, parked: bool) {
        self.parked.store(parked, SeqCst);
    }
}
