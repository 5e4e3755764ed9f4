//! The reference reclaimer: counted read-side sections and a lock-protected
//! queue.
//!
//! The simplest scheme that gives RCU's guarantees, kept as the yardstick the
//! faster reclaimers are tested against and as the one loom models. Its read
//! side never blocks, as an RCU read side must not.
//!
//! # Protocol
//!
//! State: a [`Phases`] count of open read-side sections (the SRCU scheme; its
//! module docs carry the proof), a global queue of deferred jobs in the order
//! they were deferred, a *drain* mutex, the pending count; per thread, the
//! number of guards alive and whether the thread is running a batch.
//!
//! - **pin**: enter a section (an increment and a fence: no lock, no wait);
//!   the guard keeps the section's phase. Every guard is its own section, so
//!   nesting needs no bookkeeping and guards may end in any order.
//! - **unpin**: exit the section. Readers never run deferred work.
//! - **retire/defer**: push the job on the queue; if this thread is neither
//!   in a section nor running a batch, try a collection.
//! - **collect** (opportunistic, never waits): `try_lock` the drain mutex,
//!   note the queue's length `n`, and check that no section is open
//!   ([`Phases::is_quiescent`]); if none is, take the first `n` jobs and run
//!   them, still holding the drain mutex.
//! - **synchronize**: lock the drain mutex, note `n`, run a grace period
//!   ([`Phases::wait`]: it waits for the sections open now, while new ones
//!   enter freely), then take and run the first `n` jobs; repeat while the
//!   batch deferred more work on this thread (a cascade).
//!
//! # Races considered
//!
//! - *A reader enters while a collector checks*: the jobs counted in `n` were
//!   queued (so unlinked) before the check's fence; a reader the check does
//!   not see has its fence after it and cannot reach what they free.
//! - *A reader pins while a synchronize waits*: it joins a counter and goes
//!   on; the wait drains the other counter first, then flips and drains the
//!   old one, so readers arriving meanwhile do not hold it up forever. (With
//!   a reader-writer lock, a reader could queue behind the waiting writer
//!   while the writer waited for another reader that waited for it.)
//! - *Jobs queued after `n` was noted*: left for the next collection; only
//!   the drain mutex's holder removes jobs, so the first `n` are the ones
//!   counted.
//! - *A job that pins, defers, replaces or flushes*: the thread is marked as
//!   running a batch, so its defers only queue; a collection attempt from it
//!   would fail `try_lock` anyway. The queued work runs in the next
//!   collection (synchronize loops for it).
//! - *Two collectors*: the drain mutex admits one, and a batch runs entirely
//!   under it, so when `synchronize` holds the mutex no batch is half-run:
//!   when it returns, every job queued before the call has *finished*,
//!   wherever it ran.
//! - *A job panics*: caught; the rest of the batch runs; every flag and count
//!   is restored; the first panic resumes from the `rcu` call that ran the
//!   batch once its work is done (see the module docs of `reclaimer`).
//! - *synchronize inside a section or a job*: it would wait for itself. Both
//!   are detected through the thread-locals and panic with a message.
//! - *A forgotten guard*: its section stays open; every later grace period
//!   waits forever and opportunistic collections never succeed, and the
//!   forgetting thread's `synchronize` panics (it is still in a section).
//!   Nothing is freed early.
//!
//! # Orderings
//!
//! The section counts are argued in [`Phases`]. The queue hands jobs over
//! through its mutex (acquire on lock, release on unlock), and a job is
//! queued after its value was unlinked, so the unlink happens before the
//! collector's fence. The pending count's orderings are argued in `Pending`.

use core::cell::Cell;
use std::sync::{PoisonError, TryLockError};

use super::phases::{Phase, Phases};
use super::{FirstPanic, Job, Pending, Reclaimer, sealed::Ops, tally};
use crate::Pointer;
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::thread::yield_now;
use crate::sync::{Mutex, MutexGuard};

/// The reference reclaimer: readers count themselves in and out of a
/// two-phase section count and never wait; deferred work runs once a
/// collector has seen every earlier reader leave.
///
/// Slow under contention (every reader touches one shared counter), but
/// obviously correct; the faster reclaimers are tested against it and loom
/// models it.
///
/// ```
/// use rcu::{Reference, Slot};
///
/// let slot: Slot<Box<&str>, Reference> = Slot::new(Some(Box::new("old")));
/// slot.replace(Some(Box::new("new")));
/// rcu::synchronize::<Reference>(); // the old value is dropped by now
/// assert_eq!(*slot.load_clone().unwrap(), "new");
/// ```
#[derive(Default, Debug, Clone, Copy)]
pub struct Reference;

/// The global state of the reference reclaimer.
struct State {
    /// Open read-side sections.
    readers: Phases,
    /// Jobs waiting for their readers to leave, oldest first.
    queue: Mutex<Vec<Job>>,
    /// Held while a batch is taken and run: one collector at a time.
    drain: Mutex<()>,
    pending: Pending,
}

#[cfg(not(loom))]
impl State {
    const fn new() -> Self {
        Self {
            readers: Phases::new(),
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
            readers: Phases::new(),
            queue: Mutex::new(Vec::new()),
            drain: Mutex::new(()),
            pending: Pending::new(),
        }
    }
}

crate::sync::global! {
    fn state() -> &'static State = State::new();
}

/// This thread's side of the protocol.
struct Local {
    /// Guards alive on this thread.
    guards: Cell<usize>,
    /// Set while this thread runs a batch of jobs.
    draining: Cell<bool>,
}

crate::sync::thread_local! {
    static LOCAL: Local = const {
        Local {
            guards: Cell::new(0),
            draining: Cell::new(false),
        }
    };
}

/// The read-side state of a [`Reference`] guard: one open section.
#[derive(Debug)]
pub struct ReferenceGuard {
    /// `None` only once dropped.
    phase: Option<Phase>,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl Drop for ReferenceGuard {
    fn drop(&mut self) {
        if let Some(phase) = self.phase.take() {
            state().readers.exit(phase);
        }
        // During thread teardown the count is gone; nothing reads it then.
        let _ = LOCAL.try_with(|l| l.guards.set(l.guards.get() - 1));
    }
}

fn in_section() -> bool {
    LOCAL.try_with(|l| l.guards.get() > 0).unwrap_or(false)
}

fn is_draining() -> bool {
    LOCAL.try_with(|l| l.draining.get()).unwrap_or(false)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Jobs run with their panics caught, so no panic crosses these locks; and
    // neither the queue (a plain vector) nor the drain mutex (no data) could
    // be left inconsistent by one anyway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets this thread's `draining` flag for its lifetime, restoring the
/// previous value on drop.
struct Draining(bool);

impl Draining {
    fn enter() -> Self {
        Self(
            LOCAL
                .try_with(|l| l.draining.replace(true))
                .unwrap_or(false),
        )
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| l.draining.set(self.0));
    }
}

/// Runs a batch, each job with its panic caught and counted done either way.
/// Returns whether the batch deferred more work on this thread, and its first
/// panic.
fn run(s: &State, batch: Vec<Job>) -> (bool, FirstPanic) {
    let before = tally::now();
    let _draining = Draining::enter();
    let mut panic = FirstPanic::default();
    for job in batch {
        panic.catch(|| job.run());
        s.pending.done();
    }
    (tally::now() != before, panic)
}

/// Collects if no reader is in a section and no other collector runs.
/// Never waits.
fn try_collect() -> FirstPanic {
    let s = state();
    let _drain = match s.drain.try_lock() {
        Ok(d) => d,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return FirstPanic::default(),
    };
    let queued = lock(&s.queue).len();
    if queued == 0 || !s.readers.is_quiescent() {
        return FirstPanic::default();
    }
    let batch: Vec<Job> = lock(&s.queue).drain(..queued).collect();
    run(s, batch).1
}

impl Reclaimer for Reference {
    type Guard = ReferenceGuard;
    const NAME: &'static str = "reference";
}

impl Ops for Reference {
    fn pin() -> ReferenceGuard {
        let phase = state().readers.enter();
        let _ = LOCAL.try_with(|l| l.guards.set(l.guards.get() + 1));
        ReferenceGuard {
            phase: Some(phase),
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
        Self::defer(unsafe { Job::retired::<P>(raw) });
    }

    fn defer(job: Job) {
        let s = state();
        s.pending.add();
        lock(&s.queue).push(job);
        if !in_section() && !is_draining() {
            try_collect().resume();
        }
    }

    fn synchronize() {
        assert!(
            !in_section(),
            "rcu::synchronize called inside a read-side critical section of the same thread: it would wait for itself"
        );
        assert!(
            !is_draining(),
            "rcu::synchronize called from a deferred closure: it would wait for itself"
        );
        let s = state();
        let mut panic = FirstPanic::default();
        loop {
            let drain = lock(&s.drain);
            let queued = lock(&s.queue).len();
            s.readers.wait(yield_now);
            let batch: Vec<Job> = lock(&s.queue).drain(..queued).collect();
            let (cascaded, caught) = run(s, batch);
            panic.merge(caught);
            drop(drain);
            if !cascaded {
                break;
            }
        }
        panic.resume();
    }

    fn flush() {
        if !in_section() && !is_draining() {
            try_collect().resume();
        }
    }

    fn pending() -> usize {
        state().pending.get()
    }
}
