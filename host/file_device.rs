//! A metadata image file as a [`BlockDevice`] for the host tools and tests.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};

/// A file of 4 KiB blocks. `flush` is `fdatasync` unless `sync` is off
/// (scratch images in tests, where durability does not matter).
pub struct FileDevice {
    file: File,
    nr_blocks: u64,
    sync: bool,
}

impl FileDevice {
    /// Opens an existing image read-write; its size gives the block count.
    pub fn open(path: &Path, sync: bool) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::from_file(file, sync)
    }

    /// Opens an image read-only (writes fail with `Io`).
    pub fn open_read_only(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        Self::from_file(file, false)
    }

    fn from_file(file: File, sync: bool) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileDevice {
            file,
            nr_blocks: len / BLOCK_SIZE as u64,
            sync,
        })
    }

    fn offset(&self, b: u64, len: usize) -> Result<u64> {
        if b >= self.nr_blocks || len != BLOCK_SIZE {
            return Err(Error::OutOfBounds);
        }
        Ok(b * BLOCK_SIZE as u64)
    }
}

impl BlockDevice for FileDevice {
    fn nr_blocks(&self) -> u64 {
        self.nr_blocks
    }

    fn read(&mut self, b: u64, buf: &mut [u8]) -> Result<()> {
        let off = self.offset(b, buf.len())?;
        self.file.read_exact_at(buf, off).map_err(|_| Error::Io)
    }

    fn write(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        let off = self.offset(b, buf.len())?;
        self.file.write_all_at(buf, off).map_err(|_| Error::Io)
    }

    fn flush(&mut self) -> Result<()> {
        if self.sync {
            self.file.sync_data().map_err(|_| Error::Io)?;
        }
        Ok(())
    }
}
