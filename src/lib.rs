//! Fences (one-shot completion events, the model of Linux's `dma_fence`) and fence
//! containers, built on epoch-based RCU.
//!
//! - **[`Rcu`]** (the default backend): callbacks run with no lock held; a callback may add
//!   callbacks, signal other fences and drop any handle. Every follow-on step (callbacks of a
//!   fence signalled inside a callback, enabling nested members, dropping a container's
//!   members) is queued on a per-thread work list and run by the outermost call, so the stack
//!   stays the same whatever the nesting depth. One visible consequence: **a fence signalled
//!   from inside a callback has its own callbacks run after the current callback returns,
//!   before the outermost `signal` returns** (unless the callback blocks in a wait: the
//!   queued work then runs before it parks, since the awaited fence may depend on it).
//! - **[`Locked`]**: the kernel's classic scheme, kept faithful as the baseline: callbacks run
//!   under the fence's lock and the final put recurses.
//!
//! Switching scheme is a change of one type: `Timeline::new("gpu")` is `Rcu`,
//! `Timeline::<Locked>::new("gpu")` is the classic scheme. Generic code imports
//! [`prelude`], which brings the constructor traits that make `Timeline::<B>::new(..)` and
//! `Syncobj::<B>::new()` work for every backend.
//!
//! ```
//! use rcu_fence::Timeline;
//!
//! let tl = Timeline::new("gpu");
//! let fence = tl.fence(1);
//! fence.add_callback(|f| println!("{f:?} done")).unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(|| fence.signal().unwrap());
//!     fence.wait().unwrap(); // Err(Failed(e)) had it signalled with error e
//! });
//! ```
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

mod sync;
mod work;

mod array;
mod backend;
mod callback;
mod chain;
mod context;
mod driver;
mod error;
#[cfg(all(any(target_os = "linux", target_os = "android"), not(loom)))]
mod fd;
mod fence;
mod future;
pub mod prelude;
mod syncobj;
mod trace;
mod unwrap;
mod wait;

pub use crate::array::FenceArray;
pub use crate::backend::locked::lockdep;
pub use crate::backend::{Backend, Locked, LockedRcu, Rcu};
pub use crate::callback::{CallbackId, CallbackRegistration};
pub use crate::chain::{ChainWalk, FenceChain, chain_find_seqno, chain_walk};
pub use crate::context::{Timeline, TimelineNew};
pub use crate::driver::DriverFence;
pub use crate::error::{AlreadySignaled, Errno, FenceError, Status};
#[cfg(all(any(target_os = "linux", target_os = "android"), not(loom)))]
pub use crate::fd::FenceFd;
pub use crate::fence::{Fence, FenceOps, context_alloc, stub, try_context_alloc};
pub use crate::future::FenceFuture;
pub use crate::syncobj::{FindFence, Syncobj, SyncobjNew};
pub use crate::unwrap::{Unwrap, merge, unwrap, unwrap_leaves};
pub use crate::wait::wait_any_timeout;

/// Waits until every reference a container has released (a signalled member, a collected
/// chain link) has actually been dropped (`synchronize_rcu`): releases are deferred past
/// readers that might still see them. Tests and leak checks call it before counting.
/// Must not be called while this thread is inside a read-side section (iterating
/// [`FenceArray::fences`] or [`unwrap`] holds none across `next`, so it is safe between
/// items).
///
/// ```
/// rcu_fence::synchronize_rcu();
/// ```
pub fn synchronize_rcu() {
    rcu::synchronize::<rcu::DefaultReclaimer>();
}

#[cfg(test)]
mod tests;
