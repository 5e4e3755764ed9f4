//! Bad input and misuse, one test per entry of the catalogue below, on every backend. Each
//! misuse gets a typed error or a documented answer, panics nowhere, loses no callback, and
//! leaves the fence exactly as it was (status, error, timestamp, and the callbacks that ran
//! or are still to run).
//!
//! | misuse | answer |
//! | --- | --- |
//! | signal twice | `Err(AlreadySignaled)`; timestamp, status and callbacks unchanged |
//! | `set_error` after the signal | `Err(AlreadySignaled)`; the error stays as it was |
//! | error code 0, positive or below -4095 | cannot be built: `Errno::new` answers `None` |
//! | an array of no fences | `Err(Empty)` (and `wait_any_timeout(&[])` too) |
//! | `merge(&[])` | a signalled stub, as the kernel |
//! | `chain_find_seqno` past the head, or on a plain fence | `Err(InvalidSeqno)`; nothing collected or enabled (point 0 answers the head) |
//! | `is_later` across contexts | `false` both ways |
//! | `wait_timeout(0)` | only checks: `Err(TimedOut)` while pending, no callback left behind, not enabled |
//! | `wait_timeout(Duration::MAX)` | waits without a deadline (no overflow) |
//! | a tiny non-zero timeout | `Err(TimedOut)`, and signalling is enabled (as the kernel's default wait) |
//! | a callback removed twice | does not compile (the id is moved; `compile_fail` example on `CallbackId`) |
//! | removing an id after its callback ran, or from inside it | `false` |
//! | an id from another fence | `Err(ForeignCallback)` (`remove_callback`: `false`); it still runs on its own fence |
//! | `add_callback` after the signal | `Err(AlreadySignaled(f))`: the closure comes back uncalled |
//! | enabling twice | the hook runs once |
//! | a chain point not later than `prev` | a fresh context, seqno kept monotonic (the kernel's answer) |
//! | `Syncobj::find_fence` for a point never added, or on an empty object | `Err(InvalidSeqno)`; the object unchanged |

mod common;

use std::time::{Duration, Instant};

use rcu_fence::{
    Backend, Errno, Fence, FenceArray, FenceChain, FenceError, Status, Syncobj, Timeline,
    chain_find_seqno, chain_walk, context_alloc, merge, wait_any_timeout,
};

use common::{Counter, every_backend, settle, timeline};

every_backend!(
    signal_twice,
    set_error_after_signal,
    error_codes_zero_positive_or_out_of_range,
    empty_array,
    empty_wait_any,
    empty_merge,
    find_seqno_past_the_head,
    find_seqno_on_a_plain_fence,
    is_later_across_contexts,
    wait_timeout_zero,
    wait_timeout_huge,
    wait_timeout_tiny_still_enables_signalling,
    remove_after_run,
    remove_from_inside_the_callback,
    foreign_callback_id,
    add_callback_after_signal,
    enable_twice,
    chain_point_not_later_than_prev,
    syncobj_point_never_added,
    syncobj_empty,
);

/// What can be observed of a fence, for "left unchanged" checks.
#[derive(Debug, PartialEq)]
struct Snapshot {
    flag: bool,
    status: Status,
    error: Option<Errno>,
    timestamp: Option<Instant>,
}

fn snapshot<B: Backend>(f: &Fence<B>) -> Snapshot {
    Snapshot {
        flag: f.test_signaled_flag(),
        status: f.status(),
        error: f.error(),
        timestamp: f.timestamp(),
    }
}

/// A callback on `f` counting its runs.
fn counted<B: Backend>(f: &Fence<B>) -> (Counter, rcu_fence::CallbackId<B>) {
    let runs = Counter::new();
    let r = runs.clone();
    let id = f.add_callback(move |_| r.inc()).unwrap();
    (runs, id)
}

/// Signal twice: `Err(AlreadySignaled)`; the timestamp, status and callbacks are unchanged.
fn signal_twice<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let (runs, _) = counted(&f);
    f.signal().unwrap();
    let before = snapshot(&f);
    assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
    assert_eq!(
        f.signal_timestamp(Instant::now() + Duration::from_secs(5)),
        Err(FenceError::AlreadySignaled)
    );
    assert_eq!(snapshot(&f), before);
    assert_eq!(runs.get(), 1, "callbacks ran once, not again");
}

/// `set_error` after the signal: `Err(AlreadySignaled)`; the error stays what it was (none,
/// or the one set before the signal).
fn set_error_after_signal<B: Backend>() {
    let tl = timeline::<B>();
    let (clean, failed) = (tl.fence(1), tl.fence(2));
    failed.set_error(Errno::ETIME).unwrap();
    clean.signal().unwrap();
    failed.signal().unwrap();
    for (f, expect) in [
        (&clean, Status::Signaled),
        (&failed, Status::Error(Errno::ETIME)),
    ] {
        let before = snapshot(f);
        assert_eq!(
            f.set_error(Errno::ECANCELED),
            Err(FenceError::AlreadySignaled)
        );
        assert_eq!(snapshot(f), before);
        assert_eq!(f.status(), expect);
    }
}

/// An error code that is 0, positive or below `-MAX_ERRNO` cannot be made: `Errno::new`
/// answers `None`, so no fence can carry a non-error "error" (the kernel's WARN_ON).
fn error_codes_zero_positive_or_out_of_range<B: Backend>() {
    for code in [0, 1, 22, i32::MAX, -Errno::MAX_ERRNO - 1, i32::MIN] {
        assert_eq!(Errno::new(code), None, "code {code}");
    }
    assert_eq!(Errno::new(-1).map(Errno::get), Some(-1));
    assert_eq!(
        Errno::new(-Errno::MAX_ERRNO).map(Errno::get),
        Some(-Errno::MAX_ERRNO)
    );
    // A fence is untouched by the attempt: there is nothing to pass.
    let f = timeline::<B>().fence(1);
    let before = snapshot(&f);
    if let Some(e) = Errno::new(0) {
        f.set_error(e).unwrap();
    }
    assert_eq!(snapshot(&f), before);
}

/// An array of no fences: `Err(Empty)`.
fn empty_array<B: Backend>() {
    for any in [false, true] {
        let r = FenceArray::<B>::create(Vec::new(), context_alloc(1), 1, any);
        assert_eq!(r.err(), Some(FenceError::Empty));
    }
}

/// `wait_any_timeout` on no fences: `Err(Empty)`, whatever the timeout.
fn empty_wait_any<B: Backend>() {
    let none: [Fence<B>; 0] = [];
    assert_eq!(
        wait_any_timeout(&none, Duration::ZERO),
        Err(FenceError::Empty)
    );
    assert_eq!(
        wait_any_timeout(&none, Duration::MAX),
        Err(FenceError::Empty)
    );
}

/// `merge` of no fences: the kernel's answer, a signalled stub (nothing to wait for).
fn empty_merge<B: Backend>() {
    let merged = merge::<B>(&[]).unwrap();
    assert_eq!(merged.status(), Status::Signaled);
}

/// A chain of points 1..=3: the link for each point and the points' own fences.
fn chain3<B: Backend>(tl: &Timeline<B>) -> (Vec<Fence<B>>, Fence<B>) {
    let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let mut head = None;
    for (i, f) in fences.iter().enumerate() {
        head = Some(FenceChain::create(head, f.clone(), i as u64 + 1));
    }
    (fences, head.unwrap())
}

/// `chain_find_seqno` past the head: `Err(InvalidSeqno)`; the chain is unchanged (nothing
/// collected, nothing signalled, nothing enabled).
fn find_seqno_past_the_head<B: Backend>() {
    let (fences, head) = chain3(&timeline::<B>());
    let before = snapshot(&head);
    for point in [4, 1000, u64::MAX] {
        assert_eq!(
            chain_find_seqno(&head, point).err(),
            Some(FenceError::InvalidSeqno)
        );
    }
    assert_eq!(snapshot(&head), before);
    let seqnos: Vec<u64> = chain_walk(&head).map(|l| l.seqno()).collect();
    assert_eq!(seqnos, [3, 2, 1]);
    assert!(fences.iter().all(|f| !f.test_signaled_flag()));
    // Still usable: the points complete the chain as usual.
    for f in &fences {
        f.signal().unwrap();
    }
    assert_eq!(settle(&head), Status::Signaled);
}

/// `chain_find_seqno` on a fence that is not a chain: `Err(InvalidSeqno)` for any point
/// but 0 (which answers the fence itself, as the kernel does).
fn find_seqno_on_a_plain_fence<B: Backend>() {
    let f = timeline::<B>().fence(5);
    assert_eq!(
        chain_find_seqno(&f, 1).err(),
        Some(FenceError::InvalidSeqno)
    );
    assert!(chain_find_seqno(&f, 0).unwrap().unwrap().ptr_eq(&f));
    assert_eq!(f.status(), Status::Pending);
}

/// `is_later` across contexts: `false` both ways (seqnos of different timelines do not
/// compare), whatever the seqnos.
fn is_later_across_contexts<B: Backend>() {
    let (a, b) = (timeline::<B>(), timeline::<B>());
    for (x, y) in [(1, 2), (2, 1), (7, 7), (u64::MAX, 0)] {
        let (fa, fb) = (a.fence(x), b.fence(y));
        assert!(!fa.is_later(&fb) && !fb.is_later(&fa), "{x} vs {y}");
    }
}

/// `wait_timeout(0)` only checks: `Err(TimedOut)` on a pending fence, with no callback
/// left behind (the fence stays pending and signals normally later); the status once
/// signalled.
fn wait_timeout_zero<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let (runs, _) = counted(&f);
    let before = snapshot(&f);
    assert_eq!(f.wait_timeout(Duration::ZERO), Err(FenceError::TimedOut));
    assert_eq!(snapshot(&f), before);
    f.set_error(Errno::ETIME).unwrap();
    f.signal().unwrap();
    assert_eq!(
        f.wait_timeout(Duration::ZERO),
        Err(FenceError::Failed(Errno::ETIME))
    );
    assert_eq!(runs.get(), 1);
}

/// `wait_timeout(Duration::MAX)` (a deadline that cannot be represented) waits without a
/// deadline: it returns the status once another thread signals; no overflow panic.
fn wait_timeout_huge<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let g = f.clone();
    let signaller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        g.signal().unwrap();
    });
    assert_eq!(f.wait_timeout(Duration::MAX), Ok(()));
    assert_eq!(f.wait_timeout(Duration::from_secs(u64::MAX)), Ok(()));
    signaller.join().unwrap();
}

/// A non-zero timeout that expires before the waiter gets to install its callback (1 ns,
/// or any timeout on a slow machine) still asks the producer to signal, as the kernel's
/// default wait does: a waiter that polls with short timeouts must not starve a fence
/// that signals only once enabled. A zero timeout only checks.
fn wait_timeout_tiny_still_enables_signalling<B: Backend>() {
    let enables = Counter::new();
    let f = common::counted_fence(&timeline::<B>(), 1, &enables);
    assert_eq!(f.wait_timeout(Duration::ZERO), Err(FenceError::TimedOut));
    assert_eq!(enables.get(), 0, "a zero timeout only checks");
    assert_eq!(
        f.wait_timeout(Duration::from_nanos(1)),
        Err(FenceError::TimedOut)
    );
    assert_eq!(enables.get(), 1, "a non-zero timeout enables signalling");
    assert_eq!(f.status(), Status::Pending);
}

/// Removing a callback that already ran: `false`; it ran exactly once. (A second removal
/// of the same id cannot be written: `remove_callback` takes the id by value and
/// `CallbackId` is not `Clone`; see the `compile_fail` example on `CallbackId`.)
fn remove_after_run<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let (runs, id) = counted(&f);
    f.signal().unwrap();
    let before = snapshot(&f);
    assert!(!f.remove_callback(id));
    assert_eq!(runs.get(), 1);
    assert_eq!(snapshot(&f), before);
}

/// Removing a callback from inside itself (`Rcu`; on `Locked` the id cannot reach its own
/// callback without a lock cycle, so only the answer after the run is checked): `false`,
/// without waiting for itself.
fn remove_from_inside_the_callback<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let slot: std::sync::Arc<std::sync::Mutex<Option<rcu_fence::CallbackId<B>>>> =
        Default::default();
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if common::is_rcu::<B>() {
        let (s, a) = (slot.clone(), answers.clone());
        let id = f
            .add_callback(move |me| {
                let id = s.lock().unwrap().take().expect("the id was stored");
                a.lock().unwrap().push(me.remove_callback(id));
            })
            .unwrap();
        *slot.lock().unwrap() = Some(id);
        f.signal().unwrap();
        assert_eq!(*answers.lock().unwrap(), [false]);
    } else {
        let (runs, id) = counted(&f);
        f.signal().unwrap();
        assert!(!f.remove_callback(id));
        assert_eq!(runs.get(), 1);
    }
}

/// A callback id from another fence: `try_remove_callback` answers `Err(ForeignCallback)`
/// (`remove_callback`: `false`), and the callback stays installed on its own fence and
/// runs when that one signals; the fence asked is untouched.
fn foreign_callback_id<B: Backend>() {
    let tl = timeline::<B>();
    let (owner, other) = (tl.fence(1), tl.fence(2));
    let (runs, id) = counted(&owner);
    let (other_runs, _) = counted(&other);
    let before = snapshot(&other);
    assert_eq!(
        other.try_remove_callback(id),
        Err(FenceError::ForeignCallback)
    );
    let (runs2, id2) = counted(&owner);
    assert!(!other.remove_callback(id2));
    assert_eq!(snapshot(&other), before);
    owner.signal().unwrap();
    assert_eq!(
        (runs.get(), runs2.get()),
        (1, 1),
        "both still ran on their own fence"
    );
    other.signal().unwrap();
    assert_eq!(other_runs.get(), 1);
}

/// `add_callback` after the signal: `Err(AlreadySignaled)`, the closure is dropped without
/// being called, and the fence is unchanged.
fn add_callback_after_signal<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.signal().unwrap();
    let before = snapshot(&f);
    let (ran, dropped) = (Counter::new(), Counter::new());
    let (r, guard) = (ran.clone(), dropped.drop_guard());
    let result = f.add_callback(move |_| {
        let _guard = &guard;
        r.inc();
    });
    assert_eq!(
        result.err().map(FenceError::from),
        Some(FenceError::AlreadySignaled)
    );
    assert_eq!((ran.get(), dropped.get()), (0, 1));
    assert_eq!(snapshot(&f), before);
}

/// Enabling signalling twice (and by every path) calls the hook once.
fn enable_twice<B: Backend>() {
    let enables = Counter::new();
    let f = common::counted_fence(&timeline::<B>(), 1, &enables);
    f.enable_sw_signaling();
    f.enable_sw_signaling();
    let _ = f.add_callback(|_| {});
    let _ = f.wait_timeout(Duration::ZERO);
    assert_eq!(enables.get(), 1);
    f.signal().unwrap();
    f.enable_sw_signaling();
    assert_eq!(enables.get(), 1);
}

/// A chain point that is not later than its `prev`: not an error; the kernel's answer, a
/// fresh context with the seqno kept monotonic, and the link still completes.
fn chain_point_not_later_than_prev<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let p5 = FenceChain::create(None, a.clone(), 5);
    let p3 = FenceChain::create(Some(p5.clone()), b.clone(), 3);
    assert_ne!(p3.context(), p5.context());
    assert_eq!(p3.seqno(), 5);
    assert_eq!(p3.as_chain().unwrap().prev_seqno(), 0);
    a.signal().unwrap();
    b.signal().unwrap();
    assert_eq!(settle(&p3), Status::Signaled);
}

/// `Syncobj::find_fence` for a point never added: `Err(InvalidSeqno)`; the object and its
/// points are unchanged and still findable.
fn syncobj_point_never_added<B: Backend>() {
    let tl = timeline::<B>();
    let obj = Syncobj::new_in(B::default());
    let (a, b) = (tl.fence(1), tl.fence(2));
    obj.add_point(a.clone(), 1);
    obj.add_point(b.clone(), 2);
    let head = obj.fence().unwrap();
    for point in [3, 100, u64::MAX] {
        assert_eq!(obj.find_fence(point).err(), Some(FenceError::InvalidSeqno));
    }
    assert!(obj.fence().unwrap().ptr_eq(&head));
    assert!(!obj.find_fence(2).unwrap().test_signaled_flag());
    a.signal().unwrap();
    b.signal().unwrap();
    assert_eq!(settle(&obj.find_fence(2).unwrap()), Status::Signaled);
}

/// `Syncobj::find_fence` on an empty object: `Err(InvalidSeqno)` for every point, 0 too.
fn syncobj_empty<B: Backend>() {
    let obj = Syncobj::new_in(B::default());
    for point in [0, 1, u64::MAX] {
        assert_eq!(obj.find_fence(point).err(), Some(FenceError::InvalidSeqno));
    }
    assert!(obj.fence().is_none());
}
