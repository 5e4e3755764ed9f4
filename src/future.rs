//! `.await` on a fence.
//!
//! Each future carries its own waiter inside itself: a callback node, an `AtomicWaker` and a
//! done flag. The first pending poll links the node on the fence (no allocation: the future
//! is pinned while polled); the callback sets the flag and wakes. `AtomicWaker` holds one
//! waker at a time, so sharing one per fence would lose wake-ups between concurrent awaiters;
//! one per future gives each exactly one wake.
//!
//! Registration vs signal: the future registers its waker *before* it re-checks the flag,
//! and the callback sets the flag *before* it wakes; so either the re-check sees the flag,
//! or the wake finds the registered waker (`AtomicWaker`'s own guarantee).
//!
//! Drop: a future whose node is linked takes it back with the remove barrier (if the
//! callback is running on another thread, the drop waits for it), so the future's memory is
//! never freed under a running callback. From inside the fence's own callbacks (an executor
//! dropping the task from its waker) the node has already run, or runs on the spot.
//!
//! # Orderings
//! - the done flag is set with `Release` and read with `Acquire`: a woken poll that sees it
//!   also sees the fence signalled (the callback runs after SIGNALED is set).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use crate::backend::{Backend, FenceScheme, FencesOf, Node, NodeVtable, Rcu};
use crate::error::FenceError;
use crate::fence::Fence;
use crate::sync::{AtomicBool, AtomicWaker, Ordering};

/// `AtomicWaker::register` by reference: `atomic_waker` takes `&Waker`, loom's model
/// takes the waker by value and offers `register_by_ref` instead.
fn register(slot: &AtomicWaker, waker: &Waker) {
    #[cfg(not(loom))]
    slot.register(waker);
    #[cfg(loom)]
    slot.register_by_ref(waker);
}

/// The future returned by `fence.await` (and `(&fence).await`): resolves once the fence
/// has signalled, to the same result as [`Fence::wait`]: `Ok(())`, or `Err(Failed(e))` for
/// a fence that signalled with error `e` (so `fence.await?` works in an async function).
/// It is `Send`, allocates nothing, and is `!Unpin` (its callback node lives inside it):
/// pin it to poll it by hand (`.await`, `select!` and `timeout` do).
///
/// Any executor drives it; this one is the `futures` crate's:
///
/// ```
/// use rcu_fence::{Errno, FenceError, Timeline};
/// let tl = Timeline::new("gpu");
/// let (f, g) = (tl.fence(1), tl.fence(2));
/// let (f2, g2) = (f.clone(), g.clone());
/// std::thread::spawn(move || {
///     f2.signal().unwrap();
///     g2.set_error(Errno::ETIME).unwrap();
///     g2.signal().unwrap();
/// });
/// futures::executor::block_on(async {
///     assert_eq!(f.await, Ok(()));
///     assert_eq!((&g).await, Err(FenceError::Failed(Errno::ETIME)));
///     assert_eq!(g.status(), rcu_fence::Status::Error(Errno::ETIME));
/// });
/// ```
#[repr(C)]
pub struct FenceFuture<B: Backend = Rcu> {
    /// First: a node pointer is a pointer to the future.
    node: Node<B>,
    waker: AtomicWaker,
    done: AtomicBool,
    /// True while the node is linked (or claimed) on the fence.
    linked: bool,
    fence: Fence<B>,
    _pinned: PhantomPinned,
}

impl<B: Backend> FenceFuture<B> {
    const VTABLE: NodeVtable<B> = NodeVtable {
        run: Self::signaled,
        release: Self::keep,
    };

    fn new(fence: Fence<B>) -> Self {
        FenceFuture {
            node: Node::new(&Self::VTABLE),
            waker: AtomicWaker::new(),
            done: AtomicBool::new(false),
            linked: false,
            fence,
            _pinned: PhantomPinned,
        }
    }

    /// The callback: sets the flag, then wakes.
    ///
    /// # Safety
    /// 1. `node` is the node of a linked, pinned `FenceFuture<B>`, running.
    unsafe fn signaled(node: NonNull<Node<B>>, _fence: &Fence<B>) {
        // SAFETY: obligation 1: the future is alive (its drop waits for this run).
        let this = unsafe { node.cast::<Self>().as_ref() };
        // Release: see the module's Orderings.
        this.done.store(true, Ordering::Release);
        this.waker.wake();
    }

    /// The future's memory is its owner's: nothing to give up.
    ///
    /// # Safety
    /// 1. None: the node is not touched.
    unsafe fn keep(_node: NonNull<Node<B>>) {}
}

impl<B: Backend> Future for FenceFuture<B> {
    type Output = Result<(), FenceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the pinned future; `linked` is a plain flag.
        let this = unsafe { self.get_unchecked_mut() };
        if this.fence.test_signaled_flag() {
            return Poll::Ready(this.fence.status_now().into_result());
        }
        if this.linked {
            register(&this.waker, cx.waker());
            // Acquire: pairs with the callback's Release store.
            if this.done.load(Ordering::Acquire) || this.fence.test_signaled_flag() {
                return Poll::Ready(this.fence.status_now().into_result());
            }
            return Poll::Pending;
        }
        if this.fence.is_signaled() {
            return Poll::Ready(this.fence.status_now().into_result());
        }
        register(&this.waker, cx.waker());
        // Recorded first: if `add_node` unwinds, the drop takes back whatever was linked.
        this.linked = true;
        // SAFETY: the future is pinned, so the node stays where it is until the drop, which
        // takes it back (with the barrier) before the memory goes; it is linked once.
        if unsafe { FencesOf::<B>::add_node(&this.fence, NonNull::from(&this.node)) } {
            Poll::Pending
        } else {
            this.linked = false;
            Poll::Ready(this.fence.status_now().into_result())
        }
    }
}

impl<B: Backend> Drop for FenceFuture<B> {
    fn drop(&mut self) {
        if self.linked {
            // SAFETY: linked on this fence by `poll`; the future is pinned (it was polled)
            // and stays valid until this returns.
            unsafe { FencesOf::<B>::remove_node(&self.fence, NonNull::from(&self.node)) };
        }
    }
}

impl<B: Backend> fmt::Debug for FenceFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceFuture")
            .field("fence", &self.fence)
            .field("registered", &self.linked)
            .finish()
    }
}

impl<B: Backend> IntoFuture for Fence<B> {
    type Output = Result<(), FenceError>;
    type IntoFuture = FenceFuture<B>;
    fn into_future(self) -> FenceFuture<B> {
        FenceFuture::new(self)
    }
}

impl<B: Backend> IntoFuture for &Fence<B> {
    type Output = Result<(), FenceError>;
    type IntoFuture = FenceFuture<B>;
    fn into_future(self) -> FenceFuture<B> {
        FenceFuture::new(self.clone())
    }
}
