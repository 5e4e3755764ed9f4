//! The scenarios, and what they share: the run configuration, the stop condition, fences
//! that count themselves, a tiny `block_on`.
//!
//! Each scenario is a type implementing [`Scenario`]; its `run` is generic over the fence
//! backend, so the same code runs on every backend of [`backends::ALL`]. [`all`] lists them
//! in the order they run. Each scenario names its unit of work ([`Scenario::UNIT`]), counted
//! the same way on every backend, so that throughputs compare across backends.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rcu_fence::{Backend, Fence, FenceOps, Timeline};

use crate::backends::{self, Generic};
use crate::checks::{Checks, FENCES, LiveToken};
use crate::report::Outcome;

pub(crate) mod deep;
mod flat;
mod net;
mod readers;
mod sched;
mod shapes;
mod stalled;
mod syncobj;

/// How one scenario runs on one backend.
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    /// Worker threads.
    pub(crate) threads: usize,
    /// Time budget, if any.
    pub(crate) seconds: Option<Duration>,
    /// Work budget in the scenario's unit, if any (whichever budget runs out first ends the
    /// run).
    pub(crate) ops: Option<u64>,
    /// Nesting depth for the container scenarios.
    pub(crate) depth: usize,
    /// Fan-out for the container scenarios; fences per worker in `flat`.
    pub(crate) width: usize,
    /// This scenario's seed, derived from the run-wide seed and the scenario's name only:
    /// the same on every backend, so that each makes the same random draws.
    pub(crate) seed: u64,
    /// CI-sized run.
    pub(crate) quick: bool,
    /// Which slice of the scenario's budget this run is (from 0): the budget is split into
    /// slices run alternately on each backend. Work done once per scenario (`deep`'s depth
    /// probes) is done in slice 0.
    pub(crate) slice: usize,
}

impl RunConfig {
    /// The random stream number `stream` of this run (one per thread, say).
    pub(crate) fn rng(&self, stream: u64) -> SmallRng {
        SmallRng::seed_from_u64(mix(self.seed, stream))
    }
}

/// A scenario: a name, a one-line description and a run on any backend.
pub(crate) trait Scenario {
    /// The name used by `--scenario` and in the table.
    const NAME: &'static str;
    /// What it exercises, for `--help` and `--list`.
    const ABOUT: &'static str;
    /// What one op of its throughput is: the same unit of work on every backend.
    const UNIT: &'static str;
    /// Helper threads (besides the workers) that report heartbeats to the watchdog.
    const HELPERS: &'static [&'static str] = &[];

    /// Runs the scenario on backend `B` and reports what it measured. The standard columns
    /// (callbacks, violations, leaks, latency) come from [`Checks::finish`].
    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome;
}

/// A runnable entry of the scenario list.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) helpers: &'static [&'static str],
    run: fn(&str, &RunConfig, &Arc<Checks>) -> Option<Outcome>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Entry {
    fn of<S: Scenario>() -> Entry {
        Entry {
            name: S::NAME,
            about: S::ABOUT,
            unit: S::UNIT,
            helpers: S::HELPERS,
            run: run_on::<S>,
        }
    }

    /// Runs on the backend called `backend` (a name from [`backends::ALL`]).
    pub(crate) fn run(&self, backend: &str, cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        (self.run)(backend, cfg, checks)
            .unwrap_or_else(|| panic!("no backend called {backend} (see backends::ALL)"))
    }
}

/// Scenario `S`'s run, for [`backends::dispatch`].
struct Run<'a, S> {
    cfg: &'a RunConfig,
    checks: &'a Arc<Checks>,
    scenario: std::marker::PhantomData<S>,
}

impl<S: Scenario> Generic for Run<'_, S> {
    type Output = Outcome;
    fn call<B: Backend>(self) -> Outcome {
        let mut outcome = S::run::<B>(self.cfg, self.checks);
        outcome.unit = S::UNIT;
        outcome
    }
}

fn run_on<S: Scenario>(backend: &str, cfg: &RunConfig, checks: &Arc<Checks>) -> Option<Outcome> {
    backends::dispatch(
        backend,
        Run::<S> {
            cfg,
            checks,
            scenario: std::marker::PhantomData,
        },
    )
}

/// Every scenario, in the order they run.
pub(crate) fn all() -> Vec<Entry> {
    vec![
        Entry::of::<flat::Flat>(),
        Entry::of::<flat::Reentrant>(),
        Entry::of::<shapes::Wide>(),
        Entry::of::<deep::Deep>(),
        Entry::of::<shapes::ChainOfArrays>(),
        Entry::of::<shapes::ArrayOfChains>(),
        Entry::of::<shapes::Dag>(),
        Entry::of::<syncobj::SyncobjChurn>(),
        Entry::of::<readers::Readers>(),
        Entry::of::<sched::Sched>(),
        Entry::of::<stalled::Stalled>(),
    ]
}

// ---------------------------------------------------------------------------------------
// Stop condition
// ---------------------------------------------------------------------------------------

/// The budget of one run, shared by its threads.
#[derive(Debug)]
pub(crate) struct Stop {
    start: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    total: AtomicU64,
    stopped: AtomicBool,
}

impl Stop {
    pub(crate) fn new(cfg: &RunConfig) -> Stop {
        let start = Instant::now();
        Stop {
            start,
            deadline: cfg.seconds.map(|s| start + s),
            limit: cfg.ops,
            total: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// A per-thread counter of units of work drawing on this budget.
    pub(crate) fn meter(&self) -> Meter<'_> {
        Meter {
            stop: self,
            unflushed: 0,
            calls: 0,
        }
    }

    /// Units of work counted so far (flushed meters only).
    pub(crate) fn ops(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Counts `n` units done by a round-based scenario; true while the budget lasts.
    pub(crate) fn round_done(&self, n: u64) -> bool {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.check()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn check(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let out_of_time = self.deadline.is_some_and(|d| Instant::now() >= d);
        let out_of_ops = self
            .limit
            .is_some_and(|l| self.total.load(Ordering::Relaxed) >= l);
        if out_of_time || out_of_ops {
            self.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// One thread's count of units of work; flushed to the shared total every few iterations so
/// that counting costs no shared write per unit.
#[derive(Debug)]
pub(crate) struct Meter<'a> {
    stop: &'a Stop,
    unflushed: u64,
    calls: u32,
}

impl Meter<'_> {
    /// Counts `n` units.
    #[inline]
    pub(crate) fn add(&mut self, n: u64) {
        self.unflushed += n;
    }

    /// True while the budget lasts; call once per loop iteration.
    pub(crate) fn keep_going(&mut self) -> bool {
        self.calls = self.calls.wrapping_add(1);
        if self.calls % 32 != 0 {
            return !self.stop.is_stopped();
        }
        self.flush();
        self.stop.check()
    }

    fn flush(&mut self) {
        self.stop
            .total
            .fetch_add(std::mem::take(&mut self.unflushed), Ordering::Relaxed);
    }
}

impl Drop for Meter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Fence hooks that only carry names and a live-object token (no `signaled` poll): every
/// fence made with them is counted until its last reference is gone.
pub(crate) struct TrackedOps {
    timeline: &'static str,
    _live: LiveToken,
}

impl<B: Backend> FenceOps<B> for TrackedOps {
    fn driver_name(&self) -> &str {
        "stress"
    }

    fn timeline_name(&self) -> &str {
        self.timeline
    }

    fn polls(&self) -> bool {
        false // no `signaled` poll: the flag answers
    }
}

/// A pending fence on `timeline` that counts in the live-fence gauge.
pub(crate) fn tracked_fence<B: Backend>(
    timeline: &Timeline<B>,
    seqno: u64,
    name: &'static str,
) -> Fence<B> {
    timeline.fence_with_ops(
        seqno,
        Arc::new(TrackedOps {
            timeline: name,
            _live: FENCES.token(),
        }),
    )
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread, parking between polls.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// SplitMix64 of `a` combined with `b`: independent seeds from one seed.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable number for a name (FNV-1a), to derive per-scenario seeds.
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
