//! Whole-tree traversals: `dm_btree_del` and an in-order walk, both with an
//! explicit, heap-allocated stack of read-locked frames (no recursion, for
//! the kernel's small stacks).

use super::node::Node;
use super::{Btree, Kind, ValueType, BTREE_NODE_VALIDATOR, MAX_DEPTH};
use crate::pdata::alloc::Vec;
use crate::pdata::block_manager::ReadLock;
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

struct Frame {
    lock: ReadLock,
    level: u32,
    nr: u32,
    cur: u32,
    internal: bool,
}

fn unlock_all<T: Transaction>(tm: &mut T, stack: &mut Vec<Frame>) {
    while let Some(f) = stack.pop() {
        tm.bm().unlock(f.lock);
    }
}

/// Read-locks `b` and pushes a frame for it.
fn push<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    stack: &mut Vec<Frame>,
    b: u64,
    level: u32,
) -> Result<()> {
    if stack.len() >= MAX_DEPTH * bt.levels() as usize {
        return Err(Error::TooDeep);
    }
    // Reserve first so that the push below cannot fail with a lock held.
    stack.reserve(1)?;
    let lock = tm.read_lock(b, &BTREE_NODE_VALIDATOR)?;
    let vs = Btree::<V>::value_size(bt.kind(level));
    let hdr =
        Node::with_value_size(tm.bm().data(&lock), vs).map(|n| (n.nr_entries(), n.is_internal()));
    match hdr {
        Ok((nr, internal)) => stack.push(Frame {
            lock,
            level,
            nr,
            cur: 0,
            internal,
        }),
        Err(e) => {
            tm.bm().unlock(lock);
            Err(e)
        }
    }
}

fn pop_dec<T: Transaction>(tm: &mut T, stack: &mut Vec<Frame>) -> Result<()> {
    if let Some(f) = stack.pop() {
        let b = f.lock.location();
        tm.bm().unlock(f.lock);
        tm.dec(b)?;
    }
    Ok(())
}

enum Next {
    Pop,
    Child(u64, u32),
    DecValues,
}

pub(crate) fn del<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    root: u64,
) -> Result<()> {
    let mut stack = Vec::new();
    let r = del_inner(bt, tm, ctx, &mut stack, root);
    unlock_all(tm, &mut stack);
    r
}

/// `push_frame` of dm_btree_del: a shared node only loses our reference.
fn del_push<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    stack: &mut Vec<Frame>,
    b: u64,
    level: u32,
) -> Result<()> {
    if tm.ref_count(b)? > 1 {
        // A shared node: decrement its count and leave the children.
        return tm.dec(b);
    }
    push(bt, tm, stack, b, level)
}

fn del_inner<V: ValueType, T: Transaction>(
    bt: &Btree<V>,
    tm: &mut T,
    ctx: &mut V::Context,
    stack: &mut Vec<Frame>,
    root: u64,
) -> Result<()> {
    del_push(bt, tm, stack, root, 0)?;
    loop {
        let next = {
            let f = match stack.last_mut() {
                None => return Ok(()),
                Some(f) => f,
            };
            if f.cur >= f.nr {
                Next::Pop
            } else if f.internal || bt.kind(f.level) == Kind::Inner {
                let i = f.cur;
                f.cur += 1;
                let level = if f.internal { f.level } else { f.level + 1 };
                let lock = &f.lock;
                let child = Node::new(tm.bm().data(lock))?.value64(i);
                Next::Child(child, level)
            } else {
                Next::DecValues
            }
        };
        match next {
            Next::Pop => pop_dec(tm, stack)?,
            Next::Child(b, level) => del_push(bt, tm, stack, b, level)?,
            Next::DecValues => {
                let nr = stack.last().map(|f| f.nr).unwrap_or(0);
                for i in 0..nr {
                    let v = match stack.last() {
                        Some(f) => {
                            let n = Node::with_value_size(tm.bm().data(&f.lock), V::SIZE)?;
                            V::unpack(n.value(i))
                        }
                        None => break,
                    };
                    V::dec(ctx, tm, &v)?;
                }
                pop_dec(tm, stack)?;
            }
        }
    }
}

pub(crate) fn walk<V: ValueType, T: Transaction, F>(
    bt: &Btree<V>,
    tm: &mut T,
    root: u64,
    mut f: F,
) -> Result<()>
where
    F: FnMut(&[u64], &V::Value) -> Result<()>,
{
    let mut keys = Vec::new();
    keys.resize(bt.levels() as usize, 0u64)?;
    let mut stack = Vec::new();
    let r = (|| -> Result<()> {
        push(bt, tm, &mut stack, root, 0)?;
        loop {
            enum W<X> {
                Pop,
                Child(u64, u32),
                Value(X),
            }
            let w = {
                let fr = match stack.last_mut() {
                    None => return Ok(()),
                    Some(fr) => fr,
                };
                if fr.cur >= fr.nr {
                    W::Pop
                } else {
                    let i = fr.cur;
                    fr.cur += 1;
                    let lock = &fr.lock;
                    let level = fr.level;
                    let internal = fr.internal;
                    let vs = Btree::<V>::value_size(bt.kind(level));
                    let n = Node::with_value_size(tm.bm().data(lock), vs)?;
                    if internal {
                        W::Child(n.value64(i), level)
                    } else {
                        if let Some(k) = keys.get_mut(level as usize) {
                            *k = n.key(i);
                        }
                        if bt.kind(level) == Kind::Inner {
                            W::Child(n.value64(i), level + 1)
                        } else {
                            W::Value(V::unpack(n.value(i)))
                        }
                    }
                }
            };
            match w {
                W::Pop => {
                    if let Some(fr) = stack.pop() {
                        tm.bm().unlock(fr.lock);
                    }
                }
                W::Child(b, level) => push(bt, tm, &mut stack, b, level)?,
                W::Value(v) => f(&keys, &v)?,
            }
        }
    })();
    unlock_all(tm, &mut stack);
    r
}
