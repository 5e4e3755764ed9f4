//! [`Guard`]: a read-side critical section, and [`pin`], which enters one.
//!
//! A guard is the reader's half of RCU: while it is alive, values loaded
//! through it stay valid. Guards nest (a thread may hold several) and are
//! `!Send`, because each reclaimer keeps the section's state per thread.

use core::fmt;
use core::marker::PhantomData;

use crate::reclaimer::{DefaultReclaimer, Reclaimer};

/// A read-side critical section (`rcu_read_lock` … `rcu_read_unlock`).
///
/// ```
/// use rcu::{Guard, Slot};
///
/// let slot: Slot<Box<i32>> = Slot::new(Some(Box::new(3)));
/// let mut guard = Guard::new();
/// let value = slot.load(&mut guard).expect("the slot is full");
/// assert_eq!(**value, 3);
/// ```
///
/// While a guard is alive on a thread, that thread must not call
/// [`synchronize`](crate::synchronize) for the same reclaimer: it would wait for
/// the guard itself (the reclaimers detect it and panic).
///
/// Forgetting a guard (`mem::forget`) is safe but leaves its thread inside the
/// read-side section for good, like a reader that never leaves: nothing it
/// could see is ever freed (with [`Epoch`](crate::Epoch) and
/// [`Reference`](crate::Reference), nothing retired afterwards on any thread;
/// with [`Hazard`](crate::Hazard), the value it protected last), that thread's
/// `synchronize` panics, and other threads' `synchronize` waits forever.
pub struct Guard<R: Reclaimer = DefaultReclaimer> {
    pub(crate) raw: R::Guard,
    /// Sections belong to the thread that entered them.
    _not_send: PhantomData<*mut ()>,
}

/// Enters a read-side critical section (`rcu_read_lock`). Re-entrant.
///
/// ```
/// let outer = rcu::pin::<rcu::Epoch>();
/// let inner = rcu::pin::<rcu::Epoch>();
/// drop(outer); // guards may end in any order
/// drop(inner);
/// ```
pub fn pin<R: Reclaimer>() -> Guard<R> {
    Guard {
        raw: R::pin(),
        _not_send: PhantomData,
    }
}

impl<R: Reclaimer> Guard<R> {
    /// Enters a read-side critical section; the same as [`pin`].
    pub fn new() -> Self {
        pin()
    }
}

impl<R: Reclaimer> Default for Guard<R> {
    fn default() -> Self {
        pin()
    }
}

impl<R: Reclaimer> fmt::Debug for Guard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("reclaimer", &R::NAME)
            .finish_non_exhaustive()
    }
}
