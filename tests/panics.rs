//! Panics in user code wherever it runs (callbacks, `FenceOps` hooks and their `Drop`, the
//! drop of a callback's captured values, a released member's last drop), on every backend:
//! a panic never leaves a fence half-signalled, never stops the other callbacks, never loses
//! a callback, leaves no lock held and nothing counted as running, and does not poison later
//! use (`synchronize_rcu` included).
//!
//! Where the panic goes: every callback's panic is caught, the rest still run, and the
//! first panic is resumed by the outermost fence call on that thread (on `Locked`, by the
//! thread's outermost lock release, once the irq_work queued meanwhile has run). A hook's
//! panic reaches the call that ran the hook. A value released past RCU readers is dropped
//! by whichever later `rcu` call runs the deferred release; its panic surfaces there, once.

mod common;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rcu_fence::{
    Backend, Fence, FenceArray, FenceChain, FenceError, FenceOps, Status, context_alloc,
};

use common::{Counter, every_backend, is_rcu, settle, timeline};

every_backend!(
    panic_in_callback_others_run_fence_signalled,
    panic_in_nested_cascade,
    panic_in_callback_of_fence_signalled_from_a_callback,
    panic_in_container_callback,
    panic_in_chain_callback,
    panic_in_enable_signaling_hook,
    panic_in_nested_enable_signaling_hook,
    panic_in_future_waker,
    repeated_use_after_panics,
    panic_while_removing_from_another_thread,
    panic_in_signaled_hook,
    panic_in_set_deadline_hook,
    panic_in_drop_of_ops_at_final_put,
    panic_in_drop_of_ops_of_a_released_member,
    panic_in_drop_of_a_removed_callback,
);

fn message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default()
}

/// Runs `f`, returning the message of the panic it raised, if any.
fn panic_of<R>(f: impl FnOnce() -> R) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f)).err().map(message)
}

/// The tests of this file run one at a time. A panic in a value's drop deferred past RCU
/// readers surfaces from whichever thread runs the deferred batch (any thread that defers,
/// flushes or synchronizes may): run alongside, one test's panic would reach another.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn counting<B: Backend>(f: &Fence<B>) -> Counter {
    let runs = Counter::new();
    let r = runs.clone();
    f.add_callback(move |_| r.inc()).unwrap();
    runs
}

/// The basic rule: callbacks before and after the panicking one run, the fence is fully
/// signalled (flag, status, timestamp), and the signaller receives the panic.
fn panic_in_callback_others_run_fence_signalled<B: Backend>() {
    let _one = one_at_a_time();
    let f = timeline::<B>().fence(1);
    let before = counting(&f);
    f.add_callback(|_| panic!("boom")).unwrap();
    let after = counting(&f);
    assert_eq!(panic_of(|| f.signal()).as_deref(), Some("boom"));
    assert_eq!((before.get(), after.get()), (1, 1));
    assert!(f.test_signaled_flag());
    assert_eq!(f.status(), Status::Signaled);
    assert!(f.timestamp().is_some());
    assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
    assert_eq!(f.wait(), Ok(()));
}

/// Waits for a container to signal. On `Locked` whoever signals the container runs its
/// callbacks: the member's signaller (from irq_work), or this thread if its wait polls the
/// container complete first; then this thread receives a callback's panic, and waits again
/// (it returns at once).
fn settle_catching<B: Backend>(f: &Fence<B>) -> Status {
    for _ in 0..2 {
        if let Ok(status) = catch_unwind(AssertUnwindSafe(|| settle(f))) {
            return status;
        }
        assert!(
            f.test_signaled_flag(),
            "a panic in a callback comes after the signal"
        );
    }
    panic!("a fence signals once, so its callbacks panic at most once per waiter");
}

/// A panic at every level of leaf → inner array → outer array: every callback runs once,
/// every level signals, and the leaf's signaller receives the first panic (`Rcu`: the
/// whole cascade runs inside its call; the classic schemes: from the irq_work it queued).
fn panic_in_nested_cascade<B: Backend>() {
    let _one = one_at_a_time();
    let leaf = timeline::<B>().fence(1);
    let inner = FenceArray::create(vec![leaf.clone()], context_alloc(1), 1, false).unwrap();
    let outer = FenceArray::create(vec![inner.clone()], context_alloc(1), 1, false).unwrap();
    let mut runs = Vec::new();
    for (f, name) in [(&leaf, "leaf"), (&inner, "inner"), (&outer, "outer")] {
        f.add_callback(move |_| panic!("{name}")).unwrap();
        runs.push(counting(f));
    }
    assert_eq!(panic_of(|| leaf.signal()).as_deref(), Some("leaf"));
    assert_eq!(settle_catching(&outer), Status::Signaled);
    assert_eq!(settle_catching(&inner), Status::Signaled);
    assert!(common::eventually(|| runs.iter().all(|r| r.get() == 1)));
    assert!(runs.iter().all(|r| r.get() == 1));
    // Nothing is left over for the next operation on this thread.
    let next = timeline::<B>().fence(2);
    let r = counting(&next);
    assert_eq!(panic_of(|| next.signal()), None);
    assert_eq!(r.get(), 1);
}

/// A callback on `a` signals `b`, whose callback panics: `b` is signalled with all of its
/// callbacks run, and `a`'s signaller receives the panic (on `Rcu` it is resumed by the
/// outermost call; on `Locked` the nested `signal` resumes it inside `a`'s callback, which
/// is caught there and resumed by `a`'s signal).
fn panic_in_callback_of_fence_signalled_from_a_callback<B: Backend>() {
    let _one = one_at_a_time();
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let b2 = b.clone();
    let signalled_b = Counter::new();
    let s = signalled_b.clone();
    a.add_callback(move |_| {
        let _ = b2.signal();
        s.inc();
    })
    .unwrap();
    let a_after = counting(&a);
    b.add_callback(|_| panic!("from b")).unwrap();
    let b_after = counting(&b);
    assert_eq!(panic_of(|| a.signal()).as_deref(), Some("from b"));
    assert!(a.test_signaled_flag() && b.test_signaled_flag());
    assert_eq!((a_after.get(), b_after.get()), (1, 1));
    // b's panic was kept for the outermost call (a's signal), so a's callback went on
    // after `b2.signal()` returned.
    assert_eq!(signalled_b.get(), 1);
}

/// A container's callback panics: the container's other callbacks run and it is
/// signalled; the member's signaller receives the panic (on `Locked` from the irq_work that
/// signals the array, which runs on that thread once it releases the member's lock).
fn panic_in_container_callback<B: Backend>() {
    let _one = one_at_a_time();
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let array = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
    array.add_callback(|_| panic!("array")).unwrap();
    let after = counting(&array);
    assert_eq!(panic_of(|| a.signal()), None);
    let got = panic_of(|| b.signal());
    assert_eq!(got.as_deref(), Some("array"));
    assert_eq!(settle_catching(&array), Status::Signaled);
    assert!(common::eventually(|| after.get() == 1));
    // The machinery still completes containers afterwards.
    let c = tl.fence(3);
    let array2 = FenceArray::create(vec![c.clone()], context_alloc(1), 1, false).unwrap();
    let runs2 = counting(&array2);
    c.signal().unwrap();
    assert_eq!(settle(&array2), Status::Signaled);
    assert!(common::eventually(|| runs2.get() == 1));
}

/// A chain link's callback panics while the chain completes: every link signals, each of
/// their other callbacks runs once.
fn panic_in_chain_callback<B: Backend>() {
    let _one = one_at_a_time();
    let tl = timeline::<B>();
    let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let mut links = Vec::new();
    let mut head = None;
    for (i, f) in fences.iter().enumerate() {
        let link = FenceChain::create(head, f.clone(), i as u64 + 1);
        head = Some(link.clone());
        links.push(link);
    }
    let mut runs = Vec::new();
    for link in &links {
        link.add_callback(|_| panic!("link")).unwrap();
        runs.push(counting(link));
    }
    for f in fences.iter().rev() {
        let _ = panic_of(|| f.signal());
    }
    for link in &links {
        assert_eq!(settle_catching(link), Status::Signaled);
    }
    assert!(common::eventually(|| runs.iter().all(|r| r.get() == 1)));
}

/// Hooks whose `enable_signaling` panics, counting the calls.
struct PanickyEnable(Counter);

impl<B: Backend> FenceOps<B> for PanickyEnable {
    fn driver_name(&self) -> &str {
        "panicky"
    }
    fn timeline_name(&self) -> &str {
        "panicky"
    }
    fn enable_signaling(&self, _fence: &Fence<B>) -> bool {
        self.0.inc();
        panic!("enable");
    }
}

/// `enable_signaling` panics under `add_callback`: the panic reaches the caller, the
/// closure is dropped without running, the fence stays pending and usable (the hook is
/// not called again), and a later signal runs the callbacks added afterwards.
fn panic_in_enable_signaling_hook<B: Backend>() {
    let _one = one_at_a_time();
    let enables = Counter::new();
    let f = timeline::<B>().fence_with_ops(1, Arc::new(PanickyEnable(enables.clone())));
    let (ran, dropped) = (Counter::new(), Counter::new());
    let (r, guard) = (ran.clone(), dropped.drop_guard());
    let got = panic_of(|| {
        f.add_callback(move |_| {
            let _guard = &guard;
            r.inc();
        })
    });
    assert_eq!(got.as_deref(), Some("enable"));
    assert_eq!(enables.get(), 1);
    assert_eq!(f.status(), Status::Pending);
    let later = counting(&f);
    assert_eq!(f.wait_timeout(Duration::ZERO), Err(FenceError::TimedOut));
    f.signal().unwrap();
    assert_eq!(later.get(), 1);
    assert_eq!(
        ran.get(),
        0,
        "a callback whose add panicked is not installed"
    );
    assert_eq!(dropped.get(), 1, "its closure was dropped");
    assert_eq!(enables.get(), 1, "the hook ran once");
}

/// A member's `enable_signaling` panics while an array enables its members. On `Rcu` the
/// member's hook runs from the work list: the panic is resumed by the array's
/// `add_callback` after the array's callback was installed, and the array still completes
/// exactly once when its members signal. On `Locked` the hook runs inside the array's
/// enable under both locks; the panic unwinds out of `add_callback` and leaves the array
/// enabled without callbacks on its members, so it completes only when polled. Either way
/// nothing leaks: the reference the array handed to the callback the panic kept from
/// being installed is taken back, so the array (and its members) go with the last handle.
fn panic_in_nested_enable_signaling_hook<B: Backend>() {
    let _one = one_at_a_time();
    let enables = Counter::new();
    let dropped = Counter::new();
    let tl = timeline::<B>();
    let a = tl.fence_with_ops(1, Arc::new(PanickyEnable(enables.clone())));
    let b = tl.fence_with_ops(
        2,
        Arc::new(DropCounted {
            _dropped: dropped.drop_guard(),
        }),
    );
    let array = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
    let runs = Counter::new();
    let r = runs.clone();
    let got = panic_of(|| array.add_callback(move |_| r.inc()).is_ok());
    assert_eq!(got.as_deref(), Some("enable"));
    assert_eq!(enables.get(), 1);
    assert!(!array.test_signaled_flag());
    a.signal().unwrap();
    b.signal().unwrap();
    assert_eq!(array.wait_timeout(common::SETTLE), Ok(()));
    if is_rcu::<B>() {
        assert_eq!(
            runs.get(),
            1,
            "the array's callback was installed and ran once"
        );
    } else {
        assert_eq!(runs.get(), 0, "the add unwound before installing it");
    }
    drop((array, a, b));
    assert!(
        common::eventually(|| {
            rcu_fence::synchronize_rcu();
            dropped.get() == 1
        }),
        "the array and its members are freed"
    );
}

/// Plain hooks whose drop is counted (the fence's last reference is gone).
struct DropCounted {
    _dropped: common::DropGuard,
}

impl<B: Backend> FenceOps<B> for DropCounted {
    fn driver_name(&self) -> &str {
        "drop-counted"
    }
    fn timeline_name(&self) -> &str {
        "drop-counted"
    }
}

/// A waker whose `wake` panics.
struct PanickyWaker;

impl Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker");
    }
}

/// A future's waker panics when the fence signals: the signaller receives the panic, the
/// fence's other callbacks run, and the future still resolves when polled again.
fn panic_in_future_waker<B: Backend>() {
    let _one = one_at_a_time();
    let f = timeline::<B>().fence(1);
    let waker = Waker::from(Arc::new(PanickyWaker));
    let mut fut = Box::pin(std::future::IntoFuture::into_future(&f));
    assert!(std::future::Future::poll(fut.as_mut(), &mut Context::from_waker(&waker)).is_pending());
    let after = counting(&f);
    assert_eq!(panic_of(|| f.signal()).as_deref(), Some("waker"));
    assert_eq!(after.get(), 1);
    let noop = Waker::noop();
    match std::future::Future::poll(fut.as_mut(), &mut Context::from_waker(noop)) {
        Poll::Ready(result) => assert_eq!(result, Ok(())),
        Poll::Pending => panic!("the future must resolve once the fence has signalled"),
    }
}

/// Many panicking signals in a row on one thread: each signal receives its own panic
/// (none is kept over to a later call), and every callback runs exactly once.
fn repeated_use_after_panics<B: Backend>() {
    let _one = one_at_a_time();
    let tl = timeline::<B>();
    for i in 0..100u64 {
        let f = tl.fence(i + 1);
        f.add_callback(move |_| panic!("panic {i}")).unwrap();
        f.add_callback(move |_| panic!("second {i}")).unwrap();
        let runs = counting(&f);
        assert_eq!(panic_of(|| f.signal()), Some(format!("panic {i}")));
        assert_eq!(runs.get(), 1);
        let clean = tl.fence(i + 1);
        let r = counting(&clean);
        assert_eq!(panic_of(|| clean.signal()), None, "no stale panic resumed");
        assert_eq!(r.get(), 1);
    }
}

/// A panicking callback while another thread removes a different callback: the removal
/// answers as usual (`true` ⇒ never runs, `false` ⇒ ran once) and nothing hangs.
fn panic_while_removing_from_another_thread<B: Backend>() {
    let _one = one_at_a_time();
    for _ in 0..50 {
        let f = timeline::<B>().fence(1);
        f.add_callback(|_| panic!("racing")).unwrap();
        let target = Counter::new();
        let t = target.clone();
        let id = f.add_callback(move |_| t.inc()).unwrap();
        let g = f.clone();
        let remover = std::thread::spawn(move || g.remove_callback(id));
        assert_eq!(panic_of(|| f.signal()).as_deref(), Some("racing"));
        let removed = remover.join().unwrap();
        assert_eq!(target.get(), usize::from(!removed));
    }
}

/// Hooks that panic where told to, counting what ran.
struct Panicky {
    in_signaled: bool,
    in_set_deadline: bool,
    in_drop: bool,
}

impl<B: Backend> FenceOps<B> for Panicky {
    fn driver_name(&self) -> &str {
        "panicky"
    }
    fn timeline_name(&self) -> &str {
        "panicky"
    }
    fn signaled(&self, _: &Fence<B>) -> bool {
        if self.in_signaled {
            panic!("signaled");
        }
        false
    }
    fn set_deadline(&self, _: &Fence<B>, _: std::time::Instant) {
        if self.in_set_deadline {
            panic!("set_deadline");
        }
    }
}

impl Drop for Panicky {
    fn drop(&mut self) {
        if self.in_drop && !std::thread::panicking() {
            panic!("ops drop");
        }
    }
}

fn panicky<B: Backend>(seqno: u64, signaled: bool, set_deadline: bool, drop: bool) -> Fence<B> {
    let ops = Panicky {
        in_signaled: signaled,
        in_set_deadline: set_deadline,
        in_drop: drop,
    };
    timeline::<B>().fence_with_ops(seqno, Arc::new(ops))
}

/// A panicking `signaled` hook reaches the poller; the fence stays pending and usable, and
/// a container polling it (before it is enabled) passes the panic on the same way.
fn panic_in_signaled_hook<B: Backend>() {
    let _one = one_at_a_time();
    let f = panicky::<B>(1, true, false, false);
    assert_eq!(panic_of(|| f.is_signaled()).as_deref(), Some("signaled"));
    assert!(!f.test_signaled_flag());
    let array = FenceArray::create(vec![f.clone()], context_alloc(1), 1, false).unwrap();
    assert_eq!(
        panic_of(|| array.is_signaled()).as_deref(),
        Some("signaled")
    );
    let runs = counting(&array);
    f.signal().unwrap();
    assert_eq!(settle_catching(&array), Status::Signaled);
    assert_eq!(runs.get(), 1);
    assert_eq!(common::held_locks(), 0);
}

/// A panicking `set_deadline` hook reaches the caller, directly or through a container.
fn panic_in_set_deadline_hook<B: Backend>() {
    let _one = one_at_a_time();
    let f = panicky::<B>(1, false, true, false);
    let deadline = std::time::Instant::now();
    assert_eq!(
        panic_of(|| f.set_deadline(deadline)).as_deref(),
        Some("set_deadline")
    );
    let array = FenceArray::create(vec![f.clone()], context_alloc(1), 1, false).unwrap();
    assert_eq!(
        panic_of(|| array.set_deadline(deadline)).as_deref(),
        Some("set_deadline")
    );
    f.signal().unwrap();
    array.set_deadline(deadline); // signalled: not forwarded
    assert_eq!(settle_catching(&array), Status::Signaled);
}

/// The ops' `Drop` panics at the final put: the dropping thread receives it; nothing else
/// is lost, and the same thread goes on using fences.
fn panic_in_drop_of_ops_at_final_put<B: Backend>() {
    let _one = one_at_a_time();
    let f = panicky::<B>(1, false, false, true);
    let runs = counting(&f);
    f.signal().unwrap();
    assert_eq!(runs.get(), 1);
    assert_eq!(panic_of(|| drop(f)).as_deref(), Some("ops drop"));
    let next = timeline::<B>().fence(2);
    let r = counting(&next);
    next.signal().unwrap();
    assert_eq!(r.get(), 1);
    assert_eq!(common::held_locks(), 0);
    rcu_fence::synchronize_rcu();
}

/// The ops' `Drop` of an array member panics when the member is finally released: on
/// `Rcu` at the drop of its last handle (the array dropped its own reference when the member
/// signalled), on `LockedRcu` past RCU readers (the panic surfaces from the call that ran
/// the deferred release, `synchronize_rcu` here), on `Locked` at the array's own release.
/// Afterwards every operation works, `synchronize_rcu` included, and nothing is left
/// counted as pending.
fn panic_in_drop_of_ops_of_a_released_member<B: Backend>() {
    let _one = one_at_a_time();
    let member = panicky::<B>(1, false, false, true);
    let array = FenceArray::create(vec![member.clone()], context_alloc(1), 1, false).unwrap();
    let runs = counting(&array);
    member.signal().unwrap();
    assert_eq!(settle_catching(&array), Status::Signaled);
    assert_eq!(runs.get(), 1);
    let mut panics = 0;
    if panic_of(|| drop(member)).is_some() {
        panics += 1;
    }
    if panic_of(|| drop(array)).is_some() {
        panics += 1;
    }
    for _ in 0..4 {
        if panic_of(rcu_fence::synchronize_rcu).is_some() {
            panics += 1;
        }
    }
    assert_eq!(panics, 1, "the drop's panic surfaces exactly once");
    rcu_fence::synchronize_rcu();
    // Still working: a fresh array completes and its member is released.
    let m = timeline::<B>().fence(2);
    let a = FenceArray::create(vec![m.clone()], context_alloc(1), 1, false).unwrap();
    let r = counting(&a);
    m.signal().unwrap();
    assert_eq!(settle_catching(&a), Status::Signaled);
    assert_eq!(r.get(), 1);
    rcu_fence::synchronize_rcu();
}

/// A value captured by a removed callback panics when dropped: the remover receives it, and
/// the fence and its other callbacks are untouched.
fn panic_in_drop_of_a_removed_callback<B: Backend>() {
    let _one = one_at_a_time();
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("captured drop");
            }
        }
    }
    let f = timeline::<B>().fence(1);
    let bomb = Bomb;
    let id = f
        .add_callback(move |_| {
            let _keep = &bomb;
        })
        .unwrap();
    let other = counting(&f);
    assert_eq!(
        panic_of(|| f.remove_callback(id)).as_deref(),
        Some("captured drop")
    );
    f.signal().unwrap();
    assert_eq!(other.get(), 1);
}
