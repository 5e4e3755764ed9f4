//! A small job scheduler in the style of the kernel's drm_sched.
//!
//! - Each ring has a hardware timeline (its jobs' "finished" fences, in submission order), a
//!   worker thread that runs the jobs, and a timeline syncobj with one point per job.
//! - A job's dependencies (fences of other rings' jobs, and the previous job of its own ring,
//!   as a drm_sched entity's jobs are ordered) are merged into one fence (`merge`: an array
//!   of the latest fence per context). A callback on that fence hands the job to its ring.
//! - The ring signals the job's finished fence when it has run; that completes whatever
//!   depends on it, through callbacks, with no thread waiting on any single job.
//!
//! The backend is one type alias: set `B` to `Locked` to run the kernel's classic scheme.
//!
//! Run with `cargo run --example scheduler`.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rcu_fence::{Fence, Rcu, Syncobj, Timeline, merge};

/// The backend: `Rcu` (the default) or `rcu_fence::Locked`.
type B = Rcu;

/// A job handed to a ring once its dependencies have signalled.
struct Ready {
    id: usize,
    finished: Fence<B>,
    work: Duration,
}

struct Ring {
    name: String,
    hw: Timeline<B>,
    next_seqno: u64,
    /// The previous job's finished fence: the next job on this ring waits for it.
    last: Option<Fence<B>>,
    points: Syncobj<B>,
    queue: mpsc::Sender<Ready>,
    worker: thread::JoinHandle<()>,
}

/// What the run recorded of each job: when it started, and what it waited for.
#[derive(Default)]
struct Log {
    started: Vec<Option<Instant>>,
    deps: Vec<Vec<Fence<B>>>,
}

impl Ring {
    fn new(name: &str, log: Arc<Mutex<Log>>) -> Ring {
        let (queue, jobs) = mpsc::channel::<Ready>();
        let worker = thread::spawn(move || {
            // The ring's hardware: runs jobs one at a time, in the order they became ready
            // (which is submission order: each job waits for the previous one).
            for job in jobs {
                log.lock().unwrap().started[job.id] = Some(Instant::now());
                thread::sleep(job.work);
                job.finished.signal().unwrap();
            }
        });
        Ring {
            name: name.to_string(),
            hw: Timeline::new_in(name, B::default()),
            next_seqno: 1,
            last: None,
            points: Syncobj::new_in(B::default()),
            queue,
            worker,
        }
    }
}

struct Scheduler {
    rings: Vec<Ring>,
    log: Arc<Mutex<Log>>,
}

impl Scheduler {
    fn new(names: &[&str]) -> Scheduler {
        let log = Arc::new(Mutex::new(Log::default()));
        let rings = names.iter().map(|n| Ring::new(n, log.clone())).collect();
        Scheduler { rings, log }
    }

    /// Submits a job on `ring` that runs for `work` after every fence in `deps` has
    /// signalled; returns its finished fence (`drm_sched_job`'s `s_fence->finished`).
    fn submit(&mut self, ring: usize, deps: &[Fence<B>], work: Duration) -> Fence<B> {
        let r = &mut self.rings[ring];
        let seqno = r.next_seqno;
        r.next_seqno += 1;
        let finished = r.hw.fence(seqno);
        r.points.add_point(finished.clone(), seqno);

        let mut all: Vec<Fence<B>> = deps.to_vec();
        all.extend(r.last.replace(finished.clone()));
        let id = {
            let mut log = self.log.lock().unwrap();
            log.started.push(None);
            log.deps.push(all.clone());
            log.started.len() - 1
        };
        // One fence for all dependencies: signalled ones are left out, one per context kept.
        let dependencies = merge(&all).expect("merge of fences");
        let job = || Ready {
            id,
            finished: finished.clone(),
            work,
        };
        let queue = r.queue.clone();
        let first = job();
        let installed =
            dependencies.add_callback(move |_| queue.send(first).expect("ring is running"));
        if installed.is_err() {
            // Every dependency has signalled already (the closure was dropped uncalled).
            r.queue.send(job()).expect("ring is running");
        }
        finished
    }
}

fn main() {
    let mut sched = Scheduler::new(&["gfx", "compute", "copy"]);
    let ms = Duration::from_millis;

    // A frame: upload, two compute passes, a render that needs both, then a copy-out.
    let mut frames = Vec::new();
    let mut previous_copy = None;
    for frame in 0..4u64 {
        let upload = sched.submit(2, previous_copy.as_slice(), ms(2));
        let simulate = sched.submit(1, std::slice::from_ref(&upload), ms(3));
        let cull = sched.submit(1, std::slice::from_ref(&upload), ms(1));
        let render = sched.submit(0, &[simulate.clone(), cull.clone()], ms(4));
        let copy = sched.submit(2, std::slice::from_ref(&render), ms(1));
        println!("frame {frame}: submitted, copy-out is {copy:?}");
        previous_copy = Some(copy.clone());
        frames.push(copy);
    }

    // Wait on each ring's timeline syncobj for its last point.
    for ring in &sched.rings {
        let last = ring.next_seqno - 1;
        let fence = ring.points.find_fence(last).expect("point submitted");
        assert_eq!(fence.wait(), Ok(()));
        println!("ring {}: all {last} jobs done", ring.name);
    }
    assert!(frames.iter().all(|f| f.is_signaled()));

    // Every job started after each of its dependencies had signalled.
    let log = sched.log.lock().unwrap();
    for (id, deps) in log.deps.iter().enumerate() {
        let started = log.started[id].expect("every job ran");
        for dep in deps {
            assert!(
                dep.timestamp().expect("signalled") <= started,
                "job {id} ran early"
            );
        }
    }
    println!("{} jobs ran in dependency order", log.started.len());
    drop(log);

    // Shut the rings down.
    for ring in sched.rings {
        drop(ring.queue);
        ring.worker.join().unwrap();
    }
}
