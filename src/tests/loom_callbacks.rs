//! Loom models of the `Rcu` backend's callback protocol (`backend::rcu::callbacks`) and of
//! the future's registration (`future`).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p rcu-fence --release --lib loom_`.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use super::loom_support::fail_on_thread;
use crate::{Errno, Fence, FenceError, Rcu, Status, Timeline};

fn fence() -> Fence<Rcu> {
    Timeline::new("loom").fence(1)
}

/// A plain (non-atomic) cell written by a callback: loom reports a data race if a reader
/// is not ordered after the write.
struct Effect(UnsafeCell<usize>);

// SAFETY: accesses are checked by loom's cell tracking; the models only read after the
// protocol claims the write happened before.
unsafe impl Sync for Effect {}

impl Effect {
    fn new() -> Arc<Effect> {
        Arc::new(Effect(UnsafeCell::new(0)))
    }
    fn write(&self) {
        // SAFETY: loom checks the access.
        self.0.with_mut(|p| unsafe { *p += 1 });
    }
    fn read(&self) -> usize {
        // SAFETY: loom checks the access.
        self.0.with(|p| unsafe { *p })
    }
}

/// add vs signal: the callback runs (exactly once) iff `add_callback` returned `Ok`.
#[test]
fn loom_add_vs_signal() {
    loom::model(|| {
        let f = fence();
        let ran = Arc::new(AtomicUsize::new(0));
        let (g, r) = (f.clone(), ran.clone());
        let adder = thread::spawn(move || {
            g.add_callback(move |me| {
                assert!(me.test_signaled_flag());
                r.fetch_add(1, Ordering::SeqCst);
            })
        });
        f.signal().unwrap();
        let added = adder.join().unwrap();
        match added {
            Ok(_) => assert_eq!(ran.load(Ordering::SeqCst), 1),
            Err(e) => {
                assert_eq!(e, FenceError::AlreadySignaled);
                assert_eq!(ran.load(Ordering::SeqCst), 0);
            }
        }
    });
}

/// Two adders vs a signaller: each callback runs iff its add returned `Ok`, in FIFO order
/// with respect to the adds that succeeded.
#[test]
fn loom_two_adders_vs_signal() {
    loom::model(|| {
        let f = fence();
        let ran = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let adders: Vec<_> = (0..2)
            .map(|i| {
                let (g, r) = (f.clone(), ran.clone());
                thread::spawn(move || {
                    g.add_callback(move |_| {
                        r[i].fetch_add(1, Ordering::SeqCst);
                    })
                    .is_ok()
                })
            })
            .collect();
        f.signal().unwrap();
        for (i, adder) in adders.into_iter().enumerate() {
            let added = adder.join().unwrap();
            assert_eq!(ran[i].load(Ordering::SeqCst), added as usize);
        }
    });
}

/// remove vs signal: `true` ⇒ the callback never runs; `false` ⇒ it has run to completion
/// and its (plain, non-atomic) effects are visible to the remover.
#[test]
fn loom_remove_vs_signal() {
    loom::model(|| {
        let f = fence();
        let effect = Effect::new();
        let done = Arc::new(AtomicBool::new(false));
        let (e, d) = (effect.clone(), done.clone());
        let id = f
            .add_callback(move |_| {
                e.write();
                // The callback's last action.
                d.store(true, Ordering::Relaxed);
            })
            .unwrap();
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        let removed = f.remove_callback(id);
        if !removed {
            // Ordered after the whole callback by the protocol, not by the join.
            assert!(done.load(Ordering::Relaxed));
            assert_eq!(effect.read(), 1);
        }
        signaller.join().unwrap();
        assert_eq!(effect.read(), usize::from(!removed));
        assert_eq!(done.load(Ordering::Relaxed), !removed);
    });
}

/// Two signallers: exactly one `Ok`; every callback runs exactly once, after the flag.
#[test]
fn loom_two_signallers() {
    loom::model(|| {
        let f = fence();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let r = ran.clone();
            f.add_callback(move |me| {
                assert!(me.test_signaled_flag());
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let g = f.clone();
        let other = thread::spawn(move || g.signal().is_ok());
        let mine = f.signal().is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one signal succeeds");
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    });
}

/// set_error vs signal: the error is reported iff `set_error` returned `Ok`.
#[test]
fn loom_set_error_vs_signal() {
    loom::model(|| {
        let f = fence();
        let g = f.clone();
        let setter = thread::spawn(move || g.set_error(Errno::ETIME).is_ok());
        f.signal().unwrap();
        let set = setter.join().unwrap();
        let expected = if set {
            Status::Error(Errno::ETIME)
        } else {
            Status::Signaled
        };
        assert_eq!(f.status(), expected);
    });
}

/// A reader that sees the fence signalled also sees its timestamp and error.
#[test]
fn loom_reader_vs_signal() {
    loom::model(|| {
        let f = fence();
        f.set_error(Errno::ENODATA).unwrap();
        let g = f.clone();
        let reader = thread::spawn(move || {
            if g.test_signaled_flag() {
                assert!(g.timestamp().is_some());
                assert_eq!(g.error(), Some(Errno::ENODATA));
                assert_eq!(g.status(), Status::Error(Errno::ENODATA));
            }
        });
        f.signal().unwrap();
        reader.join().unwrap();
        assert!(f.timestamp().is_some());
    });
}

/// `.await` vs signal: no lost wake-up (loom reports a deadlock if the waiter is never
/// woken) and the future resolves to the final status.
#[test]
fn loom_future_vs_signal() {
    loom::model(|| {
        let f = fence();
        let signaller = fail_on_thread(f.clone(), Errno::ECANCELED);
        let status = loom::future::block_on(std::future::IntoFuture::into_future(&f));
        assert_eq!(status, Err(FenceError::Failed(Errno::ECANCELED)));
        signaller.join().unwrap();
    });
}

/// A future dropped while the signal races: the callback is either taken back or has run
/// to completion by the time the drop returns; nothing runs twice, nothing leaks.
#[test]
fn loom_future_drop_vs_signal() {
    use std::future::{Future, IntoFuture};
    use std::task::{Context, Poll};

    loom::model(|| {
        let f = fence();
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        let mut fut = Box::pin(f.clone().into_future());
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(status) => assert_eq!(status, Ok(())),
            Poll::Pending => {}
        }
        drop(fut);
        signaller.join().unwrap();
        assert!(f.test_signaled_flag());
    });
}

fn futures_noop_waker() -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable, Waker};
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |_| RawWaker::new(std::ptr::null(), &VTABLE),
        |_| {},
        |_| {},
        |_| {},
    );
    // SAFETY: every vtable function ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// A blocking `wait` vs signal: no lost wake-up (loom reports a deadlock if the waiter
/// parks for good), and the status is final.
#[test]
fn loom_wait_vs_signal() {
    loom::model(|| {
        let f = fence();
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        assert_eq!(f.wait(), Ok(()));
        signaller.join().unwrap();
    });
}

/// The final drop of a pending fence (which runs its queued callbacks with `-EDEADLK`)
/// racing a remover on another thread that holds the other handle: `true` ⇒ the callback
/// never runs; `false` ⇒ it ran, saw `-EDEADLK`, and its effects are visible.
#[test]
fn loom_final_drop_vs_remove() {
    loom::model(|| {
        let f = fence();
        let effect = Effect::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let (e, s) = (effect.clone(), seen.clone());
        let id = f
            .add_callback(move |me| {
                e.write();
                if me.status() == Status::Error(Errno::EDEADLK) {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        let g = f.clone();
        let remover = thread::spawn(move || {
            let removed = g.remove_callback(id);
            drop(g);
            removed
        });
        drop(f);
        let removed = remover.join().unwrap();
        assert_eq!(effect.read(), usize::from(!removed));
        assert_eq!(seen.load(Ordering::SeqCst), usize::from(!removed));
    });
}
