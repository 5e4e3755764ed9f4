//! The one choke point for synchronisation primitives.
//!
//! Every atomic, `Arc`, `UnsafeCell`, thread handle and thread-local used by the library comes
//! from here. Under `--cfg loom` they are loom's, so the same algorithm text is model-checked;
//! otherwise they are `std`'s. The non-loom [`UnsafeCell`] exposes loom's `with`/`with_mut`
//! shape so the algorithm code does not change between the two builds.

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::thread;

/// The waker slot used by futures: `atomic_waker::AtomicWaker`, or loom's model of it.
#[cfg(not(loom))]
pub(crate) use atomic_waker::AtomicWaker;
#[cfg(loom)]
pub(crate) use loom::future::AtomicWaker;

/// A mutual-exclusion lock without poisoning: a panic while holding it (a callback run
/// under the `Locked` backend's lock) does not make the fence unusable.
/// (`pub` only so the sealed backend trait can name it; not reachable by users.)
#[derive(Debug, Default)]
#[allow(unreachable_pub)]
pub struct Mutex<T>(
    #[cfg(not(loom))] parking_lot::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Mutex(parking_lot::Mutex::new(value));
        #[cfg(loom)]
        return Mutex(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.0.lock();
        #[cfg(loom)]
        return self.0.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// A short busy-wait hint, for the few bounded spins the library does.
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Waits out a short critical section of another thread: spins, then yields.
pub(crate) fn backoff(spins: &mut u32) {
    if *spins < 64 {
        spin_hint();
    } else {
        thread::yield_now();
    }
    *spins += 1;
}

/// `thread_local!`, or loom's version of it.
#[cfg(not(loom))]
macro_rules! fence_thread_local {
    ($($t:tt)*) => { std::thread_local!($($t)*); };
}
#[cfg(loom)]
macro_rules! fence_thread_local {
    // loom's macro takes no `const { }` initialiser: unwrap it.
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };) => {
        loom::thread_local!($(#[$attr])* $vis static $name: $t = $init);
    };
}
pub(crate) use fence_thread_local as thread_local;

#[cfg(not(loom))]
pub(crate) use self::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(not(loom))]
mod cell {
    /// `std::cell::UnsafeCell` with loom's access API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Shared access through a raw pointer; the caller upholds aliasing.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Exclusive access through a raw pointer; the caller upholds aliasing.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A loom-tracked token: embedded in memory the library allocates itself (outside loom's
/// `Arc`), so that loom's leak check also covers it. Zero-sized outside loom.
#[derive(Debug, Default)]
pub(crate) struct LeakCheck(
    // Held only to be dropped with its owner: loom reports it if the owner leaks.
    #[cfg(loom)]
    #[allow(dead_code)]
    loom::sync::Arc<()>,
);

impl LeakCheck {
    pub(crate) fn new() -> Self {
        #[cfg(not(loom))]
        return LeakCheck();
        #[cfg(loom)]
        return LeakCheck(loom::sync::Arc::new(()));
    }
}
