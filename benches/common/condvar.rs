//! A fence written the obvious way with a mutex and a condition variable (B1, B2, B3), in
//! two flavours: std's (whose `notify_all` makes a futex wake system call on every call,
//! waiter or not) and parking_lot's (which skips the wake when nobody waits).

use super::Callback;

/// The state under the lock.
#[derive(Default)]
pub(crate) struct CondvarState {
    signaled: bool,
    next_id: u64,
    callbacks: Vec<(u64, Callback)>,
}

/// A mutex around [`CondvarState`] and its condition variable.
pub(crate) trait LockCondvar: Default + Send + Sync + 'static {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// Runs `f` on the state under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut CondvarState) -> R) -> R;
    /// Blocks until the state reads signalled.
    fn wait_signaled(&self);
    /// Wakes every waiter.
    fn notify_all(&self);
}

/// `std::sync::{Mutex, Condvar}`.
#[derive(Default)]
pub(crate) struct StdSync {
    state: std::sync::Mutex<CondvarState>,
    cond: std::sync::Condvar,
}

impl LockCondvar for StdSync {
    const NAME: &'static str = "mutex_condvar";
    fn with<R>(&self, f: impl FnOnce(&mut CondvarState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
    fn wait_signaled(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.signaled {
            s = self.cond.wait(s).unwrap();
        }
    }
    fn notify_all(&self) {
        self.cond.notify_all();
    }
}

/// `parking_lot::{Mutex, Condvar}`.
#[derive(Default)]
pub(crate) struct ParkingLot {
    state: parking_lot::Mutex<CondvarState>,
    cond: parking_lot::Condvar,
}

impl LockCondvar for ParkingLot {
    const NAME: &'static str = "parking_lot_condvar";
    fn with<R>(&self, f: impl FnOnce(&mut CondvarState) -> R) -> R {
        f(&mut self.state.lock())
    }
    fn wait_signaled(&self) {
        let mut s = self.state.lock();
        while !s.signaled {
            self.cond.wait(&mut s);
        }
    }
    fn notify_all(&self) {
        self.cond.notify_all();
    }
}

/// The fence: callbacks in a `Vec` under the lock, run after it is released; waiters block
/// on the condition variable.
#[derive(Default)]
pub(crate) struct CondvarFence<L: LockCondvar>(L);

impl<L: LockCondvar> CondvarFence<L> {
    /// A pending fence.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a callback; `None` if already signalled.
    pub(crate) fn add_callback(&self, f: Callback) -> Option<u64> {
        self.0.with(|s| {
            if s.signaled {
                return None;
            }
            let id = s.next_id;
            s.next_id += 1;
            s.callbacks.push((id, f));
            Some(id)
        })
    }

    /// Removes a callback; true if it will not run.
    pub(crate) fn remove_callback(&self, id: u64) -> bool {
        let removed = self.0.with(|s| {
            let pos = s.callbacks.iter().position(|(i, _)| *i == id)?;
            Some(s.callbacks.remove(pos))
        });
        // The closure is freed outside the lock.
        removed.is_some()
    }

    /// Signals: marks it, wakes waiters, then runs the callbacks outside the lock.
    pub(crate) fn signal(&self) {
        let callbacks = self.0.with(|s| {
            s.signaled = true;
            std::mem::take(&mut s.callbacks)
        });
        self.0.notify_all();
        for (_, f) in callbacks {
            f();
        }
    }

    /// Blocks until signalled.
    pub(crate) fn wait(&self) {
        self.0.wait_signaled();
    }
}
