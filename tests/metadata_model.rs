//! Model-based property test of the thin metadata API: random sequences of
//! the `thinmeta apply` operations against the in-memory model, with
//! commits, aborts and reopening in the middle, every mapping checked.
//!
//! The sequences are proptest values (`Vec<OpChoice>`, see
//! `dm_thin_host::thin_ops`): a failing sequence shrinks to the fewest and
//! simplest operations that still fail, and the failure prints them as a
//! `thinmeta apply` script. After every operation the devices' details are
//! compared with the model (cheap, and it stops a failing run at the
//! operation that broke them, which keeps shrinking fast); every few
//! thousand, everything is (`check_against`).
//!
//! `DMRS_MODEL_SEED` sets the seed (printed), `DMRS_MODEL_SCALE` multiplies
//! the number of cases.

use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::pdata::block_device::BlockDevice;
use dm_thin_host::ramdisk::RamDisk;
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_model::{check_against, Model, ModelState, Outcome};
use dm_thin_host::thin_ops::{OpChoice, OpMix};
use dm_thin_host::thin_script::{execute, Op};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const NR_DATA_BLOCKS: u64 = 30_000;
const META_BLOCKS: u64 = 16_384;
/// Operations between full checks, and between close-and-reopen.
const CHECK_EVERY: usize = 5000;
const REOPEN_EVERY: usize = 12_000;

fn format() -> PoolMetadata<RamDisk> {
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
    pmd.resize_data_dev(NR_DATA_BLOCKS).unwrap();
    pmd.commit().unwrap();
    pmd
}

fn op_choice() -> impl Strategy<Value = OpChoice> {
    (0u16..1000, any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(kind, dev, x, y)| OpChoice {
        kind,
        dev,
        x,
        y,
    })
}

/// The devices' details (ids, mapped blocks, transaction, times) agree
/// with the model.
fn check_details<D: BlockDevice>(pmd: &mut PoolMetadata<D>, s: &ModelState) -> Result<(), String> {
    let mut real = Vec::new();
    pmd.walk_devices(|id, d| {
        real.push((
            id,
            d.mapped_blocks,
            d.transaction_id,
            d.creation_time,
            d.snapshotted_time,
        ));
        Ok(())
    })
    .map_err(|e| format!("walk_devices: {e:?}"))?;
    let model: Vec<_> = s
        .devices
        .iter()
        .map(|(id, d)| {
            let n = d.mappings.len() as u64;
            (
                *id,
                n,
                d.transaction_id,
                d.creation_time,
                d.snapshotted_time,
            )
        })
        .collect();
    if real != model {
        return Err(format!(
            "device details (id, mapped_blocks, transaction, created, snapshotted) {real:?}, model {model:?}"
        ));
    }
    Ok(())
}

/// Runs `choices` (resolved one by one against the model); the error
/// names the failing operation and the script that led to it.
fn run(choices: &[OpChoice], mix: &OpMix, counts: &mut [u64; 2]) -> Result<(), String> {
    let mut check_rng = Rng::new(choices.len() as u64);
    let mut model = Model::new(NR_DATA_BLOCKS);
    let mut pmd = format();
    let mut script: Vec<Op> = Vec::with_capacity(choices.len());
    let fail = |script: &[Op], what: String| {
        let lines: Vec<String> = script.iter().map(Op::to_string).collect();
        format!(
            "{what}\nafter {} operations:\n{}",
            script.len(),
            lines.join("\n")
        )
    };
    for (i, c) in choices.iter().enumerate() {
        let op = c.resolve(&model, mix);
        script.push(op);
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
        model
            .apply(&op, outcome)
            .map_err(|e| fail(&script, format!("{e} ({result:?})")))?;
        check_details(&mut pmd, &model.cur).map_err(|e| fail(&script, e))?;
        if i % CHECK_EVERY == CHECK_EVERY - 1 {
            check_against(&mut pmd, &model.cur, &mut check_rng).map_err(|e| fail(&script, e))?;
        }
        if i % REOPEN_EVERY == REOPEN_EVERY - 1 {
            // Commit, close and reopen from the device.
            pmd.commit()
                .map_err(|e| fail(&script, format!("commit: {e:?}")))?;
            model.committed = model.cur.clone();
            pmd.close()
                .map_err(|e| fail(&script, format!("close: {e:?}")))?;
            let dev = pmd.into_device().unwrap();
            pmd = PoolMetadata::open(dev, 128, false)
                .map_err(|e| fail(&script, format!("reopen: {e:?}")))?;
            check_against(&mut pmd, &model.cur, &mut check_rng)
                .map_err(|e| fail(&script, format!("after reopen: {e}")))?;
        }
    }
    check_against(&mut pmd, &model.cur, &mut check_rng)
        .map_err(|e| fail(&script, format!("at the end: {e}")))?;
    // Uncommitted work is lost by a crash: reopen at the last commit.
    let dev = pmd.into_device().unwrap();
    let mut pmd = PoolMetadata::open(dev, 128, false)
        .map_err(|e| fail(&script, format!("crash reopen: {e:?}")))?;
    check_against(&mut pmd, &model.committed, &mut check_rng)
        .map_err(|e| fail(&script, format!("after crash reopen: {e}")))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cases` sequences of up to `max_len` operations of `mix`.
fn property(name: &str, cases: u32, max_len: usize, mix: OpMix) {
    let seed = env_u64("DMRS_MODEL_SEED", 0x6d6f_64656c);
    let cases = cases * env_u64("DMRS_MODEL_SCALE", 1) as u32;
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seed_bytes[8..16].copy_from_slice(&(max_len as u64).to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking deletes one operation at a time: allow one iteration
        // per operation and then some, within ten minutes.
        max_shrink_iters: 200_000,
        max_shrink_time: 600_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let counts = std::cell::Cell::new([0u64; 2]);
    let r = runner.run(
        &prop::collection::vec(op_choice(), 1..=max_len),
        |choices| {
            let mut c = counts.get();
            let r = run(&choices, &mix, &mut c);
            counts.set(c);
            r.map_err(TestCaseError::fail)
        },
    );
    let [ok, err] = counts.get();
    eprintln!("{name}: {cases} cases, seed {seed} (DMRS_MODEL_SEED), ok/err {ok}/{err}");
    if let Err(e) = r {
        panic!("{name} (seed {seed}): {e}");
    }
    // Both outcomes must have been exercised.
    assert!(ok > err && err > 0, "{name}: ok/err {ok}/{err}");
}

#[test]
fn model_default_mix() {
    property("default mix", 48, 3500, OpMix::default());
}

#[test]
fn model_dense() {
    // Few virtual blocks: lots of overwrites, sharing and removals.
    property(
        "dense",
        40,
        3000,
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
fn model_many_devices() {
    property(
        "many devices",
        40,
        3000,
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
fn model_growth() {
    // No aborts, rare commits, long sequences: trees several levels deep,
    // and a close-and-reopen in the middle.
    property(
        "growth",
        4,
        40_000,
        OpMix {
            max_devices: 8,
            vblocks: 50_000,
            commit_pct: 1,
            abort_pct: 0,
            deletes: false,
        },
    );
}
