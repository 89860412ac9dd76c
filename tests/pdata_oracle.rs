//! Oracle checks of the persistent-data paths the metadata tests do not
//! reach: metadata space-map growth across bitmap boundaries (new bitmaps
//! and index entries), snapshots with broken sharing, large removals, with
//! `thin_check` 0.9.0 and 1.1.0 run on the image after every stage.

use dm_thin_host::file_device::FileDevice;
use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::oracle::{assert_checks, scratch, zero_image};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open(path: &std::path::Path, format: bool) -> PoolMetadata<FileDevice> {
    PoolMetadata::open(FileDevice::open(path, false).unwrap(), 128, format).unwrap()
}

fn provision(p: &mut PoolMetadata<FileDevice>, dev: u64, v: u64) {
    if let Some(b) = p.alloc_data_block().unwrap() {
        p.insert_block(dev, v, b).unwrap();
    }
}

fn grow(path: &std::path::Path, blocks: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(blocks * 4096).unwrap();
}

#[test]
fn metadata_growth_across_bitmaps_passes_thin_check() {
    let dir = scratch("pdata-oracle");
    let img = dir.join("meta.img");
    zero_image(&img, 2000);
    let mut rng = Rng(0x1234_5678);

    // Stage 1: a small pool, one thin with 50k random mappings.
    let mut p = open(&img, true);
    p.resize_data_dev(400_000).unwrap();
    p.create_thin(1).unwrap();
    for _ in 0..50_000 {
        let v = rng.below(1 << 20);
        provision(&mut p, 1, v);
    }
    p.commit().unwrap();
    p.close().unwrap();
    drop(p);
    assert_checks(&img);

    // Stage 2: grow the metadata device past the first bitmap (16320
    // blocks), snapshot, break sharing, remove ranges.
    grow(&img, 20_000);
    let mut p = open(&img, false);
    p.resize_metadata_dev(20_000).unwrap();
    p.create_snap(2, 1).unwrap();
    for i in 0..60_000u64 {
        let dev = 1 + i % 2;
        let v = rng.below(1 << 20);
        provision(&mut p, dev, v);
        if i % 10_000 == 9_999 {
            let b = rng.below(1 << 20);
            p.remove_range(dev, b, b + 20_000).unwrap();
            p.commit().unwrap();
        }
    }
    p.commit().unwrap();
    assert_eq!(p.metadata_dev_size().unwrap(), 20_000);
    p.close().unwrap();
    drop(p);
    assert_checks(&img);

    // Stage 3: grow again (a third bitmap), delete the origin, keep going.
    grow(&img, 40_000);
    let mut p = open(&img, false);
    p.resize_metadata_dev(40_000).unwrap();
    p.delete_thin_device(1).unwrap();
    p.create_snap(3, 2).unwrap();
    for _ in 0..30_000 {
        let v = rng.below(1 << 20);
        provision(&mut p, 3, v);
    }
    p.commit().unwrap();
    // Many small thins (one leaf each) push metadata use past the first
    // bitmap, so blocks of the grown area are really allocated.
    let used0 = p.metadata_dev_size().unwrap() - p.free_metadata_blocks().unwrap();
    for dev in 10..18_010u64 {
        p.create_thin(dev).unwrap();
        provision(&mut p, dev, dev);
        if dev % 4000 == 0 {
            p.commit().unwrap();
        }
    }
    p.commit().unwrap();
    let used = p.metadata_dev_size().unwrap() - p.free_metadata_blocks().unwrap();
    assert!(used > 16_320 + 500, "metadata used {used0} -> {used}");
    p.close().unwrap();
    drop(p);
    assert_checks(&img);
    let _ = std::fs::remove_dir_all(&dir);
}
