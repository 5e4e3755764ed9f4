//! Helpers shared by the integration tests.

#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use rcu_fence::{Backend, Timeline};

/// Expands one `#[test]` per backend for each generic test function `name::<B>()`:
/// `rcu::name`, `locked::name` and `locked_rcu::name`.
macro_rules! every_backend {
    ($($name:ident),* $(,)?) => {
        mod rcu {
            $(#[test] fn $name() { super::$name::<rcu_fence::Rcu>(); })*
        }
        mod locked {
            $(#[test] fn $name() { super::$name::<rcu_fence::Locked>(); })*
        }
        mod locked_rcu {
            $(#[test] fn $name() { super::$name::<rcu_fence::LockedRcu>(); })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use every_backend;

/// A fresh timeline named "gpu" on backend `B`.
pub(crate) fn timeline<B: Backend>() -> Timeline<B> {
    Timeline::new_in("gpu", B::default())
}

/// A shared counter.
#[derive(Clone, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    /// A guard that increments this counter when dropped.
    pub(crate) fn drop_guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }
}

/// Increments its counter when dropped.
pub(crate) struct DropGuard(Counter);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.inc();
    }
}

/// A shared, ordered log of events.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A waker that counts its wakes and unparks a thread.
pub(crate) struct CountingWaker {
    pub(crate) wakes: AtomicUsize,
    thread: Thread,
}

impl CountingWaker {
    /// A waker for the current thread, and the shared counter behind it.
    pub(crate) fn new() -> (Arc<CountingWaker>, Waker) {
        let inner = Arc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
            thread: std::thread::current(),
        });
        let waker = Waker::from(inner.clone());
        (inner, waker)
    }
    pub(crate) fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor: polls `f` on this thread, parking between wakes.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let (_, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

pub(crate) mod alloc;

/// True on the `Rcu` backend, whose containers signal synchronously and release members.
pub(crate) fn is_rcu<B: Backend>() -> bool {
    B::NAME == rcu_fence::Rcu::NAME
}

/// True if `B`'s containers release each member once it has signalled (`Rcu` and
/// `LockedRcu`); `Locked` keeps them until the container's own release, as the kernel.
pub(crate) fn releases_members<B: Backend>() -> bool {
    B::NAME != rcu_fence::Locked::NAME
}

/// How long a test waits for something that must happen (a container signalled by another
/// thread). Generous: it only bounds a failing test.
pub(crate) const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for `fence` to signal (within [`SETTLE`]) and returns its status; panics on timeout.
pub(crate) fn settle<B: Backend>(fence: &rcu_fence::Fence<B>) -> rcu_fence::Status {
    match fence.wait_timeout(SETTLE) {
        Ok(()) | Err(rcu_fence::FenceError::Failed(_)) => fence.status(),
        Err(e) => panic!("the fence signals: {e}"),
    }
}

/// Fence hooks that count their own drop (a driver's per-fence state going away).
pub(crate) struct DropCounted(pub(crate) Counter);

impl<B: Backend> rcu_fence::FenceOps<B> for DropCounted {
    fn driver_name(&self) -> &str {
        "test"
    }
    fn timeline_name(&self) -> &str {
        "drop-counted"
    }
}

impl Drop for DropCounted {
    fn drop(&mut self) {
        self.0.inc();
    }
}

/// Fence hooks that count `enable_signaling` calls.
pub(crate) struct CountingOps(pub(crate) Counter);

impl<B: Backend> rcu_fence::FenceOps<B> for CountingOps {
    fn driver_name(&self) -> &str {
        "counting"
    }
    fn timeline_name(&self) -> &str {
        "counting"
    }
    fn enable_signaling(&self, _fence: &rcu_fence::Fence<B>) -> bool {
        self.0.inc();
        true
    }
}

/// A fence on `tl` whose `enable_signaling` calls are counted by `enables`.
pub(crate) fn counted_fence<B: Backend>(
    tl: &Timeline<B>,
    seqno: u64,
    enables: &Counter,
) -> rcu_fence::Fence<B> {
    tl.fence_with_ops(seqno, Arc::new(CountingOps(enables.clone())))
}

/// A fresh timeline with its own context named `name` on backend `B`.
pub(crate) fn timeline_named<B: Backend>(name: &str) -> Timeline<B> {
    Timeline::new_in(name, B::default())
}

/// Spins (yielding) until `cond` holds or [`SETTLE`] passes; returns the last answer. For
/// effects that no fence reports (a reference another thread drops after signalling).
pub(crate) fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Runs `f` on its own thread and fails the test if it has not finished within [`SETTLE`]
/// (a hang becomes a failure instead of a stuck test run). A panic in `f` is resumed here.
pub(crate) fn watchdog<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            result
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(SETTLE) {
        Ok(()) => match worker
            .join()
            .expect("the watched thread catches its panics")
        {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(_) => panic!("{what}: did not finish within {SETTLE:?} (a hang)"),
    }
}

/// Fence locks this thread holds (the classic schemes' lock recorder; 0 on `Rcu`).
pub(crate) fn held_locks() -> usize {
    rcu_fence::lockdep::held_locks()
}

/// Makes this thread's first park through `parking_lot_core` now. A thread's first park
/// sets up its parking slot, which may grow the process's table (kept for good): leak and
/// allocation counts call this before tracking, so they count the library's blocks only.
pub(crate) fn warm_up_parking() {
    // SAFETY: the validate closure refuses at once, so nothing parks and no other callback
    // runs; the address is only a key.
    unsafe {
        let _ = parking_lot_core::park(
            {
                static KEY: u8 = 0;
                &KEY as *const u8 as usize
            },
            || false,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            None,
        );
    }
}
