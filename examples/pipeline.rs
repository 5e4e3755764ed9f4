//! A GPU-style job pipeline, generic over the backend.
//!
//! Three engines (copy, compute, graphics), each a timeline with a worker thread that runs
//! its jobs in submission order. Every frame uploads its data, computes on it and renders
//! it; each job waits for its dependencies (`FenceArray::all`, which reports the first
//! error among them) and completes its own `DriverFence`. A failed job fails every job that
//! depends on it, with its error, without running it. A timeline syncobj counts the frames
//! presented.
//!
//! The whole pipeline is one generic function, `run::<B>()`; `main` runs it on each
//! backend. Inside it, `Timeline::<B>::new` and `Syncobj::<B>::new` come from
//! `rcu_fence::prelude`.
//!
//! Run with `cargo run --example pipeline` (every backend), or pass `rcu`, `locked` or
//! `locked-rcu`.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rcu_fence::prelude::*;

/// How many frames go through the pipeline.
const FRAMES: u64 = 8;
/// The frame whose compute job fails (a GPU fault).
const FAULTY_FRAME: u64 = 5;

/// A job handed to an engine: run once `deps` has signalled, then complete `done`.
struct Job<B: Backend> {
    name: String,
    deps: Fence<B>,
    done: DriverFence<B>,
    work: Duration,
    fault: Option<Errno>,
}

/// One engine: a timeline (one seqno per job, in order) and a worker that runs its jobs.
struct Engine<B: Backend> {
    timeline: Timeline<B>,
    next_seqno: u64,
    queue: mpsc::Sender<Job<B>>,
    worker: thread::JoinHandle<()>,
}

impl<B: Backend> Engine<B> {
    fn new(name: &str) -> Self {
        let (queue, jobs) = mpsc::channel::<Job<B>>();
        let worker = thread::spawn(move || {
            for job in jobs {
                // A dependency that failed fails this job with its error; the work is
                // skipped (as a GPU scheduler skips the jobs of a guilty context).
                let result = match job.deps.wait() {
                    Ok(()) => {
                        thread::sleep(job.work);
                        job.fault.map_or(Ok(()), Err)
                    }
                    Err(FenceError::Failed(e)) => Err(e),
                    Err(other) => panic!("{}: waiting for dependencies: {other}", job.name),
                };
                job.done.signal(result);
            }
        });
        Engine {
            timeline: Timeline::<B>::new(name),
            next_seqno: 1,
            queue,
            worker,
        }
    }

    /// Submits a job that runs once every one of `deps` has signalled; returns its fence.
    fn submit(&mut self, name: String, deps: Vec<Fence<B>>, fault: Option<Errno>) -> Fence<B> {
        let done = self.timeline.driver_fence(self.next_seqno);
        self.next_seqno += 1;
        let fence = done.fence();
        let deps = if deps.is_empty() {
            stub::<B>()
        } else {
            FenceArray::all(deps).expect("non-empty")
        };
        let job = Job {
            name,
            deps,
            done,
            work: Duration::from_micros(300),
            fault,
        };
        self.queue.send(job).expect("engine running");
        fence
    }

    fn stop(self) {
        drop(self.queue);
        self.worker.join().expect("engine worker");
    }
}

/// What one run of the pipeline saw.
#[derive(Debug, PartialEq)]
struct Summary {
    presented: Vec<u64>,
    failed: Vec<(u64, Errno)>,
    value: u64,
}

/// The pipeline on backend `B`.
fn run<B: Backend>() -> Result<Summary, FenceError> {
    let mut copy = Engine::<B>::new("copy");
    let mut compute = Engine::<B>::new("compute");
    let mut gfx = Engine::<B>::new("gfx");
    let frames_done = Syncobj::<B>::new();

    let mut rendered = Vec::new();
    for frame in 1..=FRAMES {
        let upload = copy.submit(format!("upload {frame}"), vec![], None);
        let fault = (frame == FAULTY_FRAME).then_some(Errno::EIO);
        let simulate = compute.submit(format!("compute {frame}"), vec![upload.clone()], fault);
        // Rendering needs this frame's data and simulation.
        let render = gfx.submit(format!("render {frame}"), vec![upload, simulate], None);
        frames_done.add_point(render.clone(), frame);
        rendered.push((frame, render));
    }

    // Present: wait for each frame in turn. A failed frame is reported and skipped.
    let mut summary = Summary {
        presented: Vec::new(),
        failed: Vec::new(),
        value: 0,
    };
    for (frame, render) in &rendered {
        match render.wait_timeout(Duration::from_secs(10)) {
            Ok(()) => summary.presented.push(*frame),
            Err(FenceError::Failed(e)) => summary.failed.push((*frame, e)),
            Err(other) => return Err(other),
        }
    }
    // Every point has signalled: the timeline's value is the last frame, and waiting for a
    // frame reports the earliest failure at or before it (the syncobj's rule).
    summary.value = frames_done.query();
    assert_eq!(
        frames_done.wait_point(FAULTY_FRAME - 1),
        Ok(()),
        "frames before the fault are clean"
    );
    assert_eq!(
        frames_done.wait_point(FRAMES),
        Err(FenceError::Failed(Errno::EIO)),
        "a later frame point reports the earliest failed frame"
    );
    copy.stop();
    compute.stop();
    gfx.stop();
    Ok(summary)
}

fn run_and_report<B: Backend>() -> Result<(), FenceError> {
    let start = Instant::now();
    let summary = run::<B>()?;
    println!(
        "{:>10}: presented frames {:?}, failed {:?}, timeline value {}, in {:?}",
        B::NAME,
        summary.presented,
        summary
            .failed
            .iter()
            .map(|(f, e)| format!("{f} ({e})"))
            .collect::<Vec<_>>(),
        summary.value,
        start.elapsed()
    );
    assert_eq!(summary.failed, [(FAULTY_FRAME, Errno::EIO)]);
    assert_eq!(summary.presented.len() as u64, FRAMES - 1);
    assert_eq!(summary.value, FRAMES);
    Ok(())
}

fn main() -> Result<(), FenceError> {
    let which = std::env::args().nth(1);
    match which.as_deref() {
        None => {
            run_and_report::<Rcu>()?;
            run_and_report::<Locked>()?;
            run_and_report::<LockedRcu>()?;
        }
        Some("rcu") => run_and_report::<Rcu>()?,
        Some("locked") => run_and_report::<Locked>()?,
        Some("locked-rcu") => run_and_report::<LockedRcu>()?,
        Some(other) => {
            eprintln!("usage: pipeline [rcu|locked|locked-rcu] (unknown backend {other:?})");
            std::process::exit(2);
        }
    }
    Ok(())
}
