//! The worker's lookups (C `dm_thin_find_block` with `can_issue_io`), made
//! under the pool's state lock held *shared*: `map`s on other CPUs go on
//! looking up while the worker waits for metadata I/O, where before every
//! one of them deferred to the worker for as long as its read took.
//!
//! A lookup that misses the cache names the btree node it stopped at
//! ([`PoolMetadata::find_block_or_miss`](super::metadata::PoolMetadata::find_block_or_miss)).
//! The worker reads that node from the metadata device with no lock held,
//! takes the lock exclusively only to put the copy in the cache
//! ([`install_node`](super::metadata::PoolMetadata::install_node), which
//! refuses a copy a write since the miss may have made stale, and a copy
//! of a block cached meanwhile), and looks up again, one level further
//! down. After [`MAX_ROUNDS`] such rounds, and wherever the shared lookup
//! cannot go (a node write-locked, the thin's details not loaded, any
//! error, a failed read), it takes the lock exclusively and makes the
//! blocking lookup, which gives the answer or error C's would.

use super::metadata::{Error as MdError, LookupResult, Miss, ThinId};
use super::pool::PoolCore;
use crate::dm::{IoBuf, SECTOR_SIZE};
use crate::pdata::block_device::BLOCK_SIZE;

/// Reads a lookup may make outside the lock before it locks: the depth of
/// a deep mapping tree (top level, then the thin's), so a cold lookup
/// finishes shared.
const MAX_ROUNDS: usize = 8;

/// The worker's buffer for those reads (allocated on its first miss).
#[derive(Default)]
pub(crate) struct MissBuf(Option<IoBuf>);

impl PoolCore {
    /// The mapping of `vblock` of thin `dev`, `None` if unmapped. Sleeps.
    pub(crate) fn find_block(
        &self,
        buf: &mut MissBuf,
        dev: ThinId,
        vblock: u64,
    ) -> Result<Option<LookupResult>, MdError> {
        for _ in 0..MAX_ROUNDS {
            let miss = match self.read().pmd.find_block_or_miss(dev, vblock) {
                Ok(r) => return Ok(r),
                Err(Miss::Node(m)) => m,
                Err(Miss::Error(_)) => break,
            };
            if buf.0.is_none() {
                buf.0 = IoBuf::new(BLOCK_SIZE).ok();
            }
            let Some(io) = buf.0.as_mut() else { break };
            let sectors = (BLOCK_SIZE as u64) / SECTOR_SIZE;
            let Some(sector) = miss.block.checked_mul(sectors) else { break };
            if self.meta.read(sector, io).is_err() {
                break;
            }
            if self.lock().pmd.install_node(&miss, io.as_slice()).is_err() {
                break;
            }
            self.stats.lookup_read();
        }
        self.stats.lookup_locked();
        self.lock().pmd.find_block(dev, vblock, true)
    }
}
