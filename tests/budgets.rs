//! Allocation budgets, at the kernel's layout (deterministic, unlike times, so asserted here):
//!
//! | operation | budget | the kernel |
//! | --- | --- | --- |
//! | a plain fence | one allocation of at most 64 bytes | `struct dma_fence`: 64 bytes |
//! | `add_callback` | one allocation (node and closure together) | none: the caller embeds `dma_fence_cb` |
//! | a `CallbackRegistration` | none | as above |
//! | `wait`, `wait_timeout`, `.await` on a pending fence | none | the default wait keeps its callback on the stack |
//! | an array of N, created and enabled | at most 4 allocations, at most 48 bytes per member | the array, `fences[]`, `callbacks[]` |
//! | a chain link, created and enabled | at most 2 allocations | one |
//! | `merge` of two pending fences on two contexts | at most 3 allocations | |
//! | `merge` of a chain over 40 pending points of one timeline | none (the newest point is the result; fewer than 10 over 100 merges, for the reclaimer's queue) | |
//!
//! Each measurement runs once untracked first, so that what a thread sets up once (its
//! handle of the epoch collector, the work list's and the lock recorder's buffers) is not
//! charged to the operation.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::task::Context;
use std::time::Duration;

use common::alloc::{CountingAlloc, Made, counted};
use common::{CountingWaker, every_backend, timeline};
use rcu_fence::{
    Backend, CallbackRegistration, Fence, FenceArray, FenceChain, FenceError, context_alloc, merge,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

every_backend!(
    plain_fence,
    add_callback,
    registration,
    waits,
    array_of_1024,
    chain_link,
    merge_of_two,
    merge_of_one_timeline,
);

/// Runs `op` once untracked (warm-up), then again counted.
fn budget<R>(mut op: impl FnMut() -> R) -> (R, Made) {
    drop(op());
    counted(op)
}

fn plain_fence<B: Backend>() {
    let tl = timeline::<B>();
    let (fence, made) = budget(|| tl.fence(1));
    assert_eq!(made.count, 1, "{made:?}");
    assert!(made.bytes <= 64, "{made:?}");
    drop(fence);
}

fn add_callback<B: Backend>() {
    let tl = timeline::<B>();
    let fence = tl.fence(1);
    let captured = [7u64; 4];
    let (id, made) = budget(|| {
        fence
            .add_callback(move |_| {
                std::hint::black_box(captured);
            })
            .unwrap()
    });
    assert_eq!(made.count, 1, "{made:?}");
    assert!(fence.remove_callback(id));
}

fn registration<B: Backend>() {
    let tl = timeline::<B>();
    let fence = tl.fence(1);
    let ((), made) = budget(|| {
        let mut reg = pin!(CallbackRegistration::new(|_: &rcu_fence::Fence<B>| {}));
        reg.as_mut().register(&fence).unwrap();
        assert!(reg.as_mut().unregister());
    });
    assert_eq!(made.count, 0, "{made:?}");
    let ((), made) = counted(|| {
        let mut reg = pin!(CallbackRegistration::new(|_: &rcu_fence::Fence<B>| {}));
        reg.as_mut().register(&fence).unwrap();
        fence.signal().unwrap();
        assert!(!reg.as_mut().unregister(), "it has run");
    });
    assert_eq!(made.count, 0, "{made:?}");
}

fn waits<B: Backend>() {
    let tl = timeline::<B>();
    let fence = tl.fence(1);
    let ((), made) = budget(|| {
        assert_eq!(
            fence.wait_timeout(Duration::from_micros(50)),
            Err(FenceError::TimedOut)
        );
    });
    assert_eq!(made.count, 0, "wait_timeout: {made:?}");
    let (_, waker) = CountingWaker::new();
    let ((), made) = budget(|| {
        let mut future = pin!((&fence).into_future());
        assert!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    });
    assert_eq!(made.count, 0, ".await: {made:?}");
    // A wait that blocks until another thread signals.
    let signaller = {
        let fence = fence.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            fence.signal().unwrap();
        })
    };
    // A contended fence lock parks the thread (parking_lot_core), whose first park on a
    // thread sets up its parking slot (and may grow the process's table): not the wait's.
    common::warm_up_parking();
    let (status, made) = counted(|| fence.wait());
    assert_eq!(status, Ok(()));
    assert_eq!(made.count, 0, "wait: {made:?}");
    signaller.join().unwrap();
}

fn array_of_1024<B: Backend>() {
    const N: usize = 1024;
    let tl = timeline::<B>();
    let (array, made) = budget(|| {
        let members: Vec<_> = (0..N as u64).map(|s| tl.fence(s)).collect();
        // The members were allocated before tracking; only the array is counted.
        counted(|| {
            let array = FenceArray::create(members, context_alloc(1), 1, false).unwrap();
            array.enable_sw_signaling();
            array
        })
    })
    .0;
    assert!(made.count <= 4, "{made:?}");
    assert!(
        made.bytes <= 48 * N + 256,
        "{} bytes per member: {made:?}",
        made.bytes / N
    );
    drop(array);
}

fn chain_link<B: Backend>() {
    let tl = timeline::<B>();
    let first = FenceChain::create(None, tl.fence(1), 1);
    let (link, made) = budget(|| {
        let own = tl.fence(2);
        let (link, made) = counted(|| {
            let link = FenceChain::create(Some(first.clone()), own, 2);
            link.enable_sw_signaling();
            link
        });
        (link, made)
    })
    .0;
    assert!(made.count <= 2, "{made:?}");
    drop(link);
}

fn merge_of_two<B: Backend>() {
    let (a, b) = (timeline::<B>().fence(1), timeline::<B>().fence(1));
    let (merged, made) = budget(|| merge(&[a.clone(), b.clone()]).unwrap());
    assert!(merged.as_array().is_some());
    assert!(made.count <= 3, "{made:?}");
}

/// A timeline syncobj point unwraps to every pending point below it, all of one context:
/// `merge` keeps the newest as it goes, so nothing is allocated for the many it passes.
/// Counted over 100 merges: each pins once per link, and now and then a pin collects for
/// the reclaimer, whose shared queue of ready batches may grow then (a few allocations in
/// all, whichever test's garbage fills it); the old `merge` made three per merge (its
/// list's growth past the inline capacity).
fn merge_of_one_timeline<B: Backend>() {
    let tl = timeline::<B>();
    let points: Vec<Fence<B>> = (1..=40).map(|s| tl.fence(s)).collect();
    let head = points.iter().fold(None, |prev: Option<Fence<B>>, f| {
        Some(FenceChain::create(prev, f.clone(), f.seqno()))
    });
    let head = head.expect("forty links");
    let ((), made) = budget(|| {
        for _ in 0..100 {
            let merged = merge(std::slice::from_ref(&head)).unwrap();
            assert!(merged.ptr_eq(&points[39]));
        }
    });
    assert!(made.count < 10, "{made:?}");
}
