//! The per-thread work list that keeps signal cascades, enabling and final drops flat.
//!
//! Every operation that can lead into another fence's operation (signalling runs callbacks,
//! a callback signals a container, enabling a container enables its members, dropping a
//! container drops its members) goes through [`scope`]. The first such operation on a thread
//! becomes the *outermost* one: it does its own step, then drains the queue. Any operation
//! started while a scope is open on the thread is *nested*: instead of running the follow-on
//! work on the current stack it appends a [`Job`] and returns. The outermost scope pops jobs
//! in FIFO order until the queue is empty, so the stack depth is the same whatever the
//! nesting depth of the containers involved.
//!
//! The one visible consequence: a fence signalled from inside a callback has its own
//! callbacks run after the current callback returns, before the outermost call returns.
//! The exception is a callback that blocks (a wait): before it parks, [`run_queued`] runs
//! what the thread has queued, since what it waits for may be among it.
//!
//! Panics: a panicking job (a user callback) is caught, the remaining jobs still run, and the
//! first panic is resumed when the outermost scope finishes. If the outermost step itself
//! panics, the queue is still drained while unwinding, so no queued callback is lost.
//!
//! The queue is thread-local and never shared: no synchronisation is needed here.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

/// A type-erased unit of deferred work: `run(a, b)` takes ownership of whatever `a` and `b`
/// stand for (for example an `Arc::into_raw` fence and a callback list).
pub(crate) struct Job {
    a: *const (),
    b: *const (),
    run: unsafe fn(*const (), *const ()),
}

impl Job {
    /// A job that calls `run(a, b)` once.
    ///
    /// # Safety
    /// 1. `run(a, b)` must be sound to call exactly once, on this thread, at any later point
    ///    while this thread's queue is drained.
    /// 2. Ownership of what `a` and `b` stand for passes to the job; `run` releases it.
    pub(crate) unsafe fn new(
        a: *const (),
        b: *const (),
        run: unsafe fn(*const (), *const ()),
    ) -> Job {
        Job { a, b, run }
    }

    fn call(self) {
        // SAFETY: obligation 1 of `Job::new`: the creator vouched for one call; `self` is
        // consumed, so this is that call.
        unsafe { (self.run)(self.a, self.b) }
    }
}

struct Work {
    active: Cell<bool>,
    queue: RefCell<VecDeque<Job>>,
    panic: RefCell<Option<Box<dyn Any + Send>>>,
}

crate::sync::thread_local! {
    static WORK: Work = const {
        Work {
            active: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            panic: RefCell::new(None),
        }
    };
}

/// True while an outermost operation is running on this thread. False after the thread's
/// work list has been destroyed (a fence dropped from another thread-local's destructor at
/// thread exit): such late operations run directly.
pub(crate) fn is_active() -> bool {
    WORK.try_with(|w| w.active.get()).unwrap_or(false)
}

/// Appends a job to this thread's queue. Must only be called while a scope is active.
pub(crate) fn push(job: Job) {
    WORK.with(|w| {
        debug_assert!(w.active.get(), "work::push outside a scope");
        w.queue.borrow_mut().push_back(job);
    });
}

/// Runs `f(nested)`. If no scope is open on this thread, `f(false)` runs as the outermost
/// operation and the queue is drained before returning; otherwise `f(true)` runs directly
/// and is expected to push its follow-on work instead of doing it.
pub(crate) fn scope<R>(f: impl FnOnce(bool) -> R) -> R {
    // One thread-local access on the common path; the queue and the panic slot are only
    // touched when something was queued or caught.
    let mut f = Some(f);
    let outcome = WORK.try_with(|w| {
        let f = f.take().expect("scope's closure runs once");
        if w.active.replace(true) {
            return f(true);
        }
        // Drains (also while unwinding) and closes the scope.
        struct Outermost<'a>(&'a Work);
        impl Drop for Outermost<'_> {
            fn drop(&mut self) {
                let w = self.0;
                if !w.queue.borrow().is_empty() {
                    drain(w);
                }
                w.active.set(false);
                if std::thread::panicking() {
                    // The outermost step's own panic is propagating; a callback's panic
                    // caught meanwhile is dropped rather than resumed by a later scope.
                    w.panic.borrow_mut().take();
                }
            }
        }
        let guard = Outermost(w);
        let result = f(false);
        drop(guard);
        if w.panic.borrow().is_some() {
            if let Some(payload) = w.panic.borrow_mut().take() {
                panic::resume_unwind(payload);
            }
        }
        result
    });
    match outcome {
        Ok(result) => result,
        // At thread exit, after the list is gone: run directly (nothing can be queued).
        Err(_) => (f.take().expect("not run yet"))(false),
    }
}

/// Runs the jobs queued on this thread now, from inside the operation in progress. For a
/// call that is about to block (a wait from inside a callback): what it waits for may be
/// queued behind it (enabling the awaited fence, a cascade that signals it), and the
/// outermost scope would only run that after the blocked call returned. Outside a scope
/// there is nothing queued and this does nothing.
pub(crate) fn run_queued() {
    let _ = WORK.try_with(|w| {
        if w.active.get() && !w.queue.borrow().is_empty() {
            drain(w);
        }
    });
}

/// Runs `f`, catching a panic and keeping the first one for the outermost scope to resume.
pub(crate) fn catching(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        keep_panic(payload);
    }
}

/// Keeps a caught panic (the first one) for the outermost scope to resume.
pub(crate) fn keep_panic(payload: Box<dyn Any + Send>) {
    // At thread exit the payload has nowhere to go; the panic hook has reported it.
    let _ = WORK.try_with(|w| {
        let mut slot = w.panic.borrow_mut();
        if slot.is_none() {
            *slot = Some(payload);
        }
    });
}

fn drain(w: &Work) {
    loop {
        // The borrow ends with this statement: a job may push more work.
        let job = w.queue.borrow_mut().pop_front();
        let Some(job) = job else { break };
        catching(|| job.call());
    }
}
