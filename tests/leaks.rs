//! Leak checks, on both backends: every allocation made by fences, containers, callbacks,
//! futures and waits in a scenario is freed once the scenario's handles are gone (a
//! counting global allocator that tags the blocks allocated while tracking is on). Each
//! scenario runs once untracked first, so that what the library sets up once per thread or
//! per process (the work list's and irq_work's queues, lockdep classes) is not counted.

mod common;

use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::alloc::{CountingAlloc, live, tracked};
use rcu_fence::{
    Backend, Errno, Fence, FenceArray, FenceChain, FenceError, FenceOps, Status, Syncobj,
    chain_walk, context_alloc, merge, unwrap,
};

use common::{Counter, DropCounted, block_on, every_backend, settle, timeline};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

every_backend!(
    signalled_fences_and_callbacks,
    removed_and_refused_callbacks,
    dropped_with_pending_callbacks,
    arrays_all_and_any,
    nested_containers_partly_signalled,
    chains_walked_and_collected,
    syncobj_points,
    merge_and_unwrap,
    waits_and_futures,
    panicking_callbacks,
    removal_is_bounded,
    freed_past_readers_on_the_classic_schemes,
);

/// Runs `scenario` untracked, then tracked, and checks that the tracked run freed
/// everything it allocated once deferred releases are done.
/// Tracked runs one at a time: the live count is process-wide.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn leak_checked(scenario: fn()) {
    let _serial = serial();
    scenario();
    settle_all();
    // Whether the scenario parked through `parking_lot_core` depends on timing (a wait in
    // `synchronize`, a contended lock): park once now so the first park is not counted.
    common::warm_up_parking();
    let before = live();
    tracked(scenario);
    let freed = common::eventually(|| {
        settle_all();
        live() == before
    });
    assert!(
        freed,
        "live (blocks, bytes) {:?} after the scenario, {:?} before",
        live(),
        before
    );
}

fn settle_all() {
    // The epoch reclaimer frees the nodes that carried deferred releases one grace period
    // later: a few rounds free those too.
    for _ in 0..4 {
        rcu_fence::synchronize_rcu();
    }
}

fn counted<B: Backend>(f: &Fence<B>) -> Counter {
    let runs = Counter::new();
    let r = runs.clone();
    f.add_callback(move |_| r.inc()).unwrap();
    runs
}

fn signalled_fences_and_callbacks<B: Backend>() {
    leak_checked(|| {
        let tl = timeline::<B>();
        for i in 0..50 {
            let f = tl.fence(i);
            let runs: Vec<_> = (0..3).map(|_| counted(&f)).collect();
            if i % 2 == 0 {
                f.set_error(Errno::ETIME).unwrap();
            }
            f.signal().unwrap();
            assert!(runs.iter().all(|r| r.get() == 1));
        }
    });
}

fn removed_and_refused_callbacks<B: Backend>() {
    leak_checked(|| {
        let f = timeline::<B>().fence(1);
        let ids: Vec<_> = (0..20).map(|_| f.add_callback(|_| {}).unwrap()).collect();
        for id in ids {
            assert!(f.remove_callback(id));
        }
        let _ = f.wait_timeout(Duration::from_micros(10));
        f.signal().unwrap();
        assert!(f.add_callback(|_| {}).is_err());
    });
}

fn dropped_with_pending_callbacks<B: Backend>() {
    leak_checked(|| {
        let seen = Counter::new();
        let f = timeline::<B>().fence(1);
        let s = seen.clone();
        f.add_callback(move |me| {
            assert_eq!(me.error(), Some(Errno::EDEADLK));
            s.inc();
        })
        .unwrap();
        drop(f);
        rcu_fence::synchronize_rcu();
        assert_eq!(seen.get(), 1);
    });
}

fn arrays_all_and_any<B: Backend>() {
    leak_checked(|| {
        let tl = timeline::<B>();
        for any in [false, true] {
            let members: Vec<_> = (0..4).map(|s| tl.fence(s)).collect();
            let array = FenceArray::create(members.clone(), context_alloc(1), 1, any).unwrap();
            let runs = counted(&array);
            for m in &members {
                m.signal().unwrap();
            }
            assert_eq!(settle(&array), Status::Signaled);
            assert!(common::eventually(|| runs.get() == 1));
        }
        // Never enabled, dropped pending.
        let members: Vec<_> = (0..4).map(|s| tl.fence(s)).collect();
        drop(FenceArray::create(members, context_alloc(1), 1, false).unwrap());
    });
}

fn nested_containers_partly_signalled<B: Backend>() {
    leak_checked(|| {
        let tl = timeline::<B>();
        let leaves: Vec<_> = (0..6).map(|s| tl.fence(s)).collect();
        let inner_a = FenceArray::create(leaves[..3].to_vec(), context_alloc(1), 1, false).unwrap();
        let inner_b = FenceArray::create(leaves[3..].to_vec(), context_alloc(1), 1, false).unwrap();
        let outer = FenceArray::create(vec![inner_a, inner_b], context_alloc(1), 1, false).unwrap();
        let runs = counted(&outer);
        for leaf in &leaves[..4] {
            leaf.signal().unwrap();
        }
        assert!(!outer.test_signaled_flag());
        // The rest are signalled so that the enabled structure lets go of itself.
        for leaf in &leaves[4..] {
            leaf.signal().unwrap();
        }
        assert_eq!(settle(&outer), Status::Signaled);
        assert!(common::eventually(|| runs.get() == 1));
    });
}

fn chains_walked_and_collected<B: Backend>() {
    leak_checked(|| {
        let tl = timeline::<B>();
        let fences: Vec<_> = (1..=8).map(|s| tl.fence(s)).collect();
        let mut head = None;
        for (i, f) in fences.iter().enumerate() {
            head = Some(FenceChain::create(head, f.clone(), i as u64 + 1));
        }
        let head = head.unwrap();
        let runs = counted(&head);
        for f in fences.iter().step_by(2) {
            f.signal().unwrap();
        }
        assert_eq!(chain_walk(&head).count(), 4);
        for f in fences.iter().skip(1).step_by(2).rev() {
            f.signal().unwrap();
        }
        assert_eq!(settle(&head), Status::Signaled);
        assert!(common::eventually(|| runs.get() == 1));
    });
}

fn syncobj_points<B: Backend>() {
    leak_checked(|| {
        let tl = timeline::<B>();
        let obj = Syncobj::new_in(B::default());
        let fences: Vec<_> = (1..=6).map(|s| tl.fence(s)).collect();
        for (i, f) in fences.iter().enumerate() {
            obj.add_point(f.clone(), i as u64 + 1);
        }
        for f in &fences[..3] {
            f.signal().unwrap();
        }
        assert!(obj.find_fence(2).unwrap().is_signaled());
        for f in &fences[3..] {
            f.signal().unwrap();
        }
        assert_eq!(settle(&obj.find_fence(6).unwrap()), Status::Signaled);
        drop(obj.replace_fence(None));
    });
}

fn merge_and_unwrap<B: Backend>() {
    leak_checked(|| {
        let (t1, t2) = (timeline::<B>(), timeline::<B>());
        let fences: Vec<_> = (1..=4).flat_map(|s| [t1.fence(s), t2.fence(s)]).collect();
        let array = FenceArray::create(fences[..4].to_vec(), context_alloc(1), 1, false).unwrap();
        let merged = merge(&[array.clone(), fences[5].clone(), fences[7].clone()]).unwrap();
        assert!(unwrap(&merged).count() >= 1);
        fences[0].set_error(Errno::ENODATA).unwrap();
        for f in &fences {
            f.signal().unwrap();
        }
        assert!(settle(&merged).is_signaled());
        let empty = merge(&[array]).unwrap();
        assert!(empty.is_signaled());
    });
}

fn waits_and_futures<B: Backend>() {
    leak_checked(|| {
        let f = timeline::<B>().fence(1);
        assert!(f.wait_timeout(Duration::from_millis(1)).is_err());
        let g = f.clone();
        let signaller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            g.signal().unwrap();
        });
        assert_eq!(block_on(std::future::IntoFuture::into_future(&f)), Ok(()));
        signaller.join().unwrap();
        // A future dropped before the signal takes its callback back.
        let h = timeline::<B>().fence(2);
        let mut fut = Box::pin(std::future::IntoFuture::into_future(&h));
        let waker = std::task::Waker::noop();
        let _ = std::future::Future::poll(fut.as_mut(), &mut std::task::Context::from_waker(waker));
        drop(fut);
        h.signal().unwrap();
    });
}

fn panicking_callbacks<B: Backend>() {
    // The default hook prints the message (and a backtrace under RUST_BACKTRACE), which
    // fills process-wide caches on first use: keep the hook quiet for the scenario.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    leak_checked(|| {
        let f = timeline::<B>().fence(1);
        f.add_callback(|_| panic!("leak check")).unwrap();
        let runs = counted(&f);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.signal()));
        assert!(result.is_err());
        assert_eq!(runs.get(), 1);
    });
    std::panic::set_hook(hook);
}

/// Removal unlinks (the `Rcu` list used to keep removed nodes linked until the signal):
/// after a million add/remove pairs, short timed-out waits and futures polled then
/// dropped, all on one pending fence, the memory it holds is what its one installed
/// callback holds. (Skipped under valgrind for its length; the short tests cover its paths.)
fn removal_is_bounded<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let kept = counted(&f);
    let _serial = serial();
    let (_, waker) = common::CountingWaker::new();
    let (before, after) = tracked(|| {
        let before = live();
        for _ in 0..1_000_000 {
            let id = f.add_callback(|_| unreachable!("removed")).unwrap();
            assert!(f.remove_callback(id));
        }
        for _ in 0..1_000 {
            assert_eq!(
                f.wait_timeout(Duration::from_nanos(1)),
                Err(FenceError::TimedOut)
            );
        }
        let mut cx = std::task::Context::from_waker(&waker);
        for _ in 0..1_000 {
            let mut future = Box::pin((&f).into_future());
            assert!(future.as_mut().poll(&mut cx).is_pending());
        }
        (before, live())
    });
    assert_eq!(
        after, before,
        "live (blocks, bytes) grew on a pending fence"
    );
    f.signal().unwrap();
    assert_eq!(kept.get(), 1);
}

/// The final put drops a fence's contents at once on every backend. The classic schemes
/// free its memory one grace period later, as the kernel's `dma_fence_free` (`kfree_rcu`);
/// `Rcu` frees it with the last reference (its readers reach fences only through a slot's
/// own reference or a weak one, which upgrades only while a reference is held).
fn freed_past_readers_on_the_classic_schemes<B: Backend>() {
    let _serial = serial();
    let tl = timeline::<B>();
    let dropped = Counter::new();
    let ops: Arc<dyn FenceOps<B>> = Arc::new(DropCounted(dropped.clone()));
    // This thread's deferred work is all done, so the put below stays in its local batch.
    settle_all();
    let before = live();
    let fence = tracked(|| tl.fence_with_ops(1, ops));
    fence.signal().unwrap();
    assert_eq!(live().0, before.0 + 1, "the fence is one block");
    drop(fence);
    assert_eq!(dropped.get(), 1, "the ops are dropped at the final put");
    let held = live().0 - before.0;
    match B::NAME {
        "rcu" => assert_eq!(held, 0, "Rcu frees at the final put"),
        _ => assert_eq!(held, 1, "the classic schemes free after a grace period"),
    }
    settle_all();
    assert_eq!(live(), before);
}
