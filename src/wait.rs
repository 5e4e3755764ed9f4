//! Blocking waits: one fence (`dma_fence_wait_timeout`) or any of several
//! (`dma_fence_wait_any_timeout`).
//!
//! A waiter checks, spins briefly, then links a callback node that lives in its own stack
//! frame (as the kernel's default wait keeps its `dma_fence_cb` on the stack: no allocation)
//! and parks until the fence's flag is set or the deadline passes. On the way out it takes
//! the node back if it has not run, with the remove barrier (so the frame is never freed
//! under a running callback). Spurious unparks are harmless: every park is in a loop that
//! re-checks.
//!
//! Waiting from inside a callback: on `Rcu` the work this thread owes is run before the
//! waiter parks (its queued work: enabling the awaited fence, cascades that may signal it;
//! and the callbacks queued behind the blocked one in the lists it is running), so the wait
//! returns once the fence signals. On `Locked` a callback or hook holds a fence lock, as in the
//! kernel, which forbids sleeping there; a wait that would block is refused with
//! `WouldDeadlock` (the irq_work that may complete the awaited fence only runs once that
//! lock is released).

use std::marker::PhantomPinned;
use std::pin::pin;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::backend::{Backend, FenceScheme, FencesOf, Node, NodeVtable};
use crate::error::{FenceError, Status};
use crate::fence::Fence;
use crate::sync::{spin_hint, thread};

/// How many times a waiter re-checks the flag before it installs a callback and parks.
const SPINS: u32 = if cfg!(loom) { 0 } else { 64 };

/// A waiting thread's callback: unparks it.
#[repr(C)]
struct Waiter<B: Backend> {
    /// First: a node pointer is a pointer to the waiter.
    node: Node<B>,
    thread: thread::Thread,
    _pinned: PhantomPinned,
}

impl<B: Backend> Waiter<B> {
    const VTABLE: NodeVtable<B> = NodeVtable {
        run: Self::wake,
        release: Self::keep,
    };

    fn new() -> Self {
        Waiter {
            node: Node::new(&Self::VTABLE),
            thread: thread::current(),
            _pinned: PhantomPinned,
        }
    }

    /// # Safety
    /// 1. `node` is the node of a linked `Waiter<B>`, running: its frame waits for the run.
    unsafe fn wake(node: NonNull<Node<B>>, _fence: &Fence<B>) {
        // SAFETY: obligation 1.
        unsafe { node.cast::<Self>().as_ref() }.thread.unpark();
    }

    /// The waiter's frame is its owner's: nothing to give up.
    ///
    /// # Safety
    /// 1. None: the node is not touched.
    unsafe fn keep(_node: NonNull<Node<B>>) {}
}

impl<B: Backend> Fence<B> {
    /// Blocks until the fence signals (`dma_fence_wait`), enabling signalling first.
    ///
    /// `Ok(())` once signalled without error; `Err(Failed(e))` once signalled with error
    /// `e`; so `fence.wait()?` stops at a failed fence. `Err(WouldDeadlock)` where blocking
    /// is refused: on `Locked`, inside a callback or hook, which hold a fence lock (the
    /// kernel forbids sleeping there). From inside a callback on `Rcu`, the work this thread
    /// has queued (enabling, the callbacks of fences signalled meanwhile) runs before the
    /// wait parks.
    ///
    /// (The kernel's `dma_fence_wait` returns 0 or a negative code; [`Fence::status`] still
    /// gives the [`Status`] afterwards.)
    ///
    /// ```
    /// use rcu_fence::{Errno, FenceError, Timeline};
    /// let tl = Timeline::new("gpu");
    /// let (ok, failed) = (tl.fence(1), tl.fence(2));
    /// let (a, b) = (ok.clone(), failed.clone());
    /// std::thread::spawn(move || {
    ///     a.signal().unwrap();
    ///     b.set_error(Errno::EIO).unwrap();
    ///     b.signal().unwrap();
    /// });
    /// assert_eq!(ok.wait(), Ok(()));
    /// assert_eq!(failed.wait(), Err(FenceError::Failed(Errno::EIO)));
    /// ```
    pub fn wait(&self) -> Result<(), FenceError> {
        wait_until(self, None)?.into_result()
    }

    /// Blocks until the fence signals or `timeout` passes (`dma_fence_wait_timeout`).
    ///
    /// As [`Fence::wait`], and `Err(TimedOut)` if the fence is still pending at the
    /// deadline. A zero timeout only checks. A timeout too large to represent waits forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_fence::{FenceError, Timeline};
    /// let f = Timeline::new("gpu").fence(1);
    /// assert_eq!(f.wait_timeout(Duration::from_millis(1)), Err(FenceError::TimedOut));
    /// f.signal().unwrap();
    /// assert_eq!(f.wait_timeout(Duration::ZERO), Ok(()));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), FenceError> {
        if !timeout.is_zero() {
            // As the kernel's default wait: any non-zero wait asks the producer to signal,
            // even if the deadline passes before the waiter installs its callback.
            self.enable_sw_signaling();
        }
        wait_until(self, Instant::now().checked_add(timeout))?.into_result()
    }
}

/// Waits until `fence` signals or `deadline` (if any) passes.
pub(crate) fn wait_until<B: Backend>(
    fence: &Fence<B>,
    deadline: Option<Instant>,
) -> Result<Status, FenceError> {
    if fence.is_signaled() {
        return Ok(fence.status_now());
    }
    // Empty under loom (SPINS = 0): the model explores the parked path.
    #[allow(clippy::reversed_empty_ranges)]
    for _ in 0..SPINS {
        spin_hint();
        if fence.test_signaled_flag() {
            return Ok(fence.status_now());
        }
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(FenceError::TimedOut);
    }
    FencesOf::<B>::may_block()?;
    let waiter = pin!(Waiter::<B>::new());
    let waiters = std::slice::from_ref(&*waiter);
    // Takes the node back on the way out, also if `add_node` unwinds after linking it.
    let mut linked = Linked {
        fences: std::slice::from_ref(fence),
        waiters,
        count: 1,
    };
    // SAFETY: the waiter is pinned in this frame, which takes the node back (with the
    // barrier, through `linked`) before it returns; it is linked once.
    if !unsafe { FencesOf::<B>::add_node(fence, NonNull::from(&waiters[0].node)) } {
        linked.count = 0;
        return Ok(fence.status_now());
    }
    crate::trace::event!("fence_wait_start", fence);
    FencesOf::<B>::before_park();
    park_until(deadline, || fence.test_signaled_flag());
    drop(linked);
    crate::trace::event!(
        "fence_wait_end",
        fence,
        signaled = fence.test_signaled_flag()
    );
    if fence.test_signaled_flag() {
        Ok(fence.status_now())
    } else {
        Err(FenceError::TimedOut)
    }
}

/// Takes back, when dropped, the first `count` waiters' nodes, each linked on the fence of
/// the same index: on the way out of a wait, and on an unwind out of `add_node` (which may
/// have linked the node before a hook panicked; a node never linked is answered at once).
struct Linked<'a, B: Backend> {
    fences: &'a [Fence<B>],
    waiters: &'a [Waiter<B>],
    count: usize,
}

impl<B: Backend> Drop for Linked<'_, B> {
    fn drop(&mut self) {
        for (fence, waiter) in self.fences.iter().zip(self.waiters).take(self.count) {
            // SAFETY: the waiters outlive this guard (they are borrowed by it); each was
            // linked on this fence at most once.
            unsafe { FencesOf::<B>::remove_node(fence, NonNull::from(&waiter.node)) };
        }
    }
}

/// Parks until `done()` holds or `deadline` passes; returns `done()`'s last answer.
/// Spurious unparks only cause a re-check.
pub(crate) fn park_until(deadline: Option<Instant>, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return done();
                }
                park_timeout(d - now);
            }
        }
    }
}

fn park_timeout(d: Duration) {
    #[cfg(not(loom))]
    thread::park_timeout(d);
    #[cfg(loom)]
    {
        let _ = d;
        thread::yield_now();
    }
}

/// Waits until any of `fences` signals (`dma_fence_wait_any_timeout`) and returns the index
/// of a signalled one, or `Err(TimedOut)`; `Err(Empty)` for an empty slice. A zero timeout
/// only checks. `Err(WouldDeadlock)` where blocking is refused (see [`Fence::wait`]).
///
/// ```
/// use std::time::Duration;
/// use rcu_fence::{Timeline, FenceError, wait_any_timeout};
/// let tl = Timeline::new("gpu");
/// let fences = [tl.fence(1), tl.fence(2)];
/// assert_eq!(wait_any_timeout(&fences, Duration::ZERO), Err(FenceError::TimedOut));
/// fences[1].signal().unwrap();
/// assert_eq!(wait_any_timeout(&fences, Duration::from_secs(1)), Ok(1));
/// ```
pub fn wait_any_timeout<B: Backend>(
    fences: &[Fence<B>],
    timeout: Duration,
) -> Result<usize, FenceError> {
    if fences.is_empty() {
        return Err(FenceError::Empty);
    }
    let first_signaled = || fences.iter().position(|f| f.test_signaled_flag());
    if let Some(i) = fences.iter().position(|f| f.is_signaled()) {
        return Ok(i);
    }
    let deadline = Instant::now().checked_add(timeout);
    if timeout.is_zero() {
        return Err(FenceError::TimedOut);
    }
    FencesOf::<B>::may_block()?;
    // One waiter per fence, in one block that does not move while any is linked.
    let waiters: Box<[Waiter<B>]> = fences.iter().map(|_| Waiter::new()).collect();
    let mut linked = Linked {
        fences,
        waiters: &waiters,
        count: 0,
    };
    let mut found = None;
    for (i, fence) in fences.iter().enumerate() {
        linked.count = i + 1;
        // SAFETY: the block stays in place until `linked` has taken every node back; each
        // node is linked once.
        if !unsafe { FencesOf::<B>::add_node(fence, NonNull::from(&waiters[i].node)) } {
            linked.count = i;
            found = Some(i);
            break;
        }
    }
    if found.is_none() {
        FencesOf::<B>::before_park();
        park_until(deadline, || {
            found = first_signaled();
            found.is_some()
        });
    }
    drop(linked);
    found.ok_or(FenceError::TimedOut)
}
