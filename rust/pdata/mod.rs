//! Persistent data: the copy-on-write block, btree and space-map layer under
//! the thin metadata, byte-compatible with the kernel's `drivers/md/persistent-data`.
//!
//! Plain `no_std` Rust with no kernel calls: compiled into `dm_thin_rs.ko`
//! and, from the very same files, into the host crate for `cargo test`.
//!
//! Layers, bottom up: [`block_device`] (the device trait), [`block_manager`]
//! (cache, locks, validators), [`transaction_manager`] (shadowing, commit,
//! with the metadata space map inside), [`btree`] and [`space_map`].
//!
//! # Usage
//!
//! ```ignore
//! use crate::pdata::block_manager::BlockManager;
//! use crate::pdata::transaction_manager::{Transaction, TransactionManager};
//! use crate::pdata::space_map::DiskSpaceMap;
//! use crate::pdata::btree::{Btree, U64Value};
//!
//! // Format: metadata space map over the whole device, superblock at block 0.
//! let bm = BlockManager::new(dev, 1024)?;           // cache of 1024 blocks
//! let mut tm = TransactionManager::create(bm, 0)?;
//! // Data space map (its structures live on the metadata device).
//! let mut data_sm = DiskSpaceMap::create(&mut tm, nr_data_blocks)?;
//!
//! // A btree of u64 values (levels = 1; the thin mapping tree has 2).
//! let tree: Btree<U64Value> = Btree::new(1);
//! let mut root = tree.empty(&mut tm)?;
//! root = tree.insert(&mut tm, &mut (), root, &[42], &7)?;
//! assert_eq!(tree.lookup(&mut tm, root, &[42])?, Some(7));
//! let (r, found) = tree.remove(&mut tm, &mut (), root, &[42])?;
//! root = r;                                   // always store the new root
//!
//! // Commit: data sm first, then the metadata (superblock written last).
//! data_sm.commit(&mut tm)?;
//! let data_root = data_sm.root();
//! tm.commit_with(0, &MY_SB_VALIDATOR, /*zero=*/true, |sb, meta_root| {
//!     // fill the superblock: meta_root.pack(&mut sb[..]), data_root, root...
//!     Ok(())
//! })?;
//!
//! // Reopen from a saved metadata space-map root (from the superblock):
//! let mut tm = TransactionManager::open(bm, 0, &sb_metadata_sm_root[..])?;
//! let mut data_sm = DiskSpaceMap::open(&mut tm, &sb_data_sm_root[..])?;
//!
//! // Abort: back to the last durable commit (the caller reloads its own
//! // roots; after a *failed* commit reopen the data sm from the superblock,
//! // otherwise `data_sm.abort()` is enough).
//! tm.abort()?;
//! data_sm.abort();
//!
//! // Metadata low-water mark, polled after allocations:
//! tm.set_metadata_threshold(threshold_blocks);
//! for _ in 0..tm.take_threshold_events() { /* raise the dm event */ }
//!
//! // Non-blocking lookup (fails with Error::WouldBlock on a cache miss):
//! let v = tree.lookup(&mut tm.non_blocking(), root, &[42])?;
//! ```
//!
//! Locks are handles ([`block_manager::ReadLock`], [`block_manager::WriteLock`])
//! that do not borrow the manager; release every one you take
//! (`tm.bm().unlock(l)` / `unlock_write(l)`).
//!
//! Kernel constraints kept throughout: only `core` and the [`alloc`] seam,
//! no FFI or raw pointers, no panics on disk content or arguments (checked arithmetic,
//! no `u128`/floats, bounds-checked access to disk-derived offsets), no
//! block-sized buffers on the stack (the deepest nested path measured about
//! 4 KiB of stack on the host, see `tests/pdata_stack.rs`).
//!
//! Value types with reference-counting hooks implement
//! [`btree::ValueType`]; the hooks receive a caller context (for example
//! `&mut DiskSpaceMap` for block-time values) and the transaction.
//!
//! The commit contract (the owner's data barrier, `BlockDevice::pre_commit`,
//! then one batch, a flush and the FUA superblock) is in
//! [`transaction_manager`]; the I/O pattern and cache memory bound in
//! [`block_manager`].
//!
//! # C names
//!
//! What `dm-thin-metadata.c` calls, and where it is here:
//!
//! | C | here |
//! |---|---|
//! | `dm_bm_checksum` | [`checksum::dm_bm_checksum`] |
//! | `dm_bm_read_lock` / `_try_lock` / `write_lock` / `write_lock_zero` | [`block_manager::BlockManager`] `read_lock`, `read_try_lock`, `write_lock`, `write_lock_zero` |
//! | `dm_tm_create_with_sm` / `dm_tm_open_with_sm` | [`transaction_manager::TransactionManager::create`] / `open` |
//! | `dm_tm_inc` / `dec` / `shadow_block` / `new_block` | [`transaction_manager::Transaction`] |
//! | `dm_tm_pre_commit` / `dm_tm_commit` | `TransactionManager::pre_commit` / `commit` |
//! | `dm_tm_create_non_blocking_clone` | `TransactionManager::non_blocking` |
//! | `dm_sm_disk_create` / `open`, `dm_sm_*` | [`space_map::DiskSpaceMap`] (`new_block` gives `Option`) |
//! | metadata space map, threshold callback | `TransactionManager::nr_free`, `set_metadata_threshold`, `take_threshold_events` |
//! | `dm_btree_empty` / `lookup` / `insert_notify` / `remove` / `remove_leaves` / `lookup_next` / `find_highest_key` / `del` | [`btree::Btree`] |

#![forbid(unsafe_code)]

pub mod alloc;
pub mod block_device;
pub mod block_manager;
pub mod btree;
pub mod checksum;
pub mod endian;
pub mod error;
pub mod space_map;
pub mod transaction_manager;
