//! What every scenario is checked against.
//!
//! - [`Ledger`]: one byte per callback, so that a callback run twice, run after it was taken
//!   back, or never run at all is caught and named, not just counted.
//! - [`Live`]: gauges of objects the scenario created (fences, callback closures) that must
//!   all be gone once the scenario has dropped its handles.
//! - [`Violations`]: the count and the first few descriptions of every broken promise.
//! - [`Watch`] and [`Watchdog`]: per-thread heartbeats with the name of the operation in
//!   progress; a thread that stays inside one operation for too long fails the whole run and
//!   is named.
//! - [`latency`]: per-thread signal-to-callback histograms, merged at the end of a run.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{Latency, Outcome};

/// How many violation descriptions are kept (the count goes on).
const KEPT_VIOLATIONS: usize = 16;

/// Broken promises seen during one run.
#[derive(Debug, Default)]
pub(crate) struct Violations {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Violations {
    /// Records one violation.
    pub(crate) fn report(&self, what: impl Into<String>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < KEPT_VIOLATIONS {
            first.push(what.into());
        }
    }

    /// Checks a condition; reports `what` if it does not hold.
    pub(crate) fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.report(what());
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn descriptions(&self) -> Vec<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

// ---------------------------------------------------------------------------------------
// Exactly-once ledger
// ---------------------------------------------------------------------------------------

/// Slots per chunk of the ledger.
const CHUNK: usize = 4096;

/// Low bits of a slot: how many times the callback has finished running.
const RUNS: u8 = 0x0f;
/// `add_callback` returned `Ok`: the callback must run exactly once unless removed.
const INSTALLED: u8 = 1 << 4;
/// `add_callback` returned `Err`: the callback must never run.
const REFUSED: u8 = 1 << 5;
/// `remove_callback` returned `true`: the callback must never run.
const REMOVED: u8 = 1 << 6;

struct Chunk {
    slots: Box<[AtomicU8]>,
    used: AtomicUsize,
    violations: Arc<Violations>,
}

impl Chunk {
    fn new(violations: Arc<Violations>) -> Arc<Chunk> {
        Arc::new(Chunk {
            slots: (0..CHUNK).map(|_| AtomicU8::new(0)).collect(),
            used: AtomicUsize::new(0),
            violations,
        })
    }
}

/// One byte of state per callback, for every callback a run creates.
///
/// Each thread takes [`Ticket`]s from its own [`LedgerWriter`]; the ticket travels in the
/// callback's closure and records the run, and a second handle on it, kept by the thread
/// that added the callback, records what `add_callback` and `remove_callback` answered.
/// Nothing is counted in shared counters on the hot path: [`Ledger::audit`] derives the
/// totals and checks every slot once all fences are signalled.
pub(crate) struct Ledger {
    chunks: Mutex<Vec<Arc<Chunk>>>,
    violations: Arc<Violations>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// Totals of a ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// `add_callback` returned `Ok`.
    pub(crate) installed: u64,
    /// `add_callback` returned `Err(AlreadySignaled)`.
    pub(crate) refused: u64,
    /// `remove_callback` returned `true`.
    pub(crate) removed: u64,
    /// Callback runs (each exactly once, if the run is clean).
    pub(crate) delivered: u64,
}

impl Ledger {
    pub(crate) fn new(violations: Arc<Violations>) -> Ledger {
        Ledger {
            chunks: Mutex::new(Vec::new()),
            violations,
        }
    }

    /// A writer for one thread.
    pub(crate) fn writer(&self) -> LedgerWriter<'_> {
        LedgerWriter {
            ledger: self,
            chunk: None,
            next: CHUNK,
        }
    }

    /// Callbacks installed, not removed, that have not run yet.
    pub(crate) fn outstanding(&self) -> u64 {
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for chunk in chunks.iter() {
            let used = chunk.used.load(Ordering::Acquire);
            for slot in &chunk.slots[..used] {
                let s = slot.load(Ordering::Acquire);
                if s & INSTALLED != 0 && s & (REMOVED | REFUSED) == 0 && s & RUNS == 0 {
                    n += 1;
                }
            }
        }
        n
    }

    /// Checks every slot (installed and not removed: ran exactly once; refused or removed:
    /// never ran) and returns the totals. Call once every fence of the run has signalled.
    pub(crate) fn audit(&self) -> Tally {
        let violations = &self.violations;
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut tally = Tally::default();
        let mut never_ran = 0u64;
        for (c, chunk) in chunks.iter().enumerate() {
            let used = chunk.used.load(Ordering::Acquire);
            for (i, slot) in chunk.slots[..used].iter().enumerate() {
                let s = slot.load(Ordering::Acquire);
                let runs = s & RUNS;
                let id = c * CHUNK + i;
                tally.delivered += u64::from(runs);
                if s & REFUSED != 0 {
                    tally.refused += 1;
                    violations.check(runs == 0, || {
                        format!("callback #{id} ran although add_callback refused it")
                    });
                } else if s & REMOVED != 0 {
                    tally.installed += 1;
                    tally.removed += 1;
                    violations.check(runs == 0, || {
                        format!("callback #{id} ran although remove_callback returned true")
                    });
                } else if s & INSTALLED != 0 {
                    tally.installed += 1;
                    if runs == 0 {
                        never_ran += 1;
                        if never_ran <= 4 {
                            violations
                                .report(format!("callback #{id} was installed and never ran"));
                        } else {
                            violations.report("more callbacks installed and never run");
                        }
                    }
                } else {
                    violations.report(format!(
                        "callback #{id}: add_callback never returned (harness error)"
                    ));
                }
            }
        }
        tally
    }
}

/// A thread's source of [`Ticket`]s.
pub(crate) struct LedgerWriter<'a> {
    ledger: &'a Ledger,
    chunk: Option<Arc<Chunk>>,
    next: usize,
}

impl LedgerWriter<'_> {
    /// A fresh slot for one callback.
    pub(crate) fn ticket(&mut self) -> Ticket {
        if self.next == CHUNK {
            let chunk = Chunk::new(self.ledger.violations.clone());
            self.ledger
                .chunks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(chunk.clone());
            self.chunk = Some(chunk);
            self.next = 0;
        }
        let chunk = self.chunk.clone().expect("a chunk was just made");
        let index = self.next;
        self.next += 1;
        chunk.used.store(self.next, Ordering::Release);
        Ticket {
            chunk,
            index: index as u16,
        }
    }
}

/// The slot of one callback. One handle moves into the callback's closure; the thread that
/// added the callback keeps another ([`Ticket::share`]).
pub(crate) struct Ticket {
    chunk: Arc<Chunk>,
    index: u16,
}

impl Ticket {
    fn slot(&self) -> &AtomicU8 {
        &self.chunk.slots[self.index as usize]
    }

    fn violations(&self) -> &Violations {
        &self.chunk.violations
    }

    /// Another handle on the same slot, kept by the thread that added the callback.
    pub(crate) fn share(&self) -> Ticket {
        Ticket {
            chunk: self.chunk.clone(),
            index: self.index,
        }
    }

    /// `add_callback` returned `Ok`.
    pub(crate) fn installed(&self) {
        self.slot().fetch_or(INSTALLED, Ordering::AcqRel);
    }

    /// `add_callback` returned `Err`: the closure was dropped without running.
    pub(crate) fn refused(&self) {
        let prev = self.slot().fetch_or(REFUSED, Ordering::AcqRel);
        self.violations().check(prev & RUNS == 0, || {
            "add_callback returned Err but the callback ran".to_string()
        });
    }

    /// Records what `remove_callback` answered and checks the promise behind it: `true`
    /// means it never ran (and never will), `false` that it has run to completion.
    pub(crate) fn removed(&self, answer: bool, op: &str) {
        if answer {
            let prev = self.slot().fetch_or(REMOVED, Ordering::AcqRel);
            self.violations().check(prev & RUNS == 0, || {
                format!("{op}: remove_callback returned true but the callback had run")
            });
        } else {
            let runs = self.slot().load(Ordering::Acquire) & RUNS;
            self.violations().check(runs == 1, || {
                format!("{op}: remove_callback returned false but the callback had completed {runs} runs (expected 1)")
            });
        }
    }

    /// Called by the callback as the last thing it does: counts the run and checks that it
    /// is the first and that the callback had not been taken back.
    pub(crate) fn ran(&self) {
        let prev = self.slot().fetch_add(1, Ordering::AcqRel);
        self.violations()
            .check(prev & RUNS == 0, || "a callback ran twice".to_string());
        self.violations()
            .check(prev & (REMOVED | REFUSED) == 0, || {
                "a callback ran after remove_callback returned true or add_callback refused it"
                    .to_string()
            });
    }

    /// Reports a broken promise seen inside a callback.
    pub(crate) fn report(&self, what: impl Into<String>) {
        self.violations().report(what);
    }
}

// ---------------------------------------------------------------------------------------
// Live objects
// ---------------------------------------------------------------------------------------

const SHARDS: usize = 32;

#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicI64);

/// A gauge of live objects, sharded so that counting does not itself serialise the threads.
pub(crate) struct Live {
    name: &'static str,
    shards: [Shard; SHARDS],
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("name", &self.name)
            .field("now", &self.now())
            .finish()
    }
}

/// Live fences made by the scenarios (through [`crate::scenarios::TrackedOps`]).
pub(crate) static FENCES: Live = Live::new("fences");
/// Live callback closures (installed, not yet run or dropped).
pub(crate) static CALLBACKS: Live = Live::new("callbacks");

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Live {
    const fn new(name: &'static str) -> Live {
        Live {
            name,
            shards: [const { Shard(AtomicI64::new(0)) }; SHARDS],
        }
    }

    /// Counts one object until the token is dropped.
    pub(crate) fn token(&'static self) -> LiveToken {
        let shard = SHARD.with(|s| *s) as u8;
        self.shards[shard as usize]
            .0
            .fetch_add(1, Ordering::Relaxed);
        LiveToken { live: self, shard }
    }

    /// How many objects are alive now.
    pub(crate) fn now(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Acquire))
            .sum()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// One live object; dropping it uncounts the object.
pub(crate) struct LiveToken {
    live: &'static Live,
    shard: u8,
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.live.shards[self.shard as usize]
            .0
            .fetch_sub(1, Ordering::Release);
    }
}

/// Waits up to `patience` for every gauge to come back to its level at the start of the run
/// (deferred reclamation may lag) and returns how many objects are still alive.
pub(crate) fn settle(baseline: &[(&'static Live, i64)], patience: Duration) -> (u64, Vec<String>) {
    let until = Instant::now() + patience;
    loop {
        let left: Vec<(&'static str, i64)> = baseline
            .iter()
            .map(|(l, b)| (l.name(), l.now() - b))
            .filter(|(_, n)| *n != 0)
            .collect();
        if left.is_empty() {
            return (0, Vec::new());
        }
        if Instant::now() >= until {
            let total = left.iter().map(|(_, n)| n.unsigned_abs()).sum();
            let notes = left
                .iter()
                .map(|(name, n)| format!("{n} {name} still alive at the end"))
                .collect();
            return (total, notes);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------

/// A histogram of 1 ns to 60 s at 3 significant digits. (Fixed bounds: with the default
/// auto-resizing bounds, `saturating_record` clamps at the initial tiny range.)
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Signal-to-callback latency, recorded on whichever thread runs the callback.
pub(crate) mod latency {
    use super::*;

    thread_local! {
        static LOCAL: RefCell<Option<Histogram<u64>>> = const { RefCell::new(None) };
        /// True on the `Locked` backend's irq_work thread, which belongs to the library and
        /// never flushes: its samples go straight to [`FOREIGN`].
        static FOREIGN_THREAD: bool =
            std::thread::current().name() == Some("fence-irq-work");
    }

    /// Samples recorded on threads the scenarios do not own (see `FOREIGN_THREAD`).
    static FOREIGN: Mutex<Option<Histogram<u64>>> = Mutex::new(None);

    /// Moves the samples recorded on foreign threads into `into` (and clears them).
    pub(crate) fn take_foreign(into: &Mutex<Histogram<u64>>) {
        let foreign = FOREIGN.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = foreign {
            let _ = into.lock().unwrap_or_else(|e| e.into_inner()).add(&h);
        }
    }

    /// Records one sample (nanoseconds) on this thread.
    pub(crate) fn record(nanos: u64) {
        if FOREIGN_THREAD.with(|f| *f) {
            let mut foreign = FOREIGN.lock().unwrap_or_else(|e| e.into_inner());
            foreign
                .get_or_insert_with(new_histogram)
                .saturating_record(nanos.max(1));
            return;
        }
        LOCAL.with(|h| {
            let mut h = h.borrow_mut();
            let h = h.get_or_insert_with(new_histogram);
            h.saturating_record(nanos.max(1));
        });
    }

    /// Moves this thread's samples into `into`.
    pub(crate) fn flush(into: &Mutex<Histogram<u64>>) {
        if let Some(local) = LOCAL.with(|h| h.borrow_mut().take()) {
            let mut all = into.lock().unwrap_or_else(|e| e.into_inner());
            let _ = all.add(&local);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Heartbeats and the watchdog
// ---------------------------------------------------------------------------------------

/// What a thread is doing, for the watchdog's report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
#[allow(dead_code)] // later scenarios use the container operations
pub(crate) enum Op {
    Idle = 0,
    Setup,
    AddCallback,
    RemoveCallback,
    Signal,
    SetError,
    Wait,
    WaitTimeout,
    Await,
    Drop,
    Cleanup,
    Build,
    Walk,
}

impl Op {
    const ALL: [Op; 13] = [
        Op::Idle,
        Op::Setup,
        Op::AddCallback,
        Op::RemoveCallback,
        Op::Signal,
        Op::SetError,
        Op::Wait,
        Op::WaitTimeout,
        Op::Await,
        Op::Drop,
        Op::Cleanup,
        Op::Build,
        Op::Walk,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Idle => "idle",
            Op::Setup => "setup",
            Op::AddCallback => "add_callback",
            Op::RemoveCallback => "remove_callback",
            Op::Signal => "signal",
            Op::SetError => "set_error",
            Op::Wait => "wait",
            Op::WaitTimeout => "wait_timeout",
            Op::Await => "await",
            Op::Drop => "drop",
            Op::Cleanup => "cleanup",
            Op::Build => "build",
            Op::Walk => "walk",
        }
    }

    fn from_u8(v: u8) -> Op {
        Op::ALL.get(v as usize).copied().unwrap_or(Op::Idle)
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Beat {
    count: AtomicU64,
    op: AtomicU8,
}

/// Heartbeats of the threads of one run.
pub(crate) struct Watch {
    beats: Box<[Beat]>,
    names: Box<[String]>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("threads", &self.names)
            .finish()
    }
}

impl Watch {
    /// Heartbeat slots for `workers` worker threads plus the named helper threads.
    pub(crate) fn new(workers: usize, helpers: &[&str]) -> Watch {
        let names: Vec<String> = (0..workers)
            .map(|i| format!("worker {i}"))
            .chain(helpers.iter().map(|h| h.to_string()))
            .collect();
        Watch {
            beats: names.iter().map(|_| Beat::default()).collect(),
            names: names.into(),
        }
    }

    /// The heartbeat of worker `i`.
    pub(crate) fn worker(&self, i: usize) -> Heart<'_> {
        Heart {
            beat: &self.beats[i],
        }
    }

    /// The heartbeat of the helper thread called `name`.
    pub(crate) fn helper(&self, name: &str) -> Heart<'_> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .expect("helper registered in Watch::new");
        Heart {
            beat: &self.beats[i],
        }
    }

    fn snapshot(&self) -> Vec<(u64, Op)> {
        self.beats
            .iter()
            .map(|b| {
                (
                    b.count.load(Ordering::Relaxed),
                    Op::from_u8(b.op.load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}

/// One thread's heartbeat.
#[derive(Clone, Copy)]
pub(crate) struct Heart<'a> {
    beat: &'a Beat,
}

impl Heart<'_> {
    /// Entering `op`: counts as progress.
    #[inline]
    pub(crate) fn at(&self, op: Op) {
        self.beat.op.store(op as u8, Ordering::Relaxed);
        self.beat.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Out of any operation: the watchdog leaves this thread alone.
    pub(crate) fn idle(&self) {
        self.at(Op::Idle);
    }
}

/// Fails the run if a thread stays inside one operation for longer than its timeout.
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Watches `watch`; on a stall, calls `on_stall` with a description naming the stuck
    /// threads and their operations. `on_stall` is expected not to return (it exits).
    pub(crate) fn start(
        watch: Arc<Watch>,
        label: String,
        timeout: Duration,
        on_stall: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut last = watch.snapshot();
                let mut since = vec![Instant::now(); last.len()];
                while !stop2.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(50));
                    let now = watch.snapshot();
                    let mut stuck = Vec::new();
                    for (i, ((count, op), (old, _))) in now.iter().zip(&last).enumerate() {
                        if count != old || *op == Op::Idle {
                            since[i] = Instant::now();
                        } else if since[i].elapsed() >= timeout {
                            stuck.push(format!("{} stuck in {}", watch.names[i], op.name()));
                        }
                    }
                    if !stuck.is_empty() {
                        on_stall(format!(
                            "{label}: no progress for {:.0} s: {}",
                            timeout.as_secs_f64(),
                            stuck.join(", ")
                        ));
                    }
                    last = now;
                }
            })
            .expect("spawn the watchdog");
        Watchdog {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Everything a scenario gets
// ---------------------------------------------------------------------------------------

/// The checks of one scenario on one backend.
#[derive(Debug)]
pub(crate) struct Checks {
    pub(crate) violations: Arc<Violations>,
    pub(crate) ledger: Ledger,
    pub(crate) watch: Arc<Watch>,
    latency: Mutex<Histogram<u64>>,
    baseline: Vec<(&'static Live, i64)>,
}

impl Checks {
    /// Fresh checks with heartbeats for `workers` workers, the given helper threads and the
    /// thread that runs the scenario itself (`"main"`).
    pub(crate) fn new(workers: usize, helpers: &[&str]) -> Checks {
        let violations = Arc::new(Violations::default());
        // Samples left on foreign threads by an earlier run are not this run's.
        latency::take_foreign(&Mutex::new(new_histogram()));
        let mut names = helpers.to_vec();
        names.push("main");
        Checks {
            ledger: Ledger::new(violations.clone()),
            violations,
            watch: Arc::new(Watch::new(workers, &names)),
            latency: Mutex::new(new_histogram()),
            baseline: [&FENCES, &CALLBACKS]
                .into_iter()
                .map(|l| (l, l.now()))
                .collect(),
        }
    }

    /// Moves this thread's latency samples into the run's histogram; every thread that may
    /// have run callbacks calls it before it ends.
    pub(crate) fn flush_latency(&self) {
        latency::flush(&self.latency);
    }

    /// Once the scenario has signalled and dropped everything: audits the ledger, waits for
    /// the live gauges to settle and fills the standard columns of `outcome`.
    pub(crate) fn finish(&self, outcome: &mut Outcome) {
        self.flush_latency();
        latency::take_foreign(&self.latency);
        // `Locked` completes containers on its irq_work thread, after the scenario's own
        // threads are done: give those last callbacks a bounded moment to run before the
        // audit calls any of them "never ran".
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ledger.outstanding() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        latency::take_foreign(&self.latency);
        let tally = self.ledger.audit();
        outcome.callbacks_installed = tally.installed;
        outcome.callbacks_delivered = tally.delivered;
        outcome.callbacks_removed = tally.removed;
        let expected = tally.installed - tally.removed;
        self.violations.check(tally.delivered == expected, || {
            format!(
                "{} callbacks ran, expected {expected} ({} installed, {} removed)",
                tally.delivered, tally.installed, tally.removed
            )
        });
        let (leaked, notes) = settle(&self.baseline, Duration::from_secs(2));
        outcome.leaked = leaked;
        outcome.notes.extend(notes);
        outcome.violations = self.violations.count();
        outcome.notes.extend(self.violations.descriptions());
        outcome.latency =
            Latency::from_histogram(&self.latency.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_catches_double_run_never_run_and_run_after_remove() {
        let checks = Checks::new(1, &[]);
        let mut w = checks.ledger.writer();
        let twice = w.ticket();
        twice.installed();
        twice.ran();
        twice.ran();
        let never = w.ticket();
        never.installed();
        let removed = w.ticket();
        removed.installed();
        removed.removed(true, "test");
        removed.ran();
        let fine = w.ticket();
        fine.installed();
        fine.ran();
        fine.share().removed(false, "test");
        let refused = w.ticket();
        refused.refused();
        assert_eq!(
            checks.violations.count(),
            2,
            "{:?}",
            checks.violations.descriptions()
        );
        let tally = checks.ledger.audit();
        assert_eq!(
            tally,
            Tally {
                installed: 4,
                refused: 1,
                removed: 1,
                delivered: 4
            }
        );
        // + never ran, + removed but ran (seen again by the audit)
        assert_eq!(
            checks.violations.count(),
            4,
            "{:?}",
            checks.violations.descriptions()
        );
    }

    #[test]
    fn live_tokens_count_and_settle() {
        let base = [(&CALLBACKS, CALLBACKS.now())];
        let t = CALLBACKS.token();
        assert_eq!(settle(&base, Duration::ZERO).0, 1);
        drop(t);
        assert_eq!(settle(&base, Duration::ZERO).0, 0);
    }
}
