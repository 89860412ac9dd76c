//! A reader/writer semaphore owning its data (the kernel's `rw_semaphore`;
//! kernel 7.3's own crate has none): [`RwSem::write`] gives `&mut T` to one
//! holder, [`RwSem::read`] and [`RwSem::try_read`] give `&T` to any number
//! at once.
//!
//! Readers share `&T`, so `T` must be `Sync` for the `RwSem` to be. Writers
//! sleep; `try_read` never does (it fails while a writer holds the
//! semaphore or waits for it, as `down_read_trylock`), so it may be used
//! where sleeping is unwanted (a target's `map`). Lockdep sees the
//! semaphore as one class per `new_rwsem!` call site.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use kernel::prelude::*;
use kernel::sync::LockClassKey;
use kernel::types::Opaque;

/// A `rw_semaphore` protecting a `T` (see the module documentation).
#[pin_data]
pub struct RwSem<T> {
    #[pin]
    sem: Opaque<kernel::bindings::rw_semaphore>,
    data: UnsafeCell<T>,
}

// SAFETY: the semaphore may move between threads with its data if the
// data may.
unsafe impl<T: Send> Send for RwSem<T> {}
// SAFETY: `write` hands `&mut T` to one thread at a time (`T: Send`), and
// `try_read` hands `&T` to several at once (`T: Sync`).
unsafe impl<T: Send + Sync> Sync for RwSem<T> {}

/// Makes a [`RwSem`] with a lock class of its own for this call site.
#[macro_export]
macro_rules! new_rwsem {
    ($data:expr, $name:expr) => {
        $crate::dm::RwSem::new($data, $name, kernel::sync::static_lock_class!())
    };
}

impl<T> RwSem<T> {
    /// A semaphore over `data`, named `name` for lockdep, of class `key`.
    pub fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `__init_rwsem` initialises the semaphore in place;
            // `name` and `key` are static, as lockdep keeps them.
            sem <- Opaque::ffi_init(|slot| unsafe {
                kernel::bindings::__init_rwsem(slot, name.as_ptr().cast(), key.as_ptr())
            }),
        })
    }

    /// Takes the semaphore for writing. Sleeps.
    pub fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: the semaphore was initialised by `new` and lives as long
        // as `self`.
        unsafe { kernel::bindings::down_write(self.sem.get()) };
        WriteGuard { sem: self, _not_send: PhantomData }
    }

    /// Takes the semaphore for writing if no one holds it. Never sleeps.
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        // SAFETY: as in `write`.
        if unsafe { kernel::bindings::down_write_trylock(self.sem.get()) } == 0 {
            return None;
        }
        Some(WriteGuard { sem: self, _not_send: PhantomData })
    }

    /// Takes the semaphore for reading, shared with other readers. Sleeps
    /// while a writer holds it or waits for it.
    pub fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: as in `write`.
        unsafe { kernel::bindings::down_read(self.sem.get()) };
        ReadGuard { sem: self, _not_send: PhantomData }
    }

    /// Takes the semaphore for reading unless a writer holds it or waits
    /// for it. Never sleeps.
    pub fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        // SAFETY: as in `write`.
        if unsafe { kernel::bindings::down_read_trylock(self.sem.get()) } == 0 {
            return None;
        }
        Some(ReadGuard { sem: self, _not_send: PhantomData })
    }
}

/// The semaphore held for writing: `&mut T`.
pub struct WriteGuard<'a, T> {
    sem: &'a RwSem<T>,
    // Released by the task that took it (`up_write` checks the owner).
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the semaphore is held for writing: no other guard exists.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the semaphore is held for writing: no other guard exists,
        // and `&mut self` makes this the only borrow of this one.
        unsafe { &mut *self.sem.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the semaphore for writing, in this task.
        unsafe { kernel::bindings::up_write(self.sem.sem.get()) };
    }
}

/// The semaphore held for reading: `&T`, shared with other readers.
pub struct ReadGuard<'a, T> {
    sem: &'a RwSem<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the semaphore is held for reading: only readers exist,
        // and they all hold `&T`.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the semaphore for reading.
        unsafe { kernel::bindings::up_read(self.sem.sem.get()) };
    }
}
