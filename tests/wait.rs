//! Blocking waits on one fence and on any of several, on both backends.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use rcu_fence::{Backend, Errno, Fence, FenceError, Status, wait_any_timeout};

use common::{Counter, timeline};

common::every_backend!(
    wait_returns_when_signalled_from_another_thread,
    wait_on_signalled_fence_returns_at_once,
    wait_timeout_zero_only_checks,
    short_timeout_expires_and_leaves_no_callback,
    huge_timeout_waits_like_infinity,
    wait_timeout_returns_when_signalled_in_time,
    wait_any_empty_is_refused,
    wait_any_zero_timeout_only_checks,
    wait_any_reports_the_signalled_index,
    wait_any_times_out_and_leaves_no_callbacks,
    wait_any_huge_timeout_waits_like_infinity,
    many_waiters_all_return,
    wait_inside_a_callback_enables_what_it_waits_for,
    wait_inside_a_callback_on_a_fence_this_threads_work_signals,
    untimed_wait_where_blocking_is_refused_returns_an_error,
);

/// Signals `f` from a new thread after a short delay (which only makes it likely that the
/// waiter is parked by then; no assertion depends on it).
fn signal_later<B: Backend>(f: &Fence<B>, error: Option<Errno>) -> thread::JoinHandle<()> {
    let g = f.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        if let Some(e) = error {
            g.set_error(e).unwrap();
        }
        g.signal().unwrap();
    })
}

/// Adds `mine` counting callbacks, signals `f` and returns how many of them ran.
fn count_callbacks_run_by_signal<B: Backend>(f: &Fence<B>, mine: usize) -> usize {
    let ran = Counter::new();
    for _ in 0..mine {
        let r = ran.clone();
        f.add_callback(move |_| r.inc()).unwrap();
    }
    f.signal().unwrap();
    ran.get()
}

/// True if this thread was unparked (by anything) in the meantime: `park_timeout` returns
/// at once when an unpark token is pending.
fn has_unpark_token() -> bool {
    let start = Instant::now();
    thread::park_timeout(Duration::from_millis(200));
    start.elapsed() < Duration::from_millis(150)
}

fn wait_returns_when_signalled_from_another_thread<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let signaller = signal_later(&f, Some(Errno::ETIME));
    assert_eq!(f.wait(), Err(FenceError::Failed(Errno::ETIME)));
    assert!(f.test_signaled_flag());
    signaller.join().unwrap();

    let g = timeline::<B>().fence(1);
    let signaller = signal_later(&g, None);
    assert_eq!(g.wait(), Ok(()));
    signaller.join().unwrap();
}

fn wait_on_signalled_fence_returns_at_once<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.set_error(Errno::ENODATA).unwrap();
    f.signal().unwrap();
    assert_eq!(f.wait(), Err(FenceError::Failed(Errno::ENODATA)));
    assert_eq!(
        f.wait_timeout(Duration::from_secs(100)),
        Err(FenceError::Failed(Errno::ENODATA))
    );
}

fn wait_timeout_zero_only_checks<B: Backend>() {
    let f = timeline::<B>().fence(1);
    assert_eq!(f.wait_timeout(Duration::ZERO), Err(FenceError::TimedOut));
    assert_eq!(f.status(), Status::Pending);
    f.signal().unwrap();
    assert_eq!(f.wait_timeout(Duration::ZERO), Ok(()));
}

fn short_timeout_expires_and_leaves_no_callback<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    assert_eq!(f.wait_timeout(timeout), Err(FenceError::TimedOut));
    assert!(
        start.elapsed() >= timeout,
        "returned after {:?}",
        start.elapsed()
    );
    assert_eq!(f.status(), Status::Pending);
    // Signal from another thread: a left-over waiter callback would unpark this thread.
    let g = f.clone();
    let ran = thread::spawn(move || count_callbacks_run_by_signal(&g, 3))
        .join()
        .unwrap();
    assert_eq!(ran, 3);
    assert!(
        !has_unpark_token(),
        "the timed-out wait left its callback installed"
    );
}

fn huge_timeout_waits_like_infinity<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let signaller = signal_later(&f, None);
    assert_eq!(f.wait_timeout(Duration::MAX), Ok(()));
    signaller.join().unwrap();
    let g = timeline::<B>().fence(1);
    let signaller = signal_later(&g, None);
    assert_eq!(g.wait_timeout(Duration::from_secs(u64::MAX / 2)), Ok(()));
    signaller.join().unwrap();
}

fn wait_timeout_returns_when_signalled_in_time<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let signaller = signal_later(&f, Some(Errno::ECANCELED));
    let start = Instant::now();
    assert_eq!(
        f.wait_timeout(Duration::from_secs(30)),
        Err(FenceError::Failed(Errno::ECANCELED))
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    signaller.join().unwrap();
}

fn wait_any_empty_is_refused<B: Backend>() {
    assert_eq!(
        wait_any_timeout::<B>(&[], Duration::ZERO),
        Err(FenceError::Empty)
    );
    assert_eq!(
        wait_any_timeout::<B>(&[], Duration::from_secs(1)),
        Err(FenceError::Empty)
    );
}

fn wait_any_zero_timeout_only_checks<B: Backend>() {
    let tl = timeline::<B>();
    let fences: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    assert_eq!(
        wait_any_timeout(&fences, Duration::ZERO),
        Err(FenceError::TimedOut)
    );
    fences[2].signal().unwrap();
    assert_eq!(wait_any_timeout(&fences, Duration::ZERO), Ok(2));
}

fn wait_any_reports_the_signalled_index<B: Backend>() {
    let tl = timeline::<B>();
    let fences: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let signaller = signal_later(&fences[3], None);
    assert_eq!(wait_any_timeout(&fences, Duration::from_secs(30)), Ok(3));
    signaller.join().unwrap();
    // Several signalled: the index of one of them.
    fences[1].signal().unwrap();
    let i = wait_any_timeout(&fences, Duration::from_secs(1)).unwrap();
    assert!(i == 1 || i == 3, "index {i}");
    assert!(fences[i].test_signaled_flag());
}

fn wait_any_times_out_and_leaves_no_callbacks<B: Backend>() {
    let tl = timeline::<B>();
    let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    assert_eq!(
        wait_any_timeout(&fences, timeout),
        Err(FenceError::TimedOut)
    );
    assert!(start.elapsed() >= timeout);
    let moved = fences.clone();
    let ran = thread::spawn(move || {
        moved
            .iter()
            .map(|f| count_callbacks_run_by_signal(f, 1))
            .sum::<usize>()
    })
    .join()
    .unwrap();
    assert_eq!(ran, 3);
    assert!(
        !has_unpark_token(),
        "the timed-out wait_any left a callback installed"
    );
}

fn wait_any_huge_timeout_waits_like_infinity<B: Backend>() {
    let tl = timeline::<B>();
    let fences: Vec<_> = (1..=2).map(|s| tl.fence(s)).collect();
    let signaller = signal_later(&fences[0], None);
    assert_eq!(wait_any_timeout(&fences, Duration::MAX), Ok(0));
    signaller.join().unwrap();
}

fn many_waiters_all_return<B: Backend>() {
    let f = timeline::<B>().fence(1);
    thread::scope(|s| {
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let f = &f;
                s.spawn(move || {
                    if i % 2 == 0 {
                        f.wait()
                    } else {
                        f.wait_timeout(Duration::from_secs(30))
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        f.set_error(Errno::ETIME).unwrap();
        f.signal().unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(FenceError::Failed(Errno::ETIME)));
        }
    });
}

/// Defect (`Rcu`): inside a callback the work list is open, so the awaited array's enable
/// hook was only queued, behind the callback that was now blocked: the array never put
/// callbacks on its members, and the wait timed out (or hung) although the members
/// signalled. A blocking wait first runs what this thread has queued. (`Locked` refuses a
/// wait that would block inside a callback: `WouldDeadlock`.)
fn wait_inside_a_callback_enables_what_it_waits_for<B: Backend>() {
    /// Reports its fence's enabling on a channel.
    struct ReportsEnable(std::sync::Mutex<std::sync::mpsc::Sender<()>>);
    impl<B: Backend> rcu_fence::FenceOps<B> for ReportsEnable {
        fn driver_name(&self) -> &str {
            "test"
        }
        fn timeline_name(&self) -> &str {
            "test"
        }
        fn enable_signaling(&self, _: &Fence<B>) -> bool {
            let _ = self.0.lock().unwrap().send(());
            true
        }
    }
    let status = common::watchdog("wait inside a callback", || {
        let tl = timeline::<B>();
        let trigger = tl.fence(1);
        let (enabled_tx, enabled_rx) = std::sync::mpsc::channel();
        let members: Vec<_> = (2..4)
            .map(|s| {
                let ops = ReportsEnable(std::sync::Mutex::new(enabled_tx.clone()));
                tl.fence_with_ops(s, std::sync::Arc::new(ops))
            })
            .collect();
        let all =
            rcu_fence::FenceArray::create(members.clone(), rcu_fence::context_alloc(1), 1, false)
                .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        trigger
            .add_callback(move |_| {
                // The members signal once the array has asked them to (its enabling
                // reached them), or after 10 s regardless.
                let signaller = thread::spawn(move || {
                    for m in members {
                        let _ = enabled_rx.recv_timeout(Duration::from_secs(10));
                        m.signal().unwrap();
                    }
                });
                tx.send(all.wait_timeout(Duration::from_secs(10))).unwrap();
                signaller.join().unwrap();
            })
            .unwrap();
        trigger.signal().unwrap();
        rx.recv().unwrap()
    });
    if common::is_rcu::<B>() {
        assert_eq!(status, Ok(()));
    } else {
        // The callback holds `trigger`'s lock, as in the kernel, which forbids sleeping
        // there: refused with a typed error rather than a hang.
        assert_eq!(status, Err(FenceError::WouldDeadlock));
    }
}

/// A callback that waits on a fence which this thread's queued work signals (here: a
/// second callback of the same fence, queued behind it on `Rcu`; run right after it under
/// the lock on `Locked`... where it would deadlock, so `Locked` signals it from the
/// first callback's own thread instead). The wait returns.
fn wait_inside_a_callback_on_a_fence_this_threads_work_signals<B: Backend>() {
    if !common::is_rcu::<B>() {
        return; // On `Locked` the second callback cannot run while the first one blocks.
    }
    let status = common::watchdog("wait on a fence signalled by queued work", || {
        let tl = timeline::<B>();
        let (outer, inner, awaited) = (tl.fence(1), tl.fence(2), tl.fence(3));
        let a = awaited.clone();
        inner
            .add_callback(move |_| {
                a.signal().unwrap();
            })
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        outer
            .add_callback(move |_| {
                // Queued behind this callback: `inner`'s callbacks, which signal `awaited`.
                inner.signal().unwrap();
                tx.send(awaited.wait_timeout(Duration::from_secs(10)))
                    .unwrap();
            })
            .unwrap();
        outer.signal().unwrap();
        rx.recv().unwrap()
    });
    assert_eq!(status, Ok(()));
}

/// `wait()` (no timeout) where blocking is refused (`Locked`, inside a callback) returns
/// `Err(WouldDeadlock)` as `wait_timeout` does, instead of panicking. On `Rcu` it blocks
/// until another thread signals.
fn untimed_wait_where_blocking_is_refused_returns_an_error<B: Backend>() {
    let result = common::watchdog("wait() inside a callback", || {
        let tl = timeline::<B>();
        let (trigger, other) = (tl.fence(1), tl.fence(2));
        let (tx, rx) = std::sync::mpsc::channel();
        let o = other.clone();
        trigger
            .add_callback(move |_| {
                let signaller = {
                    let o = o.clone();
                    thread::spawn(move || {
                        thread::sleep(Duration::from_millis(5));
                        o.signal().unwrap();
                    })
                };
                tx.send(o.wait()).unwrap();
                signaller.join().unwrap();
            })
            .unwrap();
        trigger.signal().unwrap();
        rx.recv().unwrap()
    });
    if common::is_rcu::<B>() {
        assert_eq!(result, Ok(()));
    } else {
        assert_eq!(result, Err(FenceError::WouldDeadlock));
    }
}
