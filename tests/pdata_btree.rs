//! Btree model tests: long random sequences of insert / remove / lookup /
//! lookup_next / remove_range against `std::collections::BTreeMap`, with
//! commits, aborts and power-cut reopens in the middle, checking every key
//! and every metadata reference count.

mod pdata_common;

use std::collections::BTreeMap;

use dm_thin_host::pdata::btree::{Btree, U64Value};
use pdata_common::{check_ref_counts, Pool, Rng};

fn check_all(
    p: &mut Pool,
    tree: &Btree<U64Value>,
    root: u64,
    model: &BTreeMap<u64, u64>,
    key_space: u64,
) {
    let mut got = Vec::new();
    tree.walk(&mut p.tm, root, |k, v| {
        got.push((k[0], *v));
        Ok(())
    })
    .unwrap();
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want);
    for k in 0..key_space {
        assert_eq!(
            tree.lookup(&mut p.tm, root, &[k]).unwrap(),
            model.get(&k).copied(),
            "key {k}"
        );
    }
    let hi = tree.find_highest_key(&mut p.tm, root).unwrap();
    assert_eq!(hi, model.keys().next_back().copied());
    let lo = tree.find_lowest_key(&mut p.tm, root).unwrap();
    assert_eq!(lo, model.keys().next().copied());
}

fn run_single(seed: u64, nr_ops: usize, key_space: u64) {
    let mut rng = Rng::new(seed);
    let mut p = Pool::format(20_000, 1000);
    let tree: Btree<U64Value> = Btree::new(1);
    let root = tree.empty(&mut p.tm).unwrap();
    p.roots.push(root);
    p.commit();
    let mut model = BTreeMap::new();
    let mut committed = model.clone();
    // Phases of mostly-insert and mostly-remove so trees grow and shrink.
    for op in 0..nr_ops {
        let phase = (op / 5000) % 2;
        let r = rng.below(100);
        let root = p.roots[0];
        let insert_pct = if phase == 0 { 65 } else { 35 };
        if r < insert_pct {
            let k = rng.below(key_space);
            let v = rng.next_u64();
            let (nr, inserted) = tree
                .insert_notify(&mut p.tm, &mut (), root, &[k], &v)
                .unwrap();
            assert_eq!(inserted, !model.contains_key(&k));
            model.insert(k, v);
            p.roots[0] = nr;
        } else if r < 85 {
            let k = rng.below(key_space);
            let (nr, found) = tree.remove(&mut p.tm, &mut (), root, &[k]).unwrap();
            assert_eq!(found, model.remove(&k).is_some(), "remove {k}");
            p.roots[0] = nr;
        } else if r < 92 {
            let k = rng.below(key_space);
            assert_eq!(
                tree.lookup(&mut p.tm, root, &[k]).unwrap(),
                model.get(&k).copied()
            );
            let want = model.range(k..).next().map(|(a, b)| (*a, *b));
            assert_eq!(tree.lookup_next(&mut p.tm, root, &[k]).unwrap(), want);
        } else if r < 96 {
            let b = rng.below(key_space);
            let e = b + rng.below(200);
            let (nr, n) = tree
                .remove_range(&mut p.tm, &mut (), root, &[], b, e)
                .unwrap();
            let gone: Vec<u64> = model.range(b..e).map(|(k, _)| *k).collect();
            assert_eq!(n, gone.len() as u64);
            for k in gone {
                model.remove(&k);
            }
            p.roots[0] = nr;
        } else if r < 99 {
            p.commit();
            committed = model.clone();
        } else if rng.below(2) == 0 {
            p.abort();
            model = committed.clone();
        } else {
            p = p.crash_reopen();
            model = committed.clone();
        }
        if op % 20_000 == 19_999 {
            let root = p.roots[0];
            check_all(&mut p, &tree, root, &model, key_space);
        }
    }
    p.commit();
    let root = p.roots[0];
    check_all(&mut p, &tree, root, &model, key_space);
    check_ref_counts(&mut p, &[(root, 1, 8)]);
    // Reopen and check again.
    let mut p = p.crash_reopen();
    let root = p.roots[0];
    check_all(&mut p, &tree, root, &model, key_space);
    check_ref_counts(&mut p, &[(root, 1, 8)]);
    // Delete the whole tree: only the space maps' own blocks remain.
    tree.del(&mut p.tm, &mut (), root).unwrap();
    p.roots.clear();
    p.commit();
    check_ref_counts(&mut p, &[]);
}

#[test]
fn single_level_random_seed1() {
    run_single(1, 40_000, 5000);
}

#[test]
fn single_level_random_seed2() {
    run_single(2, 40_000, 20_000);
}

#[test]
fn single_level_random_seed3_small_keys() {
    run_single(3, 30_000, 700);
}

#[test]
fn sequential_insert_then_remove_all() {
    let mut p = Pool::format(20_000, 1000);
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut p.tm).unwrap();
    let n = 30_000u64;
    for k in 0..n {
        root = tree
            .insert(&mut p.tm, &mut (), root, &[k], &(k * 3))
            .unwrap();
    }
    p.roots = vec![root];
    p.commit();
    check_ref_counts(&mut p, &[(root, 1, 8)]);
    for k in (0..n).rev() {
        let (r, found) = tree.remove(&mut p.tm, &mut (), root, &[k]).unwrap();
        assert!(found);
        root = r;
        if k % 7000 == 0 {
            p.roots = vec![root];
            p.commit();
            check_ref_counts(&mut p, &[(root, 1, 8)]);
        }
    }
    assert_eq!(tree.count(&mut p.tm, root).unwrap(), 0);
    p.roots = vec![root];
    p.commit();
    check_ref_counts(&mut p, &[(root, 1, 8)]);
}

fn run_multi(seed: u64, nr_ops: usize) {
    let mut rng = Rng::new(seed);
    let mut p = Pool::format(20_000, 1000);
    let tree: Btree<U64Value> = Btree::new(2);
    let root = tree.empty(&mut p.tm).unwrap();
    p.roots.push(root);
    p.commit();
    let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut committed = model.clone();
    for _ in 0..nr_ops {
        let root = p.roots[0];
        let dev = rng.below(6);
        let blk = rng.below(3000);
        match rng.below(100) {
            0..=54 => {
                let v = rng.next_u64();
                p.roots[0] = tree
                    .insert(&mut p.tm, &mut (), root, &[dev, blk], &v)
                    .unwrap();
                model.insert((dev, blk), v);
            }
            55..=84 => {
                let (nr, found) = tree.remove(&mut p.tm, &mut (), root, &[dev, blk]).unwrap();
                assert_eq!(found, model.remove(&(dev, blk)).is_some());
                p.roots[0] = nr;
            }
            85..=92 => {
                assert_eq!(
                    tree.lookup(&mut p.tm, root, &[dev, blk]).unwrap(),
                    model.get(&(dev, blk)).copied()
                );
                let want = model
                    .range((dev, blk)..(dev, u64::MAX))
                    .next()
                    .map(|(a, b)| (a.1, *b));
                assert_eq!(
                    tree.lookup_next(&mut p.tm, root, &[dev, blk]).unwrap(),
                    want
                );
            }
            93..=95 => {
                let e = blk + rng.below(300);
                let (nr, n) = tree
                    .remove_range(&mut p.tm, &mut (), root, &[dev], blk, e)
                    .unwrap();
                let gone: Vec<(u64, u64)> =
                    model.range((dev, blk)..(dev, e)).map(|(k, _)| *k).collect();
                assert_eq!(n, gone.len() as u64);
                for k in gone {
                    model.remove(&k);
                }
                p.roots[0] = nr;
            }
            96..=98 => {
                p.commit();
                committed = model.clone();
            }
            _ => {
                p = p.crash_reopen();
                model = committed.clone();
            }
        }
    }
    p.commit();
    let root = p.roots[0];
    let mut got = Vec::new();
    tree.walk(&mut p.tm, root, |k, v| {
        got.push(((k[0], k[1]), *v));
        Ok(())
    })
    .unwrap();
    let want: Vec<((u64, u64), u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want);
    let mut hk = [0u64; 2];
    let n = tree.find_highest_keys(&mut p.tm, root, &mut hk).unwrap();
    assert!(n >= 1);
    check_ref_counts(&mut p, &[(root, 2, 8)]);
    tree.del(&mut p.tm, &mut (), root).unwrap();
    p.roots.clear();
    p.commit();
    check_ref_counts(&mut p, &[]);
}

#[test]
fn multi_level_random_seed7() {
    run_multi(7, 40_000);
}

#[test]
fn multi_level_random_seed8() {
    run_multi(8, 30_000);
}

#[test]
fn single_level_random_seed4_big() {
    run_single(4, 80_000, 40_000);
}

#[test]
fn three_levels_random() {
    let mut rng = Rng::new(9);
    let mut p = Pool::format(20_000, 1000);
    let tree: Btree<U64Value> = Btree::new(3);
    let root = tree.empty(&mut p.tm).unwrap();
    p.roots.push(root);
    p.commit();
    let mut model: BTreeMap<(u64, u64, u64), u64> = BTreeMap::new();
    let mut committed = model.clone();
    for _ in 0..40_000 {
        let root = p.roots[0];
        let k = (rng.below(3), rng.below(4), rng.below(2000));
        let keys = [k.0, k.1, k.2];
        match rng.below(100) {
            0..=54 => {
                let v = rng.next_u64();
                p.roots[0] = tree.insert(&mut p.tm, &mut (), root, &keys, &v).unwrap();
                model.insert(k, v);
            }
            55..=89 => {
                let (nr, found) = tree.remove(&mut p.tm, &mut (), root, &keys).unwrap();
                assert_eq!(found, model.remove(&k).is_some());
                p.roots[0] = nr;
            }
            90..=96 => {
                assert_eq!(
                    tree.lookup(&mut p.tm, root, &keys).unwrap(),
                    model.get(&k).copied()
                );
            }
            97..=98 => {
                p.commit();
                committed = model.clone();
            }
            _ => {
                p = p.crash_reopen();
                model = committed.clone();
            }
        }
    }
    p.commit();
    let root = p.roots[0];
    let mut got = Vec::new();
    tree.walk(&mut p.tm, root, |k, v| {
        got.push(((k[0], k[1], k[2]), *v));
        Ok(())
    })
    .unwrap();
    let want: Vec<((u64, u64, u64), u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want);
    check_ref_counts(&mut p, &[(root, 3, 8)]);
    tree.del(&mut p.tm, &mut (), root).unwrap();
    p.roots.clear();
    p.commit();
    check_ref_counts(&mut p, &[]);
}
