//! The one seam through which persistent-data reaches the heap.
//!
//! In the kernel module (`cfg(dm_thin_kernel)`) there is no `alloc` crate:
//! [`Vec`] wraps `kernel::alloc::KVec` (kmalloc: physically contiguous, so a
//! 4 KiB block buffer is one page a bio can carry, `virt_to_page`),
//! [`BigVec`] wraps `KVVec` (kmalloc, falling back to vmalloc for large
//! arrays such as the block cache's slot and hash tables) and [`Box`] wraps
//! `KBox`. They allocate with `GFP_KERNEL`: callers on the pool's paths
//! (worker, messages, constructor) run inside a `memalloc_noio_save` scope,
//! which makes that `GFP_NOIO`, so reclaim never recurses into I/O on the
//! pool's own devices. On the host they wrap the
//! standard types, with failure injection for tests ([`fault`]). All expose
//! the same small, fallible API; everything else (insert, remove, ...) is
//! written once, over slices.

use super::error::{Error, Result};
use core::ops::{Deref, DerefMut};

#[cfg(dm_thin_kernel)]
mod imp {
    pub(super) type RawVec<T> = kernel::alloc::KVec<T>;
    pub(super) type RawBigVec<T> = kernel::alloc::KVVec<T>;
    pub(super) type RawBox<T> = kernel::alloc::KBox<T>;
    const FLAGS: kernel::alloc::Flags = kernel::alloc::flags::GFP_KERNEL;

    pub(super) fn vec_new<T>() -> RawVec<T> {
        RawVec::new()
    }
    pub(super) fn push<T>(v: &mut RawVec<T>, x: T) -> bool {
        v.push(x, FLAGS).is_ok()
    }
    pub(super) fn reserve<T>(v: &mut RawVec<T>, n: usize) -> bool {
        v.reserve(n, FLAGS).is_ok()
    }
    pub(super) fn pop<T>(v: &mut RawVec<T>) -> Option<T> {
        v.pop()
    }
    pub(super) fn truncate<T>(v: &mut RawVec<T>, n: usize) {
        v.truncate(n)
    }
    pub(super) fn box_new<T>(x: T) -> Option<RawBox<T>> {
        RawBox::new(x, FLAGS).ok()
    }

    pub(super) fn big_new<T>() -> RawBigVec<T> {
        RawBigVec::new()
    }
    pub(super) fn big_push<T>(v: &mut RawBigVec<T>, x: T) -> bool {
        v.push(x, FLAGS).is_ok()
    }
    pub(super) fn big_reserve<T>(v: &mut RawBigVec<T>, n: usize) -> bool {
        v.reserve(n, FLAGS).is_ok()
    }
    pub(super) fn big_pop<T>(v: &mut RawBigVec<T>) -> Option<T> {
        v.pop()
    }
    pub(super) fn big_truncate<T>(v: &mut RawBigVec<T>, n: usize) {
        v.truncate(n)
    }
}

#[cfg(not(dm_thin_kernel))]
mod imp {
    extern crate std;
    use super::fault::fails;
    pub(super) type RawVec<T> = std::vec::Vec<T>;
    pub(super) type RawBigVec<T> = std::vec::Vec<T>;
    pub(super) type RawBox<T> = std::boxed::Box<T>;

    pub(super) fn vec_new<T>() -> RawVec<T> {
        RawVec::new()
    }
    pub(super) fn push<T>(v: &mut RawVec<T>, x: T) -> bool {
        if fails::<T>() {
            return false;
        }
        v.push(x);
        true
    }
    pub(super) fn reserve<T>(v: &mut RawVec<T>, n: usize) -> bool {
        !fails::<T>() && v.try_reserve(n).is_ok()
    }
    pub(super) fn pop<T>(v: &mut RawVec<T>) -> Option<T> {
        v.pop()
    }
    pub(super) fn truncate<T>(v: &mut RawVec<T>, n: usize) {
        v.truncate(n)
    }
    pub(super) fn box_new<T>(x: T) -> Option<RawBox<T>> {
        if fails::<T>() {
            return None;
        }
        Some(RawBox::new(x))
    }

    pub(super) use self::{
        pop as big_pop, push as big_push, reserve as big_reserve, truncate as big_truncate,
        vec_new as big_new,
    };
}

/// Allocation failure injection for host tests (not in the module).
#[cfg(not(dm_thin_kernel))]
pub mod fault {
    extern crate std;
    use std::cell::Cell;

    std::thread_local! {
        static FAIL: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    /// On this thread, every `push`, `reserve` (and so `resize`, ...) of a
    /// [`super::Vec<T>`] and every [`super::Box<T>::new`] whose `T`'s type
    /// name contains `type_name` fails with `NoMem` (whether or not it
    /// would have allocated), until [`clear`].
    pub fn fail_allocations_of(type_name: &'static str) {
        FAIL.with(|f| f.set(Some(type_name)));
    }

    /// Ends [`fail_allocations_of`].
    pub fn clear() {
        FAIL.with(|f| f.set(None));
    }

    pub(super) fn fails<T>() -> bool {
        FAIL.with(|f| {
            f.get()
                .is_some_and(|n| core::any::type_name::<T>().contains(n))
        })
    }
}

/// The fallible API [`Vec`] and [`BigVec`] share, written once over the
/// `imp` functions of their raw type.
macro_rules! fallible_vec {
    ($name:ident, $new:ident, $reserve:ident, $push:ident, $pop:ident, $truncate:ident) => {
        impl<T> $name<T> {
            /// An empty vector; allocates nothing.
            pub fn new() -> Self {
                $name(imp::$new())
            }

            /// An empty vector with room for `n` elements.
            pub fn with_capacity(n: usize) -> Result<Self> {
                let mut v = Self::new();
                v.reserve(n)?;
                Ok(v)
            }

            /// Makes room for `n` more elements.
            pub fn reserve(&mut self, n: usize) -> Result<()> {
                if imp::$reserve(&mut self.0, n) {
                    Ok(())
                } else {
                    Err(Error::NoMem)
                }
            }

            /// Appends `x`.
            pub fn push(&mut self, x: T) -> Result<()> {
                if imp::$push(&mut self.0, x) {
                    Ok(())
                } else {
                    Err(Error::NoMem)
                }
            }

            /// Removes and returns the last element.
            pub fn pop(&mut self) -> Option<T> {
                imp::$pop(&mut self.0)
            }

            /// Shortens the vector to `n` elements (no-op if already shorter).
            pub fn truncate(&mut self, n: usize) {
                imp::$truncate(&mut self.0, n)
            }

            /// Removes every element.
            pub fn clear(&mut self) {
                self.truncate(0)
            }
        }

        impl<T: Clone> $name<T> {
            /// Resizes to `n` elements, filling new slots with `value`.
            pub fn resize(&mut self, n: usize, value: T) -> Result<()> {
                if n <= self.len() {
                    self.truncate(n);
                    return Ok(());
                }
                self.reserve(n - self.len())?;
                while self.len() < n {
                    self.push(value.clone())?;
                }
                Ok(())
            }
        }

        impl<T> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Deref for $name<T> {
            type Target = [T];
            fn deref(&self) -> &[T] {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut [T] {
                &mut self.0
            }
        }
    };
}

/// A growable array whose every allocation can fail with [`Error::NoMem`].
pub struct Vec<T>(imp::RawVec<T>);

fallible_vec!(Vec, vec_new, reserve, push, pop, truncate);

impl<T> Vec<T> {
    /// Inserts `x` at `index`, shifting the tail right. `index > len` is an error.
    pub fn insert(&mut self, index: usize, x: T) -> Result<()> {
        if index > self.len() {
            return Err(Error::Invalid);
        }
        self.push(x)?;
        self.0[index..].rotate_right(1);
        Ok(())
    }

    /// Removes and returns the element at `index`, shifting the tail left.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len() {
            return None;
        }
        self.0[index..].rotate_left(1);
        self.pop()
    }
}

impl<T: Clone> Vec<T> {
    /// Appends a copy of every element of `s`.
    pub fn extend_from_slice(&mut self, s: &[T]) -> Result<()> {
        self.reserve(s.len())?;
        for x in s {
            self.push(x.clone())?;
        }
        Ok(())
    }

    /// A copy of `s` in a new vector.
    pub fn from_slice(s: &[T]) -> Result<Self> {
        let mut v = Self::new();
        v.extend_from_slice(s)?;
        Ok(v)
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Vec<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A growable array for large tables, which may live in vmalloc space in
/// the kernel (`KVVec`): never hand its memory to a bio. Same fallible API
/// as [`Vec`].
pub struct BigVec<T>(imp::RawBigVec<T>);

fallible_vec!(BigVec, big_new, big_reserve, big_push, big_pop, big_truncate);

/// A heap allocation whose creation can fail with [`Error::NoMem`].
pub struct Box<T>(imp::RawBox<T>);

impl<T> Box<T> {
    /// Moves `x` to the heap.
    pub fn new(x: T) -> Result<Self> {
        imp::box_new(x).map(Box).ok_or(Error::NoMem)
    }
}

impl<T> Deref for Box<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Box<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
