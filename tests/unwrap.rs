//! Unwrap and merge on both backends: plain fences, arrays, chains, chains of arrays,
//! duplicates, seqno order and dedup (32-bit wrap-aware and 64-bit), complex mixes, the
//! three shapes of a merge result, and errors of signalled fences kept by merge.

mod common;

use std::time::{Duration, Instant};

use common::{every_backend, settle, timeline, timeline_named};
use rcu_fence::{
    Backend, Errno, Fence, FenceArray, FenceChain, Status, Timeline, chain_find_seqno, chain_walk,
    context_alloc, merge, unwrap,
};

fn array<B: Backend>(members: &[Fence<B>]) -> Fence<B> {
    FenceArray::create(members.to_vec(), context_alloc(1), 1, false).unwrap()
}

fn chain<B: Backend>(points: &[Fence<B>]) -> Vec<Fence<B>> {
    let mut links: Vec<Fence<B>> = Vec::new();
    for (i, f) in points.iter().enumerate() {
        links.push(FenceChain::create(
            links.last().cloned(),
            f.clone(),
            i as u64 + 1,
        ));
    }
    links
}

/// Asserts that `got` are exactly `want`, by identity and in order.
#[track_caller]
fn assert_fences<B: Backend>(got: impl IntoIterator<Item = Fence<B>>, want: &[&Fence<B>]) {
    let got: Vec<_> = got.into_iter().collect();
    assert_eq!(got.len(), want.len(), "got {got:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.ptr_eq(w), "item {i}: got {g:?}, want {w:?}");
    }
}

/// The members of a merge result that must be an array.
fn members<B: Backend>(merged: &Fence<B>) -> Vec<Fence<B>> {
    let arr = merged.as_array().expect("an array");
    assert!(!arr.signal_on_any());
    arr.fences().collect()
}

fn unwrap_plain<B: Backend>() {
    let f = timeline::<B>().fence(1);
    let mut it = unwrap(&f);
    assert_fences(&mut it, &[&f]);
    assert_eq!(it.error(), None);
}

fn unwrap_array<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b, c) = (tl.fence(1), tl.fence(2), tl.fence(3));
    assert_fences(
        unwrap(&array(&[a.clone(), b.clone(), c.clone()])),
        &[&a, &b, &c],
    );
}

fn unwrap_chain<B: Backend>() {
    let tl = timeline::<B>();
    let (a, b, c) = (tl.fence(1), tl.fence(2), tl.fence(3));
    let links = chain(&[a.clone(), b.clone(), c.clone()]);
    assert_fences(unwrap(links.last().unwrap()), &[&c, &b, &a]);
}

fn unwrap_chain_of_arrays<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let arrays = [array(&fs[0..2]), array(&fs[2..4])];
    let links = chain(&arrays);
    assert_fences(
        unwrap(links.last().unwrap()),
        &[&fs[2], &fs[3], &fs[0], &fs[1]],
    );
    signal_all(fs.iter());
}

fn unwrap_nested_mix<B: Backend>() {
    // array[ chain(1: x, 2: array[y, z]), w, array[array[v]] ]
    let tl = timeline::<B>();
    let (v, w, x, y, z) = (
        tl.fence(1),
        tl.fence(2),
        tl.fence(3),
        tl.fence(4),
        tl.fence(5),
    );
    let links = chain(&[x.clone(), array(&[y.clone(), z.clone()])]);
    let top = array(&[
        links[1].clone(),
        w.clone(),
        array(&[array(std::slice::from_ref(&v))]),
    ]);
    assert_fences(unwrap(&top), &[&y, &z, &x, &w, &v]);
    signal_all([&v, &w, &x, &y, &z]);
}

/// Fences must signal (the kernel's selftests signal theirs before the final put too): on
/// `LockedRcu` a container built over a container enables it at once, and an enabled
/// container and its pending members keep each other alive until they signal.
fn signal_all<'a, B: Backend>(fences: impl IntoIterator<Item = &'a Fence<B>>) {
    for f in fences {
        f.signal().unwrap();
    }
}

fn unwrap_skips_signalled_links<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let links = chain(&fs);
    let head = links.last().unwrap();
    fs[1].signal().unwrap();
    fs[0].signal().unwrap();
    assert_fences(unwrap(head), &[&fs[3], &fs[2]]);
    // The head's own fence is yielded even once signalled.
    fs[3].signal().unwrap();
    assert_fences(unwrap(head), &[&fs[3], &fs[2]]);
}

fn merge_single_and_duplicates<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(1);
    assert!(merge(std::slice::from_ref(&f)).unwrap().ptr_eq(&f));
    assert!(
        merge(&[f.clone(), f.clone()]).unwrap().ptr_eq(&f),
        "merge_duplicate"
    );
    assert!(
        merge(&[array(&[f.clone(), f.clone()]), f.clone()])
            .unwrap()
            .ptr_eq(&f)
    );
}

fn merge_sorted_by_context<B: Backend>() {
    let tls: Vec<Timeline<B>> = (0..4).map(|i| timeline_named(&format!("t{i}"))).collect();
    let fs: Vec<_> = tls.iter().map(|tl| tl.fence(1)).collect();
    let reversed: Vec<_> = fs.iter().rev().cloned().collect();
    let m = merge(&reversed).unwrap();
    assert_fences(members(&m), &[&fs[0], &fs[1], &fs[2], &fs[3]]);
    assert!(
        m.context() > tls[3].context(),
        "the result is on a fresh context"
    );
    assert!(!m.is_signaled());
    for f in &fs {
        f.signal().unwrap();
    }
    assert_eq!(settle(&m), Status::Signaled);
}

fn merge_seqno<B: Backend>() {
    let tl = timeline::<B>();
    let (f1, f2) = (tl.fence(1), tl.fence(2));
    assert!(merge(&[f1.clone(), f2.clone()]).unwrap().ptr_eq(&f2));
    assert!(merge(&[f2.clone(), f1.clone()]).unwrap().ptr_eq(&f2));
    // With another context: one fence per context, the later one.
    let other = timeline_named::<B>("other");
    let (g5, g3) = (other.fence(5), other.fence(3));
    let m = merge(&[g3.clone(), f1.clone(), g5.clone(), f2.clone()]).unwrap();
    assert_fences(members(&m), &[&f2, &g5]);
}

/// Twelve contexts, three points each, interleaved so that later and earlier points of a
/// context arrive both before and after `merge`'s list outgrows its inline capacity of
/// eight: the result is still the latest point of each context, in context order.
fn merge_keeps_latest_past_inline_capacity<B: Backend>() {
    let tls: Vec<Timeline<B>> = (0..12).map(|i| timeline_named(&format!("t{i}"))).collect();
    let points: Vec<Vec<_>> = tls
        .iter()
        .map(|tl| (1..=3).map(|s| tl.fence(s)).collect())
        .collect();
    let mut inputs = Vec::new();
    for seqno in [1, 2, 0] {
        for tl_points in &points {
            inputs.push(tl_points[seqno].clone());
        }
        // Contexts in a different order on the next pass.
        inputs.reverse();
    }
    let m = merge(&inputs).unwrap();
    let latest: Vec<_> = points.iter().map(|p| &p[2]).collect();
    assert_fences(members(&m), &latest);
}

fn merge_seqno_wraps_in_32_bits<B: Backend>() {
    let tl = timeline::<B>();
    let (old, new) = (tl.fence(0xffff_fff0), tl.fence(5));
    assert!(
        new.is_later(&old),
        "5 follows 0xffff_fff0 after the 32-bit wrap"
    );
    assert!(merge(&[old.clone(), new.clone()]).unwrap().ptr_eq(&new));
    assert!(merge(&[new.clone(), old.clone()]).unwrap().ptr_eq(&new));
    let tl64 = timeline_named::<B>("wide").seqno64();
    let (big, small) = (tl64.fence(0xffff_fff0), tl64.fence(5));
    assert!(big.is_later(&small), "64-bit timelines compare plainly");
    assert!(merge(&[small.clone(), big.clone()]).unwrap().ptr_eq(&big));
    assert!(merge(&[big.clone(), small.clone()]).unwrap().ptr_eq(&big));
}

fn merge_order<B: Backend>() {
    // The kernel's unwrap_merge_order: an array and a chain over the same two fences,
    // given in different orders, merge to the same sorted array.
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (f1, f2) = (t1.fence(1), t2.fence(1));
    let a1 = array(&[f1.clone(), f2.clone()]);
    let a2 = array(&[f2.clone(), f1.clone()]);
    let links = chain(&[f2.clone(), f1.clone()]);
    for inputs in [
        vec![a1.clone(), a2.clone()],
        vec![a2, links[1].clone()],
        vec![links[1].clone(), a1],
    ] {
        assert_fences(members(&merge(&inputs).unwrap()), &[&f1, &f2]);
    }
}

fn merge_complex<B: Backend>() {
    // The kernel's unwrap_merge_complex: merges of merges, arrays and chains of the same
    // fences collapse to one array of the two.
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (f1, f2) = (t1.fence(1), t2.fence(1));
    let m12 = merge(&[f1.clone(), f2.clone()]).unwrap();
    let m21 = merge(&[f2.clone(), f1.clone()]).unwrap();
    let arr = array(&[m12.clone(), m21.clone()]);
    let links = chain(&[m12.clone(), arr.clone(), f2.clone()]);
    let m = merge(&[m12, m21, arr, links[2].clone(), f1.clone()]).unwrap();
    assert_fences(members(&m), &[&f1, &f2]);
    signal_all([&f1, &f2]);
}

fn merge_complex_seqno<B: Backend>() {
    // The kernel's unwrap_merge_complex_seqno: several seqnos per context, spread over
    // containers; the latest per context wins.
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (a1, a2, a3) = (t1.fence(1), t1.fence(2), t1.fence(3));
    let (b1, b2) = (t2.fence(1), t2.fence(2));
    let x = array(&[a1.clone(), b2.clone()]);
    let y = array(&[b1.clone(), a3.clone()]);
    let links = chain(&[a2.clone(), y]);
    let m = merge(&[x, links[1].clone()]).unwrap();
    assert_fences(members(&m), &[&a3, &b2]);
    signal_all([&a1, &a2, &a3, &b1, &b2]);
}

fn merge_leaves_out_signalled<B: Backend>() {
    let (t1, t2, t3) = (
        timeline_named::<B>("a"),
        timeline_named::<B>("b"),
        timeline_named::<B>("c"),
    );
    let (f1, f2, f3) = (t1.fence(1), t2.fence(1), t3.fence(1));
    f2.signal().unwrap();
    assert_fences(
        members(&merge(&[f1.clone(), f2.clone(), f3.clone()]).unwrap()),
        &[&f1, &f3],
    );
    // A later signalled fence does not hide an earlier pending one of its context.
    let later = t1.fence(2);
    later.signal().unwrap();
    assert!(merge(&[f1.clone(), later]).unwrap().ptr_eq(&f1));
    f3.signal().unwrap();
    assert!(
        merge(&[f1.clone(), f2.clone(), f3.clone()])
            .unwrap()
            .ptr_eq(&f1),
        "one left: itself"
    );
}

fn merge_all_signalled_is_stub<B: Backend>() {
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (f1, f2) = (t1.fence(1), t2.fence(1));
    let base = Instant::now();
    let late = base + Duration::from_millis(250);
    f1.signal_timestamp(late).unwrap();
    f2.signal_timestamp(base).unwrap();
    let m = merge(&[array(&[f1.clone(), f2.clone()]), f2.clone()]).unwrap();
    assert!(m.test_signaled_flag());
    assert_eq!((m.context(), m.seqno()), (0, 0), "the stub's identity");
    assert_eq!(m.status(), Status::Signaled);
    assert_eq!(
        m.timestamp(),
        Some(late),
        "the latest timestamp of the merged fences"
    );
    assert!(!m.ptr_eq(&f1) && !m.ptr_eq(&f2));
    assert!(
        merge::<B>(&[]).unwrap().test_signaled_flag(),
        "nothing to merge: a stub"
    );
}

fn merge_all_signalled_keeps_error<B: Backend>() {
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (f1, f2) = (t1.fence(1), t2.fence(1));
    f1.signal().unwrap();
    f2.set_error(Errno::ETIME).unwrap();
    f2.signal().unwrap();
    let m = merge(&[f1, f2]).unwrap();
    assert_eq!((m.context(), m.seqno()), (0, 0));
    assert_eq!(m.status(), Status::Error(Errno::ETIME));
}

fn merge_one_left_keeps_error<B: Backend>() {
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (failed, pending) = (t1.fence(1), t2.fence(1));
    failed.set_error(Errno::ECANCELED).unwrap();
    failed.signal().unwrap();
    let m = merge(&[failed, pending.clone()]).unwrap();
    // Not the fence itself: a one-member array that carries the error.
    assert!(!m.ptr_eq(&pending));
    assert_fences(members(&m), &[&pending]);
    assert!(!m.is_signaled());
    pending.signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ECANCELED));
}

fn merge_many_left_keeps_error<B: Backend>() {
    let (t1, t2, t3) = (
        timeline_named::<B>("a"),
        timeline_named::<B>("b"),
        timeline_named::<B>("c"),
    );
    let (f1, f2, f3) = (t1.fence(1), t2.fence(1), t3.fence(1));
    f2.set_error(Errno::ENODATA).unwrap();
    f2.signal().unwrap();
    let m = merge(&[f3.clone(), f2, f1.clone()]).unwrap();
    assert_fences(members(&m), &[&f1, &f3]);
    f1.signal().unwrap();
    f3.signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ENODATA));
}

fn merge_first_error_wins<B: Backend>() {
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (f1, f2) = (t1.fence(1), t2.fence(1));
    f1.set_error(Errno::ETIME).unwrap();
    f2.set_error(Errno::ENODATA).unwrap();
    f1.signal().unwrap();
    f2.signal().unwrap();
    assert_eq!(
        merge(&[f2.clone(), f1.clone()]).unwrap().status(),
        Status::Error(Errno::ENODATA)
    );
    assert_eq!(
        merge(&[f1, f2]).unwrap().status(),
        Status::Error(Errno::ETIME)
    );
}

fn merge_keeps_error_of_released_array_member<B: Backend>() {
    // On `Rcu` and `LockedRcu` the enabled array releases its signalled member (it records
    // the error); on `Locked` the member stays and is seen as a signalled leaf. Same result
    // either way.
    let (t1, t2) = (timeline_named::<B>("a"), timeline_named::<B>("b"));
    let (failed, pending) = (t1.fence(1), t2.fence(1));
    let arr = array(&[failed.clone(), pending.clone()]);
    arr.enable_sw_signaling();
    failed.set_error(Errno::ETIME).unwrap();
    failed.signal().unwrap();
    let mut it = unwrap(&arr);
    if common::releases_members::<B>() {
        assert_fences(&mut it, &[&pending]);
    } else {
        assert_fences(&mut it, &[&failed, &pending]);
    }
    assert_eq!(it.error(), Some(Errno::ETIME));
    let m = merge(std::slice::from_ref(&arr)).unwrap();
    assert_fences(members(&m), &[&pending]);
    pending.signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ETIME));
}

fn merge_keeps_error_of_collected_link<B: Backend>() {
    // Point 1 failed and is collected by the walk: its error must reach the merge.
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let links = chain(&fs);
    fs[0].set_error(Errno::ETIME).unwrap();
    fs[0].signal().unwrap();
    let mut it = unwrap(&links[2]);
    assert_fences(&mut it, &[&fs[2], &fs[1]]);
    assert_eq!(it.error(), Some(Errno::ETIME));
    let m = merge(&[links[2].clone()]).unwrap();
    assert_fences(members(&m), &[&fs[2]]);
    fs[1].signal().unwrap();
    fs[2].signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ETIME));
}

fn merge_keeps_error_of_link_collected_earlier<B: Backend>() {
    // As above, but a walk collected the failed point before the merge. (A find_seqno
    // that stops at point 2 does not: it never looks past its answer, as the kernel's.)
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let links = chain(&fs);
    fs[0].set_error(Errno::ECANCELED).unwrap();
    fs[0].signal().unwrap();
    assert!(
        chain_find_seqno(&links[2], 2)
            .unwrap()
            .unwrap()
            .ptr_eq(&links[1])
    );
    assert_eq!(
        chain_walk(&links[2]).count(),
        2,
        "points 3 and 2 are pending"
    );
    assert!(
        links[1].as_chain().unwrap().prev().is_none(),
        "point 1 was collected"
    );
    let m = merge(&[links[2].clone()]).unwrap();
    assert_fences(members(&m), &[&fs[2]]);
    fs[1].signal().unwrap();
    fs[2].signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ECANCELED));
}

fn merge_keeps_error_of_released_own_fence<B: Backend>() {
    // An enabled link whose own fence failed: on `Rcu` the link releases that fence and
    // records the error; the head's own fence is then not yielded, but its error is kept.
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=2).map(|s| tl.fence(s)).collect();
    let links = chain(&fs);
    links[1].enable_sw_signaling();
    fs[1].set_error(Errno::ENODATA).unwrap();
    fs[1].signal().unwrap();
    let m = merge(&[links[1].clone()]).unwrap();
    assert_fences(members(&m), &[&fs[0]]);
    fs[0].signal().unwrap();
    assert_eq!(settle(&m), Status::Error(Errno::ENODATA));
}

fn merge_of_container_error<B: Backend>() {
    // A signalled container that failed: nothing left, the error is kept.
    let tl = timeline::<B>();
    let f = tl.fence(1);
    let arr = array(std::slice::from_ref(&f));
    arr.enable_sw_signaling();
    f.set_error(Errno::ETIME).unwrap();
    f.signal().unwrap();
    assert_eq!(settle(&arr), Status::Error(Errno::ETIME));
    let m = merge(&[arr]).unwrap();
    assert_eq!(m.status(), Status::Error(Errno::ETIME));
    assert_eq!((m.context(), m.seqno()), (0, 0));
}

/// Hooks whose `signaled` poll fails another fence, as a driver polling its hardware might
/// find a sibling job failed: the sibling signals (with `ETIME`) from inside the poll.
struct FailsSibling<B: Backend>(std::sync::Mutex<Option<Fence<B>>>);

impl<B: Backend> rcu_fence::FenceOps<B> for FailsSibling<B> {
    fn driver_name(&self) -> &str {
        "test"
    }
    fn timeline_name(&self) -> &str {
        "test"
    }
    fn signaled(&self, _fence: &Fence<B>) -> bool {
        if let Some(sibling) = self.0.lock().unwrap().take() {
            sibling.set_error(Errno::ETIME).unwrap();
            sibling.signal().unwrap();
        }
        false
    }
}

/// Defect: an array member that fails *during* a merge (after the array's cursor was
/// pushed) is recorded and released by the enabled array; the walk then skipped its empty
/// slot without noting the error, and the merged fence signalled clean.
fn merge_keeps_error_of_member_released_mid_walk<B: Backend>() {
    let tl = timeline::<B>();
    let b = tl.fence(2);
    let a = tl.fence_with_ops(
        1,
        std::sync::Arc::new(FailsSibling(std::sync::Mutex::new(Some(b.clone())))),
    );
    let all = array(&[a.clone(), b.clone()]);
    all.enable_sw_signaling();
    let merged = merge(std::slice::from_ref(&all)).unwrap();
    assert!(!merged.is_signaled());
    a.signal().unwrap();
    assert_eq!(settle(&merged), Status::Error(Errno::ETIME));
    assert_eq!(settle(&all), Status::Error(Errno::ETIME));
}

every_backend!(
    unwrap_plain,
    unwrap_array,
    unwrap_chain,
    unwrap_chain_of_arrays,
    unwrap_nested_mix,
    unwrap_skips_signalled_links,
    merge_single_and_duplicates,
    merge_sorted_by_context,
    merge_seqno,
    merge_seqno_wraps_in_32_bits,
    merge_keeps_latest_past_inline_capacity,
    merge_order,
    merge_complex,
    merge_complex_seqno,
    merge_leaves_out_signalled,
    merge_all_signalled_is_stub,
    merge_all_signalled_keeps_error,
    merge_one_left_keeps_error,
    merge_many_left_keeps_error,
    merge_first_error_wins,
    merge_keeps_error_of_released_array_member,
    merge_keeps_error_of_collected_link,
    merge_keeps_error_of_link_collected_earlier,
    merge_keeps_error_of_released_own_fence,
    merge_of_container_error,
    merge_keeps_error_of_member_released_mid_walk,
);
