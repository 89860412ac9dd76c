//! The pool's counters, in debugfs as `dm_thin_rs/<pool>/stats` (the status
//! line stays C's word for word): why `map` sends bios to the worker, and
//! what online trims (`trim.rs`) discarded.
//!
//! `map` remaps a bio at once when its block is mapped, not shared (or the
//! bio is a read) and nothing holds it; it completes a read of an
//! unprovisioned block of a thin with no origin as zeroes. Everything else
//! goes to the worker, and each such bio is counted here under the first
//! reason that stopped `map`:
//!
//! - `contended`: the worker, a commit, a message or status held the pool
//!   lock for writing, or waited for it (the lookup was not even tried;
//!   other `map`s share it for reading, see `pool/mod.rs`).
//! - `cache_miss`: the lookup needed metadata I/O.
//! - `cell`: the block is held by a provisioning, copy or discard.
//! - `provision`: a write to an unmapped or shared block.
//! - `unmapped_read`: a read of an unmapped block the worker must answer
//!   (from the external origin).
//! - `special`: flushes, FUA writes and discards, which always go through
//!   the worker.
//!
//! `remapped` and `zeroed` count what `map` finished itself, and `flushed`
//! the empty flushes it sent to the data device (the thin had nothing to
//! commit), so `deferred / (deferred + remapped + zeroed + flushed)` is the
//! share of bios that took the slow path.
//!
//! `lookup_reads` counts the btree nodes the worker's lookups read with no
//! lock held (`lookup.rs`), `lookup_locked` the lookups it made under the
//! exclusive lock instead.
//!
//! `trimmed` counts the data blocks trims discarded, `trim_runs` their
//! discards; `trim_at` and `trim_end` show where the running trim is (both
//! 0 when none runs).
//!
//! `cache_capacity` is the metadata cache's size in blocks (the
//! `metadata_cache_mb` parameter, by default 2% of memory), `cache_shrunk`
//! the clean blocks its shrinker gave back under memory pressure.
//!
//! `reclaimed` counts the mappings the worker released for deletes done in
//! batches (`reclaim.rs`), `reclaim_batches` those batches.
//!
//! The counters are relaxed atomics: figures for a bench or an operator,
//! not for synchronisation. `remapped`, `zeroed` and `flushed`, which every
//! mapped bio adds to, are striped by CPU (`per_cpu.rs`).

use core::fmt;
use super::per_cpu::Counter;
use core::sync::atomic::{AtomicU64, Ordering};

/// Why `map` deferred a bio.
#[derive(Clone, Copy)]
pub enum Deferral {
    /// A writer held the pool lock or waited for it.
    Contended,
    /// The lookup needed metadata I/O.
    CacheMiss,
    /// A cell holds the block.
    Cell,
    /// A write to an unmapped or shared block.
    Provision,
    /// A read of an unmapped block of a thin with an external origin.
    UnmappedRead,
    /// A flush, FUA write, discard or other operation.
    Special,
}

/// The counters of one pool.
#[derive(Default)]
pub struct PoolStats {
    remapped: Counter,
    zeroed: Counter,
    flushed: Counter,
    contended: AtomicU64,
    cache_miss: AtomicU64,
    cell: AtomicU64,
    provision: AtomicU64,
    unmapped_read: AtomicU64,
    special: AtomicU64,
    lookup_reads: AtomicU64,
    lookup_locked: AtomicU64,
    trimmed: AtomicU64,
    trim_runs: AtomicU64,
    trim_at: AtomicU64,
    trim_end: AtomicU64,
    reclaimed: AtomicU64,
    reclaim_batches: AtomicU64,
    cache_capacity: AtomicU64,
    cache_shrunk: AtomicU64,
}

impl PoolStats {
    /// A bio `map` remapped.
    pub fn remapped(&self) {
        self.remapped.add(1);
    }

    /// A read `map` completed as zeroes.
    pub fn zeroed(&self) {
        self.zeroed.add(1);
    }

    /// An empty flush `map` sent to the data device.
    pub fn flushed(&self) {
        self.flushed.add(1);
    }

    /// The worker read a node for a lookup without the lock.
    pub fn lookup_read(&self) {
        self.lookup_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The worker made a lookup under the exclusive lock.
    pub fn lookup_locked(&self) {
        self.lookup_locked.fetch_add(1, Ordering::Relaxed);
    }

    /// A trim discarded `blocks` data blocks in one discard.
    pub fn trimmed(&self, blocks: u64) {
        self.trimmed.fetch_add(blocks, Ordering::Relaxed);
        self.trim_runs.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the running trim is (`0, 0` when it ends).
    pub fn trim_progress(&self, at: u64, end: u64) {
        self.trim_at.store(at, Ordering::Relaxed);
        self.trim_end.store(end, Ordering::Relaxed);
    }

    /// A batch of a delete released `mappings` mappings.
    pub fn reclaimed(&self, mappings: u64) {
        self.reclaimed.fetch_add(mappings, Ordering::Relaxed);
        self.reclaim_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// The metadata cache's size in blocks.
    pub fn set_cache_capacity(&self, blocks: u64) {
        self.cache_capacity.store(blocks, Ordering::Relaxed);
    }

    /// The shrinker freed `blocks` cached metadata blocks.
    pub fn shrunk(&self, blocks: u64) {
        self.cache_shrunk.fetch_add(blocks, Ordering::Relaxed);
    }

    /// A bio `map` deferred, and why.
    pub fn deferred(&self, why: Deferral) {
        let c = match why {
            Deferral::Contended => &self.contended,
            Deferral::CacheMiss => &self.cache_miss,
            Deferral::Cell => &self.cell,
            Deferral::Provision => &self.provision,
            Deferral::UnmappedRead => &self.unmapped_read,
            Deferral::Special => &self.special,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The debugfs file's text: one `name value` line per counter, then the
/// totals.
impl fmt::Debug for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let deferred: u64 = [
            &self.contended,
            &self.cache_miss,
            &self.cell,
            &self.provision,
            &self.unmapped_read,
            &self.special,
        ]
        .into_iter()
        .map(get)
        .sum();
        let (remapped, zeroed, flushed) = (self.remapped.get(), self.zeroed.get(), self.flushed.get());
        let done = remapped + zeroed + flushed;
        writeln!(f, "remapped {}", remapped)?;
        writeln!(f, "zeroed {}", zeroed)?;
        writeln!(f, "flushed {}", flushed)?;
        writeln!(f, "contended {}", get(&self.contended))?;
        writeln!(f, "cache_miss {}", get(&self.cache_miss))?;
        writeln!(f, "cell {}", get(&self.cell))?;
        writeln!(f, "provision {}", get(&self.provision))?;
        writeln!(f, "unmapped_read {}", get(&self.unmapped_read))?;
        writeln!(f, "special {}", get(&self.special))?;
        writeln!(f, "deferred {}", deferred)?;
        writeln!(f, "total {}", deferred + done)?;
        writeln!(f, "lookup_reads {}", get(&self.lookup_reads))?;
        writeln!(f, "lookup_locked {}", get(&self.lookup_locked))?;
        writeln!(f, "trimmed {}", get(&self.trimmed))?;
        writeln!(f, "trim_runs {}", get(&self.trim_runs))?;
        writeln!(f, "trim_at {}", get(&self.trim_at))?;
        writeln!(f, "trim_end {}", get(&self.trim_end))?;
        writeln!(f, "reclaimed {}", get(&self.reclaimed))?;
        writeln!(f, "reclaim_batches {}", get(&self.reclaim_batches))?;
        writeln!(f, "cache_capacity {}", get(&self.cache_capacity))?;
        write!(f, "cache_shrunk {}", get(&self.cache_shrunk))
    }
}
