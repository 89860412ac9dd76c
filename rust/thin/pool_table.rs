//! The pools of this module (C `dm_thin_pool_table`): found by metadata
//! device or mapped device when a `thin-pool` table is loaded (C
//! `__pool_find`), by mapped device when a thin is (C `__pool_table_lookup`),
//! and counted by the targets that use them.

use super::pool::Pool;
use crate::dm::{DevT, MdId};
use core::ffi::CStr;
use kernel::alloc::KVec;
use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};

struct Entry {
    pool: Arc<Pool>,
    users: u32,
}

/// The pools of this module (C `dm_thin_pool_table`), shared by both target
/// types as their registration context.
pub struct PoolTable {
    pools: KVec<Entry>,
    /// `dm_thin_rs` in debugfs: a directory per pool (see `pool_stats.rs`).
    debugfs: Dir,
}

/// The shared, locked table.
pub type SharedPools = Arc<Mutex<PoolTable>>;

/// Makes the empty shared table (module init).
pub fn new_shared_pools() -> Result<SharedPools> {
    let table = PoolTable {
        pools: KVec::new(),
        debugfs: Dir::new(c"dm_thin_rs"),
    };
    Arc::pin_init(new_mutex!(table), GFP_KERNEL)
}

/// What a `thin-pool` constructor asks of the table.
pub struct PoolKey<'a> {
    /// The pool's mapped device.
    pub md: MdId,
    /// Its name, for log lines.
    pub name: &'a CStr,
    /// The metadata device.
    pub metadata_dev: DevT,
    /// The data device.
    pub data_dev: DevT,
    /// Data block size in sectors.
    pub block_size: u32,
    /// Open read-only (`read_only` feature).
    pub read_only: bool,
}

impl PoolTable {
    /// C `__pool_find`: the pool of this metadata device or of this mapped
    /// device, or a new one. Counts one more user. Returns the pool and
    /// whether it was created. Sleeps.
    pub fn find_or_create(
        &mut self,
        key: &PoolKey<'_>,
    ) -> core::result::Result<(Arc<Pool>, bool), (&'static CStr, Error)> {
        if let Some(e) = self.pools.iter_mut().find(|e| e.pool.core().metadata_dev == key.metadata_dev) {
            let c = e.pool.core();
            if c.md != key.md {
                return Err((c"metadata device already in use by a pool", EBUSY));
            }
            if c.data_dev != key.data_dev {
                return Err((c"data device already in use by a pool", EBUSY));
            }
            e.users += 1;
            return Ok((e.pool.clone(), false));
        }
        if let Some(e) = self.pools.iter_mut().find(|e| e.pool.core().md == key.md) {
            let c = e.pool.core();
            if c.metadata_dev != key.metadata_dev || c.data_dev != key.data_dev {
                return Err((c"different pool cannot replace a pool", EINVAL));
            }
            e.users += 1;
            return Ok((e.pool.clone(), false));
        }
        self.pools
            .reserve(1, GFP_KERNEL)
            .map_err(|_| (c"Error allocating memory for pool", ENOMEM))?;
        let pool = Pool::create(
            key.md,
            key.name,
            key.metadata_dev,
            key.data_dev,
            key.block_size,
            key.read_only,
            &self.debugfs,
        )?;
        self.pools
            .push(
                Entry {
                    pool: pool.clone(),
                    users: 1,
                },
                GFP_KERNEL,
            )
            .map_err(|_| (c"Error allocating memory for pool", ENOMEM))?;
        Ok((pool, true))
    }

    /// C `__pool_table_lookup`: the pool whose mapped device is `md`,
    /// counting one more user.
    pub fn get_by_md(&mut self, md: MdId) -> Option<Arc<Pool>> {
        let e = self.pools.iter_mut().find(|e| e.pool.core().md == md)?;
        e.users += 1;
        Some(e.pool.clone())
    }

    /// C `__pool_dec`: one user fewer; the last one shuts the pool down and
    /// removes it from the table. Sleeps.
    pub fn put(&mut self, pool: &Arc<Pool>) {
        let Some(i) = self.pools.iter().position(|e| Arc::ptr_eq(&e.pool, pool)) else {
            return;
        };
        let last = match self.pools.get_mut(i) {
            Some(e) => {
                e.users = e.users.saturating_sub(1);
                e.users == 0
            }
            None => false,
        };
        if last {
            if let Some(e) = self.pools.get(i) {
                e.pool.shutdown();
            }
            let _ = self.pools.remove(i);
        }
    }
}
