//! Model-based test of the thin metadata API: long random sequences of the
//! `thinmeta apply` operations against the in-memory model, with commits,
//! aborts and reopening in the middle, every mapping checked.

use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::ramdisk::RamDisk;
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_model::{check_against, Model, Outcome};
use dm_thin_host::thin_ops::{random_op, OpMix};
use dm_thin_host::thin_script::execute;

const NR_DATA_BLOCKS: u64 = 30_000;
const META_BLOCKS: u64 = 16_384;

fn format() -> PoolMetadata<RamDisk> {
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
    pmd.resize_data_dev(NR_DATA_BLOCKS).unwrap();
    pmd.commit().unwrap();
    pmd
}

fn run(seed: u64, nr_ops: u64, mix: OpMix) {
    let mut rng = Rng::new(seed);
    let mut check_rng = Rng::new(seed ^ 0xabcdef);
    let mut model = Model::new(NR_DATA_BLOCKS);
    let mut pmd = format();
    let mut counts = [0u64; 2];
    for i in 0..nr_ops {
        let op = random_op(&mut rng, &model, &mix);
        let result = execute(&mut pmd, &op);
        let outcome = match result {
            Ok(b) => {
                counts[0] += 1;
                Outcome::Ok(b)
            }
            Err(_) => {
                counts[1] += 1;
                Outcome::Err
            }
        };
        if let Err(e) = model.apply(&op, outcome) {
            panic!("seed {seed} op {i}: {e} ({result:?})");
        }
        if i % 5000 == 4999 {
            check_against(&mut pmd, &model.cur, &mut check_rng)
                .unwrap_or_else(|e| panic!("seed {seed} op {i}: {e}"));
        }
        if i % 12_000 == 11_999 {
            // Commit, close and reopen from the device.
            pmd.commit().unwrap();
            model.committed = model.cur.clone();
            pmd.close().unwrap();
            let dev = pmd.into_device().unwrap();
            pmd = PoolMetadata::open(dev, 128, false).unwrap();
            check_against(&mut pmd, &model.cur, &mut check_rng)
                .unwrap_or_else(|e| panic!("seed {seed} after reopen at op {i}: {e}"));
        }
    }
    check_against(&mut pmd, &model.cur, &mut check_rng)
        .unwrap_or_else(|e| panic!("seed {seed} at end: {e}"));
    // Uncommitted work is lost by a crash: reopen at the last commit.
    let dev = pmd.into_device().unwrap();
    let mut pmd = PoolMetadata::open(dev, 128, false).unwrap();
    check_against(&mut pmd, &model.committed, &mut check_rng)
        .unwrap_or_else(|e| panic!("seed {seed} after crash reopen: {e}"));
    let total: usize = model.cur.devices.values().map(|d| d.mappings.len()).sum();
    eprintln!(
        "seed {seed}: {nr_ops} ops, ok/err {counts:?}, {} devices, {total} mappings at the end, time {}",
        model.cur.devices.len(),
        model.cur.time
    );
    // Both outcomes must have been exercised.
    assert!(
        counts[0] > nr_ops / 2 && counts[1] > 0,
        "seed {seed}: ok/err {counts:?}"
    );
}

#[test]
fn model_seed_1() {
    run(1, 80_000, OpMix::default());
}

#[test]
fn model_seed_2() {
    run(2, 80_000, OpMix::default());
}

#[test]
fn model_seed_3_dense() {
    // Few virtual blocks: lots of overwrites, sharing and removals.
    run(
        3,
        60_000,
        OpMix {
            max_devices: 4,
            vblocks: 300,
            commit_pct: 5,
            abort_pct: 2,
            deletes: true,
        },
    );
}

#[test]
fn model_seed_4_many_devices() {
    run(
        4,
        60_000,
        OpMix {
            max_devices: 40,
            vblocks: 2000,
            commit_pct: 1,
            abort_pct: 1,
            deletes: true,
        },
    );
}

#[test]
fn model_seed_5_growth() {
    // No aborts, rare commits: trees several levels deep.
    run(
        5,
        80_000,
        OpMix {
            max_devices: 8,
            vblocks: 50_000,
            commit_pct: 1,
            abort_pct: 0,
            deletes: false,
        },
    );
}
