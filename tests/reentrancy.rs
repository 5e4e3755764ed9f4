//! Callbacks that use the fence API on the `Rcu` backend, where they run with no lock held.
//! (The `Locked` backend runs callbacks under the fence's lock and self-deadlocks on most
//! of these, as the kernel does.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rcu_fence::{CallbackId, Errno, Fence, FenceError, FenceOps, Rcu, Status, Timeline};

use common::{Counter, DropGuard, Log, timeline};

/// A slot through which a callback learns an id issued after it was created.
type IdSlot = Arc<Mutex<Option<CallbackId<Rcu>>>>;

fn new_slot() -> IdSlot {
    Arc::new(Mutex::new(None))
}

#[test]
fn callback_uses_the_api_on_its_own_fence() {
    let f = timeline::<Rcu>().fence(1);
    let inner_ran = Counter::new();
    let inner_dropped = Counter::new();
    let checked = Counter::new();
    let (ir, id, c) = (inner_ran.clone(), inner_dropped.clone(), checked.clone());
    f.add_callback(move |me| {
        let guard = id.drop_guard();
        let ir = ir.clone();
        let refused = me.add_callback(move |_| {
            let _guard = &guard;
            ir.inc();
        });
        assert_eq!(refused.unwrap_err(), FenceError::AlreadySignaled);
        assert_eq!(me.signal(), Err(FenceError::AlreadySignaled));
        assert_eq!(me.set_error(Errno::ETIME), Err(FenceError::AlreadySignaled));
        me.enable_sw_signaling();
        assert!(me.is_signaled());
        assert_eq!(me.status(), Status::Signaled);
        assert_eq!(
            me.wait(),
            Ok(()),
            "waiting on a signalled fence returns at once"
        );
        me.set_deadline(Instant::now());
        c.inc();
    })
    .unwrap();
    f.signal().unwrap();
    assert_eq!(checked.get(), 1);
    assert_eq!(inner_ran.get(), 0);
    assert_eq!(inner_dropped.get(), 1);
}

#[test]
fn callback_signals_another_fence_whose_callbacks_run_after_it_returns() {
    let tl = timeline::<Rcu>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let log = Log::new();
    {
        let (l, b) = (log.clone(), b.clone());
        a.add_callback(move |_| {
            l.push("a1 start");
            b.signal().unwrap();
            assert!(b.test_signaled_flag(), "marked at once");
            l.push("a1 end");
        })
        .unwrap();
    }
    {
        let l = log.clone();
        a.add_callback(move |_| l.push("a2")).unwrap();
    }
    for name in ["b1", "b2"] {
        let l = log.clone();
        b.add_callback(move |me| {
            assert!(me.test_signaled_flag());
            l.push(name)
        })
        .unwrap();
    }
    a.signal().unwrap();
    let events = log.take();
    assert_eq!(events.len(), 5, "{events:?}");
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert_eq!(
        &events[..2],
        ["a1 start", "a1 end"],
        "b's callbacks wait for a1 to return"
    );
    assert!(at("a2") < at("b1") || at("a2") > at("b2"));
    assert!(at("b1") < at("b2"), "FIFO within b");
}

#[test]
fn callback_removes_another_pending_callback_of_its_fence() {
    let f = timeline::<Rcu>().fence(1);
    let log = Log::new();
    let slot = new_slot();
    let removed = Arc::new(AtomicBool::new(false));
    let (l, s, r) = (log.clone(), slot.clone(), removed.clone());
    f.add_callback(move |me| {
        let id = s.lock().unwrap().take().unwrap();
        r.store(me.remove_callback(id), Ordering::SeqCst);
        l.push("first");
    })
    .unwrap();
    let l = log.clone();
    *slot.lock().unwrap() = Some(f.add_callback(move |_| l.push("second")).unwrap());
    let l = log.clone();
    f.add_callback(move |_| l.push("third")).unwrap();
    f.signal().unwrap();
    // The fence has signalled: removal answers `false` once the callback has run, and a
    // callback behind the remover in the same run is run on the spot (waiting for it would
    // deadlock). Every installed callback runs exactly once.
    assert!(
        !removed.load(Ordering::SeqCst),
        "removed after the fence signalled"
    );
    assert_eq!(log.take(), ["second", "first", "third"]);
}

#[test]
fn callback_removes_a_callback_queued_by_a_nested_signal() {
    // a's callback signals b (whose callbacks are queued until it returns), then removes
    // one of b's callbacks: b has signalled, so the removal runs the queued work and
    // answers `false` once the callback has run.
    let tl = timeline::<Rcu>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let ran = Counter::new();
    let slot = new_slot();
    let removed = Arc::new(Mutex::new(None));
    let r = ran.clone();
    *slot.lock().unwrap() = Some(b.add_callback(move |_| r.inc()).unwrap());
    let (b2, s, rm) = (b.clone(), slot.clone(), removed.clone());
    a.add_callback(move |_| {
        b2.signal().unwrap();
        let id = s.lock().unwrap().take().unwrap();
        *rm.lock().unwrap() = Some(b2.remove_callback(id));
    })
    .unwrap();
    a.signal().unwrap();
    assert_eq!(*removed.lock().unwrap(), Some(false));
    assert_eq!(ran.get(), 1);
}

#[test]
fn callback_removing_itself_gets_false() {
    let f = timeline::<Rcu>().fence(1);
    let slot = new_slot();
    let result = Arc::new(Mutex::new(None));
    let ran = Counter::new();
    let (s, res, r) = (slot.clone(), result.clone(), ran.clone());
    let id = f
        .add_callback(move |me| {
            r.inc();
            let own = s.lock().unwrap().take().unwrap();
            *res.lock().unwrap() = Some(me.remove_callback(own));
        })
        .unwrap();
    *slot.lock().unwrap() = Some(id);
    f.signal().unwrap();
    assert_eq!(*result.lock().unwrap(), Some(false));
    assert_eq!(ran.get(), 1);
}

/// Hooks whose drop is observable: they live exactly as long as the fence.
struct Named(#[allow(dead_code)] DropGuard);

impl FenceOps<Rcu> for Named {
    fn driver_name(&self) -> &str {
        "drv"
    }
    fn timeline_name(&self) -> &str {
        "tl"
    }
}

#[test]
fn callback_drops_the_last_handle_of_its_own_fence() {
    let tl = timeline::<Rcu>();
    let freed = Counter::new();
    let b = tl.fence_with_ops(2, Arc::new(Named(freed.drop_guard())));
    let ran = Counter::new();
    let (b_self, r) = (b.clone(), ran.clone());
    b.add_callback(move |me| {
        r.inc();
        assert!(me.ptr_eq(&b_self));
        drop(b_self); // the last handle outside the signal path
        assert!(me.test_signaled_flag());
    })
    .unwrap();
    let a = tl.fence(1);
    // a's callback owns the only other handle of b: it signals b and drops it.
    a.add_callback(move |_| {
        b.signal().unwrap();
        drop(b);
    })
    .unwrap();
    a.signal().unwrap();
    assert_eq!(ran.get(), 1, "run exactly once");
    assert_eq!(freed.get(), 1, "b has been freed");
}

#[test]
fn callback_drops_the_last_handle_of_a_pending_fence() {
    // Dropping a pending fence with callbacks from inside a callback: they run (-EDEADLK)
    // after the current callback returns.
    let tl = timeline::<Rcu>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let log = Log::new();
    let l = log.clone();
    b.add_callback(move |me| l.push(format!("b {:?}", me.status())))
        .unwrap();
    let l = log.clone();
    a.add_callback(move |_| {
        drop(b);
        l.push("a end");
    })
    .unwrap();
    a.signal().unwrap();
    assert_eq!(
        log.take(),
        [
            "a end".to_string(),
            format!("b {:?}", Status::Error(Errno::EDEADLK))
        ]
    );
}

const CHAIN: usize = 100_000;
const SMALL_STACK: usize = 256 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn signal_cascade_of_100k_fences_runs_on_a_small_stack() {
    let tl = timeline::<Rcu>();
    let fences: Vec<Fence<Rcu>> = (0..CHAIN as u64).map(|s| tl.fence(s)).collect();
    let ran = Counter::new();
    for (i, f) in fences.iter().enumerate() {
        let next = fences.get(i + 1).cloned();
        let r = ran.clone();
        f.add_callback(move |me| {
            assert!(me.test_signaled_flag());
            r.inc();
            if let Some(next) = next {
                next.signal().unwrap();
            }
        })
        .unwrap();
    }
    let first = fences[0].clone();
    on_small_stack(move || first.signal().unwrap());
    assert_eq!(ran.get(), CHAIN);
    assert!(fences.iter().all(|f| f.status() == Status::Signaled));
}

#[test]
fn drop_cascade_of_100k_fences_runs_on_a_small_stack() {
    // Fence i's only callback owns the only handle of fence i+1. Dropping fence 0 signals
    // it with -EDEADLK; its callback then drops fence 1, and so on.
    let tl = timeline::<Rcu>();
    let ran = Counter::new();
    let wrong = Arc::new(AtomicBool::new(false));
    let mut next: Option<Fence<Rcu>> = None;
    for s in (0..CHAIN as u64).rev() {
        let f = tl.fence(s);
        let (r, w, n) = (ran.clone(), wrong.clone(), next.take());
        f.add_callback(move |me| {
            if me.status() != Status::Error(Errno::EDEADLK) || me.seqno() != s {
                w.store(true, Ordering::SeqCst);
            }
            r.inc();
            drop(n);
        })
        .unwrap();
        next = Some(f);
    }
    let first = next.unwrap();
    on_small_stack(move || drop(first));
    assert_eq!(ran.get(), CHAIN);
    assert!(
        !wrong.load(Ordering::SeqCst),
        "every callback saw its own fence with -EDEADLK"
    );
}

#[test]
fn timeline_named_fences_keep_names_in_callbacks() {
    let tl = Timeline::new("ring");
    let f = tl.fence(1);
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    f.add_callback(move |me| *s.lock().unwrap() = format!("{me:?}"))
        .unwrap();
    f.signal().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        format!("rcu-fence:ring {}:1 signaled", tl.context())
    );
}

/// On `Rcu` the `enable_signaling` hook runs with no lock held, so it may signal the fence
/// itself; the callback being added is then refused.
#[test]
fn enable_signaling_hook_may_signal_the_fence_itself() {
    struct SignalsAtOnce;
    impl FenceOps<Rcu> for SignalsAtOnce {
        fn driver_name(&self) -> &str {
            "drv"
        }
        fn timeline_name(&self) -> &str {
            "tl"
        }
        fn enable_signaling(&self, fence: &Fence<Rcu>) -> bool {
            fence.set_error(Errno::ENODATA).unwrap();
            fence.signal().unwrap();
            true
        }
    }
    let f = timeline::<Rcu>().fence_with_ops(1, Arc::new(SignalsAtOnce));
    let ran = Counter::new();
    let r = ran.clone();
    assert_eq!(
        f.add_callback(move |_| r.inc()).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert_eq!(ran.get(), 0);
    assert_eq!(f.status(), Status::Error(Errno::ENODATA));
}
