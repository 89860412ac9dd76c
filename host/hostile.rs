//! Hostile metadata: valid pool images with malicious contents and their
//! checksums recomputed, and the engine run over them.
//!
//! A metadata device is data an attacker can hand the kernel, and CRC32C is
//! no protection: they recompute it. [`base_image`] builds a committed pool
//! with the host engine; [`layout`] finds every metadata structure in it by
//! walking from the superblock (without the engine); [`mutate`] applies one
//! structured [`Mutation`] and re-stamps the checksum of the block it
//! touched; [`exercise`] opens the result and runs reads, lookups, inserts,
//! removes, snapshot, delete and commit on it, and reports what happened.
//!
//! Used by the proptest fuzzer (`tests/hostile_fuzz.rs`) and by
//! `thinmeta hostile-corpus`, which writes the images that give distinct
//! outcomes for the VM scenario `68-hostile-metadata`.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{Error, PoolMetadata};
use crate::pdata::block_device::{BlockDevice, BLOCK_SIZE};
use crate::pdata::checksum::{
    stamp_checksum, BITMAP_CSUM_XOR, BTREE_CSUM_XOR, INDEX_CSUM_XOR, SUPERBLOCK_CSUM_XOR,
};
use crate::pdata::endian::{rd32, rd64, wr32, wr64};
use crate::pdata::error::Result as PdResult;
use crate::pdata::space_map::bitmap_set;
use crate::ramdisk::RamDisk;
use crate::rng::Rng;

/// Metadata device size of the base images, in 4 KiB blocks.
pub const META_BLOCKS: u64 = 256;
/// Data device size of the base images, in data blocks.
pub const DATA_BLOCKS: u64 = 1024;
/// Data block size of the base images, in 512-byte sectors (64 KiB).
pub const DATA_BLOCK_SIZE: u32 = 128;
/// Number of distinct base images.
pub const NR_BASES: u64 = 3;

/// Thin ids in the base images (0 and 2 plain, 1 and 3 snapshots of 0).
pub const BASE_THINS: [u64; 4] = [0, 1, 2, 3];

/// A committed pool image: thin 0 with 600 mappings (a two-level bottom
/// tree), snapshots 1 and 3 of it (shared blocks with reference counts of
/// 3, so the ref-count tree is used), thin 2 with a few mappings, partly
/// overwritten so some sharing is broken. Variant 1 also holds a metadata
/// snapshot; variant 2 has deleted and recreated devices and a higher
/// transaction id.
pub fn base_image(variant: u64) -> RamDisk {
    let mut pmd = PoolMetadata::open(RamDisk::new(META_BLOCKS), DATA_BLOCK_SIZE, true)
        .expect("format base image");
    pmd.resize_data_dev(DATA_BLOCKS).expect("resize");
    pmd.create_thin(0).expect("create 0");
    for v in 0..600u64 {
        let b = pmd.alloc_data_block().expect("alloc").expect("space");
        pmd.insert_block(0, v * 3 % 1000, b).expect("insert");
    }
    pmd.commit().expect("commit");
    pmd.create_snap(1, 0).expect("snap 1");
    pmd.create_snap(3, 0).expect("snap 3");
    pmd.create_thin(2).expect("create 2");
    for v in 0..40u64 {
        let b = pmd.alloc_data_block().expect("alloc").expect("space");
        pmd.insert_block(2, v, b).expect("insert");
        // Break sharing on a few blocks of snapshot 1.
        let b = pmd.alloc_data_block().expect("alloc").expect("space");
        pmd.insert_block(1, v * 3, b).expect("insert");
        pmd.dec_data_range(0, 0).expect("noop");
    }
    match variant {
        1 => {
            pmd.commit().expect("commit");
            pmd.reserve_metadata_snap().expect("metadata snap");
            let b = pmd.alloc_data_block().expect("alloc").expect("space");
            pmd.insert_block(3, 1, b).expect("insert");
        }
        2 => {
            pmd.delete_thin_device(3).expect("delete");
            pmd.create_snap(3, 1).expect("snap 3");
            pmd.set_transaction_id(0, 7).expect("trans id");
        }
        _ => {}
    }
    pmd.commit().expect("commit");
    pmd.close().expect("close");
    pmd.into_device().expect("device")
}

/// What a metadata block is, found by walking from the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Block 0.
    Superblock,
    /// A node of the device details tree (dev id -> details).
    Details,
    /// A node of the mapping tree's top level (dev id -> subtree root).
    Top,
    /// A node of a device's mapping subtree (vblock -> block time).
    Bottom,
    /// A node of the data space map's index btree.
    DataIndex,
    /// A node of a ref-count tree (data or metadata space map).
    RefCount,
    /// A data space map bitmap.
    DataBitmap,
    /// The metadata space map's index block.
    MetaIndex,
    /// A metadata space map bitmap.
    MetaBitmap,
}

impl Kind {
    /// The checksum salt of blocks of this kind.
    pub fn salt(self) -> u32 {
        match self {
            Kind::Superblock => SUPERBLOCK_CSUM_XOR,
            Kind::DataBitmap | Kind::MetaBitmap => BITMAP_CSUM_XOR,
            Kind::MetaIndex => INDEX_CSUM_XOR,
            _ => BTREE_CSUM_XOR,
        }
    }

    /// Whether blocks of this kind are btree nodes.
    pub fn is_node(self) -> bool {
        self.salt() == BTREE_CSUM_XOR
    }
}

/// Every structure block of an image and what it is (a block reached from
/// two places keeps the first kind found).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Block -> kind.
    pub blocks: BTreeMap<u64, Kind>,
}

impl Layout {
    /// The blocks of one kind, in block order.
    pub fn of(&self, pred: impl Fn(Kind) -> bool) -> Vec<u64> {
        self.blocks
            .iter()
            .filter(|(_, k)| pred(**k))
            .map(|(b, _)| *b)
            .collect()
    }
}

// Superblock offsets (struct thin_disk_superblock).
const SB_FLAGS: usize = 4;
const SB_VERSION: usize = 40;
const SB_TIME: usize = 44;
const SB_TRANS_ID: usize = 48;
const SB_HELD_ROOT: usize = 56;
const SB_DATA_SM: usize = 64;
const SB_META_SM: usize = 192;
const SB_MAPPING_ROOT: usize = 320;
const SB_DETAILS_ROOT: usize = 328;
const SB_DATA_BLOCK_SIZE: usize = 336;
const SB_META_BLOCK_SIZE: usize = 340;
const SB_META_NR_BLOCKS: usize = 344;
const SB_COMPAT: usize = 352;
const SB_COMPAT_RO: usize = 356;
const SB_INCOMPAT: usize = 360;

// struct disk_sm_root offsets.
const SMR_NR_BLOCKS: usize = 0;
const SMR_BITMAP_ROOT: usize = 16;
const SMR_REF_COUNT_ROOT: usize = 24;

fn node_nr(d: &[u8]) -> usize {
    rd32(d, 16) as usize
}
fn node_max(d: &[u8]) -> usize {
    rd32(d, 20) as usize
}
fn node_vsize(d: &[u8]) -> usize {
    rd32(d, 24) as usize
}
fn node_internal(d: &[u8]) -> bool {
    rd32(d, 4) & 1 != 0
}
fn key_off(i: usize) -> usize {
    32 + 8 * i
}
fn val_off(d: &[u8], i: usize) -> usize {
    32 + 8 * node_max(d) + node_vsize(d) * i
}

/// Walks a btree from `root` (raw bytes, bounded), recording its nodes as
/// `kind` and calling `leaf` on every leaf value.
fn walk_tree(
    dev: &RamDisk,
    root: u64,
    kind: Kind,
    out: &mut Layout,
    leaf: &mut dyn FnMut(&[u8]),
) {
    let mut stack = vec![root];
    let mut seen = BTreeSet::new();
    while let Some(b) = stack.pop() {
        if b >= META_BLOCKS || !seen.insert(b) || seen.len() > 4096 {
            continue;
        }
        out.blocks.entry(b).or_insert(kind);
        let d = dev.block(b);
        let (nr, max, vs) = (node_nr(&d), node_max(&d), node_vsize(&d));
        if nr > max || 32 + (8 + vs) * max > BLOCK_SIZE {
            continue;
        }
        for i in 0..nr {
            let off = val_off(&d, i);
            if node_internal(&d) {
                stack.push(rd64(&d, off));
            } else {
                leaf(&d[off..off + vs]);
            }
        }
    }
}

/// Finds every structure of the image by walking from the superblock.
pub fn layout(dev: &RamDisk) -> Layout {
    let mut l = Layout::default();
    l.blocks.insert(0, Kind::Superblock);
    let sb = dev.block(0);
    walk_tree(dev, rd64(&sb, SB_DETAILS_ROOT), Kind::Details, &mut l, &mut |_| {});
    let mut subtrees = Vec::new();
    walk_tree(dev, rd64(&sb, SB_MAPPING_ROOT), Kind::Top, &mut l, &mut |v| {
        subtrees.push(rd64(v, 0))
    });
    for r in subtrees {
        walk_tree(dev, r, Kind::Bottom, &mut l, &mut |_| {});
    }
    // Data space map: index btree of disk_index_entry, ref-count tree.
    let dsm = &sb[SB_DATA_SM..SB_DATA_SM + 32];
    let mut bitmaps = Vec::new();
    walk_tree(dev, rd64(dsm, SMR_BITMAP_ROOT), Kind::DataIndex, &mut l, &mut |v| {
        bitmaps.push(rd64(v, 0))
    });
    for b in bitmaps {
        if b < META_BLOCKS {
            l.blocks.entry(b).or_insert(Kind::DataBitmap);
        }
    }
    walk_tree(dev, rd64(dsm, SMR_REF_COUNT_ROOT), Kind::RefCount, &mut l, &mut |_| {});
    // Metadata space map: one index block of 255 entries.
    let msm = &sb[SB_META_SM..SB_META_SM + 32];
    let ib = rd64(msm, SMR_BITMAP_ROOT);
    if ib < META_BLOCKS {
        l.blocks.entry(ib).or_insert(Kind::MetaIndex);
        let idx = dev.block(ib);
        let nr_bitmaps = rd64(msm, SMR_NR_BLOCKS).div_ceil(16_320).min(255);
        for i in 0..nr_bitmaps as usize {
            let b = rd64(&idx, 16 + 16 * i);
            if b < META_BLOCKS {
                l.blocks.entry(b).or_insert(Kind::MetaBitmap);
            }
        }
    }
    walk_tree(dev, rd64(msm, SMR_REF_COUNT_ROOT), Kind::RefCount, &mut l, &mut |_| {});
    l
}

/// The number of mutation kinds [`Mutation::from_raw`] knows.
pub const NR_MUTATIONS: u8 = 20;

/// One structured change to an image. The `u64` fields pick a target or a
/// value among the candidates the layout offers (taken modulo their count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// A superblock field set to an extreme value.
    SuperblockField { field: u64, value: u64 },
    /// A space map root (data or metadata) field set to an extreme value.
    SmRootField { meta: bool, field: u64, value: u64 },
    /// A node's `nr_entries` set past its maximum (or 0, or u32::MAX).
    NrEntries { node: u64, value: u64 },
    /// A node's `max_entries` or `value_size` changed.
    NodeGeometry { node: u64, field: u64, value: u64 },
    /// A node's flags changed (internal <-> leaf, both, none).
    NodeFlags { node: u64, value: u64 },
    /// Two keys of a node swapped, or one duplicated (keys out of order).
    KeysOutOfOrder { node: u64, at: u64, dup: bool },
    /// A key set to an extreme value.
    KeyExtreme { node: u64, at: u64, value: u64 },
    /// A child pointer to the node itself.
    ChildSelf { node: u64, at: u64 },
    /// A child pointer back to the root of its tree (or any ancestor-kind node).
    ChildLoop { node: u64, at: u64, to: u64 },
    /// A child pointer to another node in use (sharing where it must not).
    ChildShare { node: u64, at: u64, to: u64 },
    /// A child pointer past the end of the metadata device (or to block 0).
    ChildOutOfBounds { node: u64, at: u64, value: u64 },
    /// A mapping's data block or time at an extreme.
    MappingValue { node: u64, at: u64, value: u64 },
    /// A device details field at an extreme.
    DetailsValue { node: u64, at: u64, field: u64, value: u64 },
    /// The top level pointing a device at another device's subtree, at
    /// itself, or out of bounds.
    SubtreeRoot { node: u64, at: u64, value: u64 },
    /// A reference count at a limit (0, 1, 2, 3, u32::MAX ...).
    RefCountValue { node: u64, at: u64, value: u64 },
    /// Bitmap entries of used blocks set to free (or to "look in the
    /// ref-count tree", or to 1).
    BitmapFree { meta: bool, bitmap: u64, first: u64, len: u64, value: u64 },
    /// An index entry's fields at extremes (blocknr, nr_free, none_free_before).
    IndexEntry { meta: bool, at: u64, field: u64, value: u64 },
    /// A random byte of a structure block changed, checksum restamped.
    Byte { block: u64, at: u64, value: u64 },
    /// A whole structure block copied over another of a different kind.
    CopyBlock { from: u64, to: u64 },
    /// The metadata snapshot root (held_root) pointed at a structure block.
    HeldRoot { to: u64 },
}

impl Mutation {
    /// Builds mutation `kind % NR_MUTATIONS` from raw picks.
    pub fn from_raw(kind: u8, a: u64, b: u64, c: u64, d: u64) -> Self {
        match kind % NR_MUTATIONS {
            0 => Mutation::SuperblockField { field: a, value: b },
            1 => Mutation::SmRootField { meta: c & 1 == 1, field: a, value: b },
            2 => Mutation::NrEntries { node: a, value: b },
            3 => Mutation::NodeGeometry { node: a, field: b, value: c },
            4 => Mutation::NodeFlags { node: a, value: b },
            5 => Mutation::KeysOutOfOrder { node: a, at: b, dup: c & 1 == 1 },
            6 => Mutation::KeyExtreme { node: a, at: b, value: c },
            7 => Mutation::ChildSelf { node: a, at: b },
            8 => Mutation::ChildLoop { node: a, at: b, to: c },
            9 => Mutation::ChildShare { node: a, at: b, to: c },
            10 => Mutation::ChildOutOfBounds { node: a, at: b, value: c },
            11 => Mutation::MappingValue { node: a, at: b, value: c },
            12 => Mutation::DetailsValue { node: a, at: b, field: c, value: d },
            13 => Mutation::SubtreeRoot { node: a, at: b, value: c },
            14 => Mutation::RefCountValue { node: a, at: b, value: c },
            15 => Mutation::BitmapFree { meta: d & 1 == 1, bitmap: a, first: b, len: c, value: d >> 1 },
            16 => Mutation::IndexEntry { meta: d & 1 == 1, at: a, field: b, value: c },
            17 => Mutation::Byte { block: a, at: b, value: c },
            18 => Mutation::CopyBlock { from: a, to: b },
            _ => Mutation::HeldRoot { to: a },
        }
    }

    /// A short name of the mutation's kind (corpus file names).
    pub fn name(&self) -> &'static str {
        match self {
            Mutation::SuperblockField { .. } => "sb-field",
            Mutation::SmRootField { .. } => "sm-root",
            Mutation::NrEntries { .. } => "nr-entries",
            Mutation::NodeGeometry { .. } => "node-geometry",
            Mutation::NodeFlags { .. } => "node-flags",
            Mutation::KeysOutOfOrder { .. } => "keys-order",
            Mutation::KeyExtreme { .. } => "key-extreme",
            Mutation::ChildSelf { .. } => "child-self",
            Mutation::ChildLoop { .. } => "child-loop",
            Mutation::ChildShare { .. } => "child-share",
            Mutation::ChildOutOfBounds { .. } => "child-oob",
            Mutation::MappingValue { .. } => "mapping-value",
            Mutation::DetailsValue { .. } => "details-value",
            Mutation::SubtreeRoot { .. } => "subtree-root",
            Mutation::RefCountValue { .. } => "refcount",
            Mutation::BitmapFree { .. } => "bitmap-free",
            Mutation::IndexEntry { .. } => "index-entry",
            Mutation::Byte { .. } => "byte",
            Mutation::CopyBlock { .. } => "copy-block",
            Mutation::HeldRoot { .. } => "held-root",
        }
    }
}

fn pick<T: Copy>(v: &[T], i: u64) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[(i % v.len() as u64) as usize])
    }
}

/// Extreme 64-bit values around the image's limits.
fn extreme64(i: u64) -> u64 {
    const V: [u64; 14] = [
        0,
        1,
        2,
        META_BLOCKS - 1,
        META_BLOCKS,
        META_BLOCKS + 1,
        DATA_BLOCKS - 1,
        DATA_BLOCKS,
        DATA_BLOCKS + 1,
        (1 << 40) - 1,
        1 << 40,
        u32::MAX as u64,
        u64::MAX / 2,
        u64::MAX,
    ];
    V[(i % V.len() as u64) as usize]
}

/// Extreme 32-bit values.
fn extreme32(i: u64) -> u32 {
    const V: [u32; 12] = [0, 1, 2, 3, 4, 7, 8, 126, 255, 0x00ff_ffff, u32::MAX - 1, u32::MAX];
    V[(i % V.len() as u64) as usize]
}

/// Nodes of the layout (optionally only internal ones) of any tree.
fn nodes(dev: &RamDisk, l: &Layout, internal_only: bool) -> Vec<u64> {
    l.of(Kind::is_node)
        .into_iter()
        .filter(|&b| !internal_only || node_internal(&dev.block(b)))
        .collect()
}

fn leaves_of(dev: &RamDisk, l: &Layout, kind: Kind) -> Vec<u64> {
    l.of(|k| k == kind)
        .into_iter()
        .filter(|&b| !node_internal(&dev.block(b)) && node_nr(&dev.block(b)) > 0)
        .collect()
}

/// Entry index `at` of a node (modulo its entry count, at least 1).
fn entry(d: &[u8], at: u64) -> usize {
    let nr = node_nr(d).clamp(1, node_max(d).max(1));
    (at % nr as u64) as usize
}

/// Applies `m` to `dev` and re-stamps the checksum of every block it
/// changed. Returns `false` if the image had nothing for it to change.
pub fn mutate(dev: &mut RamDisk, m: &Mutation) -> bool {
    let l = layout(dev);
    let sb_root = |dev: &RamDisk, kind: Kind| -> u64 {
        let sb = dev.block(0);
        match kind {
            Kind::Details => rd64(&sb, SB_DETAILS_ROOT),
            Kind::Top => rd64(&sb, SB_MAPPING_ROOT),
            Kind::DataIndex => rd64(&sb, SB_DATA_SM + SMR_BITMAP_ROOT),
            _ => rd64(&sb, SB_DATA_SM + SMR_REF_COUNT_ROOT),
        }
    };
    let mut touched: Vec<u64> = Vec::new();
    let ok = match *m {
        Mutation::SuperblockField { field, value } => {
            let d = dev.block_mut(0);
            match field % 12 {
                0 => wr32(d, SB_FLAGS, extreme32(value)),
                1 => wr32(d, SB_VERSION, extreme32(value)),
                2 => wr32(d, SB_TIME, extreme32(value)),
                3 => wr64(d, SB_TRANS_ID, extreme64(value)),
                4 => wr64(d, SB_HELD_ROOT, extreme64(value)),
                5 => wr64(d, SB_MAPPING_ROOT, extreme64(value)),
                6 => wr64(d, SB_DETAILS_ROOT, extreme64(value)),
                7 => wr32(d, SB_DATA_BLOCK_SIZE, extreme32(value)),
                8 => wr32(d, SB_META_BLOCK_SIZE, extreme32(value)),
                9 => wr64(d, SB_META_NR_BLOCKS, extreme64(value)),
                10 => wr32(d, SB_COMPAT + 4 * (value as usize % 3), extreme32(value / 3)),
                _ => wr32(d, SB_COMPAT_RO, extreme32(value)),
            }
            let _ = SB_INCOMPAT;
            touched.push(0);
            true
        }
        Mutation::SmRootField { meta, field, value } => {
            let base = if meta { SB_META_SM } else { SB_DATA_SM };
            let d = dev.block_mut(0);
            let off = base + 8 * (field as usize % 4); // nr_blocks, nr_allocated, bitmap_root, ref_count_root
            let v = if value % 5 == 0 {
                // Plausible but wrong: off by a little.
                rd64(d, off).wrapping_add(value % 3).wrapping_sub(1)
            } else {
                extreme64(value)
            };
            wr64(d, off, v);
            touched.push(0);
            true
        }
        Mutation::NrEntries { node, value } => match pick(&nodes(dev, &l, false), node) {
            Some(b) => {
                let d = dev.block_mut(b);
                let max = rd32(d, 20);
                let v = match value % 6 {
                    0 => max.wrapping_add(1),
                    1 => max,
                    2 => 0,
                    3 => u32::MAX,
                    4 => rd32(d, 16).wrapping_add(1),
                    _ => 1,
                };
                wr32(d, 16, v);
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::NodeGeometry { node, field, value } => {
            match pick(&nodes(dev, &l, false), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let off = if field & 1 == 0 { 20 } else { 24 };
                    wr32(d, off, extreme32(value));
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::NodeFlags { node, value } => match pick(&nodes(dev, &l, false), node) {
            Some(b) => {
                wr32(dev.block_mut(b), 4, [0, 1, 2, 3, 4][value as usize % 5]);
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::KeysOutOfOrder { node, at, dup } => {
            let cands: Vec<u64> = nodes(dev, &l, false)
                .into_iter()
                .filter(|&b| node_nr(&dev.block(b)) >= 2)
                .collect();
            match pick(&cands, node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let nr = node_nr(d);
                    let i = (at % (nr as u64 - 1)) as usize;
                    let (ki, kj) = (rd64(d, key_off(i)), rd64(d, key_off(i + 1)));
                    wr64(d, key_off(i + 1), ki);
                    if !dup {
                        wr64(d, key_off(i), kj);
                    }
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::KeyExtreme { node, at, value } => match pick(&nodes(dev, &l, false), node) {
            Some(b) => {
                let d = dev.block_mut(b);
                let i = entry(d, at);
                wr64(d, key_off(i), extreme64(value));
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::ChildSelf { node, at } => match pick(&nodes(dev, &l, true), node) {
            Some(b) => {
                let d = dev.block_mut(b);
                let i = entry(d, at);
                let off = val_off(d, i);
                wr64(d, off, b);
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::ChildLoop { node, at, to } => match pick(&nodes(dev, &l, true), node) {
            Some(b) => {
                let kind = l.blocks[&b];
                let target = match kind {
                    Kind::Bottom => {
                        // The root of some bottom tree: any internal
                        // bottom node reachable at a higher level.
                        pick(&nodes(dev, &l, true), to).unwrap_or(b)
                    }
                    k => sb_root(dev, k),
                };
                let d = dev.block_mut(b);
                let i = entry(d, at);
                let off = val_off(d, i);
                wr64(d, off, target);
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::ChildShare { node, at, to } => match pick(&nodes(dev, &l, true), node) {
            Some(b) => {
                let all = nodes(dev, &l, false);
                let target = pick(&all, to).unwrap_or(b);
                let d = dev.block_mut(b);
                let i = entry(d, at);
                let off = val_off(d, i);
                wr64(d, off, target);
                touched.push(b);
                true
            }
            None => false,
        },
        Mutation::ChildOutOfBounds { node, at, value } => {
            match pick(&nodes(dev, &l, true), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let i = entry(d, at);
                    let off = val_off(d, i);
                    let v = match value % 4 {
                        0 => 0,
                        1 => META_BLOCKS + value % 7,
                        _ => extreme64(value),
                    };
                    wr64(d, off, v);
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::MappingValue { node, at, value } => {
            match pick(&leaves_of(dev, &l, Kind::Bottom), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let i = entry(d, at);
                    let off = val_off(d, i);
                    let old = rd64(d, off);
                    let v = match value % 4 {
                        // Data block at an extreme, time kept.
                        0 | 1 => (extreme64(value / 4) << 24) | (old & 0xff_ffff),
                        // Time at an extreme, block kept.
                        2 => (old & !0xff_ffff) | (extreme32(value / 4) as u64 & 0xff_ffff),
                        _ => extreme64(value / 4),
                    };
                    wr64(d, off, v);
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::DetailsValue { node, at, field, value } => {
            match pick(&leaves_of(dev, &l, Kind::Details), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let i = entry(d, at);
                    let off = val_off(d, i);
                    match field % 4 {
                        0 => wr64(d, off, extreme64(value)),
                        1 => wr64(d, off + 8, extreme64(value)),
                        2 => wr32(d, off + 16, extreme32(value)),
                        _ => wr32(d, off + 20, extreme32(value)),
                    }
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::SubtreeRoot { node, at, value } => {
            match pick(&leaves_of(dev, &l, Kind::Top), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let nr = node_nr(d).max(1);
                    let i = entry(d, at);
                    let off = val_off(d, i);
                    let v = match value % 4 {
                        // Another device's subtree: shared without a count.
                        0 => rd64(d, val_off(d, (i + 1) % nr)),
                        // The top-level leaf itself.
                        1 => b,
                        2 => sb_root(dev, Kind::Details),
                        _ => extreme64(value / 4),
                    };
                    let d = dev.block_mut(b);
                    wr64(d, off, v);
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::RefCountValue { node, at, value } => {
            match pick(&leaves_of(dev, &l, Kind::RefCount), node) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let i = entry(d, at);
                    let off = val_off(d, i);
                    wr32(d, off, extreme32(value));
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::BitmapFree { meta, bitmap, first, len, value } => {
            let kind = if meta { Kind::MetaBitmap } else { Kind::DataBitmap };
            match pick(&l.of(|k| k == kind), bitmap) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    let bits = if meta { META_BLOCKS } else { DATA_BLOCKS };
                    let first = first % bits;
                    let len = 1 + len % 64;
                    let v = (value % 4) as u32;
                    for e in first..(first + len).min(bits) {
                        bitmap_set(d, e as u32, v);
                    }
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::IndexEntry { meta, at, field, value } => {
            // Data: a leaf of the index btree; metadata: the index block.
            let (b, off) = if meta {
                match pick(&l.of(|k| k == Kind::MetaIndex), 0) {
                    Some(b) => (b, 16 + 16 * (at % 2) as usize),
                    None => return false,
                }
            } else {
                match pick(&leaves_of(dev, &l, Kind::DataIndex), 0) {
                    Some(b) => {
                        let d = dev.block(b);
                        let i = entry(&d, at);
                        (b, val_off(&d, i))
                    }
                    None => return false,
                }
            };
            let others = l.of(|k| k.is_node() || k == Kind::MetaIndex);
            let d = dev.block_mut(b);
            match field % 4 {
                0 => wr64(d, off, extreme64(value)),
                // A bitmap that is some other structure block.
                1 => wr64(d, off, pick(&others, value).unwrap_or(0)),
                2 => wr32(d, off + 8, extreme32(value)),
                _ => wr32(d, off + 12, extreme32(value)),
            }
            touched.push(b);
            true
        }
        Mutation::Byte { block, at, value } => {
            let all: Vec<u64> = l.blocks.keys().copied().collect();
            match pick(&all, block) {
                Some(b) => {
                    let d = dev.block_mut(b);
                    // Mostly the header and first entries.
                    let pos = if at & 1 == 0 { 4 + (at >> 1) % 124 } else { 4 + (at >> 1) % 4092 };
                    d[pos as usize] = value as u8;
                    touched.push(b);
                    true
                }
                None => false,
            }
        }
        Mutation::CopyBlock { from, to } => {
            let all: Vec<u64> = l.blocks.keys().copied().filter(|&b| b != 0).collect();
            match (pick(&all, from), pick(&all, to)) {
                (Some(f), Some(t)) if f != t => {
                    let src = dev.block(f);
                    let d = dev.block_mut(t);
                    d.copy_from_slice(&src);
                    // Keep its own location so only the contents lie.
                    wr64(d, 8, t);
                    touched.push(t);
                    true
                }
                _ => false,
            }
        }
        Mutation::HeldRoot { to } => {
            let all: Vec<u64> = l.blocks.keys().copied().collect();
            let v = pick(&all, to).unwrap_or(0);
            wr64(dev.block_mut(0), SB_HELD_ROOT, v);
            touched.push(0);
            true
        }
    };
    for b in touched {
        // CopyBlock keeps the salt of the block it copied.
        let salt = match *m {
            Mutation::CopyBlock { from, .. } => {
                let all: Vec<u64> = l.blocks.keys().copied().filter(|&b| b != 0).collect();
                pick(&all, from).and_then(|f| l.blocks.get(&f)).map_or(BTREE_CSUM_XOR, |k| k.salt())
            }
            _ => l.blocks.get(&b).map_or(BTREE_CSUM_XOR, |k| k.salt()),
        };
        stamp_checksum(dev.block_mut(b), salt);
    }
    ok
}

/// What [`exercise`] saw.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The open failed with this error.
    OpenFailed(String),
    /// It opened; the first operation to fail and how (or "" if none did).
    Opened { first_error: String, errors: u32 },
}

impl Verdict {
    /// A short class for corpus bookkeeping.
    pub fn class(&self) -> String {
        match self {
            Verdict::OpenFailed(e) => format!("open:{e}"),
            Verdict::Opened { first_error, .. } if first_error.is_empty() => "fine".into(),
            Verdict::Opened { first_error, .. } => format!("err:{first_error}"),
        }
    }
}

/// A device that refuses (panics on) any access outside its blocks: the
/// engine must check every block number it takes from disk before I/O.
#[derive(Clone)]
pub struct StrictDisk(pub RamDisk);

impl BlockDevice for StrictDisk {
    fn nr_blocks(&self) -> u64 {
        self.0.nr_blocks()
    }
    fn read(&mut self, b: u64, buf: &mut [u8]) -> PdResult<()> {
        assert!(b < self.0.nr_blocks(), "read of block {b} past the end of the metadata device");
        self.0.read(b, buf)
    }
    fn write(&mut self, b: u64, buf: &[u8]) -> PdResult<()> {
        assert!(b < self.0.nr_blocks(), "write of block {b} past the end of the metadata device");
        self.0.write(b, buf)
    }
    fn flush(&mut self) -> PdResult<()> {
        self.0.flush()
    }
    fn write_blocks(&mut self, blocks: &mut dyn Iterator<Item = (u64, &[u8])>) -> PdResult<()> {
        for (b, buf) in blocks {
            self.write(b, buf)?;
        }
        Ok(())
    }
    fn write_fua(&mut self, b: u64, buf: &[u8]) -> PdResult<()> {
        assert!(b < self.0.nr_blocks(), "FUA write of block {b} past the end of the metadata device");
        self.0.write_fua(b, buf)
    }
}

/// Records the first error of a run of operations.
struct Tally {
    first: String,
    errors: u32,
    steps: u64,
}

impl Tally {
    fn note<T>(&mut self, what: &str, r: core::result::Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if self.errors == 0 {
                    self.first = format!("{what}:{e:?}");
                }
                self.errors += 1;
                None
            }
        }
    }
}

/// Most callbacks a walk may make before it is cut short: a walk over
/// hostile metadata must end, and the image holds far fewer entries.
const WALK_LIMIT: u64 = 100_000;

/// Opens `dev` and runs reads, lookups, inserts, removes, snapshot, delete
/// and commit on what opens, then closes, reopens and reads again.
///
/// Returns `Err` for an answer that is inconsistent in a way that matters
/// to the kernel (a mapping to a data block past the end of the data
/// device, a free count larger than the device, a walk that does not end).
pub fn exercise(dev: RamDisk) -> core::result::Result<Verdict, String> {
    let mut pmd = match PoolMetadata::open_with_cache(StrictDisk(dev), Some(DATA_BLOCK_SIZE), false, 32)
    {
        Ok(p) => p,
        Err(e) => return Ok(Verdict::OpenFailed(format!("{e:?}"))),
    };
    let mut t = Tally { first: String::new(), errors: 0, steps: 0 };
    run_ops(&mut pmd, &mut t, 0)?;
    // Whatever was committed must reopen (or fail to) cleanly too.
    let _ = pmd.close();
    if let Some(d) = pmd.into_device() {
        if let Ok(mut p) = PoolMetadata::open_with_cache(d, Some(DATA_BLOCK_SIZE), false, 32) {
            run_ops(&mut p, &mut t, 1)?;
            let _ = p.close();
        }
    }
    Ok(Verdict::Opened { first_error: t.first, errors: t.errors })
}

fn run_ops<D: BlockDevice>(
    pmd: &mut PoolMetadata<D>,
    t: &mut Tally,
    round: u64,
) -> core::result::Result<(), String> {
    let nr_data = match t.note("data_dev_size", pmd.data_dev_size()) {
        Some(n) => n,
        None => return Ok(()),
    };
    if let Some(free) = t.note("free_data_blocks", pmd.free_data_blocks()) {
        if free > nr_data {
            return Err(format!("{free} free data blocks on a device of {nr_data}"));
        }
    }
    let _ = t.note("free_metadata_blocks", pmd.free_metadata_blocks());
    let _ = t.note("transaction_id", pmd.transaction_id());
    let _ = pmd.metadata_snap();
    let mut ids = Vec::new();
    let mut steps = 0u64;
    let _ = t.note(
        "walk_devices",
        pmd.walk_devices(|id, _| {
            steps += 1;
            if steps > WALK_LIMIT {
                return Err(Error::Corrupt);
            }
            if ids.len() < 8 {
                ids.push(id);
            }
            Ok(())
        }),
    );
    t.steps += steps;
    for id in BASE_THINS {
        // The first round also asks for the devices the base image has,
        // whatever the details tree now says.
        if round == 0 && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let check_block = |b: u64| -> core::result::Result<(), String> {
        if b >= nr_data {
            Err(format!("mapping to data block {b} on a data device of {nr_data}"))
        } else {
            Ok(())
        }
    };
    for &id in &ids {
        let _ = t.note("device_details", pmd.device_details(id));
        let _ = t.note("open_thin_device", pmd.open_thin_device(id));
        let mut steps = 0u64;
        let mut bad = None;
        let _ = t.note(
            "walk_mappings",
            pmd.walk_mappings(id, |_, bt| {
                steps += 1;
                if bt.block >= nr_data && bad.is_none() {
                    bad = Some(bt.block);
                }
                if steps > WALK_LIMIT {
                    return Err(Error::Corrupt);
                }
                Ok(())
            }),
        );
        t.steps += steps;
        let _ = bad; // A walk reports raw values; lookups are checked below.
        for v in [0u64, 1, 3, 299, 300, 597, 999, 1000, 1 << 30, u64::MAX >> 1] {
            if let Some(Some(r)) = t.note("find_block", pmd.find_block(id, v, true)) {
                check_block(r.block)?;
            }
            let _ = pmd.find_block(id, v, false);
        }
        for (b, e) in [(0u64, 64u64), (290, 320), (990, 1 << 20)] {
            if let Some(Some(r)) = t.note("find_mapped_range", pmd.find_mapped_range(id, b, e)) {
                check_block(r.pool_begin)?;
                if r.thin_end <= r.thin_begin {
                    return Err(format!("empty mapped range {r:?}"));
                }
                let len = r.thin_end - r.thin_begin;
                if r.pool_begin.checked_add(len).is_none_or(|e| e > nr_data) {
                    return Err(format!("mapped range {r:?} past the data device of {nr_data}"));
                }
            }
        }
        let _ = t.note("mapped_count", pmd.mapped_count(id));
        let _ = t.note("highest_mapped_block", pmd.highest_mapped_block(id));
    }
    if round > 0 {
        return Ok(());
    }
    // Writes: provision, overwrite (breaking sharing), remove.
    for (k, &id) in ids.iter().take(4).enumerate() {
        for v in [2u64, 3 + round, 600 + k as u64] {
            if let Some(Some(b)) = t.note("alloc_data_block", pmd.alloc_data_block()) {
                if b >= nr_data {
                    return Err(format!("allocated data block {b} on a device of {nr_data}"));
                }
                if t.note("insert_block", pmd.insert_block(id, v, b)).is_none() {
                    let _ = pmd.dec_data_range(b, b + 1);
                }
            }
        }
        let _ = t.note("remove_block", pmd.remove_block(id, 6));
        let _ = t.note("remove_range", pmd.remove_range(id, 30, 90));
        let _ = t.note("block_is_shared", pmd.block_is_shared(k as u64 * 7));
    }
    for &id in &ids {
        pmd.close_thin_device(id);
    }
    let _ = t.note("create_thin", pmd.create_thin(10 + round));
    let _ = t.note("create_snap", pmd.create_snap(20 + round, 0));
    let _ = t.note("create_snap", pmd.create_snap(30 + round, 1));
    let _ = t.note("delete_thin_device", pmd.delete_thin_device(3));
    let _ = t.note("delete_thin_device", pmd.delete_thin_device(20 + round));
    let _ = t.note("commit", pmd.commit());
    let tid = pmd.transaction_id().unwrap_or(0);
    let _ = t.note("set_transaction_id", pmd.set_transaction_id(tid, tid.wrapping_add(1)));
    if pmd.metadata_snap().ok().flatten().is_some() {
        let _ = t.note("release_metadata_snap", pmd.release_metadata_snap());
    } else {
        let _ = t.note("reserve_metadata_snap", pmd.reserve_metadata_snap());
    }
    let _ = t.note("delete_thin_device", pmd.delete_thin_device(0));
    let _ = t.note("commit", pmd.commit());
    Ok(())
}

/// A seeded list of 1..=3 mutations (what the corpus generator uses; the
/// proptest fuzzer draws the same raw picks itself).
pub fn random_mutations(rng: &mut Rng) -> Vec<Mutation> {
    let n = 1 + rng.below(3);
    (0..n)
        .map(|_| {
            Mutation::from_raw(
                rng.below(NR_MUTATIONS as u64) as u8,
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
            )
        })
        .collect()
}

/// The image bytes up to the last block holding anything (the rest of a
/// `META_BLOCKS` device is zeroes).
pub fn image_bytes(dev: &RamDisk) -> Vec<u8> {
    let last = (0..META_BLOCKS)
        .rev()
        .find(|&b| dev.block(b).iter().any(|&x| x != 0))
        .unwrap_or(0);
    let mut out = Vec::with_capacity((last as usize + 1) * BLOCK_SIZE);
    for b in 0..=last {
        out.extend_from_slice(&dev.block(b));
    }
    out
}

/// Whether some btree of the image reaches a node from itself (a loop: C
/// 7.3 follows it for ever, so the VM scenario skips such images on C).
pub fn has_cycle(dev: &RamDisk) -> bool {
    let sb = dev.block(0);
    let mut roots = vec![
        rd64(&sb, SB_DETAILS_ROOT),
        rd64(&sb, SB_DATA_SM + SMR_BITMAP_ROOT),
        rd64(&sb, SB_DATA_SM + SMR_REF_COUNT_ROOT),
        rd64(&sb, SB_META_SM + SMR_REF_COUNT_ROOT),
    ];
    let top = rd64(&sb, SB_MAPPING_ROOT);
    roots.push(top);
    let mut l = Layout::default();
    walk_tree(dev, top, Kind::Top, &mut l, &mut |v| roots.push(rd64(v, 0)));
    // Iterative DFS with an on-path set, bounded.
    let mut budget = 100_000u32;
    for r in roots {
        let mut path: Vec<(u64, usize)> = vec![(r, 0)];
        let mut on_path = BTreeSet::from([r]);
        while let Some(&mut (b, ref mut next)) = path.last_mut() {
            budget = match budget.checked_sub(1) {
                Some(x) => x,
                None => return true,
            };
            let d = if b < META_BLOCKS { dev.block(b) } else { vec![0; BLOCK_SIZE] };
            let (nr, max, vs) = (node_nr(&d), node_max(&d), node_vsize(&d));
            let sane = nr <= max && 32 + (8 + vs) * max <= BLOCK_SIZE && node_internal(&d);
            if !sane || *next >= nr {
                on_path.remove(&b);
                path.pop();
                continue;
            }
            let child = rd64(&d, val_off(&d, *next));
            *next += 1;
            if on_path.contains(&child) {
                return true;
            }
            on_path.insert(child);
            path.push((child, 0));
        }
    }
    false
}

/// One image of a hostile corpus.
pub struct CorpusImage {
    /// `NNN-kind` file stem.
    pub name: String,
    /// The image bytes (see [`image_bytes`]).
    pub bytes: Vec<u8>,
    /// Some btree loops (C hangs on such images).
    pub cycle: bool,
    /// What the host engine made of it ([`Verdict::class`]).
    pub host: String,
    /// The mutations applied, for the manifest.
    pub mutations: String,
}

/// `count` images with distinct (mutation kinds, host outcome) pairs,
/// deterministic from `seed`: first a few hand-made ones (a mapping node
/// pointing at itself, the case C hangs on; a subtree shared by two
/// devices; a reference count of 0; a bitmap calling used blocks free),
/// then seeded random mutations.
pub fn corpus(seed: u64, count: usize) -> Vec<CorpusImage> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let hand: [(u64, Vec<Mutation>); 5] = [
        (0, vec![Mutation::ChildSelf { node: 0, at: 0 }]),
        (0, vec![Mutation::SubtreeRoot { node: 0, at: 0, value: 0 }]),
        (1, vec![Mutation::RefCountValue { node: 0, at: 0, value: 0 }]),
        (0, vec![Mutation::BitmapFree { meta: true, bitmap: 0, first: 0, len: 63, value: 0 }]),
        (2, vec![Mutation::MappingValue { node: 0, at: 0, value: 7 * 4 }]),
    ];
    let bases: Vec<RamDisk> = (0..NR_BASES).map(base_image).collect();
    let mut rng = Rng::new(seed);
    let mut tries = 0usize;
    let mut i = 0usize;
    while out.len() < count && tries < count.saturating_mul(400) {
        let (base, muts) = match hand.get(i) {
            Some((b, m)) => (*b, m.clone()),
            None => (rng.below(NR_BASES), random_mutations(&mut rng)),
        };
        i += 1;
        tries += 1;
        let mut dev = bases[base as usize].clone();
        for m in &muts {
            mutate(&mut dev, m);
        }
        // A node loop in a tree the cycle finder does not follow (e.g. the
        // ChildSelf of the first hand-made image when node 0 is not a
        // mapping node) still counts as whatever the walk finds.
        let cycle = has_cycle(&dev);
        let host = match exercise(dev.clone()) {
            Ok(v) => v.class(),
            Err(e) => format!("inconsistent:{e}"),
        };
        let kinds: Vec<&str> = muts.iter().map(|m| m.name()).collect();
        let key = (kinds.join("+"), host.clone(), cycle);
        if !seen.insert(key) {
            continue;
        }
        out.push(CorpusImage {
            name: format!("{:03}-{}", out.len(), kinds.join("+")),
            bytes: image_bytes(&dev),
            cycle,
            host,
            mutations: format!("base {base} {muts:?}"),
        });
    }
    out
}
