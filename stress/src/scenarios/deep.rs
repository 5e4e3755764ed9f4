//! `deep`: arrays of arrays to depth D, leaves signalled in a random order.
//!
//! Level 0 is an array over one leaf; level k is an array over level k-1 and a leaf of its
//! own (one level in eight is any-mode in the checked shape). Three shapes, each run on
//! threads with a 256 KiB stack whose peak use is measured by painting:
//!
//! - `checked`: every node watched as it is built (bottom-up), leaves signalled from every
//!   thread in a random order, then everything dropped;
//! - `enable`: built bare, then one callback on the root enables all D levels at once,
//!   leaves signalled in a random order, root dropped;
//! - `put`: built bare and dropped unsignalled: the final put of the whole tree.
//!
//! On `Rcu` all three run in the process at depth D and at depth 10, for comparison. On
//! `Locked` (the kernel's forbidden shape: arrays of arrays recurse on enable and on the
//! final put) the `enable` and `put` shapes run in child processes at depths 10, 100, ...
//! up to D, so that a stack overflow is observed and reported, not suffered; the checked
//! shape then runs in the process at a depth well below the first failure.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use rand::seq::SliceRandom;
use rcu_fence::{Backend, Fence, FenceArray, Timeline, context_alloc, lockdep};

use crate::backends;

use super::net::{Builder, signal_leaf};
use super::{RunConfig, Scenario, tracked_fence};
use crate::checks::{Checks, Op};
use crate::contained;
use crate::report::Outcome;
use crate::stack::{Peak, run_small, spawn_small};

/// Nested arrays to depth D.
#[derive(Debug)]
pub(crate) struct Deep;

/// The shapes of this scenario (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Checked,
    Enable,
    Put,
}

impl Shape {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Shape::Checked => "checked",
            Shape::Enable => "enable",
            Shape::Put => "put",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Shape> {
        [Shape::Checked, Shape::Enable, Shape::Put]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

/// What one run of a shape measured.
#[derive(Debug, Default)]
pub(crate) struct ShapeRun {
    pub(crate) ops: u64,
    pub(crate) peak: Option<u64>,
}

/// Runs `shape` at `depth` on threads with a 256 KiB stack; `phase` is told each phase as it
/// starts (the child process prints it, so that a crash can be placed).
pub(crate) fn run_shape<B: Backend>(
    shape: Shape,
    depth: usize,
    threads: usize,
    seed: u64,
    checks: &Arc<Checks>,
    phase: &(dyn Fn(&str) + Sync),
) -> ShapeRun {
    let cfg = RunConfig {
        threads,
        seconds: None,
        ops: None,
        depth,
        width: 1,
        seed,
        quick: false,
    };
    let peak = Peak::default();
    let ops = AtomicU64::new(0);
    let heart = checks.watch.helper("main");
    // Build, on a small stack too: building must not recurse either.
    phase("build");
    heart.at(Op::Build);
    let (root, mut leaves) = run_small("deep-build", &peak, || {
        build::<B>(shape, depth, checks, &ops)
    });

    let root_check = if shape == Shape::Enable {
        phase("enable");
        heart.at(Op::AddCallback);
        Some(run_small("deep-enable", &peak, || {
            enable_root(&root, checks)
        }))
    } else {
        None
    };

    if shape != Shape::Put {
        phase("signal");
        heart.at(Op::Signal);
        leaves.shuffle(&mut cfg.rng(1));
        let chunk = leaves.len().div_ceil(threads.max(1)).max(1);
        thread::scope(|s| {
            let mut handles = Vec::new();
            for (t, part) in leaves.chunks(chunk).enumerate() {
                let (cfg, ops, peak) = (&cfg, &ops, &peak);
                handles.push(spawn_small(
                    s,
                    format!("deep-signal-{t}"),
                    peak,
                    move || {
                        let mut rng = cfg.rng(10 + t as u64);
                        let mut n = 0;
                        for leaf in part {
                            n += signal_leaf(leaf, &mut rng, 64, checks);
                        }
                        ops.fetch_add(n, Ordering::Relaxed);
                        checks.flush_latency();
                    },
                ));
            }
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
    }
    if shape != Shape::Put {
        // Every backend completes a container on the thread whose signal completed it,
        // before that signal returns (`Locked` runs its irq_work as the signaller releases
        // its outermost fence lock): with every leaf's signal returned, the root is done.
        checks.violations.check(root.test_signaled_flag(), || {
            format!(
                "deep/{}: the root is pending after every leaf's signal returned",
                shape.name()
            )
        });
    }
    if let Some((seen, refused)) = root_check {
        let leaf_failed = leaves.iter().any(|l| l.error().is_some());
        let got = seen.load(Ordering::Acquire);
        checks.violations.check(refused || got != 0, || {
            "deep/enable: the root's callback did not run".into()
        });
        checks
            .violations
            .check(got == 0 || (got == 2) == leaf_failed, || {
                format!("deep/enable: root error state {got}, but a leaf failed: {leaf_failed}")
            });
    }

    phase("drop");
    heart.at(Op::Drop);
    drop(leaves);
    run_small("deep-drop", &peak, move || drop(root));
    heart.idle();
    phase("done");
    ShapeRun {
        ops: ops.load(Ordering::Relaxed),
        peak: peak.get(),
    }
}

/// Installs the root's callback in the `enable` shape. The result becomes 1 when it ran
/// without an error, 2 with one; the flag is true if the root had already signalled.
fn enable_root<B: Backend>(root: &Fence<B>, checks: &Checks) -> (Arc<AtomicU64>, bool) {
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let mut writer = checks.ledger.writer();
    let ticket = writer.ticket();
    let mine = ticket.share();
    match root.add_callback(move |f| {
        s.store(if f.error().is_some() { 2 } else { 1 }, Ordering::Release);
        ticket.ran();
    }) {
        Ok(_) => {
            mine.installed();
            (seen, false)
        }
        Err(_) => {
            mine.refused();
            (seen, true)
        }
    }
}

/// Builds the tree; returns the root and the leaves.
fn build<B: Backend>(
    shape: Shape,
    depth: usize,
    checks: &Checks,
    ops: &AtomicU64,
) -> (Fence<B>, Vec<Fence<B>>) {
    let mut leaves = Vec::with_capacity(depth);
    if shape == Shape::Checked {
        let mut b = Builder::<B>::new(checks, "deep");
        let leaf = b.leaf();
        leaves.push(leaf.fence.clone());
        let mut level = b.array(&[&leaf], false);
        for k in 1..depth {
            let leaf = b.leaf();
            leaves.push(leaf.fence.clone());
            level = b.array(&[&level, &leaf], k % 8 == 7);
        }
        ops.fetch_add(b.ops, Ordering::Relaxed);
        (level.fence, leaves)
    } else {
        let tl = Timeline::new_in("deep", B::default());
        let leaf = tracked_fence(&tl, 1, "deep");
        leaves.push(leaf.clone());
        let mut level = FenceArray::create(vec![leaf], context_alloc(1), 1, false).expect("one");
        for k in 1..depth {
            let leaf = tracked_fence(&tl, k as u64 + 1, "deep");
            leaves.push(leaf.clone());
            level = FenceArray::create(vec![level, leaf], context_alloc(1), 1, false)
                .expect("two members");
        }
        ops.fetch_add(2 * depth as u64, Ordering::Relaxed);
        (level, leaves)
    }
}

impl Scenario for Deep {
    const NAME: &'static str = "deep";
    const ABOUT: &'static str = "arrays of arrays to depth D (default 100000), random leaf order, 256 KiB stacks; Locked probed in child processes";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let start = std::time::Instant::now();
        let depth = cfg.depth.max(10);
        let mut ops = 0;
        let mut peak: Option<u64> = None;
        let quiet = |_: &str| {};
        if !backends::of::<B>().strict {
            lockdep::reset();
            let mut safe = depth;
            let mut limits = Vec::new();
            for shape in [Shape::Put, Shape::Enable] {
                let probe = contained::probe_depths(B::NAME, shape, depth, cfg.seed, cfg.quick);
                safe = safe.min(probe.survived.unwrap_or(0));
                outcome.notes.push(probe.describe());
                if let Some(failure) = &probe.failure {
                    limits.push(format!("{}: {failure}", shape.name()));
                }
                peak = peak.max(probe.peak);
                outcome.lock_dependencies = outcome.lock_dependencies.max(probe.lock_deps);
            }
            if !limits.is_empty() {
                outcome.known_limit = Some(limits.join("; "));
            }
            // The checked shape in the process, well below the first failure.
            let bounded = (safe / 4).min(depth);
            if bounded >= 2 {
                let run = run_shape::<B>(
                    Shape::Checked,
                    bounded,
                    cfg.threads,
                    cfg.seed,
                    checks,
                    &quiet,
                );
                ops += run.ops;
                outcome.notes.push(format!(
                    "checked shape in process at bounded depth {bounded}: peak stack {}",
                    kib(run.peak)
                ));
                peak = peak.max(run.peak);
            }
            let report = lockdep::report();
            outcome.lock_dependencies = outcome
                .lock_dependencies
                .max(Some(report.dependencies.len() as u64));
        } else {
            for shape in [Shape::Checked, Shape::Enable, Shape::Put] {
                let small = run_shape::<B>(shape, 10, cfg.threads, cfg.seed, checks, &quiet);
                let big = run_shape::<B>(shape, depth, cfg.threads, cfg.seed, checks, &quiet);
                ops += small.ops + big.ops;
                outcome.notes.push(format!(
                    "{}: depth {depth} reached, peak stack {} (depth 10: {})",
                    shape.name(),
                    kib(big.peak),
                    kib(small.peak)
                ));
                peak = peak.max(big.peak).max(small.peak);
            }
        }
        rcu_fence::synchronize_rcu();
        outcome.ops = ops;
        outcome.set_elapsed(start.elapsed());
        outcome.peak_stack_bytes = peak;
        checks.finish(&mut outcome);
        outcome
    }
}

/// Bytes as KiB for notes.
pub(crate) fn kib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0))
}

/// The child side of a contained run: runs `shape` at `depth` and prints each phase, then
/// one `ok` line with what it measured. A crash leaves the last phase as the last line.
pub(crate) fn child<B: Backend>(shape: Shape, depth: usize, seed: u64) -> i32 {
    let checks = Arc::new(Checks::new(1, &[]));
    let phase = |p: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "phase {p}");
        let _ = out.flush();
    };
    let run = run_shape::<B>(shape, depth, 2, seed, &checks, &phase);
    rcu_fence::synchronize_rcu();
    let mut outcome = Outcome::new("deep", B::NAME, seed, 2);
    checks.finish(&mut outcome);
    let deps = lockdep::report();
    println!(
        "ok peak={} violations={} leaked={} deps={} same_class={} warnings={}",
        run.peak.unwrap_or(0),
        outcome.violations,
        outcome.leaked,
        deps.dependencies.len(),
        deps.same_class.iter().map(|(_, n)| n).sum::<u64>(),
        deps.nesting_warning_count()
    );
    i32::from(outcome.violations > 0 || outcome.leaked > 0)
}
