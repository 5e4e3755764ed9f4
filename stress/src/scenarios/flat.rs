//! `flat` and `reentrant`: plain fences, no containers, hammered from every thread.
//!
//! A shared pool holds `width × threads` pending fences. Each worker picks a random fence
//! and a random operation: add a callback, take one back, signal (sometimes after setting an
//! error), `wait`, `wait_timeout`, `.await`, or let go of a callback id. A signalled fence
//! is replaced by a fresh one. A ticker thread signals every fence that has been pending
//! for a little while, so that every blocking wait ends.
//!
//! The unit is an **action**: one of those operations by a worker, or one signal by the
//! ticker (a `set_error` and the `signal` after it count as one).
//!
//! Checked: every callback whose `add_callback` returned `Ok` runs exactly once unless a
//! `remove_callback` returned `true` (then never); `remove_callback` returning `false` means
//! the callback has completed; a refused callback never runs; a callback sees its fence
//! signalled; an error set before signalling is reported; waits return only once signalled;
//! every fence and closure is freed at the end.
//!
//! In `flat` every callback only records (latency, its run): the same work on every backend.
//! `reentrant` is the same run where three callbacks in ten also use the fence API from
//! inside the callback: signal and add to their own (signalled) fence, take back a sibling
//! callback of the same fence, and signal another fence of the pool (a cascade). It runs on
//! backends whose callbacks run with no lock held, and is skipped elsewhere: where callbacks
//! run under the fence's lock, touching their own fence deadlocks by design, and signalling
//! another fence nests two fence locks in either order (the kernel's problem 1). Its
//! throughput has no counterpart on the classic scheme, so it has no ratio.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use rcu_fence::{Backend, CallbackId, Errno, Fence, FenceError, Status, Timeline};

use super::{RunConfig, Scenario, Stop, block_on, tracked_fence};
use crate::backends;
use crate::checks::{CALLBACKS, Checks, Op, Ticket, Violations, latency};
use crate::report::Outcome;

/// Plain fences under every operation at once; callbacks only record.
#[derive(Debug)]
pub(crate) struct Flat;

/// `flat` with callbacks that use the fence API from inside the callback.
#[derive(Debug)]
pub(crate) struct Reentrant;

/// Callback ids a worker keeps for a later `remove_callback`.
const HELD: usize = 64;

/// A fence pending for longer than this is signalled by the ticker.
const MAX_AGE: Duration = Duration::from_micros(500);

/// How long the ticker sleeps between passes.
const TICK: Duration = Duration::from_micros(250);

/// The unit of `flat` and `reentrant`.
const ACTIONS: &str = "actions";

impl Scenario for Flat {
    const NAME: &'static str = "flat";
    const ABOUT: &'static str = "plain fences: add/remove_callback, signal, set_error, wait, wait_timeout and .await from every thread";
    const UNIT: &'static str = ACTIONS;
    const HELPERS: &'static [&'static str] = &["ticker"];

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        run_pool::<B>(Self::NAME, false, cfg, checks)
    }
}

impl Scenario for Reentrant {
    const NAME: &'static str = "reentrant";
    const ABOUT: &'static str = "flat, with callbacks that signal other fences and add to or remove from their own (backends whose callbacks hold no lock)";
    const UNIT: &'static str = ACTIONS;
    const HELPERS: &'static [&'static str] = &["ticker"];

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        if !backends::of::<B>().unlocked_callbacks {
            let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
            outcome.skipped = Some(
                "callbacks run under the fence's lock: using the fence API from one deadlocks or nests fence locks by design"
                    .into(),
            );
            return outcome;
        }
        run_pool::<B>(Self::NAME, true, cfg, checks)
    }
}

/// Runs the pool; `reentrant` lets callbacks use the fence API.
fn run_pool<B: Backend>(
    name: &'static str,
    reentrant: bool,
    cfg: &RunConfig,
    checks: &Arc<Checks>,
) -> Outcome {
    let mut outcome = Outcome::new(name, B::NAME, cfg.seed, cfg.threads);
    let main = checks.watch.helper("main");
    main.at(Op::Setup);
    let pool = Arc::new(Pool::<B>::new(
        cfg.width.max(1) * cfg.threads,
        checks.violations.clone(),
    ));
    let stop = Stop::new(cfg);
    let done = AtomicUsize::new(0);
    let waiting = Waiting::default();
    main.idle();

    thread::scope(|s| {
        for t in 0..cfg.threads {
            let (pool, stop, done, waiting) = (&pool, &stop, &done, &waiting);
            thread::Builder::new()
                .name(format!("flat-{t}"))
                .spawn_scoped(s, move || {
                    worker(t, reentrant, cfg, checks, pool, stop, waiting);
                    done.fetch_add(1, Ordering::Release);
                })
                .expect("spawn a worker");
        }
        let (pool, stop, done) = (&pool, &stop, &done);
        thread::Builder::new()
            .name("flat-ticker".into())
            .spawn_scoped(s, move || ticker(cfg.threads, checks, pool, stop, done))
            .expect("spawn the ticker");
    });
    outcome.set_elapsed(stop.elapsed());
    outcome.ops = stop.ops();

    // Signal whatever is still pending, so that every installed callback runs, then let
    // go of the pool: every fence and closure must now be gone.
    main.at(Op::Cleanup);
    for i in 0..pool.slots.len() {
        let _ = pool.get(i).signal();
    }
    drop(pool);
    main.idle();
    checks.finish(&mut outcome);
    outcome
}

struct Slot<B: Backend> {
    fence: Fence<B>,
    born: Instant,
}

/// The shared fences. The mutexes guard the slots only: no fence operation and no fence
/// drop happens while one is held.
struct Pool<B: Backend> {
    slots: Box<[Mutex<Slot<B>>]>,
    timeline: Timeline<B>,
    seqno: AtomicU64,
    violations: Arc<Violations>,
}

impl<B: Backend> Pool<B> {
    fn new(n: usize, violations: Arc<Violations>) -> Pool<B> {
        let timeline = Timeline::new_in("flat", B::default());
        let seqno = AtomicU64::new(0);
        let slots = (0..n)
            .map(|_| {
                let s = seqno.fetch_add(1, Ordering::Relaxed) + 1;
                Mutex::new(Slot {
                    fence: tracked_fence(&timeline, s, "flat"),
                    born: Instant::now(),
                })
            })
            .collect();
        Pool {
            slots,
            timeline,
            seqno,
            violations,
        }
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Slot<B>> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, i: usize) -> Fence<B> {
        self.lock(i).fence.clone()
    }

    /// The fence in slot `i` if it has been pending for at least `age`.
    fn get_if_older(&self, i: usize, age: Duration) -> Option<Fence<B>> {
        let slot = self.lock(i);
        (slot.born.elapsed() >= age).then(|| slot.fence.clone())
    }

    /// Signals `fence` (taken from slot `i`), checks the result, and puts a fresh fence in
    /// the slot if this call signalled it.
    fn signal(&self, i: usize, fence: &Fence<B>) -> Result<(), FenceError> {
        let result = fence.signal();
        let v = &self.violations;
        match result {
            Ok(()) => {
                v.check(fence.timestamp().is_some(), || {
                    "signal returned Ok but the fence has no timestamp".into()
                });
                self.renew(i, fence);
            }
            Err(FenceError::AlreadySignaled) => {}
            Err(e) => v.report(format!("signal returned {e:?}")),
        }
        v.check(fence.test_signaled_flag(), || {
            "signal returned but the fence is not signalled".into()
        });
        result
    }

    /// Replaces `old` in slot `i` with a fresh fence, if it is still there.
    fn renew(&self, i: usize, old: &Fence<B>) {
        let seqno = self.seqno.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fresh = Slot {
            fence: tracked_fence(&self.timeline, seqno, "flat"),
            born: Instant::now(),
        };
        {
            let mut slot = self.lock(i);
            if slot.fence.ptr_eq(old) {
                std::mem::swap(&mut *slot, &mut fresh);
            }
        }
        // Dropped here, outside the slot's mutex: the old fence, or the unused fresh one.
        drop(fresh);
    }
}

/// A callback id kept for a later `remove_callback`.
struct Held<B: Backend> {
    fence: Fence<B>,
    id: CallbackId<B>,
    ticket: Ticket,
}

/// What a callback does besides recording its run.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Record latency and the run: the only kind in `flat`.
    Plain,
    /// Signal and add a callback to its own fence: both must be refused.
    OwnFence,
    /// Take back a sibling callback of the same fence.
    Sibling,
    /// Signal another fence of the pool.
    Cascade(usize),
}

/// A sibling's id, handed to the callback that will try to take it back.
type SiblingCell<B> = Arc<Mutex<Option<(CallbackId<B>, Ticket)>>>;

/// Builds a callback of the given kind; the ticket records its run.
fn callback<B: Backend>(
    kind: Kind,
    ticket: Ticket,
    pool: Weak<Pool<B>>,
    sibling: Option<SiblingCell<B>>,
) -> impl FnOnce(&Fence<B>) + Send + 'static {
    let live = CALLBACKS.token();
    move |f: &Fence<B>| {
        if let Some(at) = f.timestamp() {
            latency::record(at.elapsed().as_nanos() as u64);
        }
        if !f.test_signaled_flag() {
            ticket.report("a callback ran before its fence was marked signalled");
        }
        match kind {
            Kind::Plain => {}
            Kind::OwnFence => {
                if f.signal() != Err(FenceError::AlreadySignaled) {
                    ticket
                        .report("signal from inside a callback of the same fence was not refused");
                }
                let witness = ticket.share();
                if f.add_callback(move |_| {
                    witness.report("a callback added to a signalled fence ran")
                })
                .is_ok()
                {
                    ticket.report(
                        "add_callback from inside a callback of the same fence was accepted",
                    );
                }
                if !f.status().is_signaled() {
                    ticket.report("status inside a callback is pending");
                }
            }
            Kind::Sibling => {
                let taken =
                    sibling.and_then(|cell| cell.lock().unwrap_or_else(|e| e.into_inner()).take());
                if let Some((id, their)) = taken {
                    let answer = f.remove_callback(id);
                    their.removed(answer, "sibling callback");
                }
            }
            Kind::Cascade(j) => {
                if let Some(pool) = pool.upgrade() {
                    let g = pool.get(j);
                    let _ = pool.signal(j, &g);
                }
            }
        }
        ticket.ran();
        drop(live);
    }
}

/// Counts the workers blocked in `wait` or `.await`, so that at least one worker is always
/// free to signal: the ticker is only the backstop. (A lone worker never blocks: it would
/// measure the ticker's sleep.)
#[derive(Debug, Default)]
struct Waiting(AtomicUsize);

impl Waiting {
    fn may_block(&self, workers: usize) -> bool {
        self.0.load(Ordering::Relaxed) + 1 < workers
    }

    fn block<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.fetch_add(1, Ordering::Relaxed);
        let t = f();
        self.0.fetch_sub(1, Ordering::Relaxed);
        t
    }
}

fn worker<B: Backend>(
    t: usize,
    reentrant: bool,
    cfg: &RunConfig,
    checks: &Arc<Checks>,
    pool: &Arc<Pool<B>>,
    stop: &Stop,
    waiting: &Waiting,
) {
    let heart = checks.watch.worker(t);
    let v = &*checks.violations;
    let mut rng = cfg.rng(t as u64);
    let mut meter = stop.meter();
    let mut writer = checks.ledger.writer();
    let mut held: Vec<Held<B>> = Vec::with_capacity(HELD);
    let n = pool.slots.len();
    let weak = Arc::downgrade(pool);

    while meter.keep_going() {
        let i = rng.random_range(0..n);
        let mut dice = rng.random_range(0..100u32);
        if (40..58).contains(&dice) && held.is_empty() {
            dice = 0; // nothing to remove: add instead
        }
        if dice < 40 && held.len() == HELD {
            dice = 40; // hands full: remove instead
        }
        if (89..91).contains(&dice) && !waiting.may_block(cfg.threads) {
            dice = 84; // the others are all blocked: only check
        }
        match dice {
            // add_callback
            0..40 => {
                let fence = pool.get(i);
                let kind = if !reentrant {
                    Kind::Plain
                } else {
                    match rng.random_range(0..10u32) {
                        0 => Kind::OwnFence,
                        1 => Kind::Sibling,
                        2 => Kind::Cascade(rng.random_range(0..n)),
                        _ => Kind::Plain,
                    }
                };
                let cell: Option<SiblingCell<B>> =
                    matches!(kind, Kind::Sibling).then(Default::default);
                let ticket = writer.ticket();
                let mine = ticket.share();
                heart.at(Op::AddCallback);
                meter.add(1);
                // Only a cascade uses the pool: the others take no count on it, which both
                // workers would otherwise write on every callback.
                let pool_ref = match kind {
                    Kind::Cascade(_) => weak.clone(),
                    _ => Weak::new(),
                };
                match fence.add_callback(callback(kind, ticket, pool_ref, cell.clone())) {
                    Ok(id) => {
                        mine.installed();
                        held.push(Held {
                            fence: fence.clone(),
                            id,
                            ticket: mine,
                        });
                    }
                    Err(_) => {
                        mine.refused();
                        v.check(fence.test_signaled_flag(), || {
                            "add_callback refused a pending fence".into()
                        });
                    }
                }
                if let Some(cell) = cell {
                    // The sibling that the first callback will try to take back when it runs.
                    let ticket = writer.ticket();
                    let theirs = ticket.share();
                    heart.at(Op::AddCallback);
                    match fence.add_callback(callback(Kind::Plain, ticket, Weak::new(), None)) {
                        Ok(id) => {
                            theirs.installed();
                            let keep = theirs.share();
                            *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, keep));
                        }
                        Err(_) => theirs.refused(),
                    }
                }
            }
            // remove_callback
            40..58 => {
                let h = held.swap_remove(rng.random_range(0..held.len()));
                heart.at(Op::RemoveCallback);
                meter.add(1);
                let answer = h.fence.remove_callback(h.id);
                h.ticket.removed(answer, "worker");
                if !answer {
                    v.check(h.fence.test_signaled_flag(), || {
                        "remove_callback returned false on a fence that is not signalled".into()
                    });
                }
            }
            // signal, sometimes after set_error
            58..84 => {
                let fence = pool.get(i);
                let mut error_set = false;
                if rng.random_range(0..16u32) == 0 {
                    heart.at(Op::SetError);
                    error_set = fence.set_error(Errno::ETIME).is_ok();
                }
                heart.at(Op::Signal);
                meter.add(1);
                let _ = pool.signal(i, &fence);
                if error_set {
                    let status = fence.status();
                    v.check(status == Status::Error(Errno::ETIME), || {
                        format!("set_error succeeded before signal, but the status is {status:?}")
                    });
                }
            }
            // wait_timeout
            84..89 => {
                let fence = pool.get(i);
                // Mostly a plain check (zero timeout); a real timed wait sleeps at least the
                // timer slack, which would dominate the run.
                let timeout = if rng.random_range(0..4u32) == 0 {
                    Duration::from_micros(rng.random_range(1..=10))
                } else {
                    Duration::ZERO
                };
                heart.at(Op::WaitTimeout);
                meter.add(1);
                match fence.wait_timeout(timeout) {
                    status @ (Ok(()) | Err(FenceError::Failed(_))) => v
                        .check(fence.test_signaled_flag(), || {
                            format!("wait_timeout returned {status:?} on an unsignalled fence")
                        }),
                    Err(FenceError::TimedOut) => {}
                    Err(e) => v.report(format!("wait_timeout returned {e:?}")),
                }
            }
            // wait
            89..90 => {
                let fence = pool.get(i);
                heart.at(Op::Wait);
                meter.add(1);
                let status = waiting.block(|| fence.wait());
                v.check(
                    matches!(status, Ok(()) | Err(FenceError::Failed(_)))
                        && fence.test_signaled_flag(),
                    || format!("wait returned {status:?} on an unsignalled fence"),
                );
            }
            // .await
            90..91 => {
                let fence = pool.get(i);
                heart.at(Op::Await);
                meter.add(1);
                let status = waiting.block(|| block_on(async { (&fence).await }));
                v.check(
                    matches!(status, Ok(()) | Err(FenceError::Failed(_)))
                        && fence.test_signaled_flag(),
                    || format!(".await gave {status:?} on an unsignalled fence"),
                );
            }
            // let go of a callback id: the callback must still run exactly once
            _ => {
                if !held.is_empty() {
                    heart.at(Op::Drop);
                    meter.add(1);
                    drop(held.swap_remove(rng.random_range(0..held.len())));
                }
            }
        }
    }
    heart.at(Op::Drop);
    drop(held);
    heart.idle();
    checks.flush_latency();
}

/// Signals every fence that has been pending for a while, until the workers are done, so
/// that every `wait` and `.await` ends.
fn ticker<B: Backend>(
    workers: usize,
    checks: &Arc<Checks>,
    pool: &Pool<B>,
    stop: &Stop,
    done: &AtomicUsize,
) {
    let heart = checks.watch.helper("ticker");
    let mut meter = stop.meter();
    while done.load(Ordering::Acquire) < workers {
        for i in 0..pool.slots.len() {
            if let Some(fence) = pool.get_if_older(i, MAX_AGE) {
                heart.at(Op::Signal);
                meter.add(1);
                let _ = pool.signal(i, &fence);
            }
        }
        heart.idle();
        thread::sleep(TICK);
    }
    checks.flush_latency();
}
