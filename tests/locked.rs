//! The classic scheme's own rules: the lock-dependency recorder, the kernel's nesting
//! warnings, self-deadlock detection, and the chain's iterative release.
//!
//! Each recorder test runs its body on a fresh thread and asserts on that thread's own view
//! (`lockdep::thread_report`), so tests running in parallel do not disturb each other. The
//! one test that checks the process-wide view after `reset` holds `GLOBAL`, as does every
//! other test here, so nothing in this binary records while it looks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rcu_fence::lockdep::{self, LockClass};
use rcu_fence::{
    CallbackId, Fence, FenceArray, FenceChain, FenceError, Locked, Timeline, chain_walk,
    context_alloc,
};

static GLOBAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a new thread (whose lockdep view starts empty) and returns its result.
fn on_fresh_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match std::thread::spawn(f).join() {
        Ok(r) => r,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn timeline() -> Timeline<Locked> {
    Timeline::new_in("gpu", Locked)
}

fn array(fences: Vec<Fence<Locked>>) -> Fence<Locked> {
    FenceArray::create(fences, context_alloc(1), 1, false).unwrap()
}

/// A callback on fence A (run under A's lock) that signals fence B (taking B's lock):
/// one fence → fence dependency, a same-class nesting.
#[test]
fn callback_signalling_another_fence_records_fence_to_fence() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let (a, b) = (tl.fence(1), tl.fence(2));
        let b2 = b.clone();
        a.add_callback(move |_| b2.signal().unwrap()).unwrap();
        assert!(
            lockdep::thread_report().is_empty(),
            "nothing nests before the signal"
        );
        a.signal().unwrap();
        assert!(b.test_signaled_flag());
        lockdep::thread_report()
    });
    assert_eq!(
        report.edge_count(LockClass::Fence, LockClass::Fence),
        1,
        "{report}"
    );
    assert_eq!(report.dependencies.len(), 1, "{report}");
    assert_eq!(report.dependencies[0].first_seen, "signal");
    assert_eq!(report.same_class_count(LockClass::Fence), 1);
    assert!(report.cycles.is_empty());
    assert_eq!(report.nesting_warning_count(), 0);
}

/// Enabling an array takes each member's lock inside the array's: array → fence.
#[test]
fn enabling_an_array_records_array_to_fence() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let members: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
        let all = array(members.clone());
        all.enable_sw_signaling();
        let report = lockdep::thread_report();
        for m in &members {
            m.signal().unwrap();
        }
        assert_eq!(all.wait(), Ok(()));
        report
    });
    assert_eq!(
        report.edge_count(LockClass::Array, LockClass::Fence),
        3,
        "{report}"
    );
    // The members themselves are read without a lock, as in the kernel (an array's are
    // fixed until its release).
    assert_eq!(report.dependencies.len(), 1, "{report}");
    assert_eq!(report.same_class_count(LockClass::Array), 0);
    assert_eq!(report.same_class_count(LockClass::Fence), 0);
    assert_eq!(report.nesting_warning_count(), 0);
    assert!(report.cycles.is_empty());
}

/// An array inside an array: one nesting warning at creation, and enabling nests two
/// array locks (the recursive locking the kernel's lockdep reports).
#[test]
fn array_in_array_warns_and_nests_the_same_class() {
    let _serial = serial();
    let (created, enabled) = on_fresh_thread(|| {
        let tl = timeline();
        let (a, b, c) = (tl.fence(1), tl.fence(2), tl.fence(3));
        let inner = array(vec![a.clone(), b.clone()]);
        let outer = array(vec![inner, c.clone()]);
        let created = lockdep::thread_report();
        outer.enable_sw_signaling();
        let enabled = lockdep::thread_report();
        for f in [&a, &b, &c] {
            f.signal().unwrap();
        }
        assert_eq!(outer.wait(), Ok(()));
        (created, enabled)
    });
    assert_eq!(created.nesting_warning_count(), 1, "{created}");
    assert_eq!(created.nesting_warnings[0].container, LockClass::Array);
    assert_eq!(created.nesting_warnings[0].member, LockClass::Array);
    assert!(
        created.dependencies.is_empty(),
        "creating takes no lock inside another"
    );
    assert_eq!(enabled.same_class_count(LockClass::Array), 1, "{enabled}");
    assert_eq!(
        enabled.edge_count(LockClass::Array, LockClass::Array),
        1,
        "{enabled}"
    );
    assert_eq!(enabled.nesting_warning_count(), 1);
}

/// An array containing a chain is forbidden too.
#[test]
fn array_of_a_chain_warns() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let link = FenceChain::create(None, tl.fence(1), 1);
        let _all = array(vec![link, tl.fence(2), tl.fence(3)]);
        lockdep::thread_report()
    });
    assert_eq!(report.nesting_warning_count(), 1, "{report}");
    assert_eq!(report.nesting_warnings[0].container, LockClass::Array);
    assert_eq!(report.nesting_warnings[0].member, LockClass::Chain);
}

/// A chain whose fence is an array is the kernel's legal worst case: no warning; enabling
/// it nests chain → array → fence, three distinct classes.
#[test]
fn chain_of_an_array_is_tolerated() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let (a, b) = (tl.fence(1), tl.fence(2));
        let link = FenceChain::create(None, array(vec![a.clone(), b.clone()]), 1);
        let next = FenceChain::create(Some(link), tl.fence(3), 2);
        assert_eq!(lockdep::thread_report().nesting_warning_count(), 0);
        next.enable_sw_signaling();
        let report = lockdep::thread_report();
        drop(next);
        a.signal().unwrap();
        b.signal().unwrap();
        report
    });
    assert_eq!(report.nesting_warning_count(), 0, "{report}");
    assert!(
        report.edge_count(LockClass::Chain, LockClass::Fence) >= 1,
        "{report}"
    );
    assert!(report.same_class.is_empty(), "{report}");
    assert!(report.cycles.is_empty(), "{report}");
}

/// A chain as another chain's `fence` is forbidden; as its `prev` it is the normal linkage.
#[test]
fn chain_as_a_chains_fence_warns() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let first = FenceChain::create(None, tl.fence(1), 1);
        let linked = FenceChain::create(Some(first.clone()), tl.fence(2), 2);
        assert_eq!(
            lockdep::thread_report().nesting_warning_count(),
            0,
            "prev may be a chain"
        );
        let _nested = FenceChain::create(Some(linked), first, 3);
        lockdep::thread_report()
    });
    assert_eq!(report.nesting_warning_count(), 1, "{report}");
    assert_eq!(report.nesting_warnings[0].container, LockClass::Chain);
    assert_eq!(report.nesting_warnings[0].member, LockClass::Chain);
}

/// ABBA: a callback on chain link A signals fence B (chain → fence); in another run a
/// callback on fence B signals link A (fence → chain). Neither run deadlocks alone; together
/// they are the crossed order the kernel's lockdep reports as a circular dependency.
#[test]
fn crossed_orders_are_reported_as_a_cycle() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        // Run 1: A's callback signals B.
        let (own, b) = (tl.fence(1), tl.fence(2));
        let a = FenceChain::create(None, own.clone(), 1);
        let b2 = b.clone();
        a.add_callback(move |_| b2.signal().unwrap()).unwrap();
        a.signal().unwrap();
        assert!(b.test_signaled_flag());
        let after_one = lockdep::thread_report();
        assert!(after_one.cycles.is_empty(), "{after_one}");
        // Run 2: B's callback signals A.
        let (own, b) = (tl.fence(3), tl.fence(4));
        let a = FenceChain::create(None, own.clone(), 2);
        let a2 = a.clone();
        b.add_callback(move |_| a2.signal().unwrap()).unwrap();
        b.signal().unwrap();
        assert!(a.test_signaled_flag());
        lockdep::thread_report()
    });
    assert!(
        report.edge_count(LockClass::Chain, LockClass::Fence) >= 1,
        "{report}"
    );
    assert_eq!(
        report.edge_count(LockClass::Fence, LockClass::Chain),
        1,
        "{report}"
    );
    assert_eq!(
        report.cycles,
        vec![vec![LockClass::Fence, LockClass::Chain]],
        "{report}"
    );
    assert!(report.has_cycle(&[LockClass::Chain, LockClass::Fence]));
    assert!(
        report
            .to_string()
            .contains("possible circular locking: fence -> chain -> fence"),
        "{report}"
    );
    assert!(lockdep::report().has_cycle(&[LockClass::Fence, LockClass::Chain]));
}

/// The crossing König described: enabling an array takes member locks inside the array's
/// lock, and a member's callback that installs a callback on the array takes the array's
/// lock inside the member's.
#[test]
fn member_callback_touching_its_array_is_a_cycle() {
    let _serial = serial();
    let report = on_fresh_thread(|| {
        let tl = timeline();
        let (a, b) = (tl.fence(1), tl.fence(2));
        let all = array(vec![a.clone(), b.clone()]);
        let all2 = all.clone();
        a.add_callback(move |_| {
            let _ = all2.add_callback(|_| {});
        })
        .unwrap();
        all.enable_sw_signaling();
        a.signal().unwrap();
        b.signal().unwrap();
        assert_eq!(all.wait(), Ok(()));
        lockdep::thread_report()
    });
    assert!(
        report.has_cycle(&[LockClass::Fence, LockClass::Array]),
        "{report}"
    );
}

/// A callback calling `remove_callback` on its own fence takes a lock its thread already
/// holds: the kernel's self-deadlock. The recorder counts it and the call goes on under the
/// lock the thread holds (safe code must not hang); the fence has signalled, so the later
/// callback, not yet run, runs on the spot and the removal answers `false`.
#[test]
fn self_deadlock_is_recorded_instead_of_hanging() {
    let _serial = serial();
    on_fresh_thread(|| {
        let a = timeline().fence(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let removed = Arc::new(Mutex::new(None));
        let slot: Arc<Mutex<Option<CallbackId<Locked>>>> = Arc::new(Mutex::new(None));
        let (me, s, rm) = (a.clone(), slot.clone(), removed.clone());
        a.add_callback(move |_| {
            if let Some(id) = s.lock().unwrap().take() {
                *rm.lock().unwrap() = Some(me.remove_callback(id));
            }
        })
        .unwrap();
        let r = ran.clone();
        let later = a
            .add_callback(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        *slot.lock().unwrap() = Some(later);

        a.signal().unwrap();
        assert_eq!(*removed.lock().unwrap(), Some(false));
        assert_eq!(lockdep::held_locks(), 0, "every lock released");
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the later callback ran once");
        // The lock is free again: these take it.
        assert_eq!(
            a.set_error(rcu_fence::Errno::ETIME),
            Err(FenceError::AlreadySignaled)
        );
        assert_eq!(
            a.add_callback(|_| {}).err().map(FenceError::from),
            Some(FenceError::AlreadySignaled)
        );
        assert_eq!(lockdep::thread_report().self_deadlocks, 1);
    });
}

/// Dropping the head of a 100,000-link chain on a 256 KiB stack: the release unlinks the
/// links one by one instead of recursing along `prev`. A shared link stops the unlinking
/// and keeps its own older links.
#[test]
fn long_chain_drops_iteratively_on_a_small_stack() {
    let _serial = serial();
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let tl = timeline();
            let links = 100_000u64;
            let keep_at = 50_000u64;
            let mut head: Option<Fence<Locked>> = None;
            let mut kept = None;
            for seqno in 1..=links {
                let link = FenceChain::create(head.take(), tl.fence(seqno), seqno);
                if seqno == keep_at {
                    kept = Some(link.clone());
                }
                head = Some(link);
            }
            drop(head);
            let kept = kept.unwrap();
            assert_eq!(
                chain_walk(&kept).count() as u64,
                keep_at,
                "the shared link kept its prev"
            );
            drop(kept);
        })
        .unwrap();
    handle
        .join()
        .expect("the chain's release overflowed or panicked");
}

/// `reset` clears the process-wide view and the calling thread's.
#[test]
fn reset_clears() {
    let _serial = serial();
    on_fresh_thread(|| {
        let tl = timeline();
        let (a, b) = (tl.fence(1), tl.fence(2));
        let b2 = b.clone();
        a.add_callback(move |_| b2.signal().unwrap()).unwrap();
        a.signal().unwrap();
        let _warned = array(vec![array(vec![tl.fence(3)])]);
        assert!(!lockdep::thread_report().is_empty());
        assert!(!lockdep::report().is_empty());
        lockdep::reset();
        assert_eq!(lockdep::thread_report(), Default::default());
        assert_eq!(
            lockdep::report(),
            Default::default(),
            "{}",
            lockdep::report()
        );
    });
}

/// With recording off nothing is recorded, and a lock taken while it was on is still
/// released cleanly after it is turned off.
#[test]
fn recording_can_be_turned_off() {
    let _serial = serial();
    on_fresh_thread(|| {
        let tl = timeline();
        let (a, b) = (tl.fence(1), tl.fence(2));
        let b2 = b.clone();
        a.add_callback(move |_| {
            lockdep::set_enabled(false); // a's lock was recorded as held
            b2.signal().unwrap();
        })
        .unwrap();
        a.signal().unwrap();
        let report = lockdep::thread_report();
        lockdep::set_enabled(true);
        assert!(b.test_signaled_flag());
        assert!(report.is_empty(), "{report}");
        assert_eq!(lockdep::held_locks(), 0);
    });
}
