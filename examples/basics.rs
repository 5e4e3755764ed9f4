//! The basics: a timeline, callbacks, errors, a blocking wait, a wait with timeout, waiting
//! for any of several fences, and `.await`.
//!
//! Run with `cargo run --example basics`.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use rcu_fence::{Errno, FenceError, Status, Timeline, wait_any_timeout};

fn main() {
    // A timeline is one fence context; its fences are ordered by seqno.
    let gpu = Timeline::new("gpu");
    let (first, second) = (gpu.fence(1), gpu.fence(2));
    assert!(second.is_later(&first));
    println!("made {first:?} and {second:?}");

    // Callbacks run once, on the signalling thread, in the order they were added.
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..3 {
        let ran = ran.clone();
        first
            .add_callback(move |f| {
                ran.fetch_add(1, Ordering::SeqCst);
                println!("callback {i}: {f:?}");
            })
            .unwrap();
    }
    // A callback taken back before the signal never runs.
    let id = first.add_callback(|_| unreachable!()).unwrap();
    assert!(first.remove_callback(id));

    // Signal from another thread; wait here.
    let producer = first.clone();
    let worker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        producer.signal().unwrap();
    });
    assert_eq!(first.wait(), Ok(()));
    worker.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    // A fence signals once; a late callback is refused and handed back uncalled.
    assert_eq!(first.signal(), Err(FenceError::AlreadySignaled));
    let refused = first.add_callback(|_| println!("late callback, run by hand"));
    match refused {
        Ok(_) => unreachable!("first has signalled"),
        Err(late) => late.into_inner()(&first),
    }
    println!("first signalled at {:?}", first.timestamp().unwrap());

    // A wait with a timeout on a fence nobody signals yet.
    assert_eq!(
        second.wait_timeout(Duration::from_millis(5)),
        Err(FenceError::TimedOut)
    );

    // An error is set while pending and reported once signalled: waits return it as
    // `Err(Failed(..))`, so `?` stops at a failed fence.
    second.set_error(Errno::ECANCELED).unwrap();
    second.signal().unwrap();
    assert_eq!(second.status(), Status::Error(Errno::ECANCELED));
    assert_eq!(second.wait(), Err(FenceError::Failed(Errno::ECANCELED)));
    println!(
        "second: {:?}, {}",
        second.status(),
        second.wait().unwrap_err()
    );

    // Waiting for whichever of several fences signals first.
    let fences = [gpu.fence(3), gpu.fence(4), gpu.fence(5)];
    let producer = fences[1].clone();
    let worker = thread::spawn(move || producer.signal().unwrap());
    assert_eq!(wait_any_timeout(&fences, Duration::from_secs(10)), Ok(1));
    worker.join().unwrap();
    println!("any of three: index 1 signalled");

    // `.await`: a fence (or a reference to one) is a future of the same result as `wait()`.
    let job = gpu.fence(6);
    let producer = job.clone();
    let worker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        producer.signal().unwrap();
    });
    let result = block_on(async { (&job).await });
    worker.join().unwrap();
    assert_eq!(result, Ok(()));
    println!("awaited {job:?}");
}

/// A minimal executor for one future: polls it, parking the thread between wake-ups. Any
/// executor (tokio, async-std, smol, futures) works the same way.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
