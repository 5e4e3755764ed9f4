//! The producer's `DriverFence`, on both backends.

mod common;

use std::sync::{Arc, Mutex};

use rcu_fence::{Backend, DriverFence, Errno, FenceError, Status};

use common::{Counter, timeline};

common::every_backend!(
    signal_ok_completes_cleanly,
    signal_err_completes_with_the_error,
    drop_without_signal_cancels,
    consuming_signal_prevents_a_second_signal,
    plain_signal_before_drop_wins,
    plain_signal_before_signal_err_wins,
    driver_fence_from_another_thread,
    dropped_inside_its_own_fences_callback,
);

/// A driver fence with one callback that records the status it sees.
fn watched<B: Backend>() -> (DriverFence<B>, Arc<Mutex<Vec<Status>>>) {
    let job = timeline::<B>().driver_fence(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    job.fence()
        .add_callback(move |f| s.lock().unwrap().push(f.status()))
        .unwrap();
    (job, seen)
}

fn signal_ok_completes_cleanly<B: Backend>() {
    let (job, seen) = watched::<B>();
    let done = job.fence();
    assert_eq!(done.status(), Status::Pending);
    job.signal(Ok(()));
    assert_eq!(done.status(), Status::Signaled);
    assert_eq!(*seen.lock().unwrap(), [Status::Signaled]);
}

fn signal_err_completes_with_the_error<B: Backend>() {
    let (job, seen) = watched::<B>();
    let done = job.fence();
    job.signal(Err(Errno::ETIME));
    assert_eq!(done.status(), Status::Error(Errno::ETIME));
    assert_eq!(done.error(), Some(Errno::ETIME));
    assert_eq!(*seen.lock().unwrap(), [Status::Error(Errno::ETIME)]);
}

fn drop_without_signal_cancels<B: Backend>() {
    let (job, seen) = watched::<B>();
    let done = job.fence();
    drop(job);
    assert_eq!(done.status(), Status::Error(Errno::ECANCELED));
    assert_eq!(*seen.lock().unwrap(), [Status::Error(Errno::ECANCELED)]);
    assert!(done.timestamp().is_some());
}

fn consuming_signal_prevents_a_second_signal<B: Backend>() {
    // `signal` takes the handle by value, so nothing is left to drop with -ECANCELED.
    let (job, seen) = watched::<B>();
    let done = job.fence();
    job.signal(Ok(()));
    let at = done.timestamp().unwrap();
    assert_eq!(
        done.status(),
        Status::Signaled,
        "no -ECANCELED after a consumed signal"
    );
    assert_eq!(done.timestamp(), Some(at));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(done.signal(), Err(FenceError::AlreadySignaled));
}

fn plain_signal_before_drop_wins<B: Backend>() {
    let (job, seen) = watched::<B>();
    let done = job.fence();
    done.signal().unwrap();
    drop(job);
    assert_eq!(
        done.status(),
        Status::Signaled,
        "the drop does nothing further"
    );
    assert_eq!(done.error(), None);
    assert_eq!(*seen.lock().unwrap(), [Status::Signaled]);
}

fn plain_signal_before_signal_err_wins<B: Backend>() {
    let (job, seen) = watched::<B>();
    let done = job.fence();
    done.set_error(Errno::ENODATA).unwrap();
    done.signal().unwrap();
    job.signal(Err(Errno::ETIME));
    assert_eq!(done.status(), Status::Error(Errno::ENODATA));
    assert_eq!(*seen.lock().unwrap(), [Status::Error(Errno::ENODATA)]);
}

fn driver_fence_from_another_thread<B: Backend>() {
    let job = timeline::<B>().driver_fence(3);
    let done = job.fence();
    assert_eq!(done.seqno(), 3);
    let ran = Counter::new();
    let r = ran.clone();
    done.add_callback(move |_| r.inc()).unwrap();
    let producer = std::thread::spawn(move || job.signal(Err(Errno::ECANCELED)));
    assert_eq!(done.wait(), Err(FenceError::Failed(Errno::ECANCELED)));
    producer.join().unwrap();
    assert_eq!(ran.get(), 1);
    assert!(format!("{:?}", timeline::<B>().driver_fence(1)).starts_with("DriverFence("));
}

/// Defect (`Locked`): a cleanup callback that drops the job owning the `DriverFence`, after
/// the driver signalled through a clone, made the drop signal again and take the lock the
/// signaller holds (a hang, or lockdep's panic out of `signal()`). The drop of a driver
/// fence whose fence has already signalled does nothing.
fn dropped_inside_its_own_fences_callback<B: Backend>() {
    let seen = common::watchdog("drop a DriverFence in its fence's callback", || {
        let job = timeline::<B>().driver_fence(1);
        let done = job.fence();
        let ran = Counter::new();
        let r = ran.clone();
        done.add_callback(move |_| {
            drop(job);
            r.inc();
        })
        .unwrap();
        done.signal().unwrap();
        (ran.get(), done.status())
    });
    assert_eq!(seen, (1, Status::Signaled));
}

/// What `DriverFence` does not promise (its docs): a forgotten handle never runs its drop,
/// so the fence stays pending; nothing else breaks, and a plain handle can still signal it.
#[test]
fn forgotten_driver_fence_leaves_the_fence_pending() {
    let job = timeline::<rcu_fence::Rcu>().driver_fence(1);
    let done = job.fence();
    std::mem::forget(job);
    assert_eq!(done.status(), Status::Pending);
    assert_eq!(
        done.wait_timeout(std::time::Duration::from_millis(1)),
        Err(FenceError::TimedOut)
    );
    done.signal().unwrap();
    assert_eq!(done.status(), Status::Signaled);
}
