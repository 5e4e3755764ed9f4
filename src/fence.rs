//! The fence: a one-shot completion event (`struct dma_fence`).
//!
//! [`Fence`] is a reference-counted handle (`Clone` = `dma_fence_get`, `Drop` =
//! `dma_fence_put`). What a fence *is* (context, seqno, hooks or container) lives here; how
//! it signals and keeps callbacks is the backend's business (`backend::rcu`,
//! `backend::locked`).
//!
//! Drops go through the per-thread work list (`work`): dropping the last handle of a
//! container drops its members as queued jobs, not by recursion.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::Rcu;
use crate::array::FenceArray;
use crate::backend::Backend;
use crate::chain::FenceChain;
use crate::error::{Errno, FenceError, Status};
use crate::ops::FenceOps;
use crate::sync::Arc;
use crate::work::{self, Job};

/// A boxed callback as the backends store it.
pub(crate) type Callback<B> = Box<dyn FnOnce(&Fence<B>) + Send>;

/// What kind of fence this is: which hooks answer `enable_signaling`, `signaled` and the names.
pub(crate) enum Kind<B: Backend> {
    /// A driver or timeline fence with its hooks.
    Ops(StdArc<dyn FenceOps<B>>),
    /// The already-signalled stub (`dma_fence_get_stub`).
    Stub,
    /// A fence array.
    Array(Box<FenceArray<B>>),
    /// A fence chain link.
    Chain(Box<FenceChain<B>>),
}

/// The shared object behind every [`Fence`] handle.
pub(crate) struct FenceInner<B: Backend> {
    pub(crate) context: u64,
    pub(crate) seqno: u64,
    pub(crate) seqno64: bool,
    pub(crate) kind: Kind<B>,
    pub(crate) state: B::State,
}

impl<B: Backend> Drop for FenceInner<B> {
    fn drop(&mut self) {
        // The kernel's newest release path: a fence released with callbacks still queued is
        // signalled with -EDEADLK so that nobody waits forever. No handle exists any more, so
        // the queued callbacks move into a fresh fence with the same identity, which is
        // signalled and dropped in turn (through the work list, so this never nests).
        if let Some(state) = B::take_pending(&mut self.state) {
            let kind = std::mem::replace(&mut self.kind, Kind::Stub);
            let fence = Fence::from_inner(FenceInner {
                context: self.context,
                seqno: self.seqno,
                seqno64: self.seqno64,
                kind,
                state,
            });
            let _ = B::set_error(&fence.inner().state, Errno::EDEADLK);
            let _ = B::signal(&fence, None);
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
/// assert_eq!(fence.wait(), Status::Signaled);
/// ```
pub struct Fence<B: Backend = Rcu> {
    inner: ManuallyDrop<Arc<FenceInner<B>>>,
}

/// Identifies an installed callback so that [`Fence::remove_callback`] can take it back.
///
/// ```
/// use rcu_fence::Timeline;
/// let f = Timeline::new("gpu").fence(1);
/// let id = f.add_callback(|_| unreachable!()).unwrap();
/// assert!(f.remove_callback(id)); // removed: will never run
/// f.signal().unwrap();
/// ```
///
/// An id is consumed by the removal and cannot be cloned, so removing one callback twice
/// does not compile:
///
/// ```compile_fail,E0382
/// use rcu_fence::Timeline;
/// let f = Timeline::new("gpu").fence(1);
/// let id = f.add_callback(|_| {}).unwrap();
/// f.remove_callback(id);
/// f.remove_callback(id); // error[E0382]: use of moved value: `id`
/// ```
pub struct CallbackId<B: Backend = Rcu> {
    owner: usize,
    key: B::CallbackKey,
}

impl<B: Backend> fmt::Debug for CallbackId<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackId")
            .field("fence", &(self.owner as *const ()))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Fence<B> {
    pub(crate) fn from_inner(mut inner: FenceInner<B>) -> Self {
        let container = match inner.kind {
            Kind::Array(_) => Some("array"),
            Kind::Chain(_) => Some("chain"),
            Kind::Ops(_) | Kind::Stub => None,
        };
        B::init_state(&mut inner.state, container);
        crate::trace::event!("fence_init"; inner.context, inner.seqno);
        Fence {
            inner: ManuallyDrop::new(Arc::new(inner)),
        }
    }

    pub(crate) fn new_pending(context: u64, seqno: u64, seqno64: bool, kind: Kind<B>) -> Self {
        Self::from_inner(FenceInner {
            context,
            seqno,
            seqno64,
            kind,
            state: B::new_state(None),
        })
    }

    pub(crate) fn new_signaled(context: u64, seqno: u64, kind: Kind<B>, at: Instant) -> Self {
        Self::from_inner(FenceInner {
            context,
            seqno,
            seqno64: false,
            kind,
            state: B::new_state(Some(at)),
        })
    }

    pub(crate) fn inner(&self) -> &FenceInner<B> {
        &self.inner
    }

    /// True if this handle is the only reference to the fence (the kernel's `refcount <= 1`
    /// test in the chain's release). Stable only when no other handle can be cloned from.
    pub(crate) fn is_unique(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// The identity used by callback ids and `ptr_eq`.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Gives up the handle as a raw pointer (for the work list).
    pub(crate) fn into_raw(self) -> *const () {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the Arc is moved out exactly once.
        let arc = unsafe { ManuallyDrop::take(&mut this.inner) };
        Arc::into_raw(arc) as *const ()
    }

    /// Takes back a handle given up by [`Fence::into_raw`].
    ///
    /// # Safety
    /// 1. `ptr` came from `Fence::<B>::into_raw` and is used at most once.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> Self {
        // SAFETY: obligation 1: the pointer is an `Arc<FenceInner<B>>` given up once.
        let arc = unsafe { Arc::from_raw(ptr as *const FenceInner<B>) };
        Fence {
            inner: ManuallyDrop::new(arc),
        }
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
    pub fn signal(&self) -> Result<(), FenceError> {
        B::signal(self, None)
    }

    /// Signals with an explicit completion time (`dma_fence_signal_timestamp`).
    pub fn signal_timestamp(&self, at: Instant) -> Result<(), FenceError> {
        B::signal(self, Some(at))
    }

    /// Records an error to report once signalled (`dma_fence_set_error`); only while pending.
    /// A later call replaces an earlier one.
    pub fn set_error(&self, error: Errno) -> Result<(), FenceError> {
        B::set_error(&self.inner.state, error)
    }

    /// True once signalled. If not yet, polls the `signaled` hook, which may signal the
    /// fence (`dma_fence_is_signaled`).
    pub fn is_signaled(&self) -> bool {
        if B::is_signaled_flag(&self.inner.state) {
            return true;
        }
        if self.poll_hook() {
            let _ = self.signal();
            return true;
        }
        false
    }

    /// The signalled flag alone, without polling any hook (`dma_fence_test_signaled_flag`).
    pub fn test_signaled_flag(&self) -> bool {
        B::is_signaled_flag(&self.inner.state)
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
        if !B::is_signaled_flag(&self.inner.state) {
            return Status::Pending;
        }
        match B::error(&self.inner.state) {
            Some(e) => Status::Error(e),
            None => Status::Signaled,
        }
    }

    /// The error the fence signalled with; `None` while pending or if it completed cleanly.
    pub fn error(&self) -> Option<Errno> {
        B::error(&self.inner.state)
    }

    /// When the fence signalled; `None` while pending.
    pub fn timestamp(&self) -> Option<Instant> {
        B::timestamp(&self.inner.state)
    }

    /// Asks the fence's producer to signal it (`dma_fence_enable_sw_signaling`): calls the
    /// `enable_signaling` hook at most once.
    pub fn enable_sw_signaling(&self) {
        B::enable_signaling(self)
    }

    /// Installs `f` to run once when the fence signals (`dma_fence_add_callback`).
    ///
    /// Enables signalling first. If the fence has already signalled, returns
    /// `Err(AlreadySignaled)` and drops `f` without calling it. The callback runs on the
    /// signalling thread, exactly once. On the `Rcu` backend it runs with no lock held, so
    /// it may use any fence API, signal other fences and drop any handle.
    pub fn add_callback(
        &self,
        f: impl FnOnce(&Fence<B>) + Send + 'static,
    ) -> Result<CallbackId<B>, FenceError> {
        let key = B::add_callback(self, f)?;
        crate::trace::event!("fence_callback_added", self);
        Ok(CallbackId {
            owner: self.addr(),
            key,
        })
    }

    /// Takes back a callback (`dma_fence_remove_callback`).
    ///
    /// `true`: it was still queued and will never run. `false`: the fence has signalled and
    /// the callback has run to completion: this call waits for a run in progress on another
    /// thread (the kernel's barrier); or it is made from inside that very callback; or `id`
    /// belongs to another fence (use [`Fence::try_remove_callback`] to tell that case apart).
    ///
    /// Once any thread can see the fence signalled, the answer is `false`. On `Rcu`, a
    /// callback that removes a later callback of its own fence (not yet run) therefore runs
    /// it on the spot, inside this call (waiting for it would deadlock); on `Locked` that
    /// call would take the lock the signaller holds, as in the kernel.
    pub fn remove_callback(&self, id: CallbackId<B>) -> bool {
        self.try_remove_callback(id).unwrap_or(false)
    }

    /// Like [`Fence::remove_callback`], but an id issued by another fence is reported as
    /// `Err(ForeignCallback)` (and left installed where it is).
    pub fn try_remove_callback(&self, id: CallbackId<B>) -> Result<bool, FenceError> {
        if id.owner != self.addr() {
            return Err(FenceError::ForeignCallback);
        }
        crate::trace::event!("fence_callback_removed", self);
        Ok(B::remove_callback(self, id.key))
    }

    /// Blocks until the fence signals (`dma_fence_wait`), enabling signalling first.
    ///
    /// From inside a callback on `Rcu`, the work this thread has queued (enabling, the
    /// callbacks of fences signalled meanwhile) runs before the wait parks. On `Locked` a
    /// callback holds its fence's lock, as in the kernel, which forbids waiting there.
    pub fn wait(&self) -> Status {
        match crate::wait::wait_until(self, None) {
            Ok(status) => status,
            Err(_) => unreachable!("a wait without deadline cannot time out"),
        }
    }

    /// Blocks until the fence signals or `timeout` passes (`dma_fence_wait_timeout`).
    /// A zero timeout only checks. A timeout too large to represent waits forever.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Status, FenceError> {
        if !timeout.is_zero() {
            // As the kernel's default wait: any non-zero wait asks the producer to signal,
            // even if the deadline passes before the waiter installs its callback.
            self.enable_sw_signaling();
        }
        crate::wait::wait_until(self, Instant::now().checked_add(timeout))
    }

    /// Passes a deadline hint to the producer (`dma_fence_set_deadline`); no-op once signalled.
    pub fn set_deadline(&self, deadline: Instant) {
        if self.test_signaled_flag() {
            return;
        }
        match &self.inner.kind {
            Kind::Ops(ops) => ops.set_deadline(self, deadline),
            Kind::Stub => {}
            // Containers forward to their leaves, iteratively (the kernel forwards to members).
            Kind::Array(_) | Kind::Chain(_) => {
                for leaf in crate::unwrap(self) {
                    leaf.set_deadline(deadline);
                }
            }
        }
    }

    /// The array behind this fence, if it is one (`to_dma_fence_array`).
    pub fn as_array(&self) -> Option<&FenceArray<B>> {
        match &self.inner.kind {
            Kind::Array(array) => Some(array),
            _ => None,
        }
    }

    /// The chain link behind this fence, if it is one (`to_dma_fence_chain`).
    pub fn as_chain(&self) -> Option<&FenceChain<B>> {
        match &self.inner.kind {
            Kind::Chain(chain) => Some(chain),
            _ => None,
        }
    }

    /// True for arrays and chains (`dma_fence_is_container`).
    pub fn is_container(&self) -> bool {
        matches!(self.inner.kind, Kind::Array(_) | Kind::Chain(_))
    }

    /// The error a container has recorded from its members, applied when it signals.
    pub(crate) fn container_error(&self) -> Option<Errno> {
        match &self.inner.kind {
            Kind::Array(array) => array.recorded_error(),
            Kind::Chain(chain) => chain.recorded_error(),
            _ => None,
        }
    }

    /// True if `self` is later than `other` on the same context (`dma_fence_is_later`):
    /// wrap-aware in 32 bits, or plain 64-bit order on a `seqno64` timeline. Fences of
    /// different contexts are not ordered: `false`.
    pub fn is_later(&self, other: &Self) -> bool {
        if self.context() != other.context() {
            return false;
        }
        seqno_is_later(self.seqno(), other.seqno(), self.inner.seqno64)
    }

    /// True if both handles refer to the same fence.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.addr() == other.addr()
    }

    /// The driver's name for this fence.
    pub fn driver_name(&self) -> &str {
        match &self.inner.kind {
            Kind::Ops(ops) => ops.driver_name(),
            Kind::Stub => "stub",
            Kind::Array(_) => "dma_fence_array",
            Kind::Chain(_) => "dma_fence_chain",
        }
    }

    /// The timeline's name for this fence.
    pub fn timeline_name(&self) -> &str {
        match &self.inner.kind {
            Kind::Ops(ops) => ops.timeline_name(),
            Kind::Stub => "stub",
            Kind::Array(_) | Kind::Chain(_) => "unbound",
        }
    }

    /// Calls the `enable_signaling` hook; `false` means "already complete: signal now".
    pub(crate) fn enable_hook(&self) -> bool {
        match &self.inner.kind {
            Kind::Ops(ops) => ops.enable_signaling(self),
            Kind::Stub => false,
            Kind::Array(array) => array.enable(self),
            Kind::Chain(_) => B::chain_enable(self),
        }
    }

    /// Calls the `signaled` polling hook.
    fn poll_hook(&self) -> bool {
        match &self.inner.kind {
            Kind::Ops(ops) => ops.signaled(self),
            Kind::Stub => true,
            Kind::Array(array) => array.poll(),
            Kind::Chain(_) => crate::chain::poll(self),
        }
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

impl<B: Backend> Clone for Fence<B> {
    fn clone(&self) -> Self {
        Fence {
            inner: ManuallyDrop::new(Arc::clone(&self.inner)),
        }
    }
}

impl<B: Backend> Drop for Fence<B> {
    fn drop(&mut self) {
        // SAFETY: `self.inner` is not used again after this point.
        let arc = unsafe { ManuallyDrop::take(&mut self.inner) };
        if !B::FLAT_DROP {
            // The classic scheme: a plain recursive release, as the kernel's final put.
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
        let status = match self.status_now() {
            Status::Pending => "pending".to_string(),
            Status::Signaled => "signaled".to_string(),
            Status::Error(e) => format!("error {}", e.get()),
        };
        write!(
            f,
            "{}:{} {}:{} {}",
            self.driver_name(),
            self.timeline_name(),
            self.context(),
            self.seqno(),
            status
        )
    }
}

/// A reference to the shared, already signalled stub fence (`dma_fence_get_stub`):
/// context 0, seqno 0.
///
/// ```
/// let s = rcu_fence::stub::<rcu_fence::Rcu>();
/// assert!(s.is_signaled());
/// assert_eq!((s.context(), s.seqno()), (0, 0));
/// ```
pub fn stub<B: Backend>() -> Fence<B> {
    B::stub()
}

/// A pending fence with the stub's identity, for callers that set an error before signalling.
pub(crate) fn private_stub_pending<B: Backend>() -> Fence<B> {
    Fence::new_pending(0, 0, false, Kind::Stub)
}

// SAFETY: `into_raw` gives up one strong reference as a pointer to the shared inner object,
// which stays allocated until `from_raw`'s handle is dropped; a `ManuallyDrop<Fence>` rebuilt
// from it is a valid borrowed handle while that reference is alive (an `Arc`'s contract).
unsafe impl<B: Backend> rcu::Pointer for Fence<B> {
    fn into_raw(self) -> *mut () {
        Fence::into_raw(self) as *mut ()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: the trait's contract: `ptr` came from `into_raw` and ownership returns once.
        unsafe { Fence::from_raw(ptr as *const ()) }
    }
}

/// A new stub signalled at `at`, not shared (`dma_fence_allocate_private_stub`).
pub(crate) fn private_stub<B: Backend>(at: Instant) -> Fence<B> {
    Fence::new_signaled(0, 0, Kind::Stub, at)
}
