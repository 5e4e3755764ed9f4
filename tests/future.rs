//! `.await` on fences, on both backends.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use rcu_fence::{Backend, Errno, FenceError, FenceFuture, Locked, Rcu};

use common::{Counter, CountingWaker, block_on, timeline};

common::every_backend!(
    await_signalled_from_another_thread,
    await_by_reference_and_by_value,
    await_already_signalled_is_ready_at_once,
    concurrent_awaiters_are_each_woken_exactly_once,
    repoll_with_a_new_waker_wakes_the_new_one,
    dropped_future_takes_its_callback_back,
    future_and_callbacks_coexist,
    future_dropped_inside_its_own_fences_callback,
);

fn await_signalled_from_another_thread<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let g = f.clone();
    let signaller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        g.set_error(Errno::ETIME).unwrap();
        g.signal().unwrap();
    });
    assert_eq!(
        block_on(async { f.await }),
        Err(FenceError::Failed(Errno::ETIME))
    );
    signaller.join().unwrap();
}

fn await_by_reference_and_by_value<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let g = f.clone();
    let signaller = thread::spawn(move || g.signal().unwrap());
    let status = block_on(async {
        let first = (&f).await;
        let second = f.clone().await;
        (first, second)
    });
    assert_eq!(status, (Ok(()), Ok(())));
    signaller.join().unwrap();
}

fn await_already_signalled_is_ready_at_once<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.signal().unwrap();
    let (counter, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(f.into_future());
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(counter.wakes(), 0);
}

/// 16 futures on one fence, polled on 4 threads: each is woken exactly once by the signal
/// and then resolves.
fn concurrent_awaiters_are_each_woken_exactly_once<B: Backend>() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 4;
    let f = timeline::<B>().fence(1);
    let registered = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        let pollers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (f, registered) = (&f, &registered);
                s.spawn(move || {
                    let mut futures: Vec<_> =
                        (0..PER_THREAD).map(|_| Box::pin(f.into_future())).collect();
                    let wakers: Vec<_> = (0..PER_THREAD).map(|_| CountingWaker::new()).collect();
                    for (fut, (_, waker)) in futures.iter_mut().zip(&wakers) {
                        assert_eq!(
                            fut.as_mut().poll(&mut Context::from_waker(waker)),
                            Poll::Pending
                        );
                    }
                    registered.wait();
                    // Every waker unparks this thread; wait until each has been woken.
                    while wakers.iter().any(|(c, _)| c.wakes() == 0) {
                        thread::park();
                    }
                    for (fut, (_, waker)) in futures.iter_mut().zip(&wakers) {
                        let status = fut.as_mut().poll(&mut Context::from_waker(waker));
                        assert_eq!(status, Poll::Ready(Ok(())));
                    }
                    wakers.iter().map(|(c, _)| c.wakes()).collect::<Vec<_>>()
                })
            })
            .collect();
        registered.wait();
        f.signal().unwrap();
        for p in pollers {
            assert_eq!(
                p.join().unwrap(),
                vec![1; PER_THREAD],
                "each future woken exactly once"
            );
        }
    });
}

fn repoll_with_a_new_waker_wakes_the_new_one<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let mut fut = pin!((&f).into_future());
    let (old, old_waker) = CountingWaker::new();
    let (new, new_waker) = CountingWaker::new();
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&old_waker)),
        Poll::Pending
    );
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&new_waker)),
        Poll::Pending
    );
    f.signal().unwrap();
    assert_eq!((old.wakes(), new.wakes()), (0, 1));
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&new_waker)),
        Poll::Ready(Ok(()))
    );
}

/// A future dropped before the signal takes its callback back: signalling later wakes
/// nobody (a left-over callback would wake the waker it registered).
fn dropped_future_takes_its_callback_back<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let (counter, waker) = CountingWaker::new();
    {
        let mut fut = Box::pin((&f).into_future());
        assert_eq!(
            fut.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        );
        drop(fut);
    }
    f.signal().unwrap();
    assert_eq!(counter.wakes(), 0, "the dropped future's callback ran");

    // Same, with the fence dropped instead of signalled: no -EDEADLK run of a left-over callback.
    let g = timeline::<B>().fence(1);
    let (counter, waker) = CountingWaker::new();
    let mut fut = Box::pin(g.clone().into_future());
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Pending
    );
    drop(fut);
    drop(g);
    assert_eq!(counter.wakes(), 0);
}

fn future_and_callbacks_coexist<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let log = common::Log::new();
    let l = log.clone();
    f.add_callback(move |_| l.push("cb")).unwrap();
    let (counter, waker) = CountingWaker::new();
    let mut fut = pin!((&f).into_future());
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Pending
    );
    f.signal().unwrap();
    assert_eq!(log.take(), ["cb"]);
    assert_eq!(counter.wakes(), 1);
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(()))
    );
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_type<T: Send + 'static>() {}
    assert_send_type::<FenceFuture<Rcu>>();
    assert_send_type::<FenceFuture<Locked>>();
    let f = timeline::<Rcu>().fence(1);
    let g = timeline::<Locked>().fence(1);
    let task = async move { (f.await, g.await) };
    assert_send(&task);
    // And such a task can actually move to another thread and complete there.
    let (f, g) = (timeline::<Rcu>().fence(1), timeline::<Locked>().fence(1));
    let (f2, g2) = (f.clone(), g.clone());
    let task = async move { ((&f2).await, (&g2).await) };
    f.signal().unwrap();
    g.signal().unwrap();
    let done = thread::spawn(move || block_on(task)).join().unwrap();
    assert_eq!(done, (Ok(()), Ok(())));
}

/// Many futures awaited by a handful of threads, each thread blocking on its own: all
/// resolve to the status set before the signal.
#[test]
fn block_on_many_threads() {
    let f = Arc::new(timeline::<Rcu>().fence(1));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let f = f.clone();
            thread::spawn(move || block_on(async { (&*f).await }))
        })
        .collect();
    thread::sleep(Duration::from_millis(10));
    f.set_error(Errno::ECANCELED).unwrap();
    f.signal().unwrap();
    for h in handles {
        assert_eq!(h.join().unwrap(), Err(FenceError::Failed(Errno::ECANCELED)));
    }
}

/// Defect (`Locked`): an executor shutting down while a task waits drops the task, and
/// with it the fence's future, from inside the fence's callbacks (the waker is the task).
/// The future's drop took the fence's lock to remove its callback, which the signaller
/// holds: a hang, or lockdep's panic out of `signal()`. Once the fence has signalled there
/// is nothing to take back.
fn future_dropped_inside_its_own_fences_callback<B: Backend>() {
    let ran = common::watchdog("drop a FenceFuture in its fence's callback", || {
        let fence = timeline::<B>().fence(1);
        let mut future = Box::pin((&fence).into_future());
        let (_, waker) = CountingWaker::new();
        let mut cx = Context::from_waker(&waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        let ran = Counter::new();
        let r = ran.clone();
        fence
            .add_callback(move |_| {
                drop(future);
                r.inc();
            })
            .unwrap();
        fence.signal().unwrap();
        ran.get()
    });
    assert_eq!(ran, 1);
}
