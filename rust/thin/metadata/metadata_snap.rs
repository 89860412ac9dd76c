//! Metadata snapshots (`dm_pool_reserve_metadata_snap`,
//! `dm_pool_release_metadata_snap`): a held copy of the superblock whose
//! trees stay referenced, so userspace can read a live pool's metadata.

use super::error::{Error, Result};
use super::pool_metadata::PoolMetadata;
use super::superblock::{Superblock, SB_VALIDATOR, SPACE_MAP_ROOT_SIZE, THIN_SUPERBLOCK_LOCATION};
use super::value_types::{DETAILS_TREE, MAPPING_TREE};
use crate::pdata::block_device::BlockDevice;
use crate::pdata::transaction_manager::{Transaction, TransactionManager};

impl<D: BlockDevice> PoolMetadata<D> {
    /// `dm_pool_reserve_metadata_snap`: commits, then keeps a copy of the
    /// superblock whose trees stay referenced until released, so userspace
    /// can read a consistent image of a live pool. Recorded in the
    /// superblock at the next commit.
    pub fn reserve_metadata_snap(&mut self) -> Result<()> {
        self.write_begin()?;
        if self.held_root != 0 {
            return Err(Error::MetadataSnapExists);
        }
        self.commit_transaction()?;
        let pd = self.pd()?;
        pd.tm.inc(THIN_SUPERBLOCK_LOCATION)?;
        let (copy, inc) = match pd.tm.shadow_block(THIN_SUPERBLOCK_LOCATION, &SB_VALIDATOR) {
            Ok(x) => x,
            Err(e) => {
                let _ = pd.tm.dec(THIN_SUPERBLOCK_LOCATION);
                return Err(e.into());
            }
        };
        let held_root = copy.location();
        let block = pd.tm.bm().data_mut(&copy);
        let parsed = Superblock::unpack(block).and_then(|mut sb| {
            sb.data_space_map_root = [0; SPACE_MAP_ROOT_SIZE];
            sb.metadata_space_map_root = [0; SPACE_MAP_ROOT_SIZE];
            sb.pack(block)?;
            Ok(sb)
        });
        pd.tm.bm().unlock_write(copy);
        let sb = parsed?;
        if !inc {
            return Err(Error::Corrupt);
        }
        pd.tm.inc(sb.data_mapping_root)?;
        pd.tm.inc(sb.device_details_root)?;
        self.held_root = held_root;
        Ok(())
    }

    /// `dm_pool_release_metadata_snap`: drops the metadata snapshot.
    pub fn release_metadata_snap(&mut self) -> Result<()> {
        self.write_begin()?;
        let held_root = self.held_root;
        if held_root == 0 {
            return Err(Error::NoMetadataSnap);
        }
        let pd = self.pd()?;
        let sb = lock_superblock_at(&mut pd.tm, held_root)?;
        self.held_root = 0;
        let pd = self.pd()?;
        MAPPING_TREE.del(&mut pd.tm, &mut pd.data_sm, sb.data_mapping_root)?;
        DETAILS_TREE.del(&mut pd.tm, &mut (), sb.device_details_root)?;
        pd.tm.dec(held_root)?;
        Ok(())
    }

    /// `dm_pool_get_metadata_snap`: the held root, `None` if there is none.
    pub fn metadata_snap(&self) -> Result<Option<u64>> {
        self.pd.as_ref().ok_or(Error::FailIo)?;
        Ok(if self.held_root == 0 {
            None
        } else {
            Some(self.held_root)
        })
    }
}

fn lock_superblock_at<D: BlockDevice>(
    tm: &mut TransactionManager<D>,
    b: u64,
) -> Result<Superblock> {
    let l = tm.read_lock(b, &SB_VALIDATOR)?;
    let sb = Superblock::unpack(tm.bm().data(&l));
    tm.bm().unlock(l);
    sb
}
