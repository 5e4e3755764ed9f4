//! The writer-side free functions: [`defer`] (`call_rcu`), [`retire`]
//! (`kfree_rcu`), [`synchronize`] (`synchronize_rcu`), and the bookkeeping
//! helpers [`flush`] and [`pending`].
//!
//! Each only forwards to the reclaimer; the protocols are documented with the
//! reclaimers ([`Epoch`](crate::Epoch), [`Hazard`](crate::Hazard),
//! [`Reference`](crate::Reference)).

use crate::Pointer;
use crate::reclaimer::Reclaimer;

/// Runs `f` once no reader that is now in a read-side critical section can
/// still be in it (`call_rcu`).
///
/// `f` runs on some thread that calls `defer`, [`flush`], [`synchronize`] or
/// a slot's retiring operation, not necessarily the one that deferred it;
/// never inside a [`pin`](crate::pin) or a load. It may itself pin, defer, or
/// replace slots. It must not call [`synchronize`]. With
/// [`Hazard`](crate::Hazard), which protects values rather than sections, `f`
/// runs at the next reclamation pass whatever readers do.
///
/// If `f` panics (or a retired value's `Drop` does), the panic is caught, the
/// rest of the work run alongside still runs and nothing is left counted,
/// then the panic resumes on the thread that ran `f`, from the `rcu` call
/// there that ran it (a `defer`, `flush`, `synchronize`, or a slot's
/// retiring operation).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// let ran = Arc::new(AtomicBool::new(false));
/// let flag = ran.clone();
/// rcu::defer::<rcu::Reference>(move || flag.store(true, Ordering::SeqCst));
/// rcu::synchronize::<rcu::Reference>();
/// assert!(ran.load(Ordering::SeqCst));
/// ```
pub fn defer<R: Reclaimer>(f: impl FnOnce() + Send + 'static) {
    R::defer(crate::reclaimer::Job::closure(f));
}

/// Drops `value` once no reader that is now in a read-side critical section
/// can still be in it (`kfree_rcu`): [`defer`] for an owned value, without
/// allocating a closure. It is dropped where [`defer`]'s closures run, with
/// the same panic rule.
///
/// ```
/// use std::sync::Arc;
///
/// let value = Arc::new(5);
/// let watch = Arc::downgrade(&value);
/// rcu::retire::<rcu::Epoch, _>(value);
/// rcu::synchronize::<rcu::Epoch>();
/// assert!(watch.upgrade().is_none());
/// ```
pub fn retire<R: Reclaimer, P: Pointer>(value: P) {
    let raw = value.into_raw();
    // SAFETY: `raw` came from `P::into_raw` just now and its ownership moves
    // to the reclaimer (obligation 1). The value was the caller's, not a
    // slot's (a slot owns its own value), so no reader reaches it through a
    // slot (obligation 2); another owner of the same pointee (an `Arc` clone
    // in a slot) keeps the pointee alive whatever this drop does.
    unsafe { R::retire::<P>(raw) }
}

/// Waits for readers and reclamation (`synchronize_rcu`).
///
/// Returns once every reader that was in a read-side critical section when it
/// was called has left, and every value retired (by [`Slot::replace`],
/// [`Slot::take`], [`Slot::compare_exchange`]) and every closure deferred
/// before the call has been dropped or run, including what those drops and
/// closures deferred in turn when they ran on this thread.
///
/// "Before the call" covers this thread's work, and other threads' work once it
/// is visible to the reclaimer: always for [`Reference`](crate::Reference) and
/// [`Hazard`](crate::Hazard); for [`Epoch`](crate::Epoch), once the other
/// thread has exited (so joined threads are always covered), called
/// [`flush`] or `synchronize`, or filled its local batch (64 jobs).
///
/// # Panics
///
/// Calling it while the same thread holds a [`Guard`](crate::Guard) of the same
/// reclaimer, or from a deferred closure, would wait for itself forever; all
/// three reclaimers detect this and panic.
///
/// If a deferred closure or a retired value's drop that it ran panicked, it
/// finishes waiting and then resumes the first such panic.
///
/// ```
/// use rcu::{Epoch, Slot};
///
/// let slot: Slot<Box<u8>, Epoch> = Slot::new(Some(Box::new(1)));
/// slot.take();
/// rcu::synchronize::<Epoch>(); // the taken value has been dropped
/// ```
///
/// [`Slot::replace`]: crate::Slot::replace
/// [`Slot::take`]: crate::Slot::take
/// [`Slot::compare_exchange`]: crate::Slot::compare_exchange
pub fn synchronize<R: Reclaimer>() {
    R::synchronize();
}

/// Offers this thread's deferred work to the reclaimer without waiting, and
/// reclaims what is already safe to reclaim.
///
/// With [`Epoch`](crate::Epoch) this hands the thread's local batch to the global
/// queue, so that other threads' [`synchronize`] see it; long-lived worker
/// threads that defer and then idle should call it.
///
/// ```
/// rcu::defer::<rcu::Epoch>(|| ());
/// rcu::flush::<rcu::Epoch>();
/// ```
pub fn flush<R: Reclaimer>() {
    R::flush();
}

/// The number of retired values and deferred closures that have not yet been
/// dropped or run, across all threads. A racy snapshot, for tests and
/// benchmarks. With [`Epoch`](crate::Epoch), another thread's work is counted
/// once it is visible to the reclaimer (as for [`synchronize`]): its local
/// batch, up to 63 jobs, is counted only by that thread until then.
///
/// ```
/// use rcu::Reference;
///
/// rcu::synchronize::<Reference>();
/// let before = rcu::pending::<Reference>();
/// let guard = rcu::pin::<Reference>();
/// rcu::defer::<Reference>(|| ());
/// assert!(rcu::pending::<Reference>() >= 1);
/// drop(guard);
/// rcu::synchronize::<Reference>();
/// assert!(rcu::pending::<Reference>() <= before);
/// ```
pub fn pending<R: Reclaimer>() -> usize {
    R::pending()
}
