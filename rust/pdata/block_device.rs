//! The block device under the block manager: 4 KiB metadata blocks.
//!
//! In the kernel this is implemented over dm-io/bios by `rust/dm`; on the
//! host by a file or by `host::ramdisk::RamDisk` (with fault injection).

use super::error::Result;

/// Size of a metadata block in bytes (the kernel's `THIN_METADATA_BLOCK_SIZE`).
pub const BLOCK_SIZE: usize = 4096;

/// A device of `BLOCK_SIZE` blocks.
///
/// Blocking, synchronous I/O. Writes may be cached by the device until
/// [`BlockDevice::flush`]; `write_fua` is a write that is durable when it
/// returns (the default implementation is write then flush).
pub trait BlockDevice: Send {
    /// Number of blocks on the device.
    fn nr_blocks(&self) -> u64;
    /// Reads block `b` into `buf` (`buf.len() == BLOCK_SIZE`).
    fn read(&mut self, b: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf` (`buf.len() == BLOCK_SIZE`) to block `b`.
    fn write(&mut self, b: u64, buf: &[u8]) -> Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<()>;
    /// Writes a batch of blocks: submits every `(block, buf)` the iterator
    /// yields (`buf.len() == BLOCK_SIZE`), then waits for all of them.
    ///
    /// This is how the block manager writes a commit's dirty blocks and
    /// how eviction writes back, so a kernel implementation should have
    /// them all in flight at once (one bio each, plugged, one completion
    /// wait), as dm-bufio's `dm_bufio_write_dirty_buffers` does. The writes
    /// may complete in any order and are durable only after
    /// [`BlockDevice::flush`]. On error some of the blocks may have been
    /// written; the caller treats the whole batch as failed. The default
    /// writes them one by one.
    fn write_blocks(&mut self, blocks: &mut dyn Iterator<Item = (u64, &[u8])>) -> Result<()> {
        for (b, buf) in blocks {
            self.write(b, buf)?;
        }
        Ok(())
    }
    /// Writes block `b` durably (forced unit access).
    fn write_fua(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        self.write(b, buf)?;
        self.flush()
    }
    /// The barrier the owner needs before every commit (the pool's
    /// data-device flush).
    ///
    /// `PoolMetadata` calls it first on every path that commits, before
    /// anything of the commit is written, so metadata never becomes durable
    /// before the data blocks it maps (C: the callback registered with
    /// `dm_pool_register_pre_commit_callback`, which issues
    /// `blkdev_issue_flush` on the data device). An error aborts that
    /// commit with the error; nothing of it has been written then. The
    /// default does nothing (a metadata device with no data device behind
    /// it: host tools, tests).
    fn pre_commit(&mut self) -> Result<()> {
        Ok(())
    }
}
