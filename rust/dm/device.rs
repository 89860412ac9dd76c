//! Devices a target opens (`dm_get_device`) and the mapped devices it names.
//!
//! Device-mapper's `dm_dev` belongs to the table: it must be put with
//! `dm_put_device(ti, dev)` (which sleeps and edits the table's device list
//! without a lock) before the table goes. So the layer, not the target,
//! owns it: [`super::TargetCtx::get_device`] records every device it opens,
//! and the destructor trampoline puts them after the target object has been
//! dropped (the constructor trampoline does the same when `ctr` fails).
//!
//! What the target gets is a [`DmDev`] handle, which it may clone and keep
//! anywhere, a pool shared across table reloads included: before the device
//! is put the handle is revoked (RCU), after which it still answers
//! [`DmDev::dev_t`] (a number) but no longer reaches the `dm_dev`.

use crate::bindings;
use core::fmt;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::revocable::Revocable;
use kernel::sync::Arc;

/// How a target opens an underlying device (`blk_mode_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub(crate) bindings::blk_mode_t);

impl Mode {
    /// Read only.
    pub const READ: Mode = Mode(bindings::BLK_OPEN_READ);
    /// Read and write.
    pub const READ_WRITE: Mode = Mode(bindings::BLK_OPEN_READ | bindings::BLK_OPEN_WRITE);

    /// Whether the mode includes writing.
    pub fn writable(self) -> bool {
        self.0 & bindings::BLK_OPEN_WRITE != 0
    }
}

/// A device number, printed as `major:minor` like `format_dev_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevT(pub(crate) bindings::dev_t);

impl fmt::Display for DevT {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: pure arithmetic on a value.
        let (major, minor) =
            unsafe { (bindings::dmrs_major(self.0), bindings::dmrs_minor(self.0)) };
        write!(f, "{}:{}", major, minor)
    }
}

// For the kernel's `pr_*!` macros, which format through their own trait.
impl kernel::fmt::Display for DevT {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The identity of a mapped device (`struct mapped_device *`), for lookups
/// (the C pool table compares these pointers). Holds no reference: it is
/// only ever compared, never dereferenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdId(usize);

impl MdId {
    pub(crate) fn from_raw(md: *mut bindings::mapped_device) -> Self {
        MdId(md as usize)
    }
}

/// The device pointers a handle reaches while not revoked.
pub(crate) struct DevRaw {
    // INVARIANT: `dev` was returned by `dm_get_device(owner, ...)` and is
    // not yet put: it is put only after this value has been revoked.
    pub(crate) dev: NonNull<bindings::dm_dev>,
    pub(crate) bdev: NonNull<bindings::block_device>,
}

// SAFETY: the pointers are only dereferenced to read the device, which
// device-mapper keeps alive until `dm_put_device`, from any thread.
unsafe impl Send for DevRaw {}
// SAFETY: as above; nothing is mutated through `&DevRaw`.
unsafe impl Sync for DevRaw {}

/// An underlying device opened by a target; see the module documentation.
#[derive(Clone)]
pub struct DmDev {
    raw: Arc<Revocable<DevRaw>>,
    dev_t: DevT,
    // The target that opened the device, as an identity only.
    owner: usize,
}

impl DmDev {
    /// Opens `path` for target `ti` (`dm_get_device`). Sleeps.
    ///
    /// # Safety
    ///
    /// `ti` must be the target under construction, and the caller must put
    /// the device with [`DmDev::put`] before the table is destroyed.
    pub(crate) unsafe fn open(
        ti: NonNull<bindings::dm_target>,
        path: &core::ffi::CStr,
        mode: Mode,
    ) -> Result<Self> {
        let mut dev: *mut bindings::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is valid (caller), `path` is NUL-terminated, `dev` is
        // a valid out-pointer.
        let r = unsafe { bindings::dm_get_device(ti.as_ptr(), path.as_ptr().cast(), mode.0, &mut dev) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        let dev = NonNull::new(dev).ok_or(EINVAL)?;
        // SAFETY: a device just got is valid; its bdev is set by dm.
        let bdev = unsafe { (*dev.as_ptr()).bdev };
        let Some(bdev) = NonNull::new(bdev) else {
            // SAFETY: got on `ti` just now, put once.
            unsafe { bindings::dm_put_device(ti.as_ptr(), dev.as_ptr()) };
            return Err(EINVAL);
        };
        // SAFETY: the block device of a held dm_dev is valid.
        let dev_t = DevT(unsafe { (*bdev.as_ptr()).bd_dev });
        // INVARIANT: `dev` came from dm_get_device on `ti` just now.
        let raw = match Arc::pin_init(Revocable::new(DevRaw { dev, bdev }), GFP_KERNEL) {
            Ok(raw) => raw,
            Err(e) => {
                // SAFETY: got on `ti` just now, put once.
                unsafe { bindings::dm_put_device(ti.as_ptr(), dev.as_ptr()) };
                return Err(e);
            }
        };
        Ok(DmDev {
            raw: raw.into(),
            dev_t,
            owner: ti.as_ptr() as usize,
        })
    }

    /// Revokes every handle and puts the device (`dm_put_device`). Sleeps
    /// (waits for an RCU grace period).
    ///
    /// # Safety
    ///
    /// `ti` must be the target that opened the device, in its destructor
    /// (or its failed constructor), and `put` is called once per device.
    pub(crate) unsafe fn put(&self, ti: NonNull<bindings::dm_target>) {
        let dev = match self.raw.try_access() {
            Some(raw) => raw.dev,
            None => return,
        };
        // Waits until no reader holds the pointers, so none outlives the put.
        self.raw.revoke();
        // SAFETY: got on `ti` (caller), not yet put (it was not revoked).
        unsafe { bindings::dm_put_device(ti.as_ptr(), dev.as_ptr()) };
    }

    /// Whether `ti` opened this device.
    pub(super) fn owned_by(&self, ti: NonNull<bindings::dm_target>) -> bool {
        self.owner == ti.as_ptr() as usize
    }

    /// The `dm_dev` and block device, when `ti` opened this device: those
    /// cannot be revoked while a callback of `ti` runs or a bio `ti` mapped
    /// is in flight (device-mapper destroys `ti` only after both).
    pub(super) fn raw_for(
        &self,
        ti: NonNull<bindings::dm_target>,
    ) -> Option<(NonNull<bindings::dm_dev>, NonNull<bindings::block_device>)> {
        if !self.owned_by(ti) {
            return None;
        }
        // The read guard only proves the value is there; the pointers stay
        // valid after it because revocation happens in `ti`'s destructor.
        self.raw.try_access().map(|r| (r.dev, r.bdev))
    }

    /// The device number (`bdev->bd_dev`); answered even once revoked.
    pub fn dev_t(&self) -> DevT {
        self.dev_t
    }

    /// Whether the device is still held by its table.
    pub fn is_live(&self) -> bool {
        self.raw.try_access().is_some()
    }

    /// Size in 512-byte sectors, or `None` once the table put the device.
    pub fn nr_sectors(&self) -> Option<u64> {
        let raw = self.raw.try_access()?;
        // SAFETY: the block device of a held, unrevoked dm_dev is valid.
        Some(unsafe { bindings::dmrs_bdev_nr_sectors(raw.bdev.as_ptr()) })
    }

    /// `bdev_max_discard_sectors`: the largest discard the device takes, in
    /// sectors; 0 when it takes none. `None` once the table put the device.
    pub fn max_discard_sectors(&self) -> Option<u32> {
        let raw = self.raw.try_access()?;
        // SAFETY: the block device of a held, unrevoked dm_dev is valid.
        Some(unsafe { bindings::dmrs_bdev_max_discard_sectors(raw.bdev.as_ptr()) })
    }

    /// The device's name as printk's `%pg` prints it (`vdb`, `dm-3`,
    /// `nvme0n1p2`), for log lines that read as C's. `None` once the table
    /// put the device.
    pub fn bdev_name(&self) -> Option<BdevName> {
        let raw = self.raw.try_access()?;
        let mut name = BdevName { buf: [0; 32], len: 0 };
        // SAFETY: the block device of a held, unrevoked dm_dev is valid;
        // the buffer is writable for its whole length.
        let n = unsafe {
            bindings::dmrs_bdev_name(raw.bdev.as_ptr(), name.buf.as_mut_ptr().cast(), name.buf.len())
        };
        name.len = n.min(name.buf.len() - 1);
        Some(name)
    }

    /// The mapped device this device is, if it is a device-mapper device.
    /// The reference `dm_get_md` takes is dropped before returning, as
    /// `thin_ctr` does: an [`MdId`] is only an identity. Sleeps.
    pub fn md_id(&self) -> Option<MdId> {
        // SAFETY: dm_get_md takes a device number and returns a counted
        // reference or NULL.
        let md = unsafe { bindings::dm_get_md(self.dev_t.0) };
        if md.is_null() {
            return None;
        }
        let id = MdId::from_raw(md);
        // SAFETY: drops the reference dm_get_md took just above.
        unsafe { bindings::dm_put(md) };
        Some(id)
    }
}

/// A block device's name (see [`DmDev::bdev_name`]).
pub struct BdevName {
    buf: [u8; 32],
    len: usize,
}

impl core::fmt::Display for BdevName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        f.write_str(core::str::from_utf8(bytes).unwrap_or("?"))
    }
}

// For the kernel's `pr_*!` macros, which format through their own trait.
impl kernel::fmt::Display for BdevName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}
