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
//! - **retire/defer/flush/synchronize**: the batch protocol of the `batches`
//!   module, with crossbeam as its grace-period provider: a batch of jobs is
//!   counted in flight, then handed to `Guard::defer` and the thread's bag is
//!   flushed to crossbeam's global queue at once. Two epochs later, whichever
//!   thread collects (a writer flushing, or a reader in every 128th `pin`)
//!   runs the deferred function, which only moves the batch to the ready
//!   queue; writers run ready batches when they hand one over (their own),
//!   flush or synchronize (every one). So a reader never runs a writer's
//!   destructor: it pays for crossbeam's collection and a queue push per
//!   expired batch, not for the drops. `synchronize` waits on the in-flight
//!   count, pinning, flushing (which collects) and draining while it waits.
//!
//! # Races considered
//!
//! Those of the batch protocol (`batches`: a batch taken by another thread's
//! collection and not yet run is still counted, cascades, panics), and:
//!
//! - *A deferred job that defers or pins*: crossbeam supports deferring from
//!   inside a deferred function; the thread-local handle is re-entrant. During
//!   thread teardown, when the thread-local is gone, a temporary handle is
//!   registered instead.
//! - *A job panics*: jobs never run inside crossbeam's collection (whose
//!   unwinding would abandon the rest of that bag), and the batch catches the
//!   panic; the payload is resumed on the writer that ran the batch by the
//!   outermost `rcu` call there. A reader's `pin` never sees it.
//! - *Writers stop*: batches that become ready afterwards wait in the ready
//!   queue (counted by `pending`) until some thread defers, flushes or
//!   synchronizes. Garbage left at exit is not freed, as crossbeam's own.
//! - *synchronize inside a section*: the batches it waits for could never
//!   run; detected through `LocalHandle::is_pinned` and turned into a panic.
//! - *A forgotten guard*: the thread stays pinned for good, so crossbeam's
//!   epoch never again advances two steps: nothing retired afterwards, on any
//!   thread, is freed, and every later `synchronize` waits forever; the
//!   forgetting thread's `synchronize` panics (it is pinned). Nothing is freed
//!   early.
//!
//! # Orderings
//!
//! The hand-off of retired values to the thread that drops them is
//! crossbeam's (its epoch protocol is SeqCst-fenced); the in-flight count's
//! are argued in `batches` and `phases`.

use std::sync::OnceLock;

use crossbeam_epoch::{Collector, LocalHandle};

use super::batches::{self, Grace};
use super::{Job, Reclaimer, sealed::Ops};
use crate::Pointer;
use crate::sync::atomic::{AtomicPtr, Ordering};

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

fn collector() -> &'static Collector {
    COLLECTOR.get_or_init(Collector::new)
}

crate::sync::thread_local! {
    static HANDLE: LocalHandle = collector().register();
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

/// crossbeam-epoch as the batch protocol's grace-period provider.
struct Crossbeam;

impl Grace for Crossbeam {
    fn after_grace(f: impl FnOnce() + Send + 'static) {
        let guard = pin();
        guard.defer(f);
        // Push the bag to the global queue now, so that other threads'
        // collections (and `synchronize`) can reach the batch.
        guard.flush();
    }

    fn poll() {
        pin().flush();
    }
}

impl Reclaimer for Epoch {
    type Guard = EpochGuard;
    const NAME: &'static str = "epoch";
}

impl Ops for Epoch {
    fn pin() -> EpochGuard {
        // Every 128th pin collects, but collecting only moves batches to the
        // ready queue: no job runs here.
        EpochGuard { _pinned: pin() }
    }

    #[inline]
    fn protect(_guard: &mut EpochGuard, src: &AtomicPtr<()>) -> *mut () {
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
        batches::defer::<Crossbeam>(job);
    }

    fn synchronize() {
        let pinned = HANDLE.try_with(LocalHandle::is_pinned).unwrap_or(false);
        assert!(
            !pinned,
            "rcu::synchronize called inside a read-side critical section of the same thread: it would wait for itself"
        );
        batches::synchronize::<Crossbeam>();
    }

    fn flush() {
        batches::flush::<Crossbeam>();
    }

    fn pending() -> usize {
        batches::pending()
    }
}
