//! A target's argument vector (table line words, or message words).

use crate::bindings;
use core::ffi::CStr;
use core::marker::PhantomData;

/// The `argc`/`argv` pair device-mapper passes to a constructor or a message.
///
/// Borrowed for the duration of the callback only.
pub struct Args<'a> {
    // INVARIANT: `argv` points to `argc` valid NUL-terminated strings that
    // live for `'a`.
    argc: usize,
    argv: *const *mut bindings::ffi::c_char,
    _p: PhantomData<&'a CStr>,
}

impl<'a> Args<'a> {
    /// Wraps the raw vector.
    ///
    /// # Safety
    ///
    /// `argv` must point to `argc` valid NUL-terminated strings that stay
    /// valid and unchanged for `'a`.
    pub(crate) unsafe fn from_raw(argc: u32, argv: *const *mut bindings::ffi::c_char) -> Self {
        // INVARIANT: guaranteed by the caller.
        Args {
            argc: argc as usize,
            argv,
            _p: PhantomData,
        }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.argc
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// Argument `i` as bytes (without the NUL), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: `i < argc`, so by the type invariant `argv[i]` is a valid
        // NUL-terminated string living for `'a`.
        let s = unsafe { CStr::from_ptr((*self.argv.add(i)).cast()) };
        Some(s.to_bytes())
    }

    /// Argument `i` as a C string, for passing back to C (device paths).
    pub fn get_cstr(&self, i: usize) -> Option<&'a CStr> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: as in `get`.
        Some(unsafe { CStr::from_ptr((*self.argv.add(i)).cast()) })
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.argc).filter_map(move |i| self.get(i))
    }
}
