//! Thin provisioning: the metadata API and the `thin-pool` and `thin` targets.

#[allow(dead_code, unused_imports)]
pub mod metadata;
mod pool_target;
pub mod table_line;
mod thin_target;

pub use pool_target::PoolTarget;
pub use thin_target::ThinTarget;

/// Both targets report the version of the C targets they replace.
pub const TARGET_VERSION: [u32; 3] = [1, 24, 0];
