//! Corruption: a damaged metadata block gives an error (or nothing, for a
//! block nothing refers to), never a panic or a wrong answer; the on-disk
//! decoders survive random bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use dm_thin_host::metadata::block_time::BlockTime;
use dm_thin_host::metadata::device_details::DeviceDetails;
use dm_thin_host::metadata::superblock::{self, Superblock};
use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::pdata::btree::Node;
use dm_thin_host::pdata::checksum::{
    block_checksum, stamp_checksum, stored_checksum, BITMAP_CSUM_XOR, BTREE_CSUM_XOR,
    INDEX_CSUM_XOR, SUPERBLOCK_CSUM_XOR,
};
use dm_thin_host::ramdisk::RamDisk;
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_model::{check_against, Model, Outcome};
use dm_thin_host::thin_ops::{random_op, OpMix};
use dm_thin_host::thin_script::execute;

const META_BLOCKS: u64 = 2048;

/// A committed pool with a few devices, snapshots and a few thousand
/// mappings, and its model.
fn build() -> (RamDisk, Model) {
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), 128, true).unwrap();
    pmd.resize_data_dev(50_000).unwrap();
    pmd.commit().unwrap();
    let mut model = Model::new(50_000);
    let mut rng = Rng::new(4242);
    let mix = OpMix {
        max_devices: 5,
        vblocks: 5_000,
        commit_pct: 1,
        abort_pct: 0,
        deletes: true,
    };
    for _ in 0..3000 {
        let op = random_op(&mut rng, &model, &mix);
        let out = match execute(&mut pmd, &op) {
            Ok(b) => Outcome::Ok(b),
            Err(_) => Outcome::Err,
        };
        model.apply(&op, out).unwrap();
    }
    pmd.commit().unwrap();
    model.committed = model.cur.clone();
    pmd.close().unwrap();
    (pmd.into_device().unwrap(), model)
}

/// Blocks holding anything (never-written blocks read as zeroes), at most
/// `max` of them spread over the device, always including the superblock.
fn written_blocks(dev: &RamDisk, max: usize) -> Vec<u64> {
    let all: Vec<u64> = (0..META_BLOCKS)
        .filter(|&b| dev.block(b).iter().any(|&x| x != 0))
        .collect();
    let step = all.len().div_ceil(max).max(1);
    all.into_iter().step_by(step).collect()
}

/// Opens and checks everything against the model. `Ok(true)`: all
/// correct; `Ok(false)`: an API error was reported; `Err`: wrong answer.
fn verdict(dev: RamDisk, model: &Model, rng: &mut Rng) -> Result<bool, String> {
    let mut pmd = match PoolMetadata::open_with_cache(dev, Some(128), false, 256) {
        Ok(p) => p,
        Err(_) => return Ok(false),
    };
    match check_against(&mut pmd, &model.committed, rng) {
        Ok(()) => {}
        Err(e) if e.starts_with("api error") => return Ok(false),
        Err(e) => return Err(e),
    }
    // Writing through damaged metadata must fail cleanly too.
    let ids: Vec<u64> = model.committed.devices.keys().copied().collect();
    for (i, id) in ids.iter().enumerate() {
        if pmd.insert_block(*id, 7 + i as u64, 3).is_err() || pmd.remove_range(*id, 0, 100).is_err()
        {
            return Ok(false);
        }
    }
    Ok(pmd.commit().is_ok())
}

#[test]
fn flipped_bytes_give_errors_never_wrong_answers() {
    let (dev, model) = build();
    let blocks = written_blocks(&dev, 150);
    assert!(blocks.len() > 20, "only {} blocks used", blocks.len());
    let mut rng = Rng::new(7);
    let (mut errors, mut fine, mut panics) = (0, 0, Vec::new());
    for &b in &blocks {
        for k in 0..2 {
            let pos = match k {
                0 => rng.below(32) as usize,
                _ => rng.below(4096) as usize,
            };
            let mut d = dev.clone();
            d.block_mut(b)[pos] ^= 1 << rng.below(8);
            let r = catch_unwind(AssertUnwindSafe(|| verdict(d, &model, &mut Rng::new(b))));
            match r {
                Err(_) => panics.push((b, pos)),
                Ok(Err(e)) => panic!("block {b} byte {pos} flipped: wrong answer: {e}"),
                Ok(Ok(true)) => fine += 1,
                Ok(Ok(false)) => errors += 1,
            }
        }
    }
    assert!(
        panics.is_empty(),
        "panics on flipped (block, byte): {panics:?}"
    );
    assert!(errors > 0);
    eprintln!(
        "{} blocks: {errors} errors, {fine} unaffected",
        blocks.len()
    );
}

/// The salt whose checksum a block carries, if any.
fn salt_of(block: &[u8]) -> Option<u32> {
    [
        BTREE_CSUM_XOR,
        BITMAP_CSUM_XOR,
        INDEX_CSUM_XOR,
        SUPERBLOCK_CSUM_XOR,
    ]
    .into_iter()
    .find(|&s| block_checksum(block, s) == stored_checksum(block))
}

#[test]
fn damage_with_valid_checksums_never_panics() {
    // Corruption a checksum cannot see (the block is re-stamped): answers
    // may be wrong, but nothing may panic, loop forever or overflow.
    let (dev, model) = build();
    let blocks = written_blocks(&dev, 100);
    let mut rng = Rng::new(8);
    let mut panics = Vec::new();
    for &b in &blocks {
        let Some(salt) = salt_of(&dev.block(b)) else {
            continue;
        };
        for k in [0, 2, 5] {
            let mut d = dev.clone();
            let data = d.block_mut(b);
            let pos = if k < 3 {
                4 + rng.below(60) as usize
            } else {
                rng.below(4096) as usize
            };
            if pos < 4 {
                continue;
            }
            data[pos] = rng.below(256) as u8;
            if k == 5 {
                // A header field set to an extreme value.
                let f = 16 + 4 * rng.below(3) as usize;
                data[f..f + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            stamp_checksum(data, salt);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _ = verdict(d, &model, &mut Rng::new(b));
            }));
            if r.is_err() {
                panics.push((b, pos));
            }
        }
    }
    assert!(
        panics.is_empty(),
        "panics on re-stamped damage (block, byte): {panics:?}"
    );
}

#[test]
fn fuzz_decoders() {
    let mut rng = Rng::new(12345);
    let mut block = vec![0u8; 4096];
    for i in 0..60_000u64 {
        // Random bytes, or a valid-looking header with random contents.
        for x in block.iter_mut() {
            *x = rng.next_u64() as u8;
        }
        if i % 2 == 0 {
            let flags: u32 = 1 + (rng.below(2) as u32);
            block[4..8].copy_from_slice(&flags.to_le_bytes());
            block[8..16].copy_from_slice(&(i % 7).to_le_bytes());
            block[16..20].copy_from_slice(&(rng.below(300) as u32).to_le_bytes());
            block[20..24].copy_from_slice(&(rng.below(600) as u32).to_le_bytes());
            block[24..28]
                .copy_from_slice(&[8u32, 24, 16, 0, 4096][rng.below(5) as usize].to_le_bytes());
            stamp_checksum(&mut block, BTREE_CSUM_XOR);
        }
        if let Ok(n) = Node::new(&block) {
            for j in 0..n.nr_entries().min(1000) {
                let _ = n.key(j);
                let _ = n.value(j);
            }
            let _ = n.lower_bound(rng.next_u64());
            let _ = n.upper_bound(rng.next_u64());
        }
        let _ = Node::with_value_size(&block, 8);
        // Superblock: random, and random with a valid checksum and magic.
        let len = rng.below(4097) as usize;
        let _ = Superblock::unpack(&block[..len]);
        let _ = superblock::check(&block[..len], rng.below(4));
        if i % 3 == 0 {
            block[32..40].copy_from_slice(&superblock::THIN_SUPERBLOCK_MAGIC.to_le_bytes());
            block[8..16].copy_from_slice(&0u64.to_le_bytes());
            stamp_checksum(&mut block, SUPERBLOCK_CSUM_XOR);
            let sb = superblock::check(&block, 0).expect("valid checksum and magic");
            let _ = sb.check_features(false);
        }
        let _ = DeviceDetails::unpack(&block[..rng.below(30) as usize]);
        let _ = BlockTime::unpack(rng.next_u64());
    }
}

#[test]
fn superblock_validator_errors_are_distinct() {
    let (dev, _) = build();
    let good = dev.block(0);
    assert!(superblock::check(&good, 0).is_ok());
    use dm_thin_host::metadata::Error;
    assert_eq!(
        superblock::check(&good, 5).unwrap_err(),
        Error::SuperblockBadBlocknr
    );
    let mut b = good.clone();
    b[32] ^= 1;
    assert_eq!(
        superblock::check(&b, 0).unwrap_err(),
        Error::SuperblockBadMagic
    );
    let mut b = good.clone();
    b[3000] ^= 1;
    assert_eq!(
        superblock::check(&b, 0).unwrap_err(),
        Error::SuperblockBadChecksum
    );
    assert_eq!(
        Superblock::unpack(&good[..100]).unwrap_err(),
        Error::ShortBlock
    );
    // Unknown incompatible features refuse to open.
    let mut d = dev.clone();
    let blk = d.block_mut(0);
    blk[360..364].copy_from_slice(&1u32.to_le_bytes());
    superblock::prepare_for_write(blk, 0).unwrap();
    let r = PoolMetadata::open(d, 128, false);
    assert_eq!(r.err(), Some(Error::UnsupportedIncompatFeatures));
    // Wrong data block size.
    assert_eq!(
        PoolMetadata::open(dev.clone(), 256, false).err(),
        Some(Error::DataBlockSizeMismatch { on_disk: 128 })
    );
    // All zeroes: unformatted unless formatting is asked for.
    assert_eq!(
        PoolMetadata::open(RamDisk::new(64), 128, false).err(),
        Some(Error::Unformatted)
    );
}
