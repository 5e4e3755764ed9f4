//! Loom models of `.await` on a fence (`future`): two awaiters of one fence, and a future
//! re-polled with a new waker while the signal races. Each model fails as a deadlock if a
//! wake-up is lost.
//!
//! Run with `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-fence
//! --release --lib loom_`.

use std::future::{Future, IntoFuture};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use loom::thread;

use super::loom_support::fail_on_thread;
use crate::{Errno, FenceError, Timeline};

fn noop_waker() -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |_| RawWaker::new(std::ptr::null(), &VTABLE),
        |_| {},
        |_| {},
        |_| {},
    );
    // SAFETY: every vtable function ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Two futures on two threads await one fence that a third signals with an error: both
/// resolve to that status (each future has its own waiter, so neither wake is lost).
/// Three threads: checked with a preemption bound of 1 to keep the run short.
#[test]
fn loom_two_awaiters_vs_signal() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(1, |b| b.min(1)));
    builder.check(|| {
        let f = Timeline::new("loom").fence(1);
        let g = f.clone();
        let awaiter = thread::spawn(move || loom::future::block_on(g.into_future()));
        let signaller = fail_on_thread(f.clone(), Errno::ETIME);
        let mine = loom::future::block_on((&f).into_future());
        let expect = Err(FenceError::Failed(Errno::ETIME));
        assert_eq!(mine, expect);
        assert_eq!(awaiter.join().unwrap(), expect);
        signaller.join().unwrap();
    });
}

/// A future first polled with one waker and then awaited with another (a task moved to
/// another executor) while the signal races: the second waker is the one woken, and the
/// future resolves.
#[test]
fn loom_repoll_new_waker_vs_signal() {
    loom::model(|| {
        let f = Timeline::new("loom").fence(1);
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        let mut fut = Box::pin(f.clone().into_future());
        let first = noop_waker();
        let status = match fut.as_mut().poll(&mut Context::from_waker(&first)) {
            Poll::Ready(status) => status,
            Poll::Pending => loom::future::block_on(fut),
        };
        assert_eq!(status, Ok(()));
        signaller.join().unwrap();
    });
}
