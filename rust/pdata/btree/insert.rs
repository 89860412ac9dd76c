//! Insertion (`dm_btree_insert_notify` and its helpers in dm-btree.c).
//!
//! Walking down, every node on the path is shadowed; a full node is made
//! room in *before* stepping into it, so there is always space for the
//! parent to take a new child: the root splits beneath itself (its entries
//! move to two new children), another node first tries to move entries to
//! an unshared sibling with at least `SPACE_THRESHOLD` free slots, and
//! otherwise splits one node into two (at the edges, or when a sibling is
//! shared) or two into three.

use super::node::{copy_entries_mut, Node, NodeMut};
use super::spine::ShadowSpine;
use super::{unlock_w, Btree, Kind, Lock, ValueType, BTREE_NODE_VALIDATOR, MAX_DEPTH};
use crate::pdata::block_manager::WriteLock;
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

/// Minimum free entries in a sibling for rebalancing into it to be worth it.
const SPACE_THRESHOLD: u32 = 8;

pub(crate) fn redistribute2(left: &mut NodeMut<'_>, right: &mut NodeMut<'_>) -> Result<()> {
    let nr_left = left.nr_entries();
    let nr_right = right.nr_entries();
    let total = nr_left + nr_right;
    let target_left = total / 2;
    let target_right = total - target_left;
    if target_left > left.max_entries() || target_right > right.max_entries() {
        return Err(Error::NrEntriesTooLarge);
    }
    if nr_left < target_left {
        let delta = target_left - nr_left;
        copy_entries_mut(left, nr_left, right, 0, delta)?;
        right.move_entries(0, delta, nr_right - delta);
    } else if nr_left > target_left {
        let delta = nr_left - target_left;
        if nr_right > 0 {
            right.move_entries(delta, 0, nr_right);
        }
        copy_entries_mut(right, 0, left, target_left, delta)?;
    }
    left.set_nr_entries(target_left);
    right.set_nr_entries(target_right);
    Ok(())
}

fn redistribute3(
    left: &mut NodeMut<'_>,
    center: &mut NodeMut<'_>,
    right: &mut NodeMut<'_>,
) -> Result<()> {
    let nr_left = left.nr_entries();
    let nr_center = center.nr_entries();
    let nr_right = right.nr_entries();
    if nr_center != 0 {
        return Err(Error::Invalid);
    }
    let total = nr_left + nr_right;
    let target_left = total / 3;
    let target_center = (total - target_left) / 2;
    let target_right = total - target_left - target_center;
    let max = left.max_entries();
    if target_left > max
        || target_center > center.max_entries()
        || target_right > right.max_entries()
    {
        return Err(Error::NrEntriesTooLarge);
    }
    if nr_left < target_left {
        let left_short = target_left - nr_left;
        copy_entries_mut(left, nr_left, right, 0, left_short)?;
        copy_entries_mut(center, 0, right, left_short, target_center)?;
        let d = nr_right - target_right;
        right.move_entries(0, d, nr_right - d);
    } else if nr_left < target_left + target_center {
        let left_to_center = nr_left - target_left;
        copy_entries_mut(center, 0, left, target_left, left_to_center)?;
        copy_entries_mut(
            center,
            left_to_center,
            right,
            0,
            target_center - left_to_center,
        )?;
        let d = nr_right - target_right;
        right.move_entries(0, d, nr_right - d);
    } else {
        let right_short = target_right - nr_right;
        right.move_entries(right_short, 0, nr_right);
        copy_entries_mut(right, 0, left, nr_left - right_short, right_short)?;
        copy_entries_mut(center, 0, left, target_left, nr_left - target_left)?;
    }
    left.set_nr_entries(target_left);
    center.set_nr_entries(target_center);
    right.set_nr_entries(target_right);
    Ok(())
}

/// `shadow_child`: shadows child `index` of `parent`, increments its
/// children if it was shared, and points the parent at the shadow.
pub(crate) fn shadow_child<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    parent: &WriteLock,
    index: u32,
    kind: Kind,
) -> Result<WriteLock> {
    let b = {
        let n = Node::new(tm.bm().data_w(parent))?;
        if index >= n.nr_entries() {
            return Err(Error::Invalid);
        }
        n.value64(index)
    };
    let (w, inc) = tm.shadow_block(b, &BTREE_NODE_VALIDATOR)?;
    if inc {
        if let Err(e) = Btree::<V>::inc_children(tm, ctx, &Lock::W(&w), kind) {
            tm.bm().unlock_write(w);
            return Err(e);
        }
    }
    let loc = w.location();
    match NodeMut::new(tm.bm().data_mut(parent)) {
        Ok(mut p) => p.set_value64(index, loc),
        Err(e) => {
            tm.bm().unlock_write(w);
            return Err(e);
        }
    }
    Ok(w)
}

fn new_sibling<T: Transaction>(tm: &mut T, like: &WriteLock) -> Result<WriteLock> {
    let (flags, max, vs) = {
        let n = Node::new(tm.bm().data_w(like))?;
        (n.flags(), n.max_entries(), n.value_size())
    };
    let w = tm.new_block(&BTREE_NODE_VALIDATOR)?;
    if let Err(e) = NodeMut::init_with(tm.bm().data_mut(&w), flags, max, vs) {
        tm.bm().unlock_write(w);
        return Err(e);
    }
    Ok(w)
}

/// `btree_split_beneath`: moves the root's entries into two new children.
fn split_beneath<T: Transaction>(tm: &mut T, s: &mut ShadowSpine) -> Result<()> {
    let pn = s.current()?;
    let left = new_sibling(tm, pn)?;
    let right = match new_sibling(tm, pn) {
        Ok(r) => r,
        Err(e) => {
            tm.bm().unlock_write(left);
            return Err(e);
        }
    };
    let (ll, rl) = (left.location(), right.location());
    let r = (|| -> Result<()> {
        let (p, l, r) = tm.bm().data_mut3(pn, &left, &right)?;
        let mut p = NodeMut::new(p)?;
        let mut l = NodeMut::new(l)?;
        let mut r = NodeMut::new(r)?;
        let nr = p.nr_entries();
        let nr_left = nr / 2;
        let nr_right = nr - nr_left;
        copy_entries_mut(&mut l, 0, &p, 0, nr_left)?;
        l.set_nr_entries(nr_left);
        copy_entries_mut(&mut r, 0, &p, nr_left, nr_right)?;
        r.set_nr_entries(nr_right);
        let (lk, rk) = (l.key(0), r.key(0));
        p.reformat_internal();
        p.set_nr_entries(2);
        p.set_key(0, lk);
        p.set_value64(0, ll);
        p.set_key(1, rk);
        p.set_value64(1, rl);
        Ok(())
    })();
    tm.bm().unlock_write(left);
    tm.bm().unlock_write(right);
    r
}

fn get_node_free_space<T: Transaction>(tm: &mut T, b: u64) -> Result<u32> {
    let l = tm.read_lock(b, &BTREE_NODE_VALIDATOR)?;
    let r = Node::new(tm.bm().data(&l)).map(|n| n.max_entries() - n.nr_entries());
    tm.bm().unlock(l);
    r
}

fn rebalance_left<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    pi: u32,
    key: u64,
    kind: Kind,
) -> Result<()> {
    let sib = shadow_child::<V, T>(tm, ctx, s.parent()?, pi - 1, kind)?;
    let r = (|| -> Result<u64> {
        let (l, r) = tm.bm().data_mut2(&sib, s.current()?)?;
        let mut l = NodeMut::new(l)?;
        let mut r = NodeMut::new(r)?;
        redistribute2(&mut l, &mut r)?;
        Ok(r.key(0))
    })();
    let rk0 = match r {
        Ok(k) => k,
        Err(e) => {
            tm.bm().unlock_write(sib);
            return Err(e);
        }
    };
    match NodeMut::new(tm.bm().data_mut(s.parent()?)) {
        Ok(mut p) => p.set_key(pi, rk0),
        Err(e) => {
            tm.bm().unlock_write(sib);
            return Err(e);
        }
    }
    if key < rk0 {
        let old = s.replace_current(sib);
        unlock_w(tm, old);
    } else {
        tm.bm().unlock_write(sib);
    }
    Ok(())
}

fn rebalance_right<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    pi: u32,
    key: u64,
    kind: Kind,
) -> Result<()> {
    let sib = shadow_child::<V, T>(tm, ctx, s.parent()?, pi + 1, kind)?;
    let r = (|| -> Result<u64> {
        let (l, r) = tm.bm().data_mut2(s.current()?, &sib)?;
        let mut l = NodeMut::new(l)?;
        let mut r = NodeMut::new(r)?;
        redistribute2(&mut l, &mut r)?;
        Ok(r.key(0))
    })();
    let rk0 = match r {
        Ok(k) => k,
        Err(e) => {
            tm.bm().unlock_write(sib);
            return Err(e);
        }
    };
    match NodeMut::new(tm.bm().data_mut(s.parent()?)) {
        Ok(mut p) => p.set_key(pi + 1, rk0),
        Err(e) => {
            tm.bm().unlock_write(sib);
            return Err(e);
        }
    }
    if key < rk0 {
        tm.bm().unlock_write(sib);
    } else {
        let old = s.replace_current(sib);
        unlock_w(tm, old);
    }
    Ok(())
}

fn split_one_into_two<T: Transaction>(
    tm: &mut T,
    s: &mut ShadowSpine,
    pi: u32,
    key: u64,
) -> Result<()> {
    let right = new_sibling(tm, s.current()?)?;
    let rloc = right.location();
    let r = (|| -> Result<u64> {
        let (l, r) = tm.bm().data_mut2(s.current()?, &right)?;
        let mut l = NodeMut::new(l)?;
        let mut r = NodeMut::new(r)?;
        redistribute2(&mut l, &mut r)?;
        let rk0 = r.key(0);
        let mut p = NodeMut::new(tm.bm().data_mut(s.parent()?))?;
        p.insert_at(pi + 1, rk0, &rloc.to_le_bytes())?;
        Ok(rk0)
    })();
    let rk0 = match r {
        Ok(k) => k,
        Err(e) => {
            tm.bm().unlock_write(right);
            return Err(e);
        }
    };
    if key < rk0 {
        tm.bm().unlock_write(right);
    } else {
        let old = s.replace_current(right);
        unlock_w(tm, old);
    }
    Ok(())
}

fn split_two_into_three<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    pi: u32,
    key: u64,
    kind: Kind,
) -> Result<()> {
    // `sib` is the sibling we shadow; `cur_is_left` says which side the
    // current node is on.
    let (middle_index, cur_is_left, sib) = if pi == 0 {
        (
            1,
            true,
            shadow_child::<V, T>(tm, ctx, s.parent()?, pi + 1, kind)?,
        )
    } else {
        (
            pi,
            false,
            shadow_child::<V, T>(tm, ctx, s.parent()?, pi - 1, kind)?,
        )
    };
    let middle = match new_sibling(tm, s.current()?) {
        Ok(m) => m,
        Err(e) => {
            tm.bm().unlock_write(sib);
            return Err(e);
        }
    };
    let mloc = middle.location();
    let r = (|| -> Result<(u64, u64)> {
        let cur = s.current()?;
        let (left, right) = if cur_is_left {
            (cur, &sib)
        } else {
            (&sib, cur)
        };
        let (l, m, r) = tm.bm().data_mut3(left, &middle, right)?;
        let mut l = NodeMut::new(l)?;
        let mut m = NodeMut::new(m)?;
        let mut r = NodeMut::new(r)?;
        redistribute3(&mut l, &mut m, &mut r)?;
        let (mk0, rk0) = (m.key(0), r.key(0));
        let mut p = NodeMut::new(tm.bm().data_mut(s.parent()?))?;
        p.set_key(middle_index, rk0);
        p.insert_at(middle_index, mk0, &mloc.to_le_bytes())?;
        Ok((mk0, rk0))
    })();
    let (mk0, rk0) = match r {
        Ok(x) => x,
        Err(e) => {
            tm.bm().unlock_write(sib);
            tm.bm().unlock_write(middle);
            return Err(e);
        }
    };
    // 0 = left, 1 = middle, 2 = right
    let want = if key < mk0 {
        0
    } else if key < rk0 {
        1
    } else {
        2
    };
    let cur_pos = if cur_is_left { 0 } else { 2 };
    if want == cur_pos {
        tm.bm().unlock_write(sib);
        tm.bm().unlock_write(middle);
    } else if want == 1 {
        let old = s.replace_current(middle);
        unlock_w(tm, old);
        tm.bm().unlock_write(sib);
    } else {
        let old = s.replace_current(sib);
        unlock_w(tm, old);
        tm.bm().unlock_write(middle);
    }
    Ok(())
}

fn rebalance_or_split<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    pi: u32,
    key: u64,
    kind: Kind,
) -> Result<()> {
    let (nr_parent, left_b, right_b) = {
        let p = Node::new(tm.bm().data_w(s.parent()?))?;
        let nr = p.nr_entries();
        if pi >= nr {
            return Err(Error::Invalid);
        }
        let l = if pi > 0 {
            Some(p.value64(pi - 1))
        } else {
            None
        };
        let r = if pi + 1 < nr {
            Some(p.value64(pi + 1))
        } else {
            None
        };
        (nr, l, r)
    };
    let mut left_shared = false;
    let mut right_shared = false;
    if let Some(lb) = left_b {
        left_shared = tm.is_shared(lb)?;
        if !left_shared && get_node_free_space(tm, lb)? >= SPACE_THRESHOLD {
            return rebalance_left::<V, T>(tm, ctx, s, pi, key, kind);
        }
    }
    if let Some(rb) = right_b {
        right_shared = tm.is_shared(rb)?;
        if !right_shared && get_node_free_space(tm, rb)? >= SPACE_THRESHOLD {
            return rebalance_right::<V, T>(tm, ctx, s, pi, key, kind);
        }
    }
    if left_shared || right_shared || nr_parent <= 2 || pi == 0 || pi + 1 == nr_parent {
        split_one_into_two(tm, s, pi, key)
    } else {
        split_two_into_three::<V, T>(tm, ctx, s, pi, key, kind)
    }
}

fn has_space_for_insert(n: &Node<'_>, key: u64) -> bool {
    if n.nr_entries() == n.max_entries() {
        if n.is_leaf() {
            let i = n.lower_bound(key);
            return i >= 0 && n.key(i as u32) == key;
        }
        return false;
    }
    true
}

/// `btree_insert_raw`: walks one level down to the leaf for `key`, making
/// room on the way. On return the spine's current node is that leaf and
/// `index` is where `key` is or should go.
pub(crate) fn insert_raw<V: ValueType, T: Transaction>(
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    mut block: u64,
    key: u64,
    kind: Kind,
    index: &mut i64,
) -> Result<()> {
    let vs = Btree::<V>::value_size(kind);
    let mut i = *index;
    let mut top = true;
    for _ in 0..MAX_DEPTH {
        s.step::<V, T>(tm, ctx, block, kind)?;
        if s.has_parent() && i >= 0 {
            let loc = s.current()?.location();
            NodeMut::new(tm.bm().data_mut(s.parent()?))?.set_value64(i as u32, loc);
        }
        let full = {
            let n = Node::with_value_size(tm.bm().data_w(s.current()?), vs)?;
            !has_space_for_insert(&n, key)
        };
        if full {
            if top {
                split_beneath(tm, s)?;
            } else {
                rebalance_or_split::<V, T>(tm, ctx, s, i as u32, key, kind)?;
            }
        }
        let mut n = NodeMut::new(tm.bm().data_mut(s.current()?))?;
        i = n.as_node().lower_bound(key);
        if n.is_leaf() {
            if n.value_size() != vs {
                return Err(Error::ValueSize);
            }
            if i < 0 || n.key(i as u32) != key {
                i += 1;
            }
            *index = i;
            return Ok(());
        }
        if n.nr_entries() == 0 {
            return Err(Error::NrEntriesTooSmall);
        }
        if i < 0 {
            // change the bounds on the lowest key
            n.set_key(0, key);
            i = 0;
        }
        block = n.value64(i as u32);
        top = false;
    }
    Err(Error::TooDeep)
}

fn need_insert(n: &Node<'_>, key: u64, index: i64) -> bool {
    index >= n.nr_entries() as i64 || index < 0 || n.key(index as u32) != key
}

pub(crate) fn insert<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    root: u64,
    keys: &[u64],
    value: &V::Value,
) -> Result<(u64, bool)> {
    let mut s = ShadowSpine::new(root);
    let r = insert_inner(bt, tm, ctx, &mut s, root, keys, value);
    let new_root = s.root();
    s.exit(tm);
    r.map(|inserted| (new_root, inserted))
}

fn insert_inner<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    s: &mut ShadowSpine,
    root: u64,
    keys: &[u64],
    value: &V::Value,
) -> Result<bool> {
    let last = bt.levels() as usize - 1;
    let mut block = root;
    let mut index: i64 = -1;
    for (level, &key) in keys[..last].iter().enumerate() {
        // Inner levels hold subtree roots; their hooks only adjust metadata
        // reference counts, so they need no caller context.
        insert_raw::<super::BlockRef, T>(tm, &mut (), s, block, key, Kind::Leaf, &mut index)?;
        let need = {
            let n = Node::with_value_size(tm.bm().data_w(s.current()?), 8)?;
            need_insert(&n, key, index)
        };
        if need {
            let next_vs = if level + 1 == last { V::SIZE } else { 8 };
            let new_tree = Btree::<V>::empty_raw(tm, next_vs)?;
            let mut n = NodeMut::new(tm.bm().data_mut(s.current()?))?;
            n.insert_at(index as u32, key, &new_tree.to_le_bytes())?;
        }
        block = Node::new(tm.bm().data_w(s.current()?))?.value64(index as u32);
    }
    let key = keys[last];
    insert_raw::<V, T>(tm, ctx, s, block, key, Kind::Leaf, &mut index)?;
    let cur = s.current()?;
    let need = {
        let n = Node::with_value_size(tm.bm().data_w(cur), V::SIZE)?;
        need_insert(&n, key, index)
    };
    if need {
        // Values are packed straight into the node: no value-sized buffer
        // on the stack (this path nests through the space maps).
        let mut n = NodeMut::new(tm.bm().data_mut(cur))?;
        n.insert_at(index as u32, key, &[])?;
        V::pack(value, n.value_mut(index as u32));
        Ok(true)
    } else {
        let old = {
            let n = Node::with_value_size(tm.bm().data_w(cur), V::SIZE)?;
            V::unpack(n.value(index as u32))
        };
        if !V::equal(&old, value) {
            V::dec(ctx, tm, &old)?;
        }
        let cur = s.current()?;
        let mut n = NodeMut::new(tm.bm().data_mut(cur))?;
        V::pack(value, n.value_mut(index as u32));
        Ok(false)
    }
}
