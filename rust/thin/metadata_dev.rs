//! The pool's metadata device as the persistent-data engine sees it: 4 KiB
//! blocks read and written through [`BdevFile`] bios, a batched write for
//! commits, and the pool's pre-commit barrier (a flush of the data device,
//! C `metadata_pre_commit_callback`).

use super::pool::THIN_METADATA_MAX_SECTORS;
use crate::dm::BdevFile;
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};
use kernel::sync::Arc;

const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE as u64) / crate::dm::SECTOR_SIZE;

/// The metadata device of a pool, and its data device for the barrier.
pub struct MetadataDev {
    meta: BdevFile,
    data: Arc<BdevFile>,
}

impl MetadataDev {
    /// Wraps the pool's open devices.
    pub fn new(meta: BdevFile, data: Arc<BdevFile>) -> Self {
        MetadataDev { meta, data }
    }
}

fn sector(b: u64) -> Result<u64> {
    b.checked_mul(SECTORS_PER_BLOCK).ok_or(Error::OutOfBounds)
}

fn io(r: kernel::error::Result) -> Result<()> {
    r.map_err(|_| Error::Io)
}

impl BlockDevice for MetadataDev {
    /// Blocks usable for metadata: the device size, capped as C's
    /// `get_metadata_dev_size_in_blocks` caps it.
    fn nr_blocks(&self) -> u64 {
        self.meta.nr_sectors().min(THIN_METADATA_MAX_SECTORS) / SECTORS_PER_BLOCK
    }

    fn read(&mut self, b: u64, buf: &mut [u8]) -> Result<()> {
        io(self.meta.read(sector(b)?, buf))
    }

    fn write(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        let s = sector(b)?;
        io(self.meta.write_many(&mut core::iter::once((s, buf))))
    }

    fn write_blocks(&mut self, blocks: &mut dyn Iterator<Item = (u64, &[u8])>) -> Result<()> {
        let mut bad = false;
        let mut sectors = blocks.filter_map(|(b, buf)| match sector(b) {
            Ok(s) => Some((s, buf)),
            Err(_) => {
                bad = true;
                None
            }
        });
        io(self.meta.write_many(&mut sectors))?;
        if bad {
            return Err(Error::OutOfBounds);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        io(self.meta.flush())
    }

    fn write_fua(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        io(self.meta.write_fua(sector(b)?, buf))
    }

    /// Data blocks that new mappings name must be durable before the
    /// mappings are.
    fn pre_commit(&mut self) -> Result<()> {
        io(self.data.flush())
    }
}
