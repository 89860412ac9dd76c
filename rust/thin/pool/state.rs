//! What the pool's state lock guards, and what changes it ([`PoolState`]):
//! mode changes, the low water marks, the no-space timeout, commits, and
//! what a failed metadata operation does to the pool.

use super::{errno, PoolMode, PoolState};
use crate::dm::{dmerr, dminfo, dmwarn, BlkStatus};
use crate::thin::metadata::Error as MdError;
use kernel::prelude::*;

impl PoolState {
    /// The pool's mode.
    pub fn mode(&self) -> PoolMode {
        self.mode
    }

    fn notify(&self) {
        if let Some((_, ev)) = &self.bound {
            ev.trigger();
        }
    }

    /// C `set_pool_mode`.
    pub fn set_mode(&mut self, name: &str, mut new: PoolMode) {
        let old = self.mode;
        if new == PoolMode::Write && self.pmd.needs_check() {
            dmerr!("{}: unable to switch pool to write mode until repaired.", name);
            new = if old != new { old } else { PoolMode::ReadOnly };
        }
        if old == PoolMode::Fail {
            new = old;
        }
        match new {
            PoolMode::Fail | PoolMode::OutOfMetadataSpace | PoolMode::ReadOnly => {
                self.pmd.set_read_only()
            }
            PoolMode::OutOfDataSpace => {
                self.oods_ticks = 0;
                self.out_of_data_space = true;
            }
            PoolMode::Write => {
                self.out_of_data_space = false;
                self.pf.error_if_no_space = self.requested_eins;
                self.pmd.set_read_write();
            }
        }
        self.mode = new;
        if old != new {
            self.notify();
            let extra = match (new, self.pf.error_if_no_space) {
                (PoolMode::OutOfDataSpace, false) => " (queue IO)",
                (PoolMode::OutOfDataSpace, true) => " (error IO)",
                _ => "",
            };
            dminfo!("{}: switching pool to {}{} mode", name, new.desc(), extra);
        }
    }

    /// C `check_low_water_mark`: one table event when free data blocks
    /// fall to the low water mark (re-armed on resume).
    pub fn check_low_water_mark(&mut self, name: &str, free: u64) {
        if free <= self.low_water_blocks && !self.low_water_triggered {
            dmwarn!("{}: reached low water mark for data device: sending event.", name);
            self.low_water_triggered = true;
            self.notify();
        }
    }

    /// C `do_no_space_timeout`, counted in waker periods: once out of data
    /// space for `no_space_timeout` seconds, queued bios fail with ENOSPC.
    /// Returns whether the queued bios must be failed now.
    pub(super) fn no_space_tick(&mut self, name: &str) -> bool {
        if self.mode != PoolMode::OutOfDataSpace || self.pf.error_if_no_space {
            return false;
        }
        self.oods_ticks = self.oods_ticks.saturating_add(1);
        let limit = crate::dm::no_space_timeout_secs();
        if limit == 0 || self.oods_ticks < limit {
            return false;
        }
        self.pf.error_if_no_space = true;
        self.notify();
        dminfo!("{}: switching pool to out-of-data-space (error IO) mode", name);
        true
    }

    /// What the retry list's bios get now (C `set_pool_mode` errors it
    /// leaving write and out-of-data-space modes, with
    /// `get_pool_io_error_code`); `None` while they may still be served.
    pub(super) fn retry_verdict(&self) -> Option<BlkStatus> {
        match self.mode {
            PoolMode::Write | PoolMode::OutOfDataSpace => None,
            _ if self.out_of_data_space => Some(BlkStatus::NOSPC),
            _ => Some(BlkStatus::IOERR),
        }
    }

    /// Whether the worker may change the metadata on its own (write or
    /// out-of-data-space mode, as messages may; not shut down). Out of
    /// data space is where a delete's space is needed most.
    pub fn may_change(&self) -> bool {
        self.mode <= PoolMode::OutOfDataSpace && !self.closed
    }

    /// C `abort_transaction`.
    fn abort_transaction(&mut self, name: &str) {
        dmerr!("{}: aborting current metadata transaction", name);
        if self.pmd.abort().is_err() {
            dmerr!("{}: failed to abort metadata transaction", name);
            self.set_mode(name, PoolMode::Fail);
        }
        // As in C, the flag counts once it is set in core: if writing the
        // superblock fails now, it is written again when the pool closes.
        if self.pmd.set_needs_check().is_err() && !self.pmd.needs_check() {
            dmerr!("{}: failed to set 'needs_check' flag in metadata", name);
            self.set_mode(name, PoolMode::Fail);
        }
    }

    /// C `metadata_operation_failed`.
    pub fn metadata_operation_failed(&mut self, name: &str, op: &str, e: MdError) {
        dmerr!(
            "{}: metadata operation '{}' failed: error = {}",
            name,
            op,
            errno(e).to_errno()
        );
        self.abort_transaction(name);
        self.set_mode(name, PoolMode::ReadOnly);
    }

    /// C `commit`: `Err` in read-only and fail modes or when the commit
    /// failed (the pool is then degraded).
    pub fn commit(&mut self, name: &str) -> Result {
        if self.closed || self.mode >= PoolMode::OutOfMetadataSpace {
            return Err(EINVAL);
        }
        if let Err(e) = self.pmd.commit() {
            self.metadata_operation_failed(name, "dm_pool_commit_metadata", e);
            return Err(errno(e));
        }
        self.check_for_metadata_space(name);
        self.check_for_data_space(name);
        // C raises one event per crossing, from the space map's callback.
        for _ in 0..self.pmd.take_metadata_threshold_events() {
            dmwarn!("{}: reached low water mark for metadata device: sending event.", name);
            self.notify();
        }
        Ok(())
    }

    fn check_for_metadata_space(&mut self, name: &str) {
        let reason = match self.pmd.free_metadata_blocks() {
            Err(_) => Some("Could not get free metadata blocks"),
            Ok(0) => Some("No free metadata blocks"),
            Ok(_) => None,
        };
        if let Some(r) = reason {
            if !self.mode.is_read_only() {
                dmerr!("{}", r);
                self.set_mode(name, PoolMode::OutOfMetadataSpace);
            }
        }
    }

    fn check_for_data_space(&mut self, name: &str) {
        if self.mode != PoolMode::OutOfDataSpace {
            return;
        }
        if let Ok(n) = self.pmd.free_data_blocks() {
            if n > 0 {
                self.set_mode(name, PoolMode::Write);
            }
        }
    }
}
