//! `deep`: arrays of arrays, and the depth each backend survives on each mechanism.
//!
//! Level 0 is an array over one leaf; level k is an array over level k-1 and a leaf of its
//! own. Two parts, the same on every backend:
//!
//! - **Measured** (the row's throughput and latency): rounds of the checked shape at depth
//!   `min(D, ROUND_DEPTH)` in this process, run by `shapes::rounds`: every level watched
//!   as it is built (one in eight any-mode), the leaves signalled from every thread in a
//!   random order while the meddling thread makes its fixed count of polls, unwraps and merges
//!   of levels, then dropped.
//!   A depth every backend survives, for half the scenario's budget; the unit is a node.
//! - **Probed** (the depth columns): each mechanism alone, in child processes (see
//!   `contained`) at depths 10, 100, ... up to D, narrowed down after the first failure, on
//!   threads with 256 KiB stacks whose peak use is measured by painting:
//!   - `signal`: built watched, bottom-up (so enabling never nests); the leaves signalled in
//!     a random order from two threads; the root checked signalled once every signal has
//!     returned; then dropped level by level from the root, so that the put never nests.
//!     The signal cascade alone.
//!   - `enable`: built bare; one callback on the root enables all D levels at once; the
//!     leaves signalled; the root's callback checked (it ran, with an error if and only if
//!     a leaf failed); dropped level by level. Enabling alone.
//!   - `put`: built bare and dropped unsignalled with nothing but the root held: the final
//!     put of the whole tree alone.
//!   - `put-signalled`: built and signalled as for `signal`, then dropped with nothing but
//!     the root held: the final put of a completed tree (what a scheme whose containers drop
//!     their members' references as they signal leaves for the put to walk).
//!
//! A probe that fails on a strict backend is a violation. Elsewhere it is the kernel's rule
//! biting (nested arrays recurse on enable and on the final put: the kernel forbids them),
//! reported as a known limit with the depth that passed and the depth that broke.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rcu_fence::{Backend, Fence, FenceArray, Timeline, context_alloc, lockdep};

use super::net::{Builder, Node, signal_leaf};
use super::shapes::{self, MEDDLER, NODES, Round, Shape};
use super::{RunConfig, Scenario, mix, tracked_fence};
use crate::backends::{self, Generic};
use crate::checks::{Checks, Op};
use crate::contained::{self, DepthProbe};
use crate::report::{DepthReached, ErrorTally, LockSummary, Outcome, kib};
use crate::stack::{Peak, run_small, spawn_small};

/// Nested arrays to depth D.
#[derive(Debug)]
pub(crate) struct Deep;

/// The depth of the measured rounds (at most D): one every backend survives in process.
const ROUND_DEPTH: usize = 100;

/// Signalling threads of a probe (fixed, so that a probe's result does not depend on the
/// machine).
const PROBE_THREADS: usize = 2;

/// What a probe exercises (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Signal,
    Enable,
    Put,
    PutSignalled,
}

impl Mechanism {
    const ALL: [Mechanism; 4] = [
        Mechanism::Signal,
        Mechanism::Enable,
        Mechanism::Put,
        Mechanism::PutSignalled,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Signal => "signal",
            Mechanism::Enable => "enable",
            Mechanism::Put => "put",
            Mechanism::PutSignalled => "put-signalled",
        }
    }

    fn parse(s: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// The measured rounds: arrays of arrays at depth `min(D, ROUND_DEPTH)`.
struct Levels;

impl Shape for Levels {
    const NAME: &'static str = "deep";
    const ABOUT: &'static str = "";

    fn build<B: Backend>(b: &mut Builder<'_, B>, _: &mut SmallRng, cfg: &RunConfig) -> Round<B> {
        let depth = cfg.depth.clamp(1, ROUND_DEPTH);
        let (levels, leaves) = build_watched(b, depth);
        Round {
            leaves,
            containers: levels,
            depth,
        }
    }
}

/// Builds `depth` levels, each watched as it is built (one in eight any-mode); returns the
/// levels (root last) and the leaves.
fn build_watched<B: Backend>(
    b: &mut Builder<'_, B>,
    depth: usize,
) -> (Vec<Fence<B>>, Vec<Fence<B>>) {
    let mut levels = Vec::with_capacity(depth);
    let mut leaves = Vec::with_capacity(depth);
    let leaf = b.leaf();
    leaves.push(leaf.fence.clone());
    let mut level: Node<B> = b.array(&[&leaf], false);
    levels.push(level.fence.clone());
    for k in 1..depth {
        let leaf = b.leaf();
        leaves.push(leaf.fence.clone());
        level = b.array(&[&level, &leaf], k % 8 == 7);
        levels.push(level.fence.clone());
    }
    (levels, leaves)
}

/// Builds `depth` bare levels (no callbacks); returns the levels (root last) and the leaves.
fn build_bare<B: Backend>(depth: usize) -> (Vec<Fence<B>>, Vec<Fence<B>>) {
    let tl = Timeline::new_in("deep", B::default());
    let mut levels = Vec::with_capacity(depth);
    let mut leaves = Vec::with_capacity(depth);
    let leaf = tracked_fence(&tl, 1, "deep");
    leaves.push(leaf.clone());
    let mut level = FenceArray::create(vec![leaf], context_alloc(1), 1, false).expect("one");
    levels.push(level.clone());
    for k in 1..depth {
        let leaf = tracked_fence(&tl, k as u64 + 1, "deep");
        leaves.push(leaf.clone());
        level =
            FenceArray::create(vec![level, leaf], context_alloc(1), 1, false).expect("two members");
        levels.push(level.clone());
    }
    (levels, leaves)
}

impl Scenario for Deep {
    const NAME: &'static str = "deep";
    const ABOUT: &'static str = "arrays of arrays: rounds at depth 100 measured in process; the depth each backend survives on signal, enable and the final put (unsignalled and signalled), probed up to D (default 100000) in child processes";
    const UNIT: &'static str = NODES;
    const HELPERS: &'static [&'static str] = &[MEDDLER];

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let measured = RunConfig {
            seconds: cfg.seconds.map(|s| s / 2),
            ..cfg.clone()
        };
        shapes::rounds::<Levels, B>(&measured, checks, &mut outcome);
        if cfg.slice == 0 {
            probe_all::<B>(cfg, checks, &mut outcome);
        } else {
            // The depth column is the probes' (slice 0).
            outcome.depth = None;
        }
        checks.finish(&mut outcome);
        outcome
    }
}

/// Probes every mechanism up to the run's depth in child processes and fills the depth
/// columns, the known limits and the lock figures the children recorded.
fn probe_all<B: Backend>(cfg: &RunConfig, checks: &Checks, outcome: &mut Outcome) {
    let spec = backends::of::<B>();
    let depth = cfg.depth.max(10);
    let rounds_peak = outcome.peak_stack_bytes;
    // Children have their own timeout: the watchdog leaves this thread alone meanwhile.
    checks.watch.helper("main").idle();
    let bisect = if cfg.quick { 4 } else { 8 };
    let mut lock = LockSummary::default();
    let mut children = 0;
    for mechanism in Mechanism::ALL {
        let probe = contained::probe_depths(depth, bisect, |d| {
            contained::run_child(&[
                B::NAME.to_string(),
                mechanism.name().to_string(),
                d.to_string(),
                cfg.seed.to_string(),
            ])
        });
        children += probe.runs;
        let reached = reached(mechanism, depth, &probe);
        if let Some(failure) = &reached.failure {
            let passed = reached
                .survived
                .map_or("passed at no depth".to_string(), |d| {
                    format!("passed at {d}")
                });
            outcome.limit(
                spec.strict,
                format!(
                    "{} fails: {failure} at depth ~{} ({passed}; child processes, 256 KiB stacks)",
                    mechanism.name(),
                    reached.failed_at.unwrap_or(0)
                ),
            );
        }
        // The deepest passing child's error checks count with this run's. (On a strict
        // backend a lost error fails the child, and so the probe.)
        let lost = probe.deepest.number("errors_lost");
        outcome.errors.add(&ErrorTally {
            checked: probe.deepest.number("errors_checked"),
            lost,
            first: if lost > 0 {
                vec![format!(
                    "the {} probe's root at depth {}",
                    mechanism.name(),
                    reached.survived.unwrap_or(0)
                )]
            } else {
                Vec::new()
            },
        });
        lock.merge(&child_lock_summary(&probe));
        outcome.depth_probes.push(reached);
    }
    outcome.notes.push(format!(
        "measured rounds at depth {}: peak stack {}; depth probes: {children} child processes",
        depth.min(ROUND_DEPTH),
        kib(rounds_peak)
    ));
    outcome.depth = outcome
        .depth_probes
        .iter()
        .map(|p| p.survived.unwrap_or(0))
        .min();
    outcome.peak_stack_bytes = outcome
        .depth_probes
        .iter()
        .filter_map(|p| p.peak_deepest)
        .chain(rounds_peak)
        .max();
    if spec.recorded_locks {
        outcome.lockdep = Some(lock);
    }
}

/// A probe's result as a row of the depth table.
fn reached(mechanism: Mechanism, depth: usize, probe: &DepthProbe) -> DepthReached {
    DepthReached {
        mechanism: mechanism.name(),
        survived: probe.survived.map(|d| d as u64),
        tried: depth as u64,
        failed_at: probe.failure.as_ref().map(|f| f.depth as u64),
        failure: probe
            .failure
            .as_ref()
            .map(|f| format!("{} in {}", f.how, f.phase)),
        peak_shallow: probe
            .shallowest
            .as_ref()
            .map(|(d, fields)| (*d as u64, fields.number("peak"))),
        peak_deepest: probe.survived.map(|_| probe.deepest.number("peak")),
    }
}

/// What the deepest passing child of a probe recorded in its lock recorder.
fn child_lock_summary(probe: &DepthProbe) -> LockSummary {
    let f = &probe.deepest;
    LockSummary {
        dependencies: f.number("deps"),
        same_class: f.number("same_class"),
        cycles: f
            .get("cycles")
            .unwrap_or("")
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        nesting_warnings: f.number("warnings"),
    }
}

/// The child side: `<backend> <signal|enable|put|put-signalled> <depth> <seed>` (the arguments after
/// `contained::CHILD_ARG`). Returns the exit status.
pub(crate) fn child_main(args: &[String]) -> i32 {
    let parsed = (|| {
        let backend = args.first()?.clone();
        let mechanism = Mechanism::parse(args.get(1)?)?;
        let depth = args.get(2)?.parse().ok()?;
        let seed = args.get(3)?.parse().ok()?;
        Some((backend, mechanism, depth, seed))
    })();
    let Some((backend, mechanism, depth, seed)) = parsed else {
        eprintln!(
            "usage: stress {} <backend> <signal|enable|put|put-signalled> <depth> <seed>",
            contained::CHILD_ARG
        );
        return 64;
    };
    struct Child(Mechanism, usize, u64);
    impl Generic for Child {
        type Output = i32;
        fn call<B: Backend>(self) -> i32 {
            probe::<B>(self.0, self.1, self.2)
        }
    }
    backends::dispatch(&backend, Child(mechanism, depth, seed)).unwrap_or_else(|| {
        eprintln!("no backend called {backend}");
        64
    })
}

/// Runs one mechanism at `depth` and reports on stdout (see `contained`).
fn probe<B: Backend>(mechanism: Mechanism, depth: usize, seed: u64) -> i32 {
    let checks = Arc::new(Checks::new(PROBE_THREADS, &[], backends::of::<B>()));
    lockdep::reset();
    let peak = Peak::default();
    let mut rng: SmallRng = rand::SeedableRng::seed_from_u64(mix(seed, depth as u64));
    contained::phase("build");
    match mechanism {
        Mechanism::Signal | Mechanism::PutSignalled => {
            let (mut levels, mut leaves) = run_small("deep-build", &peak, || {
                build_watched(&mut Builder::<B>::new(&checks, "deep"), depth)
            });
            contained::phase("signal");
            leaves.shuffle(&mut rng);
            signal_all(&leaves, seed, &checks, &peak);
            check_root(&levels, mechanism, &checks);
            contained::phase("drop");
            drop(leaves);
            if mechanism == Mechanism::Signal {
                run_small("deep-drop", &peak, move || drop_from_the_root(levels));
            } else {
                // Only the root is held: its put releases whatever the tree still holds.
                let root = levels.pop().expect("depth >= 1");
                drop(levels);
                run_small("deep-drop", &peak, move || drop(root));
            }
        }
        Mechanism::Enable => {
            let (levels, mut leaves) = run_small("deep-build", &peak, || build_bare::<B>(depth));
            contained::phase("enable");
            let root = levels.last().expect("depth >= 1");
            let seen = run_small("deep-enable", &peak, || enable_root(root, &checks));
            contained::phase("signal");
            leaves.shuffle(&mut rng);
            signal_all(&leaves, seed, &checks, &peak);
            check_root(&levels, mechanism, &checks);
            let leaf_failed = leaves.iter().any(|l| l.error().is_some());
            let got = seen.load(Ordering::Acquire);
            checks.violations.check(got != 0, || {
                "deep/enable: the root's callback did not run".into()
            });
            checks.violations.check(got != 2 || leaf_failed, || {
                "deep/enable: the root has an error, but no leaf failed".into()
            });
            if leaf_failed {
                checks.errors.check(got == 2, || {
                    "deep/enable: the root has no error, but a leaf failed".into()
                });
            }
            contained::phase("drop");
            drop(leaves);
            run_small("deep-drop", &peak, move || drop_from_the_root(levels));
        }
        Mechanism::Put => {
            let (mut levels, leaves) = run_small("deep-build", &peak, || build_bare::<B>(depth));
            let root = levels.pop().expect("depth >= 1");
            drop(levels);
            drop(leaves);
            contained::phase("drop");
            run_small("deep-drop", &peak, move || drop(root));
        }
    }
    contained::phase("done");
    rcu_fence::synchronize_rcu();
    let mut outcome = Outcome::new("deep", B::NAME, seed, PROBE_THREADS);
    checks.finish(&mut outcome);
    let lock = LockSummary::from_report(&lockdep::report());
    contained::ok(&[
        ("peak", peak.get().unwrap_or(0).to_string()),
        ("violations", outcome.violations.to_string()),
        ("leaked", outcome.leaked.to_string()),
        ("errors_checked", outcome.errors.checked.to_string()),
        ("errors_lost", outcome.errors.lost.to_string()),
        ("deps", lock.dependencies.to_string()),
        ("same_class", lock.same_class.to_string()),
        ("cycles", lock.cycles.join(",")),
        ("warnings", lock.nesting_warnings.to_string()),
    ]);
    if outcome.failed() {
        for problem in &outcome.problems {
            contained::problem(problem);
        }
        return 1;
    }
    0
}

/// Signals `leaves` (in this order, split between the probe's threads).
fn signal_all<B: Backend>(leaves: &[Fence<B>], seed: u64, checks: &Checks, peak: &Peak) {
    let chunk = leaves.len().div_ceil(PROBE_THREADS).max(1);
    thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, part) in leaves.chunks(chunk).enumerate() {
            handles.push(spawn_small(
                s,
                format!("deep-signal-{t}"),
                peak,
                move || {
                    let mut rng: SmallRng =
                        rand::SeedableRng::seed_from_u64(mix(seed, 10 + t as u64));
                    for leaf in part {
                        signal_leaf(leaf, &mut rng, 64, checks);
                    }
                    checks.flush_latency();
                },
            ));
        }
        // Joined explicitly: a joined thread has also run its thread-local destructors,
        // which hand its deferred garbage to the reclaimer.
        for h in handles {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
}

/// Every backend completes a container on the thread whose signal completed it, before
/// that signal returns: with every leaf's signal returned, the root is done.
fn check_root<B: Backend>(levels: &[Fence<B>], mechanism: Mechanism, checks: &Checks) {
    let root_done = levels.last().is_some_and(Fence::test_signaled_flag);
    checks.violations.check(root_done, || {
        format!(
            "deep/{}: the root is pending after every leaf's signal returned",
            mechanism.name()
        )
    });
}

/// Drops the levels from the root down, each while the next one down is still held: the
/// put of each level then releases one level only, on every backend.
fn drop_from_the_root<B: Backend>(mut levels: Vec<Fence<B>>) {
    while let Some(level) = levels.pop() {
        drop(level);
    }
}

/// Installs the root's callback in the `enable` probe. The result becomes 1 when it ran
/// without an error, 2 with one.
fn enable_root<B: Backend>(root: &Fence<B>, checks: &Checks) -> Arc<AtomicU64> {
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let mut writer = checks.ledger.writer();
    let ticket = writer.ticket();
    let mine = ticket.share();
    let heart = checks.watch.helper("main");
    heart.at(Op::AddCallback);
    match root.add_callback(move |f| {
        s.store(if f.error().is_some() { 2 } else { 1 }, Ordering::Release);
        ticket.ran();
    }) {
        Ok(_) => mine.installed(),
        Err(_) => {
            // Bare levels over pending leaves cannot be complete yet.
            mine.refused();
            checks
                .violations
                .report("deep/enable: the root refused a callback before any leaf signalled");
        }
    }
    heart.idle();
    seen
}
