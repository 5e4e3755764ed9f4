//! The floor of "a fence with callbacks" (B1, B2, B5, B7).

use std::sync::atomic::{AtomicBool, Ordering};

/// A boxed one-shot callback, as every variant stores it (a fence's callbacks are
/// type-erased, so each is boxed: one allocation per callback).
pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// The floor of "a fence with up to `K` callbacks": one heap object holding the flag and
/// `K` callback slots inline, one boxed closure per callback, one atomic store and direct
/// calls at signal. No lock, no ordering guarantees for adders racing the signal: the least
/// work the operation could do with the same allocations (1 + k).
pub(crate) struct FloorFence<const K: usize> {
    signaled: AtomicBool,
    len: usize,
    callbacks: [Option<Callback>; K],
}

impl<const K: usize> FloorFence<K> {
    /// A pending floor fence: its one heap allocation.
    pub(crate) fn new() -> Box<Self> {
        Box::new(FloorFence {
            signaled: AtomicBool::new(false),
            len: 0,
            callbacks: [const { None }; K],
        })
    }

    /// Adds a callback (single owner: no synchronisation). Panics past `K`.
    pub(crate) fn add(&mut self, f: Callback) {
        self.callbacks[self.len] = Some(f);
        self.len += 1;
    }

    /// Takes the newest callback back (B2's remove).
    pub(crate) fn remove_last(&mut self) -> Option<Callback> {
        self.len = self.len.checked_sub(1)?;
        self.callbacks[self.len].take()
    }

    /// Marks it signalled and calls every callback, oldest first.
    pub(crate) fn signal(&mut self) {
        self.signaled.store(true, Ordering::Release);
        for slot in &mut self.callbacks[..self.len] {
            if let Some(f) = slot.take() {
                f();
            }
        }
        self.len = 0;
    }

    /// The flag.
    pub(crate) fn is_signaled(&self) -> bool {
        self.signaled.load(Ordering::Acquire)
    }
}
