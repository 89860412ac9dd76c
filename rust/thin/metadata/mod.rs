//! The thin-provisioning metadata: superblock, device details and the
//! two-level mapping tree, behind the API the targets call (the Rust form of
//! `dm-thin-metadata.{c,h}`).
//!
//! # On-disk layout
//!
//! The metadata device is cut into 4 KiB blocks:
//!
//! - Block 0 holds the [`superblock`]. Its live part is under 512
//!   bytes so that writing it is atomic; it names every other root.
//! - A metadata space map counts references to metadata blocks. Unlike the
//!   data space map it keeps its index in a single block instead of a btree,
//!   so that allocating metadata never has to recurse into a btree that is
//!   itself allocating metadata.
//! - A data space map counts references to data blocks. Its index is a btree
//!   of index entries, each pointing at a bitmap block holding two bits per
//!   block: 0, 1, 2 or "3 and more", the latter looked up in a second btree
//!   of exact 32-bit counts.
//! - The device details btree maps a thin device id to its
//!   [details](device_details): mapped block count, creation transaction,
//!   creation time and last snapshot time.
//! - The mapping tree is a btree of btrees: the top level maps a device id to
//!   the root of that device's own tree, which maps a virtual block to a
//!   [`block_time::BlockTime`]: 40 bits of data block, 24 bits
//!   of the pool time when the mapping was made.
//!
//! Btree nodes fill a block: a header, then every key, then every value, so
//! the binary search over keys stays in few cache lines. Interior values are
//! child block numbers; leaf values may be any small fixed size.
//!
//! # Transactions and snapshots
//!
//! Nothing is updated in place. A block is shadowed (copied) the first time
//! a transaction writes it, and freed blocks are not handed out again until
//! the transaction commits, so the last committed tree is always intact on
//! disk. Commit flushes every new block and then writes the superblock; a
//! crash at any point leaves the previous superblock, and the tree it names,
//! in charge. Allocation walks forward from the front of the device and goes
//! back to fill holes, to keep free space from fragmenting.
//!
//! A snapshot is cheap: the snapshot's entry in the top level points at the
//! origin's mapping tree root, whose reference count goes up by one. The
//! first write to a shared node through either device shadows it, and the
//! pool time goes up by one, so every mapping made before the snapshot has a
//! time older than both devices' `snapshotted_time`: such a block may be
//! shared, and writing it means copying it to a new data block first.
//!
//! A metadata snapshot ("held root") is a copy of the superblock whose trees
//! get an extra reference: userspace tools read a stable image of a live pool
//! through it.
//!
//! # This API
//!
//! [`PoolMetadata`] is the pool's metadata (`struct dm_pool_metadata`); a
//! device is addressed by its [`ThinId`] and its in-core state
//! ([`thin_device`]) is cached until the next commit writes it back. The
//! caller (the pool target) serialises writers; "not found" is `None`.
//!
//! # Usage (how the pool target drives it)
//!
//! ```ignore
//! use crate::thin::metadata::{Error, PoolMetadata};
//!
//! // Pool constructor: format if block 0 is zero and the table allows it.
//! let mut pmd = PoolMetadata::open(dev, data_block_size_sectors, format)?;
//! pmd.resize_data_dev(data_dev_blocks)?;       // preresume, then commit
//! pmd.commit()?;
//! pmd.register_metadata_threshold(low_water)?; // poll
//! //   pmd.take_metadata_threshold_events() after metadata changes.
//!
//! // Messages: create_thin / create_snap / delete / set_transaction_id /
//! // reserve_metadata_snap / release_metadata_snap.
//! pmd.create_thin(dev_id)?;
//! pmd.create_snap(snap_id, origin_id)?;
//!
//! // Thin constructor/destructor hold the device open (delete -> Busy).
//! pmd.open_thin_device(dev_id)?;
//! pmd.close_thin_device(dev_id);
//!
//! // map(): non-blocking; WouldBlock means "defer to the worker".
//! match pmd.find_block(dev_id, vblock, false) {
//!     Ok(Some(r)) if !r.shared => { /* remap to r.block */ }
//!     Ok(Some(_)) | Ok(None) => { /* worker: break sharing / provision */ }
//!     Err(Error::WouldBlock) => { /* worker: blocking lookup */ }
//!     Err(e) => { /* metadata error: fail the pool */ }
//! }
//!
//! // Worker: provision (or break sharing: copy the data first).
//! let Some(b) = pmd.alloc_data_block()? else { /* out of data space */ };
//! pmd.insert_block(dev_id, vblock, b)?;        // the mapping takes b's reference
//!
//! // Discard: remove_range(dev, begin, end), or find_mapped_range +
//! // inc_data_range / dec_data_range around the passdown.
//!
//! // Periodic commit. Every commit (this one, reserve_metadata_snap,
//! // close) first calls the device's `BlockDevice::pre_commit`, where the
//! // pool's metadata device flushes the data device; on failure abort.
//! if pmd.commit().is_err() {
//!     pmd.abort()?;                            // Err: fail_io, only close
//! }
//! // Status: transaction_id, free_metadata_blocks, metadata_dev_size,
//! // free_data_blocks, data_dev_size, metadata_snap, needs_check,
//! // mapped_count, highest_mapped_block.
//! pmd.close()?;                                // final commit
//! let dev = pmd.into_device();
//! ```

//!
//! # Performance
//!
//! `thinmeta bench` (release, RAM disk, 1,000,000 mappings in one thin,
//! 64 Ki-block cache, a shared 2-core machine; after batched writes):
//!
//! ```text
//! alloc + insert (random vblocks) + commit   ~1,380,000 ops/s
//! lookup (random vblocks, all cached)        ~2,800,000 ops/s
//! non-blocking lookup (ascending vblocks)    ~9,700,000 ops/s
//! break sharing on a fresh snapshot            ~435,000 ops/s
//! remove_range of 1,000,000 mappings         ~1,600,000 ops/s
//! delete a 1,000,000-mapping thin           ~18,000,000 mappings/s
//! ```
//!
//! A lookup is four node visits (the top level, then a bottom-level tree of
//! depth three).

#![forbid(unsafe_code)]

pub mod block_time;
pub mod deleting;
pub mod devices;
pub mod device_details;
pub mod error;
pub mod in_flight;
pub mod metadata_snap;
pub mod pool_metadata;
pub mod space;
pub mod superblock;
pub mod thin_device;
pub mod value_types;

pub use block_time::BlockTime;
pub use deleting::Reclaimed;
pub use device_details::DeviceDetails;
pub use error::{Error, Result};
pub use pool_metadata::PoolMetadata;
pub use thin_device::{LookupResult, MappedRange, Miss, NodeMiss, ThinDevice, ThinId};
