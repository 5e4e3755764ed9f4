//! The `Backend` contract: what a synchronisation scheme provides to the public types.
//!
//! The public types ([`Fence`], the containers) carry the kernel's semantics and are generic
//! over a [`Backend`]. A backend is a marker type naming two schemes, each a sealed trait:
//!
//! - a **fence scheme** ([`FenceScheme`]): how a fence signals, enables, and installs and
//!   removes callbacks. Every scheme uses the same per-fence state ([`FenceState`]: the state
//!   word and the list word, `state.rs` and `list.rs`) and the same intrusive callback nodes;
//!   schemes differ in which lock they hold around each step and where callbacks run.
//! - a **member scheme** ([`MemberScheme`]): how a container holds its members, what its
//!   callback on a member does once the member has signalled, how the container is then
//!   signalled, and how a chain link completes.
//!
//! | backend | fence scheme | member scheme |
//! | --- | --- | --- |
//! | [`Rcu`] | `rcu::Fences`: no lock around callbacks; follow-on work on the thread's work list | `rcu::Members`: RCU slots released by the containers' callbacks (an array's readers upgrade weak references, so a released member goes at once); direct completion; chains count their two inputs |
//! | [`Locked`] | `locked::Fences`: the kernel's fence lock, callbacks run under it | `locked::Members`: members held until the container's release; completion by irq_work; the chain's one re-armed callback |
//! | [`LockedRcu`] | `locked::Fences` | `locked_rcu::Members`: RCU slots released by the containers' callbacks; container inputs enabled at build time; nested-annotated adds; completion by irq_work; the re-armed chain |
//!
//! Layers run one way: `fence.rs` (the handle and its state) and `ops.rs` know this module;
//! containers (`array.rs`, `chain.rs`) know the fence and this module; the wings
//! (`backend/rcu/`, `backend/locked/`) implement the traits and may use the containers'
//! methods. Nothing below a container names it.
//!
//! The traits are sealed: they are the library's internal contract, not an extension point.

use std::fmt;
use std::time::Instant;

use crate::error::{Errno, FenceError};
use crate::fence::Fence;

pub(crate) mod list;
pub(crate) mod locked;
pub(crate) mod locked_rcu;
pub(crate) mod rcu;
pub(crate) mod state;

/// A callback node on a fence of `B` (see `list.rs`).
pub(crate) type Node<B> = list::Node<Fence<B>>;
/// How a callback node on a fence of `B` runs and is given back.
pub(crate) type NodeVtable<B> = list::NodeVtable<Fence<B>>;

/// A fence synchronisation scheme: [`Rcu`] (the default) or [`Locked`] (the kernel's
/// classic scheme).
///
/// Every public type takes `B: Backend = Rcu`; switching scheme is a change of one type.
///
/// ```
/// use rcu_fence::{Backend, Locked, Rcu, Timeline};
/// fn name<B: Backend>(_: &Timeline<B>) -> &'static str { B::NAME }
/// assert_eq!(name(&Timeline::new("gpu")), "rcu");
/// assert_eq!(name(&Timeline::new_in("gpu", Locked)), "locked");
/// ```
#[allow(private_bounds)]
pub trait Backend:
    sealed::Sealed<Fences: FenceScheme<Self>, Members: MemberScheme<Self>>
    + Default
    + Copy
    + Send
    + Sync
    + fmt::Debug
    + 'static
{
    /// A short name for tables and benchmark ids.
    const NAME: &'static str;
}

/// The default backend: callbacks run with no lock held, container members are read
/// under RCU, and nothing recurses with nesting depth.
///
/// ```
/// use rcu_fence::{Rcu, Timeline};
/// let tl: Timeline<Rcu> = Timeline::new("gpu"); // the same as Timeline::new_in("gpu", Rcu)
/// let f = tl.fence(1);
/// let g = f.clone();
/// // A callback may use the fence API on its own fence: no lock is held.
/// f.add_callback(move |me| assert!(me.add_callback(|_| {}).is_err() && g.is_signaled())).unwrap();
/// f.signal().unwrap();
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Rcu;

impl Backend for Rcu {
    const NAME: &'static str = "rcu";
}

/// The classic scheme, faithful to the kernel: callbacks run under the fence's lock,
/// container signalling is deferred to irq_work, and nesting is reported, not supported.
///
/// ```
/// use rcu_fence::{Locked, Timeline};
/// let tl = Timeline::new_in("gpu", Locked);
/// let f = tl.fence(1);
/// f.add_callback(|me| assert!(me.test_signaled_flag())).unwrap();
/// f.signal().unwrap();
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Locked;

impl Backend for Locked {
    const NAME: &'static str = "locked";
}

/// The discussion's second proposal on its own, as a third scheme for the ablation: the
/// kernel's locking for fences (callbacks run under the fence's lock, container completion
/// by irq_work, as [`Locked`]), with containers whose members sit in RCU slots, are read
/// without the container's lock, and are released by the containers' own callbacks, so that
/// the final put of a signalled container has nothing to walk. As the discussion's patch
/// series did, a container enables its container inputs early, unlocked, when it is built,
/// and adds its callbacks to members with the nested lock annotation (the reverse signal
/// order rule). Nothing of [`Rcu`]'s work list.
///
/// ```
/// use rcu_fence::{FenceArray, LockedRcu, Timeline, context_alloc};
/// let tl = Timeline::new_in("gpu", LockedRcu);
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let all = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
/// all.enable_sw_signaling();
/// a.signal().unwrap();
/// b.signal().unwrap();
/// assert!(all.test_signaled_flag());
/// assert_eq!(all.as_array().unwrap().fences().count(), 0); // released by its callbacks
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct LockedRcu;

impl Backend for LockedRcu {
    const NAME: &'static str = "locked-rcu";
}

/// The kinds of container, as a scheme sees them (the kernel's per-container lock classes
/// and nesting rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContainerKind {
    Array,
    Chain,
}

pub(crate) mod sealed {
    /// Names a backend's two schemes. Not nameable outside the crate.
    pub trait Sealed: Sized + Send + Sync + 'static {
        /// How fences signal and keep callbacks (a [`FenceScheme`](super::FenceScheme)).
        type Fences;
        /// How containers hold members and complete (a [`MemberScheme`](super::MemberScheme)).
        type Members;
        /// The shared, already signalled stub fence of this backend.
        fn stub() -> crate::fence::Fence<Self>
        where
            Self: super::Backend;
    }
}

/// The fence scheme of `B`.
pub(crate) type FencesOf<B> = <B as sealed::Sealed>::Fences;
/// The member scheme of `B`.
pub(crate) type MembersOf<B> = <B as sealed::Sealed>::Members;
/// A chain link's hold on its own fence, on `B`.
pub(crate) type MemberOf<B> = <MembersOf<B> as MemberScheme<B>>::Member;
/// An array's hold on one member, on `B`.
pub(crate) type ArrayMemberOf<B> = <MembersOf<B> as MemberScheme<B>>::ArrayMember;
/// A chain link's per-scheme completion state, on `B`.
pub(crate) type ChainStateOf<B> = <MembersOf<B> as MemberScheme<B>>::ChainState;

/// How a fence signals, enables and keeps callbacks (see the module docs).
pub(crate) trait FenceScheme<B: Backend>: 'static {
    /// True if dropping a handle goes through the work list (constant stack); false for the
    /// classic scheme, whose final put recurses like the kernel's.
    const FLAT_DROP: bool;

    /// True if a fence's memory is freed a grace period after its final put, which drops
    /// its contents at once: the classic scheme's timing (`dma_fence_free` is `kfree_rcu`,
    /// because the kernel's readers, `dma_fence_get_rcu`, may reach a fence whose count has
    /// fallen to zero). False where readers reach fences only through a slot's counted
    /// reference or a weak one (which upgrades only while the count is above zero), each
    /// released past them: the memory is freed when the last of both goes.
    const FREE_AFTER_GRACE: bool;

    /// Retires a fence's memory (its contents already dropped) past RCU readers, on a scheme
    /// that frees after a grace period. Retiring may run this thread's ready RCU batches and
    /// resume a panic caught from one of them: each scheme says where that panic goes.
    #[cfg(not(loom))]
    fn retire_memory<P: ::rcu::Pointer>(memory: P) {
        ::rcu::retire::<::rcu::DefaultReclaimer, P>(memory);
    }

    /// Marks the fence signalled (applying `error` if none is set yet) and runs its
    /// callbacks exactly once. `Err(AlreadySignaled)` if it had signalled.
    fn signal(
        fence: &Fence<B>,
        at: Option<Instant>,
        error: Option<Errno>,
    ) -> Result<(), FenceError>;

    /// Calls the fence's `enable_signaling` hook at most once.
    fn enable_signaling(fence: &Fence<B>);

    /// Enables signalling, then links `node`; `false` if the fence has signalled (the node
    /// was not linked and will not run). If it unwinds (a panicking `enable_signaling` hook,
    /// or one of the callbacks that enabling ran), the node may or may not have been linked:
    /// the owner asks [`Node::was_linked`] and removes it if so.
    ///
    /// # Safety
    /// 1. `node` is valid, not linked anywhere, and stays valid until it has been removed
    ///    with [`FenceScheme::remove_node`], or run and released through its vtable.
    unsafe fn add_node(fence: &Fence<B>, node: std::ptr::NonNull<Node<B>>) -> bool;

    /// Takes `node` back: `true` if it was unlinked and will never run; `false` once the
    /// fence has signalled, when the node has run to completion (or from inside that very
    /// callback). A node that is not on this fence's list (a stale id) gets `false` once it
    /// has run wherever it is; a node never linked gets `false` at once.
    ///
    /// # Safety
    /// 1. `node` was linked by [`FenceScheme::add_node`] (on this or an earlier fence) and
    ///    not yet removed; the caller keeps it valid until this returns.
    unsafe fn remove_node(fence: &Fence<B>, node: std::ptr::NonNull<Node<B>>) -> bool;

    /// `Err(WouldDeadlock)` if this thread must not block now (the classic scheme inside a
    /// callback or hook, which hold a fence lock).
    fn may_block() -> Result<(), FenceError>;

    /// Called once a blocking wait has linked its node, just before it parks: the `Rcu`
    /// scheme runs the work this thread has queued (what the wait needs may be among it).
    fn before_park() {}
}

/// A container's hold on one member (an array member, a chain link's own fence), as its
/// scheme keeps it.
pub(crate) trait Hold<B: Backend>: Send + Sync + Sized {
    /// Whether [`Hold::get`] reads an RCU slot (a read-side section of its own, which
    /// [`Hold::get_in`] shares with the caller's); not for a member held immutably.
    const READS_SLOT: bool = true;
    /// Holds `fence` as a member.
    fn hold(fence: Fence<B>) -> Self;
    /// A new reference to the member, if still held.
    fn get(&self) -> Option<Fence<B>>;
    /// As [`Hold::get`], reading through `guard`, a read-side section the caller holds: a
    /// member in an RCU slot is then read without a pin of its own (pinning is most of a
    /// slot read's cost). Only the clone leaves the section.
    fn get_in(&self, guard: &mut ::rcu::Guard) -> Option<Fence<B>> {
        let _ = guard;
        self.get()
    }
    /// As [`Hold::get`], for a caller during whose call the member cannot be released: a
    /// member in an RCU slot is then read without a read-side section.
    ///
    /// # Safety
    /// 1. Nothing releases the member (its container's [`Hold::signaled`]) until this
    ///    returns.
    unsafe fn get_stable(&self) -> Option<Fence<B>> {
        self.get()
    }
    /// Whether the member has signalled (a released member has), when that can be told
    /// inside the caller's read-side section `guard` without running anything: see
    /// [`Fence::flag_answer`]; `None` if only polling the member's hook can tell.
    fn signaled_in(&self, guard: &mut ::rcu::Guard) -> Option<bool>;
    /// True if the member is still held (a racy snapshot).
    fn is_held(&self) -> bool;
    /// Called by a container's callback once the member has signalled (after its error was
    /// recorded): releases it if the scheme does.
    fn signaled(&self);
}

/// Members in RCU slots (`Rcu`, `LockedRcu`): released as they signal; readers that still
/// see one keep it alive until they leave their read-side section.
impl<B: Backend> Hold<B> for ::rcu::Slot<Fence<B>> {
    fn hold(fence: Fence<B>) -> Self {
        ::rcu::Slot::new(Some(fence))
    }

    fn get(&self) -> Option<Fence<B>> {
        self.load_clone()
    }

    #[inline]
    fn get_in(&self, guard: &mut ::rcu::Guard) -> Option<Fence<B>> {
        self.load(guard).map(|f| Fence::clone(&f))
    }

    unsafe fn get_stable(&self) -> Option<Fence<B>> {
        // SAFETY: obligation 1: the slot is only emptied by `signaled` (and by its drop,
        // which needs the container gone), so nothing retires the value meanwhile.
        unsafe { self.load_clone_stable() }
    }

    fn signaled_in(&self, guard: &mut ::rcu::Guard) -> Option<bool> {
        match self.load(guard) {
            None => Some(true),
            Some(member) => member.flag_answer(),
        }
    }

    fn is_held(&self) -> bool {
        !self.is_empty()
    }

    fn signaled(&self) {
        self.take();
    }
}

/// How containers hold members and complete (see the module docs).
pub(crate) trait MemberScheme<B: Backend>: 'static {
    /// A chain link's hold on its own fence.
    type Member: Hold<B>;
    /// An array's hold on one member.
    type ArrayMember: Hold<B>;
    /// A chain link's completion state in this scheme.
    type ChainState: Send + Sync;
    /// Whether a chain lookup ([`chain_find_seqno`](crate::chain_find_seqno), a sync
    /// object's `find_fence`) passes pending links inside one read-side section, taking no
    /// reference per link, as RCU readers do (`Rcu`); otherwise it takes and drops one per
    /// link, as the kernel's `dma_fence_chain_walk` does.
    const SEEKS_IN_SECTION: bool = false;

    /// Installs a container's callback `node` on its member `member` (the container's
    /// `enable_signaling` hook calls this, possibly under the container's lock):
    /// [`FenceScheme::add_node`], unless the scheme adds callbacks to members otherwise.
    ///
    /// # Safety
    /// As [`FenceScheme::add_node`].
    unsafe fn add_to_member(member: &Fence<B>, node: std::ptr::NonNull<Node<B>>) -> bool {
        // SAFETY: the caller's obligations are `add_node`'s.
        unsafe { FencesOf::<B>::add_node(member, node) }
    }

    /// Signals `container` from inside a member's callback, once its last member completed
    /// (its first member error is recorded on it already): at once, or deferred as the
    /// kernel does.
    fn complete(container: Fence<B>);

    /// Called for each member as a container is built, with no lock held: the kernel's
    /// nesting `WARN_ON`, and whatever the scheme prepares there (`LockedRcu` enables a
    /// member that is itself a container now, so that enabling the container later never
    /// nests container locks).
    fn admit(kind: ContainerKind, member: &Fence<B>);

    /// A fresh chain state for a link created with (`true`) or without a `prev`.
    fn new_chain_state(has_prev: bool) -> Self::ChainState;
    /// The chain link's `enable_signaling` hook.
    fn chain_enable(link: &Fence<B>) -> bool;
    /// The chain link's quick `signaled` answer, if the scheme has one (`Rcu` answers from
    /// its input count once enabled); `None`: walk the chain.
    fn chain_poll(link: &Fence<B>) -> Option<bool>;
}

/// Installs a container's callback `node` on `member` ([`MemberScheme::add_to_member`]);
/// the node owns `held`, a reference to the container that its callback gives up when it
/// runs. If the node ends up not linked (the member has signalled, or a hook the add ran
/// panicked before the push), the reference is taken back here, on the unwind too, so a
/// panicking member hook leaks nothing. Returns whether the node was linked.
///
/// # Safety
/// 1. As [`FenceScheme::add_node`].
/// 2. `held` came from `Fence::<B>::into_raw` and is given up only by the node's callback
///    (or here): it is written where the callback finds it before this call.
pub(crate) unsafe fn add_holding<B: Backend>(
    member: &Fence<B>,
    node: std::ptr::NonNull<Node<B>>,
    held: *const (),
) -> bool {
    /// Takes `held` back when dropped, unless the node was linked.
    struct TakeBack<B: Backend> {
        node: std::ptr::NonNull<Node<B>>,
        held: *const (),
    }
    impl<B: Backend> Drop for TakeBack<B> {
        fn drop(&mut self) {
            if !Node::<B>::was_linked(self.node) {
                // SAFETY: obligation 2: never linked, so the callback that would give the
                // reference up will not run; it is ours, given up once.
                drop(unsafe { Fence::<B>::from_raw(self.held) });
            }
        }
    }
    let take_back = TakeBack::<B> { node, held };
    // SAFETY: obligation 1.
    let linked = unsafe { MembersOf::<B>::add_to_member(member, node) };
    if linked {
        // Linked: the reference belongs to the node now.
        std::mem::forget(take_back);
    }
    linked
}
