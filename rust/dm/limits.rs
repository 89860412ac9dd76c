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
        // SAFETY: guaranteed by the caller.
        QueueLimits {
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

/// A block device's name as printk's `%pg` prints it (`vdb`, `dm-3`,
/// `nvme0n1p2`), for log lines that must read as C's.
pub struct BdevName {
    buf: [u8; 40],
    len: usize,
}

impl BdevName {
    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }
}

impl core::fmt::Display for BdevName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"))
    }
}

// For the kernel's `pr_*!` macros, which format through their own trait.
impl kernel::fmt::Display for BdevName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl super::DmDev {
    /// `bdev_max_discard_sectors`: the largest discard the device takes, in
    /// sectors; 0 when it takes none. `None` once the handle is revoked.
    pub fn max_discard_sectors(&self) -> Option<u32> {
        self.with_bdev(|bdev| {
            // SAFETY: the block device of a held dm_dev is valid (with_bdev),
            // and so are its request queue and the limits embedded in it.
            unsafe { (*(*bdev.as_ptr()).bd_queue).limits.max_discard_sectors }
        })
    }

    /// The device's name as `%pg` prints it (C `bdev_name`: the disk name,
    /// then for a partition its number, after a `p` when the disk name ends
    /// in a digit). `None` once the handle is revoked.
    pub fn bdev_name(&self) -> Option<BdevName> {
        self.with_bdev(|bdev| {
            let mut name = BdevName { buf: [0; 40], len: 0 };
            // SAFETY: the block device of a held dm_dev is valid (with_bdev),
            // and so is its gendisk; `__bd_flags` is read as the atomic it is.
            let (disk_name, flags) = unsafe {
                let b = bdev.as_ptr();
                (
                    (*(*b).bd_disk).disk_name,
                    core::ptr::addr_of!((*b).__bd_flags.counter).read_volatile(),
                )
            };
            for &c in disk_name.iter().take_while(|&&c| c != 0) {
                name.push(c as u8);
            }
            // BD_PARTNO: the low 8 bits.
            let partno = (flags & 255) as u8;
            if partno != 0 {
                if name.len > 0 && name.buf[name.len - 1].is_ascii_digit() {
                    name.push(b'p');
                }
                if partno >= 100 {
                    name.push(b'0' + partno / 100);
                }
                if partno >= 10 {
                    name.push(b'0' + (partno / 10) % 10);
                }
                name.push(b'0' + partno % 10);
            }
            name
        })
    }
}
