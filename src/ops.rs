//! Driver hooks on a fence (`dma_fence_ops`).

use std::any::Any;
use std::time::Instant;

use crate::backend::{Backend, Rcu};
use crate::fence::Fence;

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
    /// A hint that someone needs the fence by `deadline`; may be called several times.
    fn set_deadline(&self, fence: &Fence<B>, deadline: Instant) {
        let _ = (fence, deadline);
    }
}
