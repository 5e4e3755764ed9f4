//! An async service that awaits fences (Linux, tokio): each request submits GPU-style work
//! to a device thread and awaits its fence in `tokio::select!` against a timeout and a
//! shutdown signal.
//!
//! - A `Fence` (or `&Fence`) is a future of the same result as `wait()`: `Ok(())`, or
//!   `Err(FenceError::Failed(errno))`, so `?` works in async code; it is `Send`, so tasks
//!   awaiting fences run on any runtime thread.
//! - Dropping the future (the `select!` branch that lost) takes its callback back: a request
//!   that timed out or was shut down leaves nothing behind on the fence.
//! - The device holds each job's `DriverFence`; at shutdown it drops the jobs it has not
//!   run, which fails their fences with -ECANCELED, so no awaiting task is left hanging.
//! - A watcher task awaits a point of a timeline syncobj before the point is submitted.
//!
//! Run with `cargo run --example async_service`.

#[cfg(any(target_os = "linux", target_os = "android"))]
fn main() {
    service::run();
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn main() {
    eprintln!("async_service is built with tokio, a dev-dependency on Linux only");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod service {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};
    use std::thread;
    use std::time::Duration;

    use rcu_fence::{DriverFence, Errno, Fence, FenceError, Syncobj, Timeline};
    use tokio::sync::watch;

    /// How long a request may wait for its work.
    const TIMEOUT: Duration = Duration::from_millis(50);

    /// One unit of device work: how long it takes, and whether it faults.
    struct Job {
        done: DriverFence,
        work: Duration,
        fault: Option<Errno>,
    }

    /// A device: a timeline of jobs, run one at a time on its own thread; each completed
    /// job is also a point of a timeline syncobj.
    struct Device {
        timeline: Timeline,
        points: Arc<Syncobj>,
        next: std::sync::Mutex<(u64, Option<mpsc::Sender<Job>>)>,
        stopping: Arc<AtomicBool>,
    }

    impl Device {
        fn start(points: Arc<Syncobj>) -> (Arc<Device>, thread::JoinHandle<()>) {
            let (queue, jobs) = mpsc::channel::<Job>();
            let stopping = Arc::new(AtomicBool::new(false));
            let worker = thread::spawn({
                let stopping = stopping.clone();
                move || {
                    for job in jobs {
                        // Relaxed: a stop flag with nothing to publish; a job run just
                        // after it was set is harmless.
                        if stopping.load(Ordering::Relaxed) {
                            // Shutting down: the job is dropped unrun, which cancels its
                            // fence (-ECANCELED).
                            continue;
                        }
                        thread::sleep(job.work);
                        job.done.signal(job.fault.map_or(Ok(()), Err));
                    }
                }
            });
            let device = Device {
                timeline: Timeline::new("device"),
                points,
                next: std::sync::Mutex::new((1, Some(queue))),
                stopping,
            };
            (Arc::new(device), worker)
        }

        /// Queues work; returns the fence that signals when it is done.
        fn submit(&self, work: Duration, fault: Option<Errno>) -> Fence {
            let mut next = self.next.lock().unwrap();
            let seqno = next.0;
            next.0 += 1;
            let done = self.timeline.driver_fence(seqno);
            let fence = done.fence();
            self.points.add_point(fence.clone(), seqno);
            match &next.1 {
                Some(queue) => queue
                    .send(Job { done, work, fault })
                    .expect("device running"),
                // Shut down: `done` is dropped here, which cancels the fence.
                None => drop(done),
            }
            fence
        }

        /// Stops taking work; the worker finishes its current job and drops the queued
        /// ones unrun (cancelled).
        fn shut_down(&self) {
            // Relaxed: see the worker's load.
            self.stopping.store(true, Ordering::Relaxed);
            self.next.lock().unwrap().1 = None;
        }
    }

    /// Why a request did not complete.
    #[derive(Debug, PartialEq)]
    enum RequestError {
        Fence(FenceError),
        TimedOut,
        ShuttingDown,
    }

    impl From<FenceError> for RequestError {
        fn from(e: FenceError) -> Self {
            RequestError::Fence(e)
        }
    }

    /// Handles one request: submit, then await the fence against a timeout and shutdown.
    async fn handle(
        device: &Device,
        work: Duration,
        fault: Option<Errno>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Duration, RequestError> {
        let started = tokio::time::Instant::now();
        let done = device.submit(work, fault);
        tokio::select! {
            result = &done => {
                result?; // a fence that signalled with an error ends the request here
                Ok(started.elapsed())
            }
            _ = tokio::time::sleep(TIMEOUT) => Err(RequestError::TimedOut),
            _ = shutdown.wait_for(|&stop| stop) => Err(RequestError::ShuttingDown),
        }
    }

    pub(crate) fn run() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let points = Arc::new(Syncobj::new());
        let (device, worker) = Device::start(points.clone());
        let (stop, shutdown) = watch::channel(false);
        rt.block_on(async {
            // A watcher awaits point 3 of the device's timeline before anything is
            // submitted: it learns whether the first three jobs all succeeded.
            let watcher = tokio::spawn({
                let points = points.clone();
                async move { points.wait_point_async(3).await }
            });

            let ms = Duration::from_millis;
            let requests = [
                (ms(1), None),             // quick
                (ms(2), Some(Errno::EIO)), // the device reports a fault
                (ms(1), None),             // quick
                (ms(150), None),           // too slow: the request times out
            ];
            let mut outcomes = Vec::new();
            for (work, fault) in requests {
                let outcome = handle(&device, work, fault, shutdown.clone()).await;
                println!("request ({work:?}, fault {fault:?}): {outcome:?}");
                outcomes.push(outcome);
            }
            assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
            assert_eq!(
                outcomes[1],
                Err(RequestError::Fence(FenceError::Failed(Errno::EIO)))
            );
            assert_eq!(outcomes[3], Err(RequestError::TimedOut));
            // Point 3 waits for points 1 to 3: it reports point 2's fault.
            assert_eq!(
                watcher.await.expect("watcher"),
                Err(FenceError::Failed(Errno::EIO))
            );

            // Shutdown while requests are in flight: they return at once; the jobs the
            // device never ran are cancelled, so anyone still awaiting them wakes too.
            let in_flight: Vec<_> = (0..3)
                .map(|_| {
                    let (device, shutdown) = (device.clone(), shutdown.clone());
                    tokio::spawn(async move { handle(&device, ms(30), None, shutdown).await })
                })
                .collect();
            let abandoned = device.submit(ms(30), None);
            tokio::time::sleep(ms(5)).await;
            stop.send(true).expect("requests listen");
            device.shut_down();
            for task in in_flight {
                assert_eq!(task.await.expect("task"), Err(RequestError::ShuttingDown));
            }
            // The device is still busy with the slow job; the jobs queued behind it are
            // never run: their fences fail with -ECANCELED when the device drops them.
            let late = abandoned.await;
            println!("after shutdown, a queued job's fence: {late:?}");
            assert_eq!(late, Err(FenceError::Failed(Errno::ECANCELED)));
        });
        worker.join().expect("device worker");
    }
}
