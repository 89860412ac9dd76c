//! Devices a target opens (`dm_get_device`) and mapped devices it looks up.

use crate::bindings;
use core::fmt;
use core::ptr::NonNull;

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

/// An underlying device held by a target: `dm_get_device()` on creation,
/// `dm_put_device()` on drop.
///
/// Lives inside the target object that opened it, so it never outlives the
/// `dm_target` it was opened for.
pub struct DmDev {
    // INVARIANT: `dev` was returned by `dm_get_device(ti, ...)` and is put
    // exactly once, by `drop`; `ti` outlives `self` (the target object owning
    // this handle is dropped in the target's destructor).
    ti: NonNull<bindings::dm_target>,
    dev: NonNull<bindings::dm_dev>,
}

// SAFETY: the dm_dev is reference counted by device-mapper and may be used
// (read, and put) from any thread.
unsafe impl Send for DmDev {}
// SAFETY: `&DmDev` only reads immutable fields of the dm_dev.
unsafe impl Sync for DmDev {}

impl DmDev {
    /// # Safety
    ///
    /// `ti` must be the target being constructed and must outlive the result.
    pub(crate) unsafe fn open(
        ti: NonNull<bindings::dm_target>,
        path: &core::ffi::CStr,
        mode: Mode,
    ) -> Result<Self, kernel::error::Error> {
        let mut dev: *mut bindings::dm_dev = core::ptr::null_mut();
        let (ti_ptr, path_ptr) = (ti.as_ptr(), path.as_ptr().cast());
        // SAFETY: `ti` is valid (caller), `path` is NUL-terminated, `dev` is
        // a valid out-pointer.
        let r = unsafe { bindings::dm_get_device(ti_ptr, path_ptr, mode.0, &mut dev) };
        if r != 0 {
            return Err(kernel::error::Error::from_errno(r));
        }
        let dev = NonNull::new(dev).ok_or(kernel::error::code::EINVAL)?;
        // INVARIANT: `dev` came from dm_get_device on `ti`.
        Ok(DmDev { ti, dev })
    }

    pub(crate) fn bdev(&self) -> *mut bindings::block_device {
        // SAFETY: `dev` is valid while held (type invariant).
        unsafe { (*self.dev.as_ptr()).bdev }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::dm_dev {
        self.dev.as_ptr()
    }

    /// The device number (`bdev->bd_dev`).
    pub fn dev_t(&self) -> DevT {
        // SAFETY: the block device of a held dm_dev stays valid.
        DevT(unsafe { (*self.bdev()).bd_dev })
    }

    /// Size in 512-byte sectors.
    pub fn nr_sectors(&self) -> u64 {
        // SAFETY: the block device of a held dm_dev stays valid.
        unsafe { bindings::dmrs_bdev_nr_sectors(self.bdev()) }
    }

    /// The mapped device this device is, if it is a device-mapper device
    /// (`dm_get_md`).
    pub fn mapped_device(&self) -> Option<MappedDevice> {
        // SAFETY: dm_get_md takes a device number and returns a counted
        // reference or NULL.
        let md = unsafe { bindings::dm_get_md(self.dev_t().0) };
        // INVARIANT: a reference taken by dm_get_md.
        NonNull::new(md).map(|md| MappedDevice { md })
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `dev` was got on `ti`, which is still
        // alive, and is put only here.
        unsafe { bindings::dm_put_device(self.ti.as_ptr(), self.dev.as_ptr()) };
    }
}

/// A counted reference to a device-mapper device (`dm_get_md`/`dm_put`).
pub struct MappedDevice {
    // INVARIANT: holds one reference, dropped by `drop`.
    md: NonNull<bindings::mapped_device>,
}

// SAFETY: mapped_device references may be taken and dropped on any thread.
unsafe impl Send for MappedDevice {}
// SAFETY: only the pointer identity and the name are read through `&self`.
unsafe impl Sync for MappedDevice {}

impl MappedDevice {
    /// An identity for comparing mapped devices (the C code compares pointers).
    pub fn id(&self) -> usize {
        self.md.as_ptr() as usize
    }

    /// The device's dm name, as `dm_device_name()` gives it.
    pub fn name(&self) -> &[u8] {
        // SAFETY: a referenced mapped device has a valid NUL-terminated name.
        let p = unsafe { bindings::dm_device_name(self.md.as_ptr()) };
        if p.is_null() {
            return b"";
        }
        // SAFETY: `p` is a valid C string owned by the referenced md.
        unsafe { core::ffi::CStr::from_ptr(p.cast()) }.to_bytes()
    }
}

impl Drop for MappedDevice {
    fn drop(&mut self) {
        // SAFETY: drops the reference taken at creation (type invariant).
        unsafe { bindings::dm_put(self.md.as_ptr()) };
    }
}
