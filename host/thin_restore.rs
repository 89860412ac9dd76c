//! `thinmeta restore`: builds a pool from `thin_dump` XML with the engine's
//! own operations, the ones the pool target issues.
//!
//! `thin_restore` writes btrees directly; here every device, mapping and
//! detail comes from `create_thin`, `create_snap`, `insert_block` (with the
//! data block's reference, as `thinmeta apply`'s `insert`), `remove_block`,
//! `delete_thin_device` and `set_transaction_id`, so the image is one the
//! engine could have made in service. The dump is replayed in pool time:
//! - pool time only moves by snapshots, so each step from `t` to `t + 1`
//!   is one `create_snap`. A device whose `snap_time` is past its
//!   `creation_time` is the origin of the snapshot at its `snap_time`; a
//!   device holding mappings older than its `creation_time` *is* the
//!   snapshot made at its `creation_time`, and inherits those mappings from
//!   its origin (that device, or a scratch device that holds only them).
//!   Steps nobody needs are taken with a scratch pair;
//! - a device is created at its `creation_time`, with the pool's
//!   transaction id set to its `transaction` first; each mapping is
//!   inserted at its time, into the device or, for an inherited one, into
//!   whichever device it is inherited through (on up the chain of origins
//!   until one existed at that time);
//! - at the end, mappings that were only there to be inherited are
//!   removed, scratch devices deleted, the transaction id and flags set,
//!   and the result committed.
//!
//! The result is then walked and compared with the dump; a dump no
//! sequence of those operations makes (two snapshots in one time step, a
//! `snap_time` before the `creation_time`, a `mapped_blocks` that is not
//! the device's mapping count, a mapping an origin had overwritten before
//! the snapshot that should inherit it) is refused with the reason.

use std::collections::{BTreeMap, HashMap};

use crate::metadata::{Error, PoolMetadata, ThinId};
use crate::pdata::block_device::BlockDevice;
use crate::thin_script::{execute, Op};
use crate::thin_xml::{XmlDevice, XmlDump};

/// Pool times beyond this are refused: each step is a snapshot.
pub const MAX_TIME: u64 = 1 << 20;

/// Inserts between intermediate commits.
const COMMIT_EVERY: u64 = 50_000;

/// Who plays the origin or the snapshot at one step of pool time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Real(ThinId),
    Scratch(ThinId),
}

impl Role {
    fn id(self) -> ThinId {
        match self {
            Role::Real(i) | Role::Scratch(i) => i,
        }
    }
}

/// A restore plan: what happens at each pool time.
#[derive(Default)]
struct Plan {
    /// Devices made with `create_thin`, by creation time.
    thins: BTreeMap<u64, Vec<ThinId>>,
    /// The snapshot taken to step into each time: (snapshot, origin).
    steps: BTreeMap<u64, (Role, Role)>,
    /// Mappings to insert at each time: (holder, virtual, data).
    inserts: BTreeMap<u64, Vec<(ThinId, u64, u64)>>,
    /// Scratch origins, made at time 0 and deleted after their snapshot.
    scratch_origins: Vec<ThinId>,
    /// The first scratch id not taken.
    next_scratch: ThinId,
}

fn unreachable(why: String) -> String {
    format!("not reachable through the engine's operations: {why}")
}

/// A device's mappings older than its creation: it must be a snapshot.
fn inherited(d: &XmlDevice) -> impl Iterator<Item = &(u64, u64, u32)> {
    d.mappings
        .iter()
        .filter(move |m| u64::from(m.2) < d.creation_time)
}

/// Why a plan could not be made.
enum NoPlan {
    Refused(String),
    /// This device must be made as a snapshot too: something inherited
    /// passes through it before its own first mapping that is older.
    Snapshot(ThinId),
}

impl From<String> for NoPlan {
    fn from(s: String) -> Self {
        NoPlan::Refused(s)
    }
}

/// The plan for `dump`, making as few devices snapshots as will do.
fn plan(dump: &XmlDump) -> Result<Plan, String> {
    let mut forced = Vec::new();
    loop {
        match plan_with(dump, &forced) {
            Ok(p) => return Ok(p),
            Err(NoPlan::Refused(why)) => return Err(why),
            Err(NoPlan::Snapshot(id)) if !forced.contains(&id) => forced.push(id),
            Err(NoPlan::Snapshot(id)) => {
                return Err(unreachable(format!("device {id} cannot be a snapshot")))
            }
        }
    }
}

/// The plan, with the devices in `forced` made as snapshots as well.
fn plan_with(dump: &XmlDump, forced: &[ThinId]) -> Result<Plan, NoPlan> {
    let time = dump.superblock.time;
    if time > MAX_TIME {
        return Err(format!("pool time {time} is beyond {MAX_TIME}").into());
    }
    let devs: HashMap<ThinId, &XmlDevice> = dump.devices.iter().map(|d| (d.dev_id, d)).collect();
    if devs.len() != dump.devices.len() {
        return Err(NoPlan::Refused("a device id appears twice".into()));
    }
    let mut p = Plan {
        next_scratch: dump.devices.iter().map(|d| d.dev_id + 1).max().unwrap_or(0),
        ..Plan::default()
    };
    let mut origin_at: BTreeMap<u64, ThinId> = BTreeMap::new();
    let mut snap_at: BTreeMap<u64, ThinId> = BTreeMap::new();
    for d in &dump.devices {
        let id = d.dev_id;
        if d.mapped_blocks != d.mappings.len() as u64 {
            return Err(unreachable(format!(
                "device {id}: mapped_blocks {} but {} mappings",
                d.mapped_blocks,
                d.mappings.len()
            ))
            .into());
        }
        if d.snap_time < d.creation_time {
            return Err(unreachable(format!("device {id}: snap_time before creation_time")).into());
        }
        let latest = d.mappings.iter().map(|m| u64::from(m.2)).max().unwrap_or(0);
        if d.snap_time > time || latest > time {
            return Err(
                unreachable(format!("device {id}: a time beyond the pool's {time}")).into(),
            );
        }
        if d.snap_time > d.creation_time {
            if let Some(other) = origin_at.insert(d.snap_time, id) {
                return Err(unreachable(format!(
                    "devices {other} and {id} both snapshotted at time {}",
                    d.snap_time
                ))
                .into());
            }
        }
        if inherited(d).next().is_some() || forced.contains(&id) {
            if d.creation_time == 0 {
                return Err(unreachable(format!("device {id}: a snapshot at time 0")).into());
            }
            if let Some(other) = snap_at.insert(d.creation_time, id) {
                return Err(unreachable(format!(
                    "devices {other} and {id} both snapshots made at time {}",
                    d.creation_time
                ))
                .into());
            }
        } else {
            p.thins.entry(d.creation_time).or_default().push(id);
        }
    }
    // One snapshot per step into a time that needs one.
    let mut origin_of: HashMap<ThinId, Role> = HashMap::new();
    for t in origin_at.keys().chain(snap_at.keys()) {
        if p.steps.contains_key(t) {
            continue;
        }
        let origin = match origin_at.get(t) {
            Some(&o) => Role::Real(o),
            None => {
                let s = p.next_scratch;
                p.next_scratch += 1;
                p.scratch_origins.push(s);
                Role::Scratch(s)
            }
        };
        let snapshot = match snap_at.get(t) {
            Some(&e) => {
                origin_of.insert(e, origin);
                Role::Real(e)
            }
            None => {
                p.next_scratch += 1;
                Role::Scratch(p.next_scratch - 1)
            }
        };
        p.steps.insert(*t, (snapshot, origin));
    }
    // Every mapping at its time, inherited ones up the chain of origins.
    for d in &dump.devices {
        for &(v, b, t) in &d.mappings {
            let t = u64::from(t);
            let mut holder = Role::Real(d.dev_id);
            loop {
                let created = match holder {
                    Role::Real(h) => devs[&h].creation_time,
                    Role::Scratch(_) => 0,
                };
                if created <= t {
                    break;
                }
                holder = *origin_of
                    .get(&holder.id())
                    .ok_or(NoPlan::Snapshot(holder.id()))?;
            }
            p.inserts.entry(t).or_default().push((holder.id(), v, b));
        }
    }
    Ok(p)
}

/// Restores `dump` onto `pmd`, a pool freshly formatted with the dump's
/// data block size.
pub fn restore<D: BlockDevice>(pmd: &mut PoolMetadata<D>, dump: &XmlDump) -> Result<(), String> {
    let sb = &dump.superblock;
    let e = |what: &'static str| move |err: Error| format!("{what}: {err:?}");
    if sb.flags & !1 != 0 {
        return Err(format!("unknown superblock flags {:#x}", sb.flags));
    }
    if pmd.superblock_info().version != sb.version {
        return Err(unreachable(format!(
            "version {} (the engine writes {})",
            sb.version,
            pmd.superblock_info().version
        )));
    }
    if pmd.data_block_size() != sb.data_block_size {
        return Err("the pool was formatted with another data block size".into());
    }
    let p = plan(dump)?;
    pmd.resize_data_dev(sb.nr_data_blocks)
        .map_err(e("resize"))?;
    let details: HashMap<ThinId, &XmlDevice> = dump.devices.iter().map(|d| (d.dev_id, d)).collect();
    let set_trans = |pmd: &mut PoolMetadata<D>, to: u64| {
        let cur = pmd.transaction_id().map_err(e("transaction id"))?;
        pmd.set_transaction_id(cur, to)
            .map_err(e("set_transaction_id"))
    };
    let bump_scratch = p.next_scratch;
    let bump_snap = p.next_scratch + 1;
    for &s in p.scratch_origins.iter().chain([&bump_scratch]) {
        pmd.create_thin(s).map_err(e("create a scratch device"))?;
    }
    let mut inserted = 0u64;
    for t in 0..=sb.time {
        for &id in p.thins.get(&t).into_iter().flatten() {
            set_trans(pmd, details[&id].transaction)?;
            pmd.create_thin(id)
                .map_err(|err| format!("create_thin {id}: {err:?}"))?;
        }
        for &(d, v, b) in p.inserts.get(&t).into_iter().flatten() {
            execute(pmd, &Op::Insert(d, v, b))
                .map_err(|err| format!("insert {d} {v} {b} at time {t}: {err:?}"))?;
            inserted += 1;
            if inserted.is_multiple_of(COMMIT_EVERY) {
                pmd.commit().map_err(e("commit"))?;
            }
        }
        if t == sb.time {
            break;
        }
        let (snap, origin) = p
            .steps
            .get(&(t + 1))
            .copied()
            .unwrap_or((Role::Scratch(bump_snap), Role::Scratch(bump_scratch)));
        if let Role::Real(s) = snap {
            set_trans(pmd, details[&s].transaction)?;
        }
        pmd.create_snap(snap.id(), origin.id())
            .map_err(|err| format!("create_snap {} {}: {err:?}", snap.id(), origin.id()))?;
        if let Role::Scratch(s) = snap {
            pmd.delete_thin_device(s)
                .map_err(e("delete a scratch snapshot"))?;
        }
        if let (Role::Scratch(o), Role::Real(_)) = (origin, snap) {
            pmd.delete_thin_device(o)
                .map_err(e("delete a scratch origin"))?;
        }
    }
    pmd.delete_thin_device(bump_scratch)
        .map_err(e("delete the scratch device"))?;
    // Drop what was only there to be inherited; then everything must match.
    for d in &dump.devices {
        let want: HashMap<u64, (u64, u32)> =
            d.mappings.iter().map(|&(v, b, t)| (v, (b, t))).collect();
        let mut extra = Vec::new();
        pmd.walk_mappings(d.dev_id, |v, _| {
            if !want.contains_key(&v) {
                extra.push(v);
            }
            Ok(())
        })
        .map_err(e("walk"))?;
        for v in extra {
            pmd.remove_block(d.dev_id, v).map_err(e("remove_block"))?;
        }
    }
    set_trans(pmd, sb.transaction)?;
    if sb.flags & 1 != 0 {
        pmd.set_needs_check().map_err(e("set_needs_check"))?;
    }
    verify(pmd, dump)?;
    pmd.commit().map_err(e("commit"))
}

/// The pool on `pmd` says exactly what `dump` says.
fn verify<D: BlockDevice>(pmd: &mut PoolMetadata<D>, dump: &XmlDump) -> Result<(), String> {
    let sb = &dump.superblock;
    let info = pmd.superblock_info();
    if u64::from(info.time) != sb.time || info.trans_id != sb.transaction {
        return Err(format!(
            "restored pool has time {} and transaction {}",
            info.time, info.trans_id
        ));
    }
    let mut devs = Vec::new();
    pmd.walk_devices(|id, d| {
        devs.push((id, *d));
        Ok(())
    })
    .map_err(|err| format!("devices tree: {err:?}"))?;
    if devs.len() != dump.devices.len() {
        return Err(format!("restored pool has {} devices", devs.len()));
    }
    let by_id: HashMap<ThinId, &XmlDevice> = dump.devices.iter().map(|d| (d.dev_id, d)).collect();
    for (id, got) in devs {
        let want = by_id
            .get(&id)
            .ok_or_else(|| format!("restored pool has a device {id}"))?;
        let fields = (
            got.mapped_blocks,
            got.transaction_id,
            u64::from(got.creation_time),
            u64::from(got.snapshotted_time),
        );
        let wanted = (
            want.mapped_blocks,
            want.transaction,
            want.creation_time,
            want.snap_time,
        );
        if fields != wanted {
            return Err(unreachable(format!(
                "device {id} came out as (mapped_blocks, transaction, creation_time, snap_time) {fields:?}, not {wanted:?}"
            )));
        }
        let mut mappings = Vec::new();
        pmd.walk_mappings(id, |v, bt| {
            mappings.push((v, bt.block, bt.time));
            Ok(())
        })
        .map_err(|err| format!("mapping tree of device {id}: {err:?}"))?;
        let mut wanted = want.mappings.clone();
        wanted.sort_unstable();
        if mappings.len() != wanted.len() {
            return Err(unreachable(format!(
                "device {id}: {} mappings where the dump has {}",
                mappings.len(),
                wanted.len()
            )));
        }
        if let Some((g, w)) = mappings.iter().zip(&wanted).find(|(g, w)| g != w) {
            return Err(unreachable(format!(
                "device {id}: mapping (virtual, data, time) {g:?} where the dump has {w:?}"
            )));
        }
    }
    Ok(())
}
