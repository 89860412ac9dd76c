//! Validator tests: damaged nodes, bitmaps and index blocks give distinct
//! errors, and random damage anywhere never panics.

mod pdata_common;

use dm_thin_host::pdata::block_manager::{BlockManager, BlockValidator, NOOP_VALIDATOR};
use dm_thin_host::pdata::btree::{Btree, U64Value, BTREE_NODE_VALIDATOR};
use dm_thin_host::pdata::checksum::{stamp_checksum, BTREE_CSUM_XOR};
use dm_thin_host::pdata::error::Error;
use dm_thin_host::pdata::space_map::{BITMAP_VALIDATOR, INDEX_VALIDATOR};
use dm_thin_host::ramdisk::RamDisk;
use pdata_common::{Pool, Rng};

/// A committed pool with one tree of 3000 keys; returns (device, root).
fn build() -> (RamDisk, u64) {
    let mut p = Pool::format(5000, 1000);
    let tree: Btree<U64Value> = Btree::new(1);
    let mut root = tree.empty(&mut p.tm).unwrap();
    for k in 0..3000u64 {
        root = tree.insert(&mut p.tm, &mut (), root, &[k * 3], &k).unwrap();
    }
    p.roots = vec![root];
    p.commit();
    (p.tm.into_bm().into_device(), root)
}

fn le32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Damages the root node with `f`, re-stamps the checksum if asked, and
/// returns the error a lookup gives.
fn damage_root(f: impl Fn(&mut [u8]), restamp: bool) -> Error {
    let (mut dev, root) = build();
    {
        let b = dev.block_mut(root);
        f(b);
        if restamp {
            stamp_checksum(b, BTREE_CSUM_XOR);
        }
    }
    let p = Pool::open(dev);
    let mut tm = p.tm;
    let tree: Btree<U64Value> = Btree::new(1);
    tree.lookup(&mut tm, root, &[3]).unwrap_err()
}

#[test]
fn node_checksum() {
    assert_eq!(damage_root(|b| b[100] ^= 1, false), Error::Checksum);
}

#[test]
fn node_blocknr() {
    assert_eq!(damage_root(|b| b[8] ^= 1, true), Error::BlockNr);
}

#[test]
fn node_flags() {
    assert_eq!(damage_root(|b| le32(b, 4, 0), true), Error::NodeFlags);
    assert_eq!(damage_root(|b| le32(b, 4, 3), true), Error::NodeFlags);
}

#[test]
fn node_max_entries() {
    assert_eq!(damage_root(|b| le32(b, 20, 1000), true), Error::MaxEntries);
}

#[test]
fn node_nr_entries() {
    assert_eq!(
        damage_root(|b| le32(b, 16, 300), true),
        Error::NrEntriesTooLarge
    );
}

#[test]
fn node_value_size() {
    // An internal root with a value size other than 8.
    assert_eq!(damage_root(|b| le32(b, 24, 4), true), Error::ValueSize);
}

#[test]
fn node_keys_out_of_order() {
    assert_eq!(
        damage_root(|b| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes()), true),
        Error::KeysOutOfOrder
    );
}

#[test]
fn leaf_value_size_mismatch() {
    let (dev, root) = build();
    let mut p = Pool::open(dev);
    // Reading the u64 tree as a tree of 16-byte values.
    let tree: Btree<dm_thin_host::pdata::btree::Bytes<16>> = Btree::new(1);
    assert_eq!(
        tree.lookup(&mut p.tm, root, &[3]).unwrap_err(),
        Error::ValueSize
    );
}

#[test]
fn bitmap_and_index_validators() {
    let mut blk = vec![0u8; 4096];
    BITMAP_VALIDATOR.prepare_for_write(77, &mut blk);
    assert_eq!(BITMAP_VALIDATOR.check(77, &blk), Ok(()));
    assert_eq!(BITMAP_VALIDATOR.check(78, &blk), Err(Error::BlockNr));
    blk[2000] ^= 4;
    assert_eq!(BITMAP_VALIDATOR.check(77, &blk), Err(Error::Checksum));
    let mut blk = vec![0u8; 4096];
    INDEX_VALIDATOR.prepare_for_write(5, &mut blk);
    assert_eq!(INDEX_VALIDATOR.check(5, &blk), Ok(()));
    blk[17] ^= 1;
    assert_eq!(INDEX_VALIDATOR.check(5, &blk), Err(Error::Checksum));
    // Different salts: a bitmap is not a valid index block.
    let mut blk = vec![0u8; 4096];
    BITMAP_VALIDATOR.prepare_for_write(5, &mut blk);
    assert_eq!(INDEX_VALIDATOR.check(5, &blk), Err(Error::Checksum));
    assert_eq!(BTREE_NODE_VALIDATOR.check(5, &blk), Err(Error::Checksum));
}

#[test]
fn read_errors_are_errors() {
    let (mut dev, root) = build();
    dev.set_fail_reads(true);
    let sb = dev.block(0);
    let bm = BlockManager::new(dev, 64).unwrap();
    assert_eq!(
        dm_thin_host::pdata::transaction_manager::TransactionManager::open(bm, 0, &sb[0..32]).err(),
        Some(Error::Io)
    );
    let _ = root;
}

/// Random damage (with and without valid checksums) to random blocks, then
/// lookups, inserts, removes, walks and deletes: errors are fine, panics
/// are not. Run under the test harness, a panic fails the test.
#[test]
fn random_damage_never_panics() {
    let (clean, root) = build();
    let mut rng = Rng::new(99);
    let tree: Btree<U64Value> = Btree::new(1);
    let used: Vec<u64> = (0..200).collect();
    for round in 0..300 {
        let mut dev = clean.clone();
        for _ in 0..1 + rng.below(4) {
            let b = used[rng.below(used.len() as u64) as usize];
            let blk = dev.block_mut(b);
            match rng.below(3) {
                0 => {
                    let i = rng.below(4096) as usize;
                    blk[i] ^= 1 << rng.below(8);
                }
                1 => {
                    // Header field damage with a valid checksum.
                    let off = [4usize, 16, 20, 24, 32, 40, 48][rng.below(7) as usize];
                    let v = rng.next_u64() as u32 % [4u32, 1000, 300, 17][rng.below(4) as usize];
                    le32(blk, off, v);
                    stamp_checksum(blk, BTREE_CSUM_XOR);
                }
                _ => {
                    // Rewrite a key or child pointer, keep checksum valid.
                    let i = 32 + 8 * rng.below(500) as usize;
                    let v = rng.below(10_000);
                    blk[i..i + 8].copy_from_slice(&v.to_le_bytes());
                    stamp_checksum(blk, BTREE_CSUM_XOR);
                }
            }
        }
        let sb = dev.block(0);
        let bm = BlockManager::new(dev, 64).unwrap();
        let mut tm = match dm_thin_host::pdata::transaction_manager::TransactionManager::open(
            bm,
            0,
            &sb[0..32],
        ) {
            Ok(tm) => tm,
            Err(_) => continue,
        };
        let mut r = root;
        for i in 0..50u64 {
            let k = rng.below(10_000);
            let _ = tree.lookup(&mut tm, r, &[k]);
            let _ = tree.lookup_next(&mut tm, r, &[k]);
            match i % 4 {
                0 => {
                    if let Ok(nr) = tree.insert(&mut tm, &mut (), r, &[k], &i) {
                        r = nr;
                    }
                }
                1 => {
                    if let Ok((nr, _)) = tree.remove(&mut tm, &mut (), r, &[k]) {
                        r = nr;
                    }
                }
                2 => {
                    if let Ok((nr, _)) = tree.remove_range(&mut tm, &mut (), r, &[], k, k + 50) {
                        r = nr;
                    }
                }
                _ => {
                    let _ = tree.walk(&mut tm, r, |_, _| Ok(()));
                }
            }
        }
        let _ = tree.find_highest_key(&mut tm, r);
        if round % 3 == 0 {
            let _ = tree.del(&mut tm, &mut (), r);
        }
        // Error paths release what they locked.
        assert_eq!(tm.bm_ref().nr_locks(), 0, "round {round}: leaked locks");
        // Whatever happened, abort must bring the transaction back.
        tm.abort().unwrap();
        assert_eq!(tm.bm_ref().nr_locks(), 0);
    }
}

/// Random damage to any metadata block, including the space maps' bitmaps,
/// index and ref-count trees and the saved roots, then space-map and tree
/// operations and commits: errors only, never a panic (also under debug
/// overflow checks, as the kernel builds with them).
#[test]
fn random_space_map_damage_never_panics() {
    use dm_thin_host::pdata::space_map::DiskSpaceMap;
    use dm_thin_host::pdata::transaction_manager::{Transaction, TransactionManager};
    let (clean, root) = build();
    let rounds: u64 = std::env::var("PDATA_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = Rng::new(7 + rounds);
    let tree: Btree<U64Value> = Btree::new(1);
    for round in 0..rounds {
        let mut dev = clean.clone();
        for _ in 0..1 + rng.below(3) {
            let b = if rng.below(8) == 0 { 0 } else { rng.below(120) };
            let blk = dev.block_mut(b);
            let i = rng.below(4096) as usize;
            match rng.below(3) {
                0 => blk[i] ^= 1 << rng.below(8),
                1 => {
                    let j = i & !7;
                    let v = match rng.below(4) {
                        0 => u64::MAX,
                        1 => rng.next_u64(),
                        2 => rng.below(100_000),
                        _ => 0,
                    };
                    blk[j..j + 8].copy_from_slice(&v.to_le_bytes());
                }
                _ => blk[i] = rng.next_u64() as u8,
            }
            if b != 0 && rng.below(2) == 0 {
                // Keep the checksum valid for whichever kind it is.
                let salt = [
                    BTREE_CSUM_XOR,
                    dm_thin_host::pdata::checksum::BITMAP_CSUM_XOR,
                    dm_thin_host::pdata::checksum::INDEX_CSUM_XOR,
                ][rng.below(3) as usize];
                stamp_checksum(blk, salt);
            }
        }
        let sb = dev.block(0);
        let bm = BlockManager::new(dev, 64).unwrap();
        let mut tm = match TransactionManager::open(bm, 0, &sb[0..32]) {
            Ok(tm) => tm,
            Err(_) => continue,
        };
        let mut data_sm = match DiskSpaceMap::open(&mut tm, &sb[32..64]) {
            Ok(d) => d,
            Err(_) => continue,
        };
        let mut r = root;
        for i in 0..40u64 {
            let k = rng.below(10_000);
            let _ = data_sm.new_block(&mut tm);
            let _ = data_sm.inc(&mut tm, rng.below(1200));
            let _ = data_sm.dec(&mut tm, rng.below(1200));
            let _ = data_sm.get_count(&mut tm, rng.next_u64());
            let _ = tm.get_count(rng.below(200));
            if let Ok(nr) = tree.insert(&mut tm, &mut (), r, &[k], &i) {
                r = nr;
            }
            if let Ok((nr, _)) = tree.remove(&mut tm, &mut (), r, &[rng.below(10_000)]) {
                r = nr;
            }
            if let Ok(w) = tm.new_block(&NOOP_VALIDATOR) {
                let b = w.location();
                tm.bm().unlock_write(w);
                let _ = tm.dec(b);
            }
        }
        let _ = data_sm.extend(&mut tm, rng.below(50_000));
        let _ = tm.extend_metadata(rng.below(100));
        let _ = data_sm.commit(&mut tm);
        let dr = data_sm.root();
        let _ = tm.commit_with(0, &NOOP_VALIDATOR, false, |sb, mr| {
            mr.pack(&mut sb[0..32])?;
            dr.pack(&mut sb[32..64])
        });
        let _ = tm.nr_free();
        let _ = data_sm.nr_free();
        assert_eq!(tm.bm_ref().nr_locks(), 0, "round {round}: leaked locks");
        if round % 2 == 0 {
            tm.abort().unwrap_or(());
        }
    }
}
