//! The shadow spine (`struct shadow_spine`, dm-btree-spine.c): the rolling
//! pair of write locks (parent, current) held while walking down a tree to
//! update it. Stepping shadows the next node; the first node shadowed is
//! the new root.

use super::{Btree, Kind, Lock, ValueType, BTREE_NODE_VALIDATOR};
use crate::pdata::block_manager::WriteLock;
use crate::pdata::error::{Error, Result};
use crate::pdata::transaction_manager::Transaction;

pub(crate) struct ShadowSpine {
    nodes: [Option<WriteLock>; 2],
    count: usize,
    root: u64,
}

impl ShadowSpine {
    /// A spine for an update of the tree at `root` (returned by
    /// [`Self::root`] until the first step).
    pub(crate) fn new(root: u64) -> Self {
        ShadowSpine {
            nodes: [None, None],
            count: 0,
            root,
        }
    }

    /// `shadow_step`: shadows `b` and makes it the current node.
    pub(crate) fn step<V: ValueType, T: Transaction>(
        &mut self,
        tm: &mut T,
        ctx: &mut V::Context,
        b: u64,
        kind: Kind,
    ) -> Result<()> {
        if self.count == 2 {
            if let Some(l) = self.nodes[0].take() {
                tm.bm().unlock_write(l);
            }
            self.nodes[0] = self.nodes[1].take();
            self.count = 1;
        }
        let (w, inc) = tm.shadow_block(b, &BTREE_NODE_VALIDATOR)?;
        if inc {
            if let Err(e) = Btree::<V>::inc_children(tm, ctx, &Lock::W(&w), kind) {
                tm.bm().unlock_write(w);
                return Err(e);
            }
        }
        if self.count == 0 {
            self.root = w.location();
        }
        self.nodes[self.count] = Some(w);
        self.count += 1;
        Ok(())
    }

    pub(crate) fn current(&self) -> Result<&WriteLock> {
        match self.count {
            0 => Err(Error::Invalid),
            n => self.nodes[n - 1].as_ref().ok_or(Error::Invalid),
        }
    }

    pub(crate) fn parent(&self) -> Result<&WriteLock> {
        if self.count == 2 {
            self.nodes[0].as_ref().ok_or(Error::Invalid)
        } else {
            Err(Error::Invalid)
        }
    }

    pub(crate) fn has_parent(&self) -> bool {
        self.count >= 2
    }

    /// Makes `w` the current node, returning the previous current one.
    pub(crate) fn replace_current(&mut self, w: WriteLock) -> Option<WriteLock> {
        match self.count {
            0 => {
                self.nodes[0] = Some(w);
                self.count = 1;
                None
            }
            n => self.nodes[n - 1].replace(w),
        }
    }

    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    /// `exit_shadow_spine`: releases the locks.
    pub(crate) fn exit<T: Transaction>(mut self, tm: &mut T) {
        for l in self.nodes.iter_mut() {
            if let Some(l) = l.take() {
                tm.bm().unlock_write(l);
            }
        }
    }
}
