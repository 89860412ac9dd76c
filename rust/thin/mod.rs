//! Thin provisioning: the metadata API, the pool object and the `thin-pool`
//! and `thin` targets. Safe Rust over `crate::dm`; the lint below makes
//! the compiler refuse any FFI code in this layer.

#![forbid(unsafe_code)]

#[allow(dead_code, unused_imports)]
pub mod metadata;
mod discard;
mod io_epochs;
mod lookup;
mod mapping;
mod metadata_dev;
mod per_cpu;
pub mod pool;
mod pool_message;
mod pool_stats;
mod pool_table;
mod pool_target;
mod reclaim;
mod prison;
pub mod table_line;
mod thin;
mod thin_target;
mod trim;
mod worker;

pub use pool_table::new_shared_pools;
pub use pool_target::PoolTarget;
pub use thin_target::ThinTarget;

/// Both targets report the version of the C targets they replace.
pub const TARGET_VERSION: [u32; 3] = [1, 24, 0];
