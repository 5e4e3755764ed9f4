//! The `LockedRcu` member scheme: the discussion's second proposal on its own, beside the
//! classic fence scheme (`backend::locked`), so that the evaluation can tell which of the
//! `Rcu` backend's two changes buys what.
//!
//! - **Members in RCU slots, released by the containers' callbacks**: an array's callback on
//!   a member, once the member has signalled, records its error and takes the member out of
//!   its slot (the reference is dropped past RCU readers); a chain link releases its own
//!   fence and its `prev` once it has found every input signalled. Readers (`fences()`,
//!   `unwrap`, the poll of an unenabled container) read the slots under RCU, without the
//!   container's lock. So a signalled container holds nothing, and its final put walks
//!   nothing. An unsignalled one still releases its members recursively (the kernel's put):
//!   the proposal did not touch that.
//! - **Enabling never nests container locks**: a container enables its members that are
//!   containers themselves when it is built (`admit`), with no lock held (the series'
//!   second patch marked such inputs "recursive" and enabled them at creation); when the
//!   container is later enabled, under its own lock, those members are enabled already and
//!   only take their own lock to append a callback.
//! - **The reverse signal order rule, with a nested add**: a container adds its callback to
//!   a member while holding its own lock, and the member is guaranteed to signal first; the
//!   add takes the member's lock with the nested annotation (the series' first patch), which
//!   the lock recorder keeps apart from recursive locking (`LockdepReport::nested`).
//! - **Completion by irq_work**: a member's callback runs under the member's lock, so the
//!   container is signalled by irq_work on the same thread once that lock is released, as on
//!   `Locked`. A chain re-arms its one callback as the kernel's does.

use std::ptr::NonNull;

use crate::backend::locked::chain::{ChainState, Rearmed};
use crate::backend::locked::{self, irq_work};
use crate::backend::{ContainerKind, FenceScheme, LockedRcu, MemberScheme, Node, sealed::Sealed};
use crate::fence::Fence;

impl Sealed for LockedRcu {
    type Fences = locked::Fences;
    type Members = Members;

    fn stub() -> Fence<LockedRcu> {
        static STUB: std::sync::OnceLock<Fence<LockedRcu>> = std::sync::OnceLock::new();
        crate::fence::shared_stub(&STUB)
    }
}

/// The `LockedRcu` member scheme.
#[allow(unreachable_pub)] // named by the sealed trait; not reachable by users
#[derive(Debug)]
pub struct Members;

impl Rearmed for LockedRcu {
    fn rearm(link: &Fence<LockedRcu>) -> &ChainState<LockedRcu> {
        link.as_chain()
            .expect("a chain's hook is called on a chain")
            .scheme()
    }

    /// Every input has signalled: the link drops its references to them (the proposal's
    /// "callbacks drop their own references"), past RCU readers.
    fn completed(link: &Fence<LockedRcu>) {
        let chain = link.as_chain().expect("a chain completes");
        chain.own_member().take();
        chain.prev_slot().take();
    }
}

impl MemberScheme<LockedRcu> for Members {
    type Member = rcu::Slot<Fence<LockedRcu>>;
    // Not `Rcu`'s weak hold: this scheme's final put relies on no weak reference existing.
    type ArrayMember = rcu::Slot<Fence<LockedRcu>>;
    type ChainState = ChainState<LockedRcu>;

    unsafe fn add_to_member(member: &Fence<LockedRcu>, node: NonNull<Node<LockedRcu>>) -> bool {
        // SAFETY: the caller's obligations are `add_node`'s.
        unsafe { locked::add_node_annotated(member, node, true) }
    }

    fn complete(container: Fence<LockedRcu>) {
        // The member's callback runs under the member's lock: the kernel's irq_work.
        irq_work::queue_work(move || {
            let _ = <locked::Fences as FenceScheme<LockedRcu>>::signal(&container, None, None);
        });
    }

    /// The kernel's nesting `WARN_ON`s, counted as on `Locked`; then a member that is a
    /// container is enabled now, with no lock held (see the module docs).
    fn admit(kind: ContainerKind, member: &Fence<LockedRcu>) {
        locked::nesting_warning(kind, member);
        if member.is_container() {
            member.enable_sw_signaling();
        }
    }

    fn new_chain_state(_has_prev: bool) -> Self::ChainState {
        ChainState::new()
    }

    fn chain_enable(link: &Fence<LockedRcu>) -> bool {
        locked::chain::enable(link)
    }

    fn chain_poll(_link: &Fence<LockedRcu>) -> Option<bool> {
        None
    }
}
