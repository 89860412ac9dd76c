//! The constructor's context ([`TargetCtx`]) and the handles it makes
//! ([`TableEvent`], [`MdHandle`]), which the layer records and revokes
//! when the target is destroyed.

use super::TargetRef;
use crate::bindings;
use crate::dm::device::{DmDev, MdId, Mode};
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::alloc::KVec;
use kernel::error::{code, Error};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};

/// The target being constructed, for use inside [`Target::ctr`](super::Target::ctr).
pub struct TargetCtx<'a> {
    // INVARIANT: `ti` is the dm_target under construction, valid for `'a`.
    pub(super) ti: NonNull<bindings::dm_target>,
    pub(super) devs: KVec<DmDev>,
    pub(super) events: KVec<TableEvent>,
    pub(super) mds: KVec<MdHandle>,
    pub(super) _p: PhantomData<&'a mut bindings::dm_target>,
}

impl TargetCtx<'_> {
    fn ti(&mut self) -> &mut bindings::dm_target {
        // SAFETY: valid and exclusively ours during the constructor.
        unsafe { self.ti.as_mut() }
    }

    /// The target as callbacks see it.
    pub fn target_ref(&self) -> TargetRef<'_> {
        // INVARIANT: valid for the borrow of the context.
        TargetRef {
            ti: self.ti,
            _p: PhantomData,
        }
    }

    /// Opens an underlying device (`dm_get_device`). The layer puts it when
    /// the target is destroyed (or its constructor fails). Sleeps.
    pub fn get_device(&mut self, path: &CStr, mode: Mode) -> Result<DmDev> {
        self.devs.reserve(1, GFP_KERNEL)?;
        // SAFETY: `ti` is the target under construction; the device is
        // recorded below and put by the ctr (on failure) or dtr trampoline.
        let dev = unsafe { DmDev::open(self.ti, path, mode) }?;
        self.devs.push(dev.clone(), GFP_KERNEL)?;
        Ok(dev)
    }

    /// The mode of the table being loaded (`dm_table_get_mode`).
    pub fn table_mode(&mut self) -> Mode {
        let table = self.ti().table;
        // SAFETY: the table of a target under construction is valid.
        Mode(unsafe { bindings::dm_table_get_mode(table) })
    }

    /// A handle that raises table events for this target's table, valid
    /// (and revoked) like the devices.
    pub fn table_event(&mut self) -> Result<TableEvent> {
        let table = NonNull::new(self.ti().table).ok_or(code::EINVAL)?;
        self.events.reserve(1, GFP_KERNEL)?;
        let inner = Arc::pin_init(new_mutex!(Some(TablePtr(table))), GFP_KERNEL)?;
        let ev = TableEvent { inner };
        self.events.push(ev.clone(), GFP_KERNEL)?;
        Ok(ev)
    }

    /// A handle on the mapped device of the table being loaded, for
    /// internal suspend and resume (C `dm_table_get_md` kept in `thin_c`),
    /// revoked like the devices.
    pub fn md_handle(&mut self) -> Result<MdHandle> {
        let table = self.ti().table;
        // SAFETY: the table of a target under construction is valid.
        let md = NonNull::new(unsafe { bindings::dm_table_get_md(table) }).ok_or(code::EINVAL)?;
        self.mds.reserve(1, GFP_KERNEL)?;
        let inner = Arc::pin_init(new_mutex!(Some(MdPtr(md))), GFP_KERNEL)?;
        let h = MdHandle { inner };
        self.mds.push(h.clone(), GFP_KERNEL)?;
        Ok(h)
    }

    /// The mapped device of the table being loaded.
    pub fn md_id(&self) -> MdId {
        self.target_ref().md_id()
    }

    /// Length of the target in sectors.
    pub fn len(&mut self) -> u64 {
        self.ti().len
    }

    /// Splits bios at `sectors` boundaries (`dm_set_target_max_io_len`).
    pub fn set_max_io_len(&mut self, sectors: u64) -> Result {
        // SAFETY: `ti` is valid.
        let r = unsafe { bindings::dm_set_target_max_io_len(self.ti.as_ptr(), sectors) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::from_errno(r))
        }
    }

    /// Number of flush bios the target wants per flush.
    pub fn set_num_flush_bios(&mut self, n: u32) {
        self.ti().num_flush_bios = n;
    }

    /// Number of discard bios the target wants per discard; with
    /// `supported`, discards reach it even if the devices below lack them.
    pub fn set_discards(&mut self, n: u32, supported: bool) {
        let ti = self.ti();
        ti.num_discard_bios = n;
        ti.set_discards_supported(supported);
        ti.set_max_discard_granularity(supported);
    }

    /// Whether the target handles flushes itself.
    pub fn set_flush_supported(&mut self, v: bool) {
        self.ti().set_flush_supported(v);
    }

    /// Swap bios are limited like the C targets do.
    pub fn set_limit_swap_bios(&mut self, v: bool) {
        self.ti().set_limit_swap_bios(v);
    }

    /// The target accounts remapped I/O itself.
    pub fn set_accounts_remapped_io(&mut self, v: bool) {
        self.ti().set_accounts_remapped_io(v);
    }

    /// Revokes and puts everything recorded. Sleeps.
    pub(super) fn release(
        ti: NonNull<bindings::dm_target>,
        devs: KVec<DmDev>,
        events: KVec<TableEvent>,
        mds: KVec<MdHandle>,
    ) {
        for ev in events.iter() {
            ev.revoke();
        }
        for md in mds.iter() {
            md.revoke();
        }
        for dev in devs.iter() {
            // SAFETY: each device was opened on `ti` by this context and is
            // put once, here, in ctr failure or dtr.
            unsafe { dev.put(ti) };
        }
    }
}

struct TablePtr(NonNull<bindings::dm_table>);

// SAFETY: a table pointer may be used from any thread while the table lives;
// the mutex around it and revocation in dtr bound that.
unsafe impl Send for TablePtr {}

/// Raises device-mapper table events (`dm_table_event`) for the table of the
/// target that created it, e.g. when a pool reaches its low water mark or
/// changes mode. Clones may be kept anywhere: once the table is destroyed
/// the handle is revoked and [`TableEvent::trigger`] does nothing.
#[derive(Clone)]
pub struct TableEvent {
    inner: Arc<Mutex<Option<TablePtr>>>,
}

impl TableEvent {
    /// Signals a table event to userspace (`dmsetup wait`, lvm's monitor);
    /// `false` if the table is gone. Sleeps.
    pub fn trigger(&self) -> bool {
        let guard = self.inner.lock();
        match &*guard {
            Some(t) => {
                // SAFETY: not revoked, so the table is alive; revocation
                // waits for this lock.
                unsafe { bindings::dm_table_event(t.0.as_ptr()) };
                true
            }
            None => false,
        }
    }

    fn revoke(&self) {
        *self.inner.lock() = None;
    }
}

struct MdPtr(NonNull<bindings::mapped_device>);

// SAFETY: a mapped device may be suspended and resumed from any thread
// while it lives; the mutex around it and revocation in dtr bound that.
unsafe impl Send for MdPtr {}

/// The mapped device of the target that created it, for suspending and
/// resuming it from another device's callbacks (a pool quiescing its
/// thins). Clones may be kept anywhere: once the target's table is
/// destroyed the handle is revoked and its calls do nothing.
#[derive(Clone)]
pub struct MdHandle {
    inner: Arc<Mutex<Option<MdPtr>>>,
}

impl MdHandle {
    /// `dm_internal_suspend_noflush`: waits for the device's in-flight I/O
    /// and holds new I/O back. Sleeps; not from the device's own callbacks.
    pub fn internal_suspend_noflush(&self) {
        let guard = self.inner.lock();
        if let Some(md) = &*guard {
            // SAFETY: not revoked, so the table, and its md, are alive;
            // revocation waits for this lock.
            unsafe { bindings::dm_internal_suspend_noflush(md.0.as_ptr()) };
        }
    }

    /// `dm_internal_resume`, undoing one internal suspend. Sleeps.
    pub fn internal_resume(&self) {
        let guard = self.inner.lock();
        if let Some(md) = &*guard {
            // SAFETY: as for `internal_suspend_noflush`.
            unsafe { bindings::dm_internal_resume(md.0.as_ptr()) };
        }
    }

    /// Whether `other` is a clone of this handle.
    pub fn same(&self, other: &MdHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn revoke(&self) {
        *self.inner.lock() = None;
    }
}
