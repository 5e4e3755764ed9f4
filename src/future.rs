//! `.await` on a fence.
//!
//! Each pending future owns its own waiter (an `AtomicWaker` and a done flag) and installs
//! one callback on the fence that sets the flag and wakes it. `AtomicWaker` holds one waker
//! at a time, so sharing one per fence would lose wake-ups between concurrent awaiters; one
//! per future gives each exactly one wake. A future dropped before the fence signals takes
//! its callback back.
//!
//! Registration vs signal: the future registers its waker *before* it re-checks the flag,
//! and the callback sets the flag *before* it wakes; so either the re-check sees the flag,
//! or the wake finds the registered waker (`AtomicWaker`'s own guarantee).
//!
//! # Orderings
//! - the done flag is set with `Release` and read with `Acquire`: a woken poll that sees it
//!   also sees the fence signalled (the callback runs after SIGNALED is set).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::backend::Backend;
use crate::error::Status;
use crate::fence::{CallbackId, Fence};
use crate::sync::{Arc, AtomicBool, AtomicWaker, Ordering};

struct Waiter {
    waker: AtomicWaker,
    done: AtomicBool,
}

/// `AtomicWaker::register` by reference: `atomic_waker` takes `&Waker`, loom's model
/// takes the waker by value and offers `register_by_ref` instead.
fn register(slot: &AtomicWaker, waker: &Waker) {
    #[cfg(not(loom))]
    slot.register(waker);
    #[cfg(loom)]
    slot.register_by_ref(waker);
}

/// The future returned by `fence.await` (and `(&fence).await`): resolves to the fence's
/// final [`Status`]. It is `Send`.
///
/// ```
/// use rcu_fence::{Status, Timeline};
/// let f = Timeline::new("gpu").fence(1);
/// let g = f.clone();
/// std::thread::spawn(move || g.signal().unwrap());
/// let status = futures_lite_block_on(async { f.await });
/// assert_eq!(status, Status::Signaled);
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     use std::sync::Arc;
/// #     struct T(std::thread::Thread);
/// #     impl Wake for T { fn wake(self: Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(Arc::new(T(std::thread::current())));
/// #     let mut cx = Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::park(); }
/// # }
/// ```
pub struct FenceFuture<B: Backend> {
    fence: Fence<B>,
    pending: Option<(CallbackId<B>, Arc<Waiter>)>,
}

impl<B: Backend> FenceFuture<B> {
    fn new(fence: Fence<B>) -> Self {
        FenceFuture {
            fence,
            pending: None,
        }
    }
}

impl<B: Backend> Future for FenceFuture<B> {
    type Output = Status;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Status> {
        let this = self.get_mut();
        if this.fence.test_signaled_flag() {
            this.pending = None; // the callback has run or will run; nothing to take back
            return Poll::Ready(this.fence.status_now());
        }
        match &this.pending {
            Some((_, waiter)) => {
                register(&waiter.waker, cx.waker());
                // Acquire: pairs with the callback's Release store.
                if waiter.done.load(Ordering::Acquire) || this.fence.test_signaled_flag() {
                    this.pending = None;
                    return Poll::Ready(this.fence.status_now());
                }
                Poll::Pending
            }
            None => {
                if this.fence.is_signaled() {
                    return Poll::Ready(this.fence.status_now());
                }
                let waiter = Arc::new(Waiter {
                    waker: AtomicWaker::new(),
                    done: AtomicBool::new(false),
                });
                register(&waiter.waker, cx.waker());
                let w = waiter.clone();
                let installed = this.fence.add_callback(move |_| {
                    // Release: see the module's Orderings.
                    w.done.store(true, Ordering::Release);
                    w.waker.wake();
                });
                match installed {
                    Ok(id) => {
                        this.pending = Some((id, waiter));
                        Poll::Pending
                    }
                    Err(_) => Poll::Ready(this.fence.status_now()),
                }
            }
        }
    }
}

impl<B: Backend> Drop for FenceFuture<B> {
    fn drop(&mut self) {
        let Some((id, _)) = self.pending.take() else {
            return;
        };
        // Once the flag is set the signaller owns the callback (it runs, or has run; it holds
        // its own share of the waiter): nothing to take back. Skipping the removal also keeps
        // a drop from inside this fence's own callbacks legal on `Locked`, where removal takes
        // the lock the signaller holds (an executor dropping a task from its waker).
        if !self.fence.test_signaled_flag() {
            self.fence.remove_callback(id);
        }
    }
}

impl<B: Backend> fmt::Debug for FenceFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceFuture")
            .field("fence", &self.fence)
            .field("registered", &self.pending.is_some())
            .finish()
    }
}

impl<B: Backend> IntoFuture for Fence<B> {
    type Output = Status;
    type IntoFuture = FenceFuture<B>;
    fn into_future(self) -> FenceFuture<B> {
        FenceFuture::new(self)
    }
}

impl<B: Backend> IntoFuture for &Fence<B> {
    type Output = Status;
    type IntoFuture = FenceFuture<B>;
    fn into_future(self) -> FenceFuture<B> {
        FenceFuture::new(self.clone())
    }
}
