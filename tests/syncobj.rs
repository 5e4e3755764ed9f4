//! Sync object behaviour on both backends: the replaceable slot, timeline points
//! (`add_point` / `find_fence`), concurrent writers, waiting for points that have not
//! been submitted yet, `query`, and the error rule (a point reports the error of the
//! earliest failed point at or below it, the same for early and late waiters).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{SETTLE, every_backend, is_rcu, settle, timeline};
use rcu_fence::{Backend, Errno, Fence, FenceError, Status, Syncobj, chain_walk};

fn syncobj<B: Backend>() -> Syncobj<B> {
    Syncobj::new_in(B::default())
}

fn replace_returns_old<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let obj = syncobj::<B>();
    assert!(obj.fence().is_none());
    assert!(obj.replace_fence(Some(a.clone())).is_none());
    assert!(obj.fence().unwrap().ptr_eq(&a));
    assert!(obj.replace_fence(Some(b.clone())).unwrap().ptr_eq(&a));
    assert!(obj.fence().unwrap().ptr_eq(&b));
    // A snapshot taken before a replace stays valid.
    let snapshot = obj.fence().unwrap();
    assert!(obj.replace_fence(None).unwrap().ptr_eq(&b));
    assert!(obj.fence().is_none());
    assert!(snapshot.ptr_eq(&b));
    assert!(obj.replace_fence(None).is_none());
}

fn find_on_empty<B: Backend>() {
    let obj = syncobj::<B>();
    assert_eq!(obj.find_fence(0).unwrap_err(), FenceError::InvalidSeqno);
    assert_eq!(obj.find_fence(1).unwrap_err(), FenceError::InvalidSeqno);
}

fn find_on_binary_syncobj<B: Backend>() {
    // A plain fence in the slot: point 0 is the fence; a point is an error (not a chain).
    let tl = timeline::<B>();
    let f = tl.fence(7);
    let obj = syncobj::<B>();
    obj.replace_fence(Some(f.clone()));
    assert!(obj.find_fence(0).unwrap().ptr_eq(&f));
    assert_eq!(obj.find_fence(1).unwrap_err(), FenceError::InvalidSeqno);
}

fn add_point_and_find<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
        let head = obj.fence().unwrap();
        assert_eq!(head.seqno(), i as u64 + 1);
        assert!(head.as_chain().unwrap().fence().unwrap().ptr_eq(f));
    }
    // Before submission.
    assert_eq!(obj.find_fence(5).unwrap_err(), FenceError::InvalidSeqno);
    // Point 0: the current fence.
    assert!(obj.find_fence(0).unwrap().ptr_eq(&obj.fence().unwrap()));
    // Each pending point: its own link.
    for p in 1..=4u64 {
        let found = obj.find_fence(p).unwrap();
        assert_eq!(found.seqno(), p);
        assert!(
            found
                .as_chain()
                .unwrap()
                .fence()
                .unwrap()
                .ptr_eq(&fs[p as usize - 1])
        );
        assert!(!found.is_signaled());
    }
}

fn find_signalled_point<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
    }
    fs[0].signal().unwrap();
    fs[1].signal().unwrap();
    for p in [1, 2] {
        let found = obj.find_fence(p).unwrap();
        assert!(found.is_signaled(), "point {p}");
        assert_eq!(found.status(), Status::Signaled);
        assert_eq!(
            (found.context(), found.seqno()),
            (0, 0),
            "every point up to {p} signalled: a stub"
        );
    }
    let pending = obj.find_fence(3).unwrap();
    assert!(!pending.is_signaled());
    fs[2].signal().unwrap();
    assert_eq!(settle(&pending), Status::Signaled);
    // The head's own point is returned as the (now signalled) head.
    let found = obj.find_fence(3).unwrap();
    assert!(found.is_signaled());
}

fn find_pending_point_waits_for_earlier<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
    }
    // Point 2's own fence has signalled, point 1's has not: waiting for point 2 means
    // waiting for point 1.
    fs[1].signal().unwrap();
    let found = obj.find_fence(2).unwrap();
    assert_eq!(found.seqno(), 1);
    assert!(!found.is_signaled());
    let waiter_done = common::Counter::new();
    let w = waiter_done.clone();
    let id = found.add_callback(move |_| w.inc()).unwrap();
    fs[2].signal().unwrap();
    assert!(!found.test_signaled_flag());
    fs[0].signal().unwrap();
    if is_rcu::<B>() {
        assert!(found.test_signaled_flag());
    }
    assert_eq!(settle(&found), Status::Signaled);
    assert!(!found.remove_callback(id));
    assert_eq!(waiter_done.get(), 1);
    let stub = obj.find_fence(2).unwrap();
    assert_eq!((stub.context(), stub.seqno()), (0, 0));
}

fn find_through_gaps<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    obj.add_point(a.clone(), 10);
    obj.add_point(b.clone(), 20);
    assert_eq!(obj.find_fence(5).unwrap().seqno(), 10);
    assert_eq!(obj.find_fence(15).unwrap().seqno(), 20);
    assert_eq!(obj.find_fence(21).unwrap_err(), FenceError::InvalidSeqno);
}

fn concurrent_add_point_loses_nothing<B: Backend>() {
    let n = 2000u64;
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (obj, tl) = (&obj, &tl);
            s.spawn(move || {
                for i in 0..n {
                    let point = 2 * i + t + 1;
                    obj.add_point(tl.fence(point), point);
                }
            });
        }
    });
    // Every point's fence is on the chain exactly once (links whose seqno was not later
    // than the head's start a new context, but they are still linked).
    let mut seen = BTreeSet::new();
    let mut links = 0;
    for link in chain_walk(&obj.fence().unwrap()) {
        let own = link
            .as_chain()
            .expect("every item is a link")
            .fence()
            .unwrap();
        assert!(seen.insert(own.seqno()), "point {} twice", own.seqno());
        links += 1;
    }
    assert_eq!(links, 2 * n as usize);
    assert_eq!(seen, (1..=2 * n).collect::<BTreeSet<_>>());
    assert_eq!(
        obj.fence().unwrap().seqno(),
        2 * n,
        "the head carries the latest point"
    );
}

fn concurrent_add_point_ordered_all_findable<B: Backend>() {
    // Two writers whose points are ordered by a shared counter taken under the writers'
    // own lock: every point is findable afterwards.
    // find_fence walks from the head: keep the chain short enough for debug builds.
    let n = 250u64;
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let next = std::sync::Mutex::new(0u64);
    let fences = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n {
                    let mut point = next.lock().unwrap();
                    *point += 1;
                    let f = tl.fence(*point);
                    obj.add_point(f.clone(), *point);
                    fences.lock().unwrap().push(f);
                }
            });
        }
    });
    let fences = fences.into_inner().unwrap();
    assert_eq!(fences.len(), 2 * n as usize);
    for f in &fences {
        let found = obj.find_fence(f.seqno()).unwrap();
        assert_eq!(found.seqno(), f.seqno());
        assert!(found.as_chain().unwrap().fence().unwrap().ptr_eq(f));
    }
}

fn readers_race_replace<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let n = 2000u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=n {
                obj.replace_fence(Some(tl.fence(i)));
            }
        });
        s.spawn(|| {
            let mut last = 0;
            for _ in 0..n {
                if let Some(f) = obj.fence() {
                    assert!(
                        f.seqno() >= last,
                        "a reader never sees an older fence after a newer"
                    );
                    last = f.seqno();
                }
            }
        });
    });
    assert_eq!(obj.fence().unwrap().seqno(), n);
}

every_backend!(
    wait_point_before_submit,
    wait_point_timeout_before_submit_times_out,
    find_fence_async_before_submit,
    replace_fence_wakes_point_zero_waiters,
    dropped_async_waiter_leaves_nothing_behind,
    query_is_the_completed_prefix,
    query_follows_out_of_order_signals,
    errors_early_and_late_waiters_agree_in_order,
    errors_early_and_late_waiters_agree_backwards,
    errors_earliest_point_wins_whatever_the_order,
    errors_found_while_an_earlier_point_is_pending,
    errors_values_between_points,
    errors_racing_waiters_agree_with_the_rule,
    replace_returns_old,
    find_on_empty,
    find_on_binary_syncobj,
    add_point_and_find,
    find_signalled_point,
    find_pending_point_waits_for_earlier,
    find_through_gaps,
    concurrent_add_point_loses_nothing,
    concurrent_add_point_ordered_all_findable,
    readers_race_replace,
);

// ---- waiting for points, submitted or not ---------------------------------------------

/// A blocking wait for a point that has not been submitted returns once it is, and has
/// signalled (the kernel's WAIT_FOR_SUBMIT).
fn wait_point_before_submit<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| obj.wait_point_timeout(3, SETTLE));
        let early = s.spawn(|| obj.find_fence_timeout(2, SETTLE).map(|f| f.seqno()));
        std::thread::sleep(Duration::from_millis(10));
        let fences: Vec<_> = (1..=3).map(|p| tl.fence(p)).collect();
        for (p, f) in fences.iter().enumerate() {
            obj.add_point(f.clone(), p as u64 + 1);
        }
        assert_eq!(early.join().unwrap(), Ok(2));
        for f in &fences {
            f.signal().unwrap();
        }
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    assert_eq!(obj.wait_point(3), Ok(()));
}

fn wait_point_timeout_before_submit_times_out<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let short = Duration::from_millis(5);
    assert_eq!(obj.wait_point_timeout(1, short), Err(FenceError::TimedOut));
    assert_eq!(
        obj.find_fence_timeout(1, Duration::ZERO).unwrap_err(),
        FenceError::TimedOut
    );
    // Submitted but not signalled: the same deadline covers the signal.
    let f = tl.fence(1);
    obj.add_point(f.clone(), 1);
    assert_eq!(obj.wait_point_timeout(1, short), Err(FenceError::TimedOut));
    f.signal().unwrap();
    assert_eq!(obj.wait_point_timeout(1, SETTLE), Ok(()));
}

fn find_fence_async_before_submit<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let f = tl.fence(1);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| common::block_on(obj.wait_point_async(1)));
        let finder = s.spawn(|| common::block_on(obj.find_fence_async(1)).seqno());
        std::thread::sleep(Duration::from_millis(10));
        obj.add_point(f.clone(), 1);
        assert_eq!(finder.join().unwrap(), 1);
        f.set_error(Errno::EIO).unwrap();
        f.signal().unwrap();
        assert_eq!(waiter.join().unwrap(), Err(FenceError::Failed(Errno::EIO)));
    });
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&obj.wait_point_async(1));
    assert_send(&obj.find_fence_async(1));
}

fn replace_fence_wakes_point_zero_waiters<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let f = tl.fence(1);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| obj.find_fence_timeout(0, SETTLE).map(|g| g.ptr_eq(&f)));
        std::thread::sleep(Duration::from_millis(10));
        obj.replace_fence(Some(f.clone()));
        assert_eq!(waiter.join().unwrap(), Ok(true));
    });
    // A plain fence does not submit timeline points: a point waiter keeps waiting.
    assert_eq!(
        obj.find_fence_timeout(1, Duration::from_millis(5))
            .unwrap_err(),
        FenceError::TimedOut
    );
}

/// A future dropped while registered takes its registration back; a later writer wakes
/// nobody stale, and a new future still works.
fn dropped_async_waiter_leaves_nothing_behind<B: Backend>() {
    use std::future::Future;
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let (counter, waker) = common::CountingWaker::new();
    {
        let mut fut = std::pin::pin!(obj.find_fence_async(1));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending()); // re-registers, no duplicate
    }
    obj.add_point(tl.fence(1), 1);
    assert_eq!(counter.wakes(), 0, "the dropped future was not woken");
    assert_eq!(common::block_on(obj.find_fence_async(1)).seqno(), 1);
}

fn query_is_the_completed_prefix<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    assert_eq!(obj.query(), 0);
    let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    for (i, f) in fences.iter().enumerate() {
        obj.add_point(f.clone(), 10 * (i as u64 + 1));
    }
    assert_eq!(obj.query(), 0);
    fences[0].signal().unwrap();
    assert_eq!(obj.query(), 10);
    fences[1].set_error(Errno::EIO).unwrap();
    fences[1].signal().unwrap();
    assert_eq!(obj.query(), 20, "a failed point is a signalled one");
    fences[2].signal().unwrap();
    assert_eq!(obj.query(), 30);
    // A plain fence: no timeline value.
    obj.replace_fence(Some(tl.fence(4)));
    assert_eq!(obj.query(), 0);
}

fn query_follows_out_of_order_signals<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let fences: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    for (i, f) in fences.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
    }
    let mut seen = Vec::new();
    for i in [3, 1, 0, 2] {
        fences[i].signal().unwrap();
        seen.push(obj.query());
    }
    assert_eq!(seen, [0, 0, 2, 4]);
}

// ---- the error rule ---------------------------------------------------------------------

/// What the rule says value `v` reports, given each point's own outcome (`points`: point,
/// error): the error of the earliest failed point among those up to the first point at or
/// after `v`.
fn expected(points: &[(u64, Option<Errno>)], v: u64) -> Result<(), FenceError> {
    let first_at_or_after = points.iter().map(|&(p, _)| p).find(|&p| p >= v).unwrap();
    match points
        .iter()
        .filter(|&&(p, _)| p <= first_at_or_after)
        .find_map(|&(_, e)| e)
    {
        Some(e) => Err(FenceError::Failed(e)),
        None => Ok(()),
    }
}

/// Waits for a found fence (within SETTLE) as a caller would.
fn outcome<B: Backend>(f: &Fence<B>) -> Result<(), FenceError> {
    f.wait_timeout(SETTLE)
}

/// Submits `outcomes` (point, error) on a fresh object and returns it with the fences.
fn submit<B: Backend>(outcomes: &[(u64, Option<Errno>)]) -> (Syncobj<B>, Vec<Fence<B>>) {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let fences: Vec<_> = outcomes
        .iter()
        .enumerate()
        .map(|(i, &(p, _))| {
            let f = tl.fence(i as u64 + 1);
            obj.add_point(f.clone(), p);
            f
        })
        .collect();
    (obj, fences)
}

/// Signals point `i` of `outcomes` with its error.
fn complete<B: Backend>(fences: &[Fence<B>], outcomes: &[(u64, Option<Errno>)], i: usize) {
    if let Some(e) = outcomes[i].1 {
        fences[i].set_error(e).unwrap();
    }
    fences[i].signal().unwrap();
}

/// Checks every value from 1 to the last point: early (found before any signal), late
/// (found after every signal), and through `wait_point`.
fn early_and_late_agree<B: Backend>(outcomes: &[(u64, Option<Errno>)], order: &[usize]) {
    let (obj, fences) = submit::<B>(outcomes);
    let last = outcomes.last().unwrap().0;
    let early: Vec<_> = (1..=last).map(|v| obj.find_fence(v).unwrap()).collect();
    for &i in order {
        complete(&fences, outcomes, i);
    }
    for v in 1..=last {
        let want = expected(outcomes, v);
        assert_eq!(outcome(&early[v as usize - 1]), want, "early waiter of {v}");
        let late = obj.find_fence(v).unwrap();
        assert!(late.is_signaled(), "late: {v}");
        assert_eq!(outcome(&late), want, "late waiter of {v}");
        assert_eq!(obj.wait_point_timeout(v, SETTLE), want, "wait_point({v})");
    }
    assert_eq!(obj.query(), last);
}

fn errors_early_and_late_waiters_agree_in_order<B: Backend>() {
    let e = Some(Errno::EIO);
    let outcomes = [
        (1, None),
        (2, None),
        (3, e),
        (4, None),
        (5, Some(Errno::ETIME)),
    ];
    early_and_late_agree::<B>(&outcomes, &[0, 1, 2, 3, 4]);
}

fn errors_early_and_late_waiters_agree_backwards<B: Backend>() {
    let outcomes = [
        (1, None),
        (2, None),
        (3, Some(Errno::EIO)),
        (4, None),
        (5, Some(Errno::ETIME)),
    ];
    early_and_late_agree::<B>(&outcomes, &[4, 3, 2, 1, 0]);
    early_and_late_agree::<B>(&outcomes, &[2, 4, 0, 3, 1]);
}

/// Point 3 fails first, point 2 later: every waiter for 2 and after reports 2's error,
/// whichever failure was seen first.
fn errors_earliest_point_wins_whatever_the_order<B: Backend>() {
    let outcomes = [
        (1, None),
        (2, Some(Errno::ENODEV)),
        (3, Some(Errno::EIO)),
        (4, None),
    ];
    early_and_late_agree::<B>(&outcomes, &[2, 3, 1, 0]);
    early_and_late_agree::<B>(&outcomes, &[3, 2, 0, 1]);
}

/// Found while an earlier point's own fence is pending and later ones have signalled, one
/// of them failed: the fence found waits for the earlier point and reports the failure.
fn errors_found_while_an_earlier_point_is_pending<B: Backend>() {
    let outcomes = [(1, None), (2, None), (3, Some(Errno::EIO)), (4, None)];
    let (obj, fences) = submit::<B>(&outcomes);
    for i in [3, 2] {
        complete(&fences, &outcomes, i);
    }
    let middle: Vec<_> = (1..=4).map(|v| obj.find_fence(v).unwrap()).collect();
    assert!(middle.iter().all(|f| !f.is_signaled()));
    complete(&fences, &outcomes, 1);
    complete(&fences, &outcomes, 0);
    for v in 1..=4 {
        assert_eq!(
            outcome(&middle[v as usize - 1]),
            expected(&outcomes, v),
            "{v}"
        );
        assert_eq!(
            outcome(&obj.find_fence(v).unwrap()),
            expected(&outcomes, v),
            "{v}"
        );
    }
}

/// Values between points are reached with the next point, and report its answer.
fn errors_values_between_points<B: Backend>() {
    let outcomes = [(10, None), (20, Some(Errno::EIO)), (30, None)];
    let (obj, fences) = submit::<B>(&outcomes);
    let early: Vec<_> = (1..=30).map(|v| obj.find_fence(v).unwrap()).collect();
    for i in [2, 1, 0] {
        complete(&fences, &outcomes, i);
    }
    for v in 1..=30u64 {
        let want = if v <= 10 {
            Ok(())
        } else {
            Err(FenceError::Failed(Errno::EIO))
        };
        assert_eq!(outcome(&early[v as usize - 1]), want, "early {v}");
        assert_eq!(outcome(&obj.find_fence(v).unwrap()), want, "late {v}");
    }
}

/// Waiters racing the producer, for every point, some before submission: each gets what
/// the rule says, whatever it raced.
fn errors_racing_waiters_agree_with_the_rule<B: Backend>() {
    use rand::{Rng, SeedableRng};
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _round in 0..4 {
        let n = 24u64;
        let codes = [Errno::EIO, Errno::ETIME, Errno::ENODEV];
        let outcomes: Vec<(u64, Option<Errno>)> = (1..=n)
            .map(|p| {
                let failed = rng.random_range(0..6) == 0;
                (p, failed.then(|| codes[rng.random_range(0..codes.len())]))
            })
            .collect();
        // Each point's fence is signalled in a shuffled order, after all are submitted.
        let mut order: Vec<usize> = (0..n as usize).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let tl = timeline::<B>();
        let obj = syncobj::<B>();
        let fences: Vec<_> = (1..=n).map(|s| tl.fence(s)).collect();
        std::thread::scope(|s| {
            let waiters: Vec<_> = (1..=n)
                .map(|v| {
                    let obj = &obj;
                    s.spawn(move || obj.wait_point_timeout(v, SETTLE))
                })
                .collect();
            s.spawn(|| {
                for (i, f) in fences.iter().enumerate() {
                    obj.add_point(f.clone(), i as u64 + 1);
                }
                for &i in &order {
                    complete(&fences, &outcomes, i);
                }
            });
            for (v, w) in (1..=n).zip(waiters) {
                assert_eq!(
                    w.join().unwrap(),
                    expected(&outcomes, v),
                    "racing waiter of {v} (seed {seed}, order {order:?})"
                );
            }
        });
        for v in 1..=n {
            assert_eq!(
                obj.wait_point_timeout(v, SETTLE),
                expected(&outcomes, v),
                "late waiter of {v} (seed {seed})"
            );
        }
    }
}
