//! Contract tests of the metadata API, one behaviour of dm-thin-metadata.h
//! at a time.

use dm_thin_host::metadata::{Error, LookupResult, MappedRange, PoolMetadata};
use dm_thin_host::pdata::error::Error as PdataError;
use dm_thin_host::ramdisk::RamDisk;

fn pool(data_blocks: u64) -> PoolMetadata<RamDisk> {
    let mut p = PoolMetadata::open(RamDisk::new(4096), 128, true).unwrap();
    p.resize_data_dev(data_blocks).unwrap();
    p.commit().unwrap();
    p
}

fn reopen(p: PoolMetadata<RamDisk>) -> PoolMetadata<RamDisk> {
    let mut p = p;
    p.close().unwrap();
    PoolMetadata::open(p.into_device().unwrap(), 128, false).unwrap()
}

fn provision(p: &mut PoolMetadata<RamDisk>, dev: u64, v: u64) -> u64 {
    let b = p.alloc_data_block().unwrap().unwrap();
    p.insert_block(dev, v, b).unwrap();
    b
}

#[test]
fn format_then_open_needs_same_block_size() {
    let p = pool(100);
    assert_eq!(p.data_dev_size().unwrap(), 100);
    assert_eq!(p.free_data_blocks().unwrap(), 100);
    assert_eq!(p.data_block_size(), 128);
    let mut p = p;
    p.close().unwrap();
    let dev = p.into_device().unwrap();
    assert_eq!(
        PoolMetadata::open(dev.clone(), 64, false).err(),
        Some(Error::DataBlockSizeMismatch { on_disk: 128 })
    );
    let p = PoolMetadata::open(dev, 128, true).unwrap(); // not reformatted
    assert_eq!(p.data_dev_size().unwrap(), 100);
    assert!(p.metadata_dev_size().unwrap() == 4096);
    assert!(p.free_metadata_blocks().unwrap() < 4096 - 409);
}

#[test]
fn create_delete_and_errors() {
    let mut p = pool(100);
    p.create_thin(1).unwrap();
    assert_eq!(p.create_thin(1), Err(Error::Exists));
    assert_eq!(p.create_snap(1, 1), Err(Error::Exists));
    assert_eq!(p.create_snap(2, 9), Err(Error::NoSuchDevice));
    assert_eq!(p.delete_thin_device(9), Err(Error::NoSuchDevice));
    assert_eq!(p.find_block(9, 0, true), Err(Error::NoSuchDevice));
    p.open_thin_device(1).unwrap();
    assert_eq!(p.delete_thin_device(1), Err(Error::Busy));
    assert_eq!(p.close(), Err(Error::Busy));
    p.close_thin_device(1);
    provision(&mut p, 1, 5);
    p.delete_thin_device(1).unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), 100);
    p.create_thin(1).unwrap();
    assert_eq!(p.mapped_count(1).unwrap(), 0);
    let mut p = reopen(p);
    assert_eq!(p.mapped_count(1).unwrap(), 0);
    assert_eq!(p.find_block(1, 5, true).unwrap(), None);
}

#[test]
fn snapshots_share_and_times() {
    let mut p = pool(1000);
    p.create_thin(0).unwrap();
    let a = provision(&mut p, 0, 10);
    let b = provision(&mut p, 0, 11);
    assert_eq!(
        p.find_block(0, 10, true).unwrap(),
        Some(LookupResult {
            block: a,
            shared: false
        })
    );
    p.create_snap(1, 0).unwrap();
    assert_eq!(p.time(), 1);
    // Both see the old mappings as shared.
    assert_eq!(
        p.find_block(0, 10, true).unwrap(),
        Some(LookupResult {
            block: a,
            shared: true
        })
    );
    assert_eq!(
        p.find_block(1, 11, true).unwrap(),
        Some(LookupResult {
            block: b,
            shared: true
        })
    );
    assert_eq!(p.mapped_count(1).unwrap(), 2);
    let d = p.device_details(1).unwrap().unwrap();
    assert_eq!((d.creation_time, d.snapshotted_time), (1, 1));
    assert_eq!(p.device_details(0).unwrap().unwrap().snapshotted_time, 1);
    // Break sharing in the snapshot: the origin keeps its block.
    let c = provision(&mut p, 1, 10);
    assert_eq!(
        p.find_block(1, 10, true).unwrap(),
        Some(LookupResult {
            block: c,
            shared: false
        })
    );
    assert_eq!(
        p.find_block(0, 10, true).unwrap(),
        Some(LookupResult {
            block: a,
            shared: true
        })
    );
    assert_eq!(p.mapped_count(1).unwrap(), 2);
    // New mappings in the origin are private.
    let e = provision(&mut p, 0, 12);
    assert_eq!(
        p.find_block(0, 12, true).unwrap(),
        Some(LookupResult {
            block: e,
            shared: false
        })
    );
    assert_eq!(p.find_block(1, 12, true).unwrap(), None);
    let mut p = reopen(p);
    assert_eq!(
        p.find_block(1, 11, true).unwrap(),
        Some(LookupResult {
            block: b,
            shared: true
        })
    );
    assert!(p.block_is_shared(b).unwrap() || p.data_block_count(b).unwrap() == 1);
    // Deleting the origin keeps the snapshot's shared blocks.
    p.delete_thin_device(0).unwrap();
    p.commit().unwrap();
    assert_eq!(
        p.find_block(1, 11, true).unwrap(),
        Some(LookupResult {
            block: b,
            shared: true
        })
    );
    assert_eq!(p.data_block_count(e).unwrap(), 0);
    assert_eq!(p.data_block_count(a).unwrap(), 0);
    assert_eq!(p.free_data_blocks().unwrap(), 1000 - 2);
}

#[test]
fn remove_range_highest_and_mapped_range() {
    let mut p = pool(10_000);
    p.create_thin(3).unwrap();
    assert_eq!(p.highest_mapped_block(3).unwrap(), None);
    for v in 100..200 {
        provision(&mut p, 3, v);
    }
    for v in 1000..1010 {
        provision(&mut p, 3, v);
    }
    assert_eq!(p.highest_mapped_block(3).unwrap(), Some(1009));
    let first = p.find_block(3, 100, true).unwrap().unwrap().block;
    assert_eq!(
        p.find_mapped_range(3, 0, 5000).unwrap(),
        Some(MappedRange {
            thin_begin: 100,
            thin_end: 200,
            pool_begin: first,
            maybe_shared: false
        })
    );
    assert_eq!(p.find_mapped_range(3, 300, 999).unwrap(), None);
    assert_eq!(p.remove_range(3, 150, 1005).unwrap(), 55);
    assert_eq!(p.mapped_count(3).unwrap(), 55);
    assert!(p.remove_block(3, 100).unwrap());
    assert!(!p.remove_block(3, 100).unwrap());
    assert_eq!(p.mapped_count(3).unwrap(), 54);
    assert_eq!(p.highest_mapped_block(3).unwrap(), Some(1009));
    assert_eq!(p.remove_range(3, 0, u64::MAX).unwrap(), 54);
    assert_eq!(p.highest_mapped_block(3).unwrap(), None);
    let mut p = reopen(p);
    assert_eq!(p.free_data_blocks().unwrap(), 10_000);
    assert_eq!(p.mapped_count(3).unwrap(), 0);
}

/// map()'s lookup on a device that is open and whose details are in core:
/// a mapping whose leaf is not in the cache answers "would block" (defer
/// to the worker), the worker's blocking lookup reads it, and then the
/// non-blocking lookup hits without I/O.
#[test]
fn non_blocking_lookup_would_block_on_a_cache_miss() {
    let mut p = pool(10_000);
    p.create_thin(1).unwrap();
    for v in 0..5000 {
        provision(&mut p, 1, v * 13);
    }
    p.close().unwrap();
    let dev = p.into_device().unwrap();
    // A 16-block cache holds a few nodes of the 5000-mapping tree.
    let mut p = PoolMetadata::open_with_cache(dev, Some(128), false, 16).unwrap();
    p.open_thin_device(1).unwrap();
    // Warm the top level and the device's subtree root.
    let first = p.find_block(1, 0, true).unwrap().unwrap();
    assert_eq!(p.find_block(1, 0, false).unwrap(), Some(first));
    let reads = p.device_mut().unwrap().counts().reads;
    assert_eq!(p.find_block(1, 13 * 4000, false), Err(Error::WouldBlock));
    assert_eq!(p.device_mut().unwrap().counts().reads, reads, "no I/O");
    let r = p.find_block(1, 13 * 4000, true).unwrap().unwrap();
    assert!(p.device_mut().unwrap().counts().reads > reads);
    let reads = p.device_mut().unwrap().counts().reads;
    assert_eq!(p.find_block(1, 13 * 4000, false).unwrap(), Some(r));
    assert_eq!(p.device_mut().unwrap().counts().reads, reads);
    // Unmapped but on a cached leaf: a plain miss of the mapping, no defer.
    assert_eq!(p.find_block(1, 13 * 4000 + 1, false).unwrap(), None);
    p.close_thin_device(1);
}

#[test]
fn shared_lookup_answers_as_the_non_blocking_one_from_several_threads() {
    let mut p = pool(10_000);
    p.create_thin(1).unwrap();
    for v in 0..3000 {
        provision(&mut p, 1, v * 7);
    }
    p.create_snap(2, 1).unwrap();
    provision(&mut p, 2, 7); // broken sharing: 2's block 7 is its own
    p.commit().unwrap();
    p.close().unwrap();
    let dev = p.into_device().unwrap();
    let mut p = PoolMetadata::open_with_cache(dev, Some(128), false, 4096).unwrap();
    // Details not loaded (the device is not open): never read in map().
    assert_eq!(p.find_block_shared(2, 7), Err(Error::WouldBlock));
    p.open_thin_device(1).unwrap();
    p.open_thin_device(2).unwrap();
    // Nothing of the trees is cached yet: it would read.
    assert_eq!(p.find_block_shared(1, 7), Err(Error::WouldBlock));
    let reads = p.device_mut().unwrap().counts().reads;
    let _ = p.find_block_shared(2, 0);
    assert_eq!(p.device_mut().unwrap().counts().reads, reads, "no I/O");
    // Warm both trees, then every answer matches, from two threads at once.
    let mut expect = Vec::new();
    for dev in [1, 2] {
        for v in 0..3000 * 7 + 10 {
            expect.push((dev, v, p.find_block(dev, v, true).unwrap()));
        }
    }
    assert_eq!(p.find_block_shared(2, 7).unwrap().map(|r| r.shared), Some(false));
    assert_eq!(p.find_block_shared(2, 14).unwrap().map(|r| r.shared), Some(true));
    let p = &p;
    std::thread::scope(|s| {
        for part in expect.chunks(expect.len() / 2 + 1) {
            s.spawn(move || {
                for &(dev, v, want) in part {
                    assert_eq!(p.find_block_shared(dev, v).unwrap(), want, "dev {dev} block {v}");
                }
            });
        }
    });
}

#[test]
fn a_lookup_reads_its_misses_outside_and_installs_only_current_copies() {
    use dm_thin_host::metadata::Miss;
    use dm_thin_host::pdata::block_device::BlockDevice;
    let mut p = pool(10_000);
    p.create_thin(1).unwrap();
    for v in 0..3000 {
        provision(&mut p, 1, v * 5);
    }
    p.close().unwrap();
    let dev = p.into_device().unwrap();
    let mut p = PoolMetadata::open_with_cache(dev, Some(128), false, 4096).unwrap();
    p.open_thin_device(1).unwrap();
    let read = |p: &mut PoolMetadata<RamDisk>, b: u64| {
        let mut buf = vec![0u8; 4096];
        p.device_mut().unwrap().read(b, &mut buf).unwrap();
        buf
    };
    // Cold: each try names one node; read and installed, the next try
    // goes one level down, until the answer.
    let mut tries = 0;
    let found = loop {
        match p.find_block_or_miss(1, 5 * 2999) {
            Ok(r) => break r,
            Err(Miss::Node(m)) => {
                let buf = read(&mut p, m.block);
                p.install_node(&m, &buf).unwrap();
            }
            Err(Miss::Error(e)) => panic!("{e:?}"),
        }
        tries += 1;
        assert!(tries < 8, "a lookup never finished");
    };
    assert!(tries >= 2, "top level and subtree were read");
    assert_eq!(found, p.find_block(1, 5 * 2999, true).unwrap());
    assert!(found.is_some());
    // A write to the device between the read and the install: the copy
    // may be stale and is not put; the same node is still missing (a leaf
    // far from the change, whose path it does not shadow).
    let far = 5 * 1500;
    let Err(Miss::Node(m)) = p.find_block_or_miss(1, far) else { panic!("a cold leaf") };
    let buf = read(&mut p, m.block);
    provision(&mut p, 1, 1); // changes, and the commit writes
    p.commit().unwrap();
    p.install_node(&m, &buf).unwrap();
    match p.find_block_or_miss(1, far) {
        Err(Miss::Node(again)) => assert_eq!(again.block, m.block),
        other => panic!("a copy read before a write was installed: {other:?}"),
    }
    // A copy that fails the node validator is the error a read gives.
    let Err(Miss::Node(m)) = p.find_block_or_miss(1, far) else { panic!() };
    let mut bad = read(&mut p, m.block);
    bad[100] ^= 1;
    assert!(p.install_node(&m, &bad).is_err());
    let buf = read(&mut p, m.block);
    p.install_node(&m, &buf).unwrap();
    let r = p.find_block_or_miss(1, far).unwrap();
    assert!(r.is_some());
    assert_eq!(r, p.find_block(1, far, true).unwrap());
    p.close_thin_device(1);
}

#[test]
fn abort_transaction_id_and_needs_check() {
    let mut p = pool(1000);
    p.create_thin(1).unwrap();
    provision(&mut p, 1, 0);
    p.set_transaction_id(0, 1).unwrap();
    p.commit().unwrap();
    assert_eq!(
        p.set_transaction_id(0, 2),
        Err(Error::TransactionIdMismatch)
    );
    p.open_thin_device(1).unwrap();
    provision(&mut p, 1, 1);
    p.create_thin(2).unwrap();
    p.set_transaction_id(1, 2).unwrap();
    assert!(p.thin_changed_this_transaction(1).unwrap());
    assert!(p.changed_this_transaction());
    p.abort().unwrap();
    assert!(p.thin_aborted_changes(1).unwrap());
    assert!(!p.thin_changed_this_transaction(1).unwrap());
    assert_eq!(p.transaction_id().unwrap(), 1);
    assert_eq!(p.mapped_count(1).unwrap(), 1);
    assert_eq!(p.find_block(1, 1, true).unwrap(), None);
    assert_eq!(p.device_details(2).unwrap(), None);
    assert_eq!(p.free_data_blocks().unwrap(), 999);
    p.close_thin_device(1);
    assert!(!p.needs_check());
    p.set_needs_check().unwrap();
    let mut p = reopen(p);
    assert!(p.needs_check());
    p.clear_needs_check().unwrap();
    let mut p = reopen(p);
    assert!(!p.needs_check());
    // Read-only: no commit.
    p.set_read_only();
    assert!(p.commit().is_err());
    p.set_read_write();
    p.commit().unwrap();
}

#[test]
fn metadata_snapshot_reserve_release() {
    let mut p = pool(1000);
    p.create_thin(1).unwrap();
    provision(&mut p, 1, 0);
    assert_eq!(p.metadata_snap().unwrap(), None);
    p.reserve_metadata_snap().unwrap();
    let held = p.metadata_snap().unwrap().unwrap();
    assert_eq!(p.reserve_metadata_snap(), Err(Error::MetadataSnapExists));
    p.remove_range(1, 0, 10).unwrap();
    p.commit().unwrap();
    // The held tree keeps block 0's data referenced.
    assert_eq!(p.free_data_blocks().unwrap(), 999);
    let mut p = reopen(p);
    assert_eq!(p.metadata_snap().unwrap(), Some(held));
    p.release_metadata_snap().unwrap();
    assert_eq!(p.release_metadata_snap(), Err(Error::NoMetadataSnap));
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), 1000);
    let p = reopen(p);
    assert_eq!(p.metadata_snap().unwrap(), None);
}

#[test]
fn data_space_runs_out_and_grows() {
    let mut p = pool(10);
    p.create_thin(1).unwrap();
    for v in 0..10 {
        provision(&mut p, 1, v);
    }
    assert_eq!(p.alloc_data_block().unwrap(), None);
    assert_eq!(p.resize_data_dev(5), Err(Error::CannotShrink));
    p.resize_data_dev(20).unwrap();
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), 10);
    let b = provision(&mut p, 1, 10);
    assert!((10..20).contains(&b));
    // Freed blocks come back after the commit.
    p.remove_range(1, 0, 11).unwrap();
    p.commit().unwrap();
    assert_eq!(p.free_data_blocks().unwrap(), 20);
    // The metadata device grows too.
    p.close().unwrap();
    let mut dev = p.into_device().unwrap();
    dev.resize(8192);
    let mut p = PoolMetadata::open(dev, 128, false).unwrap();
    p.resize_metadata_dev(8192).unwrap();
    p.commit().unwrap();
    assert_eq!(p.metadata_dev_size().unwrap(), 8192);
    let p = reopen(p);
    assert_eq!(p.metadata_dev_size().unwrap(), 8192);
}

#[test]
fn metadata_threshold_fires_once_per_crossing() {
    let mut p = pool(1_000_000);
    p.create_thin(1).unwrap();
    p.commit().unwrap();
    // The threshold counts raw free blocks: the reported count minus the
    // reserve (a tenth of the 4096-block device).
    let raw_free = p.free_metadata_blocks().unwrap() + 409;
    p.register_metadata_threshold(raw_free - 20).unwrap();
    let mut fired = 0;
    for v in 0..200_000u64 {
        provision(&mut p, 1, v * 300);
        fired += p.take_metadata_threshold_events();
        if v % 5000 == 0 {
            p.commit().unwrap();
        }
    }
    assert_eq!(fired, 1);
}

fn pre_commits(p: &mut PoolMetadata<RamDisk>) -> u64 {
    p.device_mut().unwrap().counts().pre_commits
}

fn writes(p: &mut PoolMetadata<RamDisk>) -> u64 {
    p.device_mut().unwrap().counts().writes
}

fn fail_pre_commit(p: &mut PoolMetadata<RamDisk>, on: bool) {
    p.device_mut().unwrap().set_fail_pre_commit(on);
}

/// The pre-commit barrier (the pool's data-device flush) runs first on
/// every path that commits, only when there is something to commit, and
/// its failure stops that commit before anything is written.
#[test]
fn pre_commit_runs_first_on_every_commit_path() {
    let dev = RamDisk::new(1024);
    let mut p = PoolMetadata::open(dev, 128, true).unwrap();
    let n = pre_commits(&mut p);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n, "nothing to commit yet");
    p.resize_data_dev(100).unwrap();
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 1);

    // commit
    p.create_thin(1).unwrap();
    fail_pre_commit(&mut p, true);
    let w = writes(&mut p);
    assert_eq!(p.commit(), Err(Error::Pdata(PdataError::Io)));
    assert_eq!(writes(&mut p), w, "a failed barrier writes nothing");
    fail_pre_commit(&mut p, false);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 3);

    // reserve_metadata_snap commits
    fail_pre_commit(&mut p, true);
    let w = writes(&mut p);
    assert_eq!(p.reserve_metadata_snap(), Err(Error::Pdata(PdataError::Io)));
    assert_eq!(writes(&mut p), w);
    assert_eq!(p.metadata_snap().unwrap(), None);
    fail_pre_commit(&mut p, false);
    p.reserve_metadata_snap().unwrap();
    assert_eq!(pre_commits(&mut p), n + 5);
    p.release_metadata_snap().unwrap();
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 6);

    // close commits
    p.create_thin(2).unwrap();
    fail_pre_commit(&mut p, true);
    let w = writes(&mut p);
    assert_eq!(p.close(), Err(Error::Pdata(PdataError::Io)));
    assert_eq!(writes(&mut p), w);
    fail_pre_commit(&mut p, false);
    p.close().unwrap();
    assert_eq!(pre_commits(&mut p), n + 8);
    let mut p = PoolMetadata::open(p.into_device().unwrap(), 128, false).unwrap();
    assert_eq!(p.data_dev_size().unwrap(), 100);
    assert!(p.device_details(2).unwrap().is_some());
}

/// The owner's own data-device flush (made with no lock held, after it
/// read the generation) stands for the commit's barrier only while nothing
/// changed since that read: a mapping made after the read may name data
/// the flush did not cover.
#[test]
fn a_data_flush_made_before_the_commit_stands_for_its_barrier_until_a_change() {
    let mut p = pool(100);
    p.create_thin(1).unwrap();
    p.commit().unwrap();
    provision(&mut p, 1, 0);
    let n = pre_commits(&mut p);
    // Flushed after the last change: the commit needs no barrier of its own.
    let g = p.generation();
    p.data_flushed(g);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n, "the owner's flush covered the commit");
    // A change after the read: the commit flushes again.
    provision(&mut p, 1, 1);
    let g = p.generation();
    provision(&mut p, 1, 2);
    p.data_flushed(g);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 1, "a mapping made after the flush began");
    // A mark is used once: the next commit with changes flushes again.
    provision(&mut p, 1, 3);
    p.data_flushed(p.generation());
    provision(&mut p, 1, 4);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 2);
    provision(&mut p, 1, 5);
    p.commit().unwrap();
    assert_eq!(pre_commits(&mut p), n + 3, "no mark, the barrier runs");
    let mut p = reopen(p);
    for v in 0..6 {
        assert!(p.find_block(1, v, true).unwrap().is_some(), "block {v} committed");
    }
}

/// needs_check reaches the disk at once, in read-only mode too, without
/// a commit: a pool that goes read-only and is never closed cleanly still
/// tells `thin_check` to look. The open transaction does not leak out.
#[test]
fn needs_check_reaches_the_disk_in_read_only_mode() {
    let mut p = pool(100);
    p.create_thin(1).unwrap();
    p.commit().unwrap();
    p.device_mut().unwrap().set_lose_unflushed(true);
    p.create_thin(2).unwrap(); // never committed
    p.set_read_only();
    p.set_needs_check().unwrap();
    assert!(p.needs_check());
    assert_eq!(p.commit(), Err(Error::Invalid));
    let mut dev = p.into_device().unwrap(); // no close: as a crash
    dev.crash();
    let mut p = PoolMetadata::open(dev, 128, false).unwrap();
    assert!(p.needs_check());
    assert!(p.device_details(1).unwrap().is_some());
    assert_eq!(p.device_details(2).unwrap(), None);
    // Read-write: durable at once as well, and kept by later commits.
    p.clear_needs_check().unwrap();
    p.create_thin(3).unwrap();
    p.set_needs_check().unwrap();
    let mut dev = p.into_device().unwrap();
    dev.crash();
    let mut p = PoolMetadata::open(dev, 128, false).unwrap();
    assert!(p.needs_check());
    assert_eq!(p.device_details(3).unwrap(), None);
    p.create_thin(3).unwrap();
    p.commit().unwrap();
    let mut p = reopen(p);
    assert!(p.needs_check());
    assert!(p.device_details(3).unwrap().is_some());
}

/// create_thin and create_snap change nothing (trees, space maps, pool
/// time, the origin) when the in-core device list cannot grow; both work
/// once it can, and the image passes thin_check (no leaked blocks).
#[test]
fn create_changes_nothing_when_the_device_list_cannot_grow() {
    use dm_thin_host::pdata::alloc::fault;
    let mut p = pool(100);
    p.create_thin(1).unwrap();
    let b = provision(&mut p, 1, 0);
    p.commit().unwrap();
    // The origin is in core, so the snapshot's failing allocation is its own.
    p.open_thin_device(1).unwrap();
    let origin = p.device_details(1).unwrap().unwrap();
    let (meta, data, time) = (
        p.free_metadata_blocks().unwrap(),
        p.free_data_blocks().unwrap(),
        p.time(),
    );
    fault::fail_allocations_of("ThinDevice");
    let r2 = p.create_thin(2);
    let r3 = p.create_snap(3, 1);
    fault::clear();
    assert_eq!(r2, Err(Error::Pdata(PdataError::NoMem)));
    assert_eq!(r3, Err(Error::Pdata(PdataError::NoMem)));
    for dev in [2, 3] {
        assert_eq!(
            p.walk_mappings(dev, |_, _| Ok(())),
            Err(Error::NoSuchDevice)
        );
        assert_eq!(p.device_details(dev).unwrap(), None);
    }
    assert_eq!(p.free_metadata_blocks().unwrap(), meta);
    assert_eq!(p.free_data_blocks().unwrap(), data);
    assert_eq!(p.time(), time);
    assert_eq!(p.device_details(1).unwrap().unwrap(), origin);

    p.create_thin(2).unwrap();
    p.create_snap(3, 1).unwrap();
    let m = p.find_block(3, 0, true).unwrap().unwrap();
    assert_eq!((m.block, m.shared), (b, true));
    p.close_thin_device(1);
    p.close().unwrap();
    let dev = p.into_device().unwrap();
    let path = dm_thin_host::oracle::scratch("create_rollback").join("meta.img");
    let mut img = Vec::new();
    for blk in 0..4096 {
        img.extend_from_slice(&dev.block(blk));
    }
    std::fs::write(&path, img).unwrap();
    dm_thin_host::oracle::assert_checks(&path);
}

/// An abort that fails half way (here: the details of an open device
/// cannot be re-read) leaves the pool failed: every later operation is
/// an error, so no root of the thrown-away transaction is ever used.
#[test]
fn failed_abort_fails_the_pool() {
    use dm_thin_host::metadata::superblock::Superblock;
    let mut p = pool(10_000);
    p.create_thin(1).unwrap();
    p.commit().unwrap();
    let dev = {
        p.close().unwrap();
        p.into_device().unwrap()
    };
    let details_root = Superblock::unpack(&dev.block(0))
        .unwrap()
        .device_details_root;
    // A small cache: the open transaction evicts the details tree.
    let mut p = PoolMetadata::open_with_cache(dev, Some(128), false, 16).unwrap();
    p.open_thin_device(1).unwrap();
    for v in 0..3000 {
        provision(&mut p, 1, v * 7);
    }
    p.device_mut().unwrap().set_fail_read_of(Some(details_root));
    assert!(p.abort().is_err());
    assert!(p.device_mut().is_none(), "failed state");
    let fail = Err(Error::FailIo);
    assert_eq!(p.find_block(1, 7, false).map(|_| ()), fail);
    assert_eq!(p.find_block(1, 7, true).map(|_| ()), fail);
    assert_eq!(p.insert_block(1, 7, 1), fail);
    assert_eq!(p.mapped_count(1).map(|_| ()), fail);
    assert_eq!(p.device_details(1).map(|_| ()), fail);
    assert_eq!(p.create_thin(2), fail);
    assert_eq!(p.alloc_data_block().map(|_| ()), fail);
    assert_eq!(p.transaction_id().map(|_| ()), fail);
    assert_eq!(p.free_data_blocks().map(|_| ()), fail);
    assert_eq!(p.set_needs_check(), fail);
    assert_eq!(p.commit(), fail);
    assert_eq!(p.abort(), fail);
    p.close_thin_device(1);
    assert_eq!(p.close(), Ok(()));
    assert!(p.into_device().is_none());
}

/// The shrinker's calls: clean blocks go (a cold lookup then needs I/O),
/// dirty ones stay until the commit, and every lookup still answers.
#[test]
fn shrinking_the_cache_keeps_every_mapping_and_every_change() {
    let mut p = pool(10_000);
    p.create_thin(1).unwrap();
    let mut blocks = Vec::new();
    for v in 0..3000 {
        blocks.push(provision(&mut p, 1, v));
    }
    p.commit().unwrap();
    for v in 0..3000 {
        p.find_block(1, v, true).unwrap();
    }
    let n = p.cache_shrinkable();
    assert!(n > 10, "a warm cache has clean blocks: {n}");
    // An uncommitted change: its blocks are dirty and must survive.
    let extra = provision(&mut p, 1, 5000);
    let dirty_left = p.cache_shrinkable();
    assert_eq!(p.shrink_cache(usize::MAX), dirty_left);
    assert_eq!(p.cache_shrinkable(), 0);
    assert_eq!(p.find_block(1, 100, false), Err(Error::WouldBlock), "cold after the shrink");
    for (v, &b) in blocks.iter().enumerate() {
        let r = p.find_block(1, v as u64, true).unwrap().unwrap();
        assert_eq!(r.block, b, "block {v}");
    }
    assert!(p.cache_shrinkable() > 0, "the cache fills again");
    // Shrinking in small steps frees no more than asked.
    assert_eq!(p.shrink_cache(3), 3);
    p.commit().unwrap();
    let mut p = reopen(p);
    assert_eq!(p.find_block(1, 5000, true).unwrap().unwrap().block, extra);
    assert_eq!(p.mapped_count(1).unwrap(), 3001);
}
