//! The persistent-data error type.

/// Everything that can go wrong below the thin metadata API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// An allocation failed.
    NoMem,
    /// An argument was out of range.
    Invalid,
}

/// Result with the persistent-data [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
