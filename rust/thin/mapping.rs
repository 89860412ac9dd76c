//! A new mapping being prepared (C `struct dm_thin_new_mapping`): a data
//! block allocated for a thin's virtual block, waiting for its zeroing or
//! copy (kcopyd) or for the bio that overwrites it all, before the worker
//! inserts it into the mapping tree and releases the block's cell.

use super::io_epochs::Ticket;
use super::thin::{Thin, ThinBio};
use crate::dm::{Bio, KcopydDone, KcopydRefs};
use core::mem::MaybeUninit;
use kernel::alloc::{KBox, KVec};
use kernel::prelude::*;
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
    /// The whole-block overwrite, written, to complete once mapped.
    pub overwrite: Option<Bio<ThinBio>>,
    /// Sharing is being broken: the reads of the shared block in flight
    /// when the copy started must complete before the mapping moves (C
    /// `shared_read_ds`); `None` when there were none.
    pub ticket: Option<Ticket>,
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
    pub fn new(thin: Arc<Thin>, vblock: u64, data_block: u64, holder: Option<Bio<ThinBio>>, ticket: Option<Ticket>) -> Self {
        Job {
            thin,
            vblock,
            data_block,
            holder,
            overwrite: None,
            ticket,
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

/// Room for as many jobs as the prison has cells, made with the pool (the
/// role of C's mapping mempool): every job holds a cell while it lives, so
/// a job is never short of memory on the I/O path.
pub struct JobReserve {
    free: KVec<KBox<MaybeUninit<Job>>>,
}

impl JobReserve {
    /// `n` jobs' room. Sleeps.
    pub fn new(n: usize) -> Result<Self> {
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            free.push(KBox::new_uninit(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(JobReserve { free })
    }

    /// Room for one job.
    pub fn get(&mut self) -> Option<KBox<MaybeUninit<Job>>> {
        self.free.pop()
    }

    /// Gives a finished job's room back (its fields are dropped).
    pub fn put(&mut self, job: KBox<Job>) {
        // Within the capacity reserved at creation: does not allocate.
        let _ = self.free.push_within_capacity(KBox::drop_contents(job));
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

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Takes the whole list, leaving this one empty.
    pub fn take_all(&mut self) -> JobList {
        core::mem::take(self)
    }

    /// Whether any job satisfies `f`.
    pub fn any(&self, mut f: impl FnMut(&Job) -> bool) -> bool {
        let mut j = self.head.as_deref();
        while let Some(job) = j {
            if f(job) {
                return true;
            }
            j = job.next.as_deref();
        }
        false
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
