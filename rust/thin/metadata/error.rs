//! The thin metadata error type.

use crate::pdata::error::Error as PdataError;

/// Everything the metadata API can fail with. "Not found" is not an error
/// here: lookups return `Option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The persistent-data layer failed (I/O, allocation, corrupt node...).
    Pdata(PdataError),
    /// A buffer was too short for the structure decoded from or packed into it.
    ShortBlock,
    /// `sb_check`: the superblock names another block (`-ENOTBLK`).
    SuperblockBadBlocknr,
    /// `sb_check`: wrong magic (`-EILSEQ`).
    SuperblockBadMagic,
    /// `sb_check`: checksum mismatch (`-EILSEQ`).
    SuperblockBadChecksum,
    /// The superblock's version is one this code does not know.
    UnsupportedVersion,
    /// Unknown incompatible features are set (`-EINVAL`).
    UnsupportedIncompatFeatures,
    /// Unknown read-only-compatible features are set and we open for writing.
    UnsupportedCompatRoFeatures,
    /// The superblock's data block size (`on_disk`, in sectors) differs
    /// from the one asked for.
    DataBlockSizeMismatch {
        /// The size the metadata was made with.
        on_disk: u32,
    },
    /// The metadata device is unformatted and formatting was not asked for
    /// (`-EPERM`).
    Unformatted,
    /// A device with this id already exists (`-EEXIST`).
    Exists,
    /// No device with this id (`-ENODATA` in C where it is an error).
    NoSuchDevice,
    /// The virtual block is not mapped (a removal of nothing).
    NotMapped,
    /// The device is open elsewhere (`-EBUSY`).
    Busy,
    /// A metadata snapshot already exists (`-EBUSY`).
    MetadataSnapExists,
    /// No metadata snapshot to release (`-EINVAL`).
    NoMetadataSnap,
    /// `set_transaction_id` with an old id that does not match (`-EINVAL`).
    TransactionIdMismatch,
    /// Space maps cannot shrink (`-EINVAL`).
    CannotShrink,
    /// No free data block (`-ENOSPC`).
    NoDataSpace,
    /// A non-blocking lookup needed I/O (`-EWOULDBLOCK`).
    WouldBlock,
    /// An earlier abort failed; only closing is possible (`fail_io`).
    FailIo,
    /// An argument was out of range (`-EINVAL`).
    Invalid,
    /// The on-disk structures contradict each other (e.g. a mapping tree
    /// without details, a mapped count that would underflow).
    Corrupt,
    /// A mapping names a data block past the end of the data device: the
    /// metadata is corrupt (or hostile), and remapping I/O there would go
    /// outside the pool's data device.
    DataBlockOutOfRange,
}

impl From<PdataError> for Error {
    fn from(e: PdataError) -> Self {
        match e {
            PdataError::WouldBlock => Error::WouldBlock,
            e => Error::Pdata(e),
        }
    }
}

/// Result with the metadata [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
