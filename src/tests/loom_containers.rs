//! Loom models of the containers on the `Rcu` backend: the array's pending count with
//! concurrent member signallers (all and any mode), the chain walk's collection racing a
//! signaller that walks too, an array member released by its callback while another
//! thread iterates the members, a reader's weak reference racing a member's last release,
//! and enabling's unguarded member reads racing the release.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p rcu-fence --release
//! --lib loom_`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::loom_support::{fail_on_thread, tracked, tracked_pair_array};

use crate::{
    Errno, Fence, FenceArray, FenceChain, Rcu, Status, Timeline, chain_walk, context_alloc,
};

fn counting_callback(f: &Fence<Rcu>) -> Arc<AtomicUsize> {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    f.add_callback(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    runs
}

/// All mode, two members signalled on two threads (one with an error): the array signals
/// exactly once, after both, with that error; both members are released.
#[test]
fn loom_array_two_signallers() {
    loom::model(|| {
        let (freed, a, b, array) = tracked_pair_array();
        let runs = counting_callback(&array);
        let ta = fail_on_thread(a, Errno::ETIME);
        let tb = thread::spawn(move || b.signal().unwrap());
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(array.status(), Status::Error(Errno::ETIME));
        assert_eq!(array.as_array().unwrap().fences().count(), 0);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2, "each member released once");
        drop(array);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}

/// Both members fail: the array reports one of the two errors, once.
#[test]
fn loom_array_two_errors() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (a, b) = (tl.fence(1), tl.fence(2));
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        let runs = counting_callback(&array);
        let ta = fail_on_thread(a, Errno::ETIME);
        b.set_error(Errno::ECANCELED).unwrap();
        b.signal().unwrap();
        ta.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let status = array.status();
        assert!(
            status == Status::Error(Errno::ETIME) || status == Status::Error(Errno::ECANCELED),
            "{status:?}"
        );
    });
}

/// Any mode, two members signalled on two threads: the array signals exactly once.
#[test]
fn loom_array_any_two_signallers() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (a, b) = (tl.fence(1), tl.fence(2));
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, true).unwrap();
        let runs = counting_callback(&array);
        let ta = thread::spawn(move || a.signal().unwrap());
        let tb = thread::spawn(move || b.signal().unwrap());
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(array.status(), Status::Signaled);
    });
}

/// Enabling races the members' signals: whoever finishes a member, the array signals
/// exactly once.
#[test]
fn loom_array_enable_vs_signal() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (a, b) = (tl.fence(1), tl.fence(2));
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        let ta = thread::spawn(move || {
            a.signal().unwrap();
            b.signal().unwrap();
        });
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let added = array
            .add_callback(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .is_ok();
        ta.join().unwrap();
        assert!(array.is_signaled());
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(added));
    });
}

/// Enabling reads each member from its slot without a read-side section (nothing can
/// release a member before its callback is installed) while another thread signals the
/// members and drops its handles, so that each member's last reference is the slot's,
/// released by the array's callback. Every member is read alive, the array signals exactly
/// once, and each member is freed exactly once.
#[test]
fn loom_array_enable_reads_members_unguarded_vs_release() {
    loom::model(|| {
        let (freed, a, b, array) = tracked_pair_array();
        let signaller = thread::spawn(move || {
            a.signal().unwrap();
            drop(a);
            b.signal().unwrap();
            drop(b);
            // Frees what the array's callbacks released, unless a reader is in a section.
            crate::synchronize_rcu();
        });
        array.enable_sw_signaling();
        signaller.join().unwrap();
        assert!(array.is_signaled());
        drop(array);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2, "each member freed once");
    });
}

/// The chain walk's collection racing another walker after a signal: no panic, every
/// yielded item is a live link in order, and each collected fence is released once.
#[test]
fn loom_chain_gc_vs_walker() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let fences: Vec<_> = (1..=3).map(|s| tracked(&tl, s, &freed)).collect();
        let mut head: Option<Fence<Rcu>> = None;
        for (i, f) in fences.iter().enumerate() {
            head = Some(FenceChain::create(head, f.clone(), i as u64 + 1));
        }
        let head = head.unwrap();
        let middle = fences[1].clone();
        let h = head.clone();
        let walker = thread::spawn(move || {
            let seqnos: Vec<u64> = chain_walk(&h).map(|l| l.seqno()).collect();
            assert!(seqnos == [3, 2, 1] || seqnos == [3, 1], "{seqnos:?}");
        });
        middle.signal().unwrap();
        drop(middle);
        let seqnos: Vec<u64> = chain_walk(&head).map(|l| l.seqno()).collect();
        assert_eq!(seqnos, [3, 1]);
        walker.join().unwrap();
        assert_eq!(
            chain_walk(&head).map(|l| l.seqno()).collect::<Vec<_>>(),
            [3, 1]
        );
        drop(fences);
        drop(head);
        crate::synchronize_rcu();
        assert_eq!(
            freed.load(Ordering::SeqCst),
            3,
            "every fence released exactly once"
        );
    });
}

/// A reader takes a member out of the array while the member signals (the array drops its
/// reference at once) and its last other handle is dropped: the reader gets the member alive
/// (its driver ops not yet dropped, and dropped once the reader lets go) or nothing, never a
/// member whose count had fallen to zero; the member is dropped exactly once, on whichever
/// thread let go last, and its memory waits only for the reader.
#[test]
fn loom_array_weak_member_vs_last_release() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let a = tracked(&tl, 1, &freed);
        let array = FenceArray::create(vec![a.clone()], context_alloc(1), 1, false).unwrap();
        array.enable_sw_signaling();
        let reader_array = array.clone();
        let reader_freed = freed.clone();
        let reader = thread::spawn(move || {
            if let Some(member) = reader_array.as_array().unwrap().fence(0) {
                assert_eq!(
                    reader_freed.load(Ordering::SeqCst),
                    0,
                    "a dropped member revived"
                );
                assert_eq!(member.driver_name(), "loom");
            }
        });
        a.signal().unwrap();
        drop(a);
        reader.join().unwrap();
        assert_eq!(
            freed.load(Ordering::SeqCst),
            1,
            "dropped once, with its last handle"
        );
        assert!(array.as_array().unwrap().fence(0).is_none());
        drop(array);
        crate::synchronize_rcu();
    });
}

/// An array member released by its callback while another thread iterates the members:
/// the reader sees each member at most once, each valid, and the released one goes once.
#[test]
fn loom_slot_release_vs_reader() {
    loom::model(|| {
        let (freed, a, b, array) = tracked_pair_array();
        array.enable_sw_signaling();
        let reader_array = array.clone();
        let reader = thread::spawn(move || {
            let seen: Vec<u64> = reader_array
                .as_array()
                .unwrap()
                .fences()
                .map(|f| f.seqno())
                .collect();
            assert!(seen == [1, 2] || seen == [2], "{seen:?}");
        });
        a.signal().unwrap();
        drop(a);
        reader.join().unwrap();
        let held: Vec<u64> = array
            .as_array()
            .unwrap()
            .fences()
            .map(|f| f.seqno())
            .collect();
        assert_eq!(held, [2]);
        crate::synchronize_rcu();
        assert_eq!(
            freed.load(Ordering::SeqCst),
            1,
            "the released member went once"
        );
        assert!(!array.test_signaled_flag());
        b.signal().unwrap();
        assert!(array.test_signaled_flag());
        drop((b, array));
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}

/// The count-based poll of an enabled array, from a third thread while the members signal
/// (one with an error) on two others: a poll that answers "signalled" has already applied
/// the failed member's error, the array signals exactly once, and always with that error.
/// Three threads: finishes at preemption bound 2 in a few seconds.
#[test]
fn loom_array_poll_vs_member_signals() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (a, b) = (tl.fence(1), tl.fence(2));
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        poll_while_inputs_signal(&array, a, b);
    });
}

/// The same for an enabled chain link (its two inputs counted down): a third thread polls
/// while the link's own fence fails and its `prev` signals.
#[test]
fn loom_chain_poll_vs_input_signals() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (first, own) = (tl.fence(1), tl.fence(2));
        let p1 = FenceChain::create(None, first.clone(), 1);
        let p2 = FenceChain::create(Some(p1), own.clone(), 2);
        poll_while_inputs_signal(&p2, own, first);
    });
}

/// Fails `failing` with `ETIME` and signals `clean`, each on a thread of its own, while this
/// thread polls the enabled `container` over them: a poll that answers "signalled" already
/// carries the error, and the container signals exactly once, with it.
fn poll_while_inputs_signal(container: &Fence<Rcu>, failing: Fence<Rcu>, clean: Fence<Rcu>) {
    let runs = counting_callback(container);
    let failer = fail_on_thread(failing, Errno::ETIME);
    let signaller = thread::spawn(move || clean.signal().unwrap());
    if container.is_signaled() {
        assert_eq!(
            container.status(),
            Status::Error(Errno::ETIME),
            "polled early"
        );
    }
    failer.join().unwrap();
    signaller.join().unwrap();
    assert!(container.is_signaled());
    assert_eq!(container.status(), Status::Error(Errno::ETIME));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// `Locked`: two members signalled on two threads; each member callback queues the array's
/// completion as irq_work, which runs on the signalling thread once it releases the
/// member's lock (never inline under it). The array signals exactly once, with the error,
/// and it has signalled by the time the last member's `signal` returns.
#[test]
fn loom_locked_array_completes_from_irq_work() {
    loom::model(|| {
        let tl = Timeline::new_in("loom", crate::Locked);
        let (a, b) = (tl.fence(1), tl.fence(2));
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        array
            .add_callback(move |me| {
                // Under the array's own lock only: not under the member's.
                assert_eq!(crate::backend::locked::irq_work::held(), 1);
                assert!(me.test_signaled_flag());
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let ta = fail_on_thread(a, Errno::ETIME);
        b.signal().unwrap();
        ta.join().unwrap();
        assert!(
            array.test_signaled_flag(),
            "completed within the last signal"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(array.status(), Status::Error(Errno::ETIME));
    });
}

/// `LockedRcu` (the discussion's second proposal): two members signalled on two threads
/// while a third thread iterates the array's members under RCU, without the array's lock.
/// Each member's callback (under the member's lock) releases it from its slot; the array
/// completes once, by irq_work, with the error; the reader sees each member at most once
/// and only live ones; the released members are freed exactly once.
#[test]
fn loom_locked_rcu_array_release_vs_reader() {
    loom::model(|| {
        let tl = Timeline::new_in("loom", crate::LockedRcu);
        let freed = Arc::new(AtomicUsize::new(0));
        let (a, b) = (
            tl.fence_with_ops(
                1,
                std::sync::Arc::new(super::loom_support::Freed(freed.clone())),
            ),
            tl.fence_with_ops(
                2,
                std::sync::Arc::new(super::loom_support::Freed(freed.clone())),
            ),
        );
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        array
            .add_callback(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let reader = {
            let array = array.clone();
            thread::spawn(move || {
                let seen: Vec<u64> = array
                    .as_array()
                    .unwrap()
                    .fences()
                    .map(|f| f.seqno())
                    .collect();
                assert!(
                    seen.len() <= 2 && seen.windows(2).all(|w| w[0] < w[1]),
                    "{seen:?}"
                );
            })
        };
        let ta = fail_on_thread(a, Errno::ETIME);
        b.signal().unwrap();
        drop(b);
        ta.join().unwrap();
        reader.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(array.status(), Status::Error(Errno::ETIME));
        assert_eq!(array.as_array().unwrap().fences().count(), 0);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2, "each member released once");
    });
}

/// Regression: `unwrap` of an enabled array whose member fails and signals concurrently. On
/// `Rcu` "member released" can be a weak reference that no longer upgrades, whose failed
/// upgrade read the count with a Relaxed load: without an Acquire after it, the unwrap could
/// find the member gone without the error the finisher recorded before releasing it.
#[test]
fn loom_unwrap_keeps_error_of_array_member_released_concurrently() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let own = tl.fence(1);
        let array = FenceArray::create(vec![own.clone()], context_alloc(1), 1, false).unwrap();
        array.enable_sw_signaling();
        let failer = fail_on_thread(own, Errno::ETIME);
        let mut leaves = crate::unwrap(&array);
        let yielded: Vec<_> = leaves.by_ref().collect();
        let error = leaves.error();
        failer.join().unwrap();
        match yielded.as_slice() {
            [] => assert_eq!(error, Some(Errno::ETIME), "released without its error"),
            [leaf] => assert!(error.is_none() || error == leaf.error()),
            more => panic!("one leaf at most: {more:?}"),
        }
        drop(array);
        crate::synchronize_rcu();
    });
}

/// Regression: the uniqueness test of the chain's iterative release against a weak
/// reference's upgrade, after which the weak reference goes. Two separate loads of the
/// strong and weak counts could answer "unique" while the upgraded handle was alive, and
/// the release would then steal and free the `prev` of a link another thread was walking.
#[test]
fn loom_uniqueness_sees_a_racing_upgrade() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let mut f = tl.fence(1);
        let weak = f.downgrade();
        let t = thread::spawn(move || {
            let got = weak.upgrade();
            drop(weak);
            got
        });
        let unique = f.is_unique();
        let got = t.join().unwrap();
        assert!(
            !(unique && got.is_some()),
            "unique while another handle exists"
        );
    });
}

/// The model itself: a raw view of a fence used after its last strong reference dropped
/// the contents (a weak reference keeping the memory) fails, as a use after free does.
#[test]
#[should_panic(expected = "after its last reference dropped it")]
fn loom_model_flags_a_view_used_after_the_last_drop() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let f = tl.fence(7);
        let _weak = f.downgrade();
        let raw = f.into_raw();
        // SAFETY: deliberately wrong (the point of the test): the view outlives the
        // reference it borrows, which is dropped on the next line.
        let view = unsafe { Fence::<Rcu>::borrow_raw(raw) };
        // SAFETY: `raw` came from `into_raw` and is taken back once.
        drop(unsafe { Fence::<Rcu>::from_raw(raw) });
        let _ = view.seqno();
    });
}
