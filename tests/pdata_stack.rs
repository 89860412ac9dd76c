//! Stack depth: the kernel gives a task 16 KiB of stack. Run the deepest
//! paths (a shared-tree insert whose value hook changes the data space map,
//! which shadows a bitmap, which allocates from the metadata map, which
//! grows its ref-count tree; and deleting whole shared trees) on a thread
//! with a small stack.

mod pdata_common;

use dm_thin_host::pdata::btree::{Btree, ValueType};
use dm_thin_host::pdata::error::Result;
use dm_thin_host::pdata::space_map::DiskSpaceMap;
use dm_thin_host::pdata::transaction_manager::Transaction;
use pdata_common::{Pool, Rng};

struct DataBlock;

impl ValueType for DataBlock {
    const SIZE: usize = 8;
    type Value = u64;
    type Context = DiskSpaceMap;
    fn unpack(b: &[u8]) -> u64 {
        u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
    }
    fn pack(v: &u64, out: &mut [u8]) {
        out[..8].copy_from_slice(&v.to_le_bytes());
    }
    fn inc<T: Transaction>(ctx: &mut DiskSpaceMap, tm: &mut T, v: &u64) -> Result<()> {
        ctx.inc(tm, *v)
    }
    fn dec<T: Transaction>(ctx: &mut DiskSpaceMap, tm: &mut T, v: &u64) -> Result<()> {
        ctx.dec(tm, *v)
    }
}

fn workload() {
    let mut rng = Rng::new(5);
    let mut p = Pool::format(20_000, 100_000);
    let tree: Btree<DataBlock> = Btree::new(1);
    let mut root = tree.empty(&mut p.tm).unwrap();
    for k in 0..3000u64 {
        let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
        root = tree
            .insert(&mut p.tm, &mut p.data_sm, root, &[k], &b)
            .unwrap();
    }
    p.roots = vec![root];
    p.commit();
    // Share everything, and push counts past 2 (ref-count trees grow).
    p.tm.inc(root).unwrap();
    p.tm.inc(root).unwrap();
    let mut roots = [root; 3];
    for i in 0..6000 {
        let t = i % 3;
        let k = rng.below(3000);
        let b = p.data_sm.new_block(&mut p.tm).unwrap().unwrap();
        roots[t] = tree
            .insert(&mut p.tm, &mut p.data_sm, roots[t], &[k], &b)
            .unwrap();
        if i % 1000 == 999 {
            p.roots = roots.to_vec();
            p.commit();
        }
    }
    for r in roots {
        tree.del(&mut p.tm, &mut p.data_sm, r).unwrap();
    }
    p.roots.clear();
    p.commit();
}

fn here() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

/// Recurses until `burn` bytes of stack below `base` are used, then runs `f`.
#[inline(never)]
fn burn_then(base: usize, burn: usize, f: fn()) {
    let pad = std::hint::black_box([0u8; 256]);
    if base.saturating_sub(here()) < burn {
        burn_then(base, burn, f);
    } else {
        f();
    }
    std::hint::black_box(pad);
}

const THREAD_STACK: usize = 1024 * 1024;

/// Runs the workload with only about `left` bytes of stack left.
fn run_with(left: usize) -> bool {
    std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let base = here();
            // 4 KiB of slack for the guard page and the last burn frame.
            burn_then(base, THREAD_STACK - 4 * 1024 - left, workload)
        })
        .unwrap()
        .join()
        .is_ok()
}

#[test]
fn deepest_paths_fit_in_a_small_stack() {
    // The kernel gives 16 KiB. About 5 KiB of the burn slack below goes
    // to the guard page and thread bookkeeping, so this leaves ~8 KiB for
    // the workload; measured on the host (PDATA_STACK_BYTES), the deepest
    // paths need about 4 KiB.
    let bytes = std::env::var("PDATA_STACK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9 * 1024);
    assert!(run_with(bytes));
}
