//! Shared helpers for the pdata tests: the seeded generator, a pool-like harness with
//! commit/reopen, and a reference-count checker that recomputes every
//! metadata block's count from the structures that reference it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use dm_thin_host::pdata::block_manager::{BlockManager, NOOP_VALIDATOR};
use dm_thin_host::pdata::btree::{Node, BTREE_NODE_VALIDATOR};
use dm_thin_host::pdata::space_map::{
    DiskSpaceMap, IndexEntry, SmRoot, ENTRIES_PER_BLOCK, INDEX_VALIDATOR,
};
use dm_thin_host::pdata::transaction_manager::{Transaction, TransactionManager};
use dm_thin_host::ramdisk::RamDisk;

/// The host code's one random source.
pub use dm_thin_host::rng::Rng;

pub type Tm = TransactionManager<RamDisk>;

/// A tiny "pool": metadata tm, data sm, and a set of btree roots stored in
/// the superblock (block 0: metadata sm root, data sm root, roots...).
pub struct Pool {
    pub tm: Tm,
    pub data_sm: DiskSpaceMap,
    pub roots: Vec<u64>,
    pub committed_roots: Vec<u64>,
}

pub const CACHE: usize = 512;

impl Pool {
    pub fn format(nr_meta: u64, nr_data: u64) -> Pool {
        let mut dev = RamDisk::new(nr_meta);
        dev.set_lose_unflushed(true);
        let bm = BlockManager::new(dev, CACHE).unwrap();
        let mut tm = TransactionManager::create(bm, 0).unwrap();
        let data_sm = DiskSpaceMap::create(&mut tm, nr_data).unwrap();
        let mut p = Pool {
            tm,
            data_sm,
            roots: Vec::new(),
            committed_roots: Vec::new(),
        };
        p.commit();
        p
    }

    pub fn commit(&mut self) {
        self.data_sm.commit(&mut self.tm).unwrap();
        let dr = self.data_sm.root();
        let roots = self.roots.clone();
        self.tm
            .commit_with(0, &NOOP_VALIDATOR, false, |sb, mr| {
                sb.fill(0);
                mr.pack(&mut sb[0..32])?;
                dr.pack(&mut sb[32..64])?;
                sb[64..72].copy_from_slice(&(roots.len() as u64).to_le_bytes());
                for (i, r) in roots.iter().enumerate() {
                    sb[72 + 8 * i..80 + 8 * i].copy_from_slice(&r.to_le_bytes());
                }
                Ok(())
            })
            .unwrap();
        self.committed_roots = self.roots.clone();
        assert_eq!(self.tm.bm_ref().nr_locks(), 0);
    }

    pub fn abort(&mut self) {
        self.tm.abort().unwrap();
        self.data_sm.abort();
        self.roots = self.committed_roots.clone();
    }

    /// Power cut and reopen from the superblock on disk.
    pub fn crash_reopen(self) -> Pool {
        let mut dev = self.tm.into_bm().into_device();
        dev.crash();
        Self::open(dev)
    }

    pub fn open(dev: RamDisk) -> Pool {
        let sb = dev.block(0);
        let bm = BlockManager::new(dev, CACHE).unwrap();
        let mut tm = TransactionManager::open(bm, 0, &sb[0..32]).unwrap();
        let data_sm = DiskSpaceMap::open(&mut tm, &sb[32..64]).unwrap();
        let n = u64::from_le_bytes(sb[64..72].try_into().unwrap()) as usize;
        let roots: Vec<u64> = (0..n)
            .map(|i| u64::from_le_bytes(sb[72 + 8 * i..80 + 8 * i].try_into().unwrap()))
            .collect();
        Pool {
            tm,
            data_sm,
            committed_roots: roots.clone(),
            roots,
        }
    }
}

/// Counts references to btree nodes reachable from `root` into `exp`.
/// `leaf_vs[level]` is the value size of that level; levels before the
/// last hold subtree roots.
pub fn count_tree(
    tm: &mut Tm,
    root: u64,
    levels: usize,
    leaf_vs: usize,
    exp: &mut HashMap<u64, u32>,
    seen: &mut HashSet<u64>,
) {
    count_node(tm, root, 0, levels, leaf_vs, exp, seen, &mut |_| {});
}

#[allow(clippy::too_many_arguments)]
pub fn count_node(
    tm: &mut Tm,
    b: u64,
    level: usize,
    levels: usize,
    leaf_vs: usize,
    exp: &mut HashMap<u64, u32>,
    seen: &mut HashSet<u64>,
    leaf_value: &mut dyn FnMut(&[u8]),
) {
    *exp.entry(b).or_insert(0) += 1;
    if !seen.insert(b) {
        return;
    }
    let l = tm.read_lock(b, &BTREE_NODE_VALIDATOR).unwrap();
    let data = tm.bm().data(&l).to_vec();
    tm.bm().unlock(l);
    let n = Node::new(&data).unwrap();
    for i in 0..n.nr_entries() {
        if n.is_internal() {
            count_node(
                tm,
                n.value64(i),
                level,
                levels,
                leaf_vs,
                exp,
                seen,
                leaf_value,
            );
        } else if level + 1 < levels {
            count_node(
                tm,
                n.value64(i),
                level + 1,
                levels,
                leaf_vs,
                exp,
                seen,
                leaf_value,
            );
        } else {
            leaf_value(n.value(i));
        }
    }
    let _ = leaf_vs;
}

/// Recomputes every metadata block's reference count and compares it with
/// the metadata space map. `trees` are (root, levels, leaf value size).
pub fn check_ref_counts(p: &mut Pool, trees: &[(u64, usize, usize)]) {
    let tm = &mut p.tm;
    let mut exp: HashMap<u64, u32> = HashMap::new();
    let mut seen = HashSet::new();
    *exp.entry(0).or_insert(0) += 1; // superblock
    let mr = tm.sm_root();
    // metadata index block and its bitmaps
    *exp.entry(mr.bitmap_root).or_insert(0) += 1;
    let l = tm.read_lock(mr.bitmap_root, &INDEX_VALIDATOR).unwrap();
    let idx = tm.bm().data(&l).to_vec();
    tm.bm().unlock(l);
    let nr_bitmaps = mr.nr_blocks.div_ceil(ENTRIES_PER_BLOCK);
    for i in 0..nr_bitmaps as usize {
        let ie = IndexEntry::unpack(&idx[16 + 16 * i..32 + 16 * i]);
        *exp.entry(ie.blocknr).or_insert(0) += 1;
    }
    count_tree(tm, mr.ref_count_root, 1, 4, &mut exp, &mut seen);
    // data space map
    let dr: SmRoot = p.data_sm.root();
    let mut bitmaps = Vec::new();
    count_node(
        tm,
        dr.bitmap_root,
        0,
        1,
        16,
        &mut exp,
        &mut seen,
        &mut |v| {
            bitmaps.push(IndexEntry::unpack(v).blocknr);
        },
    );
    for b in bitmaps {
        *exp.entry(b).or_insert(0) += 1;
    }
    count_tree(tm, dr.ref_count_root, 1, 4, &mut exp, &mut seen);
    for &(root, levels, vs) in trees {
        count_tree(tm, root, levels, vs, &mut exp, &mut seen);
    }
    let nr = tm.nr_blocks();
    let mut allocated = 0;
    for b in 0..nr {
        let got = tm.get_count(b).unwrap();
        let want = exp.get(&b).copied().unwrap_or(0);
        assert_eq!(
            got, want,
            "metadata block {b}: space map says {got}, structures say {want}"
        );
        if got > 0 {
            allocated += 1;
        }
    }
    assert_eq!(tm.sm().nr_allocated(), allocated);
}
