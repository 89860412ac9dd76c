//! Log lines as C device-mapper targets print them (`DMERR`, `DMWARN`,
//! `DMINFO`): `device-mapper: <prefix>: <message>`, where the kernel
//! crate's `pr_*!` macros would put the module's name. So a pool's log
//! reads the same whichever module runs it. A line is formatted into a
//! buffer on the stack (cut at 255 bytes) and printed by `printk`.

use crate::bindings;
use core::fmt::{self, Write};
use kernel::str::CStr;

/// The log level of a line.
#[derive(Clone, Copy)]
pub enum LogLevel {
    /// `DMERR`.
    Err = 0,
    /// `DMWARN`.
    Warn = 1,
    /// `DMINFO`.
    Info = 2,
}

struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // One byte is kept for the terminating NUL.
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        for (d, b) in self.buf.iter_mut().skip(self.len).zip(s.bytes().take(n)) {
            *d = b;
        }
        self.len += n;
        Ok(())
    }
}

/// Prints `args` as one `device-mapper: <prefix>: ` line (a trailing
/// newline in `args` is dropped: printk ends the line).
pub fn dm_log(level: LogLevel, prefix: &CStr, args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    if line.len > 0 && line.buf[line.len - 1] == b'\n' {
        line.len -= 1;
    }
    line.buf[line.len] = 0;
    // SAFETY: both strings are NUL-terminated and live for the call.
    unsafe { bindings::dmrs_dm_log(level as i32, prefix.as_ptr().cast(), line.buf.as_ptr().cast()) };
}

/// `DMERR` of dm-thin: `device-mapper: thin: ...`.
macro_rules! dmerr {
    ($($arg:tt)+) => {
        $crate::dm::dm_log($crate::dm::LogLevel::Err, c"thin", ::kernel::prelude::fmt!($($arg)+))
    };
}
/// `DMWARN` of dm-thin.
macro_rules! dmwarn {
    ($($arg:tt)+) => {
        $crate::dm::dm_log($crate::dm::LogLevel::Warn, c"thin", ::kernel::prelude::fmt!($($arg)+))
    };
}
/// `DMINFO` of dm-thin.
macro_rules! dminfo {
    ($($arg:tt)+) => {
        $crate::dm::dm_log($crate::dm::LogLevel::Info, c"thin", ::kernel::prelude::fmt!($($arg)+))
    };
}
/// dm-thin-metadata's lines: `device-mapper: thin metadata: ...`.
macro_rules! dmerr_metadata {
    ($($arg:tt)+) => {
        $crate::dm::dm_log($crate::dm::LogLevel::Err, c"thin metadata", ::kernel::prelude::fmt!($($arg)+))
    };
}
/// dm-thin-metadata's warnings.
macro_rules! dmwarn_metadata {
    ($($arg:tt)+) => {
        $crate::dm::dm_log($crate::dm::LogLevel::Warn, c"thin metadata", ::kernel::prelude::fmt!($($arg)+))
    };
}
pub(crate) use {dmerr, dmerr_metadata, dminfo, dmwarn, dmwarn_metadata};
