//! The `thinmeta apply` script language: one operation per line.
//!
//! ```text
//! create_thin DEV            create_snap DEV ORIGIN      delete DEV
//! insert DEV VBLOCK DBLOCK   provision DEV VBLOCK        remove DEV VBLOCK
//! remove_range DEV BEGIN END set_transaction_id OLD NEW
//! reserve_metadata_snap      release_metadata_snap       resize_data NR_BLOCKS
//! commit                     abort
//! ```
//!
//! Blank lines and `#` comments are ignored. `resize_data` commits (as the
//! pool target does after a resize).

use std::fmt;

use crate::metadata::{Error, PoolMetadata};
use crate::pdata::block_device::BlockDevice;

/// One script operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateThin(u64),
    CreateSnap(u64, u64),
    Delete(u64),
    Insert(u64, u64, u64),
    Provision(u64, u64),
    Remove(u64, u64),
    RemoveRange(u64, u64, u64),
    SetTransactionId(u64, u64),
    ReserveMetadataSnap,
    ReleaseMetadataSnap,
    ResizeData(u64),
    Commit,
    Abort,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::CreateThin(d) => write!(f, "create_thin {d}"),
            Op::CreateSnap(d, o) => write!(f, "create_snap {d} {o}"),
            Op::Delete(d) => write!(f, "delete {d}"),
            Op::Insert(d, v, b) => write!(f, "insert {d} {v} {b}"),
            Op::Provision(d, v) => write!(f, "provision {d} {v}"),
            Op::Remove(d, v) => write!(f, "remove {d} {v}"),
            Op::RemoveRange(d, b, e) => write!(f, "remove_range {d} {b} {e}"),
            Op::SetTransactionId(o, n) => write!(f, "set_transaction_id {o} {n}"),
            Op::ReserveMetadataSnap => write!(f, "reserve_metadata_snap"),
            Op::ReleaseMetadataSnap => write!(f, "release_metadata_snap"),
            Op::ResizeData(n) => write!(f, "resize_data {n}"),
            Op::Commit => write!(f, "commit"),
            Op::Abort => write!(f, "abort"),
        }
    }
}

/// Parses one line: `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<Op>, String> {
    let line = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Ok(None);
    };
    let args: Vec<&str> = words.collect();
    let want = |n: usize| -> Result<Vec<u64>, String> {
        if args.len() != n {
            return Err(format!(
                "{cmd}: expected {n} argument(s), got {}",
                args.len()
            ));
        }
        args.iter()
            .map(|a| {
                a.parse::<u64>()
                    .map_err(|_| format!("{cmd}: bad number '{a}'"))
            })
            .collect()
    };
    let op = match cmd {
        "create_thin" => {
            let a = want(1)?;
            Op::CreateThin(a[0])
        }
        "create_snap" => {
            let a = want(2)?;
            Op::CreateSnap(a[0], a[1])
        }
        "delete" => {
            let a = want(1)?;
            Op::Delete(a[0])
        }
        "insert" => {
            let a = want(3)?;
            Op::Insert(a[0], a[1], a[2])
        }
        "provision" => {
            let a = want(2)?;
            Op::Provision(a[0], a[1])
        }
        "remove" => {
            let a = want(2)?;
            Op::Remove(a[0], a[1])
        }
        "remove_range" => {
            let a = want(3)?;
            Op::RemoveRange(a[0], a[1], a[2])
        }
        "set_transaction_id" => {
            let a = want(2)?;
            Op::SetTransactionId(a[0], a[1])
        }
        "reserve_metadata_snap" => {
            want(0)?;
            Op::ReserveMetadataSnap
        }
        "release_metadata_snap" => {
            want(0)?;
            Op::ReleaseMetadataSnap
        }
        "resize_data" => {
            let a = want(1)?;
            Op::ResizeData(a[0])
        }
        "commit" => {
            want(0)?;
            Op::Commit
        }
        "abort" => {
            want(0)?;
            Op::Abort
        }
        _ => return Err(format!("unknown operation '{cmd}'")),
    };
    Ok(Some(op))
}

/// Runs one operation on the pool. Returns the data block `provision`
/// allocated, if it did.
///
/// `insert` takes a reference to its data block on behalf of the mapping
/// (unless the mapping already points there); `provision` allocates like
/// the target does on a write to an unmapped or shared block.
pub fn execute<D: BlockDevice>(pmd: &mut PoolMetadata<D>, op: &Op) -> Result<Option<u64>, Error> {
    match *op {
        Op::CreateThin(d) => pmd.create_thin(d)?,
        Op::CreateSnap(d, o) => pmd.create_snap(d, o)?,
        Op::Delete(d) => pmd.delete_thin_device(d)?,
        Op::Insert(d, v, b) => {
            if b >= pmd.data_dev_size()? {
                return Err(Error::Invalid);
            }
            let old = pmd.find_block(d, v, true)?;
            if old.map(|r| r.block) == Some(b) {
                pmd.insert_block(d, v, b)?;
            } else {
                pmd.inc_data_range(b, b + 1)?;
                if let Err(e) = pmd.insert_block(d, v, b) {
                    let _ = pmd.dec_data_range(b, b + 1);
                    return Err(e);
                }
            }
        }
        Op::Provision(d, v) => {
            let need = match pmd.find_block(d, v, true)? {
                None => true,
                Some(r) => r.shared,
            };
            if need {
                let b = pmd.alloc_data_block()?.ok_or(Error::NoDataSpace)?;
                if let Err(e) = pmd.insert_block(d, v, b) {
                    let _ = pmd.dec_data_range(b, b + 1);
                    return Err(e);
                }
                return Ok(Some(b));
            }
        }
        Op::Remove(d, v) => {
            if !pmd.remove_block(d, v)? {
                return Err(Error::NotMapped);
            }
        }
        Op::RemoveRange(d, b, e) => {
            pmd.remove_range(d, b, e)?;
        }
        Op::SetTransactionId(o, n) => pmd.set_transaction_id(o, n)?,
        Op::ReserveMetadataSnap => pmd.reserve_metadata_snap()?,
        Op::ReleaseMetadataSnap => pmd.release_metadata_snap()?,
        Op::ResizeData(n) => {
            // As the pool target does: resize, then commit.
            pmd.resize_data_dev(n)?;
            pmd.commit()?;
        }
        Op::Commit => pmd.commit()?,
        Op::Abort => pmd.abort()?,
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_line("  # hi").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(
            parse_line("insert 1 2 3 # c").unwrap(),
            Some(Op::Insert(1, 2, 3))
        );
        assert_eq!(parse_line("commit").unwrap(), Some(Op::Commit));
        assert!(parse_line("insert 1 2").is_err());
        assert!(parse_line("commit 1").is_err());
        assert!(parse_line("bogus").is_err());
        assert!(parse_line("delete -1").is_err());
        for op in [
            Op::CreateSnap(1, 2),
            Op::RemoveRange(1, 2, 3),
            Op::ReserveMetadataSnap,
        ] {
            assert_eq!(parse_line(&op.to_string()).unwrap(), Some(op));
        }
    }
}
