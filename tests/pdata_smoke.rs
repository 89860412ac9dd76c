//! Smoke tests of the persistent-data engine: format, insert, commit, reopen.

use dm_thin_host::pdata::block_manager::{BlockManager, NOOP_VALIDATOR};
use dm_thin_host::pdata::btree::{Btree, U64Value};
use dm_thin_host::pdata::space_map::{DiskSpaceMap, SmRoot};
use dm_thin_host::pdata::transaction_manager::{Transaction, TransactionManager};
use dm_thin_host::ramdisk::RamDisk;

fn commit(tm: &mut TransactionManager<RamDisk>, root: u64, data_root: &SmRoot) {
    let dr = *data_root;
    tm.commit_with(0, &NOOP_VALIDATOR, false, |sb, mr| {
        mr.pack(&mut sb[0..32])?;
        dr.pack(&mut sb[32..64])?;
        sb[64..72].copy_from_slice(&root.to_le_bytes());
        Ok(())
    })
    .unwrap();
}

#[test]
fn format_insert_commit_reopen() {
    let bm = BlockManager::new(RamDisk::new(4096), 256).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let mut data_sm = DiskSpaceMap::create(&mut tm, 100_000).unwrap();
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut tm).unwrap();
    for k in 0..5000u64 {
        root = tree
            .insert(&mut tm, &mut (), root, &[k * 7 % 5003], &(k + 1))
            .unwrap();
    }
    for k in 0..5000u64 {
        assert_eq!(
            tree.lookup(&mut tm, root, &[k * 7 % 5003]).unwrap(),
            Some(k + 1)
        );
    }
    let b = data_sm.new_block(&mut tm).unwrap().unwrap();
    assert_eq!(data_sm.get_count(&mut tm, b).unwrap(), 1);
    data_sm.commit(&mut tm).unwrap();
    let dr = data_sm.root();
    commit(&mut tm, root, &dr);
    assert_eq!(tm.bm_ref().nr_locks(), 0);

    // Reopen from the superblock.
    let mut dev = tm.into_bm().into_device();
    dev.crash();
    let sb = dev.block(0);
    let bm = BlockManager::new(dev, 256).unwrap();
    let mut tm = TransactionManager::open(bm, 0, &sb[0..32]).unwrap();
    let mut data_sm = DiskSpaceMap::open(&mut tm, &sb[32..64]).unwrap();
    let root = u64::from_le_bytes(sb[64..72].try_into().unwrap());
    for k in 0..5000u64 {
        assert_eq!(
            tree.lookup(&mut tm, root, &[k * 7 % 5003]).unwrap(),
            Some(k + 1)
        );
    }
    assert_eq!(data_sm.get_count(&mut tm, b).unwrap(), 1);
    assert_eq!(tm.bm().nr_locks(), 0);
}

#[test]
fn non_blocking_lookup_would_block_on_cold_cache() {
    use dm_thin_host::pdata::error::Error;
    let bm = BlockManager::new(RamDisk::new(4096), 256).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let data_sm = DiskSpaceMap::create(&mut tm, 1000).unwrap();
    let tree: Btree<U64Value> = Btree::new(2);
    let mut root = tree.empty(&mut tm).unwrap();
    for k in 0..3000u64 {
        root = tree.insert(&mut tm, &mut (), root, &[0, k], &k).unwrap();
    }
    commit(&mut tm, root, &data_sm.root());
    let mut dev = tm.into_bm().into_device();
    dev.crash();
    let sb = dev.block(0);
    let bm = BlockManager::new(dev, 256).unwrap();
    let mut tm = TransactionManager::open(bm, 0, &sb[0..32]).unwrap();
    // Cold: the non-blocking view refuses to do I/O, and writes refuse too.
    assert_eq!(
        tree.lookup(&mut tm.non_blocking(), root, &[0, 7]),
        Err(Error::WouldBlock)
    );
    assert_eq!(
        tree.insert(&mut tm.non_blocking(), &mut (), root, &[0, 7], &1),
        Err(Error::WouldBlock)
    );
    assert_eq!(tm.bm().nr_locks(), 0);
    // Warm the path with a blocking lookup; then it succeeds without I/O.
    let reads = tm.bm_ref().device().counts().reads;
    assert_eq!(tree.lookup(&mut tm, root, &[0, 7]).unwrap(), Some(7));
    assert!(tm.bm_ref().device().counts().reads > reads);
    let reads = tm.bm_ref().device().counts().reads;
    assert_eq!(
        tree.lookup(&mut tm.non_blocking(), root, &[0, 7]).unwrap(),
        Some(7)
    );
    assert_eq!(tm.bm_ref().device().counts().reads, reads);
}

#[test]
fn non_blocking_lookup_of_a_write_locked_block_would_block() {
    use dm_thin_host::pdata::btree::BTREE_NODE_VALIDATOR;
    use dm_thin_host::pdata::error::Error;
    let bm = BlockManager::new(RamDisk::new(4096), 256).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut tm).unwrap();
    for k in 0..10u64 {
        root = tree.insert(&mut tm, &mut (), root, &[k], &k).unwrap();
    }
    assert_eq!(
        tree.lookup(&mut tm.non_blocking(), root, &[3]).unwrap(),
        Some(3)
    );
    // The node is cached but write-locked: a non-blocking lookup must
    // defer (would block), not fail as if the metadata were bad.
    let w = tm.bm().write_lock(root, &BTREE_NODE_VALIDATOR).unwrap();
    assert_eq!(
        tree.lookup(&mut tm.non_blocking(), root, &[3]),
        Err(Error::WouldBlock)
    );
    assert_eq!(
        tm.bm().read_try_lock(root, &BTREE_NODE_VALIDATOR).err(),
        Some(Error::WouldBlock)
    );
    // A blocking read lock cannot wait for a lock its own thread holds.
    assert_eq!(
        tm.bm().read_lock(root, &BTREE_NODE_VALIDATOR).err(),
        Some(Error::Busy)
    );
    tm.bm().unlock_write(w);
    assert_eq!(
        tree.lookup(&mut tm.non_blocking(), root, &[3]).unwrap(),
        Some(3)
    );
    assert_eq!(tm.bm().nr_locks(), 0);
}

#[test]
fn stale_lock_handles_never_alias() {
    use dm_thin_host::pdata::error::Error;
    let mut bm = BlockManager::new(RamDisk::new(64), 16).unwrap();
    let a = bm.write_lock_zero(3, &NOOP_VALIDATOR).unwrap();
    // A recovery path drops every lock; a new lock may reuse the slot.
    bm.force_unlock_all();
    let b = bm.write_lock_zero(3, &NOOP_VALIDATOR).unwrap();
    assert_eq!(bm.data_mut2(&a, &b).err(), Some(Error::Busy));
    let c = bm.write_lock_zero(4, &NOOP_VALIDATOR).unwrap();
    let (x, y) = bm.data_mut2(&b, &c).unwrap();
    x[0] = 1;
    y[0] = 2;
    assert_eq!(bm.data_mut3(&a, &b, &c).err(), Some(Error::Busy));
    bm.unlock_write(b);
    bm.unlock_write(c);
}
