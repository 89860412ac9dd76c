//! How the block manager talks to the device: a commit is one batch of
//! writes, one flush and one FUA superblock write; eviction prefers clean
//! blocks and writes dirty ones back in batches, never one by one.

use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::pdata::block_manager::{BlockManager, NOOP_VALIDATOR};
use dm_thin_host::pdata::btree::{Btree, U64Value};
use dm_thin_host::pdata::transaction_manager::TransactionManager;
use dm_thin_host::ramdisk::{IoCounts, RamDisk};

type Tm = TransactionManager<RamDisk>;

fn counts(tm: &Tm) -> IoCounts {
    tm.bm_ref().device().counts()
}

fn commit(tm: &mut Tm, root: u64) {
    tm.commit_with(0, &NOOP_VALIDATOR, false, |sb, mr| {
        mr.pack(&mut sb[0..32])?;
        sb[64..72].copy_from_slice(&root.to_le_bytes());
        Ok(())
    })
    .unwrap();
}

fn delta(a: IoCounts, b: IoCounts) -> IoCounts {
    IoCounts {
        reads: b.reads - a.reads,
        writes: b.writes - a.writes,
        single_writes: b.single_writes - a.single_writes,
        flushes: b.flushes - a.flushes,
        batches: b.batches - a.batches,
        batched_blocks: b.batched_blocks - a.batched_blocks,
        fua_writes: b.fua_writes - a.fua_writes,
        pre_commits: b.pre_commits - a.pre_commits,
    }
}

#[test]
fn a_commit_is_one_batch_one_flush_one_fua_write() {
    let bm = BlockManager::new(RamDisk::new(4096), 4096).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut tm).unwrap();
    for k in 0..20_000u64 {
        root = tree.insert(&mut tm, &mut (), root, &[k], &k).unwrap();
    }
    let before = counts(&tm);
    commit(&mut tm, root);
    let d = delta(before, counts(&tm));
    assert!(d.batched_blocks > 50, "{d:?}");
    assert_eq!(d.batches, 1, "{d:?}");
    assert_eq!(d.flushes, 1, "{d:?}");
    assert_eq!(d.fua_writes, 1, "{d:?}");
    assert_eq!(d.single_writes, 0, "{d:?}");
    assert_eq!(d.writes, d.batched_blocks + 1, "{d:?}");
}

#[test]
fn a_pool_commit_is_barrier_batch_flush_fua() {
    let mut p = PoolMetadata::open(RamDisk::new(4096), 128, true).unwrap();
    p.resize_data_dev(10_000).unwrap();
    p.create_thin(1).unwrap();
    for v in 0..5000 {
        let b = p.alloc_data_block().unwrap().unwrap();
        p.insert_block(1, v * 3, b).unwrap();
    }
    let before = p.device_mut().unwrap().counts();
    p.commit().unwrap();
    let d = delta(before, p.device_mut().unwrap().counts());
    assert_eq!(
        (
            d.pre_commits,
            d.batches,
            d.flushes,
            d.fua_writes,
            d.single_writes
        ),
        (1, 1, 1, 1, 0),
        "{d:?}"
    );
    assert!(d.batched_blocks > 10, "{d:?}");
}

#[test]
fn eviction_writes_dirty_blocks_in_batches_only() {
    // 16 blocks of cache under a transaction that dirties hundreds.
    let bm = BlockManager::new(RamDisk::new(4096), 16).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut tm).unwrap();
    let before = counts(&tm);
    for k in 0..20_000u64 {
        root = tree
            .insert(&mut tm, &mut (), root, &[k * 7 % 20_011], &k)
            .unwrap();
    }
    let d = delta(before, counts(&tm));
    assert!(d.batches > 0, "{d:?}");
    assert_eq!(d.single_writes, 0, "{d:?}");
    assert_eq!(d.writes, d.batched_blocks, "{d:?}");
    assert!(d.batched_blocks >= 4 * d.batches, "batches of many: {d:?}");
    commit(&mut tm, root);
    assert_eq!(counts(&tm).single_writes, 0);
    let mut dev = tm.into_bm().into_device();
    dev.crash();
    let sb = dev.block(0);
    let bm = BlockManager::new(dev, 16).unwrap();
    let mut tm = TransactionManager::open(bm, 0, &sb[0..32]).unwrap();
    for k in 0..20_000u64 {
        assert_eq!(
            tree.lookup(&mut tm, root, &[k * 7 % 20_011]).unwrap(),
            Some(k)
        );
    }
}

#[test]
fn eviction_prefers_clean_blocks() {
    let bm = BlockManager::new(RamDisk::new(4096), 16).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let tree: Btree<U64Value> = Btree::new(1);
    let mut big = tree.empty(&mut tm).unwrap();
    for k in 0..5000u64 {
        big = tree.insert(&mut tm, &mut (), big, &[k], &k).unwrap();
    }
    commit(&mut tm, big);
    // A few dirty blocks, then a read-only sweep over far more blocks than
    // the cache holds: the clean ones make way, nothing is written.
    let mut small = tree.empty(&mut tm).unwrap();
    for k in 0..10u64 {
        small = tree.insert(&mut tm, &mut (), small, &[k], &k).unwrap();
    }
    let before = counts(&tm);
    for _ in 0..3 {
        for k in 0..5000u64 {
            assert_eq!(tree.lookup(&mut tm, big, &[k]).unwrap(), Some(k));
        }
    }
    let d = delta(before, counts(&tm));
    assert!(d.reads > 16, "{d:?}");
    assert_eq!(d.writes, 0, "{d:?}");
    for k in 0..10u64 {
        assert_eq!(tree.lookup(&mut tm, small, &[k]).unwrap(), Some(k));
    }
}
