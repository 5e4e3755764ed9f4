//! The producer's unique handle.

use std::fmt;

use crate::backend::{Backend, Rcu};
use crate::error::Errno;
use crate::fence::Fence;

/// The producer's handle to a fence it must complete (as in the kernel's newer Rust
/// binding). [`signal`](DriverFence::signal) consumes it, so a fence cannot be signalled
/// twice through it.
///
/// # What it guarantees, and what it cannot
///
/// - **A drop that runs cancels.** Dropping it without signalling (an early return, a `?`,
///   a panic that unwinds through its owner) signals the fence with `-ECANCELED`, so the
///   ordinary ways of abandoning work leave no waiter hanging.
/// - **A drop that never runs cannot.** Safe Rust may skip a destructor: `mem::forget`, a
///   leaked `Box`, an `Rc` cycle, a thread blocked forever, or an aborting process. Then the
///   fence stays pending and its waiters wait (use [`Fence::wait_timeout`] where that
///   matters). The same holds for the kernel's `dma_fence`: a fence must be signalled by
///   whoever owns its completion.
/// - If the fence was already signalled through a plain [`Fence`] handle, dropping or
///   signalling the `DriverFence` changes nothing.
///
/// [`Fence`]: crate::Fence
/// [`Fence::wait_timeout`]: crate::Fence::wait_timeout
///
/// ```
/// use rcu_fence::{Errno, Status, Timeline};
/// let tl = Timeline::new("gpu");
/// let job = tl.driver_fence(1);
/// let done = job.fence();               // the consumers' handle
/// drop(job);                            // the producer gave up
/// assert_eq!(done.status(), Status::Error(Errno::ECANCELED));
/// ```
pub struct DriverFence<B: Backend = Rcu> {
    fence: Option<Fence<B>>,
}

impl<B: Backend> DriverFence<B> {
    pub(crate) fn new(fence: Fence<B>) -> Self {
        DriverFence { fence: Some(fence) }
    }

    fn handle(&self) -> &Fence<B> {
        self.fence
            .as_ref()
            .expect("a DriverFence holds its fence until consumed")
    }

    /// The shared consumer handle.
    pub fn fence(&self) -> Fence<B> {
        self.handle().clone()
    }

    /// Completes the fence, with `Err(errno)` as its error. If someone already signalled it
    /// through a plain [`Fence::signal`], this does nothing.
    pub fn signal(mut self, result: Result<(), Errno>) {
        if let Some(fence) = self.fence.take() {
            complete(&fence, result);
        }
    }
}

fn complete<B: Backend>(fence: &Fence<B>, result: Result<(), Errno>) {
    // Already signalled through a plain handle: nothing to do. Checking the flag first also
    // keeps a drop from inside this fence's own callbacks legal on `Locked` (signalling
    // takes the lock the signaller holds there).
    if fence.test_signaled_flag() {
        return;
    }
    if let Err(e) = result {
        let _ = fence.set_error(e);
    }
    let _ = fence.signal();
}

impl<B: Backend> Drop for DriverFence<B> {
    fn drop(&mut self) {
        if let Some(fence) = self.fence.take() {
            complete(&fence, Err(Errno::ECANCELED));
        }
    }
}

impl<B: Backend> fmt::Debug for DriverFence<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DriverFence").field(self.handle()).finish()
    }
}
