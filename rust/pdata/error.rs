//! The persistent-data error type.
//!
//! One enum for everything below the thin metadata API. Validator failures
//! each get their own variant (as thin-provisioning-tools does) so a damaged
//! block can be diagnosed from the error alone; "not found" and "no free
//! space" are not errors at all (`Option`), following STYLE.md.

/// Everything that can go wrong below the thin metadata API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// An allocation failed.
    NoMem,
    /// An argument was out of range, or an operation is not allowed in this state.
    Invalid,
    /// The block device reported an I/O error.
    Io,
    /// No space left: used only where the C code has no way to express
    /// "none" (e.g. a node that cannot take another entry). Allocation
    /// functions return `Ok(None)` instead.
    NoSpace,
    /// The operation would have to block (cache miss in non-blocking mode,
    /// or a write through a non-blocking transaction).
    WouldBlock,
    /// A block is locked in a way that conflicts with the request.
    Busy,
    /// A block number is beyond the end of the device.
    OutOfBounds,
    /// A cached block was locked with a different validator than before.
    ValidatorMismatch,

    /// Validator: the checksum in the block does not match its contents.
    Checksum,
    /// Validator: the block says it lives somewhere else (`blocknr` field).
    BlockNr,
    /// Node: the flags are neither INTERNAL nor LEAF (or both).
    NodeFlags,
    /// Node: `max_entries` entries would not fit in the block.
    MaxEntries,
    /// Node: `value_size` is not what the tree expects.
    ValueSize,
    /// Node: `nr_entries` is larger than `max_entries`.
    NrEntriesTooLarge,
    /// Node: `nr_entries` is too small (an empty internal node, or an
    /// operation that needs more entries than there are).
    NrEntriesTooSmall,
    /// Node: keys are not strictly increasing.
    KeysOutOfOrder,
    /// Btree: the tree is deeper than the engine supports (a loop on disk?).
    TooDeep,
    /// Space map: a reference count would drop below zero, or the on-disk
    /// counts are inconsistent (a count of 3+ missing from the ref-count tree).
    RefCount,
    /// Space map: an index entry or root is inconsistent with the map size.
    BadSpaceMap,
    /// Superblock: magic, version or other field is wrong (for layers above).
    BadSuperblock,
}

/// Result with the persistent-data [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
