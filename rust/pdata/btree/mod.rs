//! The persistent btree (`dm-btree.c`, `dm-btree-remove.c`,
//! `dm-btree-spine.c`), byte-compatible with the kernel's.
//!
//! A btree maps `u64` keys to fixed-size values. A *multi-level* btree with
//! `levels = n` takes `n` keys per entry: the values of levels `0..n-1` are
//! the roots of the next level's trees (le64), only the last level holds
//! the real values (the thin mapping tree is `[dev_id, virtual block]`).
//!
//! Every update goes top-down through a *shadow spine*: each node on the
//! path is shadowed (copy-on-write via the [`Transaction`]) and the parent
//! patched to point to the copy, holding at most two write locks (parent and
//! child) plus the siblings a split or rebalance touches. Updates return the
//! new root; the caller stores it. A node is split when full on the way down
//! (`btree_split_beneath` at the root, otherwise rebalance into a sibling with
//! room or split one node into two or two into three, as the C code does), and
//! refilled on the way down for removal (`rebalance2`/`rebalance3`), so no
//! operation ever walks back up.
//!
//! Values are described by a [`ValueType`]: size, pack/unpack, and `inc` /
//! `dec` / `equal` hooks run when a shared node is shadowed (its values get
//! one more reference), when a value is overwritten, removed, or its tree
//! deleted. Hooks get a caller-chosen context (for example the data space
//! map for block-time values).
//!
//! Not-found is `Ok(None)` / a `false` flag, never an error. Every update,
//! removals included, returns a new root even when nothing changed (the
//! path was shadowed): always store it.
//!
//! Lookups run over any [`Transaction`]; through
//! `TransactionManager::non_blocking` they use only cached nodes and fail
//! with `Error::WouldBlock` on a miss or a write-locked node (the
//! target's `map()` path; it defers to a worker then).
//!
//! # Performance
//!
//! Searches in a node narrow the window by interpolation before the binary
//! search (same results; 2-3 cache lines per node instead of about 8), and
//! a cache hit compares validators by pointer. `tests/pdata_bench.rs` on an
//! idle machine, 2-level tree `[dev, block] -> u64`, 16 Ki-block cache:
//!
//! ```text
//! sequential, 1M keys:  2.3M inserts/s, 6.2M lookups/s
//! random, 100k keys:    1.8M inserts/s, 4.7M lookups/s
//! random, 1M keys:      1.0M inserts/s, 1.5M lookups/s
//! data new_block + insert (sequential): 1.3M/s
//! ```

mod insert;
mod lookup;
pub mod node;
mod remove;
mod spine;
mod walk;

use core::marker::PhantomData;

use crate::pdata::block_manager::{ReadLock, WriteLock};
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;
pub use node::{calc_max_entries, Node, NodeMut, BTREE_NODE_VALIDATOR, INTERNAL_NODE, LEAF_NODE};

/// Deepest path (per level) any operation follows before deciding the
/// on-disk tree is corrupt (a cycle). A 4 KiB-node tree of depth 64 cannot
/// exist on a device of 2^64 blocks.
pub const MAX_DEPTH: usize = 64;

/// How values of a btree are stored and reference counted
/// (`struct dm_btree_value_type`).
pub trait ValueType {
    /// Bytes per value on disk.
    const SIZE: usize;
    /// The unpacked value.
    type Value: Copy + PartialEq;
    /// What the hooks need (for example `DiskSpaceMap`); `()` if nothing.
    type Context;

    /// Unpacks a value. `b` is exactly `SIZE` bytes for values read from a
    /// checked node; implementations must not panic on shorter input.
    fn unpack(b: &[u8]) -> Self::Value;

    /// Packs a value into `out` (`SIZE` bytes).
    fn pack(v: &Self::Value, out: &mut [u8]);

    /// Takes one more reference to whatever the value refers to.
    fn inc<T: Transaction>(_ctx: &mut Self::Context, _tm: &mut T, _v: &Self::Value) -> Result<()> {
        Ok(())
    }

    /// Drops one reference to whatever the value refers to.
    fn dec<T: Transaction>(_ctx: &mut Self::Context, _tm: &mut T, _v: &Self::Value) -> Result<()> {
        Ok(())
    }

    /// [`Self::dec`] of each of `vs` (a range removal's run of a leaf);
    /// a value type may group them.
    fn dec_many<T: Transaction>(ctx: &mut Self::Context, tm: &mut T, vs: &[Self::Value]) -> Result<()> {
        for v in vs {
            Self::dec(ctx, tm, v)?;
        }
        Ok(())
    }

    /// Whether overwriting `a` with `b` may skip `dec(a)` (C `equal`).
    fn equal(a: &Self::Value, b: &Self::Value) -> bool {
        a == b
    }
}

fn le64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    let n = b.len().min(8);
    x[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(x)
}

fn le32(b: &[u8]) -> u32 {
    let mut x = [0u8; 4];
    let n = b.len().min(4);
    x[..n].copy_from_slice(&b[..n]);
    u32::from_le_bytes(x)
}

/// A plain le64 value with no reference counting.
pub struct U64Value;

impl ValueType for U64Value {
    const SIZE: usize = 8;
    type Value = u64;
    type Context = ();
    fn unpack(b: &[u8]) -> u64 {
        le64(b)
    }
    fn pack(v: &u64, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..8) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// A plain le32 value with no reference counting (the space maps'
/// ref-count tree).
pub struct U32Value;

impl ValueType for U32Value {
    const SIZE: usize = 4;
    type Value = u32;
    type Context = ();
    fn unpack(b: &[u8]) -> u32 {
        le32(b)
    }
    fn pack(v: &u32, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..4) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// `N` opaque bytes with no reference counting (device details, ...).
pub struct Bytes<const N: usize>;

impl<const N: usize> ValueType for Bytes<N> {
    const SIZE: usize = N;
    type Value = [u8; N];
    type Context = ();
    fn unpack(b: &[u8]) -> [u8; N] {
        let mut x = [0u8; N];
        let n = b.len().min(N);
        x[..n].copy_from_slice(&b[..n]);
        x
    }
    fn pack(v: &[u8; N], out: &mut [u8]) {
        let n = out.len().min(N);
        out[..n].copy_from_slice(&v[..n]);
    }
}

/// A le64 metadata block number that holds a reference (`init_le64_type`):
/// `inc`/`dec` adjust the block's metadata reference count. The values of
/// the upper levels of a multi-level btree are of this type.
pub struct BlockRef;

impl ValueType for BlockRef {
    const SIZE: usize = 8;
    type Value = u64;
    type Context = ();
    fn unpack(b: &[u8]) -> u64 {
        le64(b)
    }
    fn pack(v: &u64, out: &mut [u8]) {
        U64Value::pack(v, out)
    }
    fn inc<T: Transaction>(_ctx: &mut (), tm: &mut T, v: &u64) -> Result<()> {
        tm.inc(*v)
    }
    fn dec<T: Transaction>(_ctx: &mut (), tm: &mut T, v: &u64) -> Result<()> {
        tm.dec(*v)
    }
}

/// Which value type a tree level holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// An upper level of a multi-level tree: le64 subtree roots ([`BlockRef`]).
    Inner,
    /// The last level: the tree's `V`.
    Leaf,
}

/// A btree description (`struct dm_btree_info` without the tm): the number
/// of levels and, through `V`, the value type. Holds no state; every
/// operation takes the transaction and the root.
pub struct Btree<V: ValueType> {
    levels: u32,
    _v: PhantomData<fn() -> V>,
}

impl<V: ValueType> Clone for Btree<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V: ValueType> Copy for Btree<V> {}

/// A lock held by a btree algorithm: either kind.
pub(crate) enum Lock<'a> {
    R(&'a ReadLock),
    W(&'a WriteLock),
}

pub(crate) fn lock_data<'b, T: Transaction>(tm: &'b mut T, l: &Lock<'_>) -> &'b [u8] {
    match l {
        Lock::R(r) => tm.bm().data(r),
        Lock::W(w) => tm.bm().data_w(w),
    }
}

impl<V: ValueType> Btree<V> {
    /// A tree with `levels` key levels (at least 1).
    pub const fn new(levels: u32) -> Self {
        Btree {
            levels: if levels == 0 { 1 } else { levels },
            _v: PhantomData,
        }
    }

    /// Number of key levels.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    pub(crate) fn kind(&self, level: u32) -> Kind {
        if level + 1 >= self.levels {
            Kind::Leaf
        } else {
            Kind::Inner
        }
    }

    pub(crate) fn value_size(kind: Kind) -> usize {
        match kind {
            Kind::Inner => 8,
            Kind::Leaf => V::SIZE,
        }
    }

    fn check_keys(&self, keys: &[u64]) -> Result<()> {
        if keys.len() != self.levels as usize {
            return Err(Error::Invalid);
        }
        Ok(())
    }

    /// `dm_btree_empty`: allocates an empty leaf for a level holding values
    /// of `value_size` bytes and returns its block.
    pub(crate) fn empty_raw<T: Transaction>(tm: &mut T, value_size: usize) -> Result<u64> {
        let w = tm.new_block(&BTREE_NODE_VALIDATOR)?;
        let r = NodeMut::init(tm.bm().data_mut(&w), LEAF_NODE, value_size).map(|_| ());
        let b = w.location();
        tm.bm().unlock_write(w);
        r.map(|_| b)
    }

    /// `dm_btree_empty`: creates an empty tree, returning its root.
    pub fn empty<T: Transaction>(&self, tm: &mut T) -> Result<u64> {
        Self::empty_raw(tm, Self::value_size(self.kind(0)))
    }

    /// Increments what every entry of a node references (`inc_children`):
    /// children of an internal node, subtree roots of an inner-level leaf,
    /// or `V::inc` of every value of a last-level leaf.
    pub(crate) fn inc_children<T: Transaction>(
        tm: &mut T,
        ctx: &mut V::Context,
        l: &Lock<'_>,
        kind: Kind,
    ) -> Result<()> {
        let (internal, nr) = {
            let n = Node::new(lock_data(tm, l))?;
            (n.is_internal(), n.nr_entries())
        };
        for i in 0..nr {
            if internal || kind == Kind::Inner {
                let b = Node::new(lock_data(tm, l))?.value64(i);
                tm.inc(b)?;
            } else {
                let v = {
                    let n = Node::with_value_size(lock_data(tm, l), V::SIZE)?;
                    V::unpack(n.value(i))
                };
                V::inc(ctx, tm, &v)?;
            }
        }
        Ok(())
    }

    /// `dm_btree_insert`: inserts or overwrites the value under `keys`,
    /// returning the new root. An overwrite calls `V::dec` on the old value
    /// unless `V::equal` says it is the same.
    pub fn insert<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        root: u64,
        keys: &[u64],
        value: &V::Value,
    ) -> Result<u64> {
        self.insert_notify(tm, ctx, root, keys, value)
            .map(|(r, _)| r)
    }

    /// `dm_btree_insert_notify`: like [`Self::insert`], also telling whether
    /// the key was new (`true`) or overwritten.
    pub fn insert_notify<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        root: u64,
        keys: &[u64],
        value: &V::Value,
    ) -> Result<(u64, bool)> {
        self.check_keys(keys)?;
        insert::insert(self, tm, ctx, root, keys, value)
    }

    /// `dm_btree_remove`: removes the entry under `keys`, calling `V::dec`
    /// on its value. Returns the new root and whether the key was there.
    /// The root changes even when the key is absent (the path was shadowed):
    /// always store the returned root.
    pub fn remove<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        root: u64,
        keys: &[u64],
    ) -> Result<(u64, bool)> {
        self.check_keys(keys)?;
        remove::remove(self, tm, ctx, root, keys)
    }

    /// `dm_btree_remove_leaves`: removes the run of consecutive last-level
    /// keys starting at `keys[last]` that are `< end_key` (stops at the
    /// first gap, as the C function does). Returns the new root and the
    /// number of entries removed; `keys[last]` is advanced.
    pub fn remove_leaves<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        root: u64,
        keys: &mut [u64],
        end_key: u64,
    ) -> Result<(u64, u64)> {
        self.check_keys(keys)?;
        remove::remove_leaves(self, tm, ctx, root, keys, end_key, u64::MAX)
    }

    /// Removes every last-level entry with key in `begin..end` under the
    /// upper-level keys `prefix` (`levels - 1` of them), as
    /// `__remove_range` in dm-thin-metadata.c does with `lookup_next` +
    /// `remove_leaves`. Returns the new root and the number removed.
    pub fn remove_range<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        root: u64,
        prefix: &[u64],
        begin: u64,
        end: u64,
    ) -> Result<(u64, u64)> {
        let (root, count, _) = self.remove_range_at_most(tm, ctx, root, prefix, begin, end, u64::MAX)?;
        Ok((root, count))
    }

    /// [`Self::remove_range`] that stops after `max` entries: returns the
    /// new root, the number removed, and the key to go on from (`end` when
    /// nothing in range is left).
    #[allow(clippy::too_many_arguments)]
    pub fn remove_range_at_most<T: Transaction>(
        &self,
        tm: &mut T,
        ctx: &mut V::Context,
        mut root: u64,
        prefix: &[u64],
        begin: u64,
        end: u64,
        max: u64,
    ) -> Result<(u64, u64, u64)> {
        if prefix.len() + 1 != self.levels as usize || prefix.len() > 15 {
            return Err(Error::Invalid);
        }
        let mut keys = [0u64; 16];
        let n = prefix.len() + 1;
        for (k, p) in keys.iter_mut().zip(prefix) {
            *k = *p;
        }
        let mut begin = begin;
        let mut total = 0;
        while begin < end {
            if total >= max {
                return Ok((root, total, begin));
            }
            keys[n - 1] = begin;
            let next = match self.lookup_next(tm, root, &keys[..n])? {
                None => break,
                Some((k, _)) => k,
            };
            if next >= end {
                break;
            }
            keys[n - 1] = next;
            self.check_keys(&keys[..n])?;
            let (r, count) = remove::remove_leaves(self, tm, ctx, root, &mut keys[..n], end, max - total)?;
            root = r;
            total += count;
            begin = keys[n - 1];
            if count == 0 {
                // Cannot happen for a consistent tree; avoid looping forever.
                return Err(Error::Invalid);
            }
        }
        Ok((root, total, end))
    }

    /// `dm_btree_del`: drops this tree's reference to `root`, and, for each
    /// node no longer referenced, to its children (calling `V::dec` on the
    /// values of unshared leaves).
    pub fn del<T: Transaction>(&self, tm: &mut T, ctx: &mut V::Context, root: u64) -> Result<()> {
        walk::del(self, tm, ctx, root)
    }

    /// Calls `f(keys, value)` for every entry in key order (`keys` has one
    /// key per level). Stops at the first error `f` returns.
    pub fn walk<T: Transaction, F>(&self, tm: &mut T, root: u64, f: F) -> Result<()>
    where
        F: FnMut(&[u64], &V::Value) -> Result<()>,
    {
        walk::walk(self, tm, root, f)
    }

    /// Number of entries (all levels), by walking the tree.
    pub fn count<T: Transaction>(&self, tm: &mut T, root: u64) -> Result<u64> {
        let mut n = 0u64;
        self.walk(tm, root, |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }
}

/// Unlocks a write lock if present (cleanup helper).
pub(crate) fn unlock_w<T: Transaction>(tm: &mut T, l: Option<WriteLock>) {
    if let Some(l) = l {
        tm.bm().unlock_write(l);
    }
}
