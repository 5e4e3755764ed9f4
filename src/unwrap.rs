//! Iterating the leaf fences inside any container (`dma_fence_unwrap`), and merging a set
//! of fences into one flat fence (`dma_fence_unwrap_merge`).
//!
//! [`Unwrap`] keeps an explicit stack of cursors (one per container being iterated), so it
//! descends any nesting depth with constant call stack; each cursor holds a reference to its
//! container. A chain is walked with [`chain_walk`](crate::chain_walk), which collects
//! signalled links; on schemes whose links hold their own fences in RCU slots its cursor
//! also holds the next link's own fence, taken with the link, so a fence released in the
//! meantime is still yielded (signalled, its error noted). Leaves are yielded as new
//! references.
//!
//! Errors are not lost: a container that releases its signalled members (the `Rcu`
//! backend) keeps their first error, and so does a collected chain link. [`Unwrap::error`]
//! reports the first error seen so far among the containers and signalled leaves visited;
//! [`merge`] carries it into its result.

use std::fmt;
use std::time::Instant;

use smallvec::SmallVec;

use crate::array::FenceArray;
use crate::backend::{Backend, Rcu};
use crate::chain::{ChainWalk, chain_walk, recorded_error_of};
use crate::error::{Errno, FenceError};
use crate::fence::{Fence, context_alloc, seqno_is_later};

enum Cursor<B: Backend> {
    One(Option<Fence<B>>),
    Array { array: Fence<B>, next: usize },
    Chain(ChainWalk<B>),
}

/// The iterator returned by [`unwrap`]; it also reports the first error it has seen.
///
/// ```
/// use rcu_fence::{Errno, FenceArray, Timeline, context_alloc, unwrap};
/// let tl = Timeline::new("gpu");
/// let failed = tl.fence(1);
/// failed.set_error(Errno::ETIME).unwrap();
/// failed.signal().unwrap();
/// let array = FenceArray::create(vec![failed, tl.fence(2)], context_alloc(1), 1, false).unwrap();
/// let mut leaves = unwrap(&array);
/// assert_eq!(leaves.by_ref().count(), 2);
/// assert_eq!(leaves.error(), Some(Errno::ETIME));
/// ```
pub struct Unwrap<B: Backend = Rcu> {
    /// One cursor per container level; inline for the first few levels, so that unwrapping
    /// a plain fence or a flat container allocates nothing.
    stack: SmallVec<[Cursor<B>; 4]>,
    error: Option<Errno>,
}

/// Iterates the leaf (non-container) fences inside `fence`, at any depth, with constant
/// stack (`dma_fence_unwrap_for_each`; the kernel's name: [`Fence::leaves`] and
/// [`unwrap_leaves`] are the same under clearer names): a plain fence yields itself; an array its members
/// in order; a chain, newest link first, each unsignalled link's own fence (the head's
/// always). Nested containers are descended into.
///
/// ```
/// use rcu_fence::{FenceArray, Timeline, context_alloc, unwrap};
/// let tl = Timeline::new("gpu");
/// let (a, b, c) = (tl.fence(1), tl.fence(2), tl.fence(3));
/// let inner = FenceArray::create(vec![a, b], context_alloc(1), 1, false).unwrap();
/// let outer = FenceArray::create(vec![inner, c], context_alloc(1), 1, false).unwrap();
/// let seqnos: Vec<u64> = unwrap(&outer).map(|f| f.seqno()).collect();
/// assert_eq!(seqnos, [1, 2, 3]);
/// ```
pub fn unwrap<B: Backend>(fence: &Fence<B>) -> Unwrap<B> {
    let mut stack = SmallVec::new();
    stack.push(Cursor::One(Some(fence.clone())));
    Unwrap { stack, error: None }
}

/// [`unwrap`] under a name that does not read like `Option::unwrap` at call sites: the
/// leaf fences inside `fence`. See also [`Fence::leaves`].
///
/// ```
/// use rcu_fence::{FenceArray, Timeline, unwrap_leaves};
/// let tl = Timeline::new("gpu");
/// let array = FenceArray::all([tl.fence(1), tl.fence(2)]).unwrap();
/// assert_eq!(unwrap_leaves(&array).count(), 2);
/// ```
pub fn unwrap_leaves<B: Backend>(fence: &Fence<B>) -> Unwrap<B> {
    unwrap(fence)
}

impl<B: Backend> Fence<B> {
    /// The leaf (non-container) fences inside this one, at any depth: [`unwrap`]
    /// (`dma_fence_unwrap_for_each`) as a method. A plain fence yields itself.
    ///
    /// ```
    /// use rcu_fence::{FenceArray, FenceChain, Timeline};
    /// let tl = Timeline::new("gpu");
    /// let array = FenceArray::all([tl.fence(1), tl.fence(2)]).unwrap();
    /// let link = FenceChain::create(None, array, 1);
    /// let seqnos: Vec<u64> = link.leaves().map(|f| f.seqno()).collect();
    /// assert_eq!(seqnos, [1, 2]);
    /// ```
    pub fn leaves(&self) -> Unwrap<B> {
        unwrap(self)
    }
}

impl<B: Backend> Unwrap<B> {
    /// The first error seen so far among visited containers (including members they have
    /// already released) and signalled leaves.
    pub fn error(&self) -> Option<Errno> {
        self.error
    }

    fn note(&mut self, error: Option<Errno>) {
        if self.error.is_none() {
            self.error = error;
        }
    }
}

impl<B: Backend> Iterator for Unwrap<B> {
    type Item = Fence<B>;

    fn next(&mut self) -> Option<Fence<B>> {
        loop {
            // Read order (here and in the chain walk): a container records a member's
            // error *before* it releases the member, so a slot is read first and the
            // recorded error after it; a released member (an empty slot, or on `Rcu` a weak
            // reference that no longer upgrades) then comes with its error.
            let mut recorded = None;
            let candidate = match self.stack.last_mut()? {
                Cursor::One(slot) => slot.take(),
                Cursor::Array { array, next } => {
                    let members = array.as_array().expect("an array cursor holds an array");
                    let mut found = None;
                    while *next < members.num_fences() && found.is_none() {
                        found = members.fence(*next);
                        if found.is_none() {
                            // Released since the cursor was pushed: its error is recorded.
                            recorded = recorded.or(array.recorded_error());
                        }
                        *next += 1;
                    }
                    found
                }
                Cursor::Chain(walk) => match walk.next_with_own() {
                    // A link stands for its own fence; a released one has signalled. The
                    // walk has just collected the signalled links behind this one and
                    // recorded their errors in it, so note its error whatever it yields.
                    // The own fence is read before the error (the step's read, if it took
                    // one, came before it too).
                    Some((link, taken)) => match link.as_chain() {
                        Some(chain) => {
                            let own = taken.or_else(|| chain.fence());
                            recorded = recorded_error_of(&link);
                            match own {
                                Some(own) => Some(own),
                                None => {
                                    self.note(recorded);
                                    continue;
                                }
                            }
                        }
                        None => Some(link),
                    },
                    None => None,
                },
            };
            self.note(recorded);
            let Some(fence) = candidate else {
                self.stack.pop();
                continue;
            };
            if fence.as_array().is_some() {
                self.note(fence.recorded_error());
                self.stack.push(Cursor::Array {
                    array: fence,
                    next: 0,
                });
            } else if fence.as_chain().is_some() {
                self.note(recorded_error_of(&fence));
                self.stack.push(Cursor::Chain(chain_walk(&fence)));
            } else {
                if fence.test_signaled_flag() {
                    self.note(fence.error());
                }
                return Some(fence);
            }
        }
    }
}

impl<B: Backend> Fence<B> {
    /// Passes a deadline hint to the producer (`dma_fence_set_deadline`); no-op once
    /// signalled. A container forwards it to its unsignalled leaves, as the kernel's array
    /// and chain forward it to their members (here iteratively, at any depth).
    pub fn set_deadline(&self, deadline: Instant) {
        if self.test_signaled_flag() {
            return;
        }
        if !self.is_container() {
            self.ops().set_deadline(self, deadline);
            return;
        }
        for leaf in unwrap(self) {
            if !leaf.test_signaled_flag() {
                leaf.ops().set_deadline(&leaf, deadline);
            }
        }
    }
}

impl<B: Backend> fmt::Debug for Unwrap<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unwrap")
            .field("depth", &self.stack.len())
            .field("error", &self.error)
            .finish()
    }
}

/// Merges `fences` into one flat fence (`dma_fence_unwrap_merge`). Inputs are not consumed.
///
/// What it keeps, as the kernel does:
/// - every input is unwrapped to its leaves ([`unwrap`]);
/// - leaves already signalled are left out;
/// - of the pending leaves, **one per context remains: the latest** (the later seqno). An
///   earlier pending fence of the same timeline is dropped from the result, on the rule
///   that a timeline signals in order (see [`Timeline`](crate::Timeline)), so the later
///   fence completes after it;
/// - the result is a signalled stub if nothing is left, the single remaining fence if one
///   is left, and otherwise a new array over what is left, sorted by context.
///
/// Errors: the first error among the leaves it **left out because they had signalled**
/// (from a signalled leaf, or recorded by a container for a member it has released) is
/// carried by the result (the kernel drops it): the stub is signalled with it, and a single
/// remaining fence is then wrapped in a one-member array that carries it. But an error of
/// a fence dropped **because a later fence of its timeline was kept** is not seen: if that
/// earlier fence fails after the merge, the result reports only the later fence's own
/// outcome. To wait for every fence and report the first error among all of them, build
/// [`FenceArray::all`] over the fences instead.
///
/// ```
/// use rcu_fence::{Errno, Status, Timeline, merge};
/// let tl = Timeline::new("gpu");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let merged = merge(&[a.clone(), b.clone()]).unwrap();
/// assert!(merged.ptr_eq(&b)); // one context: the later seqno wins
///
/// let failed = tl.fence(3);
/// failed.set_error(Errno::ETIME).unwrap();
/// failed.signal().unwrap();
/// let m = merge(&[failed]).unwrap();
/// assert_eq!(m.status(), Status::Error(Errno::ETIME));
///
/// // An earlier pending fence of a timeline is dropped for the later one: its error, set
/// // after the merge, is not seen. `FenceArray::all` keeps it.
/// let (c, d) = (tl.fence(4), tl.fence(5));
/// let merged = merge(&[c.clone(), d.clone()]).unwrap();
/// let all = rcu_fence::FenceArray::all([c.clone(), d.clone()]).unwrap();
/// c.set_error(Errno::EIO).unwrap();
/// c.signal().unwrap();
/// d.signal().unwrap();
/// assert_eq!(merged.status(), Status::Signaled);
/// assert_eq!(all.status(), Status::Error(Errno::EIO));
/// ```
pub fn merge<B: Backend>(fences: &[Fence<B>]) -> Result<Fence<B>, FenceError> {
    // Inline for the common case (most merges have one to three inputs): the only
    // allocations are then the result's.
    let mut pending: SmallVec<[Fence<B>; 8]> = SmallVec::new();
    let mut error = None;
    let mut latest: Option<Instant> = None;
    for input in fences {
        let mut leaves = unwrap(input);
        for leaf in &mut leaves {
            if leaf.is_signaled() {
                error = error.or(leaf.error());
                latest = latest.max(leaf.timestamp());
            } else {
                keep_latest(&mut pending, leaf);
            }
        }
        error = error.or(leaves.error());
    }
    // Context ascending; within a context the later seqno first; then keep the first.
    // (Unstable, as the kernel's heap sort: equal keys are the same point of a timeline.)
    pending.sort_unstable_by(|a, b| {
        a.context().cmp(&b.context()).then_with(|| {
            if is_later(a, b) {
                std::cmp::Ordering::Less
            } else if is_later(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
    pending.dedup_by(|later, first| later.context() == first.context());
    match (pending.len(), error) {
        (0, _) => {
            let stub = crate::fence::private_stub_pending::<B>();
            if let Some(e) = error {
                let _ = stub.set_error(e);
            }
            let _ = stub.signal_timestamp(latest.unwrap_or_else(Instant::now));
            Ok(stub)
        }
        (1, None) => Ok(pending.pop().expect("one fence")),
        _ => {
            let array = FenceArray::from_members(pending.into_iter(), context_alloc(1), 1, false)?;
            if let Some(e) = error {
                let _ = array.set_error(e);
            }
            Ok(array)
        }
    }
}

/// Whether `a` is a later point than `b` of their (shared) context.
fn is_later<B: Backend>(a: &Fence<B>, b: &Fence<B>) -> bool {
    seqno_is_later(a.seqno(), b.seqno(), a.is_seqno64())
}

/// Adds a pending leaf to `merge`'s list, keeping only the later of two points of one
/// context while the list is short: a timeline syncobj point unwraps to every pending point
/// below it, all of one context, so most merges end with a few fences after passing
/// dozens. The scan stops at the inline capacity (many contexts would make it quadratic);
/// past it leaves are appended and the sort and dedup after the loop give the same result,
/// for the points of a context within 2^31 of each other as the timeline contract requires
/// of 32-bit seqnos (beyond it "later" is not an order, and neither answer is right).
fn keep_latest<B: Backend>(pending: &mut SmallVec<[Fence<B>; 8]>, leaf: Fence<B>) {
    if pending.len() <= pending.inline_size() {
        if let Some(kept) = pending.iter_mut().find(|f| f.context() == leaf.context()) {
            if is_later(&leaf, kept) {
                *kept = leaf;
            }
            return;
        }
    }
    pending.push(leaf);
}
