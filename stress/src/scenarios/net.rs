//! Checked fence networks: leaves and containers, each watched by one callback that checks
//! the container's rule when it signals.
//!
//! Every node (leaf, array, chain link) gets one watching callback, installed as the node is
//! built, and a [`Rule`] holding handles on the node's inputs: an array's members, a chain
//! link's own fence and its `prev` (and, through `prev`'s rule, the older links). When a
//! container's watcher runs, it reads each input's flag and error directly: a fence counts
//! as signalled from the moment its flag is set, and its error is final then. The watcher
//! checks:
//!
//! - all-mode array: every member had signalled; the array's error is one of the members'
//!   errors, and there is one if any member failed (the first member error by the array's
//!   rule; which one is first depends on the interleaving);
//! - any-mode array: some member had signalled; an error is a signalled member's error, and
//!   there is one if every signalled member failed;
//! - chain link: its own fence and its `prev` had signalled. Where a link waits only for
//!   the own fences behind it (the kernel's chain: an older link whose own completion is
//!   still queued on another thread's irq_work may be pending), a pending older link is
//!   looked through to its own fence and its `prev`. The link carries an error if one of
//!   those inputs did, and any error it carries is one of those injected in the run;
//! - every node: its flag is set when its callbacks run; each callback runs exactly once
//!   (the ledger).
//!
//! "Carries an error if an input failed" is the error rule, counted in
//! [`Errors`]: a violation on a strict backend, the classic scheme's
//! known limit (with a count) elsewhere. [`check_unwrap`] and [`check_merge`] check it for
//! `unwrap` and `merge` of a container, as other threads do them while it signals.
//!
//! The handles keep the inputs alive until the watcher has run: the scenarios signal every
//! leaf, so every watcher runs and every handle goes.
//!
//! The watcher of a container also records the signal-to-completion latency: from the
//! signal of the member that completed it (the last one, or the first in any-mode) to the
//! container's callback.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::Rng;
use rcu_fence::{
    Backend, Errno, Fence, FenceArray, FenceChain, Timeline, context_alloc, merge, unwrap,
};
use smallvec::SmallVec;

use super::tracked_fence;
use crate::backends;
use crate::checks::{CALLBACKS, Checks, Errors, LedgerWriter, Ticket, latency};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the first call in the process (never 0).
pub(crate) fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64 + 1
}

/// A fence's signal time on the [`now_ns`] scale (now if it has no timestamp yet).
pub(crate) fn signal_ns(f: &Fence<impl Backend>) -> u64 {
    f.timestamp().map_or_else(now_ns, |t| {
        t.saturating_duration_since(*EPOCH).as_nanos() as u64 + 1
    })
}

/// The smallest injected error code; every injected error is in `ERR_BASE..ERR_BASE+3000`.
const ERR_BASE: i32 = 1000;

/// A fresh injected error (a distinct code, so that a container's error can be traced to
/// the member it came from).
pub(crate) fn injected_error(rng: &mut impl Rng) -> Errno {
    Errno::new(-(ERR_BASE + rng.random_range(0..3000))).expect("a valid errno")
}

fn is_injected(e: Errno) -> bool {
    (ERR_BASE..ERR_BASE + 3000).contains(&-e.get())
}

/// A fence of a network and its rule (none for a leaf, whose watcher checks no inputs).
#[derive(Clone, Debug)]
pub(crate) struct Node<B: Backend> {
    pub(crate) fence: Fence<B>,
    rule: Option<Arc<Rule<B>>>,
}

/// The rule a watcher checks, with handles on the inputs it reads.
#[derive(Debug)]
enum Rule<B: Backend> {
    All(Vec<Fence<B>>),
    Any(Vec<Fence<B>>),
    /// The link's own fence, and `prev` with its rule (none if `prev` is a leaf).
    Chain(Fence<B>, Prev<B>),
}

/// A chain link's `prev` as its watcher sees it: the fence, and its rule if it has one.
type Prev<B> = Option<(Fence<B>, Option<Arc<Rule<B>>>)>;

/// The harness's own short lists (a container's inputs, a merge's members), inline up to
/// a size that covers most of them, so that checking allocates as little as it can.
type Inline<T> = SmallVec<[T; 8]>;

/// What a watcher sees of one input.
#[derive(Clone, Copy, Debug)]
struct View {
    done: bool,
    error: Option<Errno>,
    at: u64,
}

/// An input as its flag shows it: signalled from the moment the flag is set (before its
/// callbacks run: a concurrent poll may complete a container in between), with the error
/// it signalled with.
fn view<B: Backend>(f: &Fence<B>) -> View {
    // `test_signaled_flag` loads the flag with `Acquire`: the error and the timestamp,
    // stored before the flag, are final once it is seen set.
    if f.test_signaled_flag() {
        View {
            done: true,
            error: f.error(),
            at: signal_ns(f),
        }
    } else {
        View {
            done: false,
            error: None,
            at: 0,
        }
    }
}

/// What a chain link's inputs show: all complete, any failed, the last signal time.
///
/// `prev` counts as complete once it has signalled. When `strict` is false (a link that
/// waits only for the own fences behind it, as the kernel's does), a pending older link is
/// looked through: its own fence must have signalled, and so on back to a signalled link or
/// the start of the chain.
fn chain_inputs<B: Backend>(own: &Fence<B>, prev: &Prev<B>, strict: bool) -> (bool, bool, u64) {
    let own = view(own);
    let (mut done, mut failed, mut at) = (own.done, own.error.is_some(), own.at);
    let mut cur = prev.clone();
    while let Some((fence, rule)) = cur {
        let v = view(&fence);
        if v.done {
            failed |= v.error.is_some();
            at = at.max(v.at);
            break;
        }
        match rule.as_deref() {
            Some(Rule::Chain(older_own, older)) if !strict => {
                let o = view(older_own);
                done &= o.done;
                failed |= o.error.is_some();
                at = at.max(o.at);
                cur = older.clone();
            }
            _ => {
                done = false;
                break;
            }
        }
    }
    (done, failed, at)
}

/// Checks `rule` for `f`, which has signalled; returns the signal time of the input that
/// completed it (for containers).
fn check_rule<B: Backend>(
    rule: &Rule<B>,
    f: &Fence<B>,
    ticket: &Ticket,
    errors: &Errors,
    what: &str,
    strict: bool,
) -> Option<u64> {
    let fail = |why: String| ticket.report(format!("{what}: {why}"));
    let error = f.error();
    match rule {
        Rule::All(members) => {
            let views: Inline<View> = members.iter().map(view).collect();
            let pending = views.iter().filter(|m| !m.done).count();
            if pending > 0 {
                fail(format!(
                    "all-mode array signalled with {pending} of {} members pending",
                    views.len()
                ));
            }
            let failed: Inline<Errno> = views.iter().filter_map(|m| m.error).collect();
            if let Some(e) = error {
                if !failed.contains(&e) {
                    fail(format!("array error {e} is no member's error"));
                }
            }
            if !failed.is_empty() {
                errors.check(error.is_some(), || {
                    format!("{what} with {} failed members", failed.len())
                });
            }
            views.iter().map(|m| m.at).max()
        }
        Rule::Any(members) => {
            let views: Inline<View> = members.iter().map(view).collect();
            let done: Inline<&View> = views.iter().filter(|m| m.done).collect();
            if done.is_empty() {
                fail("any-mode array signalled before any member".into());
            }
            if let Some(e) = error {
                if !done.iter().any(|m| m.error == Some(e)) {
                    fail(format!(
                        "any-mode array error {e} is no signalled member's error"
                    ));
                }
            }
            if !done.is_empty() && done.iter().all(|m| m.error.is_some()) {
                errors.check(error.is_some(), || {
                    format!("{what} whose {} signalled members all failed", done.len())
                });
            }
            done.iter().map(|m| m.at).min()
        }
        Rule::Chain(own, prev) => {
            let (done, failed, at) = chain_inputs(own, prev, strict);
            if !done {
                fail("chain link signalled before its own fence and every earlier point".into());
            }
            match error {
                Some(e) if !is_injected(e) => {
                    fail(format!("chain link error {e} was never injected"))
                }
                Some(_) if !failed => {
                    fail("chain link has an error, but its inputs have none".into())
                }
                _ => {}
            }
            if failed {
                errors.check(error.is_some(), || {
                    format!(
                        "{what} (seqno {}) over a failed own fence or earlier point",
                        f.seqno()
                    )
                });
            }
            Some(at)
        }
    }
}

/// Builds checked networks on one thread; counts the nodes it builds.
pub(crate) struct Builder<'a, B: Backend> {
    writer: LedgerWriter<'a>,
    timeline: Timeline<B>,
    seqno: u64,
    /// Nodes built (leaves and containers).
    pub(crate) nodes: u64,
}

impl<B: Backend> std::fmt::Debug for Builder<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl<'a, B: Backend> Builder<'a, B> {
    pub(crate) fn new(checks: &'a Checks, name: &str) -> Self {
        Builder {
            writer: checks.ledger.writer(),
            timeline: Timeline::new_in(name, B::default()),
            seqno: 0,
            nodes: 0,
        }
    }

    /// A new pending leaf on this builder's timeline (counted in the live-fence gauge).
    pub(crate) fn leaf(&mut self) -> Node<B> {
        self.seqno += 1;
        let fence = tracked_fence(&self.timeline, self.seqno, "net");
        self.watch(fence, None, "leaf")
    }

    /// A leaf on another timeline (so that `merge` keeps one per context).
    pub(crate) fn leaf_on(&mut self, timeline: &Timeline<B>, seqno: u64) -> Node<B> {
        let fence = tracked_fence(timeline, seqno, "net");
        self.watch(fence, None, "leaf")
    }

    /// An array over `members` (all-mode, or any-mode if `any`).
    pub(crate) fn array(&mut self, members: &[&Node<B>], any: bool) -> Node<B> {
        let fences: Vec<Fence<B>> = members.iter().map(|m| m.fence.clone()).collect();
        let rule = if any {
            Rule::Any(fences.clone())
        } else {
            Rule::All(fences.clone())
        };
        let fence = FenceArray::create(fences, context_alloc(1), 1, any).expect("members");
        self.watch(fence, Some(rule), if any { "any-array" } else { "array" })
    }

    /// A chain link for point `seqno` over `fence`, after `prev`.
    pub(crate) fn chain(&mut self, prev: Option<&Node<B>>, fence: &Node<B>, seqno: u64) -> Node<B> {
        let link = FenceChain::create(prev.map(|p| p.fence.clone()), fence.fence.clone(), seqno);
        let rule = Rule::Chain(
            fence.fence.clone(),
            prev.map(|p| (p.fence.clone(), p.rule.clone())),
        );
        self.watch(link, Some(rule), "chain link")
    }

    /// Installs the node's watcher (this enables signalling on it); `rule` is `None` for a
    /// leaf, whose watcher checks no inputs and only records the run (so it allocates no
    /// rule: one allocation per leaf, on every backend, that measured nothing).
    fn watch(&mut self, fence: Fence<B>, rule: Option<Rule<B>>, what: &'static str) -> Node<B> {
        let ticket = self.writer.ticket();
        let mine = ticket.share();
        let live = CALLBACKS.token();
        let rule = rule.map(Arc::new);
        let r = rule.clone();
        let strict = backends::of::<B>().chain_waits_for_prev_link;
        self.nodes += 1;
        let installed = fence.add_callback(move |f| {
            if !f.test_signaled_flag() {
                ticket.report(format!("{what}: callback ran before the flag was set"));
            }
            if let Some(r) = &r {
                if let Some(from) = check_rule(r, f, &ticket, ticket.errors(), what, strict) {
                    latency::record(now_ns().saturating_sub(from));
                }
            }
            ticket.ran();
            // The rule's handles go with the closure, now.
            drop(r);
            drop(live);
        });
        match installed {
            Ok(_) => mine.installed(),
            Err(_) => {
                // Only a container whose members had all signalled may be complete at once;
                // its watcher did not run, so check here.
                mine.refused();
                if let Some(rule) = &rule {
                    check_rule(rule, &fence, &mine, mine.errors(), what, strict);
                }
            }
        }
        Node { fence, rule }
    }
}

/// Signals `leaf`, first setting an injected error with probability `1/error_one_in`.
/// Returns true if it failed the leaf.
pub(crate) fn signal_leaf<B: Backend>(
    leaf: &Fence<B>,
    rng: &mut impl Rng,
    error_one_in: u32,
    checks: &Checks,
) -> bool {
    let failed = inject_error(leaf, rng, error_one_in);
    if let Err(e) = leaf.signal() {
        checks
            .violations
            .report(format!("signal of a pending leaf returned {e:?}"));
    }
    failed
}

/// Sets an injected error on `leaf` with probability `1/error_one_in`; true if it did.
pub(crate) fn inject_error<B: Backend>(
    leaf: &Fence<B>,
    rng: &mut impl Rng,
    error_one_in: u32,
) -> bool {
    error_one_in > 0
        && rng.random_range(0..error_one_in) == 0
        && leaf.set_error(injected_error(rng)).is_ok()
}

/// Unwraps `root` (which may be signalling on other threads) and checks what comes out:
/// leaves only, and the first error seen if `root` had signalled with one before the walk.
/// Returns the number of leaves, or `None` if `give_up(leaves so far)` ended the walk
/// early (then the error is not checked: the walk did not see everything).
pub(crate) fn check_unwrap<B: Backend>(
    root: &Fence<B>,
    checks: &Checks,
    give_up: &dyn Fn(u64) -> bool,
) -> Option<u64> {
    // Read before the walk: `error` is `None` until the flag is set, and final then.
    let failed = root.error().is_some();
    let mut leaves = unwrap(root);
    let mut n = 0;
    for leaf in &mut leaves {
        checks
            .violations
            .check(!leaf.is_container(), || "unwrap yielded a container".into());
        n += 1;
        if give_up(n) {
            return None;
        }
    }
    if failed {
        checks.errors.check(leaves.error().is_some(), || {
            "unwrap of a container signalled with an error reported none".into()
        });
    }
    Some(n)
}

/// Merges `root` (which may be signalling on other threads) and checks the result: not
/// nested (a leaf, a stub, or an array of leaves on distinct contexts), signalled if every
/// leaf under `root` had signalled before, and carrying an error when it signals if `root`
/// had signalled with one before the merge (checked by a callback if it is still pending).
pub(crate) fn check_merge<B: Backend>(
    root: &Fence<B>,
    checks: &Checks,
    writer: &mut LedgerWriter<'_>,
) {
    let v = &checks.violations;
    let failed = root.error().is_some();
    let all_done = unwrap(root).all(|l| l.is_signaled());
    let merged = match merge(std::slice::from_ref(root)) {
        Ok(m) => m,
        Err(e) => {
            v.report(format!("merge returned {e:?}"));
            return;
        }
    };
    if all_done {
        v.check(merged.test_signaled_flag(), || {
            "merge of fully signalled leaves is pending".into()
        });
    }
    if let Some(array) = merged.as_array() {
        let members: Inline<Fence<B>> = array.fences().collect();
        v.check(members.iter().all(|m| !m.is_container()), || {
            "merge returned a nested array".into()
        });
        let mut contexts: Inline<u64> = members.iter().map(|m| m.context()).collect();
        contexts.sort_unstable();
        contexts.dedup();
        v.check(contexts.len() == members.len(), || {
            "merge kept two fences of one context".into()
        });
    } else {
        v.check(merged.as_chain().is_none(), || {
            "merge returned a chain".into()
        });
    }
    if !failed {
        return;
    }
    let ticket = writer.ticket();
    let mine = ticket.share();
    let live = CALLBACKS.token();
    let check = |m: &Fence<B>, errors: &Errors| {
        errors.check(m.error().is_some(), || {
            "merge of a container signalled with an error signalled without one".into()
        });
    };
    let installed = merged.add_callback(move |m| {
        check(m, ticket.errors());
        ticket.ran();
        drop(live);
    });
    match installed {
        Ok(_) => mine.installed(),
        Err(_) => {
            mine.refused();
            check(&merged, mine.errors());
        }
    }
}

/// A known-answer check run before the `dag` rounds: an enabled all-mode array polled from a
/// callback of its failing member, after the member's flag is set but before the array's
/// own callback on that member has run, must still report the member's error.
///
/// `FenceArray::poll` (src/array.rs) answers "signalled" from the members' flags alone,
/// even once the array is enabled; the core then signals the array with the errors
/// recorded so far, which do not include this member's yet. Found by `dag`, where the
/// main thread's `wait` polls arrays whose members are signalling on other threads.
pub(crate) fn array_poll_keeps_error<B: Backend>(checks: &Checks) {
    let timeline = Timeline::new_in("poll", B::default());
    let member = tracked_fence(&timeline, 1, "poll");
    let slot: Arc<std::sync::Mutex<Option<Fence<B>>>> = Arc::default();
    let s = slot.clone();
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    // Installed before the array exists, so it runs before the array's callback.
    let _ = member.add_callback(move |_| {
        let array = s.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(array) = array {
            p.store(array.is_signaled(), Ordering::Relaxed);
        }
    });
    let array = FenceArray::create(vec![member.clone()], context_alloc(1), 1, false).expect("one");
    array.enable_sw_signaling();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(array.clone());
    let _ = member.set_error(Errno::ETIME);
    let _ = member.signal();
    let _ = array.wait();
    let error = array.error();
    checks.errors.check(error.is_some(), || {
        format!(
            "an array polled from its failed member's callback (polled signalled: {}) signalled with error {error:?}",
            polled.load(Ordering::Relaxed),
        )
    });
    checks.violations.check(error.is_none_or(|e| e == Errno::ETIME), || {
        format!("array polled from its member's callback reports error {error:?}, the member failed with {}", Errno::ETIME)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcu_fence::{Locked, Rcu};

    /// The DAG chains links after leaves as well as after links: a leaf's node carries no
    /// rule, and a link over it is still watched and checked.
    fn chain_after_a_leaf<B: Backend>() {
        let checks = Checks::new(1, &[], backends::of::<B>());
        let mut b = Builder::<B>::new(&checks, "test");
        let prev = b.leaf();
        let own = b.leaf();
        let link = b.chain(Some(&prev), &own, 1);
        let later = b.chain(Some(&link), &own, 2);
        own.fence.signal().expect("pending");
        prev.fence.signal().expect("pending");
        assert_eq!(link.fence.wait(), Ok(()));
        assert_eq!(later.fence.wait(), Ok(()));
        assert_eq!(
            checks.violations.count(),
            0,
            "{:?}",
            checks.violations.descriptions()
        );
        assert_eq!(b.nodes, 4);
    }

    #[test]
    fn a_chain_link_after_a_leaf_is_watched_on_every_scheme() {
        chain_after_a_leaf::<Rcu>();
        chain_after_a_leaf::<Locked>();
    }
}
