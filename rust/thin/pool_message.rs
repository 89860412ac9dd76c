//! `dmsetup message <pool> 0 ...`: the pool's messages, with C
//! `pool_message`'s argument checks, log lines and errnos. Each message
//! either takes effect, and is committed at once, or changes nothing (the
//! metadata API checks before it writes; a failed commit aborts, and the
//! message then fails, where C would report success).

use crate::dm::{dmerr, dmerr_metadata, dmwarn, dmwarn_metadata};
use super::metadata::Error as MdError;
use super::pool::{errno, PoolMode, PoolState};
use super::table_line::{kstrtoull, read_dev_id};
use crate::dm::Args;
use kernel::prelude::*;

fn arg_str<'a>(args: &Args<'a>, i: usize) -> &'a str {
    args.get(i)
        .and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or("?")
}

/// C `check_arg_count`.
fn check_arg_count(args: &Args<'_>, required: usize) -> Result {
    if args.len() != required {
        dmwarn!(
            "Message received with {} arguments instead of {}.",
            args.len(),
            required
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// C `read_dev_id` with its warning.
fn dev_id(args: &Args<'_>, i: usize) -> Result<u64> {
    read_dev_id(args.get(i).unwrap_or(b"")).ok_or_else(|| {
        dmwarn!("Message received with invalid device id: {}", arg_str(args, i));
        EINVAL
    })
}

/// The errno, and the log line `dm-thin-metadata.c` writes for the
/// refusals it explains.
fn md(r: core::result::Result<(), MdError>) -> Result {
    r.map_err(|e| {
        match e {
            MdError::TransactionIdMismatch => dmerr_metadata!("mismatched transaction id"),
            MdError::MetadataSnapExists => dmwarn_metadata!(
                "Pool metadata snapshot already exists: release this before taking another."
            ),
            MdError::NoMetadataSnap => {
                dmwarn_metadata!("No pool metadata snapshot found: nothing to release.")
            }
            _ => {}
        }
        errno(e)
    })
}

/// C `pool_message`, on the locked pool state.
pub fn pool_message(st: &mut PoolState, name: &str, args: &Args<'_>) -> Result {
    if st.mode() >= PoolMode::OutOfMetadataSpace {
        dmerr!(
            "{}: unable to service pool target messages in READ_ONLY or FAIL mode",
            name
        );
        return Err(EOPNOTSUPP);
    }
    let cmd = args.get(0).unwrap_or(b"");
    let is = |s: &[u8]| cmd.eq_ignore_ascii_case(s);
    let r = if is(b"create_thin") {
        create_thin(st, args)
    } else if is(b"create_snap") {
        create_snap(st, args)
    } else if is(b"delete") {
        delete(st, args)
    } else if is(b"set_transaction_id") {
        set_transaction_id(st, args)
    } else if is(b"reserve_metadata_snap") {
        reserve_metadata_snap(st, name, args)
    } else if is(b"release_metadata_snap") {
        release_metadata_snap(st, args)
    } else {
        dmwarn!(
            "Unrecognised thin pool target message received: {}",
            arg_str(args, 0)
        );
        Err(EINVAL)
    };
    // Beyond C, which reports success whatever its commit does: a message
    // whose commit fails (and is aborted) fails, since its change is lost.
    r?;
    st.commit(name)
}

fn create_thin(st: &mut PoolState, args: &Args<'_>) -> Result {
    check_arg_count(args, 2)?;
    let id = dev_id(args, 1)?;
    md(st.pmd.create_thin(id)).inspect_err(|_| {
        dmwarn!(
            "Creation of new thinly-provisioned device with id {} failed.",
            arg_str(args, 1)
        );
    })
}

fn create_snap(st: &mut PoolState, args: &Args<'_>) -> Result {
    check_arg_count(args, 3)?;
    let id = dev_id(args, 1)?;
    let origin = dev_id(args, 2)?;
    md(st.pmd.create_snap(id, origin)).inspect_err(|_| {
        dmwarn!(
            "Creation of new snapshot {} of device {} failed.",
            arg_str(args, 1),
            arg_str(args, 2)
        );
    })
}

fn delete(st: &mut PoolState, args: &Args<'_>) -> Result {
    check_arg_count(args, 2)?;
    let id = dev_id(args, 1)?;
    // A large thin is detached here and released by the worker (see
    // `reclaim.rs`).
    md(st.pmd.start_delete(id).map(|_| ())).inspect_err(|_| {
        dmwarn!("Deletion of thin device {} failed.", arg_str(args, 1));
    })
}

fn set_transaction_id(st: &mut PoolState, args: &Args<'_>) -> Result {
    check_arg_count(args, 3)?;
    let Some(old) = kstrtoull(args.get(1).unwrap_or(b"")) else {
        dmwarn!(
            "set_transaction_id message: Unrecognised id {}.",
            arg_str(args, 1)
        );
        return Err(EINVAL);
    };
    let Some(new) = kstrtoull(args.get(2).unwrap_or(b"")) else {
        dmwarn!(
            "set_transaction_id message: Unrecognised new id {}.",
            arg_str(args, 2)
        );
        return Err(EINVAL);
    };
    md(st.pmd.set_transaction_id(old, new)).inspect_err(|_| {
        dmwarn!(
            "Failed to change transaction id from {} to {}.",
            arg_str(args, 1),
            arg_str(args, 2)
        );
    })
}

fn reserve_metadata_snap(st: &mut PoolState, name: &str, args: &Args<'_>) -> Result {
    check_arg_count(args, 1)?;
    let _ = st.commit(name);
    md(st.pmd.reserve_metadata_snap())
        .inspect_err(|_| dmwarn!("reserve_metadata_snap message failed."))
}

fn release_metadata_snap(st: &mut PoolState, args: &Args<'_>) -> Result {
    check_arg_count(args, 1)?;
    md(st.pmd.release_metadata_snap())
        .inspect_err(|_| dmwarn!("release_metadata_snap message failed."))
}
