//! A Vulkan-style timeline semaphore on `Syncobj`, with waits that start before the value
//! they wait for has been submitted.
//!
//! A timeline semaphore is a 64-bit counter: queue submissions signal it to a new value
//! when their work completes, the host may signal it too, and anyone may wait for a value,
//! even one nobody has submitted yet (Vulkan's wait-before-signal; the kernel's
//! `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`). On a `Syncobj` each value is a point:
//!
//! | Vulkan | here |
//! | --- | --- |
//! | `vkQueueSubmit` signalling value `v` | `add_point(job_fence, v)` |
//! | `vkSignalSemaphore(v)` from the host | `add_point(stub(), v)` (an already signalled point) |
//! | `vkWaitSemaphores(v, timeout)` | `wait_point_timeout(v, timeout)` |
//! | `vkGetSemaphoreCounterValue` | `query()` |
//!
//! A value fails if its work, or the work of any earlier value, failed (the syncobj's rule:
//! the error of the earliest failed point at or below it), the same for every waiter.
//!
//! Runs on every backend (`cargo run --example timeline_semaphore`, or pass `rcu`, `locked`
//! or `locked-rcu`).

use std::thread;
use std::time::{Duration, Instant};

use rcu_fence::prelude::*;

/// A timeline semaphore: a sync object and the queue's timeline for its submissions.
struct TimelineSemaphore<B: Backend> {
    points: Syncobj<B>,
    queue: Timeline<B>,
}

impl<B: Backend> TimelineSemaphore<B> {
    fn new() -> Self {
        TimelineSemaphore {
            points: Syncobj::<B>::new(),
            queue: Timeline::<B>::new("queue0"),
        }
    }

    /// A queue submission that signals `value` when its work completes (the producer's
    /// handle: dropping it unsignalled fails the value with -ECANCELED).
    fn submit(&self, value: u64) -> DriverFence<B> {
        let job = self.queue.driver_fence(value);
        self.points.add_point(job.fence(), value);
        job
    }

    /// `vkSignalSemaphore`: the host sets the value.
    fn signal_from_host(&self, value: u64) {
        self.points.add_point(stub::<B>(), value);
    }

    /// `vkWaitSemaphores` for one value; it may not have been submitted yet.
    fn wait(&self, value: u64, timeout: Duration) -> Result<(), FenceError> {
        self.points.wait_point_timeout(value, timeout)
    }

    /// `vkGetSemaphoreCounterValue`.
    fn value(&self) -> u64 {
        self.points.query()
    }
}

fn demo<B: Backend>() -> Result<(), FenceError> {
    let start = Instant::now();
    let sem = TimelineSemaphore::<B>::new();
    let second = Duration::from_secs(10);

    thread::scope(|s| -> Result<(), FenceError> {
        // Waiters start first: nothing has been submitted yet.
        let waiter_2 = s.spawn(|| sem.wait(2, second));
        let waiter_4 = s.spawn(|| sem.wait(4, second));
        let waiter_6 = s.spawn(|| sem.wait(6, second));
        assert_eq!(sem.value(), 0);
        assert_eq!(
            sem.wait(1, Duration::from_millis(2)),
            Err(FenceError::TimedOut),
            "nothing submitted yet"
        );

        // The "GPU": submissions for values 1 and 2, completed a little later, in order.
        let (one, two) = (sem.submit(1), sem.submit(2));
        s.spawn(move || {
            thread::sleep(Duration::from_millis(2));
            one.signal(Ok(()));
            two.signal(Ok(()));
        });
        waiter_2.join().expect("waiter")?;
        println!(
            "{:>10}: value 2 reached (value now {})",
            B::NAME,
            sem.value()
        );

        // The host signals 3; then a submission for 4 completes.
        sem.signal_from_host(3);
        assert_eq!(sem.value(), 3);
        sem.submit(4).signal(Ok(()));
        waiter_4.join().expect("waiter")?;

        // Value 5's work faults (the device was lost); 6 is submitted after it and its
        // own work succeeds, but waiting for 6 means waiting for 5 too: it reports 5's
        // error, for the waiter that started before 6 existed and for one that comes late.
        let (five, six) = (sem.submit(5), sem.submit(6));
        five.signal(Err(Errno::ENODEV));
        six.signal(Ok(()));
        let early = waiter_6.join().expect("waiter");
        let late = sem.wait(6, second);
        println!(
            "{:>10}: value 6: early waiter {early:?}, late waiter {late:?}",
            B::NAME
        );
        assert_eq!(early, Err(FenceError::Failed(Errno::ENODEV)));
        assert_eq!(late, early);
        assert_eq!(sem.wait(4, second), Ok(()), "earlier values stay clean");

        // An abandoned submission (its producer dropped the handle) fails with -ECANCELED.
        drop(sem.submit(7));
        assert_eq!(
            sem.wait(7, second),
            Err(FenceError::Failed(Errno::ENODEV)),
            "5's failure comes first"
        );
        assert_eq!(sem.value(), 7);
        Ok(())
    })?;
    println!("{:>10}: done in {:?}", B::NAME, start.elapsed());
    Ok(())
}

fn main() -> Result<(), FenceError> {
    match std::env::args().nth(1).as_deref() {
        None => {
            demo::<Rcu>()?;
            demo::<Locked>()?;
            demo::<LockedRcu>()?;
        }
        Some("rcu") => demo::<Rcu>()?,
        Some("locked") => demo::<Locked>()?,
        Some("locked-rcu") => demo::<LockedRcu>()?,
        Some(other) => {
            eprintln!(
                "usage: timeline_semaphore [rcu|locked|locked-rcu] (unknown backend {other:?})"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}
