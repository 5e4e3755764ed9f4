//! [`Reclaimer`]: the strategy that decides when a retired value may be freed.
//!
//! A reclaimer provides four things to the rest of the crate:
//!
//! - a read-side state ([`Reclaimer::Guard`]) entered by [`pin`](crate::pin),
//! - `protect`: reading a slot's pointer so that the pointee stays alive for as
//!   long as that read-side state is held,
//! - `retire` and `defer`: handing over an unlinked value, or a closure, to be
//!   dropped or run once no reader can still be using what it refers to,
//! - `synchronize`: waiting for that to have happened for everything handed
//!   over so far.
//!
//! Three strategies are provided, each a complete implementation in its own file:
//!
//! | reclaimer | readers | writers | garbage held back by a stalled reader |
//! |---|---|---|---|
//! | [`Epoch`] | pin a crossbeam-epoch participant; never run deferred work | batch jobs per thread, hand batches to crossbeam, run them once ready | everything retired since it pinned |
//! | [`Hazard`] | publish the one pointer they read | retire into haphazard's domain | only the value it protects |
//! | [`Reference`] | count themselves into one of two shared counters; never block | queue; run once every earlier reader has been seen to leave | everything queued since it entered |
//!
//! The trait is sealed: the crate relies on each strategy's exact guarantees.
//!
//! # Bookkeeping shared by all three
//!
//! Each reclaimer counts the values and closures handed to it that have not yet
//! been dropped or run ([`pending`](crate::pending)), and counts, per thread,
//! how many it handed over (`tally`). `synchronize` uses the per-thread count
//! to notice that a deferred closure it ran deferred more work (a value whose
//! drop replaces or takes another slot), and repeats until such cascades have
//! been drained as well.
//!
//! # Panics in deferred work
//!
//! A retired value's `Drop` and a deferred closure are user code, and may
//! panic. Every reclaimer runs each job inside [`FirstPanic::catch`], so a
//! panic never unwinds through the reclaimer's own bookkeeping (no count or
//! flag is left raised) nor through a batch (the jobs after it still run).
//! Each job is counted done whether it returned or panicked. The first panic
//! of a batch is then resumed on the thread that ran the batch, from the
//! `rcu` call that ran it (`replace`, `take`, `compare_exchange`, `defer`,
//! `flush` or `synchronize`; never `pin` or `load`, as readers never run
//! deferred work), after that call has
//! finished its own work; later panics of the same batch are reported by the
//! panic hook and dropped. A job that runs inside another job (a cascade)
//! leaves its panic to the outermost call.

use core::fmt::Debug;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::Pointer;
use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

// Under loom only the models use it (Epoch, its user, is not built there).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod batches;
#[cfg(not(loom))]
mod epoch;
#[cfg(not(loom))]
mod hazard;
mod phases;
mod reference;

#[cfg(not(loom))]
pub use epoch::Epoch;
#[cfg(not(loom))]
pub use hazard::Hazard;
pub use reference::Reference;

/// What a reclaimer runs once readers are gone: a closure handed to
/// [`defer`](crate::defer), or a retired value with the function that drops it (no
/// allocation: retiring a value is the common case). A job dropped without being run drops
/// what it owns, as a dropped closure drops its captures.
#[allow(unreachable_pub)] // named by the sealed `Ops` trait; not reachable by users
pub struct Job(JobKind);

enum JobKind {
    Closure(Box<dyn FnOnce() + Send + 'static>),
    Value {
        raw: *mut (),
        drop: unsafe fn(*mut ()),
    },
    Done,
}

// SAFETY: a closure job is `Send`; a value job owns a `P: Pointer`, which is `Send`, in raw
// form, and only the job's owner touches it.
unsafe impl Send for Job {}

impl Job {
    /// A deferred closure.
    pub(crate) fn closure(f: impl FnOnce() + Send + 'static) -> Job {
        Job(JobKind::Closure(Box::new(f)))
    }

    /// A retired value, dropped when the job runs.
    ///
    /// # Safety
    /// 1. `raw` came from `P::into_raw`, and ownership of that value moves into the job.
    pub(crate) unsafe fn retired<P: Pointer>(raw: *mut ()) -> Job {
        /// # Safety
        /// 1. `raw` came from `P::into_raw` and is dropped once.
        unsafe fn drop_value<P: Pointer>(raw: *mut ()) {
            // SAFETY: obligation 1.
            drop(unsafe { P::from_raw(raw) });
        }
        Job(JobKind::Value {
            raw,
            drop: drop_value::<P>,
        })
    }

    /// Runs the closure, or drops the value.
    pub(crate) fn run(mut self) {
        match core::mem::replace(&mut self.0, JobKind::Done) {
            JobKind::Closure(f) => f(),
            // SAFETY: the job owned the value (`retired`'s obligation) and gives it up once.
            JobKind::Value { raw, drop } => unsafe { drop(raw) },
            JobKind::Done => {}
        }
    }
}

impl core::fmt::Debug for Job {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self.0 {
            JobKind::Closure(_) => "Job(closure)",
            JobKind::Value { .. } => "Job(value)",
            JobKind::Done => "Job(done)",
        })
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let JobKind::Value { raw, drop } = core::mem::replace(&mut self.0, JobKind::Done) {
            // SAFETY: as in `run`: owned, given up once.
            unsafe { drop(raw) };
        }
    }
}

/// The strategy that decides when a retired value may be freed.
///
/// Implemented by [`Epoch`], [`Hazard`] and [`Reference`]; sealed. Code that is
/// generic over the strategy names it as a type parameter:
///
/// ```
/// use rcu::{Reclaimer, Reference, Slot};
///
/// fn first<R: Reclaimer>(slot: &Slot<Box<u32>, R>) -> u32 {
///     let mut guard = rcu::pin::<R>();
///     slot.load(&mut guard).map_or(0, |v| **v)
/// }
///
/// let slot: Slot<Box<u32>, Reference> = Slot::new(Some(Box::new(7)));
/// assert_eq!(first(&slot), 7);
/// assert_eq!(Reference::NAME, "reference");
/// ```
pub trait Reclaimer: sealed::Ops + Send + Sync + Default + Debug + 'static {
    /// The read-side state a [`Guard`](crate::Guard) holds. It is `!Send`: a
    /// read-side critical section belongs to the thread that entered it.
    type Guard: Debug;

    /// A short lower-case name, for test and benchmark ids.
    const NAME: &'static str;
}

/// Reclaimers whose [`Guard`](crate::Guard) is a whole read-side critical
/// section: every value loaded through a guard stays valid until the guard is
/// dropped, however many loads follow (the kernel's `rcu_read_lock`). [`Epoch`]
/// and [`Reference`] are; [`Hazard`] is not (a guard protects its latest load
/// only).
///
/// Code that keeps the raw pointers of several loads through one guard, to walk
/// a linked structure without taking a reference per node, bounds its
/// reclaimer by this trait. Only this crate implements it.
///
/// ```
/// use rcu::{Slot, WholeSection};
///
/// fn both<R: WholeSection>(a: &Slot<Box<u32>, R>, b: &Slot<Box<u32>, R>) -> u32 {
///     let mut guard = rcu::pin::<R>();
///     let first = a.load(&mut guard).map_or(core::ptr::null(), |v| v.as_raw());
///     let second = b.load(&mut guard).map_or(0, |v| **v);
///     let first = if first.is_null() {
///         0
///     } else {
///         // SAFETY: `first` came from a load through `guard`, which is still
///         // alive, and `R` protects every load of the section.
///         unsafe { *first.cast::<u32>() }
///     };
///     first + second
/// }
///
/// let (a, b) = (Slot::new(Some(Box::new(2))), Slot::new(Some(Box::new(3))));
/// assert_eq!(both::<rcu::DefaultReclaimer>(&a, &b), 5);
/// ```
pub trait WholeSection: Reclaimer {}

#[cfg(not(loom))]
impl WholeSection for Epoch {}

impl WholeSection for Reference {}

pub(crate) mod sealed {
    use super::*;

    /// What a reclaimer provides to the rest of the crate. Sealed inside this
    /// module so that the crate alone implements and calls it.
    pub trait Ops: Sized {
        /// Enters a read-side critical section (re-entrant).
        fn pin() -> <Self as Reclaimer>::Guard
        where
            Self: Reclaimer;

        /// Reads `src` so that its pointee stays alive while `guard` is held,
        /// or until the next `protect` through the same guard, whichever comes
        /// first.
        fn protect(guard: &mut <Self as Reclaimer>::Guard, src: &AtomicPtr<()>) -> *mut ()
        where
            Self: Reclaimer;

        /// Drops the value behind `raw` once no reader can still see it.
        ///
        /// # Safety
        ///
        /// 1. `raw` came from `P::into_raw`, and the caller gives up ownership.
        /// 2. `raw` has been unlinked: no new reader can reach it from a slot.
        unsafe fn retire<P: Pointer>(raw: *mut ());

        /// Runs `job` once no reader that is now in a read-side critical
        /// section can still be in it (see each reclaimer for the exact rule).
        fn defer(job: Job);

        /// Waits until every value retired and every job deferred before the
        /// call has been dropped or run.
        fn synchronize();

        /// Offers this thread's retired values to the reclaimer without
        /// waiting: makes them visible to other threads' reclamation and
        /// frees those that are already safe to free.
        fn flush();

        /// The retired values and deferred jobs not yet dropped or run.
        fn pending() -> usize;
    }
}

/// The reclaimer a [`Slot`](crate::Slot) or [`Guard`](crate::Guard) uses when
/// none is named: [`Epoch`] (or [`Reference`] under loom, where only the
/// reference reclaimer is modelled).
///
/// ```
/// use rcu::{DefaultReclaimer, Reclaimer, Slot};
///
/// let slot: Slot<Box<u8>> = Slot::empty(); // same as Slot<Box<u8>, DefaultReclaimer>
/// assert!(slot.is_empty());
/// assert_eq!(DefaultReclaimer::NAME, "epoch");
/// ```
#[cfg(not(loom))]
pub type DefaultReclaimer = Epoch;

/// The reclaimer a [`Slot`](crate::Slot) or [`Guard`](crate::Guard) uses when
/// none is named: [`Reference`] under loom.
#[cfg(loom)]
pub type DefaultReclaimer = Reference;

/// A count of retired values and deferred jobs not yet dropped or run.
#[derive(Debug)]
pub(crate) struct Pending(AtomicUsize);

impl Pending {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Records one more item handed over.
    pub(crate) fn add(&self) {
        self.add_many(1);
        tally::bump();
    }

    /// Records `n` more items handed over (a batch, counted by `tally` as
    /// each was deferred).
    pub(crate) fn add_many(&self, n: usize) {
        // Relaxed: a statistic; `synchronize` orders through its own
        // protocol, and Hazard's check of zero pairs with `done` below.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Records that an item was dropped or run.
    pub(crate) fn done(&self) {
        self.done_many(1);
    }

    /// Records that `n` items were dropped or run.
    pub(crate) fn done_many(&self, n: usize) {
        // Release: the items' drops happen before a `get` that observes the
        // decrement (Hazard's `synchronize` returns on it).
        self.0.fetch_sub(n, Ordering::Release);
    }

    pub(crate) fn get(&self) -> usize {
        // Acquire: pairs with the Release in `done`; whoever sees the count
        // fall also sees the drops that caused it.
        self.0.load(Ordering::Acquire)
    }
}

/// Per-thread count of items handed over, used to detect cascades.
pub(crate) mod tally {
    use core::cell::Cell;

    crate::sync::thread_local! {
        static HANDED_OVER: Cell<usize> = const { Cell::new(0) };
    }

    pub(crate) fn bump() {
        // During thread teardown the count is gone; nothing reads it then.
        let _ = HANDED_OVER.try_with(|n| n.set(n.get().wrapping_add(1)));
    }

    /// The number of items this thread has handed over so far.
    pub(crate) fn now() -> usize {
        HANDED_OVER.try_with(Cell::get).unwrap_or(0)
    }
}

/// The first panic caught from a batch of jobs, held until the batch's
/// bookkeeping is done and it can be resumed.
#[derive(Debug, Default)]
#[must_use = "a caught panic is lost unless resumed"]
pub(crate) struct FirstPanic(Option<Box<dyn Any + Send + 'static>>);

impl FirstPanic {
    /// No panic caught yet.
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// Runs `job`, catching a panic. The first one caught is kept; later ones
    /// (already reported by the panic hook) are dropped.
    pub(crate) fn catch(&mut self, job: impl FnOnce()) {
        // AssertUnwindSafe: after a panic the job's own state is gone (it is
        // consumed), and the caller touches only its counts, which the job
        // cannot have left half-updated.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
            self.keep(payload);
        }
    }

    /// Keeps the first of `self` and `other`.
    pub(crate) fn merge(&mut self, other: FirstPanic) {
        if let Some(payload) = other.0 {
            self.keep(payload);
        }
    }

    fn keep(&mut self, payload: Box<dyn Any + Send + 'static>) {
        if self.0.is_none() {
            self.0 = Some(payload);
        } else {
            discard(payload);
        }
    }

    /// Drops the caught panic, if any, without resuming it (when nobody is
    /// left to resume it, as during thread teardown).
    pub(crate) fn discard(self) {
        if let Some(payload) = self.0 {
            discard(payload);
        }
    }

    /// Resumes the caught panic, if any, on this thread.
    pub(crate) fn resume(self) {
        if let Some(payload) = self.0 {
            resume_unwind(payload);
        }
    }
}

/// Drops a panic payload. Its own drop may panic (`panic_any` of such a
/// type): that is contained too, leaking the second payload rather than
/// unwinding.
fn discard(payload: Box<dyn Any + Send + 'static>) {
    if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        core::mem::forget(nested);
    }
}
