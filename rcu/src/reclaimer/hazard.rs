//! The hazard-pointer reclaimer, on haphazard.
//!
//! # Protocol
//!
//! Every guard owns one haphazard `HazardPointer` in the global domain, taken
//! from a per-thread cache (creating one walks a global list) and returned on
//! drop.
//!
//! - **pin**: take a hazard pointer from the cache (or create one).
//! - **protect**: haphazard's publish-and-validate loop: load the slot, publish
//!   the pointer in the hazard pointer, fence, reload; retry until the two
//!   loads agree. A pointer published before the validating reload cannot be
//!   freed by a reclamation pass that scans hazards after the unlinking swap.
//!   The next protect through the same guard replaces the protection, which
//!   is why [`Slot::load`](crate::Slot::load) borrows the guard mutably.
//! - **retire**: hand the raw pointer to `Domain::retire_ptr` with a deleter
//!   that rebuilds the owned value and drops it. haphazard frees it on a
//!   later reclamation pass that finds no hazard pointer equal to it.
//! - **defer**: box the closure and retire the box. Nobody can protect that
//!   fresh address, so the closure runs on the next reclamation pass.
//! - **synchronize**: run `eager_reclaim` and yield until the crate's pending
//!   count is zero.
//!
//! Deleters (and so user code) run only inside haphazard's reclamation, which
//! only `retire`, `defer`, `flush` and `synchronize` start: readers never run
//! them.
//!
//! # Divergence from RCU
//!
//! Hazard pointers protect values, not sections. A reader holds back only the
//! value it loaded last through each guard, so:
//!
//! - `defer`red closures are not held back by readers at all: they run at the
//!   next reclamation pass. Use [`replace`](crate::Slot::replace) (or another
//!   retiring operation) for anything a reader can reach.
//! - `synchronize` waits until the domain holds no retired value of this
//!   crate's: that covers everything retired before the call and every reader
//!   protecting such a value, but under a steady stream of retirements from
//!   other threads it waits until the stream pauses.
//!
//! # Races considered
//!
//! - *Reader publishes while a writer swaps*: either the reload sees the new
//!   pointer (retry) or the old pointer was still installed after the hazard
//!   was published, in which case the reclamation pass, which starts after the
//!   swap, sees the hazard. haphazard's asymmetric barriers order the two.
//! - *A deleter that retires or defers*: the nested retirement goes on
//!   haphazard's lock-free lists and may start a nested pass; the pending count
//!   includes it, so `synchronize` waits for the cascade too.
//! - *synchronize while this thread holds a guard*: the guard might protect a
//!   retired value forever; the per-thread guard count detects it and panics.
//!   Called from a deleter, it would wait for its own item; a per-thread flag
//!   detects that too.
//! - *A deleter panics* (a value's `Drop` or a deferred closure): the panic
//!   is caught inside the deleter, so it never unwinds through haphazard
//!   (whose reclamation pass would abandon the rest of its list and leave
//!   its own counts raised); the reclaiming flag is restored by a drop guard
//!   and the item is counted done. The payload is kept in a thread-local
//!   until the outermost `rcu` call that started the pass (not one nested in
//!   another deleter) has returned from haphazard, and resumed there.
//! - *A forgotten guard*: its hazard pointer is never released, so it keeps
//!   protecting the value it last protected; if that value is retired, it is
//!   never freed and every later `synchronize` waits forever. The forgetting
//!   thread's guard count stays raised, so its `synchronize` panics. Nothing
//!   is freed early.
//!
//! # Orderings
//!
//! Publishing and scanning hazards are haphazard's (`SeqCst` or asymmetric
//! fences). The crate's pending count is decremented with Release after the
//! drop and read with Acquire in `synchronize`.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;

use haphazard::{Domain, HazardPointer};

use super::{FirstPanic, Job, Pending, Reclaimer, sealed::Ops};
use crate::Pointer;
use crate::sync::atomic::AtomicPtr;
use crate::sync::thread::yield_now;

/// Hazard pointers on haphazard's global domain.
///
/// A stalled reader holds back only the value it protects. Each load publishes
/// a pointer and fences, so reads cost more than with [`Epoch`](crate::Epoch).
///
/// ```
/// use rcu::{Hazard, Slot};
///
/// let slot: Slot<Box<u32>, Hazard> = Slot::new(Some(Box::new(1)));
/// let mut guard = rcu::pin::<Hazard>();
/// let one = slot.load(&mut guard).unwrap();
/// slot.replace(Some(Box::new(2)));
/// assert_eq!(**one, 1); // still protected
/// drop(guard);
/// rcu::synchronize::<Hazard>();
/// assert_eq!(rcu::pending::<Hazard>(), 0);
/// ```
#[derive(Default, Debug, Clone, Copy)]
pub struct Hazard;

static PENDING: Pending = Pending::new();

crate::sync::thread_local! {
    /// Hazard pointers released by this thread's guards, ready for reuse.
    static CACHE: RefCell<Vec<HazardPointer<'static>>> = const { RefCell::new(Vec::new()) };
    /// Guards alive on this thread.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// Set while this thread runs a reclaim (a deleter or a deferred closure).
    static RECLAIMING: Cell<bool> = const { Cell::new(false) };
    /// The first panic caught from a deleter on this thread, until the `rcu`
    /// call that started the reclamation resumes it.
    static CAUGHT: RefCell<FirstPanic> = const { RefCell::new(FirstPanic::new()) };
}

/// Sets this thread's `RECLAIMING` flag for its lifetime, restoring the
/// previous value on drop.
struct Reclaiming(bool);

impl Reclaiming {
    fn enter() -> Self {
        Self(RECLAIMING.try_with(|r| r.replace(true)).unwrap_or(false))
    }
}

impl Drop for Reclaiming {
    fn drop(&mut self) {
        let _ = RECLAIMING.try_with(|r| r.set(self.0));
    }
}

fn is_reclaiming() -> bool {
    RECLAIMING.try_with(Cell::get).unwrap_or(false)
}

/// Keeps a panic caught in a deleter for [`take_caught`].
fn stash(panic: FirstPanic) {
    let mut panic = Some(panic);
    let _ = CAUGHT.try_with(|c| {
        if let Some(panic) = panic.take() {
            c.borrow_mut().merge(panic);
        }
    });
    if let Some(unstored) = panic {
        // The thread is being torn down: nobody is left to resume it.
        unstored.discard();
    }
}

/// The panic caught by deleters on this thread since the last call, unless
/// this thread is itself inside a deleter (the outermost call resumes it).
fn take_caught() -> FirstPanic {
    if is_reclaiming() {
        return FirstPanic::default();
    }
    CAUGHT
        .try_with(|c| core::mem::take(&mut *c.borrow_mut()))
        .unwrap_or_default()
}

/// The read-side state of a [`Hazard`] guard: one hazard pointer.
pub struct HazardGuard {
    /// `None` only while being dropped.
    hazard: Option<HazardPointer<'static>>,
    _not_send: PhantomData<*mut ()>,
}

impl fmt::Debug for HazardGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HazardGuard").finish_non_exhaustive()
    }
}

impl Drop for HazardGuard {
    fn drop(&mut self) {
        let _ = LIVE.try_with(|n| n.set(n.get() - 1));
        if let Some(mut hazard) = self.hazard.take() {
            hazard.reset_protection();
            // During thread teardown the cache is gone: the pointer is then
            // dropped, which hands its record back to the domain.
            let _ = CACHE.try_with(move |c| c.borrow_mut().push(hazard));
        }
    }
}

/// How a retired item is dropped.
trait Reclaim {
    /// # Safety
    ///
    /// 1. `raw` is the pointer this reclaim kind was retired with, and is
    ///    reclaimed once.
    unsafe fn reclaim(raw: *mut ());
}

/// A retired value of type `P`.
struct Value<P>(PhantomData<P>);

impl<P: Pointer> Reclaim for Value<P> {
    unsafe fn reclaim(raw: *mut ()) {
        // SAFETY: obligation 1; `retire` retired `raw` as a `P` it owned.
        drop(unsafe { P::from_raw(raw) });
    }
}

/// A deferred closure, retired as a `Box<Job>`.
struct Deferred;

impl Reclaim for Deferred {
    unsafe fn reclaim(raw: *mut ()) {
        // SAFETY: obligation 1; `defer` retired `raw` from `Box::<Job>::into_raw`.
        let job = unsafe { Box::from_raw(raw.cast::<Job>()) };
        job.run();
    }
}

/// The type haphazard believes it retires: zero-sized, so any non-null pointer
/// is a valid reference to it, and never read.
struct Erased<D>(PhantomData<fn() -> D>);

impl<D> Erased<D> {
    const VALUE: Self = Erased(PhantomData);
}

/// What haphazard rebuilds from a retired pointer and drops: runs the item's
/// reclaim.
struct Owner<D: Reclaim> {
    raw: *mut (),
    _kind: PhantomData<fn() -> D>,
}

impl<D: Reclaim> Deref for Owner<D> {
    type Target = Erased<D>;

    fn deref(&self) -> &Erased<D> {
        &Erased::<D>::VALUE
    }
}

impl<D: Reclaim> Drop for Owner<D> {
    fn drop(&mut self) {
        let mut panic = FirstPanic::default();
        {
            let _reclaiming = Reclaiming::enter();
            let raw = self.raw;
            panic.catch(|| {
                // SAFETY: haphazard rebuilds an `Owner` only from a pointer
                // passed to `retire_ptr` (by `retire_erased`), once, when no
                // hazard protects it; this drop is that one reclaim.
                unsafe { D::reclaim(raw) }
            });
        }
        PENDING.done();
        stash(panic);
    }
}

// SAFETY: haphazard calls `from_raw` only on pointers we passed to
// `retire_ptr`, which are non-null and, `Erased` being zero-sized and
// 1-aligned, valid as `&Erased` for as long as it likes (1, 2); each is
// retired once, so it is rebuilt once (3). `into_raw` is never used by
// haphazard's retire path; it returns the same pointer for completeness.
unsafe impl<D: Reclaim> haphazard::raw::Pointer<Erased<D>> for Owner<D> {
    fn into_raw(self) -> *mut Erased<D> {
        let this = core::mem::ManuallyDrop::new(self);
        this.raw.cast()
    }

    unsafe fn from_raw(ptr: *mut Erased<D>) -> Self {
        Owner {
            raw: ptr.cast(),
            _kind: PhantomData,
        }
    }
}

/// Retires `raw` into the global domain, to be reclaimed as `D`.
///
/// # Safety
///
/// 1. `raw` is non-null, owned by the caller (who gives it up), and reclaiming
///    it as `D` is sound.
/// 2. `raw` is unlinked: no new hazard can be validated on it.
unsafe fn retire_erased<D: Reclaim>(raw: *mut ()) {
    PENDING.add();
    // SAFETY: no hazard will newly guard `raw` (2); it is retired once because
    // the caller owned it (1); `Erased<D>` is a zero-sized type, so `raw` is
    // valid as `&Erased<D>` for any lifetime.
    unsafe {
        Domain::global().retire_ptr::<Erased<D>, Owner<D>>(raw.cast());
    }
    // haphazard may have run a reclamation pass.
    take_caught().resume();
}

impl Reclaimer for Hazard {
    type Guard = HazardGuard;
    const NAME: &'static str = "hazard";
}

impl Ops for Hazard {
    fn pin() -> HazardGuard {
        let cached = CACHE.try_with(|c| c.borrow_mut().pop()).ok().flatten();
        let _ = LIVE.try_with(|n| n.set(n.get() + 1));
        HazardGuard {
            hazard: Some(cached.unwrap_or_default()),
            _not_send: PhantomData,
        }
    }

    fn protect(guard: &mut HazardGuard, src: &AtomicPtr<()>) -> *mut () {
        let hazard = guard
            .hazard
            .as_mut()
            .expect("a live guard has its hazard pointer");
        // haphazard validates with an Acquire reload, which pairs with the
        // Release of the store that published the pointer.
        hazard
            .protect_ptr(src)
            .map_or(core::ptr::null_mut(), |(ptr, _)| ptr.as_ptr())
    }

    unsafe fn retire<P: Pointer>(raw: *mut ()) {
        // SAFETY: `raw` came from `P::into_raw` and is given up (obligation 1
        // of `retire`), so reclaiming it as `Value<P>` drops it once; it is
        // unlinked (obligation 2).
        unsafe { retire_erased::<Value<P>>(raw) }
    }

    fn defer(job: Job) {
        let raw = Box::into_raw(Box::new(job)).cast::<()>();
        // SAFETY: `raw` is a fresh `Box<Job>` allocation that nobody else can
        // name, so it is owned and unlinked; `Deferred` reclaims exactly that.
        unsafe { retire_erased::<Deferred>(raw) }
    }

    fn synchronize() {
        assert!(
            LIVE.try_with(Cell::get).unwrap_or(0) == 0,
            "rcu::synchronize called while this thread holds a guard: its hazard pointer could hold back a retired value forever"
        );
        assert!(
            !is_reclaiming(),
            "rcu::synchronize called from a deferred closure: it would wait for itself"
        );
        let mut panic = FirstPanic::default();
        loop {
            Domain::global().eager_reclaim();
            panic.merge(take_caught());
            if PENDING.get() == 0 {
                break;
            }
            yield_now();
        }
        panic.resume();
    }

    fn flush() {
        Domain::global().eager_reclaim();
        take_caught().resume();
    }

    fn pending() -> usize {
        PENDING.get()
    }
}
