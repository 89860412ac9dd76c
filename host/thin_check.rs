//! `thinmeta check`: validates a pool's metadata with the engine's own
//! readers, in `thin_check`'s stages and with its report.
//!
//! The stages, each announced as `thin_check` 0.9.0 does on stderr:
//! - *examining superblock*: the engine opens the pool read-only (superblock
//!   checksum, location, version and features, both space map roots);
//! - *examining devices tree*: every device's details, through the
//!   validated btree reads of `pdata::btree`;
//! - *examining mapping tree*: every mapping of every device, walked in
//!   key order through the same validators; a device's walk must yield
//!   exactly its `mapped_blocks`, and every data block must lie on the data
//!   device;
//! - *checking space map counts*: every mapped data block has a reference;
//!   without a metadata snapshot (whose leaves hold references of their
//!   own), no block has more references than mappings pointing at it (a
//!   mapping leaf shared by several devices holds one reference for all of
//!   them, so fewer is sound) and a referenced block nothing maps is
//!   leaked; the free count agrees with the counts.
//!
//! A clean pool prints `TRANSACTION_ID=` and `METADATA_FREE_BLOCKS=` on
//! stdout, as `thin_check` does, with the metadata space map's free count
//! as 1.1.0 prints it (0.9.0 prints the device's size less one). What it does not do: walk the metadata
//! snapshot's trees, or recount the metadata space map block by block
//! (the engine has no reader for either outside its write path).

use std::collections::HashMap;

use crate::metadata::{PoolMetadata, ThinId};
use crate::pdata::block_device::BlockDevice;

/// What a clean pool reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub transaction_id: u64,
    /// Free blocks of the metadata space map (no commit reserve taken off).
    pub metadata_free_blocks: u64,
}

/// The stages, in order, as `thin_check` names them.
pub const STAGES: [&str; 4] = [
    "examining superblock",
    "examining devices tree",
    "examining mapping tree",
    "checking space map counts",
];

/// Checks the pool on `dev`. `stage` is called with each stage's name as
/// it begins. The errors found, if any, each on its own line.
pub fn check<D: BlockDevice>(
    dev: D,
    cache_blocks: usize,
    mut stage: impl FnMut(&str),
) -> Result<Summary, Vec<String>> {
    stage(STAGES[0]);
    let mut pmd = PoolMetadata::open_with_cache(dev, None, false, cache_blocks)
        .map_err(|e| vec![format!("superblock: cannot open the metadata: {e:?}")])?;
    let nr_data = pmd
        .data_dev_size()
        .map_err(|e| vec![format!("superblock: data space map: {e:?}")])?;

    stage(STAGES[1]);
    let mut devs = Vec::new();
    pmd.walk_devices(|id, d| {
        devs.push((id, *d));
        Ok(())
    })
    .map_err(|e| vec![format!("devices tree: {e:?}")])?;

    stage(STAGES[2]);
    let mut errors = Vec::new();
    let mut refs: HashMap<u64, u32> = HashMap::new();
    for &(id, details) in &devs {
        let (mut count, mut beyond) = (0u64, None);
        let walk = pmd.walk_mappings(id, |v, bt| {
            count += 1;
            if bt.block >= nr_data && beyond.is_none() {
                beyond = Some((v, bt.block));
            }
            *refs.entry(bt.block).or_insert(0) += 1;
            Ok(())
        });
        if let Err(e) = walk {
            errors.push(format!("mapping tree of device {id}: {e:?}"));
            continue;
        }
        if let Some((v, b)) = beyond {
            errors.push(format!(
                "device {id}: block {v} maps to data block {b}, beyond the {nr_data} of the data device"
            ));
        }
        if count != details.mapped_blocks {
            errors.push(device_count_error(id, details.mapped_blocks, count));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    stage(STAGES[3]);
    let held = pmd.superblock_info().held_root != 0;
    let mut in_use = 0u64;
    for b in 0..nr_data {
        let c = match pmd.data_block_count(b) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("data space map: block {b}: {e:?}"));
                break;
            }
        };
        let n = refs.get(&b).copied().unwrap_or(0);
        if c > 0 {
            in_use += 1;
        }
        if n > 0 && c == 0 {
            errors.push(format!("data block {b}: mapped {n} times but free"));
        } else if c > n && !held {
            errors.push(format!(
                "data block {b}: reference count {c}, but {n} mappings point at it"
            ));
        }
    }
    match pmd.free_data_blocks() {
        Ok(free) if errors.is_empty() && free != nr_data - in_use => errors.push(format!(
            "data space map: {free} blocks free, but {} have no reference",
            nr_data - in_use
        )),
        Ok(_) => {}
        Err(e) => errors.push(format!("data space map: {e:?}")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let transaction_id = pmd
        .transaction_id()
        .map_err(|e| vec![format!("superblock: {e:?}")])?;
    // The engine keeps a commit reserve off its free count; thin_check
    // reports the space map's own.
    let reserve = 4096.min(pmd.metadata_dev_size().unwrap_or(0) / 10);
    let metadata_free_blocks = pmd
        .free_metadata_blocks()
        .map(|f| f + reserve)
        .map_err(|e| vec![format!("metadata space map: {e:?}")])?;
    Ok(Summary {
        transaction_id,
        metadata_free_blocks,
    })
}

fn device_count_error(id: ThinId, recorded: u64, walked: u64) -> String {
    format!("device {id}: mapped_blocks is {recorded}, but its mapping tree holds {walked}")
}
