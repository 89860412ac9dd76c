//! Deletes that do not stall the pool (`rust/thin/metadata/deleting.rs`):
//! a large device is detached at once and its mappings released in
//! batches; every commit in between passes `thin_check`, and a crash in the
//! middle is resumed on the next open.

use std::path::Path;

use dm_thin_host::metadata::{Error, PoolMetadata, Reclaimed};
use dm_thin_host::oracle::{assert_checks, scratch, thin_dump};
use dm_thin_host::ramdisk::RamDisk;

const META_BLOCKS: u64 = 4096;
const MAX_THIN_ID: u64 = (1 << 24) - 1;

fn write_image(dev: &RamDisk, path: &Path) {
    let mut img = Vec::with_capacity((META_BLOCKS as usize) * 4096);
    for b in 0..META_BLOCKS {
        img.extend_from_slice(&dev.block(b));
    }
    std::fs::write(path, img).unwrap();
}

/// A pool of `nr_data` blocks; thin 1 maps `n1` blocks (virtual 0..n1, every
/// other one from 2 * n1, so its tree has gaps), thin 2 maps 10; committed.
fn pool(nr_data: u64, n1: u64) -> PoolMetadata<RamDisk> {
    let mut dev = RamDisk::new(META_BLOCKS);
    dev.set_lose_unflushed(true);
    let mut p = PoolMetadata::open(dev, 128, true).unwrap();
    p.resize_data_dev(nr_data).unwrap();
    p.create_thin(1).unwrap();
    p.create_thin(2).unwrap();
    for v in 0..n1 {
        let b = p.alloc_data_block().unwrap().unwrap();
        let v = if v % 2 == 0 { v } else { 2 * n1 + v };
        p.insert_block(1, v, b).unwrap();
    }
    for v in 0..10 {
        let b = p.alloc_data_block().unwrap().unwrap();
        p.insert_block(2, v, b).unwrap();
    }
    p.commit().unwrap();
    p
}

fn crash_and_reopen(p: PoolMetadata<RamDisk>) -> PoolMetadata<RamDisk> {
    let mut dev = p.into_device().unwrap();
    dev.crash();
    PoolMetadata::open(dev, 128, false).unwrap()
}

/// The image of `p`'s committed state (closing nothing) passes both
/// checkers; returns `thin_dump`'s output.
fn check_committed(p: &mut PoolMetadata<RamDisk>, name: &str) -> String {
    let mut dev = p.device_mut().unwrap().clone();
    dev.crash();
    let img = scratch(name).join("meta.img");
    write_image(&dev, &img);
    assert_checks(&img);
    thin_dump(&img)
}

#[test]
fn a_large_delete_is_detached_then_reclaimed_in_batches() {
    let n1 = 5000;
    let mut p = pool(20_000, n1);
    let free0 = p.free_data_blocks().unwrap();
    assert!(p.start_delete(1).unwrap(), "5000 mappings: detached");
    assert!(p.deleting());
    // The user's id is gone at once, and may be made again.
    assert_eq!(p.device_details(1).unwrap(), None);
    assert_eq!(p.open_thin_device(1), Err(Error::NoSuchDevice));
    // The detached tree took the highest free thin id, which is not the
    // user's to open, snapshot or make.
    assert_eq!(p.open_thin_device(MAX_THIN_ID), Err(Error::NoSuchDevice));
    assert_eq!(p.create_snap(3, MAX_THIN_ID), Err(Error::NoSuchDevice));
    assert_eq!(p.create_thin(MAX_THIN_ID), Err(Error::Exists));
    // Deleting it again changes nothing.
    assert!(p.start_delete(MAX_THIN_ID).unwrap());
    p.create_thin(1).unwrap();
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), free0, "nothing freed yet");
    let dump = check_committed(&mut p, "delete-detached");
    assert!(dump.contains(&format!("dev_id=\"{MAX_THIN_ID}\"")), "{dump}");
    assert!(dump.contains("transaction=\"18446744073709551615\""));

    let mut batches = 0;
    let mut freed = 0;
    loop {
        let r = p.reclaim_deleted(1000).unwrap();
        batches += 1;
        freed += r.mappings;
        p.commit().unwrap();
        assert_eq!(p.free_data_blocks().unwrap(), free0 + freed, "batch {batches}");
        if batches == 2 {
            check_committed(&mut p, "delete-middle");
        }
        if !r.more {
            break;
        }
        assert_eq!(r.mappings, 1000);
    }
    assert_eq!(freed, n1);
    assert_eq!(batches, 6, "5 full batches and the device's removal");
    assert!(!p.deleting());
    assert_eq!(p.device_details(MAX_THIN_ID).unwrap(), None);
    assert_eq!(p.reclaim_deleted(1000).unwrap(), Reclaimed::default());
    // Thin 2 is untouched.
    for v in 0..10 {
        assert!(p.find_block(2, v, true).unwrap().is_some());
    }
    let dump = check_committed(&mut p, "delete-done");
    assert!(!dump.contains(&format!("dev_id=\"{MAX_THIN_ID}\"")), "{dump}");
}

#[test]
fn a_crash_in_the_middle_is_resumed_on_the_next_open() {
    let n1 = 3000;
    let mut p = pool(20_000, n1);
    let free0 = p.free_data_blocks().unwrap();
    assert!(p.start_delete(1).unwrap());
    p.commit().unwrap();
    p.reclaim_deleted(1000).unwrap();
    p.commit().unwrap();
    // A batch not committed: the crash brings its mappings back.
    p.reclaim_deleted(1000).unwrap();
    let mut p = crash_and_reopen(p);
    assert!(p.deleting(), "the mark is found on open");
    assert_eq!(p.free_data_blocks().unwrap(), free0 + 1000);
    assert_eq!(p.device_details(1).unwrap(), None);
    let mut freed = 1000;
    loop {
        let r = p.reclaim_deleted(700).unwrap();
        freed += r.mappings;
        if !r.more {
            break;
        }
    }
    p.commit().unwrap();
    assert_eq!(freed, n1);
    assert_eq!(p.free_data_blocks().unwrap(), free0 + n1);
    check_committed(&mut p, "delete-resumed");
}

#[test]
fn an_abort_forgets_an_uncommitted_detach_and_keeps_a_committed_one() {
    let mut p = pool(20_000, 2000);
    assert!(p.start_delete(1).unwrap());
    p.abort().unwrap();
    assert!(!p.deleting(), "the detach was not committed");
    assert_eq!(p.mapped_count(1).unwrap(), 2000);

    assert!(p.start_delete(1).unwrap());
    p.commit().unwrap();
    p.reclaim_deleted(500).unwrap();
    p.abort().unwrap();
    assert!(p.deleting(), "found again after the abort");
    assert_eq!(p.mapped_count(MAX_THIN_ID).unwrap(), 2000);
}

#[test]
fn small_or_shared_deletes_go_at_once() {
    // At most DELETE_AT_ONCE mappings.
    let mut p = pool(20_000, 1024);
    assert!(!p.start_delete(1).unwrap());
    assert!(!p.deleting());
    assert_eq!(p.device_details(1).unwrap(), None);
    // A tree whose root a snapshot shares: dropping it walks nothing.
    let mut p = pool(20_000, 4000);
    p.create_snap(5, 1).unwrap();
    assert!(!p.start_delete(1).unwrap());
    assert!(!p.deleting());
    assert_eq!(p.mapped_count(5).unwrap(), 4000);
    p.commit().unwrap();
    check_committed(&mut p, "delete-shared");
}

#[test]
fn a_reclaimed_snapshot_keeps_its_origins_blocks() {
    // The snapshot's tree shares nodes (not its root, after a write) with
    // its origin: removing its mappings copies the shared nodes, and the
    // origin keeps every block.
    let mut p = pool(20_000, 3000);
    p.create_snap(5, 1).unwrap();
    let b = p.alloc_data_block().unwrap().unwrap();
    p.insert_block(5, 0, b).unwrap();
    p.commit().unwrap();
    let free0 = p.free_data_blocks().unwrap();
    assert!(p.start_delete(5).unwrap());
    while p.reclaim_deleted(400).unwrap().more {}
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), free0 + 1, "only the snapshot's own block");
    assert_eq!(p.mapped_count(1).unwrap(), 3000);
    for v in (0..3000).step_by(2) {
        assert!(p.find_block(1, v, true).unwrap().is_some());
    }
    check_committed(&mut p, "delete-snapshot");
}

#[test]
fn delete_thin_device_finishes_a_detached_device_at_once() {
    let mut p = pool(20_000, 2000);
    let free0 = p.free_data_blocks().unwrap();
    assert!(p.start_delete(1).unwrap());
    p.reclaim_deleted(300).unwrap();
    p.delete_thin_device(MAX_THIN_ID).unwrap();
    assert!(!p.deleting());
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), free0 + 2000);
}

/// The periodic commit commits what a batch released even once the
/// detached device is gone (no device is left changed then).
#[test]
fn a_reclaimed_batch_counts_as_a_change_until_committed() {
    let mut p = pool(20_000, 2000);
    assert!(p.start_delete(1).unwrap());
    p.commit().unwrap();
    assert!(!p.changed_this_transaction());
    while p.reclaim_deleted(5000).unwrap().more {}
    assert!(!p.deleting());
    assert!(p.changed_this_transaction(), "the release must be committed");
    p.commit().unwrap();
    assert!(!p.changed_this_transaction());
}
