//! The one choke point for synchronisation primitives.
//!
//! Every atomic, the fence handle's counted pointer, `UnsafeCell`, thread handle and
//! thread-local used by the library comes from here. Under `--cfg loom` they are loom's (the
//! counted pointer a model of `std`'s on loom's atomics), so the same algorithm text is
//! model-checked; otherwise they are `std`'s. The non-loom [`UnsafeCell`] exposes loom's
//! `with`/`with_mut` shape so the algorithm code does not change between the two builds.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) use loom::thread;

// The counted pointer behind every fence handle, with weak references: `std`'s, or under
// loom a model of it (loom's own `Arc` has no weak references).
#[cfg(loom)]
pub(crate) use self::counted::{Arc as FenceArc, Weak as FenceWeak};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc as FenceArc, Weak as FenceWeak};

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

/// A model of `std::sync::Arc` and `Weak` on loom's atomics, for the fence handle: the same
/// counts and orderings as `std`'s (a strong count, and a weak count that the strong
/// references share one unit of), so that loom explores a weak reference's upgrade racing
/// the last strong release. Only what the fence handle uses.
#[cfg(loom)]
mod counted {
    use std::ops::Deref;
    use std::ptr::NonNull;

    use loom::sync::atomic::{self, AtomicUsize, Ordering};

    /// The value first, so that a pointer to it is a pointer to the whole.
    #[repr(C)]
    struct Inner<T> {
        data: std::mem::ManuallyDrop<T>,
        strong: AtomicUsize,
        /// The weak references, plus one for all the strong ones together.
        weak: AtomicUsize,
        /// Set instead of freeing: the block is kept (leaked) so that a use after the free
        /// is caught by the assertions below rather than going unseen. Not a loom atomic:
        /// it is a check, not part of the modelled protocol.
        freed: std::sync::atomic::AtomicBool,
        /// Set when the last strong reference drops the value, for the same purpose: a
        /// stale view of a fence whose contents are gone is caught when it is used.
        dropped: std::sync::atomic::AtomicBool,
        /// Dropped at the free, so that loom's leak check covers the block.
        leak: std::mem::ManuallyDrop<super::LeakCheck>,
    }

    /// The block behind `ptr`, checked not freed.
    ///
    /// # Safety
    /// `ptr` came from `Arc::new` (blocks are never given back to the allocator here).
    unsafe fn live<'a, T>(ptr: NonNull<Inner<T>>) -> &'a Inner<T> {
        // SAFETY: the caller's obligation: the block is never deallocated.
        let inner = unsafe { ptr.as_ref() };
        assert!(
            !inner.freed.load(std::sync::atomic::Ordering::SeqCst),
            "a fence used after its memory was freed"
        );
        inner
    }

    /// A strong reference (`std::sync::Arc`'s model).
    pub(crate) struct Arc<T>(NonNull<Inner<T>>);
    /// A weak reference (`std::sync::Weak`'s model).
    pub(crate) struct Weak<T>(NonNull<Inner<T>>);

    // SAFETY: as `std`'s: the value is shared between threads and dropped on any of them.
    unsafe impl<T: Send + Sync> Send for Arc<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send + Sync> Sync for Arc<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send + Sync> Send for Weak<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send + Sync> Sync for Weak<T> {}

    impl<T> Arc<T> {
        pub(crate) fn new(data: T) -> Self {
            let inner = Box::new(Inner {
                data: std::mem::ManuallyDrop::new(data),
                strong: AtomicUsize::new(1),
                weak: AtomicUsize::new(1),
                freed: std::sync::atomic::AtomicBool::new(false),
                dropped: std::sync::atomic::AtomicBool::new(false),
                leak: std::mem::ManuallyDrop::new(super::LeakCheck::new()),
            });
            Arc(NonNull::from(Box::leak(inner)))
        }

        fn inner(&self) -> &Inner<T> {
            // SAFETY: made by `Arc::new`.
            unsafe { live(self.0) }
        }

        pub(crate) fn strong_count(this: &Self) -> usize {
            // Relaxed, as `std`'s: a snapshot, ordering nothing.
            this.inner().strong.load(Ordering::Relaxed)
        }

        /// The value alone, checked not dropped.
        fn value(&self) -> &T {
            let inner = self.inner();
            assert!(
                !inner.dropped.load(std::sync::atomic::Ordering::SeqCst),
                "a fence used after its last reference dropped it"
            );
            &inner.data
        }

        pub(crate) fn downgrade(this: &Self) -> Weak<T> {
            // As `std`'s: wait while `get_mut` holds the weak count locked, then take one
            // (Acquire, pairing with the unlock).
            let weak = &this.inner().weak;
            // Relaxed: only a first guess for the compare-and-swap below.
            let mut n = weak.load(Ordering::Relaxed);
            loop {
                if n == usize::MAX {
                    loom::thread::yield_now();
                    n = weak.load(Ordering::Relaxed);
                    continue;
                }
                match weak.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return Weak(this.0),
                    Err(seen) => n = seen,
                }
            }
        }

        /// As `std`'s: the value, if this is the only strong reference and no weak one
        /// exists. The weak count is locked (set to `usize::MAX`) while the strong one is
        /// read, so no weak reference can be made or upgraded meanwhile.
        pub(crate) fn get_mut(this: &mut Self) -> Option<&mut T> {
            let inner = this.inner();
            // The orderings are `std`'s: the lock's Acquire pairs with the Release of weak
            // references' drops, the strong load's with strong drops' Release, and the
            // unlock's Release with `downgrade`'s Acquire.
            if inner
                .weak
                .compare_exchange(1, usize::MAX, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return None;
            }
            let unique = inner.strong.load(Ordering::Acquire) == 1;
            inner.weak.store(1, Ordering::Release);
            // SAFETY: unique: nothing else can reach the value while `this` is borrowed.
            unique.then(|| unsafe { &mut *(*this.0.as_ptr()).data })
        }

        pub(crate) fn as_ptr(this: &Self) -> *const T {
            this.value() as *const T
        }

        pub(crate) fn into_raw(this: Self) -> *const T {
            let this = std::mem::ManuallyDrop::new(this);
            this.0.as_ptr().cast_const().cast()
        }

        /// # Safety
        /// `ptr` came from `Arc::into_raw` and one strong count comes back with it.
        pub(crate) unsafe fn from_raw(ptr: *const T) -> Self {
            // SAFETY: the caller's obligation; `into_raw` gave the allocation's address.
            Arc(unsafe { NonNull::new_unchecked(ptr.cast_mut().cast()) })
        }
    }

    impl<T> Clone for Arc<T> {
        fn clone(&self) -> Self {
            self.value();
            // Relaxed, as `std`'s: a new reference is made from an existing one.
            self.inner().strong.fetch_add(1, Ordering::Relaxed);
            Arc(self.0)
        }
    }

    impl<T> Deref for Arc<T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.value()
        }
    }

    impl<T> Drop for Arc<T> {
        fn drop(&mut self) {
            // Release, then Acquire on the last, as `std`'s.
            if self.inner().strong.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            atomic::fence(Ordering::Acquire);
            self.inner()
                .dropped
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // SAFETY: the last strong reference: the value is dropped once, here; the block
            // is never deallocated.
            unsafe { std::mem::ManuallyDrop::drop(&mut (*self.0.as_ptr()).data) };
            drop(Weak(self.0));
        }
    }

    impl<T> Weak<T> {
        pub(crate) fn upgrade(&self) -> Option<Arc<T>> {
            // SAFETY: made by `Arc::new`.
            let strong = unsafe { &live(self.0).strong };
            // Relaxed: only a first guess for the compare-and-swap below.
            let mut n = strong.load(Ordering::Relaxed);
            loop {
                if n == 0 {
                    return None;
                }
                // Acquire, as `std`'s: the value's last writes before the count came up.
                match strong.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return Some(Arc(self.0)),
                    Err(seen) => n = seen,
                }
            }
        }

        pub(crate) fn into_raw(this: Self) -> *const T {
            let this = std::mem::ManuallyDrop::new(this);
            this.0.as_ptr().cast_const().cast()
        }

        /// # Safety
        /// `ptr` came from `Weak::into_raw` and one weak count comes back with it.
        pub(crate) unsafe fn from_raw(ptr: *const T) -> Self {
            // SAFETY: the caller's obligation.
            Weak(unsafe { NonNull::new_unchecked(ptr.cast_mut().cast()) })
        }
    }

    impl<T> Drop for Weak<T> {
        fn drop(&mut self) {
            // SAFETY: made by `Arc::new`.
            let inner = unsafe { live(self.0) };
            // Release, then Acquire on the last, as `std`'s.
            if inner.weak.fetch_sub(1, Ordering::Release) == 1 {
                atomic::fence(Ordering::Acquire);
                // The free: marked, and the leak token let go (the value was dropped by the
                // last strong reference).
                inner.freed.store(true, std::sync::atomic::Ordering::SeqCst);
                // SAFETY: no reference of either kind is left, so nothing else touches the
                // token; it is dropped once, here.
                unsafe { std::mem::ManuallyDrop::drop(&mut (*self.0.as_ptr()).leak) };
            }
        }
    }
}
