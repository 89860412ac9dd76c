//! Per-block cells (the role of C's `dm-bio-prison-v1`): while the worker
//! provisions, copies or discards a range of a thin's blocks, bios to that
//! range wait in the range's cell and are released when it is done.
//!
//! The prison is a small array under an IRQ-safe spinlock, with room for
//! [`MAX_CELLS`] cells reserved when the pool is made: `map` only appends a
//! bio to an existing cell (no allocation), and only the worker adds and
//! removes cells. When the array is full the worker leaves the bio deferred
//! and retries once cells are released.
//!
//! Beside the lock, an atomic count of the cells held lets `map` skip the
//! lock (a shared, IRQ-disabling cache line on every bio) while no block of
//! the pool is held, the common case for mapped I/O. That is safe for the
//! same reason the locked check is: `map` counts its bio in the pool's
//! in-flight epochs *before* it looks at the prison, and the worker counts
//! a new cell (under the lock, `SeqCst`) *before* it takes the epoch
//! barrier that waits for the bios to the old block; so either `map` sees
//! the cell, or the worker's barrier sees `map`'s bio (see `io_epochs.rs`).

use super::thin::ThinBio;
use super::metadata::ThinId;
use crate::dm::BioList;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::alloc::KVec;
use kernel::prelude::*;
use kernel::sync::{new_spinlock_irq, SpinLockIrq, SpinLockIrqGuard};

/// How many cells may be held at once.
pub const MAX_CELLS: usize = 1024;

/// The blocks `begin..end` of thin `thin`, and the bios waiting for them.
pub struct Cell {
    thin: ThinId,
    begin: u64,
    end: u64,
    /// Bios that arrived for the range while it was held.
    pub waiters: BioList<ThinBio>,
}

/// The prison: the cells under their lock, and how many there are.
#[pin_data]
pub struct Prison {
    #[pin]
    cells: SpinLockIrq<Cells>,
    /// Cells held; changed only under the lock.
    held: AtomicUsize,
}

impl Prison {
    /// An empty prison with room for [`MAX_CELLS`] cells. Sleeps.
    pub fn new() -> Result<impl PinInit<Self>> {
        let cells = Cells {
            cells: KVec::with_capacity(MAX_CELLS, GFP_KERNEL)?,
        };
        Ok(pin_init!(Prison {
            cells <- new_spinlock_irq!(cells),
            held: AtomicUsize::new(0),
        }))
    }

    /// The cells, locked.
    pub fn lock(&self) -> PrisonGuard<'_> {
        PrisonGuard {
            cells: self.cells.lock(),
            held: &self.held,
        }
    }

    /// Whether any cell may be held. `false` is exact for a caller that
    /// counted its bio in the in-flight epochs first (see the module doc).
    pub fn maybe_held(&self) -> bool {
        self.held.load(Ordering::SeqCst) != 0
    }
}

/// The cells held now (under the prison's lock).
pub struct Cells {
    cells: KVec<Cell>,
}

/// The locked prison.
pub struct PrisonGuard<'a> {
    cells: SpinLockIrqGuard<'a, Cells>,
    held: &'a AtomicUsize,
}

impl PrisonGuard<'_> {
    /// The cell holding any block of `begin..end` of `thin`.
    pub fn find(&mut self, thin: ThinId, begin: u64, end: u64) -> Option<&mut Cell> {
        self.cells
            .cells
            .iter_mut()
            .find(|c| c.thin == thin && c.begin < end && begin < c.end)
    }

    /// Whether another cell fits.
    pub fn has_room(&self) -> bool {
        self.cells.cells.len() < self.cells.cells.capacity()
    }

    /// Holds `begin..end` of `thin`; `false` if the prison is full. The
    /// caller checked that no cell overlaps.
    pub fn insert(&mut self, thin: ThinId, begin: u64, end: u64) -> bool {
        if self.cells.cells.len() >= self.cells.cells.capacity() {
            return false;
        }
        let cell = Cell {
            thin,
            begin,
            end,
            waiters: BioList::new(),
        };
        // Within the reserved capacity: does not allocate.
        if self.cells.cells.push_within_capacity(cell).is_err() {
            return false;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Releases the cell of exactly `begin..end` of `thin`, giving back the
    /// bios that waited for it.
    pub fn release(&mut self, thin: ThinId, begin: u64, end: u64) -> BioList<ThinBio> {
        let Some(i) = self
            .cells
            .cells
            .iter()
            .position(|c| c.thin == thin && c.begin == begin && c.end == end)
        else {
            return BioList::new();
        };
        let last = self.cells.cells.len() - 1;
        self.cells.cells.swap(i, last);
        match self.cells.cells.pop() {
            Some(mut c) => {
                self.held.fetch_sub(1, Ordering::SeqCst);
                c.waiters.take()
            }
            None => BioList::new(),
        }
    }
}
