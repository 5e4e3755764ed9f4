//! B11: a job scheduler in the style of the kernel's drm_sched. R rings, each with a worker
//! thread that "runs" its jobs (signals their fences) and a timeline syncobj; every job
//! depends on the previous job of its ring and on a point of another ring's timeline,
//! merged into one fence; a callback on that fence queues the job on its ring. The
//! submitter keeps at most `IN_FLIGHT` jobs outstanding, as a hardware ring would.
//!
//! Four threads on two cores: the ratio between backends swings with the load, so the
//! backends run in interleaved rounds (one whole run of `jobs` jobs each per round).

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::for_each_backend;
use common::rounds::{Batch, Rounds};
use rand::{Rng, SeedableRng};
use rcu_fence::{Backend, Fence, FenceError, Syncobj, Timeline, merge};

/// Rings.
const RINGS: usize = 2;
/// Jobs submitted before the submitter waits for the oldest.
const IN_FLIGHT: usize = 32;

/// Submits `jobs` jobs over `RINGS` rings and waits for all of them.
fn run<B: Backend>(jobs: usize) -> Duration {
    let timelines: Vec<Timeline<B>> = (0..RINGS)
        .map(|r| Timeline::new_in(&format!("ring{r}"), B::default()))
        .collect();
    let syncobjs: Vec<Syncobj<B>> = (0..RINGS).map(|_| Syncobj::new_in(B::default())).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    std::thread::scope(|s| {
        let senders: Vec<mpsc::Sender<Option<Fence<B>>>> = (0..RINGS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Option<Fence<B>>>();
                s.spawn(move || {
                    while let Ok(Some(job)) = rx.recv() {
                        job.signal().unwrap();
                    }
                });
                tx
            })
            .collect();
        let mut window: Vec<Option<Fence<B>>> = vec![None; IN_FLIGHT];
        let mut last: Vec<Option<Fence<B>>> = vec![None; RINGS];
        let start = Instant::now();
        for j in 0..jobs {
            if let Some(old) = window[j % IN_FLIGHT].take() {
                let _ = old.wait();
            }
            let ring = j % RINGS;
            let point = (j / RINGS) as u64 + 1;
            let job = timelines[ring].fence(point);

            let mut deps: Vec<Fence<B>> = Vec::with_capacity(2);
            if let Some(prev) = &last[ring] {
                deps.push(prev.clone());
            }
            let other = (ring + 1) % RINGS;
            let other_points = if other < ring { point } else { point - 1 };
            if other_points > 0 {
                let p = other_points.saturating_sub(rng.random_range(0..4)).max(1);
                deps.push(syncobjs[other].find_fence(p).expect("submitted point"));
            }
            syncobjs[ring].add_point(job.clone(), point);

            let queued = job.clone();
            let tx = senders[ring].clone();
            let ready = if deps.is_empty() {
                Err(FenceError::AlreadySignaled)
            } else {
                merge(&deps)
                    .unwrap()
                    .add_callback(move |_| {
                        let _ = tx.send(Some(queued));
                    })
                    .map_err(FenceError::from)
            };
            if ready.is_err() {
                senders[ring].send(Some(job.clone())).unwrap();
            }
            window[j % IN_FLIGHT] = Some(job.clone());
            last[ring] = Some(job);
        }
        for fence in last.iter().flatten() {
            let _ = fence.wait();
        }
        let elapsed = start.elapsed();
        for tx in &senders {
            tx.send(None).unwrap();
        }
        elapsed
    })
}

fn b11() {
    let jobs: usize = if common::quick() { 10_000 } else { 100_000 };
    let mut rounds = Rounds::new("b11_scheduler");
    for_each_backend!(|B| rounds.add(B::NAME, jobs, move |iters| {
        let t = (0..iters).map(|_| run::<B>(jobs)).sum();
        Batch::iters(t, iters)
    }));
    rounds.run();
}

/// `RCU_FENCE_PROFILE=<backend>:<jobs>` runs one whole B11 run on that backend and exits:
/// for `valgrind --tool=callgrind`, `perf stat` and `perf record` on one backend at a time.
fn profile(spec: &str) {
    let (backend, jobs) = spec.split_once(':').unwrap_or((spec, "20000"));
    let jobs: usize = jobs.parse().expect("RCU_FENCE_PROFILE=<backend>:<jobs>");
    let mut ran = false;
    for_each_backend!(|B| if B::NAME == backend {
        let t = run::<B>(jobs);
        println!("b11 {backend}: {jobs} jobs in {t:?}");
        ran = true;
    });
    assert!(ran, "no backend named {backend}");
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var("RCU_FENCE_PROFILE") {
        return profile(&spec);
    }
    b11();
}
