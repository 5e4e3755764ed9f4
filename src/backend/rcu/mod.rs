//! The `Rcu` schemes: callbacks run with no lock held, container members sit in RCU slots
//! and are released by the containers' own callbacks, and every follow-on operation
//! (callbacks of a fence signalled inside a callback, enabling nested members, drops) is
//! flattened through the per-thread work list (`work.rs`).
//!
//! # The fence's state machine
//!
//! ```text
//!  pending ──set_error──▶ pending+error        (CAS on the word; refused once SIGNALED)
//!     │  └─enable────────▶ ENABLED              (fetch_or; the hook runs for the first caller)
//!     ▼
//!  SIGNALED (RMW; the winner alone continues) ─▶ list closed with the timestamp (swap)
//!     ─▶ callbacks run in FIFO order, no lock held (now, or from the work list if nested)
//! ```
//!
//! # Callbacks (the shared list, `backend::list`)
//! - **add**: enable, then push; lock-free.
//! - **remove**: takes the *unlink lock* (`LOCKED` in the state word: a CAS that sets it only
//!   while clear). The same CAS tells the remover whether `SIGNALED` was set: if not, the
//!   list is live and, while the bit is held, changes only by pushes at the head, so the
//!   remover unlinks the node and answers `true`; if so, the node is claimed (or about to be)
//!   and the remover waits until it has run, then answers `false`.
//! - **signal**: the winning RMW on the word also tells whether an unlinker holds the bit; if
//!   one does, the signaller waits for it to clear before it closes the list. So a remover
//!   whose lock CAS came first unlinks before the claimer walks, and one whose CAS came after
//!   sees `SIGNALED` and only waits: a remover that has observed the fence signalled (directly,
//!   or through anything ordered after the signal) always gets `false`, after the run.
//!
//! # Orderings
//! - the word's own (see `backend::state`); the unlink lock's acquiring CAS is `Acquire` and
//!   its release `Release`, so one unlinker's `next` rewrites happen before the next one's
//!   walk, and before the claimer's walk (its wait for the bit is an `Acquire` load, and its
//!   signalling RMW reads the word after a release).

mod chain;

use std::ptr::NonNull;
use std::time::Instant;

use crate::backend::Hold;
use crate::backend::Node;
use crate::backend::list;
use crate::backend::state::{FenceState, Word};
use crate::backend::{ContainerKind, FenceScheme, MemberScheme, Rcu, sealed::Sealed};
use crate::error::{Errno, FenceError};
use crate::fence::Fence;
use crate::fence::WeakFence;
use crate::sync::UnsafeCell;
use crate::sync::{Ordering, backoff, fence};
use crate::work::{self, Job};

impl Sealed for Rcu {
    type Fences = Fences;
    type Members = Members;

    fn stub() -> Fence<Rcu> {
        static STUB: std::sync::OnceLock<Fence<Rcu>> = std::sync::OnceLock::new();
        crate::fence::shared_stub(&STUB)
    }
}

/// The `Rcu` fence scheme.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
#[derive(Debug)]
pub struct Fences;

/// The `Rcu` member scheme.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
#[derive(Debug)]
pub struct Members;

/// The unlink lock (see the module docs), held while a remover unlinks a node.
struct UnlinkLock<'a> {
    state: &'a FenceState,
}

impl<'a> UnlinkLock<'a> {
    /// Takes the lock unless the fence has signalled (then `None`: the list is claimed or
    /// about to be, and must not be touched).
    fn lock(state: &'a FenceState) -> Option<UnlinkLock<'a>> {
        let mut spins = 0u32;
        // Acquire (here and on CAS failure): a remover that sees SIGNALED is ordered after
        // the signaller's RMW; otherwise the CAS validates the value.
        let mut current = state.word.load_with(Ordering::Acquire);
        loop {
            if current.is_signaled() {
                return None;
            }
            if current.is_locked() {
                backoff(&mut spins);
                current = state.word.load_with(Ordering::Acquire);
                continue;
            }
            let locked = Word::from_bits(current.bits() | Word::LOCKED);
            // Acquire: see the module's Orderings (ordered after the previous holder).
            match state.word.compare_exchange_weak(
                current,
                locked,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(UnlinkLock { state }),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for UnlinkLock<'_> {
    fn drop(&mut self) {
        // Release: see the module's Orderings.
        self.state.word.clear(Word::LOCKED, Ordering::Release);
    }
}

impl FenceScheme<Rcu> for Fences {
    const FLAT_DROP: bool = true;
    const FREE_AFTER_GRACE: bool = false;

    fn signal(
        fence: &Fence<Rcu>,
        at: Option<Instant>,
        error: Option<Errno>,
    ) -> Result<(), FenceError> {
        let state = fence.state();
        let previous = state.word.signal(error);
        if previous.is_signaled() {
            return Err(FenceError::AlreadySignaled);
        }
        crate::trace::signaled!(fence);
        if previous.is_locked() {
            // An unlinker that did not see SIGNALED: let it finish first.
            let mut spins = 0u32;
            // Acquire: pairs with the unlink lock's Release; its `next` rewrites are visible.
            while state.word.load_with(Ordering::Acquire).is_locked() {
                backoff(&mut spins);
            }
        }
        let first = state.list.close(at.unwrap_or_else(Instant::now));
        run_or_queue(fence, first);
        Ok(())
    }

    fn enable_signaling(fence: &Fence<Rcu>) {
        work::scope(|nested| enable(fence, nested));
    }

    unsafe fn add_node(fence: &Fence<Rcu>, node: NonNull<Node<Rcu>>) -> bool {
        let state = fence.state();
        let word = state.word.load();
        if word.is_signaled() {
            return false;
        }
        if word.is_enabled() {
            // Nothing to enable (an inert fence is born enabled): no follow-on work.
            // SAFETY: the caller's obligation 1 is `push`'s.
            return unsafe { state.list.push(node) };
        }
        work::scope(|nested| {
            // The kernel enables first, then appends; if enabling finds the work complete,
            // the fence signals and the callback is refused.
            enable(fence, nested);
            // SAFETY: the caller's obligation 1 is `push`'s.
            unsafe { state.list.push(node) }
        })
    }

    unsafe fn remove_node(fence: &Fence<Rcu>, node: NonNull<Node<Rcu>>) -> bool {
        if !Node::was_linked(node) {
            return false;
        }
        let state = fence.state();
        if let Some(lock) = UnlinkLock::lock(state) {
            // SAFETY: we hold the unlink lock and saw the fence unsignalled; the caller keeps
            // the node valid.
            if unsafe { state.list.unlink(node) } {
                return true;
            }
            // Not on this list although it is live: a stale id (its fence is gone, its
            // address reused by this one); the node was claimed there and runs there.
            drop(lock);
        }
        // SAFETY: the caller's obligations.
        unsafe { list::wait_done(node, work::run_queued) };
        false
    }

    fn may_block() -> Result<(), FenceError> {
        Ok(())
    }

    fn before_park() {
        // Everything this thread owes before it sleeps: its queued work, and the callbacks
        // waiting behind a running one (a callback that blocks would otherwise hold them
        // back, and what it waits for may depend on them). Each may queue more.
        loop {
            work::run_queued();
            if !list::run_owed_callbacks() {
                break;
            }
        }
    }
}

/// Sets ENABLED; the first caller runs the hook now (outermost) or from the work list
/// (nested, so that enabling a container's nested members never recurses).
fn enable(fence: &Fence<Rcu>, nested: bool) {
    let state = fence.state();
    if state.word.load().is_enabled() {
        return;
    }
    let previous = state.word.enable();
    if previous.is_enabled() || previous.is_signaled() {
        return;
    }
    if nested {
        // SAFETY: `enable_job` takes back this handle once.
        work::push(unsafe { Job::new(fence.clone().into_raw(), std::ptr::null(), enable_job) });
    } else {
        run_enable_hook(fence);
    }
}

fn run_enable_hook(fence: &Fence<Rcu>) {
    crate::trace::event!("fence_enable_signal", fence);
    if !fence.ops().enable_signaling(fence) {
        let _ = Fences::signal(fence, None, None);
    }
}

/// # Safety
/// 1. `fence` is a `Fence<Rcu>::into_raw` handle, used once.
unsafe fn enable_job(fence: *const (), _: *const ()) {
    // SAFETY: obligation 1.
    let fence = unsafe { Fence::<Rcu>::from_raw(fence) };
    run_enable_hook(&fence);
}

/// Runs a claimed list now (outermost) or queues it (nested). A callback's panic is kept for
/// the outermost scope to resume.
fn run_or_queue(fence: &Fence<Rcu>, first: *const list::Link) {
    if first.is_null() {
        return;
    }
    work::scope(|nested| {
        if nested {
            // SAFETY: `run_job` takes back the fence handle and runs the list once.
            work::push(unsafe { Job::new(fence.clone().into_raw(), first.cast(), run_job) });
        } else {
            // SAFETY: `first` came from `close` and is run once, here.
            run(fence, first);
        }
    });
}

fn run(fence: &Fence<Rcu>, first: *const list::Link) {
    // SAFETY: the callers pass a list just claimed from this fence, run once.
    if let Some(panic) = unsafe {
        list::run_claimed(fence, first, |_f| {
            crate::trace::event!("fence_callback_run", _f);
        })
    } {
        work::keep_panic(panic);
    }
}

/// # Safety
/// 1. `fence` is a `Fence<Rcu>::into_raw` handle and `first` a claimed list, both used once.
unsafe fn run_job(fence: *const (), first: *const ()) {
    // SAFETY: obligation 1.
    let fence = unsafe { Fence::<Rcu>::from_raw(fence) };
    run(&fence, first.cast());
}

/// An array's hold on one member on `Rcu`: the member's reference, and a weak reference to
/// it in an RCU slot, which is what readers load.
///
/// A reader pins, loads the weak reference and upgrades it: it gets a new reference while
/// the member is still held anywhere, and nothing once its count has fallen to zero (the
/// kernel's `dma_fence_get_rcu`). So when the array releases a signalled member, its own
/// reference is dropped at once, and only the weak one, which keeps the member's memory
/// but not its contents, waits for the readers to leave. A reader stalled in a read-side
/// section then holds back memory only, as the kernel's `kfree_rcu` does, not whole members
/// with their drivers' state.
///
/// Why not on every scheme: the classic final put drops the contents of a fence whose count
/// is one (`release_then_free_after_grace`), which a weak reference could revive.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
pub struct ArrayHold {
    /// The weak reference readers load; emptied (and retired past them) on release.
    seen: rcu::Slot<WeakFence<Rcu>>,
    /// The member reference. Written when the array is built, then only by `signaled` (once,
    /// by the entry's finisher) and by the drop; read by `get_stable`, which runs before any
    /// finisher can (its obligation).
    member: UnsafeCell<Option<Fence<Rcu>>>,
}

// SAFETY: the cell is accessed as its field docs say: never by two threads at once (the
// finisher's `signaled` is ordered after `get_stable` by the callback list's publication).
// The rest is a slot and fences, both `Send + Sync`.
unsafe impl Send for ArrayHold {}
// SAFETY: as above.
unsafe impl Sync for ArrayHold {}

impl Hold<Rcu> for ArrayHold {
    fn hold(fence: Fence<Rcu>) -> Self {
        ArrayHold {
            seen: rcu::Slot::new(Some(fence.downgrade())),
            member: UnsafeCell::new(Some(fence)),
        }
    }

    fn get(&self) -> Option<Fence<Rcu>> {
        let mut guard = ::rcu::pin::<::rcu::DefaultReclaimer>();
        self.get_in(&mut guard)
    }

    #[inline]
    fn get_in(&self, guard: &mut ::rcu::Guard) -> Option<Fence<Rcu>> {
        let member = self.seen.load(guard)?.upgrade();
        if member.is_none() {
            // The upgrade read a count of zero (a Relaxed load): Acquire, to pair with the
            // Release decrements that took it there, the finisher's among them (made after
            // it recorded the member's error), so that "released" comes with the error, as
            // an empty slot does.
            fence(Ordering::Acquire);
        }
        member
    }

    unsafe fn get_stable(&self) -> Option<Fence<Rcu>> {
        // SAFETY: obligation 1: `signaled`, the only writer besides the drop, does not run
        // before this returns, so the cell is not written meanwhile.
        self.member.with(|m| unsafe { (*m).clone() })
    }

    fn signaled_in(&self, guard: &mut ::rcu::Guard) -> Option<bool> {
        match self.seen.load(guard) {
            None => Some(true),
            // Telling more would take a reference, whose drop may be the last.
            Some(_) => None,
        }
    }

    fn is_held(&self) -> bool {
        !self.seen.is_empty()
    }

    fn signaled(&self) {
        // Readers that still see the weak reference get a member still held elsewhere, or
        // nothing; its memory waits for them to leave.
        self.seen.take();
        // SAFETY: the entry's finisher calls this once, after the member's error is recorded;
        // `get_stable` ran before it (the callback was installed after that read), and only
        // the drop, which needs the array gone, touches the cell afterwards.
        let member = self.member.with_mut(|m| unsafe { (*m).take() });
        // Inside the member's callbacks: if this was the last reference, its release goes to
        // the work list.
        drop(member);
    }
}

impl MemberScheme<Rcu> for Members {
    type Member = rcu::Slot<Fence<Rcu>>;
    type ArrayMember = ArrayHold;
    type ChainState = chain::ChainState;
    const SEEKS_IN_SECTION: bool = true;

    fn complete(container: Fence<Rcu>) {
        // No lock is held in a callback: signal directly. The kernel bounces this through
        // irq_work because its member callback runs under the member's lock.
        let _ = Fences::signal(&container, None, None);
    }

    fn admit(_kind: ContainerKind, _member: &Fence<Rcu>) {
        // Any nesting is allowed on this backend.
    }

    fn new_chain_state(has_prev: bool) -> Self::ChainState {
        chain::ChainState::new(has_prev)
    }

    fn chain_enable(link: &Fence<Rcu>) -> bool {
        chain::enable(link)
    }

    fn chain_poll(link: &Fence<Rcu>) -> Option<bool> {
        chain::poll(link)
    }
}
