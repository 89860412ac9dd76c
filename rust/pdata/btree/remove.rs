//! Removal (`dm-btree-remove.c`).
//!
//! No node but the root may fall below a minimum fill, and only top-down
//! passes are allowed, so on the way down every child about to be entered is
//! first rebalanced with its siblings (which are shadowed for it, taking
//! extra references on their children when they were shared):
//!
//! - a root with a single child absorbs that child;
//! - a child at an edge is rebalanced (or merged) with its one sibling
//!   (`rebalance2`);
//! - a child with two siblings is rebalanced with both, or the centre node
//!   is dissolved into its neighbours when the three are sparse enough
//!   (`rebalance3`).
//!
//! Thresholds and entry movement follow the C code exactly so trees end up
//! shaped as the kernel would shape them, with one exception: a range
//! removal (`remove_leaves`) takes a run of entries from the leaf it walked
//! to, down to a third of the leaf, where C takes one entry per walk (see
//! `remove_one`). Every node keeps the fill `thin_check` requires either way.

use super::insert::shadow_child;
use super::node::{copy_entries_mut, Node, NodeMut};
use super::spine::ShadowSpine;
use super::{BlockRef, Btree, Kind, Lock, ValueType, BTREE_NODE_VALIDATOR, MAX_DEPTH};
use crate::pdata::block_manager::WriteLock;
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

fn node_shift(n: &mut NodeMut<'_>, shift: i64) -> Result<()> {
    let nr = n.nr_entries() as i64;
    if shift < 0 {
        let s = -shift;
        if s > nr {
            return Err(Error::NrEntriesTooSmall);
        }
        n.move_entries(0, s as u32, (nr - s) as u32);
    } else {
        if nr + shift > n.max_entries() as i64 {
            return Err(Error::NrEntriesTooLarge);
        }
        n.move_entries(shift as u32, 0, nr as u32);
    }
    Ok(())
}

fn node_copy(left: &mut NodeMut<'_>, right: &mut NodeMut<'_>, shift: i64) -> Result<()> {
    let nr_left = left.nr_entries() as i64;
    if left.value_size() != right.value_size() {
        return Err(Error::ValueSize);
    }
    if shift < 0 {
        let s = -shift;
        if nr_left + s > left.max_entries() as i64 {
            return Err(Error::NrEntriesTooLarge);
        }
        copy_entries_mut(left, nr_left as u32, right, 0, s as u32)
    } else {
        if shift > right.max_entries() as i64 || shift > nr_left {
            return Err(Error::NrEntriesTooLarge);
        }
        copy_entries_mut(right, 0, left, (nr_left - shift) as u32, shift as u32)
    }
}

/// Moves `count` entries from the end of `left` to the front of `right`
/// (negative: from the front of `right` to the end of `left`).
fn shift(left: &mut NodeMut<'_>, right: &mut NodeMut<'_>, count: i64) -> Result<()> {
    let nr_left = left.nr_entries() as i64;
    let nr_right = right.nr_entries() as i64;
    let max = left.max_entries() as i64;
    if max != right.max_entries() as i64 {
        return Err(Error::MaxEntries);
    }
    let nl = nr_left - count;
    let nr = nr_right + count;
    if nl < 0 || nl > max || nr < 0 || nr > max {
        return Err(Error::Invalid);
    }
    if count == 0 {
        return Ok(());
    }
    if count > 0 {
        node_shift(right, count)?;
        node_copy(left, right, count)?;
    } else {
        node_copy(left, right, count)?;
        node_shift(right, count)?;
    }
    left.set_nr_entries(nl as u32);
    right.set_nr_entries(nr as u32);
    Ok(())
}

fn merge_threshold(n: &NodeMut<'_>) -> u32 {
    n.max_entries() / 3
}

struct Child {
    index: u32,
    lock: WriteLock,
}

fn init_child<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    parent: &WriteLock,
    index: u32,
    kind: Kind,
) -> Result<Child> {
    let lock = shadow_child::<V, T>(tm, ctx, parent, index, kind)?;
    Ok(Child { index, lock })
}

fn exit_child<T: Transaction>(tm: &mut T, c: Child) {
    tm.bm().unlock_write(c.lock);
}

fn rebalance2_inner<T: Transaction>(
    tm: &mut T,
    parent: &WriteLock,
    l: &Child,
    r: &Child,
) -> Result<()> {
    enum Outcome {
        Merged,
        Shifted(u64),
    }
    let out = {
        let (ld, rd) = tm.bm().data_mut2(&l.lock, &r.lock)?;
        let mut left = NodeMut::new(ld)?;
        let mut right = NodeMut::new(rd)?;
        let nr_left = left.nr_entries();
        let nr_right = right.nr_entries();
        // Ensure the number of entries in each child will be greater than
        // or equal to (max_entries / 3 + 1), so no matter which child is
        // used for removal, the number will still be not less than
        // (max_entries / 3).
        let threshold = 2 * (merge_threshold(&left) + 1);
        if nr_left + nr_right < threshold {
            node_copy(&mut left, &mut right, -(nr_right as i64))?;
            left.set_nr_entries(nr_left + nr_right);
            Outcome::Merged
        } else {
            let target_left = (nr_left + nr_right) / 2;
            shift(&mut left, &mut right, nr_left as i64 - target_left as i64)?;
            Outcome::Shifted(right.key(0))
        }
    };
    match out {
        Outcome::Merged => {
            NodeMut::new(tm.bm().data_mut(parent))?.delete_at(r.index)?;
            // Decrement the right block, but not its children: they are
            // still referenced by left.
            tm.dec(r.lock.location())
        }
        Outcome::Shifted(k) => {
            NodeMut::new(tm.bm().data_mut(parent))?.set_key(r.index, k);
            Ok(())
        }
    }
}

fn rebalance2<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &ShadowSpine,
    kind: Kind,
    left_index: u32,
) -> Result<()> {
    let parent = s.current()?;
    let left = init_child::<V, T>(tm, ctx, parent, left_index, kind)?;
    let right = match init_child::<V, T>(tm, ctx, parent, left_index + 1, kind) {
        Ok(r) => r,
        Err(e) => {
            exit_child(tm, left);
            return Err(e);
        }
    };
    let r = rebalance2_inner(tm, parent, &left, &right);
    exit_child(tm, left);
    exit_child(tm, right);
    r
}

/// Dumps as many entries from the centre as fit into left, the rest into
/// right, removes the centre, then `rebalance2`s left and right.
fn delete_center_node<T: Transaction>(
    tm: &mut T,
    parent: &WriteLock,
    l: &Child,
    c: &Child,
    r: &mut Child,
) -> Result<()> {
    let rk0 = {
        let (ld, cd, rd) = tm.bm().data_mut3(&l.lock, &c.lock, &r.lock)?;
        let mut left = NodeMut::new(ld)?;
        let mut center = NodeMut::new(cd)?;
        let mut right = NodeMut::new(rd)?;
        let max = left.max_entries();
        let nr_left = left.nr_entries();
        let nr_center = center.nr_entries();
        let nr_right = right.nr_entries();
        let sh = (max - nr_left).min(nr_center);
        node_copy(&mut left, &mut center, -(sh as i64))?;
        left.set_nr_entries(nr_left + sh);
        if sh != nr_center {
            let sh2 = nr_center - sh;
            if nr_right + sh2 > max {
                return Err(Error::NrEntriesTooLarge);
            }
            node_shift(&mut right, sh2 as i64)?;
            node_copy(&mut center, &mut right, sh2 as i64)?;
            right.set_nr_entries(nr_right + sh2);
        }
        right.key(0)
    };
    {
        let mut p = NodeMut::new(tm.bm().data_mut(parent))?;
        p.set_key(r.index, rk0);
        p.delete_at(c.index)?;
    }
    r.index -= 1;
    tm.dec(c.lock.location())?;
    rebalance2_inner(tm, parent, l, r)
}

/// Redistributes entries among three siblings.
fn redistribute3<T: Transaction>(
    tm: &mut T,
    parent: &WriteLock,
    l: &Child,
    c: &Child,
    r: &Child,
) -> Result<()> {
    let (ck0, rk0) = {
        let (ld, cd, rd) = tm.bm().data_mut3(&l.lock, &c.lock, &r.lock)?;
        let mut left = NodeMut::new(ld)?;
        let mut center = NodeMut::new(cd)?;
        let mut right = NodeMut::new(rd)?;
        let max = left.max_entries() as i64;
        let mut nr_left = left.nr_entries() as i64;
        let nr_center = center.nr_entries() as i64;
        let mut nr_right = right.nr_entries() as i64;
        let total = nr_left + nr_center + nr_right;
        let target_right = total / 3;
        let remainder = (target_right * 3 != total) as i64;
        let target_left = target_right + remainder;
        if target_left > max || target_right > max {
            return Err(Error::NrEntriesTooLarge);
        }
        if nr_left < nr_right {
            let mut s = nr_left - target_left;
            if s < 0 && nr_center < -s {
                // not enough in central node
                shift(&mut left, &mut center, -nr_center)?;
                s += nr_center;
                shift(&mut left, &mut right, s)?;
                nr_right += s;
            } else {
                shift(&mut left, &mut center, s)?;
            }
            shift(&mut center, &mut right, target_right - nr_right)?;
        } else {
            let mut s = target_right - nr_right;
            if s > 0 && nr_center < s {
                // not enough in central node
                shift(&mut center, &mut right, nr_center)?;
                s -= nr_center;
                shift(&mut left, &mut right, s)?;
                nr_left -= s;
            } else {
                shift(&mut center, &mut right, s)?;
            }
            shift(&mut left, &mut center, nr_left - target_left)?;
        }
        (center.key(0), right.key(0))
    };
    let mut p = NodeMut::new(tm.bm().data_mut(parent))?;
    p.set_key(c.index, ck0);
    p.set_key(r.index, rk0);
    Ok(())
}

fn rebalance3_inner<T: Transaction>(
    tm: &mut T,
    parent: &WriteLock,
    l: &Child,
    c: &Child,
    r: &mut Child,
) -> Result<()> {
    let (total, threshold) = {
        let hdr = |tm: &mut T, l: &WriteLock| -> Result<(u32, u32)> {
            let n = Node::new(tm.bm().data_w(l))?;
            Ok((n.nr_entries(), n.max_entries()))
        };
        let (nl, ml) = hdr(tm, &l.lock)?;
        let (nc, mc) = hdr(tm, &c.lock)?;
        let (nr, mr) = hdr(tm, &r.lock)?;
        if ml != mc || mc != mr {
            return Err(Error::MaxEntries);
        }
        (nl + nc + nr, (ml / 3) * 4 + 1)
    };
    if total < threshold {
        delete_center_node(tm, parent, l, c, r)
    } else {
        redistribute3(tm, parent, l, c, r)
    }
}

fn rebalance3<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &ShadowSpine,
    kind: Kind,
    left_index: u32,
) -> Result<()> {
    let parent = s.current()?;
    let left = init_child::<V, T>(tm, ctx, parent, left_index, kind)?;
    let center = match init_child::<V, T>(tm, ctx, parent, left_index + 1, kind) {
        Ok(c) => c,
        Err(e) => {
            exit_child(tm, left);
            return Err(e);
        }
    };
    let mut right = match init_child::<V, T>(tm, ctx, parent, left_index + 2, kind) {
        Ok(r) => r,
        Err(e) => {
            exit_child(tm, left);
            exit_child(tm, center);
            return Err(e);
        }
    };
    let r = rebalance3_inner(tm, parent, &left, &center, &mut right);
    exit_child(tm, left);
    exit_child(tm, center);
    exit_child(tm, right);
    r
}

/// Returns `false` if `key` is below every key of the current node.
fn rebalance_children<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &ShadowSpine,
    kind: Kind,
    key: u64,
) -> Result<bool> {
    let (nr, i, only_child) = {
        let n = Node::new(tm.bm().data_w(s.current()?))?;
        (n.nr_entries(), n.lower_bound(key), n.value64(0))
    };
    if nr == 1 {
        // The current node has one child: pull the child's contents up.
        let b = only_child;
        let is_shared = tm.is_shared(b)?;
        let child = tm.read_lock(b, &BTREE_NODE_VALIDATOR)?;
        if is_shared {
            if let Err(e) = Btree::<V>::inc_children(tm, ctx, &Lock::R(&child), kind) {
                tm.bm().unlock(child);
                return Err(e);
            }
        }
        {
            let cur = s.current()?;
            let (src, dst) = tm.bm().data_rw(&child, cur)?;
            dst.copy_from_slice(src);
        }
        tm.bm().unlock(child);
        tm.dec(b)?;
        return Ok(true);
    }
    if i < 0 {
        return Ok(false);
    }
    let i = i as u32;
    let has_left_sibling = i > 0;
    let has_right_sibling = i + 1 < nr;
    if !has_left_sibling {
        rebalance2::<V, T>(tm, ctx, s, kind, i)?;
    } else if !has_right_sibling {
        rebalance2::<V, T>(tm, ctx, s, kind, i - 1)?;
    } else {
        rebalance3::<V, T>(tm, ctx, s, kind, i - 1)?;
    }
    Ok(true)
}

fn do_leaf(n: &Node<'_>, key: u64, index: &mut i64) -> bool {
    let i = n.lower_bound(key);
    if i < 0 || i >= n.nr_entries() as i64 || n.key(i as u32) != key {
        return false;
    }
    *index = i;
    true
}

/// How the walk down ends at the leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LeafMode {
    /// `remove_raw`: the key must be present.
    Exact,
    /// `remove_nearest`: any position (`lower_bound`).
    Nearest,
}

/// `remove_raw` / `remove_nearest`: walks one level down to the leaf for
/// `key`, rebalancing on the way. Returns `false` if the key is not there
/// (`Exact`) or the walk found nothing (`Nearest`).
fn remove_raw<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    mut root: u64,
    key: u64,
    index: &mut i64,
    mode: LeafMode,
) -> Result<bool> {
    let vs = V::SIZE;
    let mut i = *index;
    for _ in 0..MAX_DEPTH {
        s.step::<V, T>(tm, ctx, root, Kind::Leaf)?;
        if s.has_parent() {
            if i < 0 {
                return Err(Error::Invalid);
            }
            let loc = s.current()?.location();
            NodeMut::new(tm.bm().data_mut(s.parent()?))?.set_value64(i as u32, loc);
        }
        for pass in 0..2 {
            let n = Node::with_value_size(tm.bm().data_w(s.current()?), vs)?;
            if n.is_leaf() {
                return Ok(match mode {
                    LeafMode::Exact => do_leaf(&n, key, index),
                    LeafMode::Nearest => {
                        *index = n.lower_bound(key);
                        true
                    }
                });
            }
            if pass == 0 && !rebalance_children::<V, T>(tm, ctx, s, Kind::Leaf, key)? {
                return Ok(false);
            }
        }
        let n = Node::new(tm.bm().data_w(s.current()?))?;
        i = n.lower_bound(key);
        if i < 0 {
            return Ok(false);
        }
        root = n.value64(i as u32);
    }
    Err(Error::TooDeep)
}

pub(crate) fn remove<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    root: u64,
    keys: &[u64],
) -> Result<(u64, bool)> {
    let mut s = ShadowSpine::new(root);
    let r = remove_inner(bt, tm, ctx, &mut s, root, keys);
    let new_root = s.root();
    s.exit(tm);
    r.map(|found| (new_root, found))
}

fn remove_inner<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    mut root: u64,
    keys: &[u64],
) -> Result<bool> {
    let last = bt.levels() as usize - 1;
    let mut index: i64 = 0;
    for &key in &keys[..last] {
        if !remove_raw::<BlockRef, T>(tm, &mut (), s, root, key, &mut index, LeafMode::Exact)? {
            return Ok(false);
        }
        root = Node::new(tm.bm().data_w(s.current()?))?.value64(index as u32);
    }
    if !remove_raw::<V, T>(tm, ctx, s, root, keys[last], &mut index, LeafMode::Exact)? {
        return Ok(false);
    }
    let cur = s.current()?;
    let v = {
        let n = Node::with_value_size(tm.bm().data_w(cur), V::SIZE)?;
        V::unpack(n.value(index as u32))
    };
    V::dec(ctx, tm, &v)?;
    let cur = s.current()?;
    NodeMut::new(tm.bm().data_mut(cur))?.delete_at(index as u32)?;
    Ok(true)
}

/// One descent of `remove_leaves`: removes, from the leaf holding
/// `keys[last]`, the run of consecutive keys from `keys[last]` on that are
/// below `end_key`, at most `max` of them. The walk down rebalanced the
/// leaf so that it holds more than a third of its capacity; the run stops
/// there (a non-root node keeps at least `max_entries / 3` entries, which
/// `thin_check` requires), so the next descent rebalances it again. C
/// removes one entry per descent; a run gives the same tree shapes' rules
/// with one descent per third of a leaf. Returns how many went (0: none
/// left in range here) and advances `keys[last]` past them.
fn remove_one<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    mut root: u64,
    keys: &mut [u64],
    end_key: u64,
    max: u64,
) -> Result<u64> {
    let last = bt.levels() as usize - 1;
    let mut index: i64 = 0;
    for &key in &keys[..last] {
        if !remove_raw::<BlockRef, T>(tm, &mut (), s, root, key, &mut index, LeafMode::Exact)? {
            return Ok(0);
        }
        root = Node::new(tm.bm().data_w(s.current()?))?.value64(index as u32);
    }
    if !remove_raw::<V, T>(tm, ctx, s, root, keys[last], &mut index, LeafMode::Nearest)? {
        return Ok(0);
    }
    if index < 0 {
        index = 0;
    }
    let index = index as u32;
    let is_root = !s.has_parent();
    let cur = s.current()?;
    let (nr, keep) = {
        let n = Node::with_value_size(tm.bm().data_w(cur), V::SIZE)?;
        (n.nr_entries(), if is_root { 0 } else { n.max_entries() / 3 })
    };
    // Entries this descent may take: down to `keep`, but at least one.
    let room = u64::from(nr.saturating_sub(keep).max(1));
    let mut run = 0u32;
    // The values go in groups of up to 16 (`dec_many`), read before
    // anything is dropped.
    let mut group: Option<([V::Value; 16], usize)> = None;
    while u64::from(run) < max.min(room) && index + run < nr {
        let (k, v) = {
            let n = Node::with_value_size(tm.bm().data_w(cur), V::SIZE)?;
            let i = index + run;
            (n.key(i), V::unpack(n.value(i)))
        };
        // The first entry is the one the walk found at or after the key
        // (as C's `remove_one`); the rest must follow it without a gap.
        let in_run = if run == 0 { k >= keys[last] } else { k == keys[last] };
        if !in_run || k >= end_key {
            break;
        }
        let (buf, len) = group.get_or_insert(([v; 16], 0));
        if let Some(slot) = buf.get_mut(*len) {
            *slot = v;
            *len += 1;
        }
        if *len == buf.len() {
            V::dec_many(ctx, tm, buf)?;
            *len = 0;
        }
        keys[last] = k + 1;
        run += 1;
    }
    if let Some((buf, len)) = &group {
        V::dec_many(ctx, tm, buf.get(..*len).unwrap_or(&[]))?;
    }
    if run > 0 {
        NodeMut::new(tm.bm().data_mut(cur))?.delete_run(index, run)?;
    }
    Ok(u64::from(run))
}

pub(crate) fn remove_leaves<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    mut root: u64,
    keys: &mut [u64],
    end_key: u64,
    max: u64,
) -> Result<(u64, u64)> {
    let mut count = 0;
    while count < max {
        let mut s = ShadowSpine::new(root);
        let r = remove_one(bt, tm, ctx, &mut s, root, keys, end_key, max - count);
        root = s.root();
        s.exit(tm);
        let n = r?;
        if n == 0 {
            break;
        }
        count += n;
    }
    Ok((root, count))
}
