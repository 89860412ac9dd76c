//! The on-disk btree node (`struct btree_node` in dm-btree-internal.h) and
//! its validator.
//!
//! ```text
//! offset  size  field
//!      0     4  csum         crc32c of bytes 4..4096, salted with 121107
//!      4     4  flags        INTERNAL_NODE = 1, LEAF_NODE = 2
//!      8     8  blocknr      where this node lives
//!     16     4  nr_entries
//!     20     4  max_entries
//!     24     4  value_size
//!     28     4  padding
//!     32     8 * max_entries           keys (le64, strictly increasing)
//!     ..     value_size * max_entries  values
//! ```
//!
//! [`Node`] and [`NodeMut`] are views over a locked block's bytes. Creating a
//! view checks that the header is self-consistent for the buffer it sits in,
//! so every later index `i < max_entries` is in bounds: accessors cannot
//! panic on disk content.

use crate::pdata::block_device::BLOCK_SIZE;
use crate::pdata::block_manager::BlockValidator;
use crate::pdata::checksum::{block_checksum, stamp_checksum, stored_checksum, BTREE_CSUM_XOR};
use crate::pdata::error::{Error, Result};

/// `INTERNAL_NODE` flag.
pub const INTERNAL_NODE: u32 = 1;
/// `LEAF_NODE` flag.
pub const LEAF_NODE: u32 = 2;
/// Size of `struct node_header`.
pub const NODE_HEADER_SIZE: usize = 32;

use crate::pdata::endian::{rd32, rd64, wr32, wr64};

/// `calc_max_entries`: the largest multiple of 3 entries (key + value) that
/// fit in a block after the header. Identical to the C function.
pub const fn calc_max_entries(value_size: usize, block_size: usize) -> u32 {
    let elt_size = 8 + value_size;
    let total = (block_size - NODE_HEADER_SIZE) / elt_size;
    let n = total / 3;
    (3 * n) as u32
}

/// The btree node validator (`btree_node_validator`).
pub struct NodeValidator;

/// The shared btree node validator.
pub static BTREE_NODE_VALIDATOR: NodeValidator = NodeValidator;

impl BlockValidator for NodeValidator {
    fn name(&self) -> &'static str {
        "btree_node"
    }

    fn prepare_for_write(&self, location: u64, data: &mut [u8]) {
        wr64(data, 8, location);
        stamp_checksum(data, BTREE_CSUM_XOR);
    }

    fn check(&self, location: u64, data: &[u8]) -> Result<()> {
        if rd64(data, 8) != location {
            return Err(Error::BlockNr);
        }
        if block_checksum(data, BTREE_CSUM_XOR) != stored_checksum(data) {
            return Err(Error::Checksum);
        }
        check_header(data)?;
        // Not checked by the kernel, but cheap (once per disk read) and it
        // keeps every search well defined: keys must strictly increase.
        let n = Node::new(data)?;
        let mut prev = None;
        for i in 0..n.nr_entries() {
            let k = n.key(i);
            if let Some(p) = prev {
                if k <= p {
                    return Err(Error::KeysOutOfOrder);
                }
            }
            prev = Some(k);
        }
        Ok(())
    }
}

/// Checks the header fields the kernel's `node_check` checks (apart from
/// the checksum and block number).
pub fn check_header(data: &[u8]) -> Result<()> {
    let value_size = rd32(data, 24) as u64;
    let max_entries = rd32(data, 20) as u64;
    let nr_entries = rd32(data, 16) as u64;
    let flags = rd32(data, 4);
    // (8 + value_size) * max_entries + header <= block size. Both factors
    // come from disk: checked arithmetic (no u128 in the kernel).
    let fits = (8 + value_size)
        .checked_mul(max_entries)
        .and_then(|n| n.checked_add(NODE_HEADER_SIZE as u64))
        .is_some_and(|n| n <= data.len() as u64);
    if !fits {
        return Err(Error::MaxEntries);
    }
    if nr_entries > max_entries {
        return Err(Error::NrEntriesTooLarge);
    }
    let internal = flags & INTERNAL_NODE != 0;
    let leaf = flags & LEAF_NODE != 0;
    if internal == leaf {
        // The kernel only rejects "neither"; "both" would make every
        // algorithm here ambiguous, so it is rejected too.
        return Err(Error::NodeFlags);
    }
    if internal && value_size != 8 {
        return Err(Error::ValueSize);
    }
    Ok(())
}

/// A read-only view of a node.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    data: &'a [u8],
    nr: u32,
    max: u32,
    vsize: usize,
    flags: u32,
}

impl<'a> Node<'a> {
    /// A view over `data`, checking the header is consistent with its length.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        check_header(data)?;
        Ok(Node {
            data,
            nr: rd32(data, 16),
            max: rd32(data, 20),
            vsize: rd32(data, 24) as usize,
            flags: rd32(data, 4),
        })
    }

    /// Like [`Node::new`] but also checks the value size a tree expects for
    /// this node (8 for internal nodes, the level's value size for leaves).
    pub fn with_value_size(data: &'a [u8], leaf_value_size: usize) -> Result<Self> {
        let n = Self::new(data)?;
        if n.is_leaf() && n.vsize != leaf_value_size {
            return Err(Error::ValueSize);
        }
        Ok(n)
    }

    /// Number of entries.
    pub fn nr_entries(&self) -> u32 {
        self.nr
    }
    /// Capacity in entries.
    pub fn max_entries(&self) -> u32 {
        self.max
    }
    /// Bytes per value.
    pub fn value_size(&self) -> usize {
        self.vsize
    }
    /// Header flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.flags & LEAF_NODE != 0
    }
    /// Whether this is an internal node.
    pub fn is_internal(&self) -> bool {
        self.flags & INTERNAL_NODE != 0
    }
    /// The `blocknr` field.
    pub fn blocknr(&self) -> u64 {
        rd64(self.data, 8)
    }

    /// Key `i` (`i < max_entries`; 0 otherwise).
    pub fn key(&self, i: u32) -> u64 {
        rd64(self.data, NODE_HEADER_SIZE + 8 * i as usize)
    }

    fn value_off(&self, i: u32) -> usize {
        NODE_HEADER_SIZE + 8 * self.max as usize + self.vsize * i as usize
    }

    /// The bytes of value `i` (empty if out of range).
    pub fn value(&self, i: u32) -> &'a [u8] {
        let off = self.value_off(i);
        self.data.get(off..off + self.vsize).unwrap_or(&[])
    }

    /// Value `i` read as a le64 (child block of an internal node).
    pub fn value64(&self, i: u32) -> u64 {
        rd64(self.data, self.value_off(i))
    }

    /// `bsearch`: index of `key`, or of the key below (`want_hi == false`,
    /// -1 if none) / above (`want_hi == true`, `nr_entries` if none).
    pub fn bsearch(&self, key: u64, want_hi: bool) -> i64 {
        let (mut lo, mut hi) = self.narrow(key);
        if lo == hi {
            return lo; // exact hit
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mk = self.key(mid as u32);
            if mk == key {
                return mid;
            }
            if mk < key {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if want_hi {
            hi
        } else {
            lo
        }
    }

    /// Narrows the search window by interpolation. Returns `(i, i)` on an
    /// exact hit, otherwise `(lo, hi)` with `key(lo) < key < key(hi)`
    /// (`lo = -1` / `hi = nr_entries` standing for the ends), the same
    /// invariant the binary search keeps, so the result is identical.
    ///
    /// Keys in a node strictly increase and, in thin mapping leaves, are
    /// often dense: a guess from the end keys usually lands on or next to
    /// the answer, touching two or three cache lines of the key array
    /// instead of the eight a binary search over 250 keys walks through.
    fn narrow(&self, key: u64) -> (i64, i64) {
        let nr = self.nr as i64;
        if nr < 16 {
            return (-1, nr);
        }
        let first = self.key(0);
        if first == key {
            return (0, 0);
        }
        if key < first {
            return (-1, 0);
        }
        let last = self.key(self.nr - 1);
        if last == key {
            return (nr - 1, nr - 1);
        }
        if key > last {
            return (nr - 1, nr);
        }
        let (mut lo, mut hi) = (0i64, nr - 1);
        let (mut klo, mut khi) = (first, last);
        for _ in 0..2 {
            if hi - lo <= 8 || khi <= klo {
                break;
            }
            let span = (hi - lo) as u64;
            let (d, w) = (key.wrapping_sub(klo), khi - klo);
            // No u128 (the kernel forbids it): a huge gap just falls back
            // to the binary search.
            let off = match d.checked_mul(span) {
                Some(p) => (p / w) as i64,
                None => break,
            };
            let g = (lo + off).clamp(lo + 1, hi - 1);
            let kg = self.key(g as u32);
            if kg == key {
                return (g, g);
            }
            if kg < key {
                lo = g;
                klo = kg;
            } else {
                hi = g;
                khi = kg;
            }
        }
        (lo, hi)
    }

    /// `lower_bound`: the index of the last key `<= key`, or -1.
    pub fn lower_bound(&self, key: u64) -> i64 {
        self.bsearch(key, false)
    }

    /// `upper_bound`: the index of `key` or the first key above it
    /// (`nr_entries` if none).
    pub fn upper_bound(&self, key: u64) -> i64 {
        self.bsearch(key, true)
    }
}

/// A writable view of a node.
pub struct NodeMut<'a> {
    data: &'a mut [u8],
    nr: u32,
    max: u32,
    vsize: usize,
}

impl<'a> NodeMut<'a> {
    /// A view over `data`, checking the header is consistent.
    pub fn new(data: &'a mut [u8]) -> Result<Self> {
        check_header(data)?;
        let nr = rd32(data, 16);
        let max = rd32(data, 20);
        let vsize = rd32(data, 24) as usize;
        Ok(NodeMut {
            data,
            nr,
            max,
            vsize,
        })
    }

    /// Initialises an empty node in `data` (all other bytes zeroed) and
    /// returns a view of it.
    pub fn init(data: &'a mut [u8], flags: u32, value_size: usize) -> Result<Self> {
        if data.len() != BLOCK_SIZE || value_size > BLOCK_SIZE / 4 {
            return Err(Error::Invalid);
        }
        data.fill(0);
        let max = calc_max_entries(value_size, BLOCK_SIZE);
        wr32(data, 4, flags);
        wr32(data, 16, 0);
        wr32(data, 20, max);
        wr32(data, 24, value_size as u32);
        Self::new(data)
    }

    /// Initialises a node in a fresh (zeroed) block with the header fields
    /// of an existing node (new siblings copy `flags`, `max_entries` and
    /// `value_size` from the node they split off).
    pub fn init_with(
        data: &'a mut [u8],
        flags: u32,
        max_entries: u32,
        value_size: usize,
    ) -> Result<Self> {
        wr32(data, 4, flags);
        wr32(data, 16, 0);
        wr32(data, 20, max_entries);
        wr32(data, 24, value_size as u32);
        Self::new(data)
    }

    /// Header flags.
    pub fn flags(&self) -> u32 {
        rd32(self.data, 4)
    }

    /// Read-only view of the same node.
    pub fn as_node(&self) -> Node<'_> {
        Node {
            data: self.data,
            nr: self.nr,
            max: self.max,
            vsize: self.vsize,
            flags: rd32(self.data, 4),
        }
    }

    /// Number of entries.
    pub fn nr_entries(&self) -> u32 {
        self.nr
    }
    /// Capacity.
    pub fn max_entries(&self) -> u32 {
        self.max
    }
    /// Bytes per value.
    pub fn value_size(&self) -> usize {
        self.vsize
    }
    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        rd32(self.data, 4) & LEAF_NODE != 0
    }
    /// Key `i`.
    pub fn key(&self, i: u32) -> u64 {
        rd64(self.data, NODE_HEADER_SIZE + 8 * i as usize)
    }
    /// Value `i` as le64.
    pub fn value64(&self, i: u32) -> u64 {
        rd64(self.data, self.value_off(i))
    }
    fn value_off(&self, i: u32) -> usize {
        NODE_HEADER_SIZE + 8 * self.max as usize + self.vsize * i as usize
    }
    /// The bytes of value `i`.
    pub fn value(&self, i: u32) -> &[u8] {
        let off = self.value_off(i);
        self.data.get(off..off + self.vsize).unwrap_or(&[])
    }

    /// Sets the entry count (clamped to `max_entries`).
    pub fn set_nr_entries(&mut self, n: u32) {
        let n = n.min(self.max);
        self.nr = n;
        wr32(self.data, 16, n);
    }
    /// Sets key `i`.
    pub fn set_key(&mut self, i: u32, k: u64) {
        wr64(self.data, NODE_HEADER_SIZE + 8 * i as usize, k);
    }
    /// The bytes of value `i`, writable (empty if out of range).
    pub fn value_mut(&mut self, i: u32) -> &mut [u8] {
        let off = self.value_off(i);
        let vs = self.vsize;
        self.data.get_mut(off..off + vs).unwrap_or(&mut [])
    }

    /// Sets value `i` from bytes (truncated/padded to the value size).
    pub fn set_value(&mut self, i: u32, v: &[u8]) {
        let off = self.value_off(i);
        let n = self.vsize.min(v.len());
        if let Some(dst) = self.data.get_mut(off..off + n) {
            dst.copy_from_slice(&v[..n]);
        }
    }
    /// Sets value `i` to a le64.
    pub fn set_value64(&mut self, i: u32, v: u64) {
        let off = self.value_off(i);
        wr64(self.data, off, v);
    }

    /// Sets the flags field.
    pub fn set_flags(&mut self, flags: u32) {
        wr32(self.data, 4, flags);
    }

    /// Reformats the header as an internal node with le64 values, keeping
    /// no entries (`btree_split_beneath` rewrites the parent this way).
    pub fn reformat_internal(&mut self) {
        let max = calc_max_entries(8, BLOCK_SIZE);
        wr32(self.data, 4, INTERNAL_NODE);
        wr32(self.data, 16, 0);
        wr32(self.data, 20, max);
        wr32(self.data, 24, 8);
        self.nr = 0;
        self.max = max;
        self.vsize = 8;
    }

    /// `insert_at`: inserts (key, value) at `index`, shifting the tail.
    pub fn insert_at(&mut self, index: u32, key: u64, value: &[u8]) -> Result<()> {
        let nr = self.nr;
        if index > nr || index >= self.max || nr >= self.max {
            return Err(Error::NrEntriesTooLarge);
        }
        self.move_entries(index + 1, index, nr - index);
        self.set_key(index, key);
        self.set_value(index, value);
        self.set_nr_entries(nr + 1);
        Ok(())
    }

    /// `delete_at`: removes entry `index`, shifting the tail down.
    pub fn delete_at(&mut self, index: u32) -> Result<()> {
        self.delete_run(index, 1)
    }

    /// Deletes the `count` entries from `index` on.
    pub fn delete_run(&mut self, index: u32, count: u32) -> Result<()> {
        let nr = self.nr;
        let end = index.checked_add(count).ok_or(Error::Invalid)?;
        if count == 0 || end > nr {
            return Err(Error::Invalid);
        }
        self.move_entries(index, end, nr - end);
        self.set_nr_entries(nr - count);
        Ok(())
    }

    /// Moves `count` entries within this node from `src` to `dest`
    /// (regions may overlap). Out-of-range requests are clamped away.
    pub fn move_entries(&mut self, dest: u32, src: u32, count: u32) {
        if count == 0 {
            return;
        }
        let max = self.max;
        if dest.checked_add(count).is_none_or(|e| e > max)
            || src.checked_add(count).is_none_or(|e| e > max)
        {
            return;
        }
        let kb = NODE_HEADER_SIZE;
        let (d, s, c) = (dest as usize, src as usize, count as usize);
        self.data
            .copy_within(kb + 8 * s..kb + 8 * (s + c), kb + 8 * d);
        let vb = kb + 8 * max as usize;
        let vs = self.vsize;
        self.data
            .copy_within(vb + vs * s..vb + vs * (s + c), vb + vs * d);
    }

    /// Raw bytes (for whole-node copies).
    pub fn raw(&mut self) -> &mut [u8] {
        self.data
    }
}

/// Copies `count` entries from `src[src_off..]` to `dest[dest_off..]`
/// (`copy_entries`). Both nodes must have the same value size; ranges are
/// checked against `max_entries` and an error is returned if they do not fit.
pub fn copy_entries(
    dest: &mut NodeMut<'_>,
    dest_off: u32,
    src: &Node<'_>,
    src_off: u32,
    count: u32,
) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    if dest.vsize != src.vsize {
        return Err(Error::ValueSize);
    }
    let de = dest_off.checked_add(count).ok_or(Error::Invalid)?;
    let se = src_off.checked_add(count).ok_or(Error::Invalid)?;
    if de > dest.max || se > src.max {
        return Err(Error::NrEntriesTooLarge);
    }
    let kb = NODE_HEADER_SIZE;
    let (d, s, c) = (dest_off as usize, src_off as usize, count as usize);
    let sk = src
        .data
        .get(kb + 8 * s..kb + 8 * (s + c))
        .ok_or(Error::Invalid)?;
    dest.data
        .get_mut(kb + 8 * d..kb + 8 * (d + c))
        .ok_or(Error::Invalid)?
        .copy_from_slice(sk);
    let vs = src.vsize;
    let svb = kb + 8 * src.max as usize;
    let dvb = kb + 8 * dest.max as usize;
    let sv = src
        .data
        .get(svb + vs * s..svb + vs * (s + c))
        .ok_or(Error::Invalid)?;
    dest.data
        .get_mut(dvb + vs * d..dvb + vs * (d + c))
        .ok_or(Error::Invalid)?
        .copy_from_slice(sv);
    Ok(())
}

/// Copies entries between two writable nodes (`src` read through its view).
pub fn copy_entries_mut(
    dest: &mut NodeMut<'_>,
    dest_off: u32,
    src: &NodeMut<'_>,
    src_off: u32,
    count: u32,
) -> Result<()> {
    copy_entries(dest, dest_off, &src.as_node(), src_off, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(keys: &[u64], key: u64, want_hi: bool) -> i64 {
        let (mut lo, mut hi) = (-1i64, keys.len() as i64);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mk = keys[mid as usize];
            if mk == key {
                return mid;
            }
            if mk < key {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if want_hi {
            hi
        } else {
            lo
        }
    }

    #[test]
    fn interpolation_search_matches_binary_search() {
        let mut data = [0u8; BLOCK_SIZE];
        let mut seed = 12345u64;
        for round in 0..2000u64 {
            let mut n = NodeMut::init(&mut data, LEAF_NODE, 8).unwrap();
            let count = (round % 252) as u32;
            let mut k = seed % 1000;
            let mut keys = [0u64; 252];
            for i in 0..count {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mixed gaps: dense runs, big jumps, near u64::MAX.
                let gap = match seed % 5 {
                    0 => 1,
                    1 => 1 + seed % 4,
                    2 => 1 + seed % 1000,
                    3 => 1 + (seed >> 20) % (1 << 40),
                    _ => 2,
                };
                k = k.saturating_add(gap);
                keys[i as usize] = k;
                n.insert_at(i, k, &[0; 8]).unwrap();
            }
            let node = n.as_node();
            let keys = &keys[..count as usize];
            let mut probes = [0u64, 1, u64::MAX, k, k.wrapping_add(1), seed];
            probes[5] = keys.get((seed % 252) as usize).copied().unwrap_or(3);
            for &p in probes.iter().chain(keys.iter()) {
                for d in [0u64, 1, 2] {
                    let key = p.wrapping_add(d);
                    assert_eq!(node.bsearch(key, false), plain(keys, key, false));
                    assert_eq!(node.bsearch(key, true), plain(keys, key, true));
                    let key = p.wrapping_sub(d);
                    assert_eq!(node.bsearch(key, false), plain(keys, key, false));
                }
            }
        }
    }
}
