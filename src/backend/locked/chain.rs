//! The classic chain's completion, as the kernel does it: one callback per link (a node
//! embedded in the link, the kernel's `chain->cb`), placed on the newest unsignalled own
//! fence at or below the link; when it fires, irq_work re-arms it on the next unsignalled
//! fence (walking from the link again), or signals the link when none is left. With every
//! link enabled and fences signalled backwards, each signal re-arms every waiting link:
//! quadratic in the chain length (the kernel's selftest measures it).
//!
//! While armed, the node holds a reference to its link (the kernel's `dma_fence_get(head)`
//! in enable_signaling); the irq_work that re-arms or signals takes it over.

use std::ptr::NonNull;

use crate::backend::{FenceScheme, Locked};
use crate::backend::{Node, NodeVtable};
use crate::chain::{FenceChain, chain_walk};
use crate::fence::Fence;
use crate::sync::UnsafeCell;

use super::{Fences, irq_work::queue_work};

/// The link's one callback.
#[repr(C)]
struct Rearm {
    /// First: a node pointer is a pointer to the whole.
    node: Node<Locked>,
    /// The link, as a `Fence::into_raw` reference taken when the node is armed and handed
    /// to the irq_work when it fires (or given back if arming fails).
    link: UnsafeCell<*const ()>,
}

// SAFETY: `link` is written by the arming thread before the node is published and read by
// the node's run after the list's Acquire (and by the next arming, after that run); the node
// itself is `Send + Sync`.
unsafe impl Send for Rearm {}
// SAFETY: as above.
unsafe impl Sync for Rearm {}

/// The classic scheme's per-link state.
pub(crate) struct ChainState {
    rearm: Rearm,
}

impl ChainState {
    pub(super) fn new() -> ChainState {
        ChainState {
            rearm: Rearm {
                node: Node::new(&VTABLE),
                link: UnsafeCell::new(std::ptr::null()),
            },
        }
    }
}

static VTABLE: NodeVtable<Locked> = NodeVtable { run, release: keep };

fn chain_of(link: &Fence<Locked>) -> &FenceChain<Locked> {
    link.as_chain()
        .expect("a chain callback completes a chain link")
}

/// The link's `enable_signaling` hook (runs under the link's lock, as in the kernel).
pub(super) fn enable(link: &Fence<Locked>) -> bool {
    arm(link)
}

/// Installs the link's one callback on the first unsignalled own fence from the link back;
/// false if there is none (everything has signalled).
///
/// Failures (our divergence: the kernel's chain records none) reach the link through the
/// walk from it, which records each collected link's failure on the link above it: on
/// this link for everything the walk from it collects. A node found signalled only when
/// arming on it (it signalled after the walk looked) restarts the walk, so that it and
/// what lies below it are collected into this link too, not only into that node.
fn arm(link: &Fence<Locked>) -> bool {
    let rearm = &chain_of(link).scheme().rearm;
    'walk: loop {
        for node in chain_walk(link) {
            let contained = match node.as_chain() {
                Some(chain) => chain.fence(),
                None => Some(node.clone()),
            };
            let Some(fence) = contained else { continue };
            // SAFETY: the node is not armed (first enable, or its callback has run and
            // handed the reference to this irq_work): the node and its cell are ours until
            // the push.
            unsafe {
                rearm.node.reset();
                rearm.link.with_mut(|l| *l = Fence::clone(link).into_raw());
            }
            // SAFETY: the node lives in the link, which the reference just taken keeps
            // alive until the callback has run; it is linked once.
            if unsafe {
                <Fences as FenceScheme<Locked>>::add_node(&fence, NonNull::from(&rearm.node))
            } {
                return true;
            }
            // Already signalled: it will not call back; take the reference back.
            // SAFETY: never linked, so the reference written above is still ours.
            drop(unsafe { Fence::<Locked>::from_raw(rearm.link.with(|l| *l)) });
            if node.ptr_eq(link) {
                // The link's own fence: record its failure; the walk below it goes on.
                crate::chain::record_input(link, &fence, true);
            } else {
                continue 'walk;
            }
        }
        // Everything has signalled, and its failures are recorded on the link: the link
        // signals now (the caller), with the earliest one.
        crate::chain::apply_failure(link);
        return false;
    }
}

/// The callback, under the signalled fence's lock: bounces the re-arm to irq_work (the
/// re-arm runs without the link's lock, as the kernel's irq_work handler does in 6.x; a
/// 2026 lockdep fix wraps it in the lock, and a later RFC removes that again). The signalled
/// fence's failure is recorded by the re-arm's walk, with the point it belongs to.
///
/// # Safety
/// 1. `node` is the armed `Rearm` node of a link, running: its `link` holds a reference.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))] // `signaled`: traced only
unsafe fn run(node: NonNull<Node<Locked>>, signaled: &Fence<Locked>) {
    let rearm = node.cast::<Rearm>();
    // SAFETY: obligation 1: the reference taken when armed, handed to the irq_work here.
    let link = unsafe { Fence::<Locked>::from_raw(rearm.as_ref().link.with(|l| *l)) };
    crate::trace::member!(&link, signaled);
    queue_work(move || {
        if !arm(&link) {
            let _ = <Fences as FenceScheme<Locked>>::signal(&link, None, None);
        }
    });
}

/// The node's reference moved to the irq_work in `run`: nothing to give up here.
///
/// # Safety
/// 1. None: the node is not touched.
unsafe fn keep(_node: NonNull<Node<Locked>>) {}
