//! `sched`: a job scheduler in the style of the kernel's drm_sched.
//!
//! Four rings, each with a timeline syncobj that carries its jobs' points. The submitter
//! (the main thread) creates jobs: each job on ring r depends on the previous job of r and
//! on recent points of up to two other rings (found with `find_fence`); the dependencies are
//! merged into one fence (`merge`), and one callback on it makes the job runnable. No one
//! polls: a job becomes runnable only from that callback. Workers take runnable jobs and
//! complete them by signalling the job's fence, which is a point of its ring's syncobj; a job
//! whose dependencies failed completes with their error, and one job in 128 fails by itself.
//! At most 512 jobs are in flight.
//!
//! Checked: a job runs only after every job it depends on has completed; its fence is still
//! pending when it runs; the merged dependency fence carries an error when a job it depends
//! on failed (the error rule; not checked for a dependency that `find_fence` answered with
//! the signalled stub, which carries no error); every job completes; the network and
//! exactly-once checks. Reported: jobs per second (the unit is a **job**, submitted, run
//! and completed), and the latency from the last dependency's signal to the job becoming
//! runnable (on `Locked` it includes the irq_work that completes the merged array).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use rcu_fence::{Backend, Fence, Syncobj, Timeline, merge};
use smallvec::SmallVec;

use super::net::{Builder, injected_error};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{CALLBACKS, Checks, Errors, Op, Ticket, latency};
use crate::report::Outcome;
use crate::stack::{Peak, spawn_small};

/// A drm_sched-style job scheduler.
#[derive(Debug)]
pub(crate) struct Sched;

const RINGS: usize = 4;
const IN_FLIGHT: u64 = 512;

struct Job<B: Backend> {
    fence: Fence<B>,
    /// The fences of the jobs it depends on (a fence counts as completed once its flag is
    /// set: `merge` leaves out such a fence even while its callbacks are still running).
    deps: Deps<B>,
    /// Those whose dependency was found as a fence that carries their error (not the stub).
    carried: Deps<B>,
}

/// A job's dependencies: its ring's previous job and up to two others, kept inline (no
/// allocation of the harness's own on the submitter, the scenario's bottleneck).
type Deps<B> = SmallVec<[Fence<B>; 3]>;

impl<B: Backend> Job<B> {
    /// The error rule for the merged dependency fence, now signalled.
    fn check_merged(&self, merged: &Fence<B>, errors: &Errors) {
        if self.carried.iter().any(|d| d.error().is_some()) {
            errors.check(merged.error().is_some(), || {
                "a job's merged dependencies, one of which failed".into()
            });
        }
    }
}

struct Ring<B: Backend> {
    obj: Syncobj<B>,
    timeline: Timeline<B>,
    /// Points submitted so far (the last one's value).
    points: usize,
    /// The fences of the last [`RECENT`] jobs, the oldest first; touched by the submitter
    /// only. Older jobs are never depended on, so the ring does not keep them alive.
    recent: VecDeque<Fence<B>>,
}

/// How many of a ring's latest points a job on another ring may depend on.
const RECENT: usize = 9;

impl<B: Backend> Ring<B> {
    /// The fence of `point` (1-based), one of the last [`RECENT`] submitted.
    fn job(&self, point: usize) -> &Fence<B> {
        &self.recent[self.recent.len() - (self.points - point) - 1]
    }

    /// Records the fence of the next point.
    fn push(&mut self, fence: Fence<B>) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(fence);
        self.points += 1;
    }
}

/// Runnable jobs, and the workers looking for them.
///
/// A worker that finds the queue empty looks again for a short while ([`SEARCH`]) before it
/// sleeps, and a push wakes a sleeper only when no searching worker is left to take the job,
/// as the workers of an async runtime search before they park. Without this, nearly every job
/// cost the submitter a futex wake of a sleeping worker (the submitter is the bottleneck, and
/// most jobs' dependencies have completed by the time it submits them): a cost of this
/// stand-in for the rings, the same on every backend, which hid the difference the fences make.
struct Ready<B: Backend> {
    queue: Mutex<Queue<B>>,
    /// The queue's length, for searching workers to poll without the lock.
    queued: AtomicUsize,
    more: Condvar,
}

struct Queue<B: Backend> {
    jobs: VecDeque<Job<B>>,
    /// Workers looking for a job without sleeping (at most one).
    searching: usize,
    /// Workers asleep on `more`.
    sleeping: usize,
}

/// How long a worker that finds no job looks for one before it sleeps.
const SEARCH: Duration = Duration::from_micros(50);

impl<B: Backend> Ready<B> {
    fn new() -> Self {
        Ready {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                searching: 0,
                sleeping: 0,
            }),
            queued: AtomicUsize::new(0),
            more: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<B>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the first job; keeps `queued` in step (under the lock).
    fn take(&self, q: &mut Queue<B>) -> Option<Job<B>> {
        let job = q.jobs.pop_front();
        // Relaxed: a hint for searchers, who take the lock before they rely on it.
        self.queued.store(q.jobs.len(), Ordering::Relaxed);
        job
    }

    fn push(&self, job: Job<B>) {
        let mut q = self.lock();
        q.jobs.push_back(job);
        // Relaxed: as in `take`.
        self.queued.store(q.jobs.len(), Ordering::Relaxed);
        // Counted under the lock, so a worker that stops searching to sleep either sees this
        // job first or is counted asleep here.
        let wake = q.sleeping > 0 && q.jobs.len() > q.searching;
        drop(q);
        if wake {
            self.more.notify_one();
        }
    }

    /// A job, or `None` after `timeout` asleep with none pushed.
    fn pop(&self, timeout: Duration) -> Option<Job<B>> {
        let mut q = self.lock();
        if let Some(job) = self.take(&mut q) {
            return Some(job);
        }
        // One searcher at a time: on a machine with few cores, more of them would take the
        // submitter's core. The others sleep at once.
        if q.searching == 0 {
            q.searching = 1;
            drop(q);
            let until = Instant::now() + SEARCH;
            loop {
                let give_up = Instant::now() >= until;
                // Relaxed: only a hint; the lock below orders the job itself.
                if give_up || self.queued.load(Ordering::Relaxed) > 0 {
                    q = self.lock();
                    if let Some(job) = self.take(&mut q) {
                        q.searching = 0;
                        return Some(job);
                    }
                    if give_up {
                        q.searching = 0;
                        break;
                    }
                    drop(q);
                }
                // Yield, not spin: the core may be another worker's, running callbacks.
                thread::yield_now();
            }
        }
        q.sleeping += 1;
        let (mut q, _) = self
            .more
            .wait_timeout(q, timeout)
            .unwrap_or_else(|e| e.into_inner());
        q.sleeping -= 1;
        self.take(&mut q)
    }
}

/// Makes `job` runnable from the merged dependency fence's callback (checks the
/// dependencies first).
fn runnable<B: Backend>(
    job: Job<B>,
    ticket: Ticket,
    ready: Arc<Ready<B>>,
) -> impl FnOnce(&Fence<B>) + Send + 'static {
    let live = CALLBACKS.token();
    move |merged| {
        if job.deps.iter().any(|d| !d.test_signaled_flag()) {
            ticket.report("a job became runnable before one of its dependencies completed");
        }
        job.check_merged(merged, ticket.errors());
        if let Some(last) = job.deps.iter().filter_map(|d| d.timestamp()).max() {
            latency::record(last.elapsed().as_nanos() as u64);
        }
        ready.push(job);
        ticket.ran();
        drop(live);
    }
}

impl Scenario for Sched {
    const NAME: &'static str = "sched";
    const ABOUT: &'static str =
        "drm_sched-style rings: jobs with merged dependency fences run from callbacks; jobs/s";
    const UNIT: &'static str = "jobs";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let main = checks.watch.helper("main");
        let ready = Arc::new(Ready::<B>::new());
        let completed = AtomicU64::new(0);
        let finished = std::sync::atomic::AtomicBool::new(false);
        let stop = Stop::new(cfg);
        let peak = Peak::default();
        let mut submitted = 0u64;
        let mut deps_merged = 0u64;
        thread::scope(|s| {
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                let (ready, completed, finished, peak) = (&ready, &completed, &finished, &peak);
                handles.push(spawn_small(s, format!("sched-{t}"), peak, move || {
                    let heart = checks.watch.worker(t);
                    let mut rng = cfg.rng(1 + t as u64);
                    while !finished.load(Ordering::Acquire) {
                        heart.idle();
                        let Some(job) = ready.pop(Duration::from_millis(2)) else {
                            continue;
                        };
                        heart.at(Op::Signal);
                        if job.fence.test_signaled_flag() {
                            checks
                                .violations
                                .report("a job's fence signalled before the job ran");
                        }
                        let failed = job.deps.iter().find_map(|d| d.error());
                        let error = failed.or_else(|| {
                            (rng.random_range(0..128) == 0).then(|| injected_error(&mut rng))
                        });
                        if let Some(e) = error {
                            let _ = job.fence.set_error(e);
                        }
                        if let Err(e) = job.fence.signal() {
                            checks
                                .violations
                                .report(format!("job signal returned {e:?}"));
                        }
                        drop(job);
                        completed.fetch_add(1, Ordering::Release);
                    }
                    heart.idle();
                    checks.flush_latency();
                }));
            }

            // The submitter.
            let mut rng = cfg.rng(0);
            let mut b = Builder::<B>::new(checks, "sched");
            let mut writer = checks.ledger.writer();
            let mut rings: Vec<Ring<B>> = (0..RINGS)
                .map(|_| Ring {
                    obj: Syncobj::new_in(B::default()),
                    timeline: Timeline::new_in("ring", B::default()),
                    points: 0,
                    recent: VecDeque::with_capacity(RECENT),
                })
                .collect();
            let mut meter = stop.meter();
            while meter.keep_going() {
                if submitted - completed.load(Ordering::Acquire) >= IN_FLIGHT {
                    main.idle();
                    thread::yield_now();
                    continue;
                }
                main.at(Op::Build);
                let r = rng.random_range(0..RINGS);
                let mut deps: SmallVec<[_; 3]> = SmallVec::new();
                let mut probes = Deps::new();
                let own = rings[r].points;
                if own > 0 {
                    probes.push(rings[r].job(own).clone());
                    deps.push(rings[r].obj.find_fence(own as u64));
                }
                for _ in 0..rng.random_range(0..=2) {
                    let other = rng.random_range(0..RINGS);
                    let n = rings[other].points;
                    if other == r || n == 0 {
                        continue;
                    }
                    let point = rng.random_range(n.saturating_sub(RECENT - 1).max(1)..=n);
                    probes.push(rings[other].job(point).clone());
                    deps.push(rings[other].obj.find_fence(point as u64));
                }
                let deps: Deps<B> = match deps.into_iter().collect() {
                    Ok(d) => d,
                    Err(e) => {
                        checks
                            .violations
                            .report(format!("find_fence of a submitted point returned {e:?}"));
                        continue;
                    }
                };
                let stub = rcu_fence::stub::<B>();
                let carried = probes
                    .iter()
                    .zip(&deps)
                    .filter(|(_, d)| !d.ptr_eq(&stub))
                    .map(|(p, _)| p.clone())
                    .collect();
                let point = own as u64 + 1;
                let leaf = b.leaf_on(&rings[r].timeline, point);
                rings[r].push(leaf.fence.clone());
                rings[r].obj.add_point(leaf.fence.clone(), point);
                let job = Job {
                    fence: leaf.fence,
                    deps: probes,
                    carried,
                };
                submitted += 1;
                meter.add(1);
                if deps.is_empty() {
                    ready.push(job);
                    continue;
                }
                deps_merged += deps.len() as u64;
                let merged = match merge(&deps) {
                    Ok(m) => m,
                    Err(e) => {
                        checks.violations.report(format!("merge returned {e:?}"));
                        ready.push(job);
                        continue;
                    }
                };
                let ticket = writer.ticket();
                let mine = ticket.share();
                main.at(Op::AddCallback);
                // If the callback is refused, the closure (and the job in it) is dropped:
                // keep a second handle on the job to run it directly.
                let direct = Job {
                    fence: job.fence.clone(),
                    deps: job.deps.clone(),
                    carried: job.carried.clone(),
                };
                match merged.add_callback(runnable(job, ticket, ready.clone())) {
                    Ok(_) => {
                        mine.installed();
                        drop(direct);
                    }
                    Err(_) => {
                        mine.refused();
                        direct.check_merged(&merged, &checks.errors);
                        ready.push(direct);
                    }
                }
            }
            drop(meter);
            // Drain: every submitted job must complete.
            main.at(Op::Wait);
            while completed.load(Ordering::Acquire) < submitted {
                thread::sleep(Duration::from_millis(1));
            }
            finished.store(true, Ordering::Release);
            main.at(Op::Cleanup);
            drop(rings);
            drop(b);
            main.idle();
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
        let elapsed = stop.elapsed();
        outcome.set_elapsed(elapsed);
        outcome.ops = submitted;
        rcu_fence::synchronize_rcu();
        outcome.peak_stack_bytes = peak.get();
        outcome.notes.push(format!(
            "{submitted} jobs on {RINGS} rings ({:.0} jobs/s), {deps_merged} dependencies merged",
            submitted as f64 / elapsed.as_secs_f64().max(1e-9)
        ));
        checks.finish(&mut outcome);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcu_fence::Rcu;

    fn job() -> Job<Rcu> {
        Job {
            fence: Timeline::<Rcu>::new("test").fence(1),
            deps: Deps::new(),
            carried: Deps::new(),
        }
    }

    #[test]
    fn a_ring_keeps_the_fences_of_its_last_points_only() {
        let tl = Timeline::<Rcu>::new("test");
        let fences: Vec<Fence<Rcu>> = (1..=20).map(|p| tl.fence(p)).collect();
        let mut ring = Ring {
            obj: Syncobj::new_in(Rcu),
            timeline: tl,
            points: 0,
            recent: VecDeque::new(),
        };
        for f in &fences {
            ring.push(f.clone());
        }
        assert_eq!((ring.points, ring.recent.len()), (20, RECENT));
        for point in 20 - RECENT + 1..=20 {
            assert!(ring.job(point).ptr_eq(&fences[point - 1]), "point {point}");
        }
        // The older points' fences are no longer held by the ring.
        assert!(
            fences[..20 - RECENT]
                .iter()
                .all(|f| !ring.recent.iter().any(|r| r.ptr_eq(f)))
        );
    }

    #[test]
    fn a_push_wakes_a_sleeping_worker() {
        let ready = Ready::<Rcu>::new();
        thread::scope(|s| {
            let worker = s.spawn(|| {
                let start = Instant::now();
                let job = ready.pop(Duration::from_secs(10));
                (job.is_some(), start.elapsed())
            });
            // Wait until the worker has stopped searching and sleeps.
            while ready.lock().sleeping == 0 {
                thread::yield_now();
            }
            ready.push(job());
            // After a lost wake-up the worker sleeps its whole timeout, then takes the job.
            let (got, slept) = worker.join().unwrap();
            assert!(got, "the sleeping worker got no job");
            assert!(slept < Duration::from_secs(5), "not woken: slept {slept:?}");
        });
        let q = ready.lock();
        assert_eq!((q.jobs.len(), q.searching, q.sleeping), (0, 0, 0));
        assert_eq!(ready.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn jobs_pushed_with_no_worker_waiting_are_taken_in_order() {
        let ready = Ready::<Rcu>::new();
        let (a, b) = (job(), job());
        let (fa, fb) = (a.fence.clone(), b.fence.clone());
        ready.push(a);
        ready.push(b);
        assert_eq!(ready.queued.load(Ordering::Relaxed), 2);
        let first = ready.pop(Duration::ZERO).expect("a job");
        let second = ready.pop(Duration::ZERO).expect("a job");
        assert!(first.fence.ptr_eq(&fa) && second.fence.ptr_eq(&fb));
        assert!(ready.pop(Duration::ZERO).is_none());
        let q = ready.lock();
        assert_eq!((q.searching, q.sleeping), (0, 0));
    }
}
