//! The result buffer of a status or message callback.

use crate::bindings;
use core::fmt;

/// Which status device-mapper asks for (`dmsetup status` or `dmsetup table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusType {
    /// `STATUSTYPE_INFO`: the `dmsetup status` line.
    Info,
    /// `STATUSTYPE_TABLE`: the `dmsetup table` line.
    Table,
    /// `STATUSTYPE_IMA`: the measurement line.
    Ima,
}

impl StatusType {
    pub(crate) fn from_raw(t: bindings::status_type_t) -> Self {
        match t {
            bindings::status_type_t_STATUSTYPE_INFO => StatusType::Info,
            bindings::status_type_t_STATUSTYPE_TABLE => StatusType::Table,
            _ => StatusType::Ima,
        }
    }
}

/// Writes into the caller's `char *result, unsigned maxlen` buffer like `DMEMIT`:
/// output past the end is dropped, and the buffer is always NUL-terminated.
pub struct StatusWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> StatusWriter<'a> {
    /// Wraps `maxlen` bytes at `result`.
    ///
    /// # Safety
    ///
    /// `result` must be valid for writes of `maxlen` bytes for `'a`, and not
    /// accessed any other way meanwhile.
    pub(crate) unsafe fn from_raw(result: *mut bindings::ffi::c_char, maxlen: u32) -> Self {
        let buf: &mut [u8] = if result.is_null() || maxlen == 0 {
            &mut []
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { core::slice::from_raw_parts_mut(result.cast(), maxlen as usize) }
        };
        if let Some(b) = buf.first_mut() {
            *b = 0;
        }
        StatusWriter {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    /// Whether some output did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

impl fmt::Write for StatusWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the terminating NUL.
        let room = self.buf.len().saturating_sub(self.len + 1);
        let n = s.len().min(room);
        if n < s.len() {
            self.overflowed = true;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
        Ok(())
    }
}
