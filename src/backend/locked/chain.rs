//! The classic chain's completion, as the kernel does it: one callback per link (a node
//! embedded in the link, the kernel's `chain->cb`), placed on the newest unsignalled own
//! fence at or below the link; when it fires, irq_work re-arms it on the next unsignalled
//! fence (walking from the link again), or signals the link when none is left. With every
//! link enabled and fences signalled backwards, each signal re-arms every waiting link:
//! quadratic in the chain length (the kernel's selftest measures it).
//!
//! While armed, the node holds a reference to its link (the kernel's `dma_fence_get(head)`
//! in enable_signaling); the irq_work that re-arms or signals takes it over.
//!
//! Generic over the backends that complete chains this way ([`Rearmed`]): `Locked`, and
//! `LockedRcu`, whose links also release their inputs once complete.

use std::ptr::NonNull;

use crate::backend::{Backend, FenceScheme, FencesOf, Node, NodeVtable};
use crate::chain::chain_walk;
use crate::fence::Fence;
use crate::sync::UnsafeCell;

use super::irq_work::queue_work;

/// The backends whose chain links re-arm one callback, with what differs between them.
pub(crate) trait Rearmed: Backend {
    /// The link's re-armed callback.
    fn rearm(link: &Fence<Self>) -> &ChainState<Self>;
    /// Called once the link has found every input signalled, just before it is signalled.
    fn completed(_link: &Fence<Self>) {}
}

/// The link's one callback.
#[repr(C)]
struct Rearm<B: Backend> {
    /// First: a node pointer is a pointer to the whole.
    node: Node<B>,
    /// The link, as a `Fence::into_raw` reference taken when the node is armed and handed
    /// to the irq_work when it fires (or given back if arming fails).
    link: UnsafeCell<*const ()>,
}

// SAFETY: `link` is written by the arming thread before the node is published and read by
// the node's run after the list's Acquire (and by the next arming, after that run); the node
// itself is `Send + Sync`.
unsafe impl<B: Backend> Send for Rearm<B> {}
// SAFETY: as above.
unsafe impl<B: Backend> Sync for Rearm<B> {}

/// The per-link state of the re-arming schemes.
pub(crate) struct ChainState<B: Backend> {
    rearm: Rearm<B>,
}

impl<B: Rearmed> ChainState<B> {
    const VTABLE: NodeVtable<B> = NodeVtable {
        run: run::<B>,
        release: keep::<B>,
    };

    pub(crate) fn new() -> ChainState<B> {
        ChainState {
            rearm: Rearm {
                node: Node::new(&Self::VTABLE),
                link: UnsafeCell::new(std::ptr::null()),
            },
        }
    }
}

/// The link's `enable_signaling` hook (runs under the link's lock, as in the kernel).
pub(crate) fn enable<B: Rearmed>(link: &Fence<B>) -> bool {
    arm(link)
}

/// Installs the link's one callback on the first unsignalled own fence from the link back;
/// false if there is none (everything has signalled).
///
/// Failures (our divergence: the kernel's chain records none) reach the link with their
/// points (`chain::record_item`): those of the links the walk collects below it, recorded
/// on the link above each; and, for every node it finds signalled when arming (or released),
/// that node's own failure and those recorded on it. The link keeps the earliest point's.
fn arm<B: Rearmed>(link: &Fence<B>) -> bool {
    let rearm = &B::rearm(link).rearm;
    for node in chain_walk(link) {
        let contained = match node.as_chain() {
            Some(chain) => chain.fence(),
            None => Some(node.clone()),
        };
        let Some(fence) = contained else {
            // Released (complete): the failures it recorded, of its own fence and of the
            // links a walk collected behind it, are kept on it.
            crate::chain::record_item(link, &node);
            continue;
        };
        let held = Fence::clone(link).into_raw();
        // SAFETY: the node is not armed (first enable, or its callback has run and handed the
        // reference to this irq_work): the node and its cell are ours until the push.
        unsafe {
            rearm.node.reset();
            rearm.link.with_mut(|l| *l = held);
        }
        // SAFETY: the node lives in the link, which `held` keeps alive until the callback
        // has run; it is linked once, and its callback gives `held` up.
        if unsafe { crate::backend::add_holding(&fence, NonNull::from(&rearm.node), held) } {
            return true;
        }
        // Already signalled: it will not call back (`add_holding` took the reference back).
        // Record its failure now, and the failures a walk collected into it from older
        // links (read after its own fence, which its callbacks release after recording).
        crate::chain::record_item(link, &node);
    }
    // Everything has signalled, and its failures are recorded on the link: the link signals
    // now (the caller), with the earliest one.
    crate::chain::apply_failure(link);
    B::completed(link);
    false
}

/// The callback, under the signalled fence's lock: bounces the re-arm to irq_work (the
/// re-arm runs without the link's lock, as the kernel's irq_work handler does in 6.x; a
/// 2026 lockdep fix wraps it in the lock, and a later RFC removes that again). The signalled
/// fence's failure is recorded by the re-arm's walk, with the point it belongs to.
///
/// # Safety
/// 1. `node` is the armed `Rearm` node of a link, running: its `link` holds a reference.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))] // `signaled`: traced only
unsafe fn run<B: Rearmed>(node: NonNull<Node<B>>, signaled: &Fence<B>) {
    let rearm = node.cast::<Rearm<B>>();
    // SAFETY: obligation 1: the reference taken when armed, handed to the irq_work here.
    let link = unsafe { Fence::<B>::from_raw(rearm.as_ref().link.with(|l| *l)) };
    crate::trace::member!(&link, signaled);
    queue_work(move || {
        if !arm(&link) {
            let _ = FencesOf::<B>::signal(&link, None, None);
        }
    });
}

/// The node's reference moved to the irq_work in `run`: nothing to give up here.
///
/// # Safety
/// 1. None: the node is not touched.
unsafe fn keep<B: Backend>(_node: NonNull<Node<B>>) {}
