//! Hostile metadata fuzzer: valid pool images with malicious contents and
//! recomputed checksums, opened and driven by the engine (proptest).
//!
//! Each case takes one of the base images of `dm_thin_host::hostile`,
//! applies 1..=3 structured mutations (entry counts, keys out of order,
//! loops, shared nodes, out-of-bounds pointers, reference counts at their
//! limits, bitmaps calling used blocks free, superblock and space map root
//! fields at extremes, ...), then opens it and runs reads, lookups,
//! inserts, removes, snapshots, deletes and commits. Every outcome must be
//! an error or a consistent answer: a panic (overflow checks are on in the
//! release profile), an access past the end of the metadata device, an
//! allocation of more than `ALLOC_LIMIT` bytes, or a case that does not end
//! within `CASE_TIMEOUT` fails the test.
//!
//! `DMRS_FUZZ_CASES` sets the number of cases (default 4000),
//! `DMRS_FUZZ_SEED` the seed (default fixed; printed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dm_thin_host::hostile::{base_image, exercise, mutate, Mutation, Verdict, NR_BASES};
use dm_thin_host::ramdisk::RamDisk;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// No single allocation while running a case may ask for more than this.
const ALLOC_LIMIT: usize = 64 << 20;
/// Nor may a case's live heap grow by more than this.
const PEAK_LIMIT: usize = 256 << 20;
/// A case (a few ms normally) that takes longer than this is a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static HUGE: Cell<usize> = const { Cell::new(0) };
}

/// Counts the bytes each thread has live, its peak, and the largest single
/// request refused.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            let _ = HUGE.try_with(|h| h.set(h.get().max(l.size())));
            return std::ptr::null_mut();
        }
        let _ = LIVE.try_with(|c| {
            let v = c.get().saturating_add(l.size());
            c.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(l.size())));
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bases() -> &'static Vec<RamDisk> {
    static B: OnceLock<Vec<RamDisk>> = OnceLock::new();
    B.get_or_init(|| (0..NR_BASES).map(base_image).collect())
}

/// How one case ended.
#[derive(Debug)]
#[allow(dead_code)] // Fields are read through Debug in the failure message.
enum CaseEnd {
    Done(Verdict),
    Inconsistent(String),
    Panic(String),
    HugeAlloc(usize),
    Peak(usize),
}

/// Runs one case on its own thread, under the watchdog.
fn run_case(base: usize, muts: &[Mutation]) -> CaseEnd {
    let mut dev = bases()[base].clone();
    for m in muts {
        mutate(&mut dev, m);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("hostile-case".into())
        .spawn(move || {
            PEAK.with(|p| p.set(LIVE.with(|l| l.get())));
            let start = LIVE.with(|l| l.get());
            let r = std::panic::catch_unwind(|| exercise(dev));
            let huge = HUGE.with(|h| h.get());
            let peak = PEAK.with(|p| p.get()).saturating_sub(start);
            let end = match r {
                Err(p) => CaseEnd::Panic(
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                ),
                Ok(_) if huge > 0 => CaseEnd::HugeAlloc(huge),
                Ok(_) if peak > PEAK_LIMIT => CaseEnd::Peak(peak),
                Ok(Ok(v)) => CaseEnd::Done(v),
                Ok(Err(e)) => CaseEnd::Inconsistent(e),
            };
            let _ = tx.send(end);
        })
        .expect("spawn");
    match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(e) => e,
        Err(_) => {
            // A hang: the thread cannot be stopped; report and end the run
            // now rather than let shrinking start more of them.
            eprintln!("HANG: base {base}, mutations {muts:?} did not end in {CASE_TIMEOUT:?}");
            std::process::exit(101);
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>())
        .prop_map(|(k, a, b, c, d)| Mutation::from_raw(k, a, b, c, d))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn hostile_images_give_errors_or_consistent_answers() {
    let cases = env_u64("DMRS_FUZZ_CASES", 4000) as u32;
    let seed = env_u64("DMRS_FUZZ_SEED", 0x68_686f_7374);
    eprintln!("hostile fuzz: {cases} cases, seed {seed} (DMRS_FUZZ_CASES, DMRS_FUZZ_SEED)");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let _ = bases();
    let started = Instant::now();
    // DMRS_FUZZ_SURVEY=1: list one example of each distinct defect
    // instead of stopping (and shrinking) at the first.
    let survey = std::env::var("DMRS_FUZZ_SURVEY").is_ok_and(|v| v == "1");
    let defects = std::sync::Mutex::new(std::collections::BTreeMap::<String, String>::new());
    let classes = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    // Panics are caught and reported as failures; keep their messages off
    // the console while shrinking.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = runner.run(
        &(0..NR_BASES as usize, prop::collection::vec(mutation(), 1..=3)),
        |(base, muts)| {
            let end = run_case(base, &muts);
            let class = match &end {
                CaseEnd::Done(Verdict::OpenFailed(_)) => "open failed",
                CaseEnd::Done(Verdict::Opened { errors: 0, .. }) => "opened, no error",
                CaseEnd::Done(Verdict::Opened { .. }) => "opened, errors",
                _ => "defect",
            };
            *counts.lock().unwrap().entry(class.into()).or_default() += 1;
            if survey {
                if let CaseEnd::Done(v) = &end {
                    *classes.lock().unwrap().entry(v.class()).or_default() += 1;
                }
            }
            match end {
                CaseEnd::Done(_) => Ok(()),
                e if survey => {
                    let msg = format!("{e:?}");
                    let key: String = msg.chars().filter(|c| !c.is_ascii_digit()).take(90).collect();
                    let mut d = defects.lock().unwrap();
                    d.entry(key).or_insert_with(|| format!("{msg} <- base {base} {muts:?}"));
                    Ok(())
                }
                e => Err(TestCaseError::fail(format!("{e:?}"))),
            }
        },
    );
    std::panic::set_hook(hook);
    eprintln!(
        "hostile fuzz: {cases} cases in {:.1} s: {:?}",
        started.elapsed().as_secs_f64(),
        counts.lock().unwrap()
    );
    for (c, n) in classes.lock().unwrap().iter() {
        eprintln!("outcome {n:6} {c}");
    }
    for d in defects.lock().unwrap().values() {
        eprintln!("defect: {d}");
    }
    if let Err(e) = r {
        panic!("hostile fuzz (seed {seed}): {e}");
    }
}

#[test]
fn base_images_run_without_errors() {
    for (i, dev) in bases().iter().enumerate() {
        match exercise(dev.clone()) {
            Ok(Verdict::Opened { errors: 0, .. }) => {}
            v => panic!("base image {i}: {v:?}"),
        }
    }
}
