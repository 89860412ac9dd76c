//! Counters striped by CPU: what every `map` and `end_io` adds to lives in
//! one cache line per CPU ([`Stripe`]), so CPUs issuing I/O to one pool do
//! not pass a shared line between them on every bio (C's `percpu_counter`
//! idea; kernel 7.3's Rust crate has no per-CPU allocator, so the stripes
//! are an array in the owning structure, [`STRIPES`] of them, and CPUs
//! beyond that share a stripe: still correct, a little less fast).
//!
//! A stripe is chosen by the CPU the caller runs on *now*
//! ([`this_stripe`]); the caller may migrate at once. Nothing depends on
//! staying: a count is only ever added to (never read back from one
//! stripe), and readers sum every stripe. Two monotonic counts (things
//! begun, things ended) make an in-flight count that can be summed
//! without a lock; see `io_epochs.rs` for the order that makes such a sum
//! exact.
//!
//! On the host (tests, `thinmeta`) the stripe moves on at every call, as if
//! each bio migrated between entering and leaving: the worst case for the
//! sums.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many stripes a striped structure keeps.
pub const STRIPES: usize = 8;

/// One CPU's part, alone in its cache lines.
#[repr(align(64))]
pub struct Stripe<T>(pub T);

/// The stripe of the CPU the caller runs on now.
#[cfg(dm_thin_kernel)]
#[inline]
pub fn this_stripe() -> usize {
    kernel::cpu::CpuId::current().as_u32() as usize % STRIPES
}

/// The host's stand-in: a different stripe at every call (see above).
#[cfg(not(dm_thin_kernel))]
pub fn this_stripe() -> usize {
    use core::cell::Cell;
    std::thread_local!(static NEXT: Cell<usize> = const { Cell::new(0) });
    NEXT.with(|n| {
        let s = n.get();
        n.set(s.wrapping_add(1));
        s % STRIPES
    })
}

/// A statistics counter: adds go to the caller's stripe, a read sums them.
/// Relaxed: a figure for an operator or a bench, not for synchronisation.
pub struct Counter([Stripe<AtomicU64>; STRIPES]);

impl Counter {
    /// Zero.
    pub const fn new() -> Self {
        Counter([const { Stripe(AtomicU64::new(0)) }; STRIPES])
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0[this_stripe()].0.fetch_add(n, Relaxed);
    }

    /// The sum of every add so far (adds racing the read may be missed).
    pub fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |s, c| s.wrapping_add(c.0.load(Relaxed)))
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}
