//! Helpers shared by the in-crate test suites.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const ALIVE: u64 = 0x5eed_f00d_cafe_d00d;

/// A value that counts its drops and can tell whether it is still alive.
#[derive(Debug)]
pub(crate) struct Counted {
    id: usize,
    alive: u64,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    pub(crate) fn new(id: usize, drops: &Arc<AtomicUsize>) -> Box<Self> {
        Box::new(Self {
            id,
            alive: ALIVE,
            drops: Arc::clone(drops),
        })
    }

    /// The value's id, after checking that it has not been dropped.
    pub(crate) fn check(&self) -> usize {
        assert_eq!(
            self.alive, ALIVE,
            "value {} read after it was dropped",
            self.id
        );
        self.id
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        assert_eq!(self.alive, ALIVE, "value {} dropped twice", self.id);
        self.alive = 0;
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A fresh drop counter.
pub(crate) fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Runs `f` on its own thread and returns its result (re-raising its panic).
/// If it has not finished after `seconds`, reports `what` and aborts the test
/// process: a hang (a wedged `synchronize`, a deadlocked reader) fails the run
/// instead of stalling it.
pub(crate) fn within<T: Send + 'static>(
    seconds: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = done.send(());
        result
    });
    if finished
        .recv_timeout(std::time::Duration::from_secs(seconds))
        .is_err()
    {
        // Straight to stderr: the test harness's capture of `eprintln!` would
        // be lost with the process.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "{what}: still running after {seconds} s; aborting the test run"
        );
        std::process::abort();
    }
    match worker.join().expect("the worker catches its panics") {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Tests that read the process-wide `pending()` count take this lock
/// exclusively; every other test of the suites takes it shared, so that no
/// other test retires or reclaims meanwhile.
static SERIAL: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Shared use of the reclaimers: other shared users may run alongside.
pub(crate) fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    SERIAL
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Exclusive use of the reclaimers: no other suite test runs meanwhile.
pub(crate) fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    SERIAL
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Synchronizes until `pending::<R>()` is at most `limit` and returns it.
/// Threads of earlier tests may still hand over work as they exit, so one
/// `synchronize` is not always enough; a bounded number of rounds is.
pub(crate) fn settle<R: crate::Reclaimer>(limit: usize) -> usize {
    for _ in 0..1_000 {
        crate::synchronize::<R>();
        let now = crate::pending::<R>();
        if now <= limit {
            return now;
        }
        std::thread::yield_now();
    }
    crate::pending::<R>()
}

/// Marks a panic message as raised on purpose by a test.
pub(crate) const DELIBERATE: &str = "(deliberately)";

/// Installs (once) a panic hook that stays quiet for panics whose message
/// contains [`DELIBERATE`] and reports every other panic as before.
pub(crate) fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.contains(DELIBERATE)) {
                report(info);
            }
        }));
    });
}
