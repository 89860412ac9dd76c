//! Crash consistency: a power cut at any point of a commit leaves either
//! the previous or the new committed state, complete and with exact
//! reference counts (the superblock is written last, after a flush).

mod pdata_common;

use std::collections::BTreeMap;

use dm_thin_host::pdata::btree::{Btree, U64Value};
use dm_thin_host::pdata::transaction_manager::Transaction;
use dm_thin_host::ramdisk::CutMode;
use pdata_common::{check_ref_counts, Pool, Rng};

fn contents(p: &mut Pool, tree: &Btree<U64Value>) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    let root = p.roots[0];
    tree.walk(&mut p.tm, root, |k, v| {
        m.insert(k[0], *v);
        Ok(())
    })
    .unwrap();
    m
}

fn run(seed: u64, mode: CutMode) {
    let mut rng = Rng::new(seed);
    let tree: Btree<U64Value> = Btree::new(1);
    let mut p = Pool::format(8000, 10_000);
    let root = tree.empty(&mut p.tm).unwrap();
    p.roots.push(root);
    p.commit();
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut seen_old, mut seen_new) = (0, 0);
    for _trial in 0..60 {
        let mut model = committed.clone();
        for _ in 0..400 {
            let k = rng.below(8000);
            let r = p.roots[0];
            if rng.below(3) > 0 {
                let v = rng.next_u64();
                p.roots[0] = tree.insert(&mut p.tm, &mut (), r, &[k], &v).unwrap();
                model.insert(k, v);
            } else {
                p.roots[0] = tree.remove(&mut p.tm, &mut (), r, &[k]).unwrap().0;
                model.remove(&k);
            }
            if rng.below(50) == 0 {
                let b = p.data_sm.new_block(&mut p.tm).unwrap();
                assert!(b.is_some());
            }
        }
        let cut = rng.below(120);
        p.tm.bm().device_mut().cut_after(cut, mode);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut q = p;
            q.data_sm.commit(&mut q.tm).unwrap();
            let dr = q.data_sm.root();
            let roots = q.roots.clone();
            let r = q.tm.commit_with(
                0,
                &dm_thin_host::pdata::block_manager::NOOP_VALIDATOR,
                false,
                |sb, mr| {
                    sb.fill(0);
                    mr.pack(&mut sb[0..32])?;
                    dr.pack(&mut sb[32..64])?;
                    sb[64..72].copy_from_slice(&1u64.to_le_bytes());
                    sb[72..80].copy_from_slice(&roots[0].to_le_bytes());
                    Ok(())
                },
            );
            (q, r)
        }));
        let (q, _r) = res.unwrap();
        p = q.crash_reopen();
        let got = contents(&mut p, &tree);
        if got == model {
            seen_new += 1;
            committed = model;
        } else {
            assert_eq!(got, committed, "neither the old nor the new state");
            seen_old += 1;
        }
        let root = p.roots[0];
        check_ref_counts(&mut p, &[(root, 1, 8)]);
    }
    assert!(
        seen_old > 0 && seen_new > 0,
        "old {seen_old} new {seen_new}"
    );
}

#[test]
fn power_cut_during_commit_drop() {
    run(31, CutMode::Drop);
}

#[test]
fn power_cut_during_commit_fail() {
    run(32, CutMode::Fail);
}

/// A commit that fails half way (write error), then abort and carry on in
/// the same process: the abort must return to the last durable commit even
/// though the space maps had already been pre-committed in memory.
#[test]
fn failed_commit_then_abort_and_continue() {
    use dm_thin_host::pdata::space_map::DiskSpaceMap;
    let mut rng = Rng::new(43);
    let tree: Btree<U64Value> = Btree::new(1);
    let mut p = Pool::format(8000, 10_000);
    let root = tree.empty(&mut p.tm).unwrap();
    p.roots.push(root);
    p.commit();
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut failures = 0;
    for trial in 0..30 {
        let mut model = committed.clone();
        for _ in 0..300 {
            let k = rng.below(5000);
            let r = p.roots[0];
            if rng.below(3) > 0 {
                let v = rng.next_u64();
                p.roots[0] = tree.insert(&mut p.tm, &mut (), r, &[k], &v).unwrap();
                model.insert(k, v);
            } else {
                p.roots[0] = tree.remove(&mut p.tm, &mut (), r, &[k]).unwrap().0;
                model.remove(&k);
            }
            if rng.below(20) == 0 {
                p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
            }
        }
        if trial % 3 == 0 {
            p.commit();
            committed = model;
            continue;
        }
        p.tm.bm()
            .device_mut()
            .cut_after(rng.below(40), CutMode::Fail);
        p.data_sm.commit(&mut p.tm).unwrap();
        let dr = p.data_sm.root();
        let r0 = p.roots[0];
        let res = p.tm.commit_with(
            0,
            &dm_thin_host::pdata::block_manager::NOOP_VALIDATOR,
            false,
            |sb, mr| {
                sb.fill(0);
                mr.pack(&mut sb[0..32])?;
                dr.pack(&mut sb[32..64])?;
                sb[64..72].copy_from_slice(&1u64.to_le_bytes());
                sb[72..80].copy_from_slice(&r0.to_le_bytes());
                Ok(())
            },
        );
        p.tm.bm().device_mut().uncut();
        if res.is_ok() {
            committed = model;
            p.committed_roots = p.roots.clone();
            continue;
        }
        // Abort and reload the data map and roots from the durable superblock.
        failures += 1;
        p.tm.abort().unwrap();
        let sb = p.tm.bm_ref().device().block(0);
        p.data_sm = DiskSpaceMap::open(&mut p.tm, &sb[32..64]).unwrap();
        p.roots = vec![u64::from_le_bytes(sb[72..80].try_into().unwrap())];
        assert_eq!(contents(&mut p, &tree), committed);
    }
    assert!(failures > 5, "only {failures} failed commits");
    p.commit();
    let mut p = p.crash_reopen();
    assert_eq!(contents(&mut p, &tree), committed);
    let root = p.roots[0];
    check_ref_counts(&mut p, &[(root, 1, 8)]);
}

/// I/O errors at random moments (reads failing, write-back failing during
/// eviction or commit) with a tiny cache: operations fail cleanly, abort
/// plus a reload from the durable superblock always gets back to the last
/// commit, and no lock is ever leaked.
#[test]
fn io_errors_anywhere_then_abort() {
    use dm_thin_host::pdata::block_manager::{BlockManager, NOOP_VALIDATOR};
    use dm_thin_host::pdata::space_map::DiskSpaceMap;
    use dm_thin_host::pdata::transaction_manager::TransactionManager;
    use dm_thin_host::ramdisk::RamDisk;

    let mut rng = Rng::new(77);
    let tree: Btree<U64Value> = Btree::new(1);
    let mut dev = RamDisk::new(8000);
    dev.set_lose_unflushed(true);
    let bm = BlockManager::new(dev, 16).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let mut data_sm = DiskSpaceMap::create(&mut tm, 5000).unwrap();
    let mut root = tree.empty(&mut tm).unwrap();
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut model = committed.clone();
    let mut errors = 0;
    let mut commits = 0;
    for step in 0..20_000u64 {
        if rng.below(400) == 0 {
            tm.bm().device_mut().set_fail_reads(true);
        }
        if rng.below(400) == 0 {
            tm.bm().device_mut().cut_after(rng.below(10), CutMode::Fail);
        }
        let r: Result<(), dm_thin_host::pdata::error::Error> = (|| {
            let k = rng.below(3000);
            match rng.below(10) {
                0..=5 => {
                    root = tree.insert(&mut tm, &mut (), root, &[k], &step)?;
                    model.insert(k, step);
                }
                6..=7 => {
                    root = tree.remove(&mut tm, &mut (), root, &[k])?.0;
                    model.remove(&k);
                }
                8 => {
                    data_sm.new_block(&mut tm)?;
                }
                _ => {
                    data_sm.commit(&mut tm)?;
                    let dr = data_sm.root();
                    let r0 = root;
                    tm.commit_with(0, &NOOP_VALIDATOR, false, |sb, mr| {
                        sb.fill(0);
                        mr.pack(&mut sb[0..32])?;
                        dr.pack(&mut sb[32..64])?;
                        sb[72..80].copy_from_slice(&r0.to_le_bytes());
                        Ok(())
                    })?;
                    committed = model.clone();
                    commits += 1;
                }
            }
            Ok(())
        })();
        assert_eq!(tm.bm_ref().nr_locks(), 0, "leaked lock at step {step}");
        if r.is_err() {
            errors += 1;
            tm.bm().device_mut().set_fail_reads(false);
            tm.bm().device_mut().uncut();
            tm.abort().unwrap();
            let sb = tm.bm_ref().device().block(0);
            if sb.iter().all(|&b| b == 0) {
                // Nothing committed yet: start over.
                let bm = BlockManager::new(tm.into_bm().into_device(), 16).unwrap();
                tm = TransactionManager::create(bm, 0).unwrap();
                data_sm = DiskSpaceMap::create(&mut tm, 5000).unwrap();
                root = tree.empty(&mut tm).unwrap();
                committed.clear();
            } else {
                data_sm = DiskSpaceMap::open(&mut tm, &sb[32..64]).unwrap();
                root = u64::from_le_bytes(sb[72..80].try_into().unwrap());
            }
            model = committed.clone();
        }
    }
    assert!(
        errors > 10 && commits > 100,
        "errors {errors} commits {commits}"
    );
    let mut got = BTreeMap::new();
    tree.walk(&mut tm, root, |k, v| {
        got.insert(k[0], *v);
        Ok(())
    })
    .unwrap();
    assert_eq!(got, model);
}
