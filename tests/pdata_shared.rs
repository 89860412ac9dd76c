//! Shared (snapshotted) trees with reference-counted values: the inc/dec
//! hooks must keep the data space map's counts equal to the number of
//! (tree, key) pairs mapping each data block, and shared nodes must be
//! shadowed with their children incremented, exactly as dm-thin relies on.

mod pdata_common;

use std::collections::BTreeMap;

use dm_thin_host::pdata::btree::{Btree, ValueType};
use dm_thin_host::pdata::error::Result;
use dm_thin_host::pdata::space_map::DiskSpaceMap;
use dm_thin_host::pdata::transaction_manager::Transaction;
use pdata_common::{check_ref_counts, Pool, Rng};

/// A data block number whose references live in the data space map.
struct DataBlock;

impl ValueType for DataBlock {
    const SIZE: usize = 8;
    type Value = u64;
    type Context = DiskSpaceMap;
    fn unpack(b: &[u8]) -> u64 {
        u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
    }
    fn pack(v: &u64, out: &mut [u8]) {
        out[..8].copy_from_slice(&v.to_le_bytes());
    }
    fn inc<T: Transaction>(ctx: &mut DiskSpaceMap, tm: &mut T, v: &u64) -> Result<()> {
        ctx.inc(tm, *v)
    }
    fn dec<T: Transaction>(ctx: &mut DiskSpaceMap, tm: &mut T, v: &u64) -> Result<()> {
        ctx.dec(tm, *v)
    }
}

const NR_DATA: u64 = 200_000;

fn check_data_counts(p: &mut Pool, models: &[BTreeMap<u64, u64>]) {
    let mut want: BTreeMap<u64, u32> = BTreeMap::new();
    for m in models {
        for v in m.values() {
            *want.entry(*v).or_insert(0) += 1;
        }
    }
    let mut allocated = 0;
    for b in 0..NR_DATA {
        let got = p.data_sm.get_count(&mut p.tm, b).unwrap();
        assert_eq!(got, want.get(&b).copied().unwrap_or(0), "data block {b}");
        allocated += (got > 0) as u64;
    }
    assert_eq!(p.data_sm.nr_allocated(), allocated);
}

fn run(seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut p = Pool::format(20_000, NR_DATA);
    let tree: Btree<DataBlock> = Btree::new(1);
    let mut root = tree.empty(&mut p.tm).unwrap();
    let mut a = BTreeMap::new();
    for k in 0..4000u64 {
        let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
        root = tree
            .insert(&mut p.tm, &mut p.data_sm, root, &[k], &b)
            .unwrap();
        a.insert(k, b);
    }
    p.roots = vec![root];
    p.commit();
    // Snapshot: both trees share every node.
    p.tm.inc(root).unwrap();
    p.roots = vec![root, root];
    let mut models = vec![a.clone(), a];
    p.commit();
    check_ref_counts(&mut p, &[(root, 1, 8), (root, 1, 8)]);
    for op in 0..ops {
        let t = rng.below(2) as usize;
        let k = rng.below(6000);
        let r = p.roots[t];
        match rng.below(10) {
            0..=4 => {
                let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
                p.roots[t] = tree.insert(&mut p.tm, &mut p.data_sm, r, &[k], &b).unwrap();
                models[t].insert(k, b);
            }
            5..=7 => {
                let (nr, found) = tree.remove(&mut p.tm, &mut p.data_sm, r, &[k]).unwrap();
                assert_eq!(found, models[t].remove(&k).is_some());
                p.roots[t] = nr;
            }
            8 => {
                let e = k + rng.below(100);
                let (nr, n) = tree
                    .remove_range(&mut p.tm, &mut p.data_sm, r, &[], k, e)
                    .unwrap();
                let gone: Vec<u64> = models[t].range(k..e).map(|(k, _)| *k).collect();
                assert_eq!(n, gone.len() as u64);
                for g in gone {
                    models[t].remove(&g);
                }
                p.roots[t] = nr;
            }
            _ => {
                assert_eq!(
                    tree.lookup(&mut p.tm, r, &[k]).unwrap(),
                    models[t].get(&k).copied()
                );
            }
        }
        if op % 3000 == 2999 {
            p.commit();
        }
    }
    p.commit();
    for (t, model) in models.iter().enumerate() {
        let mut got = BTreeMap::new();
        tree.walk(&mut p.tm, p.roots[t], |k, v| {
            got.insert(k[0], *v);
            Ok(())
        })
        .unwrap();
        assert_eq!(&got, model);
    }
    let (r0, r1) = (p.roots[0], p.roots[1]);
    check_ref_counts(&mut p, &[(r0, 1, 8), (r1, 1, 8)]);
    check_data_counts(&mut p, &models);
    // Reopen, delete one tree, check, delete the other.
    let mut p = p.crash_reopen();
    tree.del(&mut p.tm, &mut p.data_sm, r0).unwrap();
    p.roots = vec![r1];
    p.commit();
    check_ref_counts(&mut p, &[(r1, 1, 8)]);
    check_data_counts(&mut p, &models[1..]);
    tree.del(&mut p.tm, &mut p.data_sm, r1).unwrap();
    p.roots.clear();
    p.commit();
    check_ref_counts(&mut p, &[]);
    check_data_counts(&mut p, &[]);
}

#[test]
fn snapshot_random_seed11() {
    run(11, 20_000);
}

#[test]
fn snapshot_random_seed12() {
    run(12, 15_000);
}

/// Sharing at every level: a snapshot of a snapshot, deleted in another order.
#[test]
fn snapshot_chain_delete_origin_first() {
    let mut p = Pool::format(20_000, NR_DATA);
    let tree: Btree<DataBlock> = Btree::new(1);
    let mut root = tree.empty(&mut p.tm).unwrap();
    let mut m = BTreeMap::new();
    for k in 0..3000u64 {
        let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
        root = tree
            .insert(&mut p.tm, &mut p.data_sm, root, &[k * 2], &b)
            .unwrap();
        m.insert(k * 2, b);
    }
    p.tm.inc(root).unwrap();
    p.tm.inc(root).unwrap();
    let mut roots = vec![root; 3];
    let mut models = vec![m.clone(), m.clone(), m];
    // Change a few keys in each.
    for (t, r) in roots.iter_mut().enumerate() {
        for k in (t as u64..6000).step_by(97) {
            let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
            *r = tree
                .insert(&mut p.tm, &mut p.data_sm, *r, &[k], &b)
                .unwrap();
            models[t].insert(k, b);
        }
    }
    p.roots = roots.clone();
    p.commit();
    check_data_counts(&mut p, &models);
    check_ref_counts(
        &mut p,
        &[(roots[0], 1, 8), (roots[1], 1, 8), (roots[2], 1, 8)],
    );
    tree.del(&mut p.tm, &mut p.data_sm, roots[0]).unwrap();
    p.roots = roots[1..].to_vec();
    p.commit();
    check_data_counts(&mut p, &models[1..]);
    check_ref_counts(&mut p, &[(roots[1], 1, 8), (roots[2], 1, 8)]);
}
