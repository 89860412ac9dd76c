//! Space accounting in the pool's metadata: data blocks allocated and
//! referenced, free counts, growing either device, and the free-metadata
//! threshold.

use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use crate::pdata::block_device::BlockDevice;

impl<D: BlockDevice> PoolMetadata<D> {
    /// `dm_pool_alloc_data_block`: a free data block with one reference,
    /// `None` if the data device is full. The block becomes a mapping
    /// through [`Self::insert_block`], which takes over the reference.
    pub fn alloc_data_block(&mut self) -> Result<Option<u64>> {
        self.write_begin()?;
        let pd = self.pd()?;
        Ok(pd.data_sm.new_block(&mut pd.tm)?)
    }

    /// `dm_pool_block_is_shared`: whether data block `b` has more than one
    /// reference.
    pub fn block_is_shared(&mut self, b: u64) -> Result<bool> {
        let pd = self.pd()?;
        Ok(pd.data_sm.get_count(&mut pd.tm, b)? > 1)
    }

    /// The reference count of data block `b`.
    pub fn data_block_count(&mut self, b: u64) -> Result<u32> {
        let pd = self.pd()?;
        Ok(pd.data_sm.get_count(&mut pd.tm, b)?)
    }

    /// `dm_pool_inc_data_range`: one more reference to each block of `b..e`.
    pub fn inc_data_range(&mut self, b: u64, e: u64) -> Result<()> {
        self.write_begin()?;
        let pd = self.pd()?;
        for x in b..e {
            pd.data_sm.inc(&mut pd.tm, x)?;
        }
        Ok(())
    }

    /// `dm_pool_dec_data_range`: one reference less to each block of `b..e`.
    pub fn dec_data_range(&mut self, b: u64, e: u64) -> Result<()> {
        self.write_begin()?;
        let pd = self.pd()?;
        for x in b..e {
            pd.data_sm.dec(&mut pd.tm, x)?;
        }
        Ok(())
    }

    /// `dm_pool_changed_this_transaction`: whether any device changed, or
    /// a delete in batches released mappings (see [`super::deleting`]).
    pub fn changed_this_transaction(&self) -> bool {
        self.reclaimed_uncommitted || self.devices.iter().any(|td| td.changed)
    }

    /// `dm_pool_get_free_block_count`: free data blocks.
    pub fn free_data_blocks(&self) -> Result<u64> {
        let pd = self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(pd.data_sm.nr_free())
    }

    /// `dm_pool_get_data_dev_size`: data blocks in the pool, including a
    /// resize not yet committed.
    pub fn data_dev_size(&self) -> Result<u64> {
        let pd = self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(self
            .data_nr_blocks_pending
            .unwrap_or(pd.data_sm.nr_blocks()))
    }

    /// `dm_pool_get_free_metadata_block_count`: free metadata blocks minus
    /// the reserve kept for commits.
    pub fn free_metadata_blocks(&self) -> Result<u64> {
        let pd = self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(pd.tm.nr_free().saturating_sub(self.metadata_reserve))
    }

    /// `dm_pool_get_metadata_dev_size`: metadata blocks in the pool.
    pub fn metadata_dev_size(&self) -> Result<u64> {
        let pd = self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(pd.tm.nr_blocks())
    }

    /// `dm_pool_resize_data_dev`: grows the data space map (never shrinks).
    ///
    /// The pool target commits right after resizing; the new blocks can be
    /// allocated at once.
    pub fn resize_data_dev(&mut self, new_count: u64) -> Result<()> {
        self.write_begin()?;
        let old = self.data_dev_size()?;
        if new_count == old {
            return Ok(());
        }
        if new_count < old {
            return Err(Error::CannotShrink);
        }
        let pd = self.pd()?;
        pd.data_sm.extend(&mut pd.tm, new_count - old)?;
        self.data_nr_blocks_pending = Some(new_count);
        Ok(())
    }

    /// `dm_pool_resize_metadata_dev`: grows the metadata space map to
    /// `new_count` blocks (the device must already be that large).
    pub fn resize_metadata_dev(&mut self, new_count: u64) -> Result<()> {
        self.write_begin()?;
        let pd = self.pd()?;
        let old = pd.tm.nr_blocks();
        if new_count == old {
            return Ok(());
        }
        if new_count < old {
            return Err(Error::CannotShrink);
        }
        pd.tm.extend_metadata(new_count - old)?;
        self.set_metadata_reserve();
        Ok(())
    }

    /// `dm_pool_register_metadata_threshold`: watch for free metadata
    /// blocks dropping to `threshold`. The C callback becomes polling: the
    /// pool calls [`Self::take_metadata_threshold_events`] after changes.
    pub fn register_metadata_threshold(&mut self, threshold: u64) -> Result<()> {
        let pd = self.pd()?;
        pd.tm.set_metadata_threshold(threshold);
        self.metadata_threshold = Some(threshold);
        Ok(())
    }

    /// How many times free metadata dropped to the registered threshold
    /// since the last call (once per crossing).
    pub fn take_metadata_threshold_events(&mut self) -> u32 {
        match self.pd.as_mut() {
            Some(pd) => pd.tm.take_threshold_events(),
            None => 0,
        }
    }
}
