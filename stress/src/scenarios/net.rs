//! Checked fence networks: leaves and containers, each watched by one callback that checks
//! the container's rule when it signals.
//!
//! Every node (leaf, array, chain link) gets a [`Probe`] and one watching callback,
//! installed as the node is built, before any container over it exists. So a member's
//! watcher always runs before the container's own callback on that member, and when a
//! container's watcher runs, the probes of its members say exactly which members had
//! signalled, with which error, and when. The watcher checks:
//!
//! - all-mode array: every member had signalled; the array's error is one of the members'
//!   errors, and there is one if any member failed (the first member error by the array's
//!   rule; which one is first depends on the interleaving);
//! - any-mode array: some member had signalled; an error is a signalled member's error, and
//!   no error means some signalled member had none;
//! - chain link: its own fence and its `prev` had signalled (on `Locked`, an older link
//!   still waiting for its irq_work re-arm is looked through to its own fence and its
//!   `prev`, as the kernel's chain allows); it carries an error if and only if one of
//!   those inputs did, and that error is one of those injected in the run;
//! - every node: its flag is set when its callbacks run; each callback runs exactly once
//!   (the ledger).
//!
//! The watcher of a container also records the signal-to-completion latency: from the
//! signal of the member that completed it (the last one, or the first in any-mode) to the
//! container's callback. On `Locked` it includes the irq_work hop.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Instant;

use rand::Rng;
use rcu_fence::{Backend, Errno, Fence, FenceArray, FenceChain, Timeline, context_alloc};

use crate::backends;

use super::tracked_fence;
use crate::checks::{CALLBACKS, Checks, LedgerWriter, Ticket, latency};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the first call in the process (never 0).
pub(crate) fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64 + 1
}

/// A fence's signal time on the [`now_ns`] scale (now if it has no timestamp yet).
fn signal_ns(f: &Fence<impl Backend>) -> u64 {
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

/// What a node's watcher saw when the node signalled.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    done: AtomicBool,
    error: AtomicI32,
    at: AtomicU64,
}

impl Probe {
    pub(crate) fn done(&self) -> bool {
        // Acquire: pairs with the Release in `set`.
        self.done.load(Ordering::Acquire)
    }

    pub(crate) fn error(&self) -> Option<Errno> {
        Errno::new(self.error.load(Ordering::Relaxed))
    }

    pub(crate) fn at(&self) -> u64 {
        self.at.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, f: &Fence<impl Backend>) {
        self.error
            .store(f.error().map_or(0, Errno::get), Ordering::Relaxed);
        self.at.store(now_ns(), Ordering::Relaxed);
        self.done.store(true, Ordering::Release);
    }
}

/// A fence of a network and its probe.
#[derive(Clone, Debug)]
pub(crate) struct Node<B: Backend> {
    pub(crate) fence: Fence<B>,
    pub(crate) probe: Arc<Probe>,
    rule: Arc<Rule>,
}

/// The rule a watcher checks.
#[derive(Debug)]
enum Rule {
    Leaf,
    All(Vec<Arc<Probe>>),
    Any(Vec<Arc<Probe>>),
    /// The own fence's probe, and `prev`'s probe with its rule.
    Chain(Arc<Probe>, Option<(Arc<Probe>, Arc<Rule>)>),
}

/// What a container's watcher knows of one input.
#[derive(Clone, Copy, Debug)]
struct View {
    done: bool,
    error: Option<Errno>,
    /// Done, but its error cannot be known (a released input whose watcher is still to run).
    unknown: bool,
    at: u64,
}

/// An input seen through its probe or, if its watcher has not run yet, through its flag:
/// a fence counts as signalled from the moment its flag is set, before its callbacks run (a
/// concurrent `is_signaled` poll may complete the container in between). `held` is the
/// container's current reference to the input (`None` once released, which happens only
/// after the input has signalled).
fn view<B: Backend>(probe: &Probe, held: Option<Option<Fence<B>>>) -> View {
    if probe.done() {
        return View {
            done: true,
            error: probe.error(),
            unknown: false,
            at: probe.at(),
        };
    }
    match held {
        Some(Some(f)) if f.test_signaled_flag() => View {
            done: true,
            error: f.error(),
            unknown: false,
            at: signal_ns(&f),
        },
        Some(None) => View {
            done: true,
            error: None,
            unknown: true,
            at: now_ns(),
        },
        _ => View {
            done: false,
            error: None,
            unknown: false,
            at: 0,
        },
    }
}

/// What a chain link's inputs show: all complete, any failed (or unknown), the last signal time.
///
/// `prev` counts as complete once it has signalled. When `strict` is false (the classic
/// scheme, where a link may signal before an older link *object* whose irq_work re-arm is
/// still queued, as in the kernel), a pending older link is looked through: its own fence
/// must have signalled, and so on back to a signalled link or the start of the chain.
fn chain_inputs<B: Backend>(
    link: &Fence<B>,
    own: &Probe,
    prev: &Option<(Arc<Probe>, Arc<Rule>)>,
    strict: bool,
) -> (bool, bool, bool, u64) {
    let chain = link.as_chain();
    let own = view(own, chain.map(|c| c.fence()));
    let (mut done, mut failed, mut unknown, mut at) =
        (own.done, own.error.is_some(), own.unknown, own.at);
    let mut cur = prev.clone();
    let mut first = true;
    while let Some((probe, rule)) = cur {
        let held = if first { chain.map(|c| c.prev()) } else { None };
        first = false;
        let v = view(&probe, held);
        if v.done {
            failed |= v.error.is_some();
            unknown |= v.unknown;
            at = at.max(v.at);
            break;
        }
        match &*rule {
            Rule::Chain(o, older) if !strict => {
                // Only the probe shows this older fence. Its flag is set before its
                // callbacks run (the probe's among them, on the signalling thread), while
                // the classic link signals from the irq_work thread: the probe can lag the
                // link's completion. Give it a bounded moment before judging.
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
                while !o.done() && std::time::Instant::now() < deadline {
                    std::thread::yield_now();
                }
                let o = view::<B>(o, None);
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
    (done, failed, unknown, at)
}

fn check_rule<B: Backend>(
    rule: &Rule,
    f: &Fence<B>,
    ticket: &Ticket,
    what: &str,
    strict: bool,
) -> Option<u64> {
    let fail = |why: String| ticket.report(format!("{what}: {why}"));
    let error = f.error();
    let members = |probes: &[Arc<Probe>]| -> Vec<View> {
        let array = f.as_array();
        probes
            .iter()
            .enumerate()
            .map(|(i, p)| view(p, array.map(|a| a.fence(i))))
            .collect()
    };
    match rule {
        Rule::Leaf => None,
        Rule::All(probes) => {
            let views = members(probes);
            let pending = views.iter().filter(|m| !m.done).count();
            if pending > 0 {
                fail(format!(
                    "all-mode array signalled with {pending} of {} members pending",
                    views.len()
                ));
            }
            let errors: Vec<Errno> = views.iter().filter_map(|m| m.error).collect();
            let unknown = views.iter().any(|m| m.unknown);
            match error {
                Some(e) if !errors.contains(&e) && !unknown => {
                    fail(format!("array error {e} is no member's error"))
                }
                None if !errors.is_empty() => fail(format!(
                    "array has no error, but {} members failed",
                    errors.len()
                )),
                _ => {}
            }
            views.iter().map(|m| m.at).max()
        }
        Rule::Any(probes) => {
            let views = members(probes);
            let done: Vec<&View> = views.iter().filter(|m| m.done).collect();
            if done.is_empty() {
                fail("any-mode array signalled before any member".into());
            }
            let unknown = done.iter().any(|m| m.unknown);
            match error {
                Some(e) if !unknown && !done.iter().any(|m| m.error == Some(e)) => fail(format!(
                    "any-mode array error {e} is no signalled member's error"
                )),
                None if !unknown && !done.is_empty() && done.iter().all(|m| m.error.is_some()) => {
                    fail("any-mode array has no error, but every signalled member failed".into())
                }
                _ => {}
            }
            done.iter().map(|m| m.at).min()
        }
        Rule::Chain(own, prev) => {
            let (done, failed, unknown, at) = chain_inputs(f, own, prev, strict);
            if !done {
                fail("chain link signalled before its own fence and every earlier point".into());
            }
            match error {
                Some(e) if !is_injected(e) => {
                    fail(format!("chain link error {e} was never injected"))
                }
                // The kernel's chain reports no error at all. The classic backend records the
                // error of the fence its one re-armed callback sat on, and its links signal
                // from irq_work out of order with older links, so which input errors a link
                // has seen is not defined there: only `Rcu` promises chain errors.
                _ if !strict => {}
                Some(_) if !failed && !unknown => {
                    fail("chain link has an error, but its inputs have none".into())
                }
                None if failed => fail("chain link has no error, but an input failed".into()),
                _ => {}
            }
            Some(at)
        }
    }
}

/// Builds checked networks on one thread; counts the operations it performs.
pub(crate) struct Builder<'a, B: Backend> {
    writer: LedgerWriter<'a>,
    timeline: Timeline<B>,
    seqno: u64,
    /// Fence operations performed (creations and `add_callback`s).
    pub(crate) ops: u64,
}

impl<B: Backend> std::fmt::Debug for Builder<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

impl<'a, B: Backend> Builder<'a, B> {
    pub(crate) fn new(checks: &'a Checks, name: &str) -> Self {
        Builder {
            writer: checks.ledger.writer(),
            timeline: Timeline::new_in(name, B::default()),
            seqno: 0,
            ops: 0,
        }
    }

    /// A new pending leaf on this builder's timeline (counted in the live-fence gauge).
    pub(crate) fn leaf(&mut self) -> Node<B> {
        self.seqno += 1;
        let fence = tracked_fence(&self.timeline, self.seqno, "net");
        self.watch(fence, Rule::Leaf, "leaf")
    }

    /// A leaf on another timeline (so that `merge` keeps one per context).
    pub(crate) fn leaf_on(&mut self, timeline: &Timeline<B>, seqno: u64) -> Node<B> {
        let fence = tracked_fence(timeline, seqno, "net");
        self.watch(fence, Rule::Leaf, "leaf")
    }

    /// An array over `members` (all-mode, or any-mode if `any`).
    pub(crate) fn array(&mut self, members: &[&Node<B>], any: bool) -> Node<B> {
        let fences = members.iter().map(|m| m.fence.clone()).collect();
        let probes = members.iter().map(|m| m.probe.clone()).collect();
        let fence = FenceArray::create(fences, context_alloc(1), 1, any).expect("members");
        self.ops += 1;
        let rule = if any {
            Rule::Any(probes)
        } else {
            Rule::All(probes)
        };
        self.watch(fence, rule, if any { "any-array" } else { "array" })
    }

    /// A chain link for point `seqno` over `fence`, after `prev`.
    pub(crate) fn chain(&mut self, prev: Option<&Node<B>>, fence: &Node<B>, seqno: u64) -> Node<B> {
        let link = FenceChain::create(prev.map(|p| p.fence.clone()), fence.fence.clone(), seqno);
        self.ops += 1;
        let rule = Rule::Chain(
            fence.probe.clone(),
            prev.map(|p| (p.probe.clone(), p.rule.clone())),
        );
        self.watch(link, rule, "chain link")
    }

    /// Installs the node's watcher (this enables signalling on it).
    fn watch(&mut self, fence: Fence<B>, rule: Rule, what: &'static str) -> Node<B> {
        let probe = Arc::new(Probe::default());
        let ticket = self.writer.ticket();
        let mine = ticket.share();
        let p = probe.clone();
        let live = CALLBACKS.token();
        let rule = Arc::new(rule);
        let r = rule.clone();
        let strict = backends::of::<B>().chain_waits_for_prev_link;
        self.ops += 1;
        let installed = fence.add_callback(move |f| {
            if !f.test_signaled_flag() {
                ticket.report(format!("{what}: callback ran before the flag was set"));
            }
            if let Some(from) = check_rule(&r, f, &ticket, what, strict) {
                latency::record(now_ns().saturating_sub(from));
            }
            p.set(f);
            ticket.ran();
            drop(live);
        });
        match installed {
            Ok(_) => mine.installed(),
            Err(_) => {
                // Only a container whose members had all signalled may be complete at once;
                // its watcher did not run, so check and record here.
                mine.refused();
                check_rule(&rule, &fence, &mine, what, strict);
                probe.set(&fence);
            }
        }
        Node { fence, probe, rule }
    }
}

/// Signals `leaf`, first setting an injected error with probability `1/error_one_in`.
/// Returns the number of operations performed.
pub(crate) fn signal_leaf<B: Backend>(
    leaf: &Fence<B>,
    rng: &mut impl Rng,
    error_one_in: u32,
    checks: &Checks,
) -> u64 {
    let mut ops = 1;
    if error_one_in > 0 && rng.random_range(0..error_one_in) == 0 {
        ops += 1;
        let _ = leaf.set_error(injected_error(rng));
    }
    if let Err(e) = leaf.signal() {
        checks
            .violations
            .report(format!("signal of a pending leaf returned {e:?}"));
    }
    ops
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
    checks.violations.check(error == Some(Errno::ETIME), || {
        format!(
            "array polled from its member's callback (polled signalled: {}) reports error {error:?}, the member failed with {}",
            polled.load(Ordering::Relaxed),
            Errno::ETIME
        )
    });
}
