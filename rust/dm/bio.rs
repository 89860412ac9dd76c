//! Bios as a target sees them in `map` and `end_io`.

use super::device::DmDev;
use crate::bindings;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

/// A block-layer completion status (`blk_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkStatus(pub(crate) bindings::blk_status_t);

impl BlkStatus {
    /// Success.
    pub const OK: BlkStatus = BlkStatus(bindings::BLK_STS_OK);
    /// I/O error.
    pub const IOERR: BlkStatus = BlkStatus(bindings::BLK_STS_IOERR);
    /// Out of space.
    pub const NOSPC: BlkStatus = BlkStatus(bindings::BLK_STS_NOSPC);
    /// Operation not supported.
    pub const NOTSUPP: BlkStatus = BlkStatus(bindings::BLK_STS_NOTSUPP);
    /// Ask device-mapper to requeue (used while a pool suspends).
    pub const DM_REQUEUE: BlkStatus = BlkStatus(bindings::BLK_STS_DM_REQUEUE);
}

/// The operation a bio carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE` (possibly empty, with `REQ_PREFLUSH`: a flush).
    Write,
    /// `REQ_OP_FLUSH`.
    Flush,
    /// `REQ_OP_DISCARD`.
    Discard,
    /// Anything else (secure erase, write zeroes, zone operations).
    Other(u32),
}

/// A bio handed to a target, which must complete it exactly once: by
/// returning it remapped from `map`, by [`Bio::submit`], or by [`Bio::endio`].
/// Dropping it unfinished ends it with an I/O error, so no bio is ever lost.
///
/// `P` is the target's per-bio data type, stored by device-mapper beside the bio.
pub struct Bio<P = ()> {
    // INVARIANT: `raw` is a live bio owned by this handle until one of the
    // consuming methods (or drop) completes or passes it on. Its per-bio data
    // area holds an initialised `P` (written by the map trampoline).
    raw: NonNull<bindings::bio>,
    _p: PhantomData<P>,
}

// SAFETY: a bio owned by a target may be completed or submitted from any
// thread (the C dm-thin worker does so), and `P: Send` travels with it.
unsafe impl<P: Send> Send for Bio<P> {}

impl<P> Bio<P> {
    /// # Safety
    ///
    /// `raw` must be a bio passed to this target's map function whose per-bio
    /// data area (of at least `size_of::<P>()` bytes, suitably aligned) holds
    /// an initialised `P`, and the caller hands ownership to the result.
    pub(crate) unsafe fn from_raw(raw: NonNull<bindings::bio>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Bio {
            raw,
            _p: PhantomData,
        }
    }

    /// Wraps a bio the target only borrows (end_io): never completed by us.
    ///
    /// # Safety
    ///
    /// As [`Bio::from_raw`], but ownership stays with the caller.
    pub(crate) unsafe fn borrowed(raw: NonNull<bindings::bio>) -> ManuallyDrop<Self> {
        // SAFETY: the caller's guarantees; ManuallyDrop prevents completion.
        ManuallyDrop::new(unsafe { Self::from_raw(raw) })
    }

    /// Gives up ownership without completing (device-mapper takes it back).
    pub(crate) fn into_raw(self) -> NonNull<bindings::bio> {
        ManuallyDrop::new(self).raw
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: the bio is live while owned (type invariant).
        unsafe { self.raw.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut bindings::bio {
        // SAFETY: the bio is live and exclusively ours while owned.
        unsafe { self.raw.as_mut() }
    }

    /// First sector.
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// Size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        u64::from(self.size() >> 9)
    }

    /// The operation.
    pub fn op(&self) -> Op {
        let op = self.raw().bi_opf & bindings::REQ_OP_MASK;
        match op {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            other => Op::Other(other),
        }
    }

    /// Whether the bio asks for a cache flush before it (`REQ_PREFLUSH`).
    pub fn is_preflush(&self) -> bool {
        self.raw().bi_opf & bindings::REQ_PREFLUSH != 0
    }

    /// Whether the bio must reach stable storage before completing (`REQ_FUA`).
    pub fn is_fua(&self) -> bool {
        self.raw().bi_opf & bindings::REQ_FUA != 0
    }

    /// The target's per-bio data.
    pub fn data(&mut self) -> &mut P {
        // SAFETY: by the type invariant the per-bio area holds an initialised
        // `P`, and `&mut self` makes this the only reference to it.
        unsafe {
            &mut *bindings::dm_per_bio_data(self.raw.as_ptr(), core::mem::size_of::<P>())
                .cast::<P>()
        }
    }

    /// Points the bio at `dev`, starting at `sector`.
    pub fn remap(&mut self, dev: &DmDev, sector: u64) {
        let bdev = dev.bdev();
        // SAFETY: the bio is ours and `bdev` is a live block device.
        unsafe { bindings::dmrs_bio_set_dev(self.raw.as_ptr(), bdev) };
        self.raw_mut().bi_iter.bi_sector = sector;
    }

    /// Completes the bio with `status`.
    pub fn endio(self, status: BlkStatus) {
        let raw = self.into_raw();
        // SAFETY: we own the bio; setting its status and ending it is the
        // one completion.
        unsafe {
            (*raw.as_ptr()).bi_status = status.0;
            bindings::bio_endio(raw.as_ptr());
        }
    }

    /// Sends the (remapped) bio down to its device.
    pub fn submit(self) {
        let raw = self.into_raw();
        // SAFETY: we own the bio and pass ownership to the block layer.
        unsafe { bindings::submit_bio_noacct(raw.as_ptr()) };
    }
}

impl<P> Drop for Bio<P> {
    fn drop(&mut self) {
        // SAFETY: an owned bio that was neither submitted nor ended: end it
        // with an error so it is never leaked.
        unsafe {
            (*self.raw.as_ptr()).bi_status = bindings::BLK_STS_IOERR;
            bindings::bio_endio(self.raw.as_ptr());
        }
    }
}
