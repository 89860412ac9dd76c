//! Table-line parsing for the `thin-pool` and `thin` targets.
//!
//! Pure functions over the argument words, with the exact acceptance rules
//! and `ti->error` strings of `drivers/md/dm-thin.c` (`pool_ctr`,
//! `parse_pool_features`, `thin_ctr`, `read_dev_id`) and the kernel helpers
//! they use (`kstrtoull`, `dm_read_arg_group`). Device opening happens in the
//! targets between these steps, in the same order as C.

use core::ffi::CStr;

/// Smallest data block: 64 KiB, in sectors.
pub const DATA_DEV_BLOCK_SIZE_MIN_SECTORS: u64 = 64 * 1024 >> 9;
/// Largest data block: 1 GiB, in sectors.
pub const DATA_DEV_BLOCK_SIZE_MAX_SECTORS: u64 = 1024 * 1024 * 1024 >> 9;
/// Thin device ids are 24 bits.
pub const MAX_DEV_ID: u64 = (1 << 24) - 1;

/// `ti->error` strings, as in dm-thin.c.
pub mod msg {
    use core::ffi::CStr;
    /// Too few words (pool) or not 2 or 3 (thin).
    pub const INVALID_ARGUMENT_COUNT: &CStr = c"Invalid argument count";
    /// Metadata and data device are the same path.
    pub const SAME_DEVICES: &CStr = c"Error setting metadata or data device";
    /// Feature count missing, too big, or more than the words left.
    pub const FEATURE_COUNT: &CStr = c"Invalid number of pool feature arguments";
    /// An unknown feature word.
    pub const UNKNOWN_FEATURE: &CStr = c"Unrecognised pool feature requested";
    /// `dm_get_device` failed for the metadata device.
    pub const METADATA_DEV: &CStr = c"Error opening metadata block device";
    /// `dm_get_device` failed for the data device.
    pub const DATA_DEV: &CStr = c"Error getting data device";
    /// Block size not a multiple of 128 sectors in 128..=2097152.
    pub const BLOCK_SIZE: &CStr = c"Invalid block size";
    /// Low water mark not a number.
    pub const LOW_WATER: &CStr = c"Invalid low water mark";
    /// Thin: origin path equals pool path.
    pub const ORIGIN_SAME: &CStr = c"Error setting origin device";
    /// Thin: origin cannot be opened.
    pub const ORIGIN_DEV: &CStr = c"Error opening origin device";
    /// Thin: pool device cannot be opened.
    pub const POOL_DEV: &CStr = c"Error opening pool device";
    /// Thin: device id not a number up to 2^24 - 1.
    pub const DEV_ID: &CStr = c"Invalid device id";
    /// Thin: the pool device is not a device-mapper device.
    pub const POOL_MD: &CStr = c"Couldn't get pool mapped device";
    /// Thin: no pool object for that mapped device.
    pub const POOL_OBJECT: &CStr = c"Couldn't find pool object";
}

/// The pool's feature arguments (`struct pool_features`, less the mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFeatures {
    /// Zero newly provisioned blocks (off with `skip_block_zeroing`).
    pub zero_new_blocks: bool,
    /// Process discards (off with `ignore_discard`).
    pub discard_enabled: bool,
    /// Pass discards down to the data device (off with `no_discard_passdown`).
    pub discard_passdown: bool,
    /// Open the pool read-only (`read_only`).
    pub read_only: bool,
    /// Fail I/O rather than queue it when out of data space (`error_if_no_space`).
    pub error_if_no_space: bool,
}

impl Default for PoolFeatures {
    fn default() -> Self {
        PoolFeatures {
            zero_new_blocks: true,
            discard_enabled: true,
            discard_passdown: true,
            read_only: false,
            error_if_no_space: false,
        }
    }
}

impl PoolFeatures {
    /// The feature words in the order `dmsetup table` shows them (C `emit_flags`).
    pub fn words(&self) -> impl Iterator<Item = &'static str> {
        let w = [
            (!self.zero_new_blocks, "skip_block_zeroing"),
            (!self.discard_enabled, "ignore_discard"),
            (!self.discard_passdown, "no_discard_passdown"),
            (self.read_only, "read_only"),
            (self.error_if_no_space, "error_if_no_space"),
        ];
        w.into_iter().filter(|(on, _)| *on).map(|(_, s)| s)
    }
}

/// `kstrtoull(s, 10)`: an optional `+`, decimal digits, an optional final
/// newline, no overflow.
pub fn kstrtoull(s: &[u8]) -> Option<u64> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// `sscanf(s, "%u%c")` as `dm_read_arg` uses it: leading blanks, digits,
/// nothing after. Like the kernel's scanner the value wraps to 32 bits.
fn scan_u32(s: &[u8]) -> Option<u32> {
    let start = s.iter().position(|c| !c.is_ascii_whitespace())?;
    let s = &s[start..];
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u64, |v, &c| {
        v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
    });
    Some(v as u32)
}

/// `parse_pool_features`: the words after the four fixed pool arguments.
/// No words at all means the defaults; words beyond the counted group are
/// ignored, as in C.
pub fn parse_pool_features<'a>(
    mut words: impl Iterator<Item = &'a [u8]>,
) -> Result<PoolFeatures, &'static CStr> {
    let mut pf = PoolFeatures::default();
    let Some(count) = words.next() else {
        return Ok(pf);
    };
    let rest: [Option<&[u8]>; 4] = [words.next(), words.next(), words.next(), words.next()];
    let argc = match scan_u32(count) {
        Some(n) if n <= 4 && rest.iter().take(n as usize).all(Option::is_some) => n as usize,
        _ => return Err(msg::FEATURE_COUNT),
    };
    for word in rest.iter().take(argc).flatten() {
        let is = |name: &[u8]| word.eq_ignore_ascii_case(name);
        if is(b"skip_block_zeroing") {
            pf.zero_new_blocks = false;
        } else if is(b"ignore_discard") {
            pf.discard_enabled = false;
        } else if is(b"no_discard_passdown") {
            pf.discard_passdown = false;
        } else if is(b"read_only") {
            pf.read_only = true;
        } else if is(b"error_if_no_space") {
            pf.error_if_no_space = true;
        } else {
            return Err(msg::UNKNOWN_FEATURE);
        }
    }
    Ok(pf)
}

/// The data block size in sectors: a multiple of 128 in 128..=2097152.
pub fn parse_block_size(s: &[u8]) -> Result<u32, &'static CStr> {
    match kstrtoull(s) {
        Some(bs)
            if (DATA_DEV_BLOCK_SIZE_MIN_SECTORS..=DATA_DEV_BLOCK_SIZE_MAX_SECTORS)
                .contains(&bs)
                && bs & (DATA_DEV_BLOCK_SIZE_MIN_SECTORS - 1) == 0 =>
        {
            Ok(bs as u32)
        }
        _ => Err(msg::BLOCK_SIZE),
    }
}

/// The low water mark in blocks.
pub fn parse_low_water(s: &[u8]) -> Result<u64, &'static CStr> {
    kstrtoull(s).ok_or(msg::LOW_WATER)
}

/// `read_dev_id`: a thin device id, at most 2^24 - 1.
pub fn read_dev_id(s: &[u8]) -> Option<u64> {
    kstrtoull(s).filter(|&id| id <= MAX_DEV_ID)
}
