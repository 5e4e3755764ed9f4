//! The kernel's irq_work, where the kernel runs it: on the thread that queued it, as soon as
//! that thread releases its outermost fence lock.
//!
//! In the kernel, a container's member callback runs under the member's spinlock with
//! interrupts off; the irq_work it queues (signal the array, re-arm the chain) runs on the
//! same CPU the moment interrupts are restored, before the signaller's next statement.
//! Here every fence lock of the classic scheme (`lock.rs`) is recorded in the thread's held
//! stack while held; work queued meanwhile waits in a per-thread FIFO and is run when the
//! stack becomes empty. Work queued with no lock held runs at once.
//!
//! The queue is drained iteratively: work that takes and releases locks while the queue is
//! being drained (signalling the array takes the array's lock) queues more work, which runs
//! in the same drain, never on a nested stack.
//!
//! Panics: a callback's panic caught by a `signal` and a panicking job are kept (the first
//! one), the rest still run, and the kept panic is resumed by the thread's outermost lock
//! release once the queue is empty (unless the thread is already unwinding).
//!
//! The queue is thread-local: no synchronisation is needed here, and loom models run the
//! same code.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

type Work = Box<dyn FnOnce() + Send>;

struct IrqWork {
    /// Set while the queue is drained.
    draining: Cell<bool>,
    queue: RefCell<VecDeque<Work>>,
    panic: RefCell<Option<Box<dyn Any + Send>>>,
}

crate::sync::thread_local! {
    static IRQ_WORK: IrqWork = const {
        IrqWork {
            draining: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            panic: RefCell::new(None),
        }
    };
}

/// Queues `work` to run when this thread releases its outermost fence lock
/// (`irq_work_queue`); at once if it holds none and is not already draining.
pub(crate) fn queue_work(work: impl FnOnce() + Send + 'static) {
    let mut work = Some(work);
    let queued = IRQ_WORK.try_with(|w| {
        if let Some(work) = work.take() {
            w.queue.borrow_mut().push_back(Box::new(work));
        }
        held() == 0 && !w.draining.get()
    });
    match queued {
        Ok(true) => drain(),
        Ok(false) => {}
        // At thread exit the queue is gone, and with it any lock this thread could hold.
        Err(_) => {
            if let Some(work) = work.take() {
                work();
            }
        }
    }
}

/// The number of classic-scheme locks this thread holds (the kernel's "interrupts off").
pub(crate) fn held() -> usize {
    super::lockdep::held_count()
}

/// Called when this thread has released its outermost fence lock: runs the queued work
/// (unless a drain is already running further up the stack) and resumes a kept panic.
pub(crate) fn run_queued() {
    let run = IRQ_WORK.try_with(|w| {
        !w.draining.get() && (!w.queue.borrow().is_empty() || w.panic.borrow().is_some())
    });
    if matches!(run, Ok(true)) {
        drain();
    }
}

/// Keeps a callback's panic (the first one) for the thread's outermost lock release to
/// resume, once the queued irq_work has run: a nested `signal` (inside a callback) does not
/// unwind through the callback that called it.
pub(crate) fn keep_panic(payload: Box<dyn Any + Send>) {
    let kept = IRQ_WORK.try_with(|w| {
        w.panic.borrow_mut().get_or_insert(payload);
    });
    // At thread exit the payload has nowhere to go; the panic hook has reported it.
    let _ = kept;
}

/// Runs the queue until it is empty, including work queued by the work itself; then
/// resumes the first panic kept meanwhile (unless the thread is already unwinding).
fn drain() {
    let _ = IRQ_WORK.try_with(|w| {
        w.draining.set(true);
        // Clears the flag on every exit (a job's panic is caught, but be safe).
        struct Done<'a>(&'a IrqWork);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.draining.set(false);
            }
        }
        let done = Done(w);
        loop {
            // The borrow ends with this statement: a job may queue more work.
            let job = w.queue.borrow_mut().pop_front();
            let Some(job) = job else { break };
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(job)) {
                keep_panic(payload);
            }
        }
        drop(done);
        let payload = w.panic.borrow_mut().take();
        if let Some(payload) = payload {
            if !std::thread::panicking() {
                panic::resume_unwind(payload);
            }
        }
    });
}
