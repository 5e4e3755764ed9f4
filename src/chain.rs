//! The fence chain (`dma_fence_chain`): one point on a timeline. A link holds the fence for
//! its point and the previous link, and signals once its own fence and every earlier link
//! have signalled.
//!
//! # Protocol
//!
//! - **create**: continues `prev`'s context when `prev` is a chain and `seqno` is later
//!   (then `prev_seqno` = prev's seqno); otherwise a fresh context, with the seqno kept
//!   monotonic (`max(prev.seqno, seqno)`), as the kernel does.
//! - **walk** (`dma_fence_chain_walk`, [`chain_walk`]): yields the head, then each older
//!   link whose own fence has not signalled. A link whose own fence has signalled is
//!   unlinked on the way by a compare-and-swap of the newer link's `prev` (replacing it by
//!   the signalled link's own `prev`); a failed CAS means another walker or a completion
//!   got there first, and the walk re-reads. Readers never take a lock: on `Rcu`, `prev`
//!   and `fence` are RCU slots read under a guard.
//! - **enable_signaling**: backend-specific. `Rcu` installs two callbacks per link, one on
//!   its own fence and one on `prev`, and counts them down; so each link completes in O(1)
//!   work after its last input, and a chain costs O(links) whatever the signalling order.
//!   `Locked` re-arms one callback along the chain as the kernel does (quadratic when the
//!   fences signal backwards).
//! - **errors**: a link reports the first error among its own fence and earlier links
//!   (the kernel's chain reports none; see DESIGN.md, divergences).
//! - **find_seqno**: see [`chain_find_seqno`].

use std::fmt;

use crate::Rcu;
use crate::backend::Backend;
use crate::context::context_alloc;
use crate::error::{Errno, FenceError};
use crate::fence::{Fence, Kind};
use crate::sync::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// A link of a fence chain (`dma_fence_chain`).
///
/// ```
/// use rcu_fence::{FenceChain, Timeline};
/// let tl = Timeline::new("jobs");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let p1 = FenceChain::create(None, a.clone(), 1);
/// let p2 = FenceChain::create(Some(p1.clone()), b.clone(), 2);
/// p2.enable_sw_signaling();
/// b.signal().unwrap();
/// assert!(!p2.is_signaled()); // point 2 needs point 1 too
/// a.signal().unwrap();
/// assert!(p1.is_signaled() && p2.is_signaled());
/// assert_eq!(p2.as_chain().unwrap().prev_seqno(), 1);
/// ```
pub struct FenceChain<B: Backend = Rcu> {
    pub(crate) prev: B::Member,
    pub(crate) fence: B::Member,
    prev_seqno: u64,
    /// True if the link was created with a `prev` (counted in `pending`).
    pub(crate) had_prev: bool,
    /// Inputs not yet complete: the own fence, and `prev` if there was one (Rcu scheme).
    pub(crate) pending: AtomicUsize,
    /// Set once the `Rcu` chain's enable has armed both inputs: from then on `pending` alone
    /// answers `poll`.
    pub(crate) counting: AtomicBool,
    /// The first error among the inputs, or 0.
    first_error: AtomicI32,
}

impl<B: Backend> FenceChain<B> {
    /// A new link for point `seqno`, after `prev` (`dma_fence_chain_init`). Takes both
    /// references. On `Locked`, a chain as `fence` is counted as a nesting warning.
    pub fn create(prev: Option<Fence<B>>, fence: Fence<B>, seqno: u64) -> Fence<B> {
        let prev_chain = prev.as_ref().filter(|p| p.as_chain().is_some());
        let (context, prev_seqno, seqno) = match prev_chain {
            Some(p) if seqno > p.seqno() => (p.context(), p.seqno(), seqno),
            Some(p) => (context_alloc(1), 0, p.seqno().max(seqno)),
            None => (context_alloc(1), 0, seqno),
        };
        B::check_nesting("chain", &[&fence]);
        let inputs = 1 + usize::from(prev.is_some());
        let link = FenceChain {
            prev: B::member_new(prev),
            fence: B::member_new(Some(fence)),
            prev_seqno,
            had_prev: inputs == 2,
            pending: AtomicUsize::new(inputs),
            counting: AtomicBool::new(false),
            first_error: AtomicI32::new(0),
        };
        Fence::new_pending(context, seqno, true, Kind::Chain(Box::new(link)))
    }

    /// The point's own fence, while the link still holds it (`dma_fence_chain_contained`).
    pub fn fence(&self) -> Option<Fence<B>> {
        B::member_get(&self.fence)
    }

    /// The previous link (or plain fence), while held.
    pub fn prev(&self) -> Option<Fence<B>> {
        B::member_get(&self.prev)
    }

    /// The seqno of the previous link when this one was created (kept across collection).
    pub fn prev_seqno(&self) -> u64 {
        self.prev_seqno
    }

    /// True if the link's own fence has signalled (released counts as signalled).
    pub(crate) fn own_fence_done(&self) -> bool {
        match B::member_get(&self.fence) {
            Some(f) => f.test_signaled_flag() || (!f.is_container() && f.is_signaled()),
            None => true,
        }
    }

    /// The first error recorded among the inputs.
    pub(crate) fn recorded_error(&self) -> Option<Errno> {
        // Acquire: pairs with the recording CAS.
        Errno::new(self.first_error.load(Ordering::Acquire))
    }

    /// Records an error (the first one sticks).
    pub(crate) fn record_errno(&self, e: Errno) {
        // AcqRel: the completing finisher must see it (release sequence on `pending`).
        let _ = self
            .first_error
            .compare_exchange(0, e.get(), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Records an input's error (the first one sticks).
    pub(crate) fn record_error(&self, input: &Fence<B>) {
        if let Some(e) = input.error() {
            self.record_errno(e);
        }
    }
}

impl<B: Backend> fmt::Debug for FenceChain<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceChain")
            .field("prev_seqno", &self.prev_seqno)
            .field("holds_prev", &B::member_is_held(&self.prev))
            .field("holds_fence", &B::member_is_held(&self.fence))
            .finish()
    }
}

/// Walks a chain from `head` (`dma_fence_chain_for_each`): the head itself, then each older
/// link whose own fence has not signalled, collecting signalled links on the way; a plain
/// (non-chain) `prev` ends the walk as its last item. A non-chain `head` yields only itself.
///
/// ```
/// use rcu_fence::{FenceChain, Timeline, chain_walk};
/// let tl = Timeline::new("jobs");
/// let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
/// let mut head = None;
/// for (i, f) in fences.iter().enumerate() {
///     head = Some(FenceChain::create(head, f.clone(), i as u64 + 1));
/// }
/// let head = head.unwrap();
/// fences[1].signal().unwrap(); // point 2's own fence
/// let seqnos: Vec<u64> = chain_walk(&head).map(|l| l.seqno()).collect();
/// assert_eq!(seqnos, [3, 1]); // point 2 was collected
/// ```
pub fn chain_walk<B: Backend>(head: &Fence<B>) -> ChainWalk<B> {
    ChainWalk {
        next: Some(head.clone()),
    }
}

/// The iterator returned by [`chain_walk`]; it holds a reference to the current link only.
///
/// ```
/// use rcu_fence::{FenceChain, Timeline, chain_walk};
/// let tl = Timeline::new("jobs");
/// let p1 = FenceChain::create(None, tl.fence(1), 1);
/// let p2 = FenceChain::create(Some(p1), tl.fence(2), 2);
/// let mut walk = chain_walk(&p2);
/// assert_eq!(walk.next().map(|l| l.seqno()), Some(2));
/// assert_eq!(walk.next().map(|l| l.seqno()), Some(1));
/// assert!(walk.next().is_none());
/// ```
pub struct ChainWalk<B: Backend = Rcu> {
    next: Option<Fence<B>>,
}

impl<B: Backend> Iterator for ChainWalk<B> {
    type Item = Fence<B>;

    fn next(&mut self) -> Option<Fence<B>> {
        let current = self.next.take()?;
        self.next = walk_step(&current);
        Some(current)
    }
}

impl<B: Backend> fmt::Debug for ChainWalk<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainWalk")
            .field("next", &self.next)
            .finish()
    }
}

/// `dma_fence_chain_walk`: the next older item after `current` that is not yet collected.
fn walk_step<B: Backend>(current: &Fence<B>) -> Option<Fence<B>> {
    let chain = current.as_chain()?;
    loop {
        let prev = B::member_get(&chain.prev)?;
        let replacement = match prev.as_chain() {
            Some(prev_chain) => {
                if !prev_chain.own_fence_done() {
                    return Some(prev);
                }
                // Read order matters: the collected link's callbacks record an input's
                // error *before* they release that input, so each slot is read first and
                // the recorded error after it. An empty slot read here then comes with
                // the error recorded before it was emptied; a full one keeps that input
                // (and so its error) reachable from the newer link.
                let replacement = B::member_get(&prev_chain.prev);
                if let Some(own) = B::member_get(&prev_chain.fence) {
                    chain.record_error(&own);
                }
                if let Some(e) = prev_chain.recorded_error() {
                    chain.record_errno(e);
                }
                replacement
            }
            None => {
                if !(prev.test_signaled_flag() || (!prev.is_container() && prev.is_signaled())) {
                    return Some(prev);
                }
                chain.record_error(&prev);
                None
            }
        };
        // Unlink the signalled `prev`; on failure someone else changed it: re-read.
        B::member_replace(&chain.prev, &prev, replacement);
    }
}

/// Finds the link whose completion completes every point up to `seqno`
/// (`dma_fence_chain_find_seqno`): walking from `head`, the first link whose previous seqno
/// is below `seqno` (or which is on another context), collecting signalled links on the way.
///
/// `Ok(None)`: every point up to `seqno` has already signalled. `seqno == 0`: `head` itself.
/// `Err(InvalidSeqno)`: `head` is not a chain, or `seqno` is past the head.
///
/// ```
/// use rcu_fence::{FenceChain, Timeline, chain_find_seqno};
/// let tl = Timeline::new("jobs");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let p1 = FenceChain::create(None, a.clone(), 1);
/// let p2 = FenceChain::create(Some(p1.clone()), b.clone(), 2);
/// assert!(chain_find_seqno(&p2, 1).unwrap().unwrap().ptr_eq(&p1));
/// assert!(chain_find_seqno(&p2, 3).is_err());
/// a.signal().unwrap();
/// assert!(chain_find_seqno(&p2, 1).unwrap().is_none() || p1.is_signaled());
/// ```
pub fn chain_find_seqno<B: Backend>(
    head: &Fence<B>,
    seqno: u64,
) -> Result<Option<Fence<B>>, FenceError> {
    if seqno == 0 {
        return Ok(Some(head.clone()));
    }
    if head.as_chain().is_none() || head.seqno() < seqno {
        return Err(FenceError::InvalidSeqno);
    }
    for node in chain_walk(head) {
        match node.as_chain() {
            Some(link) if node.context() == head.context() && link.prev_seqno() >= seqno => {
                continue;
            }
            _ => return Ok(Some(node)),
        }
    }
    Ok(None)
}

/// The chain's `signaled` polling hook: every own fence from the head back has signalled.
pub(crate) fn poll<B: Backend>(head: &Fence<B>) -> bool {
    if let Some(link) = head.as_chain() {
        // Acquire: pairs with the completing input's AcqRel decrement.
        if link.pending.load(Ordering::Acquire) == 0 {
            return true;
        }
        // The `Rcu` chain counts its inputs down once enabled: the count decides, in one
        // load, and never ahead of the callbacks that record the inputs' errors.
        // Acquire: pairs with the Release store in the `Rcu` chain's enable.
        if link.counting.load(Ordering::Acquire) {
            return false;
        }
    }
    let head_link = head
        .as_chain()
        .expect("a chain's poll hook is called on a chain");
    let done = |f: &Fence<B>| f.test_signaled_flag() || (!f.is_container() && f.is_signaled());
    // A signalled fence's flag is set before its callbacks run, so the link's callback may
    // not have recorded its error yet: record what we see before answering "signalled".
    chain_walk(head).all(|node| match node.as_chain() {
        Some(link) => {
            let finished = match link.fence() {
                Some(own) => {
                    let finished = done(&own);
                    if finished {
                        head_link.record_error(&own);
                    }
                    finished
                }
                None => true,
            };
            if finished {
                if let Some(e) = link.recorded_error() {
                    head_link.record_errno(e);
                }
            }
            finished
        }
        None => {
            let finished = done(&node);
            if finished {
                head_link.record_error(&node);
            }
            finished
        }
    })
}
