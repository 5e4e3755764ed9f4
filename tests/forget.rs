//! Forget-safety: safe code may `mem::forget` any value. For every public type whose `Drop`
//! restores something (a future's or fd's callback, a producer's promise, a callback id's
//! node, an iterator's references), forgetting it must at worst leak: everything else keeps
//! working and is dropped cleanly afterwards. Run under valgrind in CI (`.ci/valgrind`).
//!
//! The values are "forgotten" with [`forget_reachably`], which leaks them like
//! `mem::forget` but keeps them reachable, so that memcheck's leak check reports only real
//! leaks (a deliberate forget is not one).

mod common;

use std::future::{Future, IntoFuture};
use std::sync::Mutex;
use std::task::Context;
use std::time::Duration;

use rcu_fence::{
    Backend, Errno, FenceArray, FenceChain, Status, Syncobj, chain_walk, context_alloc, unwrap,
};

use common::{Counter, CountingWaker, every_backend, timeline};

every_backend!(
    forgotten_future_leaves_fence_usable,
    forgotten_callback_id_leaves_fence_usable,
    forgotten_driver_fence_leaves_fence_pending,
    forgotten_iterators_leave_containers_usable,
    forgotten_fence_handles_leave_others_usable,
    forgotten_syncobj_and_timeline,
);

/// Leaks `value` (its `Drop` never runs, as with `mem::forget`) but keeps it reachable.
fn forget_reachably<T: Send + 'static>(value: T) {
    static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let leaked: &'static mut T = Box::leak(Box::new(value));
    KEPT.lock().unwrap().push(leaked as *mut T as usize);
}

/// A future registered on a pending fence, then forgotten: its callback stays installed
/// and runs at the signal (waking the forgotten task's waker once); the fence signals,
/// reports and drops normally.
fn forgotten_future_leaves_fence_usable<B: Backend>() {
    let fence = timeline::<B>().fence(1);
    let (wakes, waker) = CountingWaker::new();
    let mut future = Box::pin((&fence).into_future());
    assert!(
        future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    forget_reachably(future);
    let ran = Counter::new();
    let r = ran.clone();
    fence.add_callback(move |_| r.inc()).unwrap();
    fence.signal().unwrap();
    assert_eq!(ran.get(), 1);
    assert_eq!(wakes.wakes(), 1);
    assert_eq!(fence.wait(), Ok(()));
    drop(fence);
    rcu_fence::synchronize_rcu();
}

/// A callback id forgotten before the signal, and one forgotten after: the callbacks run
/// exactly once, other ids still remove their callbacks.
fn forgotten_callback_id_leaves_fence_usable<B: Backend>() {
    let fence = timeline::<B>().fence(1);
    let ran = Counter::new();
    let r = ran.clone();
    forget_reachably(fence.add_callback(move |_| r.inc()).unwrap());
    let removed = fence.add_callback(|_| unreachable!("removed")).unwrap();
    let r = ran.clone();
    let kept = fence.add_callback(move |_| r.inc()).unwrap();
    assert!(fence.remove_callback(removed));
    fence.signal().unwrap();
    assert_eq!(ran.get(), 2);
    forget_reachably(kept);
    drop(fence);
    rcu_fence::synchronize_rcu();
}

/// A forgotten `DriverFence` never cancels (its drop never runs): the fence stays pending,
/// and a plain handle still completes it.
fn forgotten_driver_fence_leaves_fence_pending<B: Backend>() {
    let job = timeline::<B>().driver_fence(1);
    let done = job.fence();
    forget_reachably(job);
    assert_eq!(
        done.wait_timeout(Duration::ZERO),
        Err(rcu_fence::FenceError::TimedOut)
    );
    done.set_error(Errno::ECANCELED).unwrap();
    done.signal().unwrap();
    assert_eq!(done.status(), Status::Error(Errno::ECANCELED));
}

/// `unwrap` and `chain_walk` iterators forgotten mid-way: they hold references only; the
/// containers complete, walk and drop normally.
fn forgotten_iterators_leave_containers_usable<B: Backend>() {
    let tl = timeline::<B>();
    let leaves: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let array = FenceArray::create(leaves.clone(), context_alloc(1), 1, false).unwrap();
    let p1 = FenceChain::create(None, array.clone(), 1);
    let p2 = FenceChain::create(Some(p1), tl.fence(4), 2);
    let mut it = unwrap(&p2);
    assert!(it.next().is_some());
    forget_reachably(it);
    let mut walk = chain_walk(&p2);
    assert!(walk.next().is_some());
    forget_reachably(walk);
    p2.enable_sw_signaling();
    for leaf in &leaves {
        leaf.signal().unwrap();
    }
    p2.as_chain().unwrap().fence().unwrap().signal().unwrap();
    assert_eq!(common::settle(&p2), Status::Signaled);
    // Rcu's and LockedRcu's signalled link has released its own fence; Locked's keeps it.
    let expected = usize::from(!common::releases_members::<B>());
    assert_eq!(unwrap(&p2).count(), expected);
    drop((leaves, array, p2));
    rcu_fence::synchronize_rcu();
}

/// Forgotten handles of fences and containers (pending or signalled) leak what they
/// hold and nothing else: the other handles work, enabled containers still complete.
fn forgotten_fence_handles_leave_others_usable<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let array = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
    array.enable_sw_signaling();
    forget_reachably(array.clone());
    forget_reachably(a.clone());
    a.signal().unwrap();
    b.signal().unwrap();
    assert_eq!(common::settle(&array), Status::Signaled);
    drop((a, b, array));
    rcu_fence::synchronize_rcu();
}

/// A forgotten `Syncobj` and `Timeline` hold references only.
fn forgotten_syncobj_and_timeline<B: Backend>() {
    let tl = timeline::<B>();
    let obj: Syncobj<B> = Syncobj::new_in(B::default());
    let point = tl.fence(1);
    obj.add_point(point.clone(), 1);
    let found = obj.find_fence(1).unwrap();
    forget_reachably(obj);
    forget_reachably(tl.clone());
    point.signal().unwrap();
    assert_eq!(common::settle(&found), Status::Signaled);
    let later = tl.fence(2);
    later.signal().unwrap();
    drop((tl, point, found, later));
    rcu_fence::synchronize_rcu();
}
