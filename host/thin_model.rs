//! A simple in-memory model of a pool's metadata, the reference the
//! model-based tests check [`crate::metadata::PoolMetadata`] against.
//!
//! It knows the semantics of every `thinmeta apply` operation but not the
//! allocator: operations that allocate a data block are applied with the
//! block the real metadata chose, and the model checks that choice was free.

use std::collections::{BTreeMap, HashMap};

use crate::thin_script::Op;

/// A thin device as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelDevice {
    /// Virtual block -> (data block, time).
    pub mappings: BTreeMap<u64, (u64, u32)>,
    pub transaction_id: u64,
    pub creation_time: u32,
    pub snapshotted_time: u32,
}

/// The committed or in-progress state of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelState {
    pub devices: BTreeMap<u64, ModelDevice>,
    pub time: u32,
    pub trans_id: u64,
    pub nr_data_blocks: u64,
    /// Device mappings captured by the metadata snapshot, if one is held.
    pub held: Option<BTreeMap<u64, ModelDevice>>,
}

/// The model: current state and last committed state.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub cur: ModelState,
    pub committed: ModelState,
}

/// What an operation did, as far as the model can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for `provision`, the data block it allocated if any.
    Ok(Option<u64>),
    /// Refused (the real metadata must refuse too).
    Err,
}

impl ModelState {
    /// Reference count of every data block used by the live devices and the
    /// metadata snapshot (a held tree keeps its blocks referenced).
    pub fn data_refs(&self) -> HashMap<u64, u32> {
        let mut m = HashMap::new();
        for d in self.devices.values() {
            for &(b, _) in d.mappings.values() {
                *m.entry(b).or_insert(0) += 1;
            }
        }
        m
    }

    /// Whether data block `b` is referenced by nothing at all.
    pub fn block_free(&self, b: u64) -> bool {
        let live = self
            .devices
            .values()
            .any(|d| d.mappings.values().any(|&(x, _)| x == b));
        let held = self.held.as_ref().is_some_and(|h| {
            h.values()
                .any(|d| d.mappings.values().any(|&(x, _)| x == b))
        });
        !live && !held && b < self.nr_data_blocks
    }

    /// Whether a mapping is shared (time older than the device's last snapshot).
    pub fn shared(d: &ModelDevice, time: u32) -> bool {
        d.snapshotted_time > time
    }
}

impl Model {
    /// A freshly formatted pool.
    pub fn new(nr_data_blocks: u64) -> Self {
        let s = ModelState {
            nr_data_blocks,
            ..Default::default()
        };
        Model {
            cur: s.clone(),
            committed: s,
        }
    }

    /// Predicts whether `op` may succeed (`None`: depends on the allocator,
    /// i.e. `provision` that needs a block).
    pub fn expect_ok(&self, op: &Op) -> bool {
        let s = &self.cur;
        match *op {
            Op::CreateThin(d) => !s.devices.contains_key(&d),
            Op::CreateSnap(d, o) => !s.devices.contains_key(&d) && s.devices.contains_key(&o),
            Op::Delete(d) => s.devices.contains_key(&d),
            Op::Insert(d, _, b) => s.devices.contains_key(&d) && b < s.nr_data_blocks,
            Op::Provision(d, _) => s.devices.contains_key(&d),
            Op::Remove(d, v) => s
                .devices
                .get(&d)
                .is_some_and(|x| x.mappings.contains_key(&v)),
            Op::RemoveRange(d, _, _) => s.devices.contains_key(&d),
            Op::SetTransactionId(o, _) => s.trans_id == o,
            Op::ReserveMetadataSnap => s.held.is_none(),
            Op::ReleaseMetadataSnap => s.held.is_some(),
            Op::ResizeData(n) => n >= s.nr_data_blocks,
            Op::Commit | Op::Abort => true,
        }
    }

    /// Applies `op`, which the real metadata did with `outcome`. Returns a
    /// description of the disagreement, if any.
    pub fn apply(&mut self, op: &Op, outcome: Outcome) -> Result<(), String> {
        let ok = self.expect_ok(op);
        let provision_nospace = matches!(op, Op::Provision(..)) && outcome == Outcome::Err;
        match (ok, outcome) {
            (true, Outcome::Err) if !provision_nospace => {
                return Err(format!("{op}: model expected success, got an error"))
            }
            (false, Outcome::Ok(_)) => {
                return Err(format!("{op}: model expected an error, got success"))
            }
            (_, Outcome::Err) => return Ok(()),
            _ => {}
        }
        let Outcome::Ok(alloc) = outcome else {
            return Ok(());
        };
        let s = &mut self.cur;
        match *op {
            Op::CreateThin(d) => {
                s.devices.insert(
                    d,
                    ModelDevice {
                        transaction_id: s.trans_id,
                        creation_time: s.time,
                        snapshotted_time: s.time,
                        ..Default::default()
                    },
                );
            }
            Op::CreateSnap(d, o) => {
                s.time = s.time.wrapping_add(1);
                let t = s.time;
                let origin = s.devices.get_mut(&o).ok_or("origin vanished")?;
                origin.snapshotted_time = t;
                let snap = ModelDevice {
                    mappings: origin.mappings.clone(),
                    transaction_id: s.trans_id,
                    creation_time: t,
                    snapshotted_time: t,
                };
                s.devices.insert(d, snap);
            }
            Op::Delete(d) => {
                s.devices.remove(&d);
            }
            Op::Insert(d, v, b) => {
                let t = s.time;
                s.devices
                    .get_mut(&d)
                    .ok_or("no dev")?
                    .mappings
                    .insert(v, (b, t));
            }
            Op::Provision(d, v) => {
                let t = s.time;
                let dev = s.devices.get(&d).ok_or("no dev")?;
                let need = match dev.mappings.get(&v) {
                    None => true,
                    Some(&(_, mt)) => ModelState::shared(dev, mt),
                };
                match (need, alloc) {
                    (false, None) => {}
                    (true, Some(b)) => {
                        if !s.block_free(b) {
                            return Err(format!("{op}: allocated block {b} is in use"));
                        }
                        if !self.committed.block_free(b) && b < self.committed.nr_data_blocks {
                            return Err(format!(
                                "{op}: allocated block {b} was in use at the last commit"
                            ));
                        }
                        s.devices
                            .get_mut(&d)
                            .ok_or("no dev")?
                            .mappings
                            .insert(v, (b, t));
                    }
                    (need, got) => {
                        return Err(format!("{op}: model needs allocation {need}, got {got:?}"))
                    }
                }
            }
            Op::Remove(d, v) => {
                s.devices.get_mut(&d).ok_or("no dev")?.mappings.remove(&v);
            }
            Op::RemoveRange(d, b, e) => {
                let dev = s.devices.get_mut(&d).ok_or("no dev")?;
                if b < e {
                    let keys: Vec<u64> = dev.mappings.range(b..e).map(|(k, _)| *k).collect();
                    for k in keys {
                        dev.mappings.remove(&k);
                    }
                }
            }
            Op::SetTransactionId(_, n) => s.trans_id = n,
            Op::ReserveMetadataSnap => {
                // The kernel commits first, then copies the committed trees.
                self.committed = s.clone();
                s.held = Some(s.devices.clone());
            }
            Op::ReleaseMetadataSnap => s.held = None,
            Op::ResizeData(n) => s.nr_data_blocks = n,
            Op::Commit => self.committed = s.clone(),
            Op::Abort => *s = self.committed.clone(),
        }
        Ok(())
    }
}
