//! The queue limits a target may adjust in `io_hints`.

use crate::bindings;

/// `struct queue_limits`, borrowed mutably during `io_hints`.
pub struct QueueLimits<'a> {
    raw: &'a mut bindings::queue_limits,
}

impl<'a> QueueLimits<'a> {
    /// # Safety
    ///
    /// `raw` must be valid for reads and writes, and unaliased, for `'a`.
    pub(crate) unsafe fn from_raw(raw: *mut bindings::queue_limits) -> Self {
        QueueLimits {
            // SAFETY: valid, unaliased and writable for `'a` (caller).
            raw: unsafe { &mut *raw },
        }
    }

    /// Minimum and optimal I/O sizes, in bytes.
    pub fn io_min(&self) -> u32 {
        self.raw.io_min
    }

    /// Sets the minimum I/O size in bytes.
    pub fn set_io_min(&mut self, bytes: u32) {
        self.raw.io_min = bytes;
    }

    /// Optimal I/O size in bytes.
    pub fn io_opt(&self) -> u32 {
        self.raw.io_opt
    }

    /// Largest I/O in sectors.
    pub fn max_sectors(&self) -> u32 {
        self.raw.max_sectors
    }

    /// Sets the largest I/O in sectors.
    pub fn set_max_sectors(&mut self, sectors: u32) {
        self.raw.max_sectors = sectors;
    }

    /// Sets the optimal I/O size in bytes.
    pub fn set_io_opt(&mut self, bytes: u32) {
        self.raw.io_opt = bytes;
    }

    /// Discard granularity in bytes.
    pub fn discard_granularity(&self) -> u32 {
        self.raw.discard_granularity
    }

    /// Sets the discard granularity in bytes.
    pub fn set_discard_granularity(&mut self, bytes: u32) {
        self.raw.discard_granularity = bytes;
    }

    /// Sets the largest discard the device accepts, in sectors.
    pub fn set_max_hw_discard_sectors(&mut self, sectors: u32) {
        self.raw.max_hw_discard_sectors = sectors;
    }
}
