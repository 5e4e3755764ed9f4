//! The `Rcu` chain's completion: linear in the number of links, whatever the order in
//! which the points' fences signal.
//!
//! Enabling a link installs one callback on its own fence and one on `prev` (the previous
//! link or plain fence), each an intrusive node embedded in the link (no allocation), and
//! `pending` counts the two down. The callback on an input records its error, releases the
//! link's reference to it, and decrements; the input that takes `pending` to 0 signals the
//! link at once. Enabling `prev` (a nested `add_callback`) is queued on the work list, so
//! enabling a chain of any length walks it iteratively, and a link's completion signals the
//! next one from inside a callback, which the work list runs after the current callback
//! returns: no recursion along the chain.
//!
//! Each link does O(1) work when its last input completes, so forward, backward and random
//! signalling orders all cost O(links). (The kernel keeps one callback per link and re-arms
//! it on the next unsignalled fence, which is quadratic when fences signal backwards.)
//!
//! Garbage collection by a walker may replace `prev` by an older link; the callback already
//! installed on the collected link stays valid (that link completes only after the older
//! one), and on completion it releases whatever `prev` holds then, which has completed too.
//!
//! Each installed node holds a reference to its link (raw, in the node's owner), so a link
//! whose handles are all dropped still completes; the node's release gives it up.
//!
//! # Orderings
//! - `pending.fetch_sub` is `AcqRel`: the finisher that completes the link sees the errors
//!   recorded by the other input's callback (release sequence on `pending`).
//! - `counting` is stored with `Release` once both inputs are armed and loaded with
//!   `Acquire` by `poll`: a poll that sees it relies on `pending` alone.

use std::ptr::NonNull;

use crate::backend::{Hold, MemberScheme, Rcu};
use crate::backend::{Node, NodeVtable};
use crate::chain::FenceChain;
use crate::fence::Fence;
use crate::sync::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};

use super::Members;

/// Which input of a link a callback is for.
#[derive(Clone, Copy)]
enum Input {
    Own,
    Prev,
}

/// The callback on one input: a node and the link it completes.
#[repr(C)]
struct InputCallback {
    /// First: a node pointer is a pointer to the whole.
    node: Node<Rcu>,
    /// The link, as a `Fence::into_raw` reference taken when the node is installed and given
    /// up by the node's release.
    link: UnsafeCell<*const ()>,
}

// SAFETY: `link` is written by the enable hook before the node is published and read by
// the node's run and release after the list's Acquire; the node itself is `Send + Sync`.
unsafe impl Send for InputCallback {}
// SAFETY: as above.
unsafe impl Sync for InputCallback {}

/// The `Rcu` scheme's per-link state.
pub(crate) struct ChainState {
    /// Inputs not yet complete: the own fence, and `prev` if there was one.
    pending: AtomicUsize,
    /// Set once the enable has armed both inputs: from then on `pending` alone answers
    /// `poll`.
    counting: AtomicBool,
    /// True if the link was created with a `prev` (counted in `pending`).
    had_prev: bool,
    own: InputCallback,
    prev: InputCallback,
}

impl ChainState {
    pub(super) fn new(has_prev: bool) -> ChainState {
        ChainState {
            pending: AtomicUsize::new(1 + usize::from(has_prev)),
            counting: AtomicBool::new(false),
            had_prev: has_prev,
            own: InputCallback::new(&OWN_VTABLE),
            prev: InputCallback::new(&PREV_VTABLE),
        }
    }

    fn callback(&self, input: Input) -> &InputCallback {
        match input {
            Input::Own => &self.own,
            Input::Prev => &self.prev,
        }
    }
}

impl InputCallback {
    fn new(vtable: &'static NodeVtable<Rcu>) -> InputCallback {
        InputCallback {
            node: Node::new(vtable),
            link: UnsafeCell::new(std::ptr::null()),
        }
    }
}

static OWN_VTABLE: NodeVtable<Rcu> = NodeVtable {
    run: run_own,
    release,
};

static PREV_VTABLE: NodeVtable<Rcu> = NodeVtable {
    run: run_prev,
    release,
};

/// # Safety
/// 1. `node` is the `own` callback of an installed link, running (see `NodeVtable::run`).
unsafe fn run_own(node: NonNull<Node<Rcu>>, signaled: &Fence<Rcu>) {
    // SAFETY: obligation 1.
    unsafe { run_input(node, Input::Own, signaled) }
}

/// # Safety
/// 1. `node` is the `prev` callback of an installed link, running.
unsafe fn run_prev(node: NonNull<Node<Rcu>>, signaled: &Fence<Rcu>) {
    // SAFETY: obligation 1.
    unsafe { run_input(node, Input::Prev, signaled) }
}

/// # Safety
/// 1. `node` is an installed input callback, running: its `link` holds a reference.
unsafe fn run_input(node: NonNull<Node<Rcu>>, input: Input, signaled: &Fence<Rcu>) {
    let callback = node.cast::<InputCallback>();
    // SAFETY: obligation 1: the link pointer was written before the node was pushed, and its
    // reference is alive until `release`.
    let link = unsafe { Fence::<Rcu>::borrow_raw(callback.as_ref().link.with(|l| *l)) };
    if finish(&link, input, Some(signaled)) {
        crate::chain::apply_failure(&link);
        Members::complete(Fence::clone(&link));
    }
}

/// # Safety
/// 1. `node` is an input callback that was installed and has run: gives up its reference.
unsafe fn release(node: NonNull<Node<Rcu>>) {
    let callback = node.cast::<InputCallback>();
    // SAFETY: obligation 1: the reference taken at install, given up once. Dropping it may
    // free the link, and with it this node: nothing touches the node afterwards.
    drop(unsafe { Fence::<Rcu>::from_raw(callback.as_ref().link.with(|l| *l)) });
}

fn chain_of(link: &Fence<Rcu>) -> &FenceChain<Rcu> {
    link.as_chain()
        .expect("a chain callback completes a chain link")
}

/// Finishes one input; true if this completed the link (whose failure the caller then
/// applies: `chain::apply_failure`, before it signals). `signaled` is `None` when the
/// input was already gone (collected by a walker, which only happens once everything it
/// stood for has completed).
fn finish(link: &Fence<Rcu>, input: Input, signaled: Option<&Fence<Rcu>>) -> bool {
    let chain = chain_of(link);
    if let Some(signaled) = signaled {
        let own = matches!(input, Input::Own);
        crate::trace::member!(link, signaled, own = own);
        // With the point it came from: the link keeps the earliest point's failure.
        crate::chain::record_input(link, signaled, own);
    }
    // The error is recorded before the input is released (walkers read the slot first).
    match input {
        Input::Own => chain.own_member().signaled(),
        Input::Prev => {
            chain.prev_slot().take();
        }
    }
    // AcqRel: see the module's Orderings.
    chain.scheme().pending.fetch_sub(1, Ordering::AcqRel) == 1
}

/// The link's `enable_signaling` hook; `false` if the link is already complete.
pub(super) fn enable(link: &Fence<Rcu>) -> bool {
    let chain = chain_of(link);
    let state = chain.scheme();
    for input in [Input::Own, Input::Prev] {
        let member = match input {
            Input::Own => chain.own_member().get(),
            Input::Prev => chain.prev_slot().load_clone(),
        };
        let Some(fence) = member else {
            // No `prev` at all is no input; a collected one has completed.
            if matches!(input, Input::Prev) && !state.had_prev {
                continue;
            }
            if finish(link, input, None) {
                crate::chain::apply_failure(link);
                return false;
            }
            continue;
        };
        let callback = state.callback(input);
        let held = Fence::clone(link).into_raw();
        // SAFETY: the enable hook runs once per link (the core's ENABLED bit), so this node is
        // unused; the pointer is written before the push publishes the node.
        callback.link.with_mut(|l| unsafe { *l = held });
        // SAFETY: the node lives in the link, which `held` keeps alive until the node has run
        // and been released; it is pushed once, and its callback gives `held` up.
        let installed =
            unsafe { crate::backend::add_holding(&fence, NonNull::from(&callback.node), held) };
        if !installed {
            // Already signalled: it will not call back (`add_holding` took the reference back).
            if finish(link, input, Some(&fence)) {
                crate::chain::apply_failure(link);
                return false;
            }
        }
    }
    // Both inputs now carry a callback: from here the count alone answers `poll`.
    // Release: pairs with its Acquire load.
    state.counting.store(true, Ordering::Release);
    true
}

/// The count-based answer once both inputs are armed (`None` before: walk the chain).
pub(super) fn poll(link: &Fence<Rcu>) -> Option<bool> {
    let state = chain_of(link).scheme();
    // Acquire: pairs with the completing input's AcqRel decrement.
    if state.pending.load(Ordering::Acquire) == 0 {
        return Some(true);
    }
    // Acquire: pairs with the Release store in `enable`.
    state.counting.load(Ordering::Acquire).then_some(false)
}
