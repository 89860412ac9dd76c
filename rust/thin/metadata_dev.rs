//! The pool's metadata device as the persistent-data engine sees it: 4 KiB
//! blocks read and written through [`BdevFile`] bios, a batched write for
//! commits, and the pool's pre-commit barrier (a flush of the data device,
//! C `metadata_pre_commit_callback`).
//!
//! The block manager's buffers are its own; the bios are built from
//! [`IoBuf`]s this device allocates once, and blocks are copied through
//! them: one for single blocks, and a batch of [`BATCH`] for commits.

use super::pool::THIN_METADATA_MAX_SECTORS;
use crate::dm::{BdevFile, IoBuf};
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};
use kernel::alloc::KVec;
use kernel::prelude::GFP_KERNEL;
use kernel::sync::Arc;

const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE as u64) / crate::dm::SECTOR_SIZE;

/// Blocks a commit's batched write submits together.
const BATCH: usize = 64;

/// The metadata device of a pool, and its data device for the barrier.
pub struct MetadataDev {
    /// Shared with the pool, whose worker reads lookups' misses through it
    /// without the pool lock (see `lookup.rs`).
    meta: Arc<BdevFile>,
    data: Arc<BdevFile>,
    /// The single-block bounce buffer.
    one: IoBuf,
    /// The batched write's bounce buffers.
    batch: KVec<IoBuf>,
}

impl MetadataDev {
    /// Wraps the pool's open devices and allocates the bounce buffers.
    pub fn new(meta: Arc<BdevFile>, data: Arc<BdevFile>) -> kernel::error::Result<Self> {
        let mut batch = KVec::with_capacity(BATCH, GFP_KERNEL)?;
        for _ in 0..BATCH {
            batch.push(IoBuf::new(BLOCK_SIZE)?, GFP_KERNEL)?;
        }
        Ok(MetadataDev {
            meta,
            data,
            one: IoBuf::new(BLOCK_SIZE)?,
            batch,
        })
    }
}

fn sector(b: u64) -> Result<u64> {
    b.checked_mul(SECTORS_PER_BLOCK).ok_or(Error::OutOfBounds)
}

/// Copies a block into a bounce buffer of the same size.
fn fill(dst: &mut IoBuf, src: &[u8]) -> Result<()> {
    let dst = dst.as_mut_slice().get_mut(..src.len()).ok_or(Error::OutOfBounds)?;
    dst.copy_from_slice(src);
    Ok(())
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
        io(self.meta.read(sector(b)?, &mut self.one))?;
        let src = self.one.as_slice().get(..buf.len()).ok_or(Error::OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        let s = sector(b)?;
        fill(&mut self.one, buf)?;
        io(self.meta.write_many(&mut core::iter::once((s, &self.one))))
    }

    /// Copies up to [`BATCH`] blocks at a time into the bounce buffers and
    /// writes them together; every block is tried, the first error returned.
    fn write_blocks(&mut self, blocks: &mut dyn Iterator<Item = (u64, &[u8])>) -> Result<()> {
        let mut first_err = None;
        let mut sectors: [u64; BATCH] = [0; BATCH];
        loop {
            let mut n = 0;
            while n < BATCH {
                let Some((b, buf)) = blocks.next() else { break };
                let r = sector(b).and_then(|s| {
                    let dst = self.batch.get_mut(n).ok_or(Error::OutOfBounds)?;
                    fill(dst, buf)?;
                    Ok(s)
                });
                match r {
                    Ok(s) => {
                        sectors[n] = s;
                        n += 1;
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if n == 0 {
                break;
            }
            let mut ios = sectors.iter().copied().zip(self.batch.iter()).take(n);
            if let Err(e) = io(self.meta.write_many(&mut ios)) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        io(self.meta.flush())
    }

    fn write_fua(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        let s = sector(b)?;
        fill(&mut self.one, buf)?;
        io(self.meta.write_fua(s, &self.one))
    }

    /// Data blocks that new mappings name must be durable before the
    /// mappings are.
    fn pre_commit(&mut self) -> Result<()> {
        io(self.data.flush())
    }
}
