// SPDX-License-Identifier: GPL-2.0

//! dm-thin-rs: the device-mapper `thin-pool` and `thin` targets in Rust.
//!
//! Layers, bottom to top: `bindings` (bindgen output and C helpers), `dm`
//! (safe device-mapper abstractions, the only FFI), `pdata` (persistent
//! data: block manager, btrees, space maps), `thin` (metadata, targets).
//!
//! Load beside the C module with other target names:
//! `insmod dm_thin_rs.ko pool_target=rthin-pool thin_target=rthin`.

// The pure layers are also a public library of the host crate (tests,
// thinmeta), so their items are `pub`; inside the module nothing is exported.
#![allow(unreachable_pub)]

use kernel::prelude::*;

mod bindings;
// The bio and limits half of the dm layer, and the whole metadata engine,
// are consumed by the pool engine (the I/O-path issue); until then they are
// compiled and host-tested but not yet called from the targets.
#[allow(dead_code, unused_imports)]
mod dm;
#[allow(dead_code, unused_imports)]
mod pdata;
mod thin;

module! {
    type: DmThinRs,
    name: "dm_thin_rs",
    authors: ["dm-thin-rs developers"],
    description: "device-mapper thin provisioning targets (thin-pool, thin) in Rust",
    license: "GPL",
}

/// The module: both target types, registered for its lifetime and
/// unregistered at its exit (drop), when no table of them is left.
pub struct DmThinRs {
    thin: Option<dm::TargetType<thin::ThinTarget>>,
    pool: Option<dm::TargetType<thin::PoolTarget>>,
}

impl kernel::Module for DmThinRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let pools = thin::new_shared_pools()?;
        let pool = dm::TargetType::<thin::PoolTarget>::register(
            dm::pool_target_name(),
            thin::TARGET_VERSION,
            thin::PoolTarget::FEATURES,
            module,
            pools.clone(),
        )?;
        let thin = match dm::TargetType::<thin::ThinTarget>::register(
            dm::thin_target_name(),
            thin::TARGET_VERSION,
            thin::ThinTarget::FEATURES,
            module,
            pools,
        ) {
            Ok(t) => t,
            Err(e) => {
                // The init fails: the module goes, as at its exit.
                pool.unregister();
                return Err(e);
            }
        };
        pr_info!(
            "registered targets {:?} and {:?}\n",
            dm::pool_target_name(),
            dm::thin_target_name()
        );
        Ok(DmThinRs {
            thin: Some(thin),
            pool: Some(pool),
        })
    }
}

impl Drop for DmThinRs {
    /// Module exit: no table of either type is left (each holds a module
    /// reference), so both types are unregistered.
    fn drop(&mut self) {
        if let Some(t) = self.thin.take() {
            t.unregister();
        }
        if let Some(p) = self.pool.take() {
            p.unregister();
        }
    }
}
