//! The lock-based reference reclaimer.
//!
//! The simplest scheme that gives RCU's guarantees, kept as the yardstick the
//! faster reclaimers are tested against and as the one loom models.
//!
//! # Protocol
//!
//! State: a global `RwLock<()>` (the *section lock*), a global queue of
//! deferred jobs, a global *drain* mutex, and per thread a nesting depth plus
//! the read guard held while the depth is non-zero.
//!
//! - **pin**: depth 0 → 1 takes the section lock for reading and parks the read
//!   guard in the thread-local; deeper pins only count. (Taking the read lock
//!   again while holding it could deadlock behind a waiting writer, and guards
//!   may be dropped out of order, so one read guard per thread is shared.)
//! - **unpin**: depth 1 → 0 releases the read guard, then tries a collection
//!   if anything is queued.
//! - **retire/defer**: push the job on the queue; if this thread is not in a
//!   section, try a collection.
//! - **collect** (opportunistic): `try_lock` the drain mutex, then
//!   `try_write` the section lock. Holding the write lock proves that no reader
//!   is inside a section, so every reader that could have reached a queued job's
//!   value (one that entered before the value was unlinked) has left. Swap the
//!   queue out *while holding the write lock*, release the lock, run the batch,
//!   release the drain mutex.
//! - **synchronize**: the same with blocking `lock`/`write`, repeated while the
//!   batch it ran deferred more work on this thread (a cascade).
//!
//! # Races considered
//!
//! - *A job queued while a collector holds the write lock*: no reader is in a
//!   section at that moment, so the job is already safe; taking it in this
//!   batch is fine, leaving it for the next is fine too.
//! - *A job run while a reader enters*: readers entering after the job's
//!   value was unlinked cannot reach it; readers that entered before had left
//!   when the write lock was granted.
//! - *A job that pins, defers or replaces*: jobs run with no lock held except
//!   the drain mutex; pin takes only the section lock, and defer's own
//!   collection uses `try_lock` on the drain mutex, so it backs off instead of
//!   deadlocking. Its job stays queued for the next collection (synchronize
//!   loops for it).
//! - *Two collectors*: the drain mutex admits one; `synchronize` waits for a
//!   running batch to finish before taking its own, so when it returns every
//!   job queued before the call has *finished* running, wherever it ran.
//! - *synchronize inside a section or a job*: it would wait for itself. Both
//!   are detected through the thread-locals and panic with a message.
//!
//! # Orderings
//!
//! All cross-thread hand-offs go through the locks (acquire on lock, release on
//! unlock); the only atomic is the pending count, whose orderings are argued
//! in `Pending`.

use core::cell::{Cell, RefCell};
use std::sync::{PoisonError, TryLockError};

use super::{Job, Pending, Reclaimer, sealed::Ops, tally};
use crate::Pointer;
use crate::pointer::Retired;
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::{Mutex, RwLock, RwLockReadGuard};

/// The lock-based reference reclaimer: readers hold a global `RwLock` for
/// reading; deferred work runs once the lock can be taken for writing.
///
/// Slow under contention and writer-starvable, but obviously correct; the
/// faster reclaimers are tested against it and loom models it.
///
/// ```
/// use rcu::{Reference, Slot};
///
/// let slot: Slot<Box<&str>, Reference> = Slot::new(Some(Box::new("old")));
/// slot.replace(Some(Box::new("new")));
/// rcu::synchronize::<Reference>(); // the old value is dropped by now
/// assert_eq!(rcu::pending::<Reference>(), 0);
/// assert_eq!(*slot.load_clone().unwrap(), "new");
/// ```
#[derive(Default, Debug, Clone, Copy)]
pub struct Reference;

/// The global state of the reference reclaimer.
struct State {
    /// Readers hold it shared; a collector holds it exclusively while it
    /// takes the queue.
    section: RwLock<()>,
    /// Jobs waiting for their readers to leave.
    queue: Mutex<Vec<Job>>,
    /// Held while a batch is taken and run: one collector at a time.
    drain: Mutex<()>,
    pending: Pending,
}

#[cfg(not(loom))]
impl State {
    const fn new() -> Self {
        Self {
            section: RwLock::new(()),
            queue: Mutex::new(Vec::new()),
            drain: Mutex::new(()),
            pending: Pending::new(),
        }
    }
}

#[cfg(loom)]
impl State {
    fn new() -> Self {
        Self {
            section: RwLock::new(()),
            queue: Mutex::new(Vec::new()),
            drain: Mutex::new(()),
            pending: Pending::new(),
        }
    }
}

crate::sync::global! {
    fn state() -> &'static State = State::new();
}

/// This thread's read-side state.
struct Reader {
    depth: Cell<usize>,
    guard: RefCell<Option<RwLockReadGuard<'static, ()>>>,
    /// Set while this thread runs a batch of jobs.
    draining: Cell<bool>,
}

crate::sync::thread_local! {
    static READER: Reader = const {
        Reader {
            depth: Cell::new(0),
            guard: RefCell::new(None),
            draining: Cell::new(false),
        }
    };
}

/// The read-side state of a [`Reference`] guard: one level of this thread's
/// section nesting.
#[derive(Debug)]
pub struct ReferenceGuard {
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl Drop for ReferenceGuard {
    fn drop(&mut self) {
        let released = READER.try_with(|r| {
            let depth = r.depth.get() - 1;
            r.depth.set(depth);
            if depth == 0 {
                // Taken out before dropping so the `RefCell` is not borrowed
                // while the lock is released.
                let guard = r.guard.borrow_mut().take();
                drop(guard);
                !r.draining.get()
            } else {
                false
            }
        });
        if released.unwrap_or(false) && state().pending.get() > 0 {
            try_collect();
        }
    }
}

fn in_section() -> bool {
    READER.try_with(|r| r.depth.get() > 0).unwrap_or(false)
}

fn lock<T>(m: &Mutex<T>) -> crate::sync::MutexGuard<'_, T> {
    // A job that panicked poisons nothing we rely on: the queue is a plain
    // vector, and the drain mutex guards no data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the queued jobs. The caller holds the section lock for writing.
fn take_queue(s: &State) -> Vec<Job> {
    core::mem::take(&mut *lock(&s.queue))
}

/// Runs a batch with `draining` set, returning whether the batch deferred
/// more work on this thread.
fn run(s: &State, batch: Vec<Job>) -> bool {
    let before = tally::now();
    let was = READER
        .try_with(|r| r.draining.replace(true))
        .unwrap_or(false);
    for job in batch {
        job();
        s.pending.done();
    }
    let _ = READER.try_with(|r| r.draining.set(was));
    tally::now() != before
}

/// Collects if no reader is in a section and no other collector runs.
fn try_collect() {
    let s = state();
    let drain = match s.drain.try_lock() {
        Ok(d) => d,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    let batch = match s.section.try_write() {
        Ok(w) => {
            let batch = take_queue(s);
            drop(w);
            batch
        }
        Err(TryLockError::Poisoned(p)) => {
            let batch = take_queue(s);
            drop(p.into_inner());
            batch
        }
        Err(TryLockError::WouldBlock) => return,
    };
    run(s, batch);
    drop(drain);
}

impl Reclaimer for Reference {
    type Guard = ReferenceGuard;
    const NAME: &'static str = "reference";
}

impl Ops for Reference {
    fn pin() -> ReferenceGuard {
        READER.with(|r| {
            let depth = r.depth.get();
            if depth == 0 {
                let guard = state()
                    .section
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                *r.guard.borrow_mut() = Some(guard);
            }
            r.depth.set(depth + 1);
        });
        ReferenceGuard {
            _not_send: core::marker::PhantomData,
        }
    }

    fn protect(_guard: &mut ReferenceGuard, src: &AtomicPtr<()>) -> *mut () {
        // Acquire: pairs with the Release of the store that published the
        // pointer; the pointee's initialisation is visible.
        src.load(Ordering::Acquire)
    }

    unsafe fn retire<P: Pointer>(raw: *mut ()) {
        // SAFETY: the caller gives up ownership of `raw`, which came from
        // `P::into_raw` (obligation 1 of `retire`).
        let value = unsafe { Retired::<P>::new(raw) };
        Self::defer(Box::new(move || drop(value)));
    }

    fn defer(job: Job) {
        let s = state();
        s.pending.add();
        lock(&s.queue).push(job);
        let idle = READER
            .try_with(|r| r.depth.get() == 0 && !r.draining.get())
            .unwrap_or(false);
        if idle {
            try_collect();
        }
    }

    fn synchronize() {
        assert!(
            !in_section(),
            "rcu::synchronize called inside a read-side critical section of the same thread: it would wait for itself"
        );
        assert!(
            !READER.try_with(|r| r.draining.get()).unwrap_or(false),
            "rcu::synchronize called from a deferred closure: it would wait for itself"
        );
        let s = state();
        loop {
            let drain = lock(&s.drain);
            let write = s.section.write().unwrap_or_else(PoisonError::into_inner);
            let batch = take_queue(s);
            drop(write);
            let cascaded = run(s, batch);
            drop(drain);
            if !cascaded {
                break;
            }
        }
    }

    fn flush() {
        if !in_section() {
            try_collect();
        }
    }

    fn pending() -> usize {
        state().pending.get()
    }
}
