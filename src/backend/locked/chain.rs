//! The classic chain's completion, as the kernel does it: one callback per link, placed on
//! the newest unsignalled own fence at or below the link; when it fires, irq_work re-arms it
//! on the next unsignalled fence (walking from the link again), or signals the link when
//! none is left. With every link enabled and fences signalled backwards, each signal re-arms
//! every waiting link: quadratic in the chain length (the kernel's selftest measures it).

use crate::chain::chain_walk;
use crate::fence::Fence;

use super::Locked;
use super::irq_work::queue_work;

/// The link's `enable_signaling` hook (runs under the link's lock, as in the kernel).
pub(crate) fn enable(link: &Fence<Locked>) -> bool {
    arm(link)
}

/// Installs the link's one callback on the first unsignalled own fence from the link back;
/// false if there is none (everything has signalled).
fn arm(link: &Fence<Locked>) -> bool {
    for node in chain_walk(link) {
        let contained = match node.as_chain() {
            Some(chain) => chain.fence(),
            None => Some(node.clone()),
        };
        let Some(fence) = contained else { continue };
        let head = link.clone();
        let armed = fence.add_callback(move |signaled| {
            // Our divergence from the kernel (whose chain reports no error): the link keeps
            // the first error among the fences it waited on. Earlier links' errors reach it
            // through the walk's collection.
            crate::trace::member!(&head, signaled);
            record_error(&head, signaled);
            // Runs under `fence`'s lock: bounce to irq_work for the re-arm. The re-arm runs
            // without the link's lock, as the kernel's irq_work handler does in 6.x (a 2026
            // lockdep fix wraps it in the lock; a later RFC removes that again).
            queue_work(move || {
                if !arm(&head) {
                    let _ = head.signal();
                }
            });
        });
        if armed.is_ok() {
            return true;
        }
        // Already signalled: it will not call back, so record its error now.
        record_error(link, &fence);
    }
    false
}

/// Records `input`'s error in the chain link `link` (the first one sticks).
fn record_error(link: &Fence<Locked>, input: &Fence<Locked>) {
    if let Some(chain) = link.as_chain() {
        chain.record_error(input);
    }
}
