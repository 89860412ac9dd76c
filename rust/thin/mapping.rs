//! A new mapping being prepared (C `struct dm_thin_new_mapping`): a data
//! block allocated for a thin's virtual block, waiting for its zeroing or
//! copy (kcopyd) or for the bio that overwrites it all, before the worker
//! inserts it into the mapping tree and releases the block's cell.

use super::thin::{Thin, ThinBio};
use crate::dm::{Bio, KcopydDone, KcopydRefs};
use kernel::alloc::KBox;
use kernel::sync::Arc;

/// One prepared mapping.
pub struct Job {
    /// The thin.
    pub thin: Arc<Thin>,
    /// Its virtual block.
    pub vblock: u64,
    /// The new data block.
    pub data_block: u64,
    /// The bio to remap and issue once mapped (`None`: an overwrite, issued
    /// already).
    pub holder: Option<Bio<ThinBio>>,
    /// Sharing is being broken: in-flight I/O to the old block drains first.
    pub cow: bool,
    /// Whether the zeroing or copy succeeded.
    pub ok: bool,
    /// After a partial copy from an external origin: the sectors of the
    /// block from here on still need zeroing.
    pub zero_from: Option<u64>,
    /// The devices (and client) held while kcopyd runs the job.
    refs: KcopydRefs,
    next: Option<KBox<Job>>,
}

impl Job {
    /// A job for `vblock` of `thin`, mapped to `data_block`.
    pub fn new(thin: Arc<Thin>, vblock: u64, data_block: u64, holder: Option<Bio<ThinBio>>, cow: bool) -> Self {
        Job {
            thin,
            vblock,
            data_block,
            holder,
            cow,
            ok: true,
            zero_from: None,
            refs: KcopydRefs::new(),
            next: None,
        }
    }
}

impl KcopydDone for Job {
    fn refs(&mut self) -> &mut KcopydRefs {
        &mut self.refs
    }

    /// The zeroing or copy is done: hand the job to the pool's worker. The
    /// pool's clone is never its last reference: the pool table holds the
    /// pool until its shutdown, which destroys the kcopyd client (waiting
    /// for every completion) first.
    fn done(mut this: KBox<Self>, ok: bool) {
        this.ok = ok;
        let pool = this.thin.pool.clone();
        pool.core().prepared.lock().push(this);
        pool.wake();
    }
}

/// A list of jobs linked through the jobs themselves (no allocation).
#[derive(Default)]
pub struct JobList {
    head: Option<KBox<Job>>,
}

impl JobList {
    /// An empty list.
    pub const fn new() -> Self {
        JobList { head: None }
    }

    /// Adds a job.
    pub fn push(&mut self, mut j: KBox<Job>) {
        j.next = self.head.take();
        self.head = Some(j);
    }

    /// Takes a job.
    pub fn pop(&mut self) -> Option<KBox<Job>> {
        let mut j = self.head.take()?;
        self.head = j.next.take();
        Some(j)
    }

    /// Takes the job of `vblock` of thin `thin`.
    pub fn take(&mut self, thin: u64, vblock: u64) -> Option<KBox<Job>> {
        let mut rest = JobList::new();
        let mut found = None;
        while let Some(j) = self.pop() {
            if found.is_none() && j.thin.id == thin && j.vblock == vblock {
                found = Some(j);
            } else {
                rest.push(j);
            }
        }
        *self = rest;
        found
    }
}
