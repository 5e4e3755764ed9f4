//! A panic raised by one RCU job and caught while a `Locked` fence's final put retires its
//! memory (the put may run the thread's ready batches) belongs to that job, not to the put.
//! It must not unwind out of a callback node's release under a fence lock, which would leave
//! the rest of the signalling fence's callbacks unrun, nor out of a drop made while the
//! thread unwinds, which would abort. It surfaces from the outermost lock release instead,
//! after every callback has run, as a callback's panic does.
//!
//! One test, in a binary of its own: it needs a batch of this thread's to become ready
//! without being run, which a reader thread's pins bring about when no other test pins.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcu_fence::{FenceArray, Locked, Timeline, context_alloc};

/// What the unrelated job panics with.
const UNRELATED: &str = "an unrelated deferred job";

/// Jobs per batch of the epoch reclaimer: the 64th deferred job hands the batch over and
/// runs this thread's ready batches.
const BATCH: usize = 64;

/// Leaves a ready batch of this thread's, holding a job that panics, in the reclaimer, and
/// 63 jobs in this thread's local batch: the next job deferred on this thread runs it.
fn arm_unrelated_panic() {
    rcu::synchronize::<rcu::Epoch>();
    rcu::defer::<rcu::Epoch>(|| std::panic::panic_any(UNRELATED));
    for _ in 1..BATCH {
        rcu::defer::<rcu::Epoch>(|| {});
    }
    // Crossbeam collects (and so moves elapsed batches to the ready queue) every 128th pin;
    // a thread that only pins never runs them.
    std::thread::spawn(|| {
        for _ in 0..200_000 {
            drop(rcu::pin::<rcu::Epoch>());
        }
    })
    .join()
    .unwrap();
    for _ in 1..BATCH {
        rcu::defer::<rcu::Epoch>(|| {});
    }
}

fn is_unrelated(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.downcast_ref::<&str>() == Some(&UNRELATED)
}

#[test]
fn another_jobs_panic_stays_out_of_a_final_put() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_unrelated(info.payload()) {
            previous(info);
        }
    }));

    // 1. The final put of an array happens in its callback node's release, under the lock
    //    of the member that signals (`f2`); a callback of `f2` is linked after that node.
    let tl = Timeline::new_in("gpu", Locked);
    let (f1, f2) = (tl.fence(1), tl.fence(2));
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = |ran: &Arc<AtomicUsize>| {
        let ran = ran.clone();
        move |_: &rcu_fence::Fence<Locked>| {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };
    f2.add_callback(counter(&ran)).unwrap();
    let array =
        FenceArray::create(vec![f1.clone(), f2.clone()], context_alloc(1), 1, true).unwrap();
    array.enable_sw_signaling();
    f2.add_callback(counter(&ran)).unwrap();
    drop(array);
    f1.signal().unwrap(); // completes the array (signal on any)
    arm_unrelated_panic();
    let signalled = catch_unwind(AssertUnwindSafe(|| f2.signal()));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "every callback of f2 ran once"
    );
    match signalled {
        Err(payload) => assert!(is_unrelated(&*payload), "only the unrelated panic"),
        Ok(_) => panic!("the unrelated job did not run: the setup did not take"),
    }
    assert!(f2.is_signaled());
    assert_eq!(rcu_fence::lockdep::held_locks(), 0);

    // 2. A final put while the thread unwinds: the unrelated panic is dropped (the hook has
    //    reported it), not raised inside the unwinding, which would abort.
    let fence = tl.fence(3);
    arm_unrelated_panic();
    let unwound = catch_unwind(AssertUnwindSafe(move || {
        let _dropped_while_unwinding = fence;
        std::panic::panic_any("the user's own panic");
    }));
    let payload = unwound.expect_err("the user's panic unwinds");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the user's own panic")
    );
    rcu::synchronize::<rcu::Epoch>();
}
