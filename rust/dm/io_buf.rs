//! Buffers for synchronous block I/O ([`super::BdevFile`]): memory the
//! layer allocates itself, so it knows the pages a bio is built from.
//!
//! The C helper that maps a buffer into a bio finds each page with
//! `virt_to_page` (kmalloc memory) or `vmalloc_to_page` (vmalloc memory);
//! neither is right for the stack or module data, and a bio takes at most
//! `BIO_MAX_VECS` pages. An [`IoBuf`] is always `kvmalloc` memory of a
//! whole number of sectors spanning at most `BIO_MAX_VECS` pages, checked
//! when it is made, so every buffer [`super::BdevFile`] accepts is one a
//! single bio can carry.

use super::block_io::SECTOR_SIZE;
use crate::bindings;
use kernel::alloc::KVVec;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

/// A zeroed, `kvmalloc`-backed I/O buffer of a whole number of sectors,
/// spanning at most `BIO_MAX_VECS` pages.
///
/// Owned by its maker; the synchronous calls of [`super::BdevFile`] borrow
/// it for the I/O, so it outlives every bio built from it.
pub struct IoBuf {
    // INVARIANT: `kvmalloc` memory (what `KVVec` allocates), its length a
    // non-zero multiple of `SECTOR_SIZE` that spans at most
    // `BIO_MAX_VECS` pages; never reallocated (no method grows it).
    buf: KVVec<u8>,
}

impl IoBuf {
    /// Allocates `len` zeroed bytes; `EINVAL` if `len` is 0, not a whole
    /// number of sectors, or spans more pages than one bio takes. Sleeps.
    pub fn new(len: usize) -> Result<Self> {
        if len == 0 || len % SECTOR_SIZE as usize != 0 {
            return Err(EINVAL);
        }
        let buf = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
        let start = buf.as_ptr() as usize % PAGE_SIZE;
        if (start + len).div_ceil(PAGE_SIZE) > bindings::BIO_MAX_VECS as usize {
            return Err(EINVAL);
        }
        // INVARIANT: checked above; `from_elem` allocates with kvmalloc.
        Ok(IoBuf { buf })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub(super) fn as_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    /// The length as the C helpers take it (fits: at most 256 pages).
    pub(super) fn len_u32(&self) -> u32 {
        self.buf.len() as u32
    }
}
