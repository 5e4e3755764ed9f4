//! Loom model of the chain's garbage collection racing the creation of a new link on top
//! of the head (`FenceChain::create` reads the head's seqno and context; a syncobj's
//! `add_point` does exactly this while readers walk).
//!
//! Run with `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-fence
//! --release --lib loom_`.

use std::sync::Arc as StdArc;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::loom_support::{Freed, fail_on_thread};

use crate::{Fence, FenceChain, Rcu, Timeline, chain_walk};

fn seqnos(head: &Fence<Rcu>) -> Vec<u64> {
    chain_walk(head).map(|l| l.seqno()).collect()
}

/// Points 1, 2, 3 of one timeline and the chain over them (links 1 ← 2 ← 3), oldest first.
fn three_points() -> ([Fence<Rcu>; 3], [Fence<Rcu>; 3]) {
    let tl = Timeline::new("loom");
    let fences = [tl.fence(1), tl.fence(2), tl.fence(3)];
    let p1 = FenceChain::create(None, fences[0].clone(), 1);
    let p2 = FenceChain::create(Some(p1.clone()), fences[1].clone(), 2);
    let p3 = FenceChain::create(Some(p2.clone()), fences[2].clone(), 3);
    (fences, [p1, p2, p3])
}

/// Point 1 fails with `ETIME` on one thread while another polls `head`: afterwards `head`
/// has signalled with that error.
fn fail_first_while_polling(first: &Fence<Rcu>, head: &Fence<Rcu>) {
    let failer = fail_on_thread(first.clone(), crate::Errno::ETIME);
    let poller = {
        let head = head.clone();
        thread::spawn(move || {
            head.is_signaled();
        })
    };
    failer.join().unwrap();
    poller.join().unwrap();
    assert!(head.is_signaled(), "every point has signalled");
    assert_eq!(head.status(), crate::Status::Error(crate::Errno::ETIME));
}

/// Thread A signals point 1 and walks from point 2, collecting point 1; thread B creates
/// point 3 on top of point 2 and walks from it. B's link continues the chain's context,
/// its walk yields each live point once in order, and after both the chain reads
/// [3, 2]; every fence is freed exactly once.
#[test]
fn loom_chain_gc_vs_new_link() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let fences: Vec<_> = (1..=3)
            .map(|s| tl.fence_with_ops(s, StdArc::new(Freed(freed.clone()))))
            .collect();
        let p1 = FenceChain::create(None, fences[0].clone(), 1);
        let p2 = FenceChain::create(Some(p1), fences[1].clone(), 2);
        let (first, own3) = (fences[0].clone(), fences[2].clone());
        let walker = {
            let p2 = p2.clone();
            thread::spawn(move || {
                first.signal().unwrap();
                assert_eq!(seqnos(&p2), [2]);
            })
        };
        let creator = {
            let p2 = p2.clone();
            thread::spawn(move || {
                let p3 = FenceChain::create(Some(p2.clone()), own3, 3);
                assert_eq!(
                    p3.context(),
                    p2.context(),
                    "the new link continues the chain"
                );
                assert_eq!(p3.as_chain().unwrap().prev_seqno(), 2);
                let seen = seqnos(&p3);
                assert!(seen == [3, 2, 1] || seen == [3, 2], "{seen:?}");
                p3
            })
        };
        walker.join().unwrap();
        let p3 = creator.join().unwrap();
        assert_eq!(seqnos(&p3), [3, 2]);
        assert!(p3.as_chain().unwrap().prev().unwrap().ptr_eq(&p2));
        // Completing the rest completes the new head exactly once.
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        p3.add_callback(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        fences[1].signal().unwrap();
        assert!(!p3.test_signaled_flag());
        fences[2].signal().unwrap();
        assert!(p3.test_signaled_flag());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop((fences, p2, p3));
        crate::synchronize_rcu();
        assert_eq!(
            freed.load(Ordering::SeqCst),
            3,
            "every fence freed exactly once"
        );
    });
}

/// A walk collecting a signalled link must not lose that link's error. Links 1 ← 2 ← 3;
/// point 2 is enabled (so its callback on point 1 records point 1's error in link 2, then
/// releases link 2's `prev`); points 2 and 3 have their own fences signalled. Thread Y
/// fails point 1; thread X polls point 3 (not enabled: the poll walks and collects link 2).
/// Whatever the interleaving, point 3 completes with point 1's error: the walk must read
/// link 2's `prev` before the error it recorded (the error is recorded before `prev` is
/// released).
#[test]
fn loom_chain_walk_keeps_collected_links_error() {
    loom::model(|| {
        let (fences, [_, p2, p3]) = three_points();
        fences[1].signal().unwrap();
        fences[2].signal().unwrap();
        p2.enable_sw_signaling();
        fail_first_while_polling(&fences[0], &p3);
    });
}

/// `unwrap` of an enabled link whose own fence fails concurrently: the link's callback
/// records the error, then releases the fence. An `unwrap` that finds the fence released
/// must report that error (it reads the fence before the recorded error); one that still
/// yields the fence sees it through the fence itself.
#[test]
fn loom_unwrap_keeps_error_of_own_fence_released_concurrently() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let own = tl.fence(1);
        let head = FenceChain::create(None, own.clone(), 1);
        head.enable_sw_signaling();
        let failer = fail_on_thread(own, crate::Errno::ETIME);
        let mut leaves = crate::unwrap(&head);
        let yielded: Vec<_> = leaves.by_ref().collect();
        let error = leaves.error();
        failer.join().unwrap();
        match yielded.as_slice() {
            [] => assert_eq!(
                error,
                Some(crate::Errno::ETIME),
                "released without its error"
            ),
            [leaf] => assert!(
                error.is_none() || error == leaf.error(),
                "{error:?} vs {:?}",
                leaf.error()
            ),
            more => panic!("one leaf at most: {more:?}"),
        }
    });
}

/// As above, for an older link's own fence, which the walk's step reads (and, where links
/// hold their own fences in RCU slots, takes) in the section it reads the link in: an
/// `unwrap` that does not yield it must report its error, one that yields it sees it
/// through the fence.
#[test]
fn loom_unwrap_keeps_error_of_older_own_fence_released_concurrently() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let (own1, own2) = (tl.fence(1), tl.fence(2));
        let p1 = FenceChain::create(None, own1.clone(), 1);
        let head = FenceChain::create(Some(p1), own2.clone(), 2);
        head.enable_sw_signaling();
        let failer = fail_on_thread(own1.clone(), crate::Errno::ETIME);
        let mut leaves = crate::unwrap(&head);
        let yielded: Vec<_> = leaves.by_ref().collect();
        let error = leaves.error();
        failer.join().unwrap();
        match yielded.as_slice() {
            [leaf] => {
                assert!(leaf.ptr_eq(&own2), "the head's own fence first");
                assert_eq!(
                    error,
                    Some(crate::Errno::ETIME),
                    "released without its error"
                );
            }
            [first, older] => {
                assert!(first.ptr_eq(&own2) && older.ptr_eq(&own1));
                assert!(
                    error.is_none() || error == Some(crate::Errno::ETIME),
                    "{error:?}"
                );
            }
            more => panic!("two leaves at most: {more:?}"),
        }
        // Complete the head, whose enabled callback holds it, and let the retired go.
        own2.signal().unwrap();
        drop((yielded, head, own1, own2));
        crate::synchronize_rcu();
    });
}

/// Two points fail concurrently, the later one (2) possibly first: every link at or after
/// point 1 reports point 1's error (the earliest failed point), whatever the interleaving.
/// Links 1 ← 2 ← 3, all enabled through the head; point 3 has signalled cleanly.
#[test]
fn loom_chain_earliest_failed_point_wins() {
    loom::model(|| {
        let (fences, [p1, p2, p3]) = three_points();
        p3.enable_sw_signaling();
        fences[2].signal().unwrap();
        let second = fail_on_thread(fences[1].clone(), crate::Errno::EIO);
        let first = fail_on_thread(fences[0].clone(), crate::Errno::ETIME);
        second.join().unwrap();
        first.join().unwrap();
        let expect = crate::Status::Error(crate::Errno::ETIME);
        for link in [&p1, &p2, &p3] {
            assert!(link.test_signaled_flag());
            assert_eq!(link.status(), expect, "link {}", link.seqno());
        }
    });
}

/// The same, with links not enabled: point 2 fails and a poll of the head walks (and
/// collects link 2, recording its failure in the head) while point 1 fails. The head
/// reports point 1's error however the walk and the failures interleave.
#[test]
fn loom_chain_walk_keeps_the_earliest_failure() {
    loom::model(|| {
        let (fences, [_, _, p3]) = three_points();
        fences[2].signal().unwrap();
        fences[1].set_error(crate::Errno::EIO).unwrap();
        fences[1].signal().unwrap();
        fail_first_while_polling(&fences[0], &p3);
    });
}

/// A lookup on `Rcu` passes pending links inside one read-side section, holding no
/// reference to them, while another thread signals points 2 and 1 and walks, collecting
/// link 2 (and link 1), which releases the chain's last reference to it. Links 1 ← 2 ← 3
/// with quiet own fences, so the lookup runs in the section until it meets a signalled
/// point. The lookup of point 1 finds link 1 while point 1 is pending, or nothing once it
/// has signalled; afterwards the chain reads [3], and nothing leaks (loom's leak check
/// covers every fence).
#[test]
fn loom_chain_seek_in_section_vs_collect() {
    loom::model(|| {
        let (fences, [p1, p2, p3]) = three_points();
        let link1 = p1.addr();
        drop((p1, p2));
        let seeker = {
            let head = p3.clone();
            thread::spawn(move || {
                let found = crate::chain_find_seqno(&head, 1).unwrap();
                found.map(|f| f.addr())
            })
        };
        let collector = {
            let head = p3.clone();
            let (first, second) = (fences[0].clone(), fences[1].clone());
            thread::spawn(move || {
                second.signal().unwrap();
                first.signal().unwrap();
                assert_eq!(seqnos(&head), [3]);
            })
        };
        let found = seeker.join().unwrap();
        collector.join().unwrap();
        assert!(
            found.is_none_or(|addr| addr == link1),
            "the lookup answers link 1 or nothing"
        );
        assert_eq!(seqnos(&p3), [3]);
        assert!(p3.as_chain().unwrap().prev().is_none());
        drop((fences, p3));
        crate::synchronize_rcu();
    });
}

/// The same lookup while the chain completes itself: links 1 ← 2 ← 3 enabled through the
/// head, so each link's callbacks release its own fence and its `prev` as points 1 and 2
/// signal on another thread, during the lookup's section. The lookup answers link 1 or
/// nothing; point 3 then completes the head, and nothing leaks.
#[test]
fn loom_chain_seek_in_section_vs_completion() {
    loom::model(|| {
        let (fences, [p1, p2, p3]) = three_points();
        p3.enable_sw_signaling();
        drop((p1, p2));
        let seeker = {
            let head = p3.clone();
            thread::spawn(move || {
                let found = crate::chain_find_seqno(&head, 1).unwrap();
                found.map(|f| f.seqno())
            })
        };
        let signaller = {
            let (first, second) = (fences[0].clone(), fences[1].clone());
            thread::spawn(move || {
                first.signal().unwrap();
                second.signal().unwrap();
            })
        };
        let found = seeker.join().unwrap();
        signaller.join().unwrap();
        assert!(found.is_none_or(|seqno| seqno == 1), "{found:?}");
        fences[2].signal().unwrap();
        assert!(p3.test_signaled_flag());
        drop((fences, p3));
        crate::synchronize_rcu();
    });
}
