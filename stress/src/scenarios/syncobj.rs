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
//! flags, advanced lazily); the usual exactly-once, leak and latency checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use rand::Rng;
use rcu_fence::{Backend, Fence, Syncobj, Timeline};

use super::net::{Builder, signal_leaf};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{CALLBACKS, Checks, Op, latency};
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
    /// Points all signalled below this index (advanced lazily by the checkers).
    low_water: Mutex<usize>,
    /// Submitted points not yet signalled.
    pending: Mutex<Vec<Fence<B>>>,
}

impl<B: Backend> Generation<B> {
    fn new() -> Arc<Self> {
        Arc::new(Generation {
            obj: Syncobj::new_in(B::default()),
            timeline: Timeline::new_in("syncobj", B::default()),
            points: Mutex::new(Vec::new()),
            low_water: Mutex::new(0),
            pending: Mutex::new(Vec::new()),
        })
    }

    fn submitted(&self) -> usize {
        self.points.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True if every point up to `point` has signalled.
    fn all_signalled_up_to(&self, point: usize) -> bool {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let mut low = self.low_water.lock().unwrap_or_else(|e| e.into_inner());
        while *low < points.len() && points[*low].test_signaled_flag() {
            *low += 1;
        }
        *low >= point
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

/// Signals every pending point of `generation`.
fn retire<B: Backend>(generation: &Generation<B>, rng: &mut impl Rng, checks: &Checks) -> u64 {
    let mut ops = 0;
    while let Some(f) = generation.take_pending(rng) {
        ops += signal_leaf(&f, rng, 64, checks);
    }
    ops
}

impl Scenario for SyncobjChurn {
    const NAME: &'static str = "syncobj";
    const ABOUT: &'static str =
        "timeline syncobjs: points added and found while other threads signal them out of order";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let objects: Objects<B> = (0..OBJECTS)
            .map(|_| Mutex::new(Generation::new()))
            .collect();
        let stop = Stop::new(cfg);
        let peak = Peak::default();
        let found = AtomicU64::new(0);
        thread::scope(|s| {
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                let (objects, stop, peak, found) = (&objects, &stop, &peak, &found);
                handles.push(spawn_small(s, format!("syncobj-{t}"), peak, move || {
                    worker(t, cfg, checks, objects, stop, found);
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
        outcome
            .notes
            .push(format!("{} lookups checked", found.load(Ordering::Relaxed)));
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
    found: &AtomicU64,
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
            let before = builder.ops;
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
            meter.add(builder.ops - before + 1);
        } else if dice < 7 {
            // find_fence on a submitted point, and check it when it signals
            let generation = current(objects, rng.random_range(0..OBJECTS));
            let submitted = generation.submitted();
            if submitted == 0 {
                continue;
            }
            let point = rng.random_range(1..=submitted);
            heart.at(Op::Walk);
            meter.add(2);
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
            let live = CALLBACKS.token();
            heart.at(Op::AddCallback);
            let installed = fence.add_callback(move |f| {
                if !g.all_signalled_up_to(point) {
                    ticket.report(format!(
                        "the fence found for point {point} signalled before every earlier point"
                    ));
                }
                if let Some(at) = f.timestamp() {
                    latency::record(at.elapsed().as_nanos() as u64);
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
                }
            }
        } else {
            // signal a random pending point
            let generation = current(objects, rng.random_range(0..OBJECTS));
            if let Some(f) = generation.take_pending(&mut rng) {
                heart.at(Op::Signal);
                meter.add(signal_leaf(&f, &mut rng, 64, checks));
            }
        }
        heart.idle();
    }
    heart.idle();
    checks.flush_latency();
}
