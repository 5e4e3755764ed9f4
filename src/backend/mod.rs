//! The backend trait: what a synchronisation scheme must provide.
//!
//! The public types ([`Fence`], the containers) carry the kernel's semantics and are generic
//! over a [`Backend`]. Each backend is one complete implementation of the fence state, the
//! callback list and the container internals, in its own module:
//!
//! - [`Rcu`](rcu::Rcu): one atomic state word, a lock-free callback list claimed by one swap,
//!   callbacks run with no lock held, container members behind RCU.
//! - [`Locked`](locked::Locked): the classic scheme, faithful to the kernel: a lock per fence,
//!   callbacks run under it, container signalling deferred to a worker.
//!
//! The trait is sealed: its methods are the library's internal contract between the public
//! types and a scheme, not an extension point.

use std::fmt;
use std::time::Instant;

use crate::error::{Errno, FenceError};
use crate::fence::Fence;

pub(crate) mod locked;
pub(crate) mod rcu;
pub(crate) mod word;

/// A fence synchronisation scheme: [`Rcu`](crate::Rcu) (the default) or
/// [`Locked`](crate::Locked) (the kernel's classic scheme).
///
/// Every public type takes `B: Backend = Rcu`; switching scheme is a change of one type.
///
/// ```
/// use rcu_fence::{Backend, Locked, Rcu, Timeline};
/// fn name<B: Backend>(_: &Timeline<B>) -> &'static str { B::NAME }
/// assert_eq!(name(&Timeline::new("gpu")), "rcu");
/// assert_eq!(name(&Timeline::new_in("gpu", Locked)), "locked");
/// ```
pub trait Backend: sealed::Sealed + Default + Copy + Send + Sync + fmt::Debug + 'static {
    /// A short name for tables and benchmark ids.
    const NAME: &'static str;
}

pub(crate) mod sealed {
    use super::*;

    /// The internal contract a scheme implements. Not nameable outside the crate.
    pub trait Sealed: Sized + Send + Sync + 'static {
        /// Per-fence state: signalled flag, error, timestamp, callback list.
        type State: Send + Sync;
        /// What a [`CallbackId`](crate::CallbackId) holds to find its callback again.
        type CallbackKey: Send + Sync + Unpin;

        /// A fresh state, pending, or already signalled at the given time.
        fn new_state(signaled_at: Option<Instant>) -> Self::State;
        /// Called once as a fence is built, with `Some("array")` or `Some("chain")` for a
        /// container's own fence: `Locked` gives the lock its lockdep class. Default: nothing.
        fn init_state(_state: &mut Self::State, _container: Option<&'static str>) {}
        /// The signalled flag alone: no polling, no lock.
        fn is_signaled_flag(state: &Self::State) -> bool;
        /// The error, once signalled.
        fn error(state: &Self::State) -> Option<Errno>;
        /// The signal time, once signalled.
        fn timestamp(state: &Self::State) -> Option<Instant>;
        /// Records an error while pending.
        fn set_error(state: &Self::State, error: Errno) -> Result<(), FenceError>;
        /// Marks the fence signalled and runs its callbacks exactly once.
        fn signal(fence: &Fence<Self>, at: Option<Instant>) -> Result<(), FenceError>
        where
            Self: Backend;
        /// Calls the fence's enable_signaling hook at most once.
        fn enable_signaling(fence: &Fence<Self>)
        where
            Self: Backend;
        /// Installs a callback, or refuses it because the fence has signalled.
        fn add_callback<F: FnOnce(&Fence<Self>) + Send + 'static>(
            fence: &Fence<Self>,
            func: F,
        ) -> Result<Self::CallbackKey, FenceError>
        where
            Self: Backend;
        /// True if the callback was removed and will never run.
        fn remove_callback(fence: &Fence<Self>, key: Self::CallbackKey) -> bool
        where
            Self: Backend;
        /// On the final drop of an unsignalled fence: moves still-queued callbacks into a
        /// fresh state so they can be run (with `-EDEADLK`) through a new handle.
        fn take_pending(state: &mut Self::State) -> Option<Self::State>;
        /// True if dropping a handle goes through the work list (constant stack); false for
        /// the classic scheme, whose final put recurses like the kernel's.
        const FLAT_DROP: bool;
        /// A container's reference to one member (an array member, a chain's `prev` or
        /// `fence`): `Rcu` holds it in an RCU slot, `Locked` under a lock.
        type Member: Send + Sync;
        /// Holds `fence` as a member.
        fn member_new(fence: Option<Fence<Self>>) -> Self::Member
        where
            Self: Backend;
        /// A new reference to the member, if the container still holds it.
        fn member_get(member: &Self::Member) -> Option<Fence<Self>>
        where
            Self: Backend;
        /// True if the container still holds the member (a racy snapshot).
        fn member_is_held(member: &Self::Member) -> bool;
        /// Called by a container's callback once the member has signalled: `Rcu` releases
        /// the container's reference (deferred past readers); `Locked` keeps it until the
        /// container's release, as the kernel does.
        fn member_signaled(member: &Self::Member);
        /// Replaces the member if it is still `current` (by identity): the chain's garbage
        /// collection. Returns false if someone else changed it first.
        fn member_replace(
            member: &Self::Member,
            current: &Fence<Self>,
            new: Option<Fence<Self>>,
        ) -> bool
        where
            Self: Backend;
        /// Signals a container whose last member completed, from inside that member's
        /// callback: `Rcu` signals at once (no lock is held); `Locked` defers to a worker,
        /// as the kernel's irq_work does.
        fn signal_container(container: Fence<Self>)
        where
            Self: Backend;
        /// The chain link's `enable_signaling` hook (the two schemes differ in kind).
        fn chain_enable(link: &Fence<Self>) -> bool
        where
            Self: Backend;
        /// Called when a container is built over `members` (the kernel's nesting WARN_ON).
        fn check_nesting(container: &'static str, members: &[&Fence<Self>])
        where
            Self: Backend;
        /// The shared, already signalled stub fence of this backend.
        fn stub() -> Fence<Self>
        where
            Self: Backend;
    }
}
