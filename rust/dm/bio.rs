//! Bios as a target sees them.
//!
//! Device-mapper gives a target each bio twice: in `map`, where the target
//! decides its fate, and in `end_io`, when it completes. The types make the
//! rules of both calls the compiler's:
//!
//! - [`MapBio<'a, P>`] is the bio of one `map` call. Its lifetime `'a` is
//!   invariant and fresh for every call, and the only [`Mapped<'a>`] a
//!   target can return is made by consuming that very bio: remapped, killed,
//!   requeued, or turned into an owned [`Bio`] for later (deferred).
//! - [`Bio<P>`] is a bio the target owns after `map` (deferred work) or
//!   after `end_io` (taken back). It is completed exactly once: submitted,
//!   ended, or, if dropped, ended with an I/O error, so none is ever lost.
//! - [`EndIoBio<'a, P>`] is the bio of one `end_io` call: borrowed, so the
//!   target can read it but not complete it, unless it takes it explicitly
//!   ([`EndIoBio::take`]), which tells device-mapper the completion is the
//!   target's (`DM_ENDIO_INCOMPLETE`).
//!
//! Per-bio data `P` lives in the area device-mapper reserves in front of each
//! bio (`per_io_data_size`), inside the layer's [`Slot`]. The map trampoline
//! writes the slot there; `P` never moves (only `&P` and `Pin<&mut P>` are
//! handed out); the slot is dropped when device-mapper is done with the
//! bio: when `map` kills or requeues it, or when `end_io` lets the
//! completion proceed, which may be in interrupt context: hence
//! [`PerBioData`].
//!
//! The slot also holds what keeps the bio's device alive while the bio is
//! in flight. A bio remapped to a table's device ([`DmDev`]) needs nothing:
//! device-mapper destroys a target (and puts its devices) only once its
//! bios have completed, and [`Bio::remap`] checks, as [`MapBio::remap`]
//! does, that the device is the bio's own target's. A bio remapped to a
//! device the target opened itself ([`BdevFile`]), or whose discards are
//! chained to it ([`Bio::chain_discards`]), carries a counted reference on
//! that device's file ([`BdevRef`]) in its slot, dropped with the slot: the
//! device cannot be closed under the I/O in flight, whatever its owner does.

use super::block_io::{BdevFile, BdevRef};
use super::device::DmDev;
use crate::bindings;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::NonNull;

/// A block-layer completion status (`blk_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkStatus(pub(super) bindings::blk_status_t);

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

    /// Whether this is success.
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }
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

/// Per-bio data a target keeps beside each bio (`Target::PerBio`).
///
/// Device-mapper is done with a bio, and the layer drops its per-bio data,
/// in the bio's completion, which may run in interrupt context. A type
/// implementing this trait states that dropping a value is safe there: it
/// never sleeps and takes no lock that is not IRQ-safe (in particular, it
/// never drops the last reference to an object whose drop sleeps).
pub trait PerBioData: Default + Send + Sync + 'static {}

impl PerBioData for () {}

/// What the layer keeps in the per-bio area of every bio of a target: the
/// target's per-bio data and what the layer itself needs.
pub(super) struct Slot<P> {
    /// The target the bio was mapped by, as an identity for owner checks.
    ti: NonNull<bindings::dm_target>,
    /// A counted reference on the device the bio (or its discard chain) is
    /// in flight to, if the target opened that device itself.
    dev: Option<BdevRef>,
    data: P,
}

impl<P: Default> Slot<P> {
    /// The slot of a bio `ti` is mapping.
    pub(super) fn new(ti: NonNull<bindings::dm_target>) -> Self {
        Slot {
            ti,
            dev: None,
            data: P::default(),
        }
    }
}

/// An invariant lifetime: a brand tying a bio to the one callback it came in.
type Brand<'a> = PhantomData<fn(&'a ()) -> &'a ()>;

/// Read-only view of a live bio, shared by the three bio types.
///
/// # Safety
///
/// `raw` must be a live bio for as long as the view is used.
unsafe fn raw_ref<'b>(raw: NonNull<bindings::bio>) -> &'b bindings::bio {
    // SAFETY: guaranteed by the caller.
    unsafe { raw.as_ref() }
}

macro_rules! bio_accessors {
    () => {
        /// First sector.
        pub fn sector(&self) -> u64 {
            // SAFETY: the bio is live while this handle exists (type invariant).
            unsafe { raw_ref(self.raw) }.bi_iter.bi_sector
        }

        /// Size in bytes.
        pub fn size(&self) -> u32 {
            // SAFETY: as above.
            unsafe { raw_ref(self.raw) }.bi_iter.bi_size
        }

        /// Size in 512-byte sectors.
        pub fn sectors(&self) -> u64 {
            u64::from(self.size() >> 9)
        }

        /// The operation.
        pub fn op(&self) -> Op {
            // SAFETY: as above.
            let opf = unsafe { raw_ref(self.raw) }.bi_opf;
            match opf & bindings::REQ_OP_MASK {
                bindings::req_op_REQ_OP_READ => Op::Read,
                bindings::req_op_REQ_OP_WRITE => Op::Write,
                bindings::req_op_REQ_OP_FLUSH => Op::Flush,
                bindings::req_op_REQ_OP_DISCARD => Op::Discard,
                other => Op::Other(other),
            }
        }

        /// Whether the bio asks for a cache flush before it (`REQ_PREFLUSH`).
        pub fn is_preflush(&self) -> bool {
            // SAFETY: as above.
            unsafe { raw_ref(self.raw) }.bi_opf & bindings::REQ_PREFLUSH != 0
        }

        /// Whether the bio must reach stable storage before completing (`REQ_FUA`).
        pub fn is_fua(&self) -> bool {
            // SAFETY: as above.
            unsafe { raw_ref(self.raw) }.bi_opf & bindings::REQ_FUA != 0
        }

        /// The target's per-bio data.
        pub fn data(&self) -> &P {
            // SAFETY: a clone dm gave this target, whose per-bio area holds
            // an initialised `Slot<P>` until dm is done with the bio (type
            // invariant); only this bio's handles reach it.
            unsafe { &(*slot::<P>(self.raw)).data }
        }
    };
}

/// The layer's slot in the per-bio area of `bio`.
///
/// # Safety
///
/// `bio` must be a live clone device-mapper passed to a target whose
/// `per_io_data_size` is `size_of::<Slot<P>>()` (set by the ctr
/// trampoline): `dm_per_bio_data` reads the clone's `dm_target_io` flags
/// to find the area, then computes its address in front of the bio.
pub(super) unsafe fn slot<P>(bio: NonNull<bindings::bio>) -> *mut Slot<P> {
    // SAFETY: guaranteed by the caller.
    unsafe { bindings::dm_per_bio_data(bio.as_ptr(), core::mem::size_of::<Slot<P>>()) }
        .cast::<Slot<P>>()
}

/// Sets the bio's device and start.
///
/// # Safety
///
/// `raw` is a live bio its caller may modify, `bdev` a live block device.
unsafe fn set_dev(
    raw: NonNull<bindings::bio>,
    bdev: NonNull<bindings::block_device>,
    sector: u64,
) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        bindings::dmrs_bio_set_dev(raw.as_ptr(), bdev.as_ptr());
        (*raw.as_ptr()).bi_iter.bi_sector = sector;
    }
}

/// What `map` did with its bio; only made by consuming the [`MapBio`].
///
/// The code is private: only this file makes a verdict, and the map
/// trampoline reads it through [`Mapped::into_code`], which consumes it.
#[must_use]
pub struct Mapped<'a> {
    code: u32,
    _brand: Brand<'a>,
}

impl Mapped<'_> {
    /// The `DM_MAPIO_*` code, for the map trampoline to return.
    pub(super) fn into_code(self) -> u32 {
        self.code
    }
}

/// The bio of one `map` call; see the module documentation.
pub struct MapBio<'a, P> {
    // INVARIANT: `raw` is the bio device-mapper passed to `map` for target
    // `ti`, live for the call, its per-bio area holding an initialised
    // `Slot<P>`.
    raw: NonNull<bindings::bio>,
    ti: NonNull<bindings::dm_target>,
    _brand: Brand<'a>,
    _p: PhantomData<P>,
}

impl<'a, P> MapBio<'a, P> {
    /// # Safety
    ///
    /// `raw` is the bio passed to `ti`'s map function, with its per-bio area
    /// initialised to a `Slot<P>`; the result is used only during that call.
    pub(crate) unsafe fn new(raw: NonNull<bindings::bio>, ti: NonNull<bindings::dm_target>) -> Self {
        // INVARIANT: guaranteed by the caller.
        MapBio {
            raw,
            ti,
            _brand: PhantomData,
            _p: PhantomData,
        }
    }

    bio_accessors!();

    /// Moves the bio's start (C `bio->bi_iter.bi_sector = ...`).
    pub fn set_sector(&mut self, sector: u64) {
        // SAFETY: the bio is live and ours to modify during map.
        unsafe { (*self.raw.as_ptr()).bi_iter.bi_sector = sector };
    }

    /// The target's per-bio data, mutably.
    pub fn data_mut(&mut self) -> Pin<&mut P> {
        // SAFETY: a clone dm gave this target, its slot initialised (type
        // invariant); `P` is never moved; `&mut self` is the only handle to
        // this bio during `map`.
        unsafe { Pin::new_unchecked(&mut (*slot::<P>(self.raw)).data) }
    }

    fn token(self, code: u32) -> Mapped<'a> {
        Mapped {
            code,
            _brand: PhantomData,
        }
    }

    /// Points the bio at `dev` (a device of this target), starting at
    /// `sector`, for device-mapper to submit (`DM_MAPIO_REMAPPED`). A device
    /// of another table cannot be reached here: the bio is failed instead.
    pub fn remap(self, dev: &DmDev, sector: u64) -> Mapped<'a> {
        match dev.raw_for(self.ti) {
            Some((_, bdev)) => {
                // SAFETY: the bio is ours during map; `bdev` is held by this
                // target, which device-mapper destroys only after the bio
                // completed.
                unsafe { set_dev(self.raw, bdev, sector) };
                self.token(bindings::DM_MAPIO_REMAPPED)
            }
            None => self.kill(),
        }
    }

    /// Points the bio at `dev`, a device the target opened itself, for
    /// device-mapper to submit; the bio holds a counted reference on the
    /// device until it completes (see the module documentation).
    pub fn remap_file(self, dev: &BdevFile, sector: u64) -> Mapped<'a> {
        let held = dev.counted();
        // SAFETY: a clone dm gave this target, its slot initialised (type
        // invariant); the handle is consumed, so nothing else reaches it.
        unsafe { (*slot::<P>(self.raw)).dev = Some(held) };
        // SAFETY: the bio is ours during map; `dev` is open, and stays open
        // while the bio is in flight (the reference just stored).
        unsafe { set_dev(self.raw, dev.bdev(), sector) };
        self.token(bindings::DM_MAPIO_REMAPPED)
    }

    /// Takes the bio for later: device-mapper is told the target has it
    /// (`DM_MAPIO_SUBMITTED`), and the owned [`Bio`] must be completed.
    pub fn defer(self) -> (Bio<P>, Mapped<'a>) {
        // INVARIANT: ownership passes to the Bio; its per-bio data stays
        // initialised until end_io.
        let bio = Bio {
            raw: self.raw,
            _p: PhantomData,
        };
        (bio, self.token(bindings::DM_MAPIO_SUBMITTED))
    }

    /// Fails the bio with an I/O error (`DM_MAPIO_KILL`).
    pub fn kill(self) -> Mapped<'a> {
        self.drop_data();
        self.token(bindings::DM_MAPIO_KILL)
    }

    /// Asks device-mapper to requeue the bio (`DM_MAPIO_REQUEUE`).
    pub fn requeue(self) -> Mapped<'a> {
        self.drop_data();
        self.token(bindings::DM_MAPIO_REQUEUE)
    }

    /// Device-mapper frees a killed or requeued clone without calling
    /// `end_io`: its slot is dropped now.
    fn drop_data(&self) {
        // SAFETY: a clone dm gave this target, its slot initialised (type
        // invariant) and never used again: the handle is consumed by the
        // caller.
        unsafe { core::ptr::drop_in_place(slot::<P>(self.raw)) };
    }
}

/// What `end_io` decided; only made by consuming the [`EndIoBio`].
///
/// The code is private, as [`Mapped`]'s: the end_io trampoline reads it
/// through [`Ended::into_code`].
#[must_use]
pub struct Ended<'a> {
    code: u32,
    _brand: Brand<'a>,
}

impl Ended<'_> {
    /// The `DM_ENDIO_*` code, for the end_io trampoline to return.
    pub(super) fn into_code(self) -> u32 {
        self.code
    }
}

/// The bio of one `end_io` call: borrowed; see the module documentation.
pub struct EndIoBio<'a, P> {
    // INVARIANT: a bio this target mapped, completing now; its per-bio area
    // holds an initialised `Slot<P>`.
    raw: NonNull<bindings::bio>,
    _brand: Brand<'a>,
    _p: PhantomData<P>,
}

impl<'a, P> EndIoBio<'a, P> {
    /// # Safety
    ///
    /// `raw` is the bio passed to this target's end_io, mapped by it; the
    /// result is used only during that call.
    pub(crate) unsafe fn new(raw: NonNull<bindings::bio>) -> Self {
        // INVARIANT: guaranteed by the caller.
        EndIoBio {
            raw,
            _brand: PhantomData,
            _p: PhantomData,
        }
    }

    bio_accessors!();

    fn token(self, code: u32) -> Ended<'a> {
        Ended {
            code,
            _brand: PhantomData,
        }
    }

    /// Lets the completion proceed (`DM_ENDIO_DONE`).
    pub fn done(self) -> Ended<'a> {
        self.token(bindings::DM_ENDIO_DONE)
    }

    /// Asks device-mapper to requeue the original I/O (`DM_ENDIO_REQUEUE`).
    pub fn requeue(self) -> Ended<'a> {
        self.token(bindings::DM_ENDIO_REQUEUE)
    }

    /// Takes the bio back (`DM_ENDIO_INCOMPLETE`): the target completes it
    /// again later, and `end_io` will see it again then.
    pub fn take(self) -> (Bio<P>, Ended<'a>) {
        // INVARIANT: device-mapper leaves the bio to the target.
        let bio = Bio {
            raw: self.raw,
            _p: PhantomData,
        };
        (bio, self.token(bindings::DM_ENDIO_INCOMPLETE))
    }
}

/// A bio the target owns; see the module documentation.
pub struct Bio<P = ()> {
    // INVARIANT: `raw` is a live clone device-mapper gave a target of this
    // layer (in `map` or `end_io`), owned by this handle until one of the
    // consuming methods (or drop) completes or passes it on; its per-bio
    // area holds an initialised `Slot<P>`.
    raw: NonNull<bindings::bio>,
    _p: PhantomData<P>,
}

// SAFETY: a bio owned by a target may be completed or submitted from any
// thread (the C dm-thin worker does so), and `P: Send` travels with it.
unsafe impl<P: Send> Send for Bio<P> {}
// SAFETY: `&Bio` only reads the bio and `&P`, which is `Sync`.
unsafe impl<P: Sync> Sync for Bio<P> {}

impl<P> Bio<P> {
    bio_accessors!();

    /// The target's per-bio data, mutably.
    pub fn data_mut(&mut self) -> Pin<&mut P> {
        // SAFETY: a clone dm gave this target, its slot initialised (type
        // invariant); `P` is never moved; `&mut self` is the only handle.
        unsafe { Pin::new_unchecked(&mut (*slot::<P>(self.raw)).data) }
    }

    /// Stores a counted reference on `dev` in the bio's slot, replacing
    /// any earlier one: the device stays open until the bio completes.
    pub(super) fn hold(&mut self, dev: &BdevFile) {
        let held = dev.counted();
        // SAFETY: as for `data_mut`.
        unsafe { (*slot::<P>(self.raw)).dev = Some(held) };
    }

    pub(super) fn into_raw(self) -> NonNull<bindings::bio> {
        ManuallyDrop::new(self).raw
    }

    /// Points the bio at `dev`, starting at `sector`; `false` (and the bio
    /// unchanged) if `dev` is not a device of the bio's own target, as
    /// [`MapBio::remap`] checks, or was put.
    pub fn remap(&mut self, dev: &DmDev, sector: u64) -> bool {
        // SAFETY: as for `data_mut`; `ti` is only compared.
        let ti = unsafe { (*slot::<P>(self.raw)).ti };
        let Some((_, bdev)) = dev.raw_for(ti) else {
            return false;
        };
        // SAFETY: as for `data_mut`: the old reference, if any, is dropped.
        unsafe { (*slot::<P>(self.raw)).dev = None };
        // SAFETY: the bio is ours; `bdev` is held by the bio's target, which
        // device-mapper destroys only after the bio completed.
        unsafe { set_dev(self.raw, bdev, sector) };
        true
    }

    /// Points the bio at `dev`, a device the target opened itself; the bio
    /// holds a counted reference on it until it completes (see
    /// [`MapBio::remap_file`]).
    pub fn remap_file(&mut self, dev: &BdevFile, sector: u64) {
        self.hold(dev);
        // SAFETY: the bio is ours; `dev` is open and stays open while the
        // bio is in flight (the reference just stored).
        unsafe { set_dev(self.raw, dev.bdev(), sector) };
    }

    /// Shortens the bio to its first `sectors` sectors (after zero-filling
    /// it: the rest reads as zeroes, C `thin`'s origin-end handling).
    pub fn truncate_sectors(&mut self, sectors: u64) {
        let bytes = sectors.saturating_mul(512);
        // SAFETY: the bio is ours; shrinking the iterator only drops its tail.
        unsafe {
            let it = &mut (*self.raw.as_ptr()).bi_iter;
            if bytes < u64::from(it.bi_size) {
                it.bi_size = bytes as u32;
            }
        }
    }

    /// Fills the bio's pages with zeroes (a read of unprovisioned space).
    pub fn zero_fill(&mut self) {
        // SAFETY: the bio is ours; zero_fill_bio writes only its pages.
        unsafe { bindings::dmrs_zero_fill_bio(self.raw.as_ptr()) };
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

    /// Sends the (remapped) bio down to its device, as a target submits a
    /// bio it took from `map` (`dm_submit_bio_remap(bio, NULL)`, C thin's
    /// `issue`).
    ///
    /// Device-mapper starts its I/O accounting of the original bio now
    /// (in-flight count on the dm device, for a target that sets
    /// `accounts_remapped_io`; the latency counts from the bio's arrival)
    /// and traces the remap. Process context: `submit_bio_noacct` may sleep.
    pub fn submit(self) {
        kernel::task::might_sleep();
        let raw = self.into_raw();
        // SAFETY: the bio is the clone device-mapper gave a target of this
        // layer (type invariant), which `dm_submit_bio_remap` needs to find
        // its `dm_io`; we own it and pass ownership to the block layer.
        unsafe { bindings::dm_submit_bio_remap(raw.as_ptr(), core::ptr::null_mut()) };
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

/// A FIFO of owned bios linked through `bi_next`, as C's `bio_list`: adding
/// never allocates, so `map` can defer bios. Dropping a list ends what it
/// still holds with an I/O error.
pub struct BioList<P> {
    // INVARIANT: `head..tail` is a chain of bios owned by the list through
    // `bi_next`, each satisfying `Bio<P>`'s invariant; `tail` is the last.
    head: Option<NonNull<bindings::bio>>,
    tail: Option<NonNull<bindings::bio>>,
    len: usize,
    _p: PhantomData<P>,
}

// SAFETY: the list owns its bios, which are `Send` when `P` is.
unsafe impl<P: Send> Send for BioList<P> {}

impl<P> Default for BioList<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> BioList<P> {
    /// An empty list.
    pub const fn new() -> Self {
        BioList {
            head: None,
            tail: None,
            len: 0,
            _p: PhantomData,
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Number of bios held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds `bio` at the end.
    pub fn push(&mut self, bio: Bio<P>) {
        let raw = bio.into_raw();
        // SAFETY: the bio is ours now; its `bi_next` is free while owned.
        unsafe { (*raw.as_ptr()).bi_next = core::ptr::null_mut() };
        match self.tail {
            // SAFETY: `t` is the list's last bio, owned by the list.
            Some(t) => unsafe { (*t.as_ptr()).bi_next = raw.as_ptr() },
            None => self.head = Some(raw),
        }
        self.tail = Some(raw);
        self.len += 1;
    }

    /// Takes the first bio.
    pub fn pop(&mut self) -> Option<Bio<P>> {
        let h = self.head?;
        // SAFETY: `h` is owned by the list; unlink it.
        let next = unsafe { (*h.as_ptr()).bi_next };
        // SAFETY: as above.
        unsafe { (*h.as_ptr()).bi_next = core::ptr::null_mut() };
        self.head = NonNull::new(next);
        if self.head.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        // INVARIANT: ownership passes from the list to the handle.
        Some(Bio {
            raw: h,
            _p: PhantomData,
        })
    }

    /// Moves every bio of `other` to the end of this list.
    pub fn append(&mut self, other: &mut BioList<P>) {
        let Some(oh) = other.head.take() else { return };
        match self.tail {
            // SAFETY: `t` is owned by this list; `oh` by `other`, moved here.
            Some(t) => unsafe { (*t.as_ptr()).bi_next = oh.as_ptr() },
            None => self.head = Some(oh),
        }
        self.tail = other.tail.take();
        self.len += other.len;
        other.len = 0;
    }

    /// Takes the whole list, leaving this one empty.
    pub fn take(&mut self) -> BioList<P> {
        core::mem::take(self)
    }
}

impl<P> Drop for BioList<P> {
    fn drop(&mut self) {
        while let Some(b) = self.pop() {
            drop(b);
        }
    }
}
