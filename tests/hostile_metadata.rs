//! Regression tests for defects the hostile-metadata fuzzer found
//! (`tests/hostile_fuzz.rs`): each builds the image that showed it.

use dm_thin_host::hostile::{base_image, exercise, mutate, Mutation, DATA_BLOCKS, DATA_BLOCK_SIZE};
use dm_thin_host::metadata::{Error, PoolMetadata};

/// A mapping to a data block past the end of the data device (checksum
/// recomputed) was returned by `find_block` and `find_mapped_range` as is:
/// the target would have remapped I/O outside the pool's data device.
#[test]
fn mapping_past_the_data_device_is_an_error() {
    for value in [7 * 4, 8 * 4, 9 * 4, 13 * 4] {
        let mut dev = base_image(0);
        // value % 4 == 0: the data block set to extreme64(value / 4), i.e.
        // DATA_BLOCKS, DATA_BLOCKS + 1, 2^40 - 1, u64::MAX (truncated).
        assert!(mutate(&mut dev, &Mutation::MappingValue { node: 0, at: 0, value }));
        let mut pmd = PoolMetadata::open(dev.clone(), DATA_BLOCK_SIZE, false).unwrap();
        let mut out_of_range = 0;
        for v in 0..1000 {
            match pmd.find_block(0, v, true) {
                Ok(Some(r)) => assert!(r.block < DATA_BLOCKS, "vblock {v} -> {r:?}"),
                Ok(None) => {}
                Err(Error::DataBlockOutOfRange) => out_of_range += 1,
                Err(e) => panic!("vblock {v}: {e:?}"),
            }
            match pmd.find_mapped_range(0, v, v + 10) {
                Ok(Some(r)) => assert!(r.pool_begin + (r.thin_end - r.thin_begin) <= DATA_BLOCKS),
                Ok(None) | Err(Error::DataBlockOutOfRange) => {}
                Err(e) => panic!("range at {v}: {e:?}"),
            }
        }
        assert!(out_of_range > 0, "value {value}: no out-of-range mapping seen");
        assert!(exercise(dev).is_ok());
    }
}
