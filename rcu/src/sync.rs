//! The one place this crate takes its synchronisation primitives from.
//!
//! Every atomic, lock, cell, thread and `Arc` the algorithms use is imported from
//! here. In an ordinary build these are the standard library's types; under
//! `--cfg loom` they are [loom]'s instrumented doubles, so the model checker sees
//! every access. The algorithm text is the same in both builds: the non-loom
//! [`cell::UnsafeCell`] offers loom's closure-based `with`/`with_mut` accessors
//! instead of `get`.
//!
//! The module is public so that the documentation can show which primitive each
//! build uses; other crates have no reason to import from it.
//!
//! [loom]: https://docs.rs/loom
//!
//! ```
//! use rcu::sync::atomic::{AtomicUsize, Ordering};
//!
//! let n = AtomicUsize::new(1);
//! assert_eq!(n.fetch_add(1, Ordering::Relaxed), 1);
//! ```

#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Atomic integers and pointers, orderings and fences.
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
}

/// Threads and the scheduler hint used by spin-and-yield loops.
pub mod thread {
    #[cfg(not(loom))]
    pub use std::thread::{JoinHandle, spawn, yield_now};

    #[cfg(loom)]
    pub use loom::thread::{JoinHandle, spawn, yield_now};
}

/// Interior mutability with loom's closure-based access.
pub mod cell {
    #[cfg(loom)]
    pub use loom::cell::UnsafeCell;

    /// `core::cell::UnsafeCell` with loom's `with`/`with_mut` accessors, so that
    /// code reads the same whether or not loom is tracking the accesses.
    ///
    /// ```
    /// use rcu::sync::cell::UnsafeCell;
    ///
    /// let cell = UnsafeCell::new(1);
    /// // SAFETY: no other reference to the cell's contents exists.
    /// cell.with_mut(|p| unsafe { *p += 1 });
    /// // SAFETY: the mutable access above has ended.
    /// assert_eq!(cell.with(|p| unsafe { *p }), 2);
    /// ```
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        pub const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// Unwraps the value.
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    #[cfg(not(loom))]
    impl<T: ?Sized> UnsafeCell<T> {
        /// Calls `f` with a shared raw pointer to the contents.
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with a mutable raw pointer to the contents.
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Per-thread storage: `std::thread_local!`, or loom's version that is reset
/// for every model iteration.
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// loom's `thread_local!` predates `const { .. }` initialisers: accept them
/// and pass the inner expression on.
#[cfg(loom)]
macro_rules! loom_thread_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };)*) => {
        loom::thread_local! { $($(#[$attr])* $vis static $name: $t = $init;)* }
    };
}
#[cfg(loom)]
pub(crate) use loom_thread_local as thread_local;

/// Declares `fn $name() -> &'static $ty`, a process-wide value.
///
/// Outside loom it is a plain `static` (so `$init` must be a constant
/// expression); under loom it is `loom::lazy_static!`, which loom drops and
/// rebuilds for every model iteration so that each execution starts fresh.
macro_rules! global {
    ($vis:vis fn $name:ident() -> &'static $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $vis fn $name() -> &'static $ty {
            static VALUE: $ty = $init;
            &VALUE
        }

        #[cfg(loom)]
        $vis fn $name() -> &'static $ty {
            loom::lazy_static! {
                static ref VALUE: $ty = $init;
            }
            &VALUE
        }
    };
}
pub(crate) use global;
