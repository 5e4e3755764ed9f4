//! The sync object (`drm_syncobj`): a replaceable fence slot, and a timeline of points.
//!
//! # Slot, writers, waiters
//! Readers ([`Syncobj::fence`], [`Syncobj::find_fence`], [`Syncobj::query`]) take a
//! snapshot of the current fence without a lock (arc-swap; under loom a mutex stand-in,
//! since arc-swap is invisible to loom). Writers ([`Syncobj::add_point`],
//! [`Syncobj::replace_fence`]) are serialised by a small lock so that `add_point`'s
//! read-modify-write never loses a point; readers never take it.
//!
//! The same lock keeps the threads and tasks waiting for a point that has not been
//! submitted yet (the kernel's `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`): a waiter checks
//! under the lock that its point is still missing and registers; a writer, under the lock,
//! installs the new fence and takes the waiters whose point it submits, then wakes them
//! once the lock is released. So no wake-up is lost (the check and the install are
//! ordered by the lock), and nobody polls. A woken waiter finds its point without the lock.
//!
//! # Points and errors
//! A point's fence is found by walking the chain from the head (the kernel's
//! `dma_fence_chain_find_seqno`). Errors follow the chain's rule (see [`FenceChain`]): a
//! point reports the error of the earliest failed point at or below it. The chain records
//! each error with the point it came from, and keeps it when it collects signalled links,
//! so `find_fence` answers a point whose links are already collected with a stub carrying
//! that same error, and a point found while an earlier point's own fence is still pending
//! but later ones have failed with a link that carries their failure.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::backend::{Backend, FenceScheme, FencesOf, Rcu};
use crate::chain::{FenceChain, Seek, chain_walk, failure_of, seek};
use crate::error::{Errno, FenceError};
use crate::fence::Fence;
use crate::sync::{Mutex, thread};

/// The slot: a whole-fence snapshot read often, replaced rarely.
struct FenceSlot<B: Backend> {
    #[cfg(not(loom))]
    current: arc_swap::ArcSwapOption<Fence<B>>,
    #[cfg(loom)]
    current: Mutex<Option<std::sync::Arc<Fence<B>>>>,
}

impl<B: Backend> FenceSlot<B> {
    fn new() -> Self {
        #[cfg(not(loom))]
        return FenceSlot {
            current: arc_swap::ArcSwapOption::empty(),
        };
        #[cfg(loom)]
        return FenceSlot {
            current: Mutex::new(None),
        };
    }

    fn load(&self) -> Option<Fence<B>> {
        #[cfg(not(loom))]
        return self.current.load().as_deref().cloned();
        #[cfg(loom)]
        return self.current.lock().as_deref().cloned();
    }

    fn swap(&self, fence: Option<Fence<B>>) -> Option<Fence<B>> {
        let new = fence.map(std::sync::Arc::new);
        #[cfg(not(loom))]
        let old = self.current.swap(new);
        #[cfg(loom)]
        let old = std::mem::replace(&mut *self.current.lock(), new);
        old.map(|a| std::sync::Arc::try_unwrap(a).unwrap_or_else(|shared| (*shared).clone()))
    }
}

/// How a waiter for a point's submission is woken.
enum Wake {
    Thread(thread::Thread),
    Task(Waker),
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Thread(thread) => thread.unpark(),
            Wake::Task(waker) => waker.wake(),
        }
    }
}

/// One thread or task waiting for `point` to be submitted.
struct Waiter {
    id: u64,
    point: u64,
    wake: Wake,
}

/// The writers' lock's contents: the waiters for points not submitted yet.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    list: Vec<Waiter>,
}

impl Waiters {
    /// Registers a waiter (or, if `id` is still registered, replaces its wake-up).
    fn register(&mut self, id: &mut Option<u64>, point: u64, wake: Wake) {
        if let Some(w) = id.and_then(|id| self.list.iter_mut().find(|w| w.id == id)) {
            w.wake = wake;
            return;
        }
        self.next_id += 1;
        *id = Some(self.next_id);
        self.list.push(Waiter {
            id: self.next_id,
            point,
            wake,
        });
    }

    fn remove(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            self.list.retain(|w| w.id != id);
        }
    }

    /// Takes the waiters whose point `head` submits, to be woken once the lock is released.
    fn take_submitted<B: Backend>(&mut self, head: Option<&Fence<B>>) -> Vec<Wake> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let (ready, waiting) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|w| submits(head, w.point));
        self.list = waiting;
        ready.into_iter().map(|w: Waiter| w.wake).collect()
    }
}

/// True if `head`, as a sync object's fence, has `point`: any fence for point 0, a chain
/// that has reached `point` otherwise (what `find_fence` needs to answer).
fn submits<B: Backend>(head: Option<&Fence<B>>, point: u64) -> bool {
    match head {
        None => false,
        Some(_) if point == 0 => true,
        Some(head) => head.as_chain().is_some() && head.seqno() >= point,
    }
}

/// A sync object (`drm_syncobj`): a slot holding the latest fence of some work, replaced as
/// new work is submitted, and a timeline of points when used with [`Syncobj::add_point`]
/// (a Vulkan timeline semaphore is one).
///
/// - **Submit** a point with [`add_point`](Syncobj::add_point) (points must increase, as
///   on a [`Timeline`](crate::Timeline)); **find** the fence that completes a point with
///   [`find_fence`](Syncobj::find_fence), or wait for the point to be submitted first
///   with [`find_fence_timeout`](Syncobj::find_fence_timeout) and
///   [`find_fence_async`](Syncobj::find_fence_async).
/// - **Wait** for a point, submitted or not, with [`wait_point`](Syncobj::wait_point),
///   [`wait_point_timeout`](Syncobj::wait_point_timeout) and
///   [`wait_point_async`](Syncobj::wait_point_async) (`vkWaitSemaphores`); read the
///   current value with [`query`](Syncobj::query) (`vkGetSemaphoreCounterValue`).
/// - A value between two points is reached with the next point: waiting for 15 with points
///   10 and 20 waits for 20.
///
/// # Errors
/// **A point reports the error of the earliest failed point at or below it**, or none if
/// no point up to it failed. After point 3 fails, points 3, 4 and every later point report
/// 3's error (even where their own work succeeded), and points 1 and 2 report none; if 5
/// fails too, later points still report 3's. The answer is the same for every waiter,
/// whenever it looks and in whatever order the points signal: a fence found before the
/// points signal, a fence found after (a stub carrying the error), and every wait. The
/// kernel's chain carries no error forward; ours does, as [`FenceChain`] documents.
///
/// ```
/// use rcu_fence::{Errno, FenceError, Syncobj, Timeline};
/// let tl = Timeline::new("ring0");
/// let obj = Syncobj::new();
/// let (a, b, c) = (tl.fence(1), tl.fence(2), tl.fence(3));
/// obj.add_point(a.clone(), 1);
/// obj.add_point(b.clone(), 2);
/// a.signal().unwrap();
/// assert_eq!(obj.query(), 1);
/// assert!(obj.find_fence(1).unwrap().is_signaled());
/// let early = obj.find_fence(2).unwrap(); // found before point 2 fails
/// b.set_error(Errno::EIO).unwrap();
/// b.signal().unwrap();
/// obj.add_point(c.clone(), 3);
/// c.signal().unwrap();
/// let late = obj.find_fence(2).unwrap(); // found after
/// assert_eq!(early.wait(), Err(FenceError::Failed(Errno::EIO)));
/// assert_eq!(late.wait(), Err(FenceError::Failed(Errno::EIO)));
/// assert_eq!(obj.wait_point(3), Err(FenceError::Failed(Errno::EIO))); // 3 comes after 2
/// assert!(obj.find_fence(4).is_err()); // not submitted yet
/// ```
pub struct Syncobj<B: Backend = Rcu> {
    slot: FenceSlot<B>,
    writers: Mutex<Waiters>,
}

impl Syncobj<Rcu> {
    /// An empty sync object on the default backend.
    ///
    /// For another backend: `Syncobj::<Locked>::new()` (with [`SyncobjNew`], in
    /// [`rcu_fence::prelude`](crate::prelude)), `Syncobj::<Locked>::default()`, or
    /// [`Syncobj::new_in`].
    pub fn new() -> Self {
        Self::new_in(Rcu)
    }
}

/// `Syncobj::<B>::new()` for every backend `B` (the inherent [`Syncobj::new`] on
/// `Syncobj<Rcu>` takes precedence, so an unannotated `Syncobj::new()` stays `Rcu`); see
/// [`TimelineNew`](crate::TimelineNew). Import it with [`rcu_fence::prelude`](crate::prelude).
///
/// ```
/// use rcu_fence::prelude::*;
/// type Bk = Locked;
/// let obj = Syncobj::<Bk>::new();
/// assert!(obj.fence().is_none());
/// ```
pub trait SyncobjNew: Sized {
    /// An empty sync object (as [`Syncobj::new_in`] with `B::default()`).
    fn new() -> Self;
}

impl<B: Backend> SyncobjNew for Syncobj<B> {
    fn new() -> Self {
        Self::new_in(B::default())
    }
}

/// An empty sync object on any backend. (`Syncobj::default()` needs its backend named
/// where nothing else fixes it: `Syncobj::<Locked>::default()`, or a typed binding.)
impl<B: Backend> Default for Syncobj<B> {
    fn default() -> Self {
        Self::new_in(B::default())
    }
}

impl<B: Backend> Syncobj<B> {
    /// An empty sync object on the backend `B` (a value of its marker type; `B::default()`
    /// where only the type is at hand).
    pub fn new_in(backend: B) -> Self {
        let _ = backend;
        Syncobj {
            slot: FenceSlot::new(),
            writers: Mutex::new(Waiters::default()),
        }
    }

    /// The current fence (for a timeline, the newest point's chain link).
    pub fn fence(&self) -> Option<Fence<B>> {
        self.slot.load()
    }

    /// Replaces the fence and returns the old one (`drm_syncobj_replace_fence`). Wakes the
    /// waiters whose point the new fence submits.
    pub fn replace_fence(&self, fence: Option<Fence<B>>) -> Option<Fence<B>> {
        let (old, woken) = {
            let mut waiters = self.writers.lock();
            let woken = waiters.take_submitted(fence.as_ref());
            (self.slot.swap(fence), woken)
        };
        woken.into_iter().for_each(Wake::wake);
        old
    }

    /// Adds timeline point `point` completed by `fence` (`drm_syncobj_add_point`): chains a
    /// new link after the current one, and wakes the waiters for every point up to it.
    ///
    /// Points must increase, as a timeline's seqnos do: a point not above the current one
    /// starts a new context on the chain (as the kernel's, which warns), and finding or
    /// waiting for points across it no longer follows the order.
    pub fn add_point(&self, fence: Fence<B>, point: u64) {
        let (old, woken) = {
            let mut waiters = self.writers.lock();
            let head = FenceChain::create(self.slot.load(), fence, point);
            let woken = waiters.take_submitted(Some(&head));
            (self.slot.swap(Some(head)), woken)
        };
        drop(old);
        woken.into_iter().for_each(Wake::wake);
    }

    /// The fence that completes every point up to `point` (`drm_syncobj_find_fence`): the
    /// current fence for point 0; `Err(InvalidSeqno)` if the point has not been submitted
    /// yet (or the object is empty, or holds a plain fence and `point` is not 0).
    ///
    /// Otherwise the chain link of the first point at or after `point`, or, where that
    /// point's own fence has signalled and an earlier one has not, the link of that earlier
    /// point (as the kernel's `dma_fence_chain_find_seqno`; wrapped in a new link if points
    /// in between failed, so that it carries their error); once every point up to it has
    /// signalled, a signalled stub, carrying the error of the earliest failed point if
    /// there is one (see the type's docs: errors).
    pub fn find_fence(&self, point: u64) -> Result<Fence<B>, FenceError> {
        let head = self.slot.load().ok_or(FenceError::InvalidSeqno)?;
        if point == 0 {
            return Ok(head);
        }
        if !submits(Some(&head), point) {
            return Err(FenceError::InvalidSeqno);
        }
        Ok(find_point(&head, point))
    }

    /// [`find_fence`](Syncobj::find_fence), waiting up to `timeout` for the point to be
    /// submitted first (`DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`); `Err(TimedOut)` if it
    /// was not. The waiter is woken by the `add_point` or `replace_fence` that submits its
    /// point (no polling). `Err(WouldDeadlock)` where blocking is refused (`Locked`, inside
    /// a callback). A timeout too large to represent waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_fence::{FenceError, Syncobj, Timeline};
    /// let (tl, obj) = (Timeline::new("ring0"), Syncobj::new());
    /// assert_eq!(obj.find_fence_timeout(1, Duration::from_millis(1)).unwrap_err(), FenceError::TimedOut);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| obj.add_point(tl.fence(1), 1));
    ///     let fence = obj.find_fence_timeout(1, Duration::from_secs(10)).unwrap();
    ///     assert_eq!(fence.seqno(), 1);
    /// });
    /// ```
    pub fn find_fence_timeout(
        &self,
        point: u64,
        timeout: Duration,
    ) -> Result<Fence<B>, FenceError> {
        self.find_fence_until(point, Instant::now().checked_add(timeout))
    }

    /// Waits until `point` is submitted (or `deadline` passes), then finds its fence.
    fn find_fence_until(
        &self,
        point: u64,
        deadline: Option<Instant>,
    ) -> Result<Fence<B>, FenceError> {
        loop {
            if let Ok(fence) = self.find_fence(point) {
                return Ok(fence);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(FenceError::TimedOut);
            }
            FencesOf::<B>::may_block()?;
            let mut id = None;
            {
                let mut waiters = self.writers.lock();
                // Checked under the lock that installs new fences: either the point is
                // here now, or the writer that submits it will find this waiter.
                if submits(self.slot.load().as_ref(), point) {
                    continue;
                }
                waiters.register(&mut id, point, Wake::Thread(thread::current()));
            }
            FencesOf::<B>::before_park();
            let submitted =
                crate::wait::park_until(deadline, || submits(self.slot.load().as_ref(), point));
            // Woken by a writer (which has taken the entry), or timed out (which has not).
            self.writers.lock().remove(id);
            if !submitted {
                return self.find_fence(point).map_err(|_| FenceError::TimedOut);
            }
        }
    }

    /// [`find_fence`](Syncobj::find_fence) as a future that first waits for the point to be
    /// submitted (`DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`): it resolves to the point's
    /// fence once an `add_point` or `replace_fence` submits it (which wakes it; no polling).
    ///
    /// ```
    /// use rcu_fence::{Syncobj, Timeline};
    /// let (tl, obj) = (Timeline::new("ring0"), Syncobj::new());
    /// futures::executor::block_on(async {
    ///     let found = obj.find_fence_async(1);
    ///     obj.add_point(tl.fence(1), 1);
    ///     assert_eq!(found.await.seqno(), 1);
    /// });
    /// ```
    pub fn find_fence_async(&self, point: u64) -> FindFence<'_, B> {
        FindFence {
            obj: self,
            point,
            id: None,
        }
    }

    /// Blocks until `point` has been submitted and has signalled, with every point before
    /// it: `Ok(())`, or `Err(Failed(e))` with the error of the earliest failed point at or
    /// below it (see the type's docs). The wait for submission is the kernel's
    /// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT` (a Vulkan timeline semaphore's wait).
    /// `Err(WouldDeadlock)` where blocking is refused.
    ///
    /// ```
    /// use rcu_fence::{Syncobj, Timeline};
    /// let (tl, obj) = (Timeline::new("ring0"), Syncobj::new());
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let job = tl.fence(1);
    ///         obj.add_point(job.clone(), 1);
    ///         job.signal().unwrap();
    ///     });
    ///     assert_eq!(obj.wait_point(1), Ok(())); // may start before point 1 exists
    /// });
    /// ```
    pub fn wait_point(&self, point: u64) -> Result<(), FenceError> {
        self.find_fence_until(point, None)?.wait()
    }

    /// [`wait_point`](Syncobj::wait_point) with a timeout covering both the wait for
    /// submission and the wait for the signal: `Err(TimedOut)` if either is not done in
    /// time.
    pub fn wait_point_timeout(&self, point: u64, timeout: Duration) -> Result<(), FenceError> {
        let deadline = Instant::now().checked_add(timeout);
        let fence = self.find_fence_until(point, deadline)?;
        match deadline {
            Some(d) => fence.wait_timeout(d.saturating_duration_since(Instant::now())),
            None => fence.wait(),
        }
    }

    /// [`wait_point`](Syncobj::wait_point) as a future: waits for `point` to be submitted,
    /// then for its fence. The future is `Send`; dropping it takes its registration back.
    ///
    /// ```
    /// use rcu_fence::{Syncobj, Timeline};
    /// let (tl, obj) = (Timeline::new("ring0"), Syncobj::new());
    /// let job = tl.fence(1);
    /// futures::executor::block_on(async {
    ///     let wait = obj.wait_point_async(1); // before point 1 is submitted
    ///     obj.add_point(job.clone(), 1);
    ///     job.signal().unwrap();
    ///     assert_eq!(wait.await, Ok(()));
    /// });
    /// ```
    pub async fn wait_point_async(&self, point: u64) -> Result<(), FenceError> {
        self.find_fence_async(point).await.await
    }

    /// The current value of the timeline: the largest point whose fence and every earlier
    /// point's have signalled (`drm_syncobj` query; `vkGetSemaphoreCounterValue`). 0 for an
    /// empty object, a plain fence, or a timeline whose first point is pending.
    ///
    /// ```
    /// use rcu_fence::{Syncobj, Timeline};
    /// let (tl, obj) = (Timeline::new("ring0"), Syncobj::new());
    /// let (a, b) = (tl.fence(1), tl.fence(2));
    /// obj.add_point(a.clone(), 10);
    /// obj.add_point(b.clone(), 20);
    /// assert_eq!(obj.query(), 0);
    /// b.signal().unwrap();
    /// assert_eq!(obj.query(), 0); // 10 is still pending
    /// a.signal().unwrap();
    /// assert_eq!(obj.query(), 20);
    /// ```
    pub fn query(&self) -> u64 {
        let Some(head) = self.slot.load() else {
            return 0;
        };
        if head.as_chain().is_none() {
            return 0;
        }
        // The oldest link of the head's context that the walk keeps (the head, or an older
        // link whose own fence is pending): everything below it has signalled.
        let mut last = head.clone();
        for node in chain_walk(&head) {
            if node.context() != head.context() {
                break;
            }
            last = node;
        }
        match last.as_chain() {
            Some(link) if !last.is_signaled() => link.prev_seqno(),
            _ => last.seqno(),
        }
    }
}

/// The fence for `point` on the chain `head` (which has reached it): see
/// [`Syncobj::find_fence`].
fn find_point<B: Backend>(head: &Fence<B>, point: u64) -> Fence<B> {
    // Walk as `chain_find_seqno` does, keeping the last link passed: the walk records on it
    // the failures of the signalled links it collects below it.
    let Seek { above, found } = seek(head, point);
    // The earliest failure among the collected points that `point` waits for (a failure
    // whose point comes after `point`'s previous point belongs to a later point).
    let skipped = above
        .as_ref()
        .and_then(failure_of)
        .filter(|f| f.after < point)
        .map(|f| f.error);
    match (found, skipped) {
        // The link of the first point at or after `point`: it reports the earliest failure
        // up to that point itself.
        (Some(node), _) if covers(&node, head, point) => node,
        // An earlier point is still pending: its link, which completes everything up to
        // `point` too; if collected points in between failed, a new link after it that
        // carries their failure (its own earlier failures, if any, still come first).
        (Some(node), None) => node,
        (Some(node), Some(error)) => FenceChain::create(Some(node), failed_stub(error), point),
        // Everything up to `point` has signalled.
        (None, None) => crate::stub(),
        (None, Some(error)) => failed_stub(error),
    }
}

/// True if `node` is the link of the first point at or after `point` on `head`'s timeline.
fn covers<B: Backend>(node: &Fence<B>, head: &Fence<B>, point: u64) -> bool {
    node.as_chain().is_some_and(|link| {
        node.context() == head.context() && link.prev_seqno() < point && node.seqno() >= point
    })
}

/// A new stub signalled with `error`.
fn failed_stub<B: Backend>(error: Errno) -> Fence<B> {
    let stub = crate::fence::private_stub_pending::<B>();
    let _ = stub.set_error(error);
    let _ = stub.signal();
    stub
}

/// The future returned by [`Syncobj::find_fence_async`]: resolves to the fence of a point
/// once it has been submitted. It registers with the sync object while pending, and
/// dropping it takes the registration back.
#[must_use = "futures do nothing unless polled"]
pub struct FindFence<'a, B: Backend = Rcu> {
    obj: &'a Syncobj<B>,
    point: u64,
    /// The registration while waiting (it may already have been taken by the writer that
    /// woke this future).
    id: Option<u64>,
}

impl<B: Backend> Future for FindFence<'_, B> {
    type Output = Fence<B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fence<B>> {
        let this = &mut *self;
        loop {
            if let Ok(fence) = this.obj.find_fence(this.point) {
                if this.id.is_some() {
                    this.obj.writers.lock().remove(this.id.take());
                }
                return Poll::Ready(fence);
            }
            let mut waiters = this.obj.writers.lock();
            // As in `find_fence_until`: checked under the writers' lock.
            if submits(this.obj.slot.load().as_ref(), this.point) {
                continue;
            }
            waiters.register(&mut this.id, this.point, Wake::Task(cx.waker().clone()));
            return Poll::Pending;
        }
    }
}

impl<B: Backend> Drop for FindFence<'_, B> {
    fn drop(&mut self) {
        if self.id.is_some() {
            self.obj.writers.lock().remove(self.id);
        }
    }
}

impl<B: Backend> fmt::Debug for FindFence<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FindFence")
            .field("point", &self.point)
            .field("registered", &self.id.is_some())
            .finish()
    }
}

impl<B: Backend> fmt::Debug for Syncobj<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Syncobj")
            .field("fence", &self.fence())
            .finish()
    }
}
