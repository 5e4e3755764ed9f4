//! Races with real threads, checked with exact counts, on both backends.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use rand::Rng;
use rcu_fence::{Backend, Errno, Fence, FenceArray, FenceError, FenceOps, Status, context_alloc};

use common::{Counter, block_on, timeline};

common::every_backend!(
    adders_race_a_signaller,
    remove_races_signal,
    two_signallers_race,
    set_error_races_signal,
    awaiter_races_signal,
    remove_waits_for_a_running_callback,
    remove_after_observing_the_signal_returns_false,
    array_readers_race_member_releases,
);

/// Busy-waits for a random short while, to vary the interleavings.
fn jitter(max: u32) {
    let n = rand::rng().random_range(0..max);
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Several threads add callbacks while one signals: every callback whose add returned `Ok`
/// ran exactly once, every refused one never ran.
fn adders_race_a_signaller<B: Backend>() {
    const ITERATIONS: usize = 200;
    const ADDERS: usize = 4;
    const PER_ADDER: usize = 16;
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..ITERATIONS {
        let f = timeline::<B>().fence(1);
        let runs: Arc<Vec<AtomicUsize>> = Arc::new(
            (0..ADDERS * PER_ADDER)
                .map(|_| AtomicUsize::new(0))
                .collect(),
        );
        let total = Counter::new();
        let start = Barrier::new(ADDERS + 1);
        let results: Vec<Vec<bool>> = thread::scope(|s| {
            let adders: Vec<_> = (0..ADDERS)
                .map(|a| {
                    let (f, start, runs, total) = (&f, &start, &runs, &total);
                    s.spawn(move || {
                        start.wait();
                        (0..PER_ADDER)
                            .map(|k| {
                                let (runs, total) = (runs.clone(), total.clone());
                                let added = f.add_callback(move |me| {
                                    assert!(me.test_signaled_flag());
                                    runs[a * PER_ADDER + k].fetch_add(1, Ordering::SeqCst);
                                    total.inc();
                                });
                                match added {
                                    Ok(_) => true,
                                    Err(e) => {
                                        assert_eq!(e, FenceError::AlreadySignaled);
                                        false
                                    }
                                }
                            })
                            .collect()
                    })
                })
                .collect();
            start.wait();
            jitter(2000);
            f.signal().unwrap();
            adders.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, added) in results.iter().enumerate() {
            for (k, &ok) in added.iter().enumerate() {
                assert_eq!(
                    runs[a * PER_ADDER + k].load(Ordering::SeqCst),
                    ok as usize,
                    "adder {a} callback {k}"
                );
            }
        }
        let ok = results.iter().flatten().filter(|&&ok| ok).count();
        assert_eq!(total.get(), ok);
        accepted += ok;
        refused += ADDERS * PER_ADDER - ok;
    }
    // Not asserted (scheduling decides), but useful when reading a run's output.
    println!("accepted {accepted}, refused {refused}");
}

/// remove_callback racing the signal. The callback sets `done` as its last action, after a
/// short spin: whenever remove returns false, the callback has finished, so `done` is
/// already set; when it returns true, the callback never runs.
fn remove_races_signal<B: Backend>() {
    const ITERATIONS: usize = 1000;
    let (mut removed_count, mut ran_count) = (0, 0);
    for _ in 0..ITERATIONS {
        let f = timeline::<B>().fence(1);
        let started = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (st, d) = (started.clone(), done.clone());
        let id = f
            .add_callback(move |_| {
                st.store(true, Ordering::SeqCst);
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
                d.store(true, Ordering::SeqCst);
            })
            .unwrap();
        let start = Barrier::new(2);
        thread::scope(|s| {
            let signaller = s.spawn(|| {
                start.wait();
                f.signal().unwrap();
            });
            start.wait();
            jitter(400);
            let removed = f.remove_callback(id);
            if removed {
                removed_count += 1;
            } else {
                ran_count += 1;
                assert!(
                    done.load(Ordering::SeqCst),
                    "remove returned false before the callback finished"
                );
            }
            signaller.join().unwrap();
            assert_eq!(
                started.load(Ordering::SeqCst),
                !removed,
                "removed: {removed}"
            );
            assert_eq!(done.load(Ordering::SeqCst), !removed);
        });
    }
    println!("removed {removed_count}, ran {ran_count}");
}

/// Two threads signal the same fence: exactly one succeeds, and every callback runs once,
/// on the winner's thread.
fn two_signallers_race<B: Backend>() {
    const ITERATIONS: usize = 500;
    for _ in 0..ITERATIONS {
        let f = timeline::<B>().fence(1);
        let threads = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..3 {
            let t = threads.clone();
            f.add_callback(move |_| t.lock().unwrap().push(thread::current().id()))
                .unwrap();
        }
        let start = Barrier::new(2);
        let outcomes: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (f, start) = (&f, &start);
                    s.spawn(move || {
                        start.wait();
                        (f.signal(), thread::current().id())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(r, _)| r.is_ok())
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|(r, _)| *r == Err(FenceError::AlreadySignaled))
        );
        assert_eq!(*threads.lock().unwrap(), vec![winners[0]; 3]);
    }
}

/// set_error racing the signal: the error is reported iff set_error succeeded.
fn set_error_races_signal<B: Backend>() {
    const ITERATIONS: usize = 500;
    for _ in 0..ITERATIONS {
        let f = timeline::<B>().fence(1);
        let start = Barrier::new(2);
        let set = thread::scope(|s| {
            let setter = s.spawn(|| {
                start.wait();
                jitter(200);
                f.set_error(Errno::ETIME)
            });
            start.wait();
            f.signal().unwrap();
            setter.join().unwrap()
        });
        match set {
            Ok(()) => assert_eq!(f.status(), Status::Error(Errno::ETIME)),
            Err(e) => {
                assert_eq!(e, FenceError::AlreadySignaled);
                assert_eq!(f.status(), Status::Signaled);
            }
        }
    }
}

/// A future awaited on one thread while another signals: the awaiter always wakes.
fn awaiter_races_signal<B: Backend>() {
    const ITERATIONS: usize = 300;
    for _ in 0..ITERATIONS {
        let f = timeline::<B>().fence(1);
        let g = f.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let awaiter = thread::spawn(move || {
            let _ = tx.send(block_on(async { g.await }));
        });
        jitter(2000);
        f.signal().unwrap();
        let status = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("lost wake-up: the awaiter never woke");
        assert_eq!(status, Ok(()));
        awaiter.join().unwrap();
    }
}

/// remove_callback called while the callback runs on another thread: it returns false
/// only once the callback has finished. (The sleep inside the callback makes it likely that
/// remove is called mid-run; the assertions hold however the threads are scheduled.)
fn remove_waits_for_a_running_callback<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let started = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (st, d) = (started.clone(), done.clone());
    let id = f
        .add_callback(move |_| {
            st.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(50));
            d.store(true, Ordering::SeqCst);
        })
        .unwrap();
    thread::scope(|s| {
        let signaller = s.spawn(|| f.signal().unwrap());
        while !started.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        assert!(!f.remove_callback(id));
        assert!(
            done.load(Ordering::SeqCst),
            "remove returned false while the callback was still running"
        );
        signaller.join().unwrap();
    });
}

/// Defect (`Rcu`): a waiter whose wait had returned removed the callback it installed
/// before the signal and got `true`: the callback was taken back and never ran, though the
/// fence had signalled before the call. The kernel's answer once signalled is `false`, with
/// the call waiting until the callback has run. Shape: an earlier callback holds the
/// signaller inside the callback list while another thread, having seen the fence
/// signalled, removes a later callback; the removal must wait and return `false`.
fn remove_after_observing_the_signal_returns_false<B: Backend>() {
    if !common::is_rcu::<B>() {
        // On `Locked` callbacks run under the lock: the remover blocks on it until the
        // whole list has run (the kernel's barrier), which the held first callback would
        // make a deadlock here. Its `false` is what `remove_races_signal` checks.
        return;
    }
    let f = timeline::<B>().fence(1);
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    f.add_callback(move |_| {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    })
    .unwrap();
    let later = Counter::new();
    let l = later.clone();
    let id = f.add_callback(move |_| l.inc()).unwrap();
    let g = f.clone();
    let signaller = thread::spawn(move || g.signal().unwrap());
    entered_rx.recv().unwrap(); // the fence is signalled and its list is being run
    assert!(f.test_signaled_flag());
    let g = f.clone();
    let (removed_tx, removed_rx) = std::sync::mpsc::channel();
    let remover = thread::spawn(move || removed_tx.send(g.remove_callback(id)).unwrap());
    // The remover must not answer while the callback has yet to run. (Only the coverage of
    // the waiting path depends on this timeout; the assertions below do not.)
    let early = removed_rx.recv_timeout(Duration::from_millis(50)).ok();
    assert_eq!(early, None, "answered before the callback ran");
    release_tx.send(()).unwrap();
    assert!(
        !removed_rx.recv().unwrap(),
        "removed after the signal was observed"
    );
    assert_eq!(later.get(), 1);
    remover.join().unwrap();
    signaller.join().unwrap();
}

/// Driver ops that count their drops and check that they are used only while alive.
struct Tracked {
    alive: AtomicBool,
    dropped: Arc<AtomicUsize>,
}

impl<B: Backend> FenceOps<B> for Tracked {
    fn driver_name(&self) -> &str {
        assert!(
            self.alive.load(Ordering::SeqCst),
            "ops used after their drop"
        );
        "races"
    }

    fn timeline_name(&self) -> &str {
        "tracked"
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(
            self.alive.swap(false, Ordering::SeqCst),
            "ops dropped twice"
        );
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Readers take members out of an enabled array (`fences`, `fence(i)`) while a writer
/// signals each member and drops its own handle right after, so that the array's release
/// and the readers' references race for the last one. A reader gets either a live member
/// (its driver ops usable) or nothing; every member is dropped exactly once, and once all
/// have signalled an array on an RCU scheme holds none.
fn array_readers_race_member_releases<B: Backend>() {
    const MEMBERS: usize = 32;
    for _ in 0..20 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let tl = timeline::<B>();
        let mut members: Vec<Fence<B>> = (1..=MEMBERS as u64)
            .map(|s| {
                let ops = Tracked {
                    alive: AtomicBool::new(true),
                    dropped: dropped.clone(),
                };
                tl.fence_with_ops(s, Arc::new(ops))
            })
            .collect();
        let array =
            FenceArray::create(members.clone(), context_alloc(1), 1, false).expect("members");
        array.enable_sw_signaling();
        let done = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(3));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (array, done, start) = (array.clone(), done.clone(), start.clone());
                thread::spawn(move || {
                    let members = array.as_array().expect("an array");
                    start.wait();
                    let mut seen = 0usize;
                    while !done.load(Ordering::SeqCst) {
                        let got: Vec<Fence<B>> = if r == 0 {
                            members.fences().collect()
                        } else {
                            (0..MEMBERS).filter_map(|i| members.fence(i)).collect()
                        };
                        for m in &got {
                            assert_eq!(m.driver_name(), "races");
                        }
                        seen += got.len();
                        jitter(50);
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        while let Some(m) = members.pop() {
            jitter(200);
            m.signal().unwrap();
            drop(m);
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(array.status(), Status::Signaled);
        // The RCU schemes release members as they signal; `Locked` holds them to its end.
        let held = if B::NAME == "locked" { MEMBERS } else { 0 };
        assert_eq!(array.as_array().unwrap().fences().count(), held);
        drop(array);
        rcu_fence::synchronize_rcu();
        // Every member's last handle is gone: dropped once each.
        assert_eq!(dropped.load(Ordering::SeqCst), MEMBERS);
    }
}
