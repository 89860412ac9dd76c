//! Throughput of btree inserts and lookups in release builds.
//! `cargo test --release --test pdata_bench -- --nocapture` prints the
//! numbers; the assertions are loose floors so a slow shared machine does
//! not fail the suite.

use std::time::Instant;

use dm_thin_host::pdata::block_manager::BlockManager;
use dm_thin_host::pdata::btree::{Btree, U64Value};
use dm_thin_host::pdata::transaction_manager::TransactionManager;
use dm_thin_host::ramdisk::RamDisk;
use dm_thin_host::rng::Rng;

fn run(name: &str, n: u64, key: impl Fn(u64) -> u64) -> (f64, f64) {
    let bm = BlockManager::new(RamDisk::new(200_000), 16_384).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    // The thin mapping tree shape: [device, block] -> u64.
    let tree: Btree<U64Value> = Btree::new(2);
    let mut root = tree.empty(&mut tm).unwrap();
    let t = Instant::now();
    for i in 0..n {
        root = tree
            .insert(&mut tm, &mut (), root, &[1, key(i)], &i)
            .unwrap();
    }
    let ins = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut found = 0u64;
    for i in 0..n {
        if tree.lookup(&mut tm, root, &[1, key(i)]).unwrap().is_some() {
            found += 1;
        }
    }
    let look = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n {
        let _ = tree
            .lookup(&mut tm.non_blocking(), root, &[1, key(i)])
            .unwrap();
    }
    let nb = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{name:>28}: {ins:>9.0} inserts/s {look:>9.0} lookups/s {nb:>9.0} non-blocking lookups/s"
    );
    assert!(found >= n / 2);
    (ins, look)
}

#[test]
fn bench_insert_lookup() {
    // Random 24-bit keys, drawn before the clock starts.
    let mut rng = Rng::new(0x9E37_79B9);
    let keys: Vec<u64> = (0..1_000_000).map(|_| rng.below(1 << 24)).collect();
    let (ins, look) = run("sequential, 1M keys", 1_000_000, |i| i);
    run("random, 100k keys", 100_000, |i| keys[i as usize]);
    run("random, 1M keys", 1_000_000, |i| keys[i as usize]);
    assert!(ins > 50_000.0 && look > 200_000.0);
}

/// The thin provisioning path: allocate a data block, map it.
#[test]
fn bench_provision() {
    use dm_thin_host::pdata::space_map::DiskSpaceMap;
    let n: u64 = 300_000;
    let bm = BlockManager::new(RamDisk::new(200_000), 16_384).unwrap();
    let mut tm = TransactionManager::create(bm, 0).unwrap();
    let mut data_sm = DiskSpaceMap::create(&mut tm, 1 << 20).unwrap();
    let tree: Btree<U64Value> = Btree::new(2);
    let mut root = tree.empty(&mut tm).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let b = data_sm.new_block(&mut tm).unwrap().unwrap();
        root = tree.insert(&mut tm, &mut (), root, &[1, i], &b).unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{:>28}: {rate:>9.0} provisions/s (data new_block + insert)",
        "sequential provisioning"
    );
    assert!(rate > 20_000.0);
}

#[test]
fn pdata_types_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<TransactionManager<RamDisk>>();
    assert_send::<BlockManager<RamDisk>>();
    assert_send::<dm_thin_host::pdata::space_map::DiskSpaceMap>();
    assert_send::<Btree<U64Value>>();
}
