//! Per-block cells (the role of C's `dm-bio-prison-v1`): while the worker
//! provisions, copies or discards a range of a thin's blocks, bios to that
//! range wait in the range's cell and are released when it is done.
//!
//! The prison is a small array under an IRQ-safe spinlock, with room for
//! [`MAX_CELLS`] cells reserved when the pool is made: `map` only appends a
//! bio to an existing cell (no allocation), and only the worker adds and
//! removes cells. When the array is full the worker leaves the bio deferred
//! and retries once cells are released.

use super::thin::ThinBio;
use super::metadata::ThinId;
use crate::dm::BioList;
use kernel::alloc::KVec;
use kernel::prelude::*;

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

/// The cells held now.
pub struct Prison {
    cells: KVec<Cell>,
}

impl Prison {
    /// An empty prison with room for [`MAX_CELLS`] cells. Sleeps.
    pub fn new() -> Result<Self> {
        Ok(Prison {
            cells: KVec::with_capacity(MAX_CELLS, GFP_KERNEL)?,
        })
    }

    /// The cell holding any block of `begin..end` of `thin`.
    pub fn find(&mut self, thin: ThinId, begin: u64, end: u64) -> Option<&mut Cell> {
        self.cells
            .iter_mut()
            .find(|c| c.thin == thin && c.begin < end && begin < c.end)
    }

    /// Whether another cell fits.
    pub fn has_room(&self) -> bool {
        self.cells.len() < self.cells.capacity()
    }

    /// Holds `begin..end` of `thin`; `false` if the prison is full. The
    /// caller checked that no cell overlaps.
    pub fn insert(&mut self, thin: ThinId, begin: u64, end: u64) -> bool {
        if self.cells.len() >= self.cells.capacity() {
            return false;
        }
        let cell = Cell {
            thin,
            begin,
            end,
            waiters: BioList::new(),
        };
        // Within the reserved capacity: does not allocate.
        self.cells.push_within_capacity(cell).is_ok()
    }

    /// Releases the cell of exactly `begin..end` of `thin`, giving back the
    /// bios that waited for it.
    pub fn release(&mut self, thin: ThinId, begin: u64, end: u64) -> BioList<ThinBio> {
        let Some(i) = self
            .cells
            .iter()
            .position(|c| c.thin == thin && c.begin == begin && c.end == end)
        else {
            return BioList::new();
        };
        let last = self.cells.len() - 1;
        self.cells.swap(i, last);
        match self.cells.pop() {
            Some(mut c) => c.waiters.take(),
            None => BioList::new(),
        }
    }
}
