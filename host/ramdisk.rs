//! A RAM block device with fault injection, for tests.
//!
//! Keeps two images: what a reader sees now (every completed write) and
//! what would survive a power cut (the state at the last flush, or every
//! write if `lose_unflushed` is off). [`RamDisk::crash`] drops the volatile
//! image. Writes can be made to fail (`Error::Io`) or to vanish silently
//! after a number of writes, to cut a commit in the middle.

use std::collections::HashMap;

use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::error::{Error, Result};

/// What happens to writes past the write limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// The write returns `Err(Io)`.
    Fail,
    /// The write returns `Ok` but is lost (a power cut nobody noticed).
    Drop,
}

/// I/O counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCounts {
    /// Block reads.
    pub reads: u64,
    /// Block writes (including dropped ones), however issued.
    pub writes: u64,
    /// Writes issued one by one through [`BlockDevice::write`] (neither in
    /// a batch nor FUA).
    pub single_writes: u64,
    /// Flushes.
    pub flushes: u64,
    /// [`BlockDevice::write_blocks`] calls (their blocks are counted in
    /// `writes` too).
    pub batches: u64,
    /// Blocks written through [`BlockDevice::write_blocks`].
    pub batched_blocks: u64,
    /// [`BlockDevice::write_fua`] calls (counted in `writes` too; a FUA
    /// write makes only its own block durable, it is not a flush).
    pub fua_writes: u64,
    /// [`BlockDevice::pre_commit`] calls (failed ones included).
    pub pre_commits: u64,
}

/// A sparse RAM disk of 4 KiB blocks (unwritten blocks read as zeroes).
#[derive(Clone)]
pub struct RamDisk {
    nr_blocks: u64,
    current: HashMap<u64, Box<[u8]>>,
    durable: HashMap<u64, Box<[u8]>>,
    /// Writes since the last flush (`lose_unflushed` mode).
    unflushed: Vec<u64>,
    lose_unflushed: bool,
    write_limit: Option<u64>,
    cut_mode: CutMode,
    fail_reads: bool,
    fail_read_of: Option<u64>,
    fail_pre_commit: bool,
    counts: IoCounts,
}

impl RamDisk {
    /// A zeroed disk of `nr_blocks` blocks.
    pub fn new(nr_blocks: u64) -> Self {
        RamDisk {
            nr_blocks,
            current: HashMap::new(),
            durable: HashMap::new(),
            unflushed: Vec::new(),
            lose_unflushed: false,
            write_limit: None,
            cut_mode: CutMode::Fail,
            fail_reads: false,
            fail_read_of: None,
            fail_pre_commit: false,
            counts: IoCounts::default(),
        }
    }

    /// When on, a [`Self::crash`] loses every write not followed by a flush.
    pub fn set_lose_unflushed(&mut self, on: bool) {
        self.lose_unflushed = on;
    }

    /// After `n` more writes, further writes fail or vanish per `mode`.
    pub fn cut_after(&mut self, n: u64, mode: CutMode) {
        self.write_limit = Some(self.counts.writes + n);
        self.cut_mode = mode;
    }

    /// Removes the write cut.
    pub fn uncut(&mut self) {
        self.write_limit = None;
    }

    /// Makes every read fail with `Io` (or not).
    pub fn set_fail_reads(&mut self, on: bool) {
        self.fail_reads = on;
    }

    /// Makes reads of block `b` fail with `Io` (`None`: no such block).
    pub fn set_fail_read_of(&mut self, b: Option<u64>) {
        self.fail_read_of = b;
    }

    /// Makes every [`BlockDevice::pre_commit`] fail with `Io` (or not): a
    /// data device whose flush fails.
    pub fn set_fail_pre_commit(&mut self, on: bool) {
        self.fail_pre_commit = on;
    }

    /// Simulates a power cut: unflushed writes are lost (if
    /// `lose_unflushed`), the cut is lifted.
    pub fn crash(&mut self) {
        if self.lose_unflushed {
            self.current = self.durable.clone();
        }
        self.unflushed.clear();
        self.write_limit = None;
    }

    /// I/O counters.
    pub fn counts(&self) -> IoCounts {
        self.counts
    }

    /// Raw access to a block's current bytes (for corruption tests).
    pub fn block_mut(&mut self, b: u64) -> &mut [u8] {
        let e = self
            .current
            .entry(b)
            .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
        &mut e[..]
    }

    /// A copy of block `b`'s current bytes.
    pub fn block(&self, b: u64) -> Vec<u8> {
        match self.current.get(&b) {
            Some(d) => d.to_vec(),
            None => vec![0u8; BLOCK_SIZE],
        }
    }

    /// Changes the size (blocks past the end are dropped).
    pub fn resize(&mut self, nr_blocks: u64) {
        self.nr_blocks = nr_blocks;
        self.current.retain(|&b, _| b < nr_blocks);
        self.durable.retain(|&b, _| b < nr_blocks);
    }
}

impl RamDisk {
    /// Stores one written block; `Ok(false)` if a `Drop` cut swallowed it.
    fn put(&mut self, b: u64, buf: &[u8]) -> Result<bool> {
        if b >= self.nr_blocks || buf.len() != BLOCK_SIZE {
            return Err(Error::Io);
        }
        self.counts.writes += 1;
        if let Some(limit) = self.write_limit {
            if self.counts.writes > limit {
                return match self.cut_mode {
                    CutMode::Fail => Err(Error::Io),
                    CutMode::Drop => Ok(false),
                };
            }
        }
        self.current.insert(b, buf.to_vec().into_boxed_slice());
        if self.lose_unflushed {
            self.unflushed.push(b);
        } else {
            self.durable.insert(b, buf.to_vec().into_boxed_slice());
        }
        Ok(true)
    }
}

impl BlockDevice for RamDisk {
    fn nr_blocks(&self) -> u64 {
        self.nr_blocks
    }

    fn read(&mut self, b: u64, buf: &mut [u8]) -> Result<()> {
        if b >= self.nr_blocks
            || buf.len() != BLOCK_SIZE
            || self.fail_reads
            || self.fail_read_of == Some(b)
        {
            return Err(Error::Io);
        }
        self.counts.reads += 1;
        match self.current.get(&b) {
            Some(d) => buf.copy_from_slice(d),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn write(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        self.counts.single_writes += 1;
        self.put(b, buf).map(|_| ())
    }

    fn flush(&mut self) -> Result<()> {
        self.counts.flushes += 1;
        if let Some(limit) = self.write_limit {
            if self.counts.writes > limit && self.cut_mode == CutMode::Fail {
                return Err(Error::Io);
            }
        }
        for b in self.unflushed.drain(..) {
            if let Some(d) = self.current.get(&b) {
                self.durable.insert(b, d.clone());
            }
        }
        Ok(())
    }

    fn write_blocks(&mut self, blocks: &mut dyn Iterator<Item = (u64, &[u8])>) -> Result<()> {
        self.counts.batches += 1;
        for (b, buf) in blocks {
            self.counts.batched_blocks += 1;
            self.put(b, buf)?;
        }
        Ok(())
    }

    /// A real FUA: this block is durable, earlier unflushed writes are not.
    fn write_fua(&mut self, b: u64, buf: &[u8]) -> Result<()> {
        self.counts.fua_writes += 1;
        if self.put(b, buf)? {
            self.durable.insert(b, buf.to_vec().into_boxed_slice());
        }
        Ok(())
    }

    fn pre_commit(&mut self) -> Result<()> {
        self.counts.pre_commits += 1;
        if self.fail_pre_commit {
            return Err(Error::Io);
        }
        Ok(())
    }
}
