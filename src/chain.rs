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
//! - **errors**: a link reports the error of the *earliest failed point* at or below it:
//!   among its own fence and every earlier link, the one with the smallest point (the
//!   kernel's chain reports none; see DESIGN.md, divergences). Each error travels with the
//!   point it came from (a [`Failure`]: the point, the point before it, the code), so that
//!   whoever records it (an input's callback, a walker collecting a signalled link, a poll)
//!   and in whatever order, the link keeps the smallest point's: the answer does not depend
//!   on timing. It is recorded in the link while pending (under the link's small lock) and
//!   given to the link's fence by whoever signals the link, once every input is complete
//!   (so an error set on the link itself with `set_error` stays, as on an array). A plain
//!   (non-chain) `prev` counts as point 0, before every link.
//!
//! # Orderings
//! - `failed` is stored with `Release` after a failure is recorded, and loaded with
//!   `Acquire` before reading it: read order as for errors (an input's failure is recorded
//!   before the input is released, so a walker that reads an emptied slot sees it).
//! - **find_seqno**: see [`chain_find_seqno`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc as StdArc;

use crate::backend::state::Birth;
use crate::backend::{
    Backend, ChainStateOf, ContainerKind, Hold, MemberOf, MemberScheme, MembersOf, Rcu,
};
use crate::error::{Errno, FenceError};
use crate::fence::{Fence, FenceOps, context_alloc};
use crate::sync::{AtomicBool, Mutex, Ordering};

/// A point's failure as a chain records it: the code, the point it came from, and that
/// point's previous point (`prev_seqno`; what tells a sync object which values the failed
/// point completes). A plain `prev` fence's failure is point 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) point: u64,
    pub(crate) after: u64,
    pub(crate) error: Errno,
}

impl Failure {
    /// The failure of the point `link` stands for, if `own` (its own fence) failed.
    fn own<B: Backend>(link: &Fence<B>, chain: &FenceChain<B>, own: &Fence<B>) -> Option<Self> {
        own.error().map(|error| Failure {
            point: link.seqno(),
            after: chain.prev_seqno,
            error,
        })
    }

    /// A plain `prev` fence's failure: point 0, before every link.
    fn plain<B: Backend>(fence: &Fence<B>) -> Option<Self> {
        fence.error().map(|error| Failure {
            point: 0,
            after: 0,
            error,
        })
    }
}

/// A link of a fence chain (`dma_fence_chain`): one point on a timeline, which signals
/// once its own fence and every earlier point have signalled.
///
/// # Errors
/// **A link reports the error of the earliest failed point at or below it** (the smallest
/// point whose own fence failed, a plain `prev` fence counting as point 0), or none. So
/// after point 3 fails, links 3, 4, ... report 3's error even where their own fence
/// succeeded, links 1 and 2 report none, and a later failure at point 5 does not change
/// what 5 reports. The answer does not depend on the order in which the points signal or
/// fail, nor on when the link is enabled or polled: each failure is recorded with its
/// point, and the link keeps the earliest. (The kernel's chain carries no errors; ours
/// carries them forward so that a waiter on a point learns that the work it depends on
/// failed. [`Syncobj`](crate::Syncobj) timelines follow the same rule.)
///
/// The error reaches the link when its inputs complete it. A link signalled by hand (with
/// [`Fence::signal`] on the link) reports only an error set on it by hand, as a link with
/// such an error keeps it.
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
    /// The previous link or plain fence: an RCU pointer on every scheme, as in the kernel
    /// (walkers replace it by compare-and-swap to collect signalled links).
    prev: rcu::Slot<Fence<B>>,
    /// The point's own fence, held as the scheme holds members.
    fence: MemberOf<B>,
    prev_seqno: u64,
    /// The scheme's completion state (`Rcu`: two counted callbacks; `Locked`: one re-armed).
    scheme: ChainStateOf<B>,
    /// The earliest failure recorded so far (see the module docs: errors). Taken only to
    /// record or read a failure.
    failure: Mutex<Option<Failure>>,
    /// Set once `failure` holds one: readers skip the lock while it is clear.
    failed: AtomicBool,
}

/// The link as its fence's hooks.
struct ChainOps<B: Backend>(FenceChain<B>);

impl<B: Backend> Fence<B> {
    /// The chain link behind this fence, if it is one (`to_dma_fence_chain`).
    pub fn as_chain(&self) -> Option<&FenceChain<B>> {
        self.ops_as::<ChainOps<B>>().map(|ops| &ops.0)
    }
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
        MembersOf::<B>::admit(ContainerKind::Chain, &fence);
        let link = FenceChain {
            scheme: MembersOf::<B>::new_chain_state(prev.is_some()),
            prev: rcu::Slot::new(prev),
            fence: <MemberOf<B> as Hold<B>>::hold(fence),
            prev_seqno,
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
        };
        Fence::new(
            context,
            seqno,
            StdArc::new(ChainOps(link)),
            Birth {
                seqno64: true,
                container: true,
                inert: false,
                polls: true,
                signaled_at: None,
            },
        )
    }

    /// The point's own fence, while the link still holds it (`dma_fence_chain_contained`).
    pub fn fence(&self) -> Option<Fence<B>> {
        self.fence.get()
    }

    /// The previous link (or plain fence), while held.
    pub fn prev(&self) -> Option<Fence<B>> {
        self.prev.load_clone()
    }

    /// The seqno of the previous link when this one was created (kept across collection).
    pub fn prev_seqno(&self) -> u64 {
        self.prev_seqno
    }

    /// The scheme's hold on the own fence (for the scheme's completion code).
    pub(crate) fn own_member(&self) -> &MemberOf<B> {
        &self.fence
    }

    /// The `prev` slot (for the scheme's completion code).
    pub(crate) fn prev_slot(&self) -> &rcu::Slot<Fence<B>> {
        &self.prev
    }

    /// The scheme's completion state.
    pub(crate) fn scheme(&self) -> &ChainStateOf<B> {
        &self.scheme
    }

    /// The earliest failure recorded on this link so far (final once it has signalled).
    pub(crate) fn failure(&self) -> Option<Failure> {
        // Acquire: pairs with `record_failure`'s Release store.
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        *self.failure.lock()
    }
}

/// The failure a chain item carries, with its point: a link's recorded failure (or, if it
/// has none, an error set on it directly with `set_error`, as the failure of its own
/// point), or a plain fence's error as point 0.
pub(crate) fn failure_of<B: Backend>(item: &Fence<B>) -> Option<Failure> {
    match item.as_chain() {
        Some(chain) => chain.failure().or_else(|| {
            item.recorded_error().map(|error| Failure {
                point: item.seqno(),
                after: chain.prev_seqno,
                error,
            })
        }),
        None => Failure::plain(item),
    }
}

/// The error a container reports so far, pending or not: a link's earliest recorded
/// failure (see [`failure_of`]), an array's recorded error.
pub(crate) fn recorded_error_of<B: Backend>(fence: &Fence<B>) -> Option<Errno> {
    match fence.as_chain() {
        Some(_) => failure_of(fence).map(|f| f.error),
        None => fence.recorded_error(),
    }
}

/// Records `failure` on the chain link `link` unless it already has an earlier one (a
/// smaller point; the first of equal points stays). Nothing changes once the link has
/// signalled (its error is final); the failure reaches the link's fence when it signals
/// ([`apply_failure`]).
pub(crate) fn record_failure<B: Backend>(link: &Fence<B>, failure: Option<Failure>) {
    let (Some(failure), Some(chain)) = (failure, link.as_chain()) else {
        return;
    };
    if link.test_signaled_flag() {
        return;
    }
    let mut recorded = chain.failure.lock();
    if recorded.is_some_and(|r| r.point <= failure.point) {
        return;
    }
    *recorded = Some(failure);
    // Release: publishes the failure to `failure`'s Acquire load (which skips the lock
    // while the flag is clear).
    chain.failed.store(true, Ordering::Release);
}

/// Called by whoever is about to signal the link `link` (every input complete): gives its
/// fence the earliest failure's code, unless an error was set on it directly.
pub(crate) fn apply_failure<B: Backend>(link: &Fence<B>) {
    if let Some(chain) = link.as_chain() {
        link.record_error(chain.failure().map(|f| f.error));
    }
}

/// Records the failure of one of `link`'s inputs, after it signalled: its own fence
/// (`own`), or its `prev` (a link, or a plain fence). For the schemes' completion code.
pub(crate) fn record_input<B: Backend>(link: &Fence<B>, input: &Fence<B>, own: bool) {
    let Some(chain) = link.as_chain() else {
        return;
    };
    let failure = if own {
        Failure::own(link, chain, input)
    } else {
        failure_of(input)
    };
    record_failure(link, failure);
}

/// Records, on `link`, the failure of the collected (or finished) link `item`: its own
/// fence's and the failures it had recorded; or a plain fence's, as point 0.
pub(crate) fn record_item<B: Backend>(link: &Fence<B>, item: &Fence<B>) {
    match item.as_chain() {
        Some(chain) => {
            if let Some(own) = chain.fence() {
                record_failure(link, Failure::own(item, chain, &own));
            }
            record_failure(link, failure_of(item));
        }
        None => record_failure(link, Failure::plain(item)),
    }
}

impl<B: Backend> Drop for FenceChain<B> {
    /// The kernel's `dma_fence_chain_release` loop: while `prev` is a chain link held only
    /// here, steal its `prev` and free the link, whose own release then has no `prev` to
    /// recurse into; stop at a shared or non-chain fence and drop that reference. So a long
    /// chain is freed in constant stack on every scheme (the schemes that flatten drops do
    /// not need it; it costs them nothing).
    fn drop(&mut self) {
        let mut next = std::mem::take(&mut self.prev).into_inner();
        while let Some(mut fence) = next.take() {
            if fence.is_unique() {
                if let Some(link) = fence.as_chain() {
                    // SAFETY: `fence` is the only reference to that link: no other handle,
                    // no slot (a slot's reference, even retired, would count) and no weak
                    // reference (which a reader could upgrade), so no reader can reach its
                    // `prev` any more.
                    next = unsafe { link.prev.take_unshared() };
                }
            }
            drop(fence);
        }
    }
}

impl<B: Backend> FenceOps<B> for ChainOps<B> {
    fn driver_name(&self) -> &str {
        "dma_fence_chain"
    }

    fn timeline_name(&self) -> &str {
        "unbound"
    }

    fn enable_signaling(&self, fence: &Fence<B>) -> bool {
        MembersOf::<B>::chain_enable(fence)
    }

    fn signaled(&self, fence: &Fence<B>) -> bool {
        poll(fence)
    }
}

impl<B: Backend> fmt::Debug for FenceChain<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceChain")
            .field("prev_seqno", &self.prev_seqno)
            .field("holds_prev", &!self.prev.is_empty())
            .field("holds_fence", &self.fence.is_held())
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
        next_own: None,
    }
}

/// The iterator returned by [`chain_walk`]; between calls it holds a reference to the next
/// link only.
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
    /// The next link's own fence, if the step that found the link took it (only
    /// [`ChainWalk::next_with_own`] steps take it).
    next_own: Option<Fence<B>>,
}

impl<B: Backend> ChainWalk<B> {
    /// The next item, with its own fence if the step that found it took a reference to it:
    /// where a link holds its own fence in an RCU slot, each step takes a pending link's
    /// own fence in the section it reads the link in (one pin per link instead of two);
    /// elsewhere as [`Iterator::next`]. `None` does not mean the link has none.
    pub(crate) fn next_with_own(&mut self) -> Option<(Fence<B>, Option<Fence<B>>)> {
        if !<MemberOf<B> as Hold<B>>::READS_SLOT {
            return self.next().map(|link| (link, None));
        }
        let current = self.next.take()?;
        let own = self.next_own.take();
        if let Some((next, next_own)) = walk_step_own::<B, true>(&current) {
            self.next = Some(next);
            self.next_own = next_own;
        }
        Some((current, own))
    }
}

impl<B: Backend> Iterator for ChainWalk<B> {
    type Item = Fence<B>;

    fn next(&mut self) -> Option<Fence<B>> {
        let current = self.next.take()?;
        // Only `next_with_own` fills it (for the link now current): not wanted here.
        self.next_own = None;
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
    walk_step_own::<B, false>(current).map(|(next, _)| next)
}

/// [`walk_step`], with the found link's own fence if the step took a reference to it: to
/// see whether it has signalled, or, with `TAKE_OWN`, for a caller that wants it (one
/// read-side section for both reads, where two would each pin).
fn walk_step_own<B: Backend, const TAKE_OWN: bool>(
    current: &Fence<B>,
) -> Option<(Fence<B>, Option<Fence<B>>)> {
    let chain = current.as_chain()?;
    loop {
        // One read-side section for both slot reads of the step (`prev` and, on schemes that
        // hold members in RCU slots, its own fence): each would otherwise pin on its own, and
        // the pin (a full fence) is most of a read's cost. Only clones leave the section;
        // nothing is dropped or polled inside it (a poll may run callbacks, which must not
        // run in a reader's section).
        let mut guard = rcu::pin::<rcu::DefaultReclaimer>();
        let prev = chain.prev.load(&mut guard).map(|p| Fence::clone(&p))?;
        let replacement = match prev.as_chain() {
            Some(prev_chain) => {
                // Its own fence has signalled (released counts as signalled)? Its flag
                // answers without a reference, as the kernel's walk reads it; only a
                // driver's poll needs one, taken to leave the section.
                let answer = prev_chain.fence.signaled_in(&mut guard);
                let own = match answer {
                    None => prev_chain.fence.get_in(&mut guard),
                    // A caller after the own fence of a pending link: take it in this
                    // section rather than in a section of its own later.
                    Some(false) if TAKE_OWN => prev_chain.fence.get_in(&mut guard),
                    Some(_) => None,
                };
                drop(guard);
                let signaled =
                    answer.unwrap_or_else(|| own.as_ref().is_none_or(|f| f.is_signaled_shallow()));
                if !signaled {
                    return Some((prev, own));
                }
                // Read order matters: the collected link's callbacks record an input's
                // failure *before* they release that input, so each slot is read first
                // and the recorded failure after it (`record_item` reads the own slot,
                // then the failure). An empty slot read here then comes with the failure
                // recorded before it was emptied; a full one keeps that input (and so its
                // failure) reachable from the newer link.
                let replacement = prev_chain.prev();
                record_item(current, &prev);
                replacement
            }
            None => {
                drop(guard);
                if !prev.is_signaled_shallow() {
                    return Some((prev, None));
                }
                record_item(current, &prev);
                None
            }
        };
        // Unlink the signalled `prev`; on failure someone else changed it: re-read.
        let _ = chain
            .prev
            .compare_exchange(prev.addr() as *const (), replacement);
    }
}

/// Finds the link whose completion completes every point up to `seqno`
/// (`dma_fence_chain_find_seqno`): walking from `head`, the first link whose previous seqno
/// is below `seqno` (or which is on another context), collecting signalled links on the way
/// there (not past it).
///
/// `Ok(None)`: every point up to `seqno` has already signalled. `seqno == 0`: `head` itself.
/// `Err(InvalidSeqno)`: `head` is not a chain, or `seqno` is past the head.
///
/// On `Rcu` the lookup takes no reference to the pending links it passes whose own fences
/// answer from their flag (containers, and fences whose ops do not poll:
/// [`FenceOps::polls`]); the answer is the same on every backend.
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
    Ok(seek(head, seqno).found)
}

/// Where a lookup of `point` from `head` stops (the walk of `dma_fence_chain_find_seqno`).
pub(crate) struct Seek<B: Backend> {
    /// The last node the walk passed (a link of `head`'s context whose previous point is
    /// `point` or later); `None` if it stopped at `head`.
    pub(crate) above: Option<Fence<B>>,
    /// The first node it did not pass; `None` if the walk ran out (every point up to
    /// `point` has signalled).
    pub(crate) found: Option<Fence<B>>,
}

/// Walks from `head` as [`chain_walk`] does, collecting signalled links on the way, to the
/// first node that is not a link of `head`'s context with a previous point at or after
/// `point`, and stops there, as the kernel's lookup does (the [`ChainWalk`] iterator steps
/// once past each item it yields).
///
/// On a scheme that [seeks in a section](MemberScheme::SEEKS_IN_SECTION), pending links
/// are passed inside one read-side section with no reference taken ([`seek_in_section`]);
/// the walk leaves the section, with a reference to where it is, only to collect a
/// signalled link or poll a driver's hook, which [`walk_step`] does as everywhere else.
/// The links passed, the links collected and the answer are the classic walk's: only the
/// references differ.
pub(crate) fn seek<B: Backend>(head: &Fence<B>, point: u64) -> Seek<B> {
    let context = head.context();
    let passes = |node: &Fence<B>| passed(node, node.as_chain(), context, point);
    if !passes(head) {
        return Seek {
            above: None,
            found: Some(head.clone()),
        };
    }
    if !MembersOf::<B>::SEEKS_IN_SECTION {
        // The kernel's loop: a reference per link, and no step past the answer.
        let mut node = head.clone();
        loop {
            let next = walk_step(&node);
            match next {
                Some(next) if passes(&next) => node = next,
                found => {
                    return Seek {
                        above: Some(node),
                        found,
                    };
                }
            }
        }
    }
    let mut at = head.clone();
    loop {
        // `at` has been passed: go on in a section from there.
        let last = match seek_in_section(&at, context, point) {
            Leg::Stopped { last, found } => {
                return Seek {
                    above: Some(last.unwrap_or(at)),
                    found,
                };
            }
            Leg::Blocked(last) => last.unwrap_or(at),
        };
        // The step after `last` writes or polls: take it the classic way.
        match walk_step(&last) {
            Some(next) if passes(&next) => at = next,
            found => {
                return Seek {
                    above: Some(last),
                    found,
                };
            }
        }
    }
}

/// How far [`seek_in_section`] got. `last` is the last node passed, if past its start.
enum Leg<B: Backend> {
    /// At the first node not passed (`found`), or at the end of the walk (`None`).
    Stopped {
        last: Option<Fence<B>>,
        found: Option<Fence<B>>,
    },
    /// The step after `last` must collect a signalled link or poll a hook.
    Blocked(Option<Fence<B>>),
}

/// Whether a lookup of `point` on `context` passes `node` (`link`, if it is a chain link):
/// a link of that context whose previous point is `point` or later.
fn passed<B: Backend>(
    node: &Fence<B>,
    link: Option<&FenceChain<B>>,
    context: u64,
    point: u64,
) -> bool {
    link.is_some_and(|link| node.context() == context && link.prev_seqno() >= point)
}

/// From `start` (a node already passed, which the caller holds), passes the pending links
/// that follow inside one read-side section, holding no reference to them: a reference is
/// taken only to the nodes it returns. Stops where [`walk_step`] would write or poll.
///
/// Why a link seen here stays alive to the end of the section, with no reference of ours:
/// it was loaded from the `prev` slot of `start` or of a link seen before it, and a slot
/// releases its reference only by retiring it past every section open now (`take`,
/// `replace`, `compare_exchange`) or when the slot itself is dropped; that slot's link is
/// alive by the same argument, back to `start`. (A chain's drop steals the `prev` of a
/// link only when nothing else refers to it, strongly or weakly, so no section can be
/// reading it.) The same holds for the own fence read from a link's own slot.
fn seek_in_section<B: Backend>(start: &Fence<B>, context: u64, point: u64) -> Leg<B>
where
    rcu::DefaultReclaimer: rcu::WholeSection,
{
    let mut guard = rcu::pin::<rcu::DefaultReclaimer>();
    let mut last: Option<ManuallyDrop<Fence<B>>> = None;
    let clone = |seen: Option<ManuallyDrop<Fence<B>>>| seen.map(|f| Fence::clone(&f));
    loop {
        let current = last.as_deref().unwrap_or(start);
        let chain = current.as_chain().expect("a passed node is a chain link");
        let Some(raw) = chain.prev.load(&mut guard).map(|p| p.as_raw()) else {
            return Leg::Stopped {
                last: clone(last),
                found: None,
            };
        };
        // SAFETY: `raw` was just loaded from a slot through `guard`, which lives to the end
        // of this function, and the default reclaimer protects every load of a section
        // (`WholeSection`); the fence stays alive while `guard` does (see above).
        let prev = unsafe { seen::<B>(raw) };
        // Its own fence pending (the walk yields it), told from flags alone: polling a
        // hook may signal and run callbacks, which must not run inside a section.
        let prev_chain = prev.as_chain();
        let pending = match prev_chain {
            Some(prev_chain) => prev_chain.fence.signaled_in(&mut guard),
            None => prev.flag_answer(),
        } == Some(false);
        if !pending {
            return Leg::Blocked(clone(last));
        }
        if !passed(&prev, prev_chain, context, point) {
            return Leg::Stopped {
                last: clone(last),
                found: Some(Fence::clone(&prev)),
            };
        }
        last = Some(prev);
    }
}

/// A fence read from a slot, borrowed without a reference of its own.
///
/// # Safety
/// 1. `raw` was loaded from a `Slot<Fence<B>>` through a guard of a
///    [`WholeSection`](rcu::WholeSection) reclaimer, and the view is used only while that
///    guard lives and the fence is alive.
unsafe fn seen<B: Backend>(raw: *const ()) -> ManuallyDrop<Fence<B>> {
    // SAFETY: a fence slot holds pointers from `Fence::into_raw` (obligation 1); the view
    // is never dropped, so the slot's reference is not released through it.
    ManuallyDrop::new(unsafe { <Fence<B> as rcu::Pointer>::from_raw(raw.cast_mut()) })
}

/// The chain's `signaled` polling hook: every own fence from the head back has signalled.
fn poll<B: Backend>(head: &Fence<B>) -> bool {
    let done = poll_inputs(head);
    if done {
        // "Signalled" makes the core signal the link: its failure goes with it.
        apply_failure(head);
    }
    done
}

/// The answer of [`poll`], before the link's failure is applied.
fn poll_inputs<B: Backend>(head: &Fence<B>) -> bool {
    if let Some(answer) = MembersOf::<B>::chain_poll(head) {
        return answer;
    }
    // A signalled fence's flag is set before its callbacks run, so the link's callback may
    // not have recorded its error yet: record what we see before answering "signalled".
    chain_walk(head).all(|node| match node.as_chain() {
        Some(link) => {
            let finished = match link.fence() {
                Some(own) => {
                    let finished = own.is_signaled_shallow();
                    if finished {
                        record_failure(head, Failure::own(&node, link, &own));
                    }
                    finished
                }
                None => true,
            };
            if finished {
                record_failure(head, failure_of(&node));
            }
            finished
        }
        None => {
            let finished = node.is_signaled_shallow();
            if finished {
                record_failure(head, Failure::plain(&node));
            }
            finished
        }
    })
}
