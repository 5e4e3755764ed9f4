//! `syncobj`: timeline sync objects under churn.
//!
//! Four timeline syncobjs. Each is written by one thread (`add_point` with increasing
//! points, each point a fresh watched leaf); every thread also looks points up
//! (`find_fence` on a random submitted point, then a callback on what it found) and signals
//! random pending points out of order (one in 64 with an injected error). After 2048 points
//! a syncobj's generation is retired: its pending points are signalled and a fresh syncobj
//! takes its place.
//!
//! Checked: `find_fence` of a submitted point succeeds; when the fence it returned signals,
//! every point up to the one looked up has signalled (a low-water mark over the points'
//! flags, advanced lazily), and, if it is a chain link, it carries an error when a point up
//! to the one looked up failed (the error rule: a link keeps the first error of its own
//! fence and every earlier point); the usual exactly-once, leak and latency checks. When
//! every point up to the one looked up has already signalled, `find_fence` answers the
//! signalled stub, as the kernel's `drm_syncobj_find_fence` does, and when the newest points
//! up to it have signalled it answers the older link that still waits (the kernel's
//! `dma_fence_chain_find_seqno`): neither carries the errors of the points above it that
//! had already signalled. Lookups where such a point had failed are counted in a note.
//!
//! Latency: from the signal of the point that completed the found fence (the last of the
//! points it covers to signal) to the lookup's callback, as the networks measure a
//! container's, so that every scheme is timed over the same interval.
//!
//! The unit is an **action**: one point added, one point looked up (with its callback), or
//! one point signalled (a retirement counts each point it signals).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use rand::Rng;
use rcu_fence::{Backend, Fence, Syncobj, Timeline};

use super::net::{Builder, inject_error, now_ns, signal_ns};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{CALLBACKS, Checks, Errors, Op, latency};
use crate::report::Outcome;
use crate::stack::{Peak, spawn_small};

/// Timeline syncobjs under churn.
#[derive(Debug)]
pub(crate) struct SyncobjChurn;

const OBJECTS: usize = 4;
const POINTS_PER_GENERATION: usize = 2048;

/// One generation of one syncobj and what was submitted to it.
struct Generation<B: Backend> {
    obj: Syncobj<B>,
    timeline: Timeline<B>,
    /// The fence of point p at index p - 1, pushed after `add_point` returned. Checked by
    /// its flag: a point counts as signalled once its flag is set, before its callbacks run
    /// (a chain walk or poll on another thread may rely on it in between).
    points: Mutex<Vec<Fence<B>>>,
    /// Points all signalled below this index (advanced lazily by the checkers), and for
    /// each point below it the latest signal time among the points up to it (on the
    /// `net::now_ns` scale): when a fence covering those points was completed.
    low_water: Mutex<(usize, Vec<u64>)>,
    /// Submitted points not yet signalled.
    pending: Mutex<Vec<Fence<B>>>,
    /// The lowest point failed so far (`usize::MAX`: none), recorded before that point
    /// signals.
    first_failed: AtomicUsize,
}

impl<B: Backend> Generation<B> {
    fn new() -> Arc<Self> {
        Arc::new(Generation {
            obj: Syncobj::new_in(B::default()),
            timeline: Timeline::new_in("syncobj", B::default()),
            points: Mutex::new(Vec::new()),
            low_water: Mutex::new((0, Vec::new())),
            pending: Mutex::new(Vec::new()),
            first_failed: AtomicUsize::new(usize::MAX),
        })
    }

    /// True if a point up to `point` has failed (and so has signalled).
    fn failed_up_to(&self, point: usize) -> bool {
        // SeqCst: pairs with the `fetch_min` in `signal_point`, which happens before that
        // point's signal, which happens before any fence covering it completes.
        self.first_failed.load(Ordering::SeqCst) <= point
    }

    /// Signals the pending point `f`, first failing it with probability 1/64 (the failure
    /// is recorded before the signal).
    fn signal_point(&self, f: &Fence<B>, rng: &mut impl Rng, checks: &Checks) {
        if inject_error(f, rng, 64) {
            self.first_failed
                .fetch_min(f.seqno() as usize, Ordering::SeqCst);
        }
        if let Err(e) = f.signal() {
            checks
                .violations
                .report(format!("signal of a pending point returned {e:?}"));
        }
    }

    fn submitted(&self) -> usize {
        self.points.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True if every point up to `point` has signalled.
    fn all_signalled_up_to(&self, point: usize) -> bool {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let mut guard = self.low_water.lock().unwrap_or_else(|e| e.into_inner());
        let (low, completed) = &mut *guard;
        while *low < points.len() && points[*low].test_signaled_flag() {
            let at = signal_ns(&points[*low]).max(completed.last().copied().unwrap_or(0));
            completed.push(at);
            *low += 1;
        }
        *low >= point
    }

    /// When the last of points 1..=`point` signalled, once they all have (the checkers have
    /// advanced the low-water mark past them); `None` if not known yet.
    fn completed_at(&self, point: usize) -> Option<u64> {
        let guard = self.low_water.lock().unwrap_or_else(|e| e.into_inner());
        point.checked_sub(1).and_then(|i| guard.1.get(i).copied())
    }

    fn take_pending(&self, rng: &mut impl Rng) -> Option<Fence<B>> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return None;
        }
        let i = rng.random_range(0..pending.len());
        Some(pending.swap_remove(i))
    }
}

type Objects<B> = Vec<Mutex<Arc<Generation<B>>>>;

fn current<B: Backend>(objects: &Objects<B>, i: usize) -> Arc<Generation<B>> {
    objects[i].lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Signals every pending point of `generation`; returns how many.
fn retire<B: Backend>(generation: &Generation<B>, rng: &mut impl Rng, checks: &Checks) -> u64 {
    let mut n = 0;
    while let Some(f) = generation.take_pending(rng) {
        generation.signal_point(&f, rng, checks);
        n += 1;
    }
    n
}

/// Checks the error rule for the fence `find_fence` returned for `point`, now signalled.
///
/// The found fence covers the points up to its own seqno: a chain link keeps the first
/// error of its own fence and every earlier point, so it must carry one if a point up to
/// its seqno failed. Points above it, up to `point`, had already signalled when it was
/// found (`chain_find_seqno` walks past them, as the kernel's does), and the stub covers
/// none: their errors are not carried, by the API's design. Those are counted in
/// `uncovered`, not checked.
fn check_found<B: Backend>(
    found: &Fence<B>,
    point: usize,
    generation: &Generation<B>,
    errors: &Errors,
    uncovered: &AtomicU64,
) {
    let covered = if found.as_chain().is_some() {
        found.seqno() as usize
    } else {
        0
    };
    if generation.failed_up_to(covered.min(point)) {
        errors.check(found.error().is_some(), || {
            format!(
                "the chain link found for point {point} (seqno {covered}; point {} failed)",
                generation.first_failed.load(Ordering::SeqCst)
            )
        });
    } else if generation.failed_up_to(point) {
        uncovered.fetch_add(1, Ordering::Relaxed);
    }
}

impl Scenario for SyncobjChurn {
    const NAME: &'static str = "syncobj";
    const ABOUT: &'static str =
        "timeline syncobjs: points added and found while other threads signal them out of order";
    const UNIT: &'static str = "actions";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let objects: Objects<B> = (0..OBJECTS)
            .map(|_| Mutex::new(Generation::new()))
            .collect();
        let stop = Stop::new(cfg);
        let peak = Peak::default();
        let found = AtomicU64::new(0);
        let stubs = Arc::new(AtomicU64::new(0));
        thread::scope(|s| {
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                let (objects, stop, peak) = (&objects, &stop, &peak);
                let counts = (&found, &stubs);
                handles.push(spawn_small(s, format!("syncobj-{t}"), peak, move || {
                    worker(t, cfg, checks, objects, stop, counts);
                }));
            }
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
        outcome.set_elapsed(stop.elapsed());
        outcome.ops = stop.ops();
        let main = checks.watch.helper("main");
        main.at(Op::Cleanup);
        let mut rng = cfg.rng(99);
        for i in 0..OBJECTS {
            retire(&current(&objects, i), &mut rng, checks);
        }
        drop(objects);
        rcu_fence::synchronize_rcu();
        main.idle();
        outcome.peak_stack_bytes = peak.get();
        outcome.notes.push(format!(
            "{} lookups checked; {} answered with the stub or an older link while a point above it, up to the one looked up, had already failed (that error is not carried: find_fence's answer covers only the points still pending)",
            found.load(Ordering::Relaxed),
            stubs.load(Ordering::Relaxed)
        ));
        checks.finish(&mut outcome);
        outcome
    }
}

fn worker<B: Backend>(
    t: usize,
    cfg: &RunConfig,
    checks: &Arc<Checks>,
    objects: &Objects<B>,
    stop: &Stop,
    (found, stubs): (&AtomicU64, &Arc<AtomicU64>),
) {
    let heart = checks.watch.worker(t);
    let mut rng = cfg.rng(t as u64);
    let mut meter = stop.meter();
    let mut builder = Builder::<B>::new(checks, "syncobj");
    let mut writer = checks.ledger.writer();
    let owned: Vec<usize> = (0..OBJECTS).filter(|i| i % cfg.threads == t).collect();
    while meter.keep_going() {
        let dice = rng.random_range(0..10);
        if dice < 3 && !owned.is_empty() {
            // add_point on a syncobj this thread writes
            let i = owned[rng.random_range(0..owned.len())];
            let generation = current(objects, i);
            let point = generation.submitted() + 1;
            if point > POINTS_PER_GENERATION {
                heart.at(Op::Signal);
                let fresh = Generation::new();
                *objects[i].lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                meter.add(retire(&generation, &mut rng, checks));
                continue;
            }
            heart.at(Op::Build);
            let leaf = builder.leaf_on(&generation.timeline, point as u64);
            generation
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(leaf.fence.clone());
            generation.obj.add_point(leaf.fence.clone(), point as u64);
            generation
                .points
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(leaf.fence);
            meter.add(1);
        } else if dice < 7 {
            // find_fence on a submitted point, and check it when it signals
            let generation = current(objects, rng.random_range(0..OBJECTS));
            let submitted = generation.submitted();
            if submitted == 0 {
                continue;
            }
            let point = rng.random_range(1..=submitted);
            heart.at(Op::Walk);
            meter.add(1);
            let fence = match generation.obj.find_fence(point as u64) {
                Ok(f) => f,
                Err(e) => {
                    checks.violations.report(format!(
                        "find_fence of submitted point {point} returned {e:?}"
                    ));
                    continue;
                }
            };
            found.fetch_add(1, Ordering::Relaxed);
            let ticket = writer.ticket();
            let mine = ticket.share();
            let g = generation.clone();
            let stubs_seen = stubs.clone();
            let live = CALLBACKS.token();
            heart.at(Op::AddCallback);
            let installed = fence.add_callback(move |f| {
                if !g.all_signalled_up_to(point) {
                    ticket.report(format!(
                        "the fence found for point {point} signalled before every earlier point"
                    ));
                }
                check_found(f, point, &g, ticket.errors(), &stubs_seen);
                // From the signal of the point that completed `f` (the last of the points
                // it covers) to this callback, as the networks measure a container's:
                // `f`'s own timestamp would leave out, on the classic scheme, the irq_work
                // and re-arm walk between that point's signal and the link's.
                let covers = if f.as_chain().is_some() {
                    (f.seqno() as usize).max(point)
                } else {
                    point
                };
                if let Some(at) = g.completed_at(covers) {
                    latency::record(now_ns().saturating_sub(at));
                }
                ticket.ran();
                drop(live);
            });
            match installed {
                Ok(_) => mine.installed(),
                Err(_) => {
                    mine.refused();
                    checks.violations.check(generation.all_signalled_up_to(point), || {
                        format!("the fence found for point {point} was signalled before every earlier point")
                    });
                    check_found(&fence, point, &generation, &checks.errors, stubs);
                }
            }
        } else {
            // signal a random pending point
            let generation = current(objects, rng.random_range(0..OBJECTS));
            if let Some(f) = generation.take_pending(&mut rng) {
                heart.at(Op::Signal);
                generation.signal_point(&f, &mut rng, checks);
                meter.add(1);
            }
        }
        heart.idle();
    }
    heart.idle();
    checks.flush_latency();
}
