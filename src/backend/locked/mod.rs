//! The `Locked` schemes: the kernel's classic `dma_fence`, kept faithful so that every
//! comparison is against the real thing.
//!
//! Fences (`Fences`):
//! - One lock per fence (two bits of its state word, `lock.rs`) guards the callback list and
//!   the enable step (`fence->lock`).
//! - `signal` takes the lock, sets `SIGNALED`, closes the list, and runs every callback **with
//!   the lock held** (`dma_fence_signal_timestamp_locked`). A callback therefore must not call
//!   anything that takes the same fence's lock: in the kernel a self-deadlock. Here the lock
//!   recorder ([`lockdep`]) sees it, counts it, and lets the call go on under the lock the
//!   thread already holds.
//! - `enable_signaling` runs the hook with the lock held; `false` signals under the lock.
//! - `add_callback` tests the flag without the lock first, then enables and links under it.
//! - `remove_callback` takes the lock, which doubles as a barrier against the callbacks in
//!   flight: the signaller holds it until every callback has run.
//! - Flags, error and timestamp are readable without the lock, as the kernel's flag tests and
//!   `fence->error` are.
//! - The final put is plain recursive `Drop`, as the kernel's release is (an array drops its
//!   members, a nested array its own, and so on), except along a chain's `prev`, which the
//!   chain's release unlinks iteratively (`dma_fence_chain_release`).
//! - A blocking wait while this thread holds a fence lock (inside a callback or hook) is
//!   refused with `WouldDeadlock`: the kernel forbids sleeping there, and here the irq_work
//!   that may complete what it waits for only runs once that lock is released.
//!
//! Containers (`Members`):
//! - Members are held until the container's own release, read without a lock (an array's
//!   members are fixed; a chain's `prev` is an RCU pointer, as in the kernel).
//! - A container's member callback runs under the member's lock, so it cannot signal the
//!   container there: it queues irq_work (`irq_work.rs`), which runs on the same thread once
//!   its outermost fence lock is released, as the kernel's irq_work runs on the same CPU once
//!   interrupts are back on.
//! - The chain keeps one callback, re-armed link by link (`chain.rs`).
//! - Building a container over a container the kernel forbids is counted as a nesting
//!   warning (the kernel's `WARN_ON`); the object is still built.
//!
//! # Orderings
//! The state word's own (`backend::state`) and the lock's (`lock.rs`); every list step
//! happens under the lock.

pub(crate) mod chain;
pub(crate) mod irq_work;
pub(crate) mod lock;
pub mod lockdep;

use std::ptr::NonNull;
use std::time::Instant;

use crate::backend::Node;
use crate::backend::list::{self, Panic};
use crate::backend::{
    Backend, ContainerKind, FenceScheme, Hold, Locked, MemberScheme, sealed::Sealed,
};
use crate::error::{Errno, FenceError};
use crate::fence::Fence;

use self::lock::lock;
use self::lockdep::LockClass;

impl Sealed for Locked {
    type Fences = Fences;
    type Members = Members;

    fn stub() -> Fence<Locked> {
        static STUB: std::sync::OnceLock<Fence<Locked>> = std::sync::OnceLock::new();
        crate::fence::shared_stub(&STUB)
    }
}

/// The classic fence scheme.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
#[derive(Debug)]
pub struct Fences;

/// The classic member scheme.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
#[derive(Debug)]
pub struct Members;

/// Keeps a callback's panic for the thread's outermost lock release to resume.
fn keep(panic: Option<Panic>) {
    if let Some(panic) = panic {
        irq_work::keep_panic(panic);
    }
}

impl<B: Backend> FenceScheme<B> for Fences {
    const FLAT_DROP: bool = false;
    const FREE_AFTER_GRACE: bool = true;

    /// The panic another RCU job raised while this put ran the thread's ready batches is
    /// not this put's: it must not unwind out of a callback node's release under a fence
    /// lock (the rest of that fence's callbacks would never run), nor out of a drop made
    /// while unwinding (an abort). It is kept for the outermost lock release, as a
    /// callback's panic is; dropped if the thread is unwinding already (the panic hook has
    /// reported it); resumed at once only outside any fence lock.
    #[cfg(not(loom))]
    fn retire_memory<P: ::rcu::Pointer>(memory: P) {
        let retired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ::rcu::retire::<::rcu::DefaultReclaimer, P>(memory);
        }));
        if let Err(payload) = retired {
            if std::thread::panicking() {
                drop(payload);
            } else if irq_work::held() > 0 {
                irq_work::keep_panic(payload);
            } else {
                std::panic::resume_unwind(payload);
            }
        }
    }

    fn signal(
        fence: &Fence<B>,
        at: Option<Instant>,
        error: Option<Errno>,
    ) -> Result<(), FenceError> {
        if fence.state().is_signaled() {
            return Err(FenceError::AlreadySignaled);
        }
        let guard = lock(fence, "signal");
        let (result, panic) = signal_locked(fence, at, error);
        // Each callback is isolated from a panic in another; the first panic is resumed by
        // the thread's outermost lock release, after the irq_work queued meanwhile has run.
        keep(panic);
        drop(guard);
        result
    }

    fn enable_signaling(fence: &Fence<B>) {
        let word = fence.state().word.load();
        if word.is_enabled() || word.is_signaled() {
            return;
        }
        let guard = lock(fence, "enable_signaling");
        let (_, panic) = enable_locked(fence);
        keep(panic);
        drop(guard);
    }

    unsafe fn add_node(fence: &Fence<B>, node: NonNull<Node<B>>) -> bool {
        // SAFETY: the caller's obligations.
        unsafe { add_node_annotated(fence, node, false) }
    }

    unsafe fn remove_node(fence: &Fence<B>, node: NonNull<Node<B>>) -> bool {
        if !Node::was_linked(node) {
            return false;
        }
        let guard = lock(fence, "remove_callback");
        // Under the lock (taken, or held by this thread already: then we are inside this
        // fence's callback or hook), the list is live unless the fence has signalled.
        if !fence.state().is_signaled() {
            // SAFETY: the lock is the unlink lock and the fence is unsignalled; the caller
            // keeps the node valid.
            if unsafe { fence.state().list.unlink(node) } {
                return true;
            }
        }
        // Signalled: a taken lock was granted after the signaller ran every callback, so the
        // node is done; a re-entered one means we are inside this fence's callbacks, where
        // `wait_done` finds the node running or behind the running one. A node found on no
        // list is a stale id, which runs wherever it was claimed.
        drop(guard);
        // SAFETY: the caller's obligations.
        unsafe { list::wait_done(node, || {}) };
        false
    }

    fn may_block() -> Result<(), FenceError> {
        if irq_work::held() > 0 {
            Err(FenceError::WouldDeadlock)
        } else {
            Ok(())
        }
    }
}

/// `dma_fence_add_callback`, with the nested annotation on the lock if `nested` (the
/// reverse-signal-order rule's nested add).
///
/// # Safety
/// As [`FenceScheme::add_node`].
pub(crate) unsafe fn add_node_annotated<B: Backend>(
    fence: &Fence<B>,
    node: NonNull<Node<B>>,
    nested: bool,
) -> bool {
    if fence.state().is_signaled() {
        return false;
    }
    let guard = if nested {
        lock::lock_nested(fence, "add_callback_nested")
    } else {
        lock(fence, "add_callback")
    };
    let (signaled, panic) = enable_locked(fence);
    // SAFETY: the caller's obligation 1 is `push`'s; under the lock and not signalled, the
    // list is open.
    let linked = !signaled && unsafe { fence.state().list.push(node) };
    keep(panic);
    drop(guard);
    linked
}

/// `dma_fence_signal_timestamp_locked`: the caller holds the fence's lock. Callbacks run here,
/// with the lock still held; the first panic among them is returned for the caller to resume
/// once the lock is released.
fn signal_locked<B: Backend>(
    fence: &Fence<B>,
    at: Option<Instant>,
    error: Option<Errno>,
) -> (Result<(), FenceError>, Option<Panic>) {
    let state = fence.state();
    if state.word.signal(error).is_signaled() {
        return (Err(FenceError::AlreadySignaled), None);
    }
    crate::trace::signaled!(fence);
    let first = state.list.close(at.unwrap_or_else(Instant::now));
    // SAFETY: just claimed from this fence's list, run once, here.
    (Ok(()), unsafe {
        list::run_claimed(fence, first, |_f| {
            crate::trace::event!("fence_callback_run", _f);
        })
    })
}

/// The enable step under the lock. Returns true if the fence is (now) signalled, and the first
/// panic of the callbacks a signal ran.
fn enable_locked<B: Backend>(fence: &Fence<B>) -> (bool, Option<Panic>) {
    let word = fence.state().word.load();
    if word.is_signaled() {
        return (true, None);
    }
    if word.is_enabled() {
        return (false, None);
    }
    fence.state().word.enable();
    crate::trace::event!("fence_enable_signal", fence);
    if !fence.ops().enable_signaling(fence) {
        let (_, panic) = signal_locked(fence, None, None);
        return (true, panic);
    }
    (false, None)
}

/// The kernel's nesting `WARN_ON`s, counted by [`lockdep`] (the object is still built): an
/// array over an array or a chain, a chain whose `fence` is a chain. A chain over an array is
/// the legal worst case (chain → array → fence) and is not counted.
pub(crate) fn nesting_warning<B: Backend>(kind: ContainerKind, member: &Fence<B>) {
    let outer = match kind {
        ContainerKind::Array => LockClass::Array,
        ContainerKind::Chain => LockClass::Chain,
    };
    let inner = if member.as_array().is_some() {
        LockClass::Array
    } else if member.as_chain().is_some() {
        LockClass::Chain
    } else {
        return;
    };
    if outer == LockClass::Array || inner == LockClass::Chain {
        lockdep::nesting_warning(outer, inner);
    }
}

/// A classic container's hold on a member: the reference, until the container's release.
pub(crate) struct Held(Fence<Locked>);

impl Hold<Locked> for Held {
    const READS_SLOT: bool = false;

    fn hold(fence: Fence<Locked>) -> Self {
        Held(fence)
    }

    fn get(&self) -> Option<Fence<Locked>> {
        Some(self.0.clone())
    }

    fn signaled_in(&self, guard: &mut ::rcu::Guard) -> Option<bool> {
        let _ = guard;
        self.0.flag_answer()
    }

    fn is_held(&self) -> bool {
        true
    }

    fn signaled(&self) {
        // The kernel's containers keep their members until their own release.
    }
}

impl chain::Rearmed for Locked {
    fn rearm(link: &Fence<Locked>) -> &chain::ChainState<Locked> {
        link.as_chain()
            .expect("a chain's hook is called on a chain")
            .scheme()
    }
}

impl MemberScheme<Locked> for Members {
    type Member = Held;
    type ArrayMember = Held;
    type ChainState = chain::ChainState<Locked>;

    fn complete(container: Fence<Locked>) {
        // The member's callback runs under the member's lock; signalling the container here
        // would take the container's lock inside it. The kernel bounces to irq_work.
        irq_work::queue_work(move || {
            let _ = <Fences as FenceScheme<Locked>>::signal(&container, None, None);
        });
    }

    fn admit(kind: ContainerKind, member: &Fence<Locked>) {
        nesting_warning(kind, member);
    }

    fn new_chain_state(_has_prev: bool) -> Self::ChainState {
        chain::ChainState::new()
    }

    fn chain_enable(link: &Fence<Locked>) -> bool {
        chain::enable(link)
    }

    fn chain_poll(_link: &Fence<Locked>) -> Option<bool> {
        None
    }
}
