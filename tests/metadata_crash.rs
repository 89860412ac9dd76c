//! Crash safety: the write stream of a transaction is cut after every (or
//! many a) write, unflushed writes are lost, and the reopened metadata must
//! be exactly the last completed commit, and pass `thin_check`.

use std::path::Path;

use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::oracle::{assert_checks, scratch};
use dm_thin_host::ramdisk::{CutMode, RamDisk};
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_model::{check_against, Model, ModelState, Outcome};
use dm_thin_host::thin_ops::{random_op, OpMix};
use dm_thin_host::thin_script::{execute, Op};

const META_BLOCKS: u64 = 4096;
const NR_DATA: u64 = 20_000;

fn write_image(dev: &RamDisk, path: &Path) {
    let mut img = Vec::with_capacity((META_BLOCKS as usize) * 4096);
    for b in 0..META_BLOCKS {
        img.extend_from_slice(&dev.block(b));
    }
    std::fs::write(path, img).unwrap();
}

/// Runs `ops` then commit on a copy of `base`, with the write stream cut
/// after `cut` writes; returns the crashed device and whether every op
/// and the commit reported success.
fn replay(base: &RamDisk, ops: &[Op], cut: Option<(u64, CutMode)>) -> (RamDisk, bool) {
    let mut dev = base.clone();
    dev.set_lose_unflushed(true);
    if let Some((n, mode)) = cut {
        dev.cut_after(n, mode);
    }
    let mut all_ok = true;
    match PoolMetadata::open(dev, 128, false) {
        Ok(mut pmd) => {
            for op in ops {
                // Outcomes of a replay are those of the first run, unless
                // an I/O error intervenes; either way carry on.
                let _ = execute(&mut pmd, op);
            }
            if pmd.commit().is_err() {
                all_ok = false;
            }
            match pmd.into_device() {
                Some(mut d) => {
                    d.crash();
                    (d, all_ok)
                }
                None => panic!("pool failed without a device"),
            }
        }
        Err(e) => panic!("open of a committed image failed: {e:?}"),
    }
}

fn reopen_and_check(dev: RamDisk, want: &ModelState, rng: &mut Rng, what: &str) -> RamDisk {
    let mut pmd = PoolMetadata::open(dev, 128, false)
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e:?}"));
    check_against(&mut pmd, want, rng).unwrap_or_else(|e| panic!("{what}: {e}"));
    pmd.into_device().unwrap()
}

#[test]
fn cut_anywhere_reopens_at_last_commit() {
    let dir = scratch("crash");
    let img = dir.join("meta.img");
    let mut rng = Rng::new(99);
    let mut check_rng = Rng::new(100);
    let mix = OpMix {
        max_devices: 5,
        vblocks: 3000,
        commit_pct: 0,
        abort_pct: 0,
        deletes: true,
    };

    // A committed starting point.
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
    pmd.resize_data_dev(NR_DATA).unwrap();
    pmd.commit().unwrap();
    let mut model = Model::new(NR_DATA);
    let mut base = pmd.into_device().unwrap();

    let mut checked_images = 0;
    for txn in 0..6 {
        // The transaction: random ops, then commit; model gives the result.
        let mut ops = Vec::new();
        let pmd = PoolMetadata::open(base.clone(), 128, false).unwrap();
        let before = pmd.into_device().unwrap().counts().writes;
        let mut pmd = PoolMetadata::open(base.clone(), 128, false).unwrap();
        for _ in 0..(300 + txn * 200) {
            let op = random_op(&mut rng, &model, &mix);
            if matches!(
                op,
                Op::Commit | Op::Abort | Op::ResizeData(_) | Op::ReserveMetadataSnap
            ) {
                continue;
            }
            let outcome = match execute(&mut pmd, &op) {
                Ok(b) => Outcome::Ok(b),
                Err(_) => Outcome::Err,
            };
            model.apply(&op, outcome).unwrap();
            ops.push(op);
        }
        pmd.commit().unwrap();
        let after = pmd.into_device().unwrap().counts().writes;
        let old = model.committed.clone();
        let new = model.cur.clone();
        let total = after - before;
        assert!(total > 2, "transaction {txn} wrote only {total} blocks");

        // Cut points: all of them for small transactions, else a sample
        // that includes both ends.
        let cuts: Vec<u64> = if total <= 200 {
            (0..=total).collect()
        } else {
            let mut v: Vec<u64> = (0..60).map(|i| i * total / 60).collect();
            v.extend([total - 2, total - 1, total, total + 1]);
            v
        };
        for (k, &n) in cuts.iter().enumerate() {
            for mode in [CutMode::Drop, CutMode::Fail] {
                let (dev, ok) = replay(&base, &ops, Some((n, mode)));
                let want = if n >= total { &new } else { &old };
                if n >= total {
                    assert!(ok, "txn {txn}: commit failed with the cut past the end");
                }
                if mode == CutMode::Fail && n < total {
                    assert!(
                        !ok,
                        "txn {txn}: cut at {n}/{total} went unnoticed in Fail mode"
                    );
                }
                let what = format!("txn {txn} cut {n}/{total} {mode:?}");
                let dev = reopen_and_check(dev, want, &mut check_rng, &what);
                if k % 12 == 0 && mode == CutMode::Drop {
                    write_image(&dev, &img);
                    assert_checks(&img);
                    checked_images += 1;
                }
            }
        }
        // Move on from the completed commit.
        let (dev, ok) = replay(&base, &ops, None);
        assert!(ok);
        base = reopen_and_check(dev, &new, &mut check_rng, "full replay");
        model.committed = new;
    }
    assert!(checked_images >= 10);
}

#[test]
fn lost_unflushed_writes_before_commit_change_nothing() {
    // Work that is evicted from a small cache before any commit reaches the
    // disk early; a crash must still show the last commit.
    let mut pmd =
        PoolMetadata::open_with_cache(RamDisk::new(META_BLOCKS), Some(128), true, 16).unwrap();
    pmd.resize_data_dev(NR_DATA).unwrap();
    pmd.commit().unwrap();
    pmd.create_thin(1).unwrap();
    for v in 0..2000 {
        let b = pmd.alloc_data_block().unwrap().unwrap();
        pmd.insert_block(1, v * 7, b).unwrap();
    }
    pmd.commit().unwrap();
    let mut dev = pmd.into_device().unwrap();
    dev.set_lose_unflushed(true);
    let mut pmd = PoolMetadata::open_with_cache(dev, Some(128), false, 16).unwrap();
    pmd.create_snap(2, 1).unwrap();
    for v in 0..3000 {
        let b = pmd.alloc_data_block().unwrap().unwrap();
        pmd.insert_block(2, v * 3, b).unwrap();
    }
    pmd.remove_range(1, 0, 5000).unwrap();
    let mut dev = pmd.into_device().unwrap();
    assert!(
        dev.counts().writes > 0,
        "the small cache should have written back"
    );
    dev.crash();
    let mut pmd = PoolMetadata::open(dev, 128, false).unwrap();
    assert_eq!(pmd.mapped_count(1).unwrap(), 2000);
    assert!(pmd.device_details(2).unwrap().is_none());
    for v in 0..2000 {
        assert!(pmd.find_block(1, v * 7, true).unwrap().is_some());
    }
}

#[test]
fn failed_commit_then_abort_recovers() {
    // The pool target's error path: a commit fails part way (I/O errors),
    // the metadata is aborted, and work carries on once the device is back.
    let mut rng = Rng::new(5);
    let mut check_rng = Rng::new(6);
    let mix = OpMix {
        max_devices: 4,
        vblocks: 2000,
        commit_pct: 0,
        abort_pct: 0,
        deletes: true,
    };
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
    pmd.resize_data_dev(NR_DATA).unwrap();
    pmd.commit().unwrap();
    let mut model = Model::new(NR_DATA);
    let mut aborts = 0;
    for round in 0..20u64 {
        let mut ops = Vec::new();
        for _ in 0..200 {
            let op = random_op(&mut rng, &model, &mix);
            if matches!(
                op,
                Op::Commit | Op::Abort | Op::ResizeData(_) | Op::ReserveMetadataSnap
            ) {
                continue;
            }
            let outcome = match execute(&mut pmd, &op) {
                Ok(b) => Outcome::Ok(b),
                Err(_) => Outcome::Err,
            };
            model.apply(&op, outcome).unwrap();
            ops.push(op);
        }
        // Cut the commit after a few writes: it must fail, abort must work.
        pmd.device_mut()
            .unwrap()
            .cut_after(round % 7, CutMode::Fail);
        if pmd.commit().is_err() {
            pmd.abort()
                .unwrap_or_else(|e| panic!("round {round}: abort failed: {e:?}"));
            aborts += 1;
            model.cur = model.committed.clone();
            check_against(&mut pmd, &model.cur, &mut check_rng)
                .unwrap_or_else(|e| panic!("round {round} after abort: {e}"));
        } else {
            model.committed = model.cur.clone();
        }
        pmd.device_mut().unwrap().uncut();
        // Redo the work with the device healthy.
        for op in &ops {
            let outcome = match execute(&mut pmd, op) {
                Ok(b) => Outcome::Ok(b),
                Err(_) => Outcome::Err,
            };
            model
                .apply(op, outcome)
                .unwrap_or_else(|e| panic!("round {round} redo: {e}"));
        }
        pmd.commit().unwrap();
        model.committed = model.cur.clone();
    }
    assert!(aborts >= 15, "only {aborts} commits failed");
    pmd.close().unwrap();
    let mut dev = pmd.into_device().unwrap();
    dev.crash();
    let mut pmd = PoolMetadata::open(dev, 128, false).unwrap();
    check_against(&mut pmd, &model.committed, &mut check_rng).unwrap();
    let dir = scratch("abort-after-failed-commit");
    let img = dir.join("meta.img");
    write_image(&pmd.into_device().unwrap(), &img);
    assert_checks(&img);
}

#[test]
fn metadata_device_full_fails_cleanly_and_aborts() {
    // A tiny metadata device: provisioning runs it out of blocks. The
    // failing operation must return an error (no panic), abort must bring
    // back the last commit, and the image must still pass the checkers.
    let blocks = 96;
    let mut pmd = PoolMetadata::open(RamDisk::new(blocks), 128, true).unwrap();
    pmd.resize_data_dev(1_000_000).unwrap();
    pmd.create_thin(1).unwrap();
    pmd.commit().unwrap();
    let mut committed = 0u64;
    let mut v = 0u64;
    let err = loop {
        let r = pmd.alloc_data_block().and_then(|b| match b {
            Some(b) => pmd.insert_block(1, v * 5, b),
            None => panic!("data space cannot run out first"),
        });
        if let Err(e) = r {
            break e;
        }
        v += 1;
        if v.is_multiple_of(500) {
            if let Err(e) = pmd.commit() {
                break e;
            }
            committed = v;
        }
        assert!(v < 10_000_000, "metadata never ran out");
    };
    eprintln!("metadata full after {v} mappings ({committed} committed): {err:?}");
    pmd.abort().unwrap();
    assert_eq!(pmd.mapped_count(1).unwrap(), committed);
    for k in (0..committed).step_by(97) {
        assert!(pmd.find_block(1, k * 5, true).unwrap().is_some());
    }
    // Freeing space makes room again.
    pmd.remove_range(1, 0, committed * 5 / 2).unwrap();
    pmd.commit().unwrap();
    pmd.close().unwrap();
    let dev = pmd.into_device().unwrap();
    let dir = scratch("metadata-full");
    let img = dir.join("meta.img");
    let mut raw = Vec::new();
    for b in 0..blocks {
        raw.extend_from_slice(&dev.block(b));
    }
    std::fs::write(&img, raw).unwrap();
    assert_checks(&img);
}

#[test]
fn commit_failing_after_details_marks_open_thins_aborted() {
    // A commit that fails at any write, even after the changed details are
    // written, leaves every open device that changed in it with
    // `aborted_with_changes` (its flushes must then fail), and an open
    // device that did not change without it.
    for cut in 0..12u64 {
        let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
        pmd.resize_data_dev(NR_DATA).unwrap();
        pmd.create_thin(1).unwrap();
        pmd.create_thin(2).unwrap();
        pmd.commit().unwrap();
        pmd.open_thin_device(1).unwrap();
        pmd.open_thin_device(2).unwrap();
        let b = pmd.alloc_data_block().unwrap().unwrap();
        pmd.insert_block(1, 0, b).unwrap();
        pmd.device_mut().unwrap().cut_after(cut, CutMode::Fail);
        if pmd.commit().is_ok() {
            // The cut came after the commit's last write.
            assert!(!pmd.thin_changed_this_transaction(1).unwrap(), "cut {cut}");
            continue;
        }
        pmd.device_mut().unwrap().uncut();
        pmd.abort().unwrap();
        assert!(pmd.thin_aborted_changes(1).unwrap(), "cut {cut}: thin 1 lost its write");
        assert!(!pmd.thin_aborted_changes(2).unwrap(), "cut {cut}: thin 2 had no change");
        assert_eq!(pmd.find_block(1, 0, true).unwrap(), None, "cut {cut}");
    }
}

/// A new pool of `nr_data` data blocks with an empty thin 1, on a RAM disk
/// that loses what was not flushed when it crashes.
fn pool_with_thin_1(nr_data: u64) -> PoolMetadata<RamDisk> {
    let mut dev = RamDisk::new(META_BLOCKS);
    dev.set_lose_unflushed(true);
    let mut pmd = PoolMetadata::open(dev, 128, true).unwrap();
    pmd.resize_data_dev(nr_data).unwrap();
    pmd.create_thin(1).unwrap();
    pmd
}

/// Opens the crashed copy of `pmd`'s device: what a reboot would find.
fn crash_and_reopen(pmd: PoolMetadata<RamDisk>) -> PoolMetadata<RamDisk> {
    let mut dev = pmd.into_device().unwrap();
    dev.crash();
    PoolMetadata::open(dev, 128, false).unwrap()
}

#[test]
fn references_in_flight_stay_out_of_commits() {
    // A new block whose write is in flight when a commit runs (the
    // periodic one, another thin's flush) is not counted on disk: a crash
    // before its mapping is inserted leaks nothing.
    let mut pmd = pool_with_thin_1(NR_DATA);
    pmd.commit().unwrap();
    let b = pmd.alloc_in_flight().unwrap().unwrap();
    assert_eq!(pmd.in_flight_blocks(), 1);
    pmd.create_thin(2).unwrap();
    pmd.commit().unwrap();
    // In core the block stays taken: not handed out again.
    assert_eq!(pmd.data_block_count(b).unwrap(), 1);
    assert_eq!(pmd.free_data_blocks().unwrap(), NR_DATA - 1);
    let other = pmd.alloc_in_flight().unwrap().unwrap();
    assert_ne!(other, b);
    let mut again = crash_and_reopen(pmd);
    assert_eq!(again.data_block_count(b).unwrap(), 0, "the in-flight block leaked");
    assert_eq!(again.free_data_blocks().unwrap(), NR_DATA);
    assert!(again.find_block(2, 0, true).is_ok(), "the commit itself is there");

    // Once mapped, the reference is the mapping's: committed and kept.
    let b = again.alloc_in_flight().unwrap().unwrap();
    again.commit().unwrap();
    again.insert_block(1, 7, b).unwrap();
    again.map_in_flight(b, b + 1);
    assert_eq!(again.in_flight_blocks(), 0);
    again.commit().unwrap();
    let mut again = crash_and_reopen(again);
    assert_eq!(again.find_block(1, 7, true).unwrap().map(|r| r.block), Some(b));
    assert_eq!(again.data_block_count(b).unwrap(), 1);
    assert_eq!(again.free_data_blocks().unwrap(), NR_DATA - 1);

    // A failed write gives its block back.
    let c = again.alloc_in_flight().unwrap().unwrap();
    again.commit().unwrap();
    again.drop_in_flight(c, c + 1).unwrap();
    assert_eq!(again.data_block_count(c).unwrap(), 0);
    again.commit().unwrap();
    let again = crash_and_reopen(again);
    let dir = scratch("in_flight_alloc");
    let dev = again.into_device().unwrap();
    write_image(&dev, &dir.join("meta.img"));
    assert_checks(&dir.join("meta.img"));
}

#[test]
fn passdown_references_stay_out_of_commits() {
    // A discarded block keeps an extra reference while its discard is
    // passed down; a commit meanwhile writes it free and unmapped.
    let mut pmd = pool_with_thin_1(NR_DATA);
    let mut blocks = Vec::new();
    for v in 0..4 {
        let b = pmd.alloc_in_flight().unwrap().unwrap();
        pmd.insert_block(1, v, b).unwrap();
        pmd.map_in_flight(b, b + 1);
        blocks.push(b);
    }
    pmd.commit().unwrap();
    let (b0, b3) = (blocks[0], blocks[3] + 1);
    assert_eq!(b3 - b0, 4, "consecutive blocks");
    pmd.inc_in_flight(b0, b3).unwrap();
    pmd.remove_range(1, 0, 4).unwrap();
    pmd.commit().unwrap();
    for b in b0..b3 {
        assert_eq!(pmd.data_block_count(b).unwrap(), 1, "held while the discard runs");
    }
    let fresh = pmd.alloc_in_flight().unwrap().unwrap();
    assert!(!(b0..b3).contains(&fresh), "a block under passdown was reallocated");
    let mut again = crash_and_reopen(pmd);
    for b in b0..b3 {
        assert_eq!(again.data_block_count(b).unwrap(), 0, "block {b} leaked");
    }
    assert_eq!(again.find_block(1, 0, true).unwrap(), None);
    // The passdown ends: its references go.
    again.inc_in_flight(b0, b3).unwrap();
    again.drop_in_flight(b0, b3).unwrap();
    for b in b0..b3 {
        assert_eq!(again.data_block_count(b).unwrap(), 0);
    }
    // After an abort the reference is gone with its transaction: settling
    // it changes nothing.
    let b = again.alloc_in_flight().unwrap().unwrap();
    again.abort().unwrap();
    assert_eq!(again.in_flight_blocks(), 0);
    again.drop_in_flight(b, b + 1).unwrap();
    assert_eq!(again.data_block_count(b).unwrap(), 0);
    again.commit().unwrap();
    let dir = scratch("in_flight_passdown");
    let dev = again.into_device().unwrap();
    write_image(&dev, &dir.join("meta.img"));
    assert_checks(&dir.join("meta.img"));
}

#[test]
fn a_failed_commit_keeps_references_in_flight_in_core() {
    // A commit that fails after taking the in-flight references out puts
    // them back, so no block in use looks free (reserve_metadata_snap's
    // commit, for one, is not followed by an abort).
    let mut pmd = pool_with_thin_1(NR_DATA);
    pmd.commit().unwrap();
    let b = pmd.alloc_in_flight().unwrap().unwrap();
    pmd.device_mut().unwrap().set_fail_pre_commit(true);
    pmd.create_thin(2).unwrap();
    assert!(pmd.commit().is_err());
    pmd.device_mut().unwrap().set_fail_pre_commit(false);
    assert_eq!(pmd.data_block_count(b).unwrap(), 1);
    // Cut the commit at each of its writes: the block is counted 1 in
    // core after every failure.
    for n in 0..40 {
        let mut pmd = pool_with_thin_1(NR_DATA);
        pmd.commit().unwrap();
        let b = pmd.alloc_in_flight().unwrap().unwrap();
        for v in 0..50 {
            let x = pmd.alloc_in_flight().unwrap().unwrap();
            pmd.insert_block(1, v, x).unwrap();
            pmd.map_in_flight(x, x + 1);
        }
        pmd.device_mut().unwrap().cut_after(n, CutMode::Fail);
        let failed = pmd.commit().is_err();
        if let Some(d) = pmd.device_mut() {
            d.uncut();
        }
        if failed {
            match pmd.data_block_count(b) {
                Ok(c) => assert_eq!(c, 1, "cut after {n}: the in-flight block looks free"),
                Err(_) => {} // failed metadata: nothing is handed out any more
            }
            let _ = pmd.abort();
        }
    }
}

#[test]
fn trim_takes_only_blocks_free_now_and_at_the_last_commit() {
    let mut pmd = pool_with_thin_1(64);
    // Blocks 0..8 mapped and committed.
    for v in 0..8 {
        let b = pmd.alloc_in_flight().unwrap().unwrap();
        pmd.insert_block(1, v, b).unwrap();
        pmd.map_in_flight(b, b + 1);
    }
    pmd.commit().unwrap();
    // Unmap 2..4: free now, in use at the last commit: not to be trimmed.
    pmd.remove_range(1, 2, 4).unwrap();
    // Block 8 allocated now (its write in flight).
    let b8 = pmd.alloc_in_flight().unwrap().unwrap();
    assert_eq!(b8, 8);
    let run = pmd.take_free_run(0, 1000).unwrap();
    assert_eq!(run, Some((9, 64)), "the first run free now and at the commit");
    // Held: nothing allocates from it, and the free count shows it taken.
    assert_eq!(pmd.free_data_blocks().unwrap(), 0 + 2);
    assert_eq!(pmd.alloc_data_block().unwrap(), None, "only 2..4, freed this transaction, are left");
    // Bounded runs, and none past the end.
    pmd.drop_in_flight(9, 64).unwrap();
    assert_eq!(pmd.take_free_run(10, 5).unwrap(), Some((10, 15)));
    pmd.drop_in_flight(10, 15).unwrap();
    assert_eq!(pmd.free_data_blocks().unwrap(), 55 + 2);
    // After the commit, 2..4 are free at the commit too.
    pmd.commit().unwrap();
    assert_eq!(pmd.take_free_run(0, 1000).unwrap(), Some((2, 4)));
    pmd.drop_in_flight(2, 4).unwrap();
    // What a delete frees is reported as a range (8 is in flight, not mapped).
    let _ = pmd.take_freed_range();
    pmd.delete_thin_device(1).unwrap();
    assert_eq!(pmd.take_freed_range(), Some((0, 8)));
    assert_eq!(pmd.take_freed_range(), None);
}
