//! The `Rcu` chain's completion: linear in the number of links, whatever the order in
//! which the points' fences signal.
//!
//! Enabling a link installs one callback on its own fence and one on `prev` (the previous
//! link or plain fence), and `pending` counts the two down. The callback on an input records
//! its error, releases the link's reference to it, and decrements; the input that takes
//! `pending` to 0 signals the link at once. Enabling `prev` (a nested `add_callback`) is
//! queued on the work list, so enabling a chain of any length walks it iteratively, and a
//! link's completion signals the next one from inside a callback, which the work list runs
//! after the current callback returns: no recursion along the chain.
//!
//! Each link does O(1) work when its last input completes, so forward, backward and random
//! signalling orders all cost O(links). (The kernel keeps one callback per link and re-arms
//! it on the next unsignalled fence, which is quadratic when fences signal backwards.)
//!
//! Garbage collection by a walker may replace `prev` by an older link; the callback already
//! installed on the collected link stays valid (that link completes only after the older
//! one), and on completion it releases whatever `prev` holds then, which has completed too.
//!
//! # Orderings
//! - `pending.fetch_sub` is `AcqRel`: the finisher that completes the link sees the errors
//!   recorded by the other input's callback.

use crate::backend::sealed::Sealed;
use crate::fence::Fence;
use crate::sync::Ordering;

use super::Rcu;

/// Which input of a link a callback is for.
#[derive(Clone, Copy)]
enum Input {
    Own,
    Prev,
}

/// Finishes one input; true if this completed the link.
/// `signaled` is `None` when the input was already gone (collected by a walker, which
/// only happens once everything it stood for has completed).
fn finish(link: &Fence<Rcu>, input: Input, signaled: Option<&Fence<Rcu>>) -> bool {
    let chain = link.as_chain().expect("a chain callback holds its link");
    if let Some(signaled) = signaled {
        crate::trace::member!(link, signaled, own = matches!(input, Input::Own));
        chain.record_error(signaled);
    }
    match input {
        Input::Own => Rcu::member_signaled(&chain.fence),
        Input::Prev => Rcu::member_signaled(&chain.prev),
    }
    // AcqRel: see the module's Orderings.
    chain.pending.fetch_sub(1, Ordering::AcqRel) == 1
}

/// The link's `enable_signaling` hook; `false` if the link is already complete.
pub(crate) fn enable(link: &Fence<Rcu>) -> bool {
    let chain = link.as_chain().expect("chain_enable on a chain");
    for input in [Input::Own, Input::Prev] {
        let member = match input {
            Input::Own => &chain.fence,
            Input::Prev => &chain.prev,
        };
        let Some(fence) = Rcu::member_get(member) else {
            // No `prev` at all is no input; a collected one has completed.
            if matches!(input, Input::Prev) && !chain.had_prev {
                continue;
            }
            if finish(link, input, None) {
                return false;
            }
            continue;
        };
        let l = link.clone();
        let installed = fence.add_callback(move |signaled| {
            if finish(&l, input, Some(signaled)) {
                Rcu::signal_container(l);
            }
        });
        if installed.is_err() && finish(link, input, Some(&fence)) {
            return false;
        }
    }
    // Both inputs now carry a callback: from here the count alone answers `chain::poll`.
    // Release: pairs with its Acquire load.
    chain.counting.store(true, Ordering::Release);
    true
}
