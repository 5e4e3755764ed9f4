//! The epoch reclaimer, on crossbeam-epoch.
//!
//! # Protocol
//!
//! The crate owns one `crossbeam_epoch::Collector` (built on first use) and
//! registers each thread once, keeping its `LocalHandle` in a thread-local;
//! pinning through that handle avoids the global default collector's lookup.
//!
//! - **pin**: `LocalHandle::pin`, re-entrant by crossbeam's own guard count.
//! - **protect**: an `Acquire` load; the pin keeps the global epoch from moving
//!   two steps past this thread, so nothing unlinked after the pin is freed.
//! - **retire/defer**: `Guard::defer` into the thread's bag. A bag moves to the
//!   collector's global queue when it fills, on `flush`, or when the thread
//!   exits; it runs two epochs later, on whichever thread collects it.
//! - **synchronize**: defer a marker, then pin-flush-unpin (yielding between
//!   rounds) until the marker has run. The global queue is FIFO and a bag is
//!   only run once every bag ahead of it has been taken, so the marker
//!   running means everything queued ahead of it was taken too; the crate's
//!   count of running jobs is then awaited to reach zero, so that a bag taken
//!   by another thread has finished. A job that defers more (a cascade,
//!   e.g. a value whose drop replaces another slot) flushes its thread's bag
//!   and counts itself; `synchronize` repeats while that count moves (at most
//!   64 rounds, so other threads' endless cascades cannot hold it).
//!
//! # Races considered
//!
//! - *Garbage in another live thread's bag*: it is not in the global queue,
//!   so `synchronize` does not wait for it. It is covered once that thread
//!   flushes (`rcu::flush`, `rcu::synchronize`, a full bag, or thread exit:
//!   joined threads are therefore always covered).
//! - *A deferred job that defers or pins*: crossbeam supports deferring from
//!   inside a deferred function; the thread-local handle is re-entrant. During
//!   thread teardown, when the thread-local is gone, a temporary handle is
//!   registered instead.
//! - *A bag taken but not yet started by another collector* when the marker
//!   runs: that window (between crossbeam's pop and the first job) is not
//!   observable to this crate; it spans no user code.
//! - *synchronize inside a section*: the marker could never run; detected
//!   through `LocalHandle::is_pinned` and turned into a panic.
//!
//! # Orderings
//!
//! The hand-off of retired values to the thread that drops them is
//! crossbeam's (its epoch protocol is SeqCst-fenced). The crate's own atomics
//! are the marker flag (Release when the marker runs, Acquire in
//! `synchronize`) and the running count (see `RUNNING`).

use core::cell::Cell;
use std::sync::OnceLock;

use crossbeam_epoch::{Collector, LocalHandle};

use super::{Job, Pending, Reclaimer, sealed::Ops, tally};
use crate::Pointer;
use crate::pointer::Retired;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use crate::sync::thread::yield_now;

/// Epoch-based reclamation on crossbeam-epoch, with a collector owned by this
/// crate. The default reclaimer.
///
/// Cheapest reads; a stalled reader holds back everything retired after it
/// pinned.
///
/// ```
/// use rcu::{Epoch, Slot};
///
/// let slot: Slot<Box<u32>, Epoch> = Slot::new(Some(Box::new(1)));
/// let mut guard = rcu::pin::<Epoch>();
/// assert_eq!(**slot.load(&mut guard).unwrap(), 1);
/// ```
#[derive(Default, Debug, Clone, Copy)]
pub struct Epoch;

static COLLECTOR: OnceLock<Collector> = OnceLock::new();
static PENDING: Pending = Pending::new();
/// Deferred jobs currently running, on any thread.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Deferred jobs so far that deferred more work when they ran.
static CASCADES: AtomicUsize = AtomicUsize::new(0);
/// Bound on `synchronize`'s rounds, so that other threads' endless cascades
/// cannot keep it looping.
const MAX_ROUNDS: usize = 64;

fn collector() -> &'static Collector {
    COLLECTOR.get_or_init(Collector::new)
}

crate::sync::thread_local! {
    static HANDLE: LocalHandle = collector().register();
    /// Set while this thread is in `synchronize`.
    static SYNCHRONIZING: Cell<bool> = const { Cell::new(false) };
}

/// The read-side state of an [`Epoch`] guard: a crossbeam-epoch guard.
#[derive(Debug)]
pub struct EpochGuard {
    _pinned: crossbeam_epoch::Guard,
}

fn pin() -> crossbeam_epoch::Guard {
    HANDLE
        .try_with(LocalHandle::pin)
        // The thread is being torn down: pin through a short-lived handle.
        .unwrap_or_else(|_| collector().register().pin())
}

impl Reclaimer for Epoch {
    type Guard = EpochGuard;
    const NAME: &'static str = "epoch";
}

impl Ops for Epoch {
    fn pin() -> EpochGuard {
        EpochGuard { _pinned: pin() }
    }

    fn protect(_guard: &mut EpochGuard, src: &AtomicPtr<()>) -> *mut () {
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
        PENDING.add();
        pin().defer(move || {
            // Relaxed: only `synchronize` reads it, after the marker's
            // Acquire; the decrement below carries the Release.
            RUNNING.fetch_add(1, Ordering::Relaxed);
            let before = tally::now();
            job();
            if tally::now() != before {
                // The job deferred more (a cascade) into this thread's bag,
                // which may belong to a thread that then idles: publish it.
                pin().flush();
                // Relaxed: read by `synchronize` after the Acquire below.
                CASCADES.fetch_add(1, Ordering::Relaxed);
            }
            PENDING.done();
            // Release: the job's effects (and the cascade count) happen
            // before a `synchronize` that sees the count at zero.
            RUNNING.fetch_sub(1, Ordering::Release);
        });
    }

    fn synchronize() {
        let pinned = HANDLE.try_with(LocalHandle::is_pinned).unwrap_or(false);
        assert!(
            !pinned,
            "rcu::synchronize called inside a read-side critical section of the same thread: it would wait for itself"
        );
        assert!(
            !SYNCHRONIZING.with(Cell::get),
            "rcu::synchronize called from a deferred closure: it would wait for itself"
        );
        SYNCHRONIZING.with(|s| s.set(true));
        // Clears the flag on every exit, including a panic in a job run here.
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                let _ = SYNCHRONIZING.try_with(|s| s.set(false));
            }
        }
        let _reset = Reset;
        for _ in 0..MAX_ROUNDS {
            // Relaxed: compared after the Acquire load of `RUNNING` below,
            // which orders every increment made by a finished job.
            let cascades = CASCADES.load(Ordering::Relaxed);
            let ran = Arc::new(AtomicBool::new(false));
            let marker = Arc::clone(&ran);
            // Release: the jobs run before the marker (in its bag or earlier
            // bags) happen before `synchronize` sees the flag.
            Self::defer(Box::new(move || marker.store(true, Ordering::Release)));
            // Acquire: pairs with the marker's Release.
            while !ran.load(Ordering::Acquire) {
                pin().flush();
                yield_now();
            }
            // Acquire: pairs with the Release decrement after each job.
            while RUNNING.load(Ordering::Acquire) != 0 {
                yield_now();
            }
            // Relaxed: ordered by the Acquire load of `RUNNING` above.
            if CASCADES.load(Ordering::Relaxed) == cascades {
                break;
            }
        }
    }

    fn flush() {
        pin().flush();
    }

    fn pending() -> usize {
        PENDING.get()
    }
}
