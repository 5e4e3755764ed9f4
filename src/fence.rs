//! The fence: a one-shot completion event (`struct dma_fence`).
//!
//! [`Fence`] is a reference-counted handle (`Clone` = `dma_fence_get`, `Drop` =
//! `dma_fence_put`). What a fence *is* lives here: its context and seqno, its hooks
//! ([`FenceOps`], `dma_fence_ops`, which containers implement too: an array is a fence whose
//! ops are the array's, as in the kernel) and its state (the state word and the list word,
//! `backend::state`). How it signals and keeps callbacks is the backend's fence scheme
//! (`backend::rcu`, `backend::locked`). This module knows no container: `as_array` and
//! `as_chain` are defined beside the containers, by downcasting the ops. Context ids come
//! from here too ([`context_alloc`], `dma_fence_context_alloc`), so that containers, which
//! take fresh contexts, need nothing above the fence.
//!
//! # Layout
//! One allocation of 64 bytes, the kernel's `sizeof(struct dma_fence)`: the reference counts
//! (16), the ops (16: a shared `Arc<dyn FenceOps>`), context (8), seqno (8), the state word
//! (8) and the list word (8; the timestamp once signalled).
//!
//! Drops go through the per-thread work list (`work`) on schemes that flatten them: dropping
//! the last handle of a container drops its members as queued jobs, not by recursion.

use std::any::Any;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc as StdArc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::state::{Birth, FenceState};
use crate::backend::{Backend, FenceScheme, FencesOf, Rcu};
use crate::error::{Errno, FenceError, Status};
use crate::sync::{FenceArc as Arc, FenceWeak};
use crate::work::{self, Job};

/// The hooks a driver can attach to its fences (the kernel's `dma_fence_ops`).
///
/// Only the two names are required. The `Rcu` backend calls every hook with no lock held;
/// the `Locked` backend calls `enable_signaling` with the fence's lock held, as the kernel does.
///
/// The library's own containers are fences whose ops are the container's (an array's hooks
/// enable and poll its members), as in the kernel; `Fence::as_array` recognises them by
/// type (hence the `Any` bound, which every `'static` type meets).
///
/// ```
/// use std::sync::Arc;
/// use rcu_fence::{Fence, FenceOps, Timeline};
///
/// struct Hw;
/// impl FenceOps for Hw {
///     fn driver_name(&self) -> &str { "my-gpu" }
///     fn timeline_name(&self) -> &str { "ring0" }
///     fn signaled(&self, fence: &Fence) -> bool { fence.seqno() <= 3 } // poll a hardware counter
/// }
///
/// let tl = Timeline::new("ring0");
/// let f = tl.fence_with_ops(2, Arc::new(Hw));
/// assert!(f.is_signaled()); // polled through `signaled`, which signals the fence
/// assert_eq!(f.driver_name(), "my-gpu");
/// ```
pub trait FenceOps<B: Backend = Rcu>: Any + Send + Sync + 'static {
    /// The driver's name (`get_driver_name`).
    fn driver_name(&self) -> &str;
    /// The timeline's name (`get_timeline_name`).
    fn timeline_name(&self) -> &str;
    /// Called at most once, when someone first waits or adds a callback. Return `false` if
    /// the work is already complete: the fence is then signalled at once.
    fn enable_signaling(&self, fence: &Fence<B>) -> bool {
        let _ = fence;
        true
    }
    /// Polls completion; returning `true` signals the fence. Must be monotonic.
    fn signaled(&self, fence: &Fence<B>) -> bool {
        let _ = fence;
        false
    }
    /// Whether [`signaled`](FenceOps::signaled) polls anything: return `false` if you do
    /// not override it (as a kernel driver leaves `.signaled` NULL). The fence's flag then
    /// answers "has it signalled?" alone, without a call into the ops, and so can be read
    /// where no driver code may run: a chain lookup on `Rcu` passes the pending links whose
    /// own fences are such (or containers) inside one read-side section, taking no
    /// reference per link. Asked once, when a fence is made; if the answer is `false`,
    /// `signaled` is never called for that fence. The default, `true`, is always correct.
    fn polls(&self) -> bool {
        true
    }
    /// A hint that someone needs the fence by `deadline`; may be called several times.
    fn set_deadline(&self, fence: &Fence<B>, deadline: Instant) {
        let _ = (fence, deadline);
    }
}

/// The shared object behind every [`Fence`] handle.
pub(crate) struct FenceInner<B: Backend> {
    ops: StdArc<dyn FenceOps<B>>,
    context: u64,
    seqno: u64,
    state: FenceState,
}

impl<B: Backend> Drop for FenceInner<B> {
    fn drop(&mut self) {
        // The kernel's newest release path: a fence released with callbacks still queued is
        // signalled with -EDEADLK so that nobody waits forever. No handle exists any more, so
        // the queued callbacks move into a fresh fence with the same identity, which is
        // signalled and dropped in turn (through the work list on schemes that flatten, so
        // this never nests there).
        if let Some(state) = self.state.take_pending() {
            let fence = Fence::from_inner(FenceInner {
                ops: self.ops.clone(),
                context: self.context,
                seqno: self.seqno,
                state,
            });
            let _ = FencesOf::<B>::signal(&fence, None, Some(Errno::EDEADLK));
        }
    }
}

/// A reference to a fence: a one-shot completion event on a timeline.
///
/// `Clone` takes a reference (`dma_fence_get`), `Drop` releases one (`dma_fence_put`).
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use rcu_fence::{Status, Timeline};
///
/// let tl = Timeline::new("gpu");
/// let fence = tl.fence(1);
/// let ran = Arc::new(AtomicUsize::new(0));
/// let r = ran.clone();
/// fence.add_callback(move |_| { r.fetch_add(1, Ordering::SeqCst); }).unwrap();
/// fence.signal().unwrap();
/// assert_eq!(ran.load(Ordering::SeqCst), 1);
/// assert_eq!(fence.wait(), Ok(()));
/// assert_eq!(fence.status(), Status::Signaled);
/// ```
pub struct Fence<B: Backend = Rcu> {
    inner: ManuallyDrop<Arc<FenceInner<B>>>,
}

impl<B: Backend> Fence<B> {
    fn from_inner(inner: FenceInner<B>) -> Self {
        crate::trace::event!("fence_init"; inner.context, inner.seqno);
        Fence {
            inner: ManuallyDrop::new(Arc::new(inner)),
        }
    }

    /// A new fence with hooks `ops` (a driver's, a timeline's or a container's).
    pub(crate) fn new(
        context: u64,
        seqno: u64,
        ops: StdArc<dyn FenceOps<B>>,
        birth: Birth,
    ) -> Self {
        Self::from_inner(FenceInner {
            ops,
            context,
            seqno,
            state: FenceState::new(birth),
        })
    }

    /// The fence's state: the state word and the list word.
    pub(crate) fn state(&self) -> &FenceState {
        &self.inner.state
    }

    /// The fence's hooks.
    pub(crate) fn ops(&self) -> &dyn FenceOps<B> {
        &*self.inner.ops
    }

    /// The hooks as a `T`, if they are one: how containers recognise their own fences (the
    /// kernel's `to_dma_fence_array` compares the ops).
    pub(crate) fn ops_as<T: FenceOps<B>>(&self) -> Option<&T> {
        let ops: &dyn Any = &*self.inner.ops;
        ops.downcast_ref::<T>()
    }

    /// True if this handle is the only reference to the fence and no weak reference
    /// ([`WeakFence`]) exists that could make another (the kernel's `refcount <= 1` test in
    /// the chain's release). Once true, it stays true while the handle is held: `Arc::get_mut`
    /// locks the weak count while it reads the strong one, so an upgrade racing the check is
    /// seen (two separate loads could miss it: the upgrade, then its weak reference retired).
    pub(crate) fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.inner).is_some()
    }

    /// A weak reference to this fence: it keeps the fence's memory, not the fence. Only on a
    /// scheme that frees at the final put: the classic final put relies on there being none.
    pub(crate) fn downgrade(&self) -> WeakFence<B> {
        // A constant: the check costs nothing, and it keeps `release_then_free_after_grace`'s
        // SAFETY argument from depending on callers alone.
        assert!(
            !FencesOf::<B>::FREE_AFTER_GRACE,
            "a weak reference to a fence of a scheme that frees after a grace period"
        );
        WeakFence(Arc::downgrade(&self.inner))
    }

    /// The identity used by callback ids and `ptr_eq`.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Gives up the handle as a raw pointer (for the work list and callback nodes).
    pub(crate) fn into_raw(self) -> *const () {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the Arc is moved out exactly once.
        let arc = unsafe { ManuallyDrop::take(&mut this.inner) };
        Arc::into_raw(arc) as *const ()
    }

    /// Takes back a handle given up by [`Fence::into_raw`].
    ///
    /// # Safety
    /// 1. `ptr` came from `Fence::<B>::into_raw` and is taken back at most once.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> Self {
        // SAFETY: obligation 1: the pointer is an `Arc<FenceInner<B>>` given up once.
        let arc = unsafe { Arc::from_raw(ptr as *const FenceInner<B>) };
        Fence {
            inner: ManuallyDrop::new(arc),
        }
    }

    /// A handle borrowed from a reference given up by [`Fence::into_raw`], without taking
    /// that reference back (dropping the result releases nothing).
    ///
    /// # Safety
    /// 1. `ptr` came from `Fence::<B>::into_raw` and that reference is alive while the result
    ///    is used.
    pub(crate) unsafe fn borrow_raw(ptr: *const ()) -> ManuallyDrop<Self> {
        // SAFETY: obligation 1; the `ManuallyDrop` never gives the reference back.
        ManuallyDrop::new(unsafe { Self::from_raw(ptr) })
    }

    /// The fence's context (timeline) id.
    pub fn context(&self) -> u64 {
        self.inner.context
    }

    /// The fence's sequence number on its context.
    pub fn seqno(&self) -> u64 {
        self.inner.seqno
    }

    /// Signals the fence now (`dma_fence_signal`): marks it signalled and runs every
    /// installed callback exactly once on this thread.
    ///
    /// On the `Rcu` backend, when called from inside a callback, the fence is marked at once
    /// and its callbacks run after the current callback returns (see the crate docs).
    /// Returns `Err(AlreadySignaled)` if it had already signalled.
    ///
    /// A timeline's fences must signal in seqno order (see [`Timeline`](crate::Timeline));
    /// debug builds report a timeline that does not.
    pub fn signal(&self) -> Result<(), FenceError> {
        self.before_signal();
        FencesOf::<B>::signal(self, None, None)
    }

    /// Signals with an explicit completion time (`dma_fence_signal_timestamp`).
    pub fn signal_timestamp(&self, at: Instant) -> Result<(), FenceError> {
        self.before_signal();
        FencesOf::<B>::signal(self, Some(at), None)
    }

    /// Debug builds: the timeline's signal-order check, before the fence is marked (so
    /// before its callbacks, which may signal the timeline's next fence, run). Nothing in
    /// release builds.
    #[inline(always)]
    fn before_signal(&self) {
        #[cfg(all(debug_assertions, not(loom)))]
        if !self.test_signaled_flag() {
            self.note_signal_order();
        }
    }

    /// Records an error to report once signalled (`dma_fence_set_error`); only while pending.
    /// A later call replaces an earlier one.
    pub fn set_error(&self, error: Errno) -> Result<(), FenceError> {
        self.inner.state.word.set_error(error)
    }

    /// Records `error` unless the fence carries one already: how a container keeps the
    /// first error among its members (the kernel's array sets it on its own fence as each
    /// member fails), so that however it comes to signal, the error is there.
    pub(crate) fn record_error(&self, error: Option<Errno>) {
        if let Some(error) = error {
            let _ = self.inner.state.word.set_error_if_none(error);
        }
    }

    /// The error recorded so far, pending or not (`error()` reports it only once signalled).
    pub(crate) fn recorded_error(&self) -> Option<Errno> {
        self.inner.state.word.load().error()
    }

    /// True once signalled. If not yet, polls the `signaled` hook, which may signal the
    /// fence (`dma_fence_is_signaled`).
    pub fn is_signaled(&self) -> bool {
        let word = self.inner.state.word.load();
        if word.is_signaled() {
            return true;
        }
        if word.is_quiet() {
            return false;
        }
        if self.ops().signaled(self) {
            let _ = self.signal();
            return true;
        }
        false
    }

    /// The signalled flag alone, without polling any hook (`dma_fence_test_signaled_flag`).
    pub fn test_signaled_flag(&self) -> bool {
        self.inner.state.is_signaled()
    }

    /// Whether the fence has signalled, when its state word alone can tell: `Some(true)` once
    /// signalled; `Some(false)` while pending with no `signaled` poll to call (a container,
    /// which answers through its flag, or a quiet fence); `None` when only the driver's poll
    /// can tell. What [`Fence::is_signaled_shallow`] would answer, from one load and
    /// running nothing: fit for a read-side section.
    pub(crate) fn flag_answer(&self) -> Option<bool> {
        let word = self.inner.state.word.load();
        if word.is_signaled() {
            Some(true)
        } else if word.is_container() || word.is_quiet() {
            Some(false)
        } else {
            None
        }
    }

    /// True if the fence has signalled, polling a plain fence's hook but never descending
    /// into a container (which would recurse with nesting depth): what a container's own
    /// poll asks of each member. A container answers through its flag only.
    pub(crate) fn is_signaled_shallow(&self) -> bool {
        self.flag_answer().unwrap_or_else(|| self.is_signaled())
    }

    /// Pending, signalled, or signalled with an error (`dma_fence_get_status`); may poll.
    pub fn status(&self) -> Status {
        if !self.is_signaled() {
            return Status::Pending;
        }
        self.status_now()
    }

    /// The status from the flag alone, without polling.
    pub(crate) fn status_now(&self) -> Status {
        if !self.test_signaled_flag() {
            return Status::Pending;
        }
        match self.error() {
            Some(e) => Status::Error(e),
            None => Status::Signaled,
        }
    }

    /// The error the fence signalled with; `None` while pending or if it completed cleanly.
    pub fn error(&self) -> Option<Errno> {
        self.inner.state.error()
    }

    /// When the fence signalled; `None` while pending.
    pub fn timestamp(&self) -> Option<Instant> {
        self.inner.state.timestamp()
    }

    /// Asks the fence's producer to signal it (`dma_fence_enable_sw_signaling`): calls the
    /// `enable_signaling` hook at most once.
    pub fn enable_sw_signaling(&self) {
        FencesOf::<B>::enable_signaling(self)
    }

    /// True for arrays and chains (`dma_fence_is_container`).
    pub fn is_container(&self) -> bool {
        self.inner.state.word.load().is_container()
    }

    /// True if `self` is later than `other` on the same context (`dma_fence_is_later`):
    /// wrap-aware in 32 bits, or plain 64-bit order on a `seqno64` timeline. Fences of
    /// different contexts are not ordered: `false`.
    pub fn is_later(&self, other: &Self) -> bool {
        if self.context() != other.context() {
            return false;
        }
        seqno_is_later(self.seqno(), other.seqno(), self.is_seqno64())
    }

    /// True if the fence orders seqnos in 64 bits (`dma_fence_init64`).
    pub(crate) fn is_seqno64(&self) -> bool {
        self.inner.state.word.load().is_seqno64()
    }

    /// True if both handles refer to the same fence.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.addr() == other.addr()
    }

    /// The driver's name for this fence.
    pub fn driver_name(&self) -> &str {
        self.ops().driver_name()
    }

    /// The timeline's name for this fence.
    pub fn timeline_name(&self) -> &str {
        self.ops().timeline_name()
    }
}

/// The kernel's `__dma_fence_is_later`: `a` later than `b`.
pub(crate) fn seqno_is_later(a: u64, b: u64, seqno64: bool) -> bool {
    if seqno64 {
        a > b
    } else {
        (a.wrapping_sub(b) as u32 as i32) > 0
    }
}

/// Identity: two handles are equal if they refer to the same fence ([`Fence::ptr_eq`]), so
/// fences can be kept in a `HashSet` or used as map keys. Two distinct fences with the same
/// context and seqno are not equal. (clippy's `mutable_key_type` lint sees the atomics
/// inside a fence and fires on such a set; the hash is the fence's address, which its
/// state never changes, so the lint can be allowed there.)
///
/// ```
/// use std::collections::HashSet;
/// use rcu_fence::Timeline;
/// let tl = Timeline::new("gpu");
/// let (a, b) = (tl.fence(1), tl.fence(1));
/// let set: HashSet<_> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
/// assert_eq!(set.len(), 2);
/// assert!(set.contains(&a) && a != b);
/// ```
impl<B: Backend> PartialEq for Fence<B> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other)
    }
}

impl<B: Backend> Eq for Fence<B> {}

/// Hashes the identity (the address of the shared fence), consistently with `Eq`.
impl<B: Backend> std::hash::Hash for Fence<B> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr().hash(state);
    }
}

impl<B: Backend> Clone for Fence<B> {
    fn clone(&self) -> Self {
        Fence {
            inner: ManuallyDrop::new(Arc::clone(&self.inner)),
        }
    }
}

impl<B: Backend> Drop for Fence<B> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self.inner` is not used again after this point.
        let arc = unsafe { ManuallyDrop::take(&mut self.inner) };
        if FencesOf::<B>::FREE_AFTER_GRACE && Arc::strong_count(&arc) == 1 {
            // The classic scheme's final put: release now, free past RCU readers.
            release_then_free_after_grace(arc);
        } else if !FencesOf::<B>::FLAT_DROP || Arc::strong_count(&arc) > 1 {
            // The classic scheme: a plain recursive release, as the kernel's final put. And
            // on every scheme, a handle that is not the last one: if another is dropped at
            // the same time and this one turns out to be the last after all, the release
            // below it opens a work scope of its own, so the stack grows by one level at
            // most. This is the path of nearly every drop (a walk's clones, a lookup's
            // answer), so it stays inline; the last handle's release is out of line.
            drop(arc);
        } else {
            release_last(arc);
        }
    }
}

/// The final put on a scheme that frees after a grace period (`dma_fence_release`, then
/// `dma_fence_free`): the fence's contents (its ops, and so a container's members) are
/// dropped now, recursively as the kernel's, and its memory is retired to RCU.
///
/// Only the last handle comes here (a count of 1); two handles dropped at once may both see
/// a count of two, and the later decrement then frees at once (rare, and only sooner than
/// the kernel would). Under loom the memory is freed at once: the models check the locking
/// protocols, and their leak check would see memory still waiting for a grace period.
#[inline(never)]
fn release_then_free_after_grace<B: Backend>(arc: Arc<FenceInner<B>>) {
    #[cfg(loom)]
    drop(arc);
    #[cfg(not(loom))]
    {
        // Acquire: pairs with the Release decrements of the handles dropped before this
        // one (as `Arc`'s own final drop does), so their uses happen before the drop below.
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: `ManuallyDrop<T>` is `repr(transparent)` over `T`, so it has `T`'s size
        // and alignment, which is what `Arc::from_raw` asks of a pointer from `Arc<T>`.
        let hollow =
            unsafe { Arc::from_raw(Arc::into_raw(arc).cast::<ManuallyDrop<FenceInner<B>>>()) };
        let contents = Arc::as_ptr(&hollow).cast_mut();
        // SAFETY: the caller saw a strong count of 1 on the handle it owned, and no weak
        // reference to a fence is made on a scheme that frees after a grace period
        // (`WeakFence`): nothing else can reach the contents, as `Arc::get_mut` would prove.
        // They are dropped once, here (if that panics, `hollow` frees the memory at once);
        // the retired `Arc<ManuallyDrop<_>>` only frees the memory.
        unsafe { ManuallyDrop::drop(&mut *contents) };
        FencesOf::<B>::retire_memory(hollow);
    }
}

/// Releases what may be the last handle of a fence on a scheme that flattens releases.
#[inline(never)]
fn release_last<B: Backend>(arc: Arc<FenceInner<B>>) {
    if arc.state.word.load().is_inert() && !arc.state.has_linked() {
        // A fence whose ops own nothing and which has no callback left to run: its release
        // cannot cascade.
        drop(arc);
    } else if work::is_active() {
        // Inside an operation: release later from the work list, so that a container's
        // drop never recurses into its members' drops.
        let raw = Arc::into_raw(arc) as *const ();
        // SAFETY: `drop_raw::<B>` takes back exactly this `Arc` once (obligations 1, 2).
        work::push(unsafe { Job::new(raw, std::ptr::null(), drop_raw::<B>) });
    } else {
        work::scope(|_| drop(arc));
    }
}

/// Releases a fence reference parked on the work list by `Fence::drop`.
///
/// # Safety
/// 1. `ptr` is an `Arc<FenceInner<B>>` given up with `Arc::into_raw`, released here once.
unsafe fn drop_raw<B: Backend>(ptr: *const (), _: *const ()) {
    // SAFETY: obligation 1.
    drop(unsafe { Arc::from_raw(ptr as *const FenceInner<B>) });
}

impl<B: Backend> fmt::Debug for Fence<B> {
    /// `driver:timeline context:seqno status`, like `dma_fence_describe`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {}:{} {}",
            self.driver_name(),
            self.timeline_name(),
            self.context(),
            self.seqno(),
            self.status_now()
        )
    }
}

/// The ops every fence made by a `Timeline` shares: its names, and in debug builds the
/// record that reports the timeline signalling out of order (see `Fence::signal`). Here,
/// beside the stub's ops, rather than in `context.rs`, so that the signal path can find the
/// record by type without an import circle.
pub(crate) struct TimelineOps {
    name: Box<str>,
    #[cfg(all(debug_assertions, not(loom)))]
    order: order::SignalOrder,
}

impl TimelineOps {
    pub(crate) fn new(name: &str) -> TimelineOps {
        TimelineOps {
            name: name.into(),
            #[cfg(all(debug_assertions, not(loom)))]
            order: order::SignalOrder::default(),
        }
    }
}

impl<B: Backend> FenceOps<B> for TimelineOps {
    fn driver_name(&self) -> &str {
        "rcu-fence"
    }
    fn timeline_name(&self) -> &str {
        &self.name
    }
}

/// The debug-build check that a timeline signals in seqno order (see `Timeline`'s docs).
/// A diagnostic, not part of any fence protocol: a `std` lock taken briefly on each signal
/// of a timeline fence, in debug builds only (not the loom shim, and not under loom).
#[cfg(all(debug_assertions, not(loom)))]
mod order {
    use std::sync::Mutex;

    use super::{Backend, Fence, TimelineOps, seqno_is_later};

    /// The latest seqno signalled on the timeline, and whether it has been reported.
    #[derive(Default)]
    pub(super) struct SignalOrder(Mutex<(Option<u64>, bool)>);

    impl<B: Backend> Fence<B> {
        /// Called by a signal of this fence before it marks it: reports (once per
        /// timeline) a signal of a seqno earlier than one the timeline has signalled.
        pub(super) fn note_signal_order(&self) {
            let Some(ops) = self.ops_as::<TimelineOps>() else {
                return;
            };
            let (seqno, seqno64) = (self.seqno(), self.is_seqno64());
            let mut state = ops.order.0.lock().unwrap_or_else(|e| e.into_inner());
            match state.0 {
                Some(last) if seqno_is_later(last, seqno, seqno64) => {
                    if !std::mem::replace(&mut state.1, true) {
                        drop(state);
                        report(&ops.name, self.context(), seqno, last);
                    }
                }
                _ => state.0 = Some(seqno),
            }
        }
    }

    fn report(timeline: &str, context: u64, seqno: u64, after: u64) {
        #[cfg(feature = "tracing")]
        tracing::event!(
            name: "timeline_out_of_order",
            target: "rcu_fence",
            tracing::Level::WARN,
            timeline,
            context,
            seqno,
            after,
            "timeline signalled out of order: a timeline must signal in seqno order, or \
             merged and chained points complete early (reported once per timeline)"
        );
        #[cfg(not(feature = "tracing"))]
        eprintln!(
            "rcu-fence: timeline \"{timeline}\" (context {context}) signalled seqno {seqno} \
             after seqno {after}: a timeline must signal in seqno order, or merged and \
             chained points complete early (reported once per timeline, in debug builds)"
        );
    }
}

/// The hooks of stub fences: already signalled, named "stub".
struct StubOps;

impl<B: Backend> FenceOps<B> for StubOps {
    fn driver_name(&self) -> &str {
        "stub"
    }
    fn timeline_name(&self) -> &str {
        "stub"
    }
    fn signaled(&self, _fence: &Fence<B>) -> bool {
        true
    }
}

fn stub_ops<B: Backend>() -> StdArc<dyn FenceOps<B>> {
    static OPS: std::sync::OnceLock<StdArc<StubOps>> = std::sync::OnceLock::new();
    OPS.get_or_init(|| StdArc::new(StubOps)).clone()
}

/// A new stub signalled at `at`, not shared (`dma_fence_allocate_private_stub`).
pub(crate) fn private_stub<B: Backend>(at: Instant) -> Fence<B> {
    new_stub(Some(at))
}

/// A pending fence with the stub's identity, for callers that set an error before signalling.
pub(crate) fn private_stub_pending<B: Backend>() -> Fence<B> {
    new_stub(None)
}

fn new_stub<B: Backend>(signaled_at: Option<Instant>) -> Fence<B> {
    Fence::new(
        0,
        0,
        stub_ops(),
        Birth {
            seqno64: false,
            container: false,
            inert: true,
            polls: true,
            signaled_at,
        },
    )
}

/// A reference to the shared, already signalled stub fence (`dma_fence_get_stub`):
/// context 0, seqno 0.
///
/// Its backend comes from the context, or is named: `stub::<Locked>()`, or a typed binding
/// (`let s: Fence<Bk> = stub();`).
///
/// ```
/// use rcu_fence::{Fence, Locked, Rcu, stub};
/// let s = stub::<Rcu>();
/// assert!(s.is_signaled());
/// assert_eq!((s.context(), s.seqno()), (0, 0));
///
/// type Bk = Locked;
/// let t: Fence<Bk> = stub();
/// assert!(t.ptr_eq(&stub::<Bk>())); // one shared stub per backend
/// ```
pub fn stub<B: Backend>() -> Fence<B> {
    B::stub()
}

/// The shared stub of a backend, kept in `cell` (each backend owns one: statics cannot be
/// generic). Under loom, where nothing may outlive a model, a fresh one each time.
pub(crate) fn shared_stub<B: Backend>(cell: &'static std::sync::OnceLock<Fence<B>>) -> Fence<B> {
    #[cfg(not(loom))]
    return cell.get_or_init(|| private_stub(Instant::now())).clone();
    #[cfg(loom)]
    {
        let _ = cell;
        private_stub(Instant::now())
    }
}

/// A weak reference to a fence (`std`'s `Weak`): it keeps the fence's memory allocated but
/// not the fence alive, and [`WeakFence::upgrade`] takes a reference only while one is
/// still held somewhere: the kernel's `dma_fence_get_rcu`, which fails once the count has
/// fallen to zero. `Rcu`'s arrays let their readers reach members through one, so that a
/// member they release is dropped at once (see `backend::rcu::ArrayHold`).
///
/// Only the `Rcu` scheme makes them: the classic schemes' final put (a count of one, then
/// the contents dropped by hand) relies on no weak reference being able to revive a fence.
pub(crate) struct WeakFence<B: Backend>(FenceWeak<FenceInner<B>>);

impl<B: Backend> WeakFence<B> {
    /// A new reference to the fence, if any is still held.
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<Fence<B>> {
        self.0.upgrade().map(|arc| Fence {
            inner: ManuallyDrop::new(arc),
        })
    }
}

// SAFETY: `Weak::into_raw` of a weak reference made from a live fence is non-null and keeps
// one weak count, so the allocation stays put until the rebuilt `Weak` is dropped (1); a
// `ManuallyDrop<WeakFence>` rebuilt from it shares that count without touching it, and
// `upgrade` through `&WeakFence` is allowed from any thread (2).
unsafe impl<B: Backend> rcu::Pointer for WeakFence<B> {
    fn into_raw(self) -> *mut () {
        FenceWeak::into_raw(self.0).cast_mut().cast()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: the trait's contract: `ptr` came from `into_raw` and ownership returns once.
        WeakFence(unsafe { FenceWeak::from_raw(ptr.cast_const().cast()) })
    }
}

// SAFETY: `into_raw` gives up one strong reference as a pointer to the shared inner object,
// which stays allocated until `from_raw`'s handle is dropped; a `ManuallyDrop<Fence>` rebuilt
// from it is a valid borrowed handle while that reference is alive (an `Arc`'s contract).
// Hidden from the docs: it is how the containers keep fences in RCU slots, not something a
// user calls (its `unsafe fn from_raw` has nothing to offer outside the crate).
#[doc(hidden)]
unsafe impl<B: Backend> rcu::Pointer for Fence<B> {
    fn into_raw(self) -> *mut () {
        Fence::into_raw(self) as *mut ()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: the trait's contract: `ptr` came from `into_raw` and ownership returns once.
        unsafe { Fence::from_raw(ptr as *const ()) }
    }
}

/// The next context to hand out. Context 0 is never handed out: the stub uses it.
static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

/// Reserves `n` consecutive fresh context ids and returns the first (`dma_fence_context_alloc`).
///
/// Ids are unique for the life of the process and never 0. `n == 0` reserves nothing and
/// returns the id the next allocation will start at.
///
/// # Panics
///
/// If the 64-bit id space is exhausted (ids would repeat, and fences of unrelated timelines
/// would then be ordered and merged as one). [`try_context_alloc`] reports it instead.
///
/// ```
/// let a = rcu_fence::context_alloc(2);
/// let b = rcu_fence::context_alloc(1);
/// assert!(a > 0 && b >= a + 2);
/// ```
pub fn context_alloc(n: u64) -> u64 {
    match try_context_alloc(n) {
        Ok(first) => first,
        Err(_) => panic!("rcu_fence::context_alloc({n}): the 64-bit context id space is exhausted"),
    }
}

/// Like [`context_alloc`], but `Err(ContextsExhausted)` instead of a panic when fewer than
/// `n` ids are left; nothing is reserved then.
///
/// ```
/// use rcu_fence::{FenceError, try_context_alloc};
/// assert!(try_context_alloc(1).unwrap() > 0);
/// assert_eq!(try_context_alloc(u64::MAX), Err(FenceError::ContextsExhausted));
/// ```
pub fn try_context_alloc(n: u64) -> Result<u64, FenceError> {
    // Relaxed: only the uniqueness of the returned range matters, which the RMW gives.
    NEXT_CONTEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            next.checked_add(n)
        })
        .map_err(|_| FenceError::ContextsExhausted)
}
