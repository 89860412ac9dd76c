//! Persistent data: the copy-on-write block, btree and space-map layer under
//! the thin metadata, byte-compatible with the kernel's `drivers/md/persistent-data`.
//!
//! Plain `no_std` Rust with no kernel calls: compiled into `dm_thin_rs.ko`
//! and, from the very same files, into the host crate for `cargo test`.

pub mod alloc;
pub mod error;
