//! The fence rules of the API contract ("Timelines and fences"), checked on both backends.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcu_fence::{
    Backend, Errno, Fence, FenceError, FenceOps, Status, Timeline, context_alloc, stub,
};

use common::{Counter, Log, timeline};

common::every_backend!(
    add_callback_on_signaled_fence_is_refused,
    add_callback_on_stub_is_refused,
    callback_runs_once_on_signalling_thread_after_flag,
    callbacks_run_in_fifo_order,
    removed_callback_never_runs,
    remove_after_run_returns_false,
    foreign_callback_id_is_refused_and_still_runs,
    set_error_only_while_pending,
    set_error_replaces_earlier_error,
    timestamp_only_once_signalled,
    signal_twice_is_refused,
    drop_with_pending_callbacks_signals_edeadlk,
    drop_with_only_removed_callbacks_runs_nothing,
    dropping_one_handle_keeps_fence_pending,
    is_later_is_wrap_aware_in_32_bits,
    is_later_is_plain_on_seqno64_timelines,
    is_later_across_contexts_is_false,
    stub_is_shared_and_signalled,
    debug_format_is_describe_like,
    enable_signaling_called_once_from_add_callback,
    enable_signaling_called_once_from_wait,
    enable_signaling_called_once_from_enable_sw_signaling,
    enable_signaling_false_signals_and_refuses_callback,
    enable_signaling_not_called_on_signalled_fence,
    signaled_hook_polled_by_is_signaled_signals_and_runs_callbacks,
    signaled_hook_polled_by_status,
    set_deadline_forwarded_only_while_pending,
    names_come_from_ops_or_timeline,
    panicking_callback_does_not_stop_the_others,
);

fn add_callback_on_signaled_fence_is_refused<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.signal().unwrap();
    let ran = Counter::new();
    let dropped = Counter::new();
    let (r, guard) = (ran.clone(), dropped.drop_guard());
    let result = f.add_callback(move |_| {
        let _guard = &guard;
        r.inc();
    });
    assert_eq!(result.unwrap_err(), FenceError::AlreadySignaled);
    assert_eq!(dropped.get(), 1, "the refused closure is dropped");
    assert_eq!(ran.get(), 0, "the refused closure is not called");
}

fn add_callback_on_stub_is_refused<B: Backend>() {
    let s = stub::<B>();
    let ran = Counter::new();
    let r = ran.clone();
    assert_eq!(
        s.add_callback(move |_| r.inc()).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert_eq!(ran.get(), 0);
}

fn callback_runs_once_on_signalling_thread_after_flag<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    f.add_callback(move |me| {
        s.lock().unwrap().push((
            std::thread::current().id(),
            me.test_signaled_flag(),
            me.status(),
            me.timestamp().is_some(),
        ));
    })
    .unwrap();
    let g = f.clone();
    let signaller = std::thread::spawn(move || {
        g.signal().unwrap();
        std::thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(signaller, true, Status::Signaled, true)]
    );
    assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a second signal runs nothing"
    );
}

fn callbacks_run_in_fifo_order<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let log = Log::new();
    for i in 0..20 {
        let l = log.clone();
        f.add_callback(move |_| l.push(i.to_string())).unwrap();
    }
    f.signal().unwrap();
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(log.take(), expected);
}

fn removed_callback_never_runs<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let log = Log::new();
    let dropped = Counter::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let l = log.clone();
        let guard = dropped.drop_guard();
        ids.push(
            f.add_callback(move |_| {
                let _guard = &guard;
                l.push(i.to_string());
            })
            .unwrap(),
        );
    }
    let middle = ids.remove(1);
    assert!(f.remove_callback(middle));
    assert_eq!(dropped.get(), 1, "a removed closure is dropped at once");
    f.signal().unwrap();
    assert_eq!(log.take(), ["0", "2"]);
    assert_eq!(dropped.get(), 3);
    for id in ids {
        assert!(!f.remove_callback(id), "already ran");
    }
}

fn remove_after_run_returns_false<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let ran = Counter::new();
    let r = ran.clone();
    let id = f.add_callback(move |_| r.inc()).unwrap();
    f.signal().unwrap();
    assert_eq!(ran.get(), 1);
    assert_eq!(f.try_remove_callback(id), Ok(false));
    assert_eq!(ran.get(), 1);
}

fn foreign_callback_id_is_refused_and_still_runs<B: Backend>() {
    let tl = timeline::<B>();
    let (f, g) = (tl.fence(1), tl.fence(2));
    let ran = Counter::new();
    let (r1, r2) = (ran.clone(), ran.clone());
    let id = f.add_callback(move |_| r1.inc()).unwrap();
    let other = g.add_callback(|_| {}).unwrap();
    assert_eq!(g.try_remove_callback(id), Err(FenceError::ForeignCallback));
    let id = f.add_callback(move |_| r2.inc()).unwrap();
    assert!(
        !g.remove_callback(id),
        "remove_callback reports a foreign id as false"
    );
    // g's own callback is untouched by the foreign removals.
    assert!(g.remove_callback(other));
    f.signal().unwrap();
    assert_eq!(ran.get(), 2, "both callbacks are still installed on f");
}

/// A `CallbackId` kept past its fence's life must not take back a callback of another
/// fence that happens to be allocated at the same address.
fn stale_id_of_dropped_fence_does_not_remove_anothers_callback<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(1);
    let ran_f = Counter::new();
    let r = ran_f.clone();
    let stale = f.add_callback(move |_| r.inc()).unwrap();
    let stale_addr = format!("{stale:?}");
    drop(f); // runs the callback with -EDEADLK and frees the fence
    assert_eq!(ran_f.get(), 1);

    let mut keep = Vec::new();
    for seqno in 2..2000 {
        let g = tl.fence(seqno);
        let ran_g = Counter::new();
        let r = ran_g.clone();
        let id = g.add_callback(move |_| r.inc()).unwrap();
        if format!("{id:?}") != stale_addr {
            assert!(g.remove_callback(id));
            keep.push(g);
            continue;
        }
        // `g` lives where the dropped fence lived: the stale id must not match its callback.
        let removed = g.remove_callback(stale);
        g.signal().unwrap();
        assert_eq!(ran_g.get(), 1, "g's own callback must still run");
        assert!(!removed, "a stale id removed another fence's callback");
        return;
    }
    eprintln!("no fence reused the dropped fence's address; nothing checked");
}

fn set_error_only_while_pending<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.set_error(Errno::ETIME).unwrap();
    assert_eq!(f.error(), None, "error() is None while pending");
    assert_eq!(f.status(), Status::Pending);
    f.signal().unwrap();
    assert_eq!(f.error(), Some(Errno::ETIME));
    assert_eq!(f.status(), Status::Error(Errno::ETIME));
    assert_eq!(
        f.set_error(Errno::ENODATA),
        Err(FenceError::AlreadySignaled)
    );
    assert_eq!(f.error(), Some(Errno::ETIME));
    assert_eq!(f.status(), Status::Error(Errno::ETIME));
    assert_eq!(f.status().to_kernel(), -62);
}

fn set_error_replaces_earlier_error<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    f.add_callback(move |me| *s.lock().unwrap() = Some(me.status()))
        .unwrap();
    f.set_error(Errno::ETIME).unwrap();
    f.set_error(Errno::new(-4095).unwrap()).unwrap();
    f.signal().unwrap();
    assert_eq!(f.error(), Errno::new(-4095));
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Status::Error(Errno::new(-4095).unwrap())),
        "callbacks see the error"
    );
}

fn timestamp_only_once_signalled<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(1);
    assert_eq!(f.timestamp(), None);
    let at = Instant::now() - Duration::from_millis(5);
    f.signal_timestamp(at).unwrap();
    assert_eq!(f.timestamp(), Some(at));

    let g = tl.fence(2);
    let before = Instant::now();
    g.signal().unwrap();
    let after = Instant::now();
    let ts = g.timestamp().unwrap();
    assert!(before <= ts && ts <= after);
    assert_eq!(g.timestamp(), Some(ts), "stable");
}

fn signal_twice_is_refused<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let at = Instant::now();
    f.signal_timestamp(at).unwrap();
    assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
    assert_eq!(
        f.signal_timestamp(at + Duration::from_secs(1)),
        Err(FenceError::AlreadySignaled)
    );
    assert_eq!(f.timestamp(), Some(at), "a refused signal changes nothing");
    assert_eq!(f.status(), Status::Signaled);
}

fn drop_with_pending_callbacks_signals_edeadlk<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(7);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let dropped = Counter::new();
    let mut removed = None;
    for i in 0..3 {
        let s = seen.clone();
        let guard = dropped.drop_guard();
        let id = f
            .add_callback(move |me| {
                let _guard = &guard;
                s.lock().unwrap().push((
                    i,
                    me.status(),
                    me.error(),
                    me.context(),
                    me.seqno(),
                    me.timestamp().is_some(),
                ));
            })
            .unwrap();
        if i == 1 {
            removed = Some(id);
        }
    }
    assert!(f.remove_callback(removed.unwrap()));
    let context = f.context();
    drop(f);
    let e = Status::Error(Errno::EDEADLK);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (0, e, Some(Errno::EDEADLK), context, 7, true),
            (2, e, Some(Errno::EDEADLK), context, 7, true)
        ]
    );
    assert_eq!(dropped.get(), 3, "every closure is dropped");
}

fn drop_with_only_removed_callbacks_runs_nothing<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let ran = Counter::new();
    let dropped = Counter::new();
    for _ in 0..3 {
        let r = ran.clone();
        let guard = dropped.drop_guard();
        let id = f
            .add_callback(move |_| {
                let _guard = &guard;
                r.inc();
            })
            .unwrap();
        assert!(f.remove_callback(id));
    }
    assert_eq!(dropped.get(), 3);
    drop(f);
    assert_eq!(ran.get(), 0);
    assert_eq!(dropped.get(), 3);
}

fn dropping_one_handle_keeps_fence_pending<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(1);
    let g = f.clone();
    drop(f);
    assert_eq!(
        g.status(),
        Status::Pending,
        "dropping one of two handles releases nothing"
    );
    drop(g);
}

fn is_later_is_wrap_aware_in_32_bits<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(0xffff_ffff));
    assert!(
        a.is_later(&b),
        "1 comes after 0xffffffff in 32-bit wrap-aware order"
    );
    assert!(!b.is_later(&a));
    assert!(tl.fence(2).is_later(&a));
    assert!(!a.is_later(&tl.fence(2)));
    assert!(!a.is_later(&a.clone()));
    assert!(!a.is_later(&tl.fence(1)), "equal seqnos are not later");
    // Only the low 32 bits count.
    assert!(!tl.fence(0x1_0000_0001).is_later(&a));
    assert!(!a.is_later(&tl.fence(0x1_0000_0001)));
    // Half the space ahead is later, the other half earlier.
    assert!(tl.fence(0x8000_0000).is_later(&tl.fence(1)));
    assert!(!tl.fence(0x8000_0001).is_later(&tl.fence(1)));
}

fn is_later_is_plain_on_seqno64_timelines<B: Backend>() {
    let tl = timeline::<B>().seqno64();
    assert!(tl.is_seqno64());
    let (a, b) = (tl.fence(1), tl.fence(0xffff_ffff));
    assert!(!a.is_later(&b));
    assert!(b.is_later(&a));
    assert!(tl.fence(0x1_0000_0001).is_later(&a));
    assert!(tl.fence(u64::MAX).is_later(&tl.fence(0x1_0000_0000)));
    assert!(!a.is_later(&tl.fence(1)));
}

fn is_later_across_contexts_is_false<B: Backend>() {
    let (t1, t2) = (timeline::<B>(), timeline::<B>());
    assert_ne!(t1.context(), t2.context());
    let (a, b) = (t1.fence(5), t2.fence(1));
    assert!(!a.is_later(&b));
    assert!(!b.is_later(&a));
}

fn stub_is_shared_and_signalled<B: Backend>() {
    let (s, t) = (stub::<B>(), stub::<B>());
    assert!(s.ptr_eq(&t), "one shared stub");
    assert!(s.test_signaled_flag() && s.is_signaled());
    assert_eq!((s.context(), s.seqno()), (0, 0));
    assert_eq!(s.status(), Status::Signaled);
    assert!(s.timestamp().is_some());
    assert_eq!(s.signal(), Err(FenceError::AlreadySignaled));
    assert_eq!(s.set_error(Errno::EINVAL), Err(FenceError::AlreadySignaled));
    assert_eq!(s.wait(), Ok(()));
    let f = timeline::<B>().fence(0);
    assert!(!s.ptr_eq(&f));
    assert!(f.ptr_eq(&f.clone()));
}

fn debug_format_is_describe_like<B: Backend>() {
    let tl = Timeline::new_in("ring0", B::default());
    let c = tl.context();
    let f = tl.fence(7);
    assert_eq!(format!("{f:?}"), format!("rcu-fence:ring0 {c}:7 pending"));
    f.signal().unwrap();
    assert_eq!(format!("{f:?}"), format!("rcu-fence:ring0 {c}:7 signaled"));
    let g = tl.fence(8);
    g.set_error(Errno::ECANCELED).unwrap();
    assert_eq!(format!("{g:?}"), format!("rcu-fence:ring0 {c}:8 pending"));
    g.signal().unwrap();
    assert_eq!(
        format!("{g:?}"),
        format!("rcu-fence:ring0 {c}:8 error -ECANCELED")
    );
    let h = tl.fence_with_ops(9, Arc::new(Hooks::new(true)));
    assert_eq!(format!("{h:?}"), format!("my-gpu:my-ring {c}:9 pending"));
}

#[test]
fn context_alloc_is_unique_across_threads() {
    let ranges: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    (0..500u64)
                        .map(|i| {
                            let n = 1 + (i + t) % 3;
                            (context_alloc(n), n)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut ids = HashSet::new();
    for (first, n) in ranges {
        assert_ne!(first, 0, "context 0 belongs to the stub");
        for id in first..first + n {
            assert!(ids.insert(id), "context {id} handed out twice");
        }
    }
    assert_eq!(ids.len(), 8 * 500 * 2);
    let contexts: HashSet<u64> = (0..100).map(|_| Timeline::new("t").context()).collect();
    assert_eq!(contexts.len(), 100);
}

/// Driver hooks that count their calls.
struct Hooks {
    enable_result: bool,
    enable_calls: AtomicUsize,
    /// Set by the "hardware": `signaled` reports it.
    hw_done: AtomicBool,
    signaled_calls: AtomicUsize,
    deadlines: Mutex<Vec<Instant>>,
}

impl Hooks {
    fn new(enable_result: bool) -> Self {
        Hooks {
            enable_result,
            enable_calls: AtomicUsize::new(0),
            hw_done: AtomicBool::new(false),
            signaled_calls: AtomicUsize::new(0),
            deadlines: Mutex::new(Vec::new()),
        }
    }
    fn enables(&self) -> usize {
        self.enable_calls.load(Ordering::SeqCst)
    }
}

impl<B: Backend> FenceOps<B> for Hooks {
    fn driver_name(&self) -> &str {
        "my-gpu"
    }
    fn timeline_name(&self) -> &str {
        "my-ring"
    }
    fn enable_signaling(&self, fence: &Fence<B>) -> bool {
        assert!(
            !fence.test_signaled_flag(),
            "enable_signaling on a signalled fence"
        );
        self.enable_calls.fetch_add(1, Ordering::SeqCst);
        self.enable_result
    }
    fn signaled(&self, _fence: &Fence<B>) -> bool {
        self.signaled_calls.fetch_add(1, Ordering::SeqCst);
        self.hw_done.load(Ordering::SeqCst)
    }
    fn set_deadline(&self, _fence: &Fence<B>, deadline: Instant) {
        self.deadlines.lock().unwrap().push(deadline);
    }
}

fn hooked<B: Backend>(enable_result: bool) -> (Arc<Hooks>, Fence<B>) {
    let hooks = Arc::new(Hooks::new(enable_result));
    let f = timeline::<B>().fence_with_ops(1, hooks.clone());
    (hooks, f)
}

fn enable_signaling_called_once_from_add_callback<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    assert_eq!(hooks.enables(), 0, "not enabled by creation");
    assert!(!f.is_signaled());
    assert_eq!(hooks.enables(), 0, "not enabled by a poll");
    f.add_callback(|_| {}).unwrap();
    assert_eq!(hooks.enables(), 1);
    f.add_callback(|_| {}).unwrap();
    f.enable_sw_signaling();
    assert_eq!(
        f.wait_timeout(Duration::from_millis(1)),
        Err(FenceError::TimedOut)
    );
    assert_eq!(hooks.enables(), 1);
    f.signal().unwrap();
    assert_eq!(hooks.enables(), 1);
}

fn enable_signaling_called_once_from_wait<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    assert_eq!(
        f.wait_timeout(Duration::from_millis(5)),
        Err(FenceError::TimedOut)
    );
    assert_eq!(hooks.enables(), 1);
    assert_eq!(
        f.wait_timeout(Duration::from_millis(1)),
        Err(FenceError::TimedOut)
    );
    f.add_callback(|_| {}).unwrap();
    assert_eq!(hooks.enables(), 1);

    // A hook that finds the work complete lets `wait` return at once.
    let (hooks, f) = hooked::<B>(false);
    assert_eq!(f.wait(), Ok(()));
    assert_eq!(hooks.enables(), 1);
}

fn enable_signaling_called_once_from_enable_sw_signaling<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    f.enable_sw_signaling();
    assert_eq!(hooks.enables(), 1);
    f.enable_sw_signaling();
    f.add_callback(|_| {}).unwrap();
    assert_eq!(hooks.enables(), 1);
    assert!(!f.test_signaled_flag());

    let (hooks, f) = hooked::<B>(false);
    f.enable_sw_signaling();
    assert_eq!(hooks.enables(), 1);
    assert!(
        f.test_signaled_flag(),
        "enable_signaling returning false signals the fence"
    );
}

fn enable_signaling_false_signals_and_refuses_callback<B: Backend>() {
    let (hooks, f) = hooked::<B>(false);
    let ran = Counter::new();
    let r = ran.clone();
    assert_eq!(
        f.add_callback(move |_| r.inc()).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert_eq!(hooks.enables(), 1);
    assert!(f.test_signaled_flag());
    assert_eq!(f.status(), Status::Signaled);
    assert!(f.timestamp().is_some());
    assert_eq!(ran.get(), 0);
    let r = ran.clone();
    assert_eq!(
        f.add_callback(move |_| r.inc()).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert_eq!(hooks.enables(), 1);
    assert_eq!(ran.get(), 0);
}

fn enable_signaling_not_called_on_signalled_fence<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    f.signal().unwrap();
    f.enable_sw_signaling();
    assert!(f.add_callback(|_| {}).is_err());
    assert_eq!(f.wait(), Ok(()));
    assert_eq!(hooks.enables(), 0);
}

fn signaled_hook_polled_by_is_signaled_signals_and_runs_callbacks<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    let ran = Counter::new();
    let r = ran.clone();
    f.add_callback(move |me| {
        assert!(me.test_signaled_flag());
        r.inc();
    })
    .unwrap();
    assert!(!f.is_signaled());
    assert!(
        hooks.signaled_calls.load(Ordering::SeqCst) >= 1,
        "is_signaled polls the hook"
    );
    assert_eq!(ran.get(), 0);
    assert!(!f.test_signaled_flag());
    hooks.hw_done.store(true, Ordering::SeqCst);
    assert!(!f.test_signaled_flag(), "the flag alone does not poll");
    assert!(f.is_signaled());
    assert!(f.test_signaled_flag(), "a positive poll signals the fence");
    assert_eq!(ran.get(), 1);
    let polls = hooks.signaled_calls.load(Ordering::SeqCst);
    assert!(f.is_signaled());
    assert_eq!(f.status(), Status::Signaled);
    assert_eq!(ran.get(), 1, "callbacks run once");
    assert_eq!(
        hooks.signaled_calls.load(Ordering::SeqCst),
        polls,
        "no polling once signalled"
    );
    assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
}

fn signaled_hook_polled_by_status<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    let ran = Counter::new();
    let r = ran.clone();
    f.add_callback(move |_| r.inc()).unwrap();
    assert_eq!(f.status(), Status::Pending);
    hooks.hw_done.store(true, Ordering::SeqCst);
    assert_eq!(f.status(), Status::Signaled);
    assert!(f.test_signaled_flag());
    assert_eq!(ran.get(), 1);
}

fn set_deadline_forwarded_only_while_pending<B: Backend>() {
    let (hooks, f) = hooked::<B>(true);
    let (d1, d2) = (
        Instant::now() + Duration::from_millis(10),
        Instant::now() + Duration::from_millis(5),
    );
    f.set_deadline(d1);
    f.set_deadline(d2);
    assert_eq!(*hooks.deadlines.lock().unwrap(), vec![d1, d2]);
    f.signal().unwrap();
    f.set_deadline(Instant::now());
    assert_eq!(
        hooks.deadlines.lock().unwrap().len(),
        2,
        "no deadline after signalling"
    );
    // Timeline fences and the stub accept deadlines silently.
    timeline::<B>().fence(1).set_deadline(d1);
    stub::<B>().set_deadline(d1);
}

fn names_come_from_ops_or_timeline<B: Backend>() {
    let (_, f) = hooked::<B>(true);
    assert_eq!((f.driver_name(), f.timeline_name()), ("my-gpu", "my-ring"));
    let tl = Timeline::new_in("ring7", B::default());
    assert_eq!(tl.name(), "ring7");
    let g = tl.fence(1);
    assert_eq!((g.driver_name(), g.timeline_name()), ("rcu-fence", "ring7"));
    assert_eq!(g.context(), tl.context());
    assert_eq!(g.seqno(), 1);
}

/// The kernel lets `enable_signaling` set an error when it returns false ("already done,
/// failed"); the core then signals with that error.
fn enable_signaling_may_set_error_when_returning_false<B: Backend>() {
    struct Failed;
    impl<B: Backend> FenceOps<B> for Failed {
        fn driver_name(&self) -> &str {
            "my-gpu"
        }
        fn timeline_name(&self) -> &str {
            "my-ring"
        }
        fn enable_signaling(&self, fence: &Fence<B>) -> bool {
            fence.set_error(Errno::ETIME).unwrap();
            false
        }
    }
    let f = timeline::<B>().fence_with_ops(1, Arc::new(Failed));
    // Run on a helper thread so that a self-deadlock fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let g = f.clone();
    std::thread::spawn(move || {
        let refused = g.add_callback(|_| {}).is_err();
        let _ = tx.send(refused);
    });
    let refused = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("add_callback deadlocked in enable_signaling");
    assert!(refused);
    assert_eq!(f.status(), Status::Error(Errno::ETIME));
}

mod hook_error {
    #[test]
    fn rcu() {
        super::enable_signaling_may_set_error_when_returning_false::<rcu_fence::Rcu>();
    }
    #[test]
    fn locked() {
        super::enable_signaling_may_set_error_when_returning_false::<rcu_fence::Locked>();
    }
}

mod stale_id {
    #[test]
    fn rcu() {
        super::stale_id_of_dropped_fence_does_not_remove_anothers_callback::<rcu_fence::Rcu>();
    }
    #[test]
    fn locked() {
        super::stale_id_of_dropped_fence_does_not_remove_anothers_callback::<rcu_fence::Locked>();
    }
}

/// A panicking callback: the others still run, the fence is signalled, and the panic
/// reaches the signaller.
fn panicking_callback_does_not_stop_the_others<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let log = Log::new();
    let l = log.clone();
    f.add_callback(move |_| l.push("first")).unwrap();
    f.add_callback(|_| panic!("callback panic")).unwrap();
    let l = log.clone();
    f.add_callback(move |_| l.push("third")).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.signal()));
    let payload = result.expect_err("the callback's panic is resumed in the signaller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback panic"));
    assert_eq!(log.take(), ["first", "third"]);
    assert_eq!(f.status(), Status::Signaled);
    // The fence stays usable.
    assert_eq!(
        f.add_callback(|_| {}).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert_eq!(f.wait(), Ok(()));
}
