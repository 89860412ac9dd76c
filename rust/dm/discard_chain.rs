//! Discards on a device the target opened, chained to a bio the target owns
//! (C dm-thin's `begin_discard`, `issue_discard` and `end_discard`, which
//! chain a thin discard's passdown to it).
//!
//! [`Bio::chain_discards`] ends the owned bio at once, in effect: the bio's
//! completion — device-mapper's call of the target's `end_io` — waits until
//! every discard added to the chain has finished. The target learns that
//! the passdown is over in `end_io`, where device-mapper keeps the target
//! alive, and can take the bio back there ([`super::EndIoBio::take`]) to
//! finish its own work before the real completion. A discard's error
//! reaches `end_io` as the bio's status.
//!
//! The device stays open until the bio completes, as for
//! [`Bio::remap_file`]: the bio's slot holds a counted reference on it,
//! taken when the chain starts.

use super::bio::Bio;
use super::block_io::BdevFile;
use crate::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Discards being chained to an owned bio; dropping it submits them and
/// ends the bio (completing once they are all done).
pub struct DiscardChain<'a, P> {
    dev: &'a BdevFile,
    // INVARIANT: an owned bio (as `Bio<P>`'s), ended exactly once, in drop.
    parent: NonNull<bindings::bio>,
    // INVARIANT: null, or the last, unsubmitted bio of the chain built by
    // `__blkdev_issue_discard` on `dev` (the earlier ones are submitted).
    last: *mut bindings::bio,
    _p: PhantomData<P>,
}

impl<P> Bio<P> {
    /// Starts chaining discards of `dev` to this bio (see the module
    /// documentation).
    pub fn chain_discards(mut self, dev: &BdevFile) -> DiscardChain<'_, P> {
        self.hold(dev);
        DiscardChain {
            dev,
            parent: self.into_raw(),
            last: core::ptr::null_mut(),
            _p: PhantomData,
        }
    }
}

impl<P> DiscardChain<'_, P> {
    /// Discards `nr` sectors of the device at `sector` (nothing on a device
    /// opened read-only, or one that takes no discards).
    pub fn discard(&mut self, sector: u64, nr: u64) {
        if !self.dev.writable() || nr == 0 {
            return;
        }
        // SAFETY: an open device; `last` is null or this chain's
        // unsubmitted last bio, as `__blkdev_issue_discard` expects.
        unsafe { bindings::dmrs_discard_add(self.dev.bdev().as_ptr(), sector, nr, &mut self.last) };
    }
}

impl<P> Drop for DiscardChain<'_, P> {
    fn drop(&mut self) {
        // SAFETY: the owned parent is ended once, here, after the chain's
        // last bio (if any) is chained to it and submitted.
        unsafe { bindings::dmrs_discard_end(self.parent.as_ptr(), self.last) };
    }
}
