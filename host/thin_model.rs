//! A simple in-memory model of a pool's metadata, the reference the
//! model-based tests check [`crate::metadata::PoolMetadata`] against.
//!
//! It knows the semantics of every `thinmeta apply` operation but not the
//! allocator: operations that allocate a data block are applied with the
//! block the real metadata chose, and the model checks that choice was free.

use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// Number of live mappings per data block.
    pub refs: HashMap<u64, u32>,
    /// Data blocks referenced by the metadata snapshot, if one is held.
    pub held: Option<HashSet<u64>>,
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

fn add_ref(refs: &mut HashMap<u64, u32>, b: u64) {
    *refs.entry(b).or_insert(0) += 1;
}

fn drop_ref(refs: &mut HashMap<u64, u32>, b: u64) {
    if let Some(c) = refs.get_mut(&b) {
        *c -= 1;
        if *c == 0 {
            refs.remove(&b);
        }
    }
}

impl ModelState {
    /// Whether data block `b` is referenced by nothing at all.
    pub fn block_free(&self, b: u64) -> bool {
        !self.refs.contains_key(&b)
            && !self.held.as_ref().is_some_and(|h| h.contains(&b))
            && b < self.nr_data_blocks
    }

    /// Data blocks in use (live or held).
    pub fn used_blocks(&self) -> u64 {
        let mut n = self.refs.len() as u64;
        if let Some(h) = &self.held {
            n += h.iter().filter(|b| !self.refs.contains_key(b)).count() as u64;
        }
        n
    }

    /// Whether a mapping made at `time` is shared (older than the device's
    /// last snapshot).
    pub fn shared(d: &ModelDevice, time: u32) -> bool {
        d.snapshotted_time > time
    }

    fn set_mapping(&mut self, dev: u64, v: u64, b: u64) {
        let t = self.time;
        if let Some(d) = self.devices.get_mut(&dev) {
            if let Some((old, _)) = d.mappings.insert(v, (b, t)) {
                drop_ref(&mut self.refs, old);
            }
            add_ref(&mut self.refs, b);
        }
    }

    fn unmap(&mut self, dev: u64, v: u64) {
        if let Some(d) = self.devices.get_mut(&dev) {
            if let Some((old, _)) = d.mappings.remove(&v) {
                drop_ref(&mut self.refs, old);
            }
        }
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

    /// Whether some data block is free now and was free at the last commit.
    pub fn can_allocate(&self) -> bool {
        (0..self.cur.nr_data_blocks).any(|b| {
            self.cur.block_free(b)
                && (b >= self.committed.nr_data_blocks || self.committed.block_free(b))
        })
    }

    /// Whether `op` must succeed (a `provision` may still fail for lack of
    /// space, which [`Self::apply`] accepts when the pool is full).
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
        match (ok, outcome) {
            (true, Outcome::Err) => {
                if matches!(op, Op::Provision(..)) && !self.can_allocate() {
                    return Ok(());
                }
                return Err(format!("{op}: model expected success, got an error"));
            }
            (false, Outcome::Ok(_)) => {
                return Err(format!("{op}: model expected an error, got success"))
            }
            (false, Outcome::Err) => return Ok(()),
            (true, Outcome::Ok(_)) => {}
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
                for &(b, _) in snap.mappings.values() {
                    add_ref(&mut s.refs, b);
                }
                s.devices.insert(d, snap);
            }
            Op::Delete(d) => {
                if let Some(dev) = s.devices.remove(&d) {
                    for &(b, _) in dev.mappings.values() {
                        drop_ref(&mut s.refs, b);
                    }
                }
            }
            Op::Insert(d, v, b) => s.set_mapping(d, v, b),
            Op::Provision(d, v) => {
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
                        s.set_mapping(d, v, b);
                    }
                    (need, got) => {
                        return Err(format!("{op}: model needs allocation: {need}, got {got:?}"))
                    }
                }
            }
            Op::Remove(d, v) => s.unmap(d, v),
            Op::RemoveRange(d, b, e) => {
                if b < e {
                    let keys: Vec<u64> = match s.devices.get(&d) {
                        Some(dev) => dev.mappings.range(b..e).map(|(k, _)| *k).collect(),
                        None => Vec::new(),
                    };
                    for k in keys {
                        s.unmap(d, k);
                    }
                }
            }
            Op::SetTransactionId(_, n) => s.trans_id = n,
            Op::ReserveMetadataSnap => {
                // The kernel commits first, then copies the committed trees.
                self.committed = s.clone();
                s.held = Some(s.refs.keys().copied().collect());
            }
            Op::ReleaseMetadataSnap => s.held = None,
            Op::ResizeData(n) => {
                s.nr_data_blocks = n;
                self.committed = s.clone();
            }
            Op::Commit => self.committed = s.clone(),
            Op::Abort => *s = self.committed.clone(),
        }
        Ok(())
    }
}

/// Checks everything the metadata says against the model state `s`:
/// devices, details, every mapping (by walking and by lookup, with sharing),
/// unmapped lookups, free data blocks and reference counts.
pub fn check_against<D: crate::pdata::block_device::BlockDevice>(
    pmd: &mut crate::metadata::PoolMetadata<D>,
    s: &ModelState,
    rng: &mut crate::rng::Rng,
) -> Result<(), String> {
    let e = |x: crate::metadata::Error| format!("api error: {x:?}");
    if pmd.transaction_id().map_err(e)? != s.trans_id {
        return Err("transaction id differs".into());
    }
    if pmd.time() != s.time {
        return Err(format!("time {} != model {}", pmd.time(), s.time));
    }
    if pmd.data_dev_size().map_err(e)? != s.nr_data_blocks {
        return Err("data device size differs".into());
    }
    let mut ids = Vec::new();
    pmd.walk_devices(|id, d| {
        ids.push((id, *d));
        Ok(())
    })
    .map_err(e)?;
    let model_ids: Vec<u64> = s.devices.keys().copied().collect();
    let real_ids: Vec<u64> = ids.iter().map(|(i, _)| *i).collect();
    if real_ids != model_ids {
        return Err(format!("devices {real_ids:?} != model {model_ids:?}"));
    }
    for (id, d) in &ids {
        let md = &s.devices[id];
        if d.mapped_blocks != md.mappings.len() as u64
            || d.transaction_id != md.transaction_id
            || d.creation_time != md.creation_time
            || d.snapshotted_time != md.snapshotted_time
        {
            return Err(format!(
                "device {id}: details {d:?} != model {} mappings, {md:?}",
                md.mappings.len()
            ));
        }
        if pmd.device_details(*id).map_err(e)? != Some(*d) {
            return Err(format!(
                "device {id}: device_details differs from walk_devices"
            ));
        }
    }
    for (id, md) in &s.devices {
        let mut got = Vec::with_capacity(md.mappings.len());
        pmd.walk_mappings(*id, |v, bt| {
            got.push((v, (bt.block, bt.time)));
            Ok(())
        })
        .map_err(e)?;
        let want: Vec<(u64, (u64, u32))> = md.mappings.iter().map(|(k, v)| (*k, *v)).collect();
        if got != want {
            let diff = got.iter().zip(want.iter()).find(|(a, b)| a != b);
            return Err(format!(
                "device {id}: mappings differ: {} vs model {}; first difference {diff:?}",
                got.len(),
                want.len()
            ));
        }
        for (&v, &(b, t)) in &md.mappings {
            let r = pmd
                .find_block(*id, v, true)
                .map_err(e)?
                .ok_or(format!("dev {id} block {v} not found"))?;
            if r.block != b || r.shared != ModelState::shared(md, t) {
                return Err(format!("dev {id} block {v}: {r:?} != model ({b}, {t})"));
            }
        }
        for _ in 0..32 {
            let v = rng.below(1 << 20);
            if !md.mappings.contains_key(&v) && pmd.find_block(*id, v, true).map_err(e)?.is_some() {
                return Err(format!("dev {id} block {v} mapped but not in the model"));
            }
        }
        for _ in 0..8 {
            let begin = rng.below(md.mappings.keys().next_back().map_or(64, |h| h + 2));
            let end = begin + rng.below(512);
            let want = expected_range(md, begin, end);
            let got = pmd.find_mapped_range(*id, begin, end).map_err(e)?;
            if got != want {
                return Err(format!(
                    "dev {id}: find_mapped_range({begin}, {end}) = {got:?}, model {want:?}"
                ));
            }
        }
        match (
            pmd.highest_mapped_block(*id).map_err(e)?,
            md.mappings.keys().next_back(),
        ) {
            (a, b) if a == b.copied() => {}
            (a, b) => return Err(format!("dev {id}: highest mapped {a:?} != model {b:?}")),
        }
    }
    let free = pmd.free_data_blocks().map_err(e)?;
    let want_free = s.nr_data_blocks - s.used_blocks();
    if free != want_free {
        return Err(format!("free data blocks {free} != model {want_free}"));
    }
    for (&b, _) in s.refs.iter().take(2000) {
        if pmd.data_block_count(b).map_err(e)? == 0 {
            return Err(format!("data block {b} is mapped but has no reference"));
        }
    }
    Ok(())
}

/// The model state a `thin_dump` XML describes (no metadata snapshot).
pub fn state_from_dump(d: &crate::thin_xml::XmlDump) -> ModelState {
    let mut s = ModelState {
        time: d.superblock.time as u32,
        trans_id: d.superblock.transaction,
        nr_data_blocks: d.superblock.nr_data_blocks,
        ..Default::default()
    };
    for dev in &d.devices {
        let md = ModelDevice {
            mappings: dev.mappings.iter().map(|&(v, b, t)| (v, (b, t))).collect(),
            transaction_id: dev.transaction,
            creation_time: dev.creation_time as u32,
            snapshotted_time: dev.snap_time as u32,
        };
        for &(b, _) in md.mappings.values() {
            add_ref(&mut s.refs, b);
        }
        s.devices.insert(dev.dev_id, md);
    }
    s
}

/// Checks that a parsed `thin_dump` shows exactly the model state `s`.
pub fn dump_matches(d: &crate::thin_xml::XmlDump, s: &ModelState) -> Result<(), String> {
    let sb = &d.superblock;
    if sb.time != s.time as u64
        || sb.transaction != s.trans_id
        || sb.nr_data_blocks != s.nr_data_blocks
    {
        return Err(format!(
            "superblock {sb:?} != model time {} trans {} nr {}",
            s.time, s.trans_id, s.nr_data_blocks
        ));
    }
    let ids: Vec<u64> = d.devices.iter().map(|x| x.dev_id).collect();
    let want: Vec<u64> = s.devices.keys().copied().collect();
    if ids != want {
        return Err(format!("devices {ids:?} != model {want:?}"));
    }
    for dev in &d.devices {
        let md = &s.devices[&dev.dev_id];
        if dev.mapped_blocks != md.mappings.len() as u64
            || dev.transaction != md.transaction_id
            || dev.creation_time != md.creation_time as u64
            || dev.snap_time != md.snapshotted_time as u64
        {
            return Err(format!(
                "device {} details differ from the model",
                dev.dev_id
            ));
        }
        let got: Vec<(u64, u64, u32)> = dev.mappings.clone();
        let want: Vec<(u64, u64, u32)> =
            md.mappings.iter().map(|(&v, &(b, t))| (v, b, t)).collect();
        if got != want {
            return Err(format!(
                "device {} mappings differ ({} vs model {})",
                dev.dev_id,
                got.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

/// What `find_mapped_range` must return for the model device `md`.
fn expected_range(md: &ModelDevice, begin: u64, end: u64) -> Option<crate::metadata::MappedRange> {
    let (&first, &(b0, t0)) = md.mappings.range(begin..).next()?;
    if first >= end {
        return None;
    }
    let shared = ModelState::shared(md, t0);
    let mut cur = first + 1;
    let mut pool_end = b0 + 1;
    while cur < end {
        match md.mappings.get(&cur) {
            Some(&(b, t)) if b == pool_end && ModelState::shared(md, t) == shared => {
                cur += 1;
                pool_end += 1;
            }
            _ => break,
        }
    }
    Some(crate::metadata::MappedRange {
        thin_begin: first,
        thin_end: cur,
        pool_begin: b0,
        maybe_shared: shared,
    })
}
