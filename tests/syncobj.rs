//! Sync object behaviour on both backends: the replaceable slot, timeline points
//! (`add_point` / `find_fence`), and concurrent writers.

mod common;

use std::collections::BTreeSet;

use common::{both_backends, is_rcu, settle, timeline};
use rcu_fence::{Backend, FenceError, Status, Syncobj, chain_walk};

fn syncobj<B: Backend>() -> Syncobj<B> {
    Syncobj::new_in(B::default())
}

fn replace_returns_old<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    let obj = syncobj::<B>();
    assert!(obj.fence().is_none());
    assert!(obj.replace_fence(Some(a.clone())).is_none());
    assert!(obj.fence().unwrap().ptr_eq(&a));
    assert!(obj.replace_fence(Some(b.clone())).unwrap().ptr_eq(&a));
    assert!(obj.fence().unwrap().ptr_eq(&b));
    // A snapshot taken before a replace stays valid.
    let snapshot = obj.fence().unwrap();
    assert!(obj.replace_fence(None).unwrap().ptr_eq(&b));
    assert!(obj.fence().is_none());
    assert!(snapshot.ptr_eq(&b));
    assert!(obj.replace_fence(None).is_none());
}

fn find_on_empty<B: Backend>() {
    let obj = syncobj::<B>();
    assert_eq!(obj.find_fence(0).unwrap_err(), FenceError::InvalidSeqno);
    assert_eq!(obj.find_fence(1).unwrap_err(), FenceError::InvalidSeqno);
}

fn find_on_binary_syncobj<B: Backend>() {
    // A plain fence in the slot: point 0 is the fence; a point is an error (not a chain).
    let tl = timeline::<B>();
    let f = tl.fence(7);
    let obj = syncobj::<B>();
    obj.replace_fence(Some(f.clone()));
    assert!(obj.find_fence(0).unwrap().ptr_eq(&f));
    assert_eq!(obj.find_fence(1).unwrap_err(), FenceError::InvalidSeqno);
}

fn add_point_and_find<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
        let head = obj.fence().unwrap();
        assert_eq!(head.seqno(), i as u64 + 1);
        assert!(head.as_chain().unwrap().fence().unwrap().ptr_eq(f));
    }
    // Before submission.
    assert_eq!(obj.find_fence(5).unwrap_err(), FenceError::InvalidSeqno);
    // Point 0: the current fence.
    assert!(obj.find_fence(0).unwrap().ptr_eq(&obj.fence().unwrap()));
    // Each pending point: its own link.
    for p in 1..=4u64 {
        let found = obj.find_fence(p).unwrap();
        assert_eq!(found.seqno(), p);
        assert!(
            found
                .as_chain()
                .unwrap()
                .fence()
                .unwrap()
                .ptr_eq(&fs[p as usize - 1])
        );
        assert!(!found.is_signaled());
    }
}

fn find_signalled_point<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
    }
    fs[0].signal().unwrap();
    fs[1].signal().unwrap();
    for p in [1, 2] {
        let found = obj.find_fence(p).unwrap();
        assert!(found.is_signaled(), "point {p}");
        assert_eq!(found.status(), Status::Signaled);
        assert_eq!(
            (found.context(), found.seqno()),
            (0, 0),
            "every point up to {p} signalled: a stub"
        );
    }
    let pending = obj.find_fence(3).unwrap();
    assert!(!pending.is_signaled());
    fs[2].signal().unwrap();
    assert_eq!(settle(&pending), Status::Signaled);
    // The head's own point is returned as the (now signalled) head.
    let found = obj.find_fence(3).unwrap();
    assert!(found.is_signaled());
}

fn find_pending_point_waits_for_earlier<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let obj = syncobj::<B>();
    for (i, f) in fs.iter().enumerate() {
        obj.add_point(f.clone(), i as u64 + 1);
    }
    // Point 2's own fence has signalled, point 1's has not: waiting for point 2 means
    // waiting for point 1.
    fs[1].signal().unwrap();
    let found = obj.find_fence(2).unwrap();
    assert_eq!(found.seqno(), 1);
    assert!(!found.is_signaled());
    let waiter_done = common::Counter::new();
    let w = waiter_done.clone();
    let id = found.add_callback(move |_| w.inc()).unwrap();
    fs[2].signal().unwrap();
    assert!(!found.test_signaled_flag());
    fs[0].signal().unwrap();
    if is_rcu::<B>() {
        assert!(found.test_signaled_flag());
    }
    assert_eq!(settle(&found), Status::Signaled);
    assert!(!found.remove_callback(id));
    assert_eq!(waiter_done.get(), 1);
    let stub = obj.find_fence(2).unwrap();
    assert_eq!((stub.context(), stub.seqno()), (0, 0));
}

fn find_through_gaps<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let (a, b) = (tl.fence(1), tl.fence(2));
    obj.add_point(a.clone(), 10);
    obj.add_point(b.clone(), 20);
    assert_eq!(obj.find_fence(5).unwrap().seqno(), 10);
    assert_eq!(obj.find_fence(15).unwrap().seqno(), 20);
    assert_eq!(obj.find_fence(21).unwrap_err(), FenceError::InvalidSeqno);
}

fn concurrent_add_point_loses_nothing<B: Backend>() {
    let n = 2000u64;
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (obj, tl) = (&obj, &tl);
            s.spawn(move || {
                for i in 0..n {
                    let point = 2 * i + t + 1;
                    obj.add_point(tl.fence(point), point);
                }
            });
        }
    });
    // Every point's fence is on the chain exactly once (links whose seqno was not later
    // than the head's start a new context, but they are still linked).
    let mut seen = BTreeSet::new();
    let mut links = 0;
    for link in chain_walk(&obj.fence().unwrap()) {
        let own = link
            .as_chain()
            .expect("every item is a link")
            .fence()
            .unwrap();
        assert!(seen.insert(own.seqno()), "point {} twice", own.seqno());
        links += 1;
    }
    assert_eq!(links, 2 * n as usize);
    assert_eq!(seen, (1..=2 * n).collect::<BTreeSet<_>>());
    assert_eq!(
        obj.fence().unwrap().seqno(),
        2 * n,
        "the head carries the latest point"
    );
}

fn concurrent_add_point_ordered_all_findable<B: Backend>() {
    // Two writers whose points are ordered by a shared counter taken under the writers'
    // own lock: every point is findable afterwards.
    // find_fence walks from the head: keep the chain short enough for debug builds.
    let n = 250u64;
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let next = std::sync::Mutex::new(0u64);
    let fences = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n {
                    let mut point = next.lock().unwrap();
                    *point += 1;
                    let f = tl.fence(*point);
                    obj.add_point(f.clone(), *point);
                    fences.lock().unwrap().push(f);
                }
            });
        }
    });
    let fences = fences.into_inner().unwrap();
    assert_eq!(fences.len(), 2 * n as usize);
    for f in &fences {
        let found = obj.find_fence(f.seqno()).unwrap();
        assert_eq!(found.seqno(), f.seqno());
        assert!(found.as_chain().unwrap().fence().unwrap().ptr_eq(f));
    }
}

fn readers_race_replace<B: Backend>() {
    let tl = timeline::<B>();
    let obj = syncobj::<B>();
    let n = 2000u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=n {
                obj.replace_fence(Some(tl.fence(i)));
            }
        });
        s.spawn(|| {
            let mut last = 0;
            for _ in 0..n {
                if let Some(f) = obj.fence() {
                    assert!(
                        f.seqno() >= last,
                        "a reader never sees an older fence after a newer"
                    );
                    last = f.seqno();
                }
            }
        });
    });
    assert_eq!(obj.fence().unwrap().seqno(), n);
}

both_backends!(
    replace_returns_old,
    find_on_empty,
    find_on_binary_syncobj,
    add_point_and_find,
    find_signalled_point,
    find_pending_point_waits_for_earlier,
    find_through_gaps,
    concurrent_add_point_loses_nothing,
    concurrent_add_point_ordered_all_findable,
    readers_race_replace,
);
