//! Lookups (`dm_btree_lookup`, `dm_btree_lookup_next`,
//! `dm_btree_find_highest_key`, `dm_btree_find_lowest_key`): read-only
//! walks down a tree, through a transaction's read locks or, for
//! [`Btree::lookup_shared`], through the cached nodes of a shared block
//! manager.

use super::node::Node;
use super::{Btree, ValueType, BTREE_NODE_VALIDATOR, MAX_DEPTH};
use crate::pdata::block_device::BlockDevice;
use crate::pdata::block_manager::BlockManager;
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

impl<V: ValueType> Btree<V> {
    /// Follows one level from `block` to the leaf entry chosen by
    /// `lower_bound(key)`. Returns `(leaf key, value bytes via f)`.
    fn lookup_level<N: NodeReader, R>(
        src: &mut N,
        mut block: u64,
        key: u64,
        leaf_vsize: usize,
        f: impl Fn(&Node<'_>, u32) -> R,
    ) -> Result<Option<(u64, R)>> {
        enum Step<R> {
            None,
            Child(u64),
            Found(u64, R),
        }
        for _ in 0..MAX_DEPTH {
            let step = src.with_node(block, |data| {
                let n = Node::with_value_size(data, leaf_vsize)?;
                let i = n.lower_bound(key);
                Ok(if i < 0 || i >= n.nr_entries() as i64 {
                    Step::None
                } else if n.is_internal() {
                    Step::Child(n.value64(i as u32))
                } else {
                    Step::Found(n.key(i as u32), f(&n, i as u32))
                })
            })?;
            match step {
                Step::None => return Ok(None),
                Step::Child(c) => block = c,
                Step::Found(k, r) => return Ok(Some((k, r))),
            }
        }
        Err(Error::TooDeep)
    }

    /// `dm_btree_lookup`: the value stored under `keys` (one per level).
    pub fn lookup<T: Transaction>(
        &self,
        tm: &mut T,
        root: u64,
        keys: &[u64],
    ) -> Result<Option<V::Value>> {
        self.lookup_in(&mut Locking(tm), root, keys)
    }

    /// [`lookup`](Self::lookup) through a shared block manager: cached
    /// nodes only, `Err(WouldBlock)` where it would read or wait (see
    /// [`BlockManager::peek`] for what the caller must hold), with the
    /// node it stopped at in `miss`.
    pub fn lookup_shared<D: BlockDevice>(
        &self,
        bm: &BlockManager<D>,
        root: u64,
        keys: &[u64],
        miss: &mut Option<u64>,
    ) -> Result<Option<V::Value>> {
        let mut src = Peeking { bm, miss: None };
        let r = self.lookup_in(&mut src, root, keys);
        *miss = src.miss;
        r
    }

    fn lookup_in<N: NodeReader>(
        &self,
        src: &mut N,
        root: u64,
        keys: &[u64],
    ) -> Result<Option<V::Value>> {
        self.check_keys(keys)?;
        let mut block = root;
        let last = self.levels - 1;
        for (level, &key) in keys.iter().enumerate() {
            let level = level as u32;
            if level == last {
                let r = Self::lookup_level(src, block, key, V::SIZE, |n, i| V::unpack(n.value(i)))?;
                return Ok(match r {
                    Some((k, v)) if k == key => Some(v),
                    _ => None,
                });
            }
            match Self::lookup_level(src, block, key, 8, |n, i| n.value64(i))? {
                Some((k, sub)) if k == key => block = sub,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// `dm_btree_lookup_next_single`, without recursion: C descends into
    /// child `i` (the one that may hold `key`) and, if that subtree has
    /// nothing `>= key`, tries child `i + 1` once per level. The pending
    /// "try next" children are kept on a small heap stack.
    fn lookup_next_single<T: Transaction>(
        tm: &mut T,
        root: u64,
        key: u64,
    ) -> Result<Option<(u64, V::Value)>> {
        enum Step<X> {
            None,
            Children(u64, Option<u64>),
            Found(u64, X),
        }
        let mut fallbacks: crate::pdata::alloc::Vec<u64> = crate::pdata::alloc::Vec::new();
        let mut block = root;
        let mut steps = 0usize;
        loop {
            steps += 1;
            if steps > MAX_DEPTH * MAX_DEPTH {
                return Err(Error::TooDeep);
            }
            let l = tm.read_lock(block, &BTREE_NODE_VALIDATOR)?;
            let step = match Node::with_value_size(tm.bm().data(&l), V::SIZE) {
                Err(e) => Err(e),
                Ok(n) => {
                    let nr = n.nr_entries() as i64;
                    if n.is_internal() {
                        let i = n.lower_bound(key).max(0);
                        if i >= nr {
                            Ok(Step::None)
                        } else {
                            let next = if i < nr - 1 {
                                Some(n.value64(i as u32 + 1))
                            } else {
                                None
                            };
                            Ok(Step::Children(n.value64(i as u32), next))
                        }
                    } else {
                        let i = n.upper_bound(key);
                        if i < 0 || i >= nr {
                            Ok(Step::None)
                        } else {
                            Ok(Step::Found(n.key(i as u32), V::unpack(n.value(i as u32))))
                        }
                    }
                }
            };
            tm.bm().unlock(l);
            match step? {
                Step::Found(k, v) => return Ok(Some((k, v))),
                Step::Children(c, next) => {
                    if fallbacks.len() >= MAX_DEPTH {
                        return Err(Error::TooDeep);
                    }
                    // An empty marker keeps one slot per level.
                    fallbacks.push(next.unwrap_or(u64::MAX))?;
                    block = c;
                }
                Step::None => loop {
                    match fallbacks.pop() {
                        None => return Ok(None),
                        Some(u64::MAX) => continue,
                        Some(n) => {
                            // The fallback of this level is used up; push a
                            // marker so deeper levels still pair up.
                            fallbacks.push(u64::MAX)?;
                            block = n;
                            break;
                        }
                    }
                },
            }
        }
    }

    /// `dm_btree_lookup_next`: the first entry whose last-level key is
    /// `>= keys[last]`, within the subtree selected by the other keys
    /// (which must match exactly). Returns `(key, value)`.
    pub fn lookup_next<T: Transaction>(
        &self,
        tm: &mut T,
        root: u64,
        keys: &[u64],
    ) -> Result<Option<(u64, V::Value)>> {
        self.check_keys(keys)?;
        let mut block = root;
        let last = keys.len() - 1;
        for &key in &keys[..last] {
            match Self::lookup_level(&mut Locking(&mut *tm), block, key, 8, |n, i| n.value64(i))? {
                Some((k, sub)) if k == key => block = sub,
                _ => return Ok(None),
            }
        }
        Self::lookup_next_single(tm, block, keys[last])
    }

    fn find_key<T: Transaction>(
        tm: &mut T,
        mut block: u64,
        highest: bool,
        leaf_vsize: usize,
    ) -> Result<Option<(u64, u64)>> {
        for _ in 0..MAX_DEPTH {
            let l = tm.read_lock(block, &BTREE_NODE_VALIDATOR)?;
            let r = match Node::with_value_size(tm.bm().data(&l), leaf_vsize) {
                Err(e) => Err(e),
                Ok(n) => {
                    let nr = n.nr_entries();
                    if nr == 0 {
                        Ok(None)
                    } else {
                        let i = if highest { nr - 1 } else { 0 };
                        let v = if n.is_internal() || leaf_vsize == 8 {
                            n.value64(i)
                        } else {
                            0
                        };
                        Ok(Some((n.key(i), v, n.is_internal())))
                    }
                }
            };
            tm.bm().unlock(l);
            match r? {
                None => return Ok(None),
                Some((k, v, internal)) => {
                    if !internal {
                        return Ok(Some((k, v)));
                    }
                    block = v;
                }
            }
        }
        Err(Error::TooDeep)
    }

    fn find_keys<T: Transaction>(
        &self,
        tm: &mut T,
        root: u64,
        highest: bool,
        out: &mut [u64],
    ) -> Result<usize> {
        let mut block = root;
        let mut count = 0;
        for level in 0..self.levels {
            let vs = Self::value_size(self.kind(level));
            match Self::find_key(tm, block, highest, vs)? {
                None => break,
                Some((k, v)) => {
                    if let Some(o) = out.get_mut(level as usize) {
                        *o = k;
                    }
                    block = v;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// `dm_btree_find_highest_key`: fills `out[level]` with the highest key
    /// of each level along the rightmost path; returns how many levels had
    /// a key (0 for an empty tree).
    pub fn find_highest_keys<T: Transaction>(
        &self,
        tm: &mut T,
        root: u64,
        out: &mut [u64],
    ) -> Result<usize> {
        self.find_keys(tm, root, true, out)
    }

    /// `dm_btree_find_lowest_key`, see [`Self::find_highest_keys`].
    pub fn find_lowest_keys<T: Transaction>(
        &self,
        tm: &mut T,
        root: u64,
        out: &mut [u64],
    ) -> Result<usize> {
        self.find_keys(tm, root, false, out)
    }

    /// The highest key of a single-level tree, `None` if empty.
    pub fn find_highest_key<T: Transaction>(&self, tm: &mut T, root: u64) -> Result<Option<u64>> {
        let mut k = [0u64; 1];
        Ok(
            match Self::find_key(tm, root, true, Self::value_size(self.kind(0)))? {
                Some((key, _)) => {
                    k[0] = key;
                    Some(k[0])
                }
                None => None,
            },
        )
    }

    /// The lowest key of a single-level tree, `None` if empty.
    pub fn find_lowest_key<T: Transaction>(&self, tm: &mut T, root: u64) -> Result<Option<u64>> {
        Ok(Self::find_key(tm, root, false, Self::value_size(self.kind(0)))?.map(|(k, _)| k))
    }
}

/// Where a lookup reads its nodes.
trait NodeReader {
    /// Calls `f` with the data of node `b`.
    fn with_node<R>(&mut self, b: u64, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R>;
}

/// Through a transaction: read locks, a read on a miss where it may.
struct Locking<'a, T>(&'a mut T);

impl<T: Transaction> NodeReader for Locking<'_, T> {
    fn with_node<R>(&mut self, b: u64, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        let l = self.0.read_lock(b, &BTREE_NODE_VALIDATOR)?;
        let r = f(self.0.bm().data(&l));
        self.0.bm().unlock(l);
        r
    }
}

/// Through a shared block manager: cached nodes only; the node it found
/// uncached in `miss`.
struct Peeking<'a, D: BlockDevice> {
    bm: &'a BlockManager<D>,
    miss: Option<u64>,
}

impl<D: BlockDevice> NodeReader for Peeking<'_, D> {
    fn with_node<R>(&mut self, b: u64, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        match self.bm.peek(b, &BTREE_NODE_VALIDATOR) {
            Ok(data) => f(data),
            Err(e) => {
                if e == Error::WouldBlock {
                    self.miss = Some(b);
                }
                Err(e)
            }
        }
    }
}
