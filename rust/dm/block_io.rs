//! Synchronous block I/O on a device the caller opened itself: what the
//! pool's metadata block manager needs (the role dm-bufio plays under the
//! C `dm-block-manager`).
//!
//! A [`BdevFile`] is a non-exclusive open of a block device by number
//! (`bdev_file_open_by_dev`; device-mapper holds the exclusive claim
//! through the table), so a pool that outlives any one table keeps its
//! devices open by itself. Every call here sleeps and allocates its bios
//! with `GFP_NOIO` (from the block layer's mempool: they cannot fail).
//!
//! Buffers are [`IoBuf`]s: memory the layer allocated, which one bio can
//! carry (the bios reach its pages).

use super::device::DevT;
use super::io_buf::IoBuf;
use crate::bindings;
use core::ptr::NonNull;
use kernel::error::{to_result, Error};
use kernel::prelude::*;

/// Bytes per sector.
pub const SECTOR_SIZE: u64 = 512;

/// A block device opened by number; closed when dropped, synchronously
/// (`__fput_sync`, as device-mapper closes table devices): dropping the
/// last handle sleeps and must happen in process context.
pub struct BdevFile {
    // INVARIANT: `file` is a reference from `bdev_file_open_by_dev`, put
    // once in drop; `bdev` is its block device, valid while it is held.
    file: NonNull<bindings::file>,
    bdev: NonNull<bindings::block_device>,
    dev: DevT,
    writable: bool,
}

// SAFETY: an open block device file may be used and closed from any thread.
unsafe impl Send for BdevFile {}
// SAFETY: every method takes `&self` and submits bios or reads the size,
// which the block layer serialises itself.
unsafe impl Sync for BdevFile {}

impl BdevFile {
    /// Opens device `dev`, for writing too if `writable`. Sleeps.
    pub fn open(dev: DevT, writable: bool) -> Result<Self> {
        let mut err = 0;
        // SAFETY: `err` is a valid out-pointer.
        let file = unsafe { bindings::dmrs_bdev_file_open(dev.0, writable, &mut err) };
        let Some(file) = NonNull::new(file) else {
            return Err(if err < 0 { Error::from_errno(err) } else { EIO });
        };
        // SAFETY: an open block device file has a block device.
        let bdev = unsafe { bindings::dmrs_file_bdev(file.as_ptr()) };
        let Some(bdev) = NonNull::new(bdev) else {
            // SAFETY: opened above, put once.
            unsafe { bindings::dmrs_fput(file.as_ptr()) };
            return Err(EINVAL);
        };
        // INVARIANT: opened just now.
        Ok(BdevFile {
            file,
            bdev,
            dev,
            writable,
        })
    }

    /// The device number.
    pub fn dev_t(&self) -> DevT {
        self.dev
    }

    /// Whether the device was opened for writing.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Identity of the block device, for comparing opens of one device.
    pub fn same_device(&self, other: &BdevFile) -> bool {
        self.bdev == other.bdev
    }

    pub(super) fn bdev(&self) -> NonNull<bindings::block_device> {
        self.bdev
    }

    /// A counted reference on the open file, for I/O in flight.
    pub(super) fn counted(&self) -> BdevRef {
        // SAFETY: the file is held by `self` (type invariant), so taking
        // one more reference on it is allowed.
        unsafe { bindings::dmrs_get_file(self.file.as_ptr()) };
        // INVARIANT: the reference taken just now.
        BdevRef { file: self.file }
    }

    /// Size in 512-byte sectors (read anew on every call: devices grow).
    pub fn nr_sectors(&self) -> u64 {
        // SAFETY: the block device of a held file is valid.
        unsafe { bindings::dmrs_bdev_nr_sectors(self.bdev.as_ptr()) }
    }

    fn rw(&self, sector: u64, buf: *mut u8, len: u32, write: bool, fua: bool) -> Result {
        if write && !self.writable {
            return Err(EPERM);
        }
        // SAFETY: `buf` is the start of an `IoBuf` of `len` bytes, borrowed
        // by the caller for this synchronous call: kvmalloc memory spanning
        // at most BIO_MAX_VECS pages (`IoBuf` invariant), as the helper
        // needs; the block device of a held file is valid.
        to_result(unsafe {
            bindings::dmrs_rw_sync(self.bdev.as_ptr(), sector, buf.cast(), len, write, fua)
        })
    }

    /// Reads `buf.len()` bytes at `sector`. Sleeps.
    pub fn read(&self, sector: u64, buf: &mut IoBuf) -> Result {
        let len = buf.len_u32();
        self.rw(sector, buf.as_mut_ptr(), len, false, false)
    }

    /// Writes `buf` at `sector` with forced unit access: durable when this
    /// returns. Sleeps.
    pub fn write_fua(&self, sector: u64, buf: &IoBuf) -> Result {
        // The bio only reads the buffer.
        self.rw(sector, buf.as_ptr().cast_mut(), buf.len_u32(), true, true)
    }

    /// Writes every `(sector, buffer)` given, submitted together and waited
    /// for together; the first error any write saw is returned. Sleeps.
    pub fn write_many<'b>(&self, blocks: &mut dyn Iterator<Item = (u64, &'b IoBuf)>) -> Result {
        if !self.writable {
            return Err(EPERM);
        }
        let mut last: *mut bindings::bio = core::ptr::null_mut();
        for (sector, buf) in blocks {
            // SAFETY: `last` is null or this chain's unsubmitted previous
            // bio; `buf` is an `IoBuf` (kvmalloc, at most BIO_MAX_VECS
            // pages) borrowed from the caller, so it outlives the wait below.
            last = unsafe {
                bindings::dmrs_batch_write_add(
                    last,
                    self.bdev.as_ptr(),
                    sector,
                    buf.as_ptr().cast(),
                    buf.len_u32(),
                )
            };
        }
        if last.is_null() {
            return Ok(());
        }
        // SAFETY: the last bio of the chain, submitted and put here.
        to_result(unsafe { bindings::dmrs_batch_wait(last) })
    }

    /// Whether the device takes discards.
    pub fn discard_supported(&self) -> bool {
        // SAFETY: a live block device.
        unsafe { bindings::dmrs_bdev_discard_supported(self.bdev.as_ptr()) }
    }

    /// Discards `sectors` sectors from `sector` (`blkdev_issue_discard`),
    /// waiting for them. Sleeps. `Ok` without doing anything when the
    /// device takes no discards or the range is empty.
    pub fn discard(&self, sector: u64, sectors: u64) -> Result {
        if sectors == 0 || !self.discard_supported() {
            return Ok(());
        }
        if !self.writable || sector.checked_add(sectors).is_none_or(|e| e > self.nr_sectors()) {
            return Err(EINVAL);
        }
        // SAFETY: a live block device, a range inside it.
        to_result(unsafe { bindings::dmrs_discard_bdev(self.bdev.as_ptr(), sector, sectors) })
    }

    /// Flushes the device's volatile cache (`blkdev_issue_flush`). Sleeps.
    pub fn flush(&self) -> Result {
        // SAFETY: a live block device.
        to_result(unsafe { bindings::dmrs_flush_bdev(self.bdev.as_ptr()) })
    }
}

/// A counted reference on a [`BdevFile`]'s open file, held by I/O in
/// flight (a bio's slot, a discard chain, a kcopyd request) so the device
/// stays open until the I/O completes, even if its owner closes it first.
///
/// Dropped with `fput`, which may be called in any context, interrupt
/// context included (a bio's completion): if it is the last reference, the
/// VFS closes the device later, from process context.
pub(crate) struct BdevRef {
    // INVARIANT: a reference on the file, taken by `BdevFile::counted` and
    // put once, in drop.
    file: NonNull<bindings::file>,
}

// SAFETY: a file reference may be put from any thread.
unsafe impl Send for BdevRef {}
// SAFETY: nothing is reached through `&BdevRef`.
unsafe impl Sync for BdevRef {}

impl Drop for BdevRef {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `counted`, put once; `fput` is
        // allowed in any context.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}

impl Drop for BdevFile {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `open`, put once.
        unsafe { bindings::dmrs_fput(self.file.as_ptr()) };
    }
}
