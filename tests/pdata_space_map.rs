//! Space map tests: random inc/dec/set/new_block against a model, extend,
//! commit/abort/reopen, and that blocks freed in a transaction are not
//! handed out again before the commit.

mod pdata_common;

use std::collections::HashSet;

use dm_thin_host::pdata::block_manager::NOOP_VALIDATOR;
use dm_thin_host::pdata::error::Error;
use dm_thin_host::pdata::space_map::ENTRIES_PER_BLOCK;
use dm_thin_host::pdata::transaction_manager::Transaction;
use pdata_common::{check_ref_counts, Pool, Rng};

struct Model {
    cur: Vec<u32>,
    committed: Vec<u32>,
    allocated_this_tx: i64,
}

impl Model {
    fn nr_free(&self) -> u64 {
        let committed_alloc = self.committed.iter().filter(|&&c| c > 0).count() as i64;
        (self.committed.len() as i64 - committed_alloc - self.allocated_this_tx) as u64
    }
}

fn run_disk(seed: u64, nr: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut p = Pool::format(10_000, nr);
    let mut m = Model {
        cur: vec![0; nr as usize],
        committed: vec![0; nr as usize],
        allocated_this_tx: 0,
    };
    for op in 0..ops {
        match rng.below(100) {
            0..=39 => match p.data_sm.new_block(&mut p.tm).unwrap() {
                Some(b) => {
                    let b = b as usize;
                    assert_eq!(m.cur[b], 0, "allocated a used block");
                    assert_eq!(
                        m.committed[b], 0,
                        "reused a block freed in this transaction"
                    );
                    m.cur[b] = 1;
                    m.allocated_this_tx += 1;
                }
                None => {
                    assert!(m
                        .cur
                        .iter()
                        .zip(&m.committed)
                        .all(|(c, o)| *c > 0 || *o > 0));
                }
            },
            40..=59 => {
                let b = rng.below(m.cur.len() as u64) as usize;
                if m.cur[b] > 0 {
                    p.data_sm.inc(&mut p.tm, b as u64).unwrap();
                    m.cur[b] += 1;
                }
            }
            60..=84 => {
                let b = rng.below(m.cur.len() as u64) as usize;
                if m.cur[b] > 0 {
                    p.data_sm.dec(&mut p.tm, b as u64).unwrap();
                    m.cur[b] -= 1;
                    if m.cur[b] == 0 {
                        m.allocated_this_tx -= 1;
                    }
                } else {
                    assert_eq!(p.data_sm.dec(&mut p.tm, b as u64), Err(Error::RefCount));
                }
            }
            85..=87 => {
                let b = rng.below(m.cur.len() as u64) as usize;
                let c =
                    rng.below(6) as u32 * (1 + rng.below(1000) as u32 * (rng.below(4) == 0) as u32);
                p.data_sm.set_count(&mut p.tm, b as u64, c).unwrap();
                if m.cur[b] == 0 && c > 0 {
                    m.allocated_this_tx += 1;
                } else if m.cur[b] > 0 && c == 0 {
                    m.allocated_this_tx -= 1;
                }
                m.cur[b] = c;
            }
            88..=91 => {
                let b = rng.below(m.cur.len() as u64);
                assert_eq!(
                    p.data_sm.get_count(&mut p.tm, b).unwrap(),
                    m.cur[b as usize]
                );
            }
            92..=95 => {
                p.commit();
                m.committed = m.cur.clone();
                m.allocated_this_tx = 0;
            }
            96 => {
                p.abort();
                m.cur = m.committed.clone();
                m.allocated_this_tx = 0;
            }
            97 => {
                p = p.crash_reopen();
                m.cur = m.committed.clone();
                m.allocated_this_tx = 0;
            }
            _ => {
                if m.cur.len() < 200_000 {
                    let extra = 1 + rng.below(20_000);
                    p.data_sm.extend(&mut p.tm, extra).unwrap();
                    m.cur.resize(m.cur.len() + extra as usize, 0);
                    // Like C, the committed size (and nr_blocks) changes at commit.
                    p.commit();
                    m.committed = m.cur.clone();
                    m.allocated_this_tx = 0;
                }
            }
        }
        assert_eq!(p.data_sm.nr_free(), m.nr_free(), "op {op}");
    }
    p.commit();
    m.committed = m.cur.clone();
    for (b, &c) in m.cur.iter().enumerate() {
        assert_eq!(
            p.data_sm.get_count(&mut p.tm, b as u64).unwrap(),
            c,
            "block {b}"
        );
    }
    assert_eq!(p.data_sm.nr_blocks(), m.cur.len() as u64);
    check_ref_counts(&mut p, &[]);
    let mut p = p.crash_reopen();
    for (b, &c) in m.committed.iter().enumerate() {
        assert_eq!(
            p.data_sm.get_count(&mut p.tm, b as u64).unwrap(),
            c,
            "block {b}"
        );
    }
    check_ref_counts(&mut p, &[]);
}

#[test]
fn disk_sm_random_seed21() {
    run_disk(21, 3 * ENTRIES_PER_BLOCK + 17, 30_000);
}

#[test]
fn disk_sm_random_small_full() {
    // A tiny map that fills up: Ok(None) when full.
    run_disk(22, 300, 20_000);
}

#[test]
fn disk_sm_freed_blocks_not_reused_before_commit() {
    let mut p = Pool::format(10_000, 100);
    let mut got = Vec::new();
    while let Some(b) = p.data_sm.new_block(&mut p.tm).unwrap() {
        got.push(b);
    }
    assert_eq!(got.len(), 100);
    assert_eq!(p.data_sm.nr_free(), 0);
    p.commit();
    for &b in &got[..50] {
        p.data_sm.dec(&mut p.tm, b).unwrap();
    }
    assert_eq!(p.data_sm.new_block(&mut p.tm).unwrap(), None);
    p.commit();
    let mut again = HashSet::new();
    while let Some(b) = p.data_sm.new_block(&mut p.tm).unwrap() {
        again.insert(b);
    }
    assert_eq!(again, got[..50].iter().copied().collect());
}

#[test]
fn metadata_sm_alloc_free_commit() {
    let mut p = Pool::format(3000, 100);
    let free0 = p.tm.nr_free();
    let mut blocks = Vec::new();
    for _ in 0..500 {
        let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
        blocks.push(w.location());
        p.tm.bm().unlock_write(w);
    }
    assert!(p.tm.nr_free() <= free0 - 500);
    for &b in &blocks {
        assert_eq!(p.tm.get_count(b).unwrap(), 1);
    }
    // inc past 2 goes to the ref-count tree
    for _ in 0..5 {
        p.tm.inc(blocks[0]).unwrap();
    }
    assert_eq!(p.tm.get_count(blocks[0]).unwrap(), 6);
    p.commit();
    let committed: HashSet<u64> = blocks.iter().copied().collect();
    for &b in &blocks[1..] {
        p.tm.dec(b).unwrap();
    }
    // Freed this transaction: not reused until commit.
    for _ in 0..300 {
        let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
        assert!(!committed.contains(&w.location()));
        let b = w.location();
        p.tm.bm().unlock_write(w);
        p.tm.dec(b).unwrap();
    }
    p.abort();
    assert_eq!(p.tm.get_count(blocks[1]).unwrap(), 1);
    for _ in 0..5 {
        p.tm.dec(blocks[0]).unwrap();
    }
    for &b in &blocks {
        p.tm.dec(b).unwrap();
    }
    p.commit();
    check_ref_counts(&mut p, &[]);
    // Fill the device: NoSpace, never a panic.
    let mut n = 0;
    loop {
        match p.tm.new_block(&NOOP_VALIDATOR) {
            Ok(w) => {
                p.tm.bm().unlock_write(w);
                n += 1;
            }
            Err(Error::NoSpace) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(n > 2000);
    p.abort();
    check_ref_counts(&mut p, &[]);
}

#[test]
fn metadata_sm_extend() {
    let mut p = Pool::format(1000, 10);
    let mut dev = p.tm.into_bm().into_device();
    dev.resize(60_000);
    p = Pool::open(dev);
    let f0 = p.tm.nr_free();
    p.tm.extend_metadata(20_000).unwrap();
    p.commit();
    assert_eq!(p.tm.nr_blocks(), 21_000);
    assert!(p.tm.nr_free() > f0 + 19_000);
    check_ref_counts(&mut p, &[]);
    p.tm.extend_metadata(39_000).unwrap();
    p.commit();
    assert_eq!(p.tm.nr_blocks(), 60_000);
    check_ref_counts(&mut p, &[]);
    let mut p = p.crash_reopen();
    check_ref_counts(&mut p, &[]);
    // Use the new area.
    let mut hi = 0;
    let mut got = Vec::new();
    for _ in 0..30_000 {
        let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
        hi = hi.max(w.location());
        got.push(w.location());
        p.tm.bm().unlock_write(w);
    }
    assert!(hi > 21_000);
    p.commit();
    for b in got {
        p.tm.dec(b).unwrap();
    }
    p.commit();
    check_ref_counts(&mut p, &[]);
    assert!(p.tm.extend_metadata(1).is_err());
}

#[test]
fn metadata_threshold_is_edge_triggered() {
    let mut p = Pool::format(2000, 10);
    let free = p.tm.nr_free();
    p.tm.set_metadata_threshold(free - 100);
    let mut n = 0;
    let mut held = Vec::new();
    loop {
        let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
        held.push(w.location());
        p.tm.bm().unlock_write(w);
        n += 1;
        match p.tm.take_threshold_events() {
            0 => {}
            1 => break,
            e => panic!("{e} events for one crossing"),
        }
        assert!(n < 200);
    }
    // The space map's own bitmap shadow counts too.
    assert!((95..=100).contains(&n), "fired after {n}");
    assert!(p.tm.nr_free() <= free - 100);
    for _ in 0..10 {
        let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
        held.push(w.location());
        p.tm.bm().unlock_write(w);
        assert_eq!(p.tm.take_threshold_events(), 0, "fires once per crossing");
    }
    // Back above the threshold (blocks freed and committed) and down
    // again, twice before a poll: two events.
    let mut crossings = 0;
    for _ in 0..2 {
        for b in held.drain(..50) {
            p.tm.dec(b).unwrap();
        }
        p.commit();
        assert!(p.tm.nr_free() > free - 100);
        while p.tm.nr_free() > free - 100 {
            let w = p.tm.new_block(&NOOP_VALIDATOR).unwrap();
            held.push(w.location());
            p.tm.bm().unlock_write(w);
        }
        crossings += 1;
    }
    assert_eq!(p.tm.take_threshold_events(), crossings);
}
