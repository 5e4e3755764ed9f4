//! A stand-in for the kernel's irq_work: work queued from a callback (which runs under a
//! fence lock) and run later on a worker thread, in a fresh context with no lock held.
//! The classic scheme uses it for container signalling and chain re-arming, as the kernel
//! does; it costs one hop of latency per use.
//!
//! Under loom there is no background thread: the work runs at once.

#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, OnceLock};

#[cfg(not(loom))]
type Work = Box<dyn FnOnce() + Send>;

#[cfg(not(loom))]
struct Queue {
    jobs: Mutex<std::collections::VecDeque<Work>>,
    ready: Condvar,
}

#[cfg(not(loom))]
fn queue() -> &'static Queue {
    static QUEUE: OnceLock<&'static Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let q: &'static Queue = Box::leak(Box::new(Queue {
            jobs: Mutex::new(Default::default()),
            ready: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("fence-irq-work".into())
            .spawn(move || run(q))
            .expect("spawning the irq_work thread");
        q
    })
}

#[cfg(not(loom))]
fn run(q: &'static Queue) {
    loop {
        let job = {
            let mut jobs = q.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = jobs.pop_front() {
                    break job;
                }
                jobs = q.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A panicking job must not kill the worker; the panic is reported by the hook.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Queues `work` to run on the worker thread (`irq_work_queue`).
pub(crate) fn queue_work(work: impl FnOnce() + Send + 'static) {
    #[cfg(not(loom))]
    {
        let q = queue();
        q.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Box::new(work));
        q.ready.notify_one();
    }
    #[cfg(loom)]
    work();
}
