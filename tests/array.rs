//! Fence array behaviour on both backends: all and any mode, error propagation, enabling
//! members, members already signalled, member release, and polling without enabling.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Counter, counted_fence, every_backend, settle, timeline};
use rcu_fence::{Backend, Errno, Fence, FenceArray, FenceError, FenceOps, Status, context_alloc};

fn array<B: Backend>(members: &[Fence<B>], any: bool) -> Fence<B> {
    FenceArray::create(members.to_vec(), context_alloc(1), 1, any).unwrap()
}

/// After the signal that must complete `f`, made with no fence lock held: every backend has
/// signalled the container before that signal returned (`Rcu` from the member's callback;
/// the classic schemes from the irq_work the callback queued, which runs as the signaller
/// releases its last fence lock).
fn completed<B: Backend>(f: &Fence<B>) -> Status {
    assert!(
        f.test_signaled_flag(),
        "the container is signalled before the member's signal returns"
    );
    f.status()
}

fn all_mode<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    let runs = Counter::new();
    let r = runs.clone();
    let id = a.add_callback(move |_| r.inc()).unwrap();
    for f in &fs[..2] {
        f.signal().unwrap();
        assert!(!a.is_signaled());
        assert_eq!(a.status(), Status::Pending);
    }
    fs[2].signal().unwrap();
    assert_eq!(completed(&a), Status::Signaled);
    assert_eq!(a.error(), None);
    assert!(a.timestamp().is_some());
    assert_eq!(
        a.add_callback(|_| {}).unwrap_err(),
        FenceError::AlreadySignaled
    );
    assert!(!a.remove_callback(id));
    assert_eq!(runs.get(), 1);
}

fn all_mode_callback_once<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    let runs = Counter::new();
    let r = runs.clone();
    let id = a.add_callback(move |_| r.inc()).unwrap();
    for f in fs.iter().rev() {
        f.signal().unwrap();
    }
    assert_eq!(completed(&a), Status::Signaled);
    // Already run: nothing to remove (and on `Locked` the lock waits out a run in progress).
    assert!(!a.remove_callback(id));
    assert_eq!(runs.get(), 1);
}

fn any_mode<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let a = array(&fs, true);
    assert!(a.as_array().unwrap().signal_on_any());
    let runs = Counter::new();
    let r = runs.clone();
    let id = a.add_callback(move |_| r.inc()).unwrap();
    assert!(!a.is_signaled());
    fs[1].signal().unwrap();
    assert_eq!(completed(&a), Status::Signaled);
    fs[0].signal().unwrap();
    fs[2].signal().unwrap();
    assert!(!a.remove_callback(id));
    assert_eq!(runs.get(), 1);
    assert_eq!(a.signal().unwrap_err(), FenceError::AlreadySignaled);
}

fn any_mode_error_of_first<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let a = array(&fs, true);
    a.enable_sw_signaling();
    fs[2].set_error(Errno::ETIME).unwrap();
    fs[2].signal().unwrap();
    assert_eq!(completed(&a), Status::Error(Errno::ETIME));
    fs[0].set_error(Errno::ECANCELED).unwrap();
    fs[0].signal().unwrap();
    assert_eq!(a.error(), Some(Errno::ETIME));
}

fn error_first_by_signalling_order<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    a.enable_sw_signaling();
    fs[0].set_error(Errno::ENODATA).unwrap();
    fs[2].set_error(Errno::ETIME).unwrap();
    fs[3].set_error(Errno::ECANCELED).unwrap();
    // Signalled order: 1 (ok), 3 (ECANCELED), 2 (ETIME), 0 (ENODATA).
    for i in [1, 3, 2] {
        fs[i].signal().unwrap();
        assert!(!a.test_signaled_flag());
        assert_eq!(
            a.error(),
            None,
            "no error is visible before the array signals"
        );
    }
    fs[0].signal().unwrap();
    assert_eq!(completed(&a), Status::Error(Errno::ECANCELED));
    assert_eq!(a.error(), Some(Errno::ECANCELED));
}

fn error_of_member_signalled_before_enable<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    fs[1].set_error(Errno::ETIME).unwrap();
    fs[1].signal().unwrap();
    let a = array(&fs, false);
    a.enable_sw_signaling();
    fs[2].set_error(Errno::ECANCELED).unwrap();
    fs[2].signal().unwrap();
    assert!(!a.test_signaled_flag());
    fs[0].signal().unwrap();
    assert_eq!(completed(&a), Status::Error(Errno::ETIME));
}

fn error_set_on_array_wins<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=2).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    a.set_error(Errno::ENODATA).unwrap();
    a.enable_sw_signaling();
    fs[0].set_error(Errno::ETIME).unwrap();
    fs[0].signal().unwrap();
    fs[1].signal().unwrap();
    assert_eq!(completed(&a), Status::Error(Errno::ENODATA));
}

fn empty<B: Backend>() {
    for any in [false, true] {
        let e = FenceArray::<B>::create(Vec::new(), context_alloc(1), 1, any).unwrap_err();
        assert_eq!(e, FenceError::Empty);
    }
}

fn identity<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let ctx = context_alloc(1);
    let a = FenceArray::create(fs.clone(), ctx, 7, false).unwrap();
    assert_eq!((a.context(), a.seqno()), (ctx, 7));
    assert!(a.is_container());
    assert!(a.as_chain().is_none());
    assert!(fs[0].as_array().is_none());
    assert_eq!(a.driver_name(), "dma_fence_array");
    assert_eq!(a.timeline_name(), "unbound");
    let arr = a.as_array().unwrap();
    assert_eq!(arr.num_fences(), 3);
    assert!(!arr.signal_on_any());
    let held: Vec<_> = arr.fences().collect();
    assert_eq!(held.len(), 3);
    for (h, f) in held.iter().zip(&fs) {
        assert!(h.ptr_eq(f));
    }
    assert!(arr.fence(2).unwrap().ptr_eq(&fs[2]));
    assert!(arr.fence(3).is_none());
}

fn enable_installs_on_members<B: Backend>() {
    let tl = timeline::<B>();
    let enables = Counter::new();
    let fs: Vec<_> = (1..=5).map(|s| counted_fence(&tl, s, &enables)).collect();
    let a = array(&fs, false);
    assert_eq!(enables.get(), 0, "creating does not enable");
    a.enable_sw_signaling();
    assert_eq!(
        enables.get(),
        5,
        "enabling the array enables every member once"
    );
    a.enable_sw_signaling();
    a.add_callback(|_| {}).unwrap();
    assert_eq!(enables.get(), 5, "the array's hook runs once");
    // Installed callbacks: each member's signal counts down.
    for f in &fs {
        assert!(!a.test_signaled_flag());
        f.signal().unwrap();
    }
    assert_eq!(completed(&a), Status::Signaled);
}

fn enable_any_mode_installs_on_all<B: Backend>() {
    let tl = timeline::<B>();
    let enables = Counter::new();
    let fs: Vec<_> = (1..=3).map(|s| counted_fence(&tl, s, &enables)).collect();
    let a = array(&fs, true);
    a.enable_sw_signaling();
    assert_eq!(enables.get(), 3);
}

fn member_signalled_at_enable<B: Backend>() {
    let tl = timeline::<B>();
    let enables = Counter::new();
    let fs: Vec<_> = (1..=3).map(|s| counted_fence(&tl, s, &enables)).collect();
    fs[0].signal().unwrap();
    let a = array(&fs, false);
    a.enable_sw_signaling();
    assert_eq!(enables.get(), 2, "no hook for the member found signalled");
    assert!(!a.test_signaled_flag());
    fs[2].signal().unwrap();
    assert!(!a.test_signaled_flag());
    fs[1].signal().unwrap();
    assert_eq!(completed(&a), Status::Signaled);
}

fn all_members_signalled_at_enable<B: Backend>() {
    for any in [false, true] {
        let tl = timeline::<B>();
        let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
        let signalled = if any { &fs[1..2] } else { &fs[..] };
        for f in signalled {
            f.signal().unwrap();
        }
        let a = array(&fs, any);
        assert!(!a.test_signaled_flag());
        // The enable loop completes the array; the core signals it before returning, on
        // both backends (no member callback is involved).
        a.enable_sw_signaling();
        assert!(a.test_signaled_flag());
        assert_eq!(a.status(), Status::Signaled);
        assert_eq!(
            a.add_callback(|_| {}).unwrap_err(),
            FenceError::AlreadySignaled
        );
    }
}

fn all_members_signalled_at_enable_with_error<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    fs[2].set_error(Errno::ETIME).unwrap();
    fs[1].set_error(Errno::ECANCELED).unwrap();
    for f in &fs {
        f.signal().unwrap();
    }
    let a = array(&fs, false);
    // add_callback enables; the array completes inside and the callback is refused.
    assert_eq!(
        a.add_callback(|_| {}).unwrap_err(),
        FenceError::AlreadySignaled
    );
    // Already signalled at enable: members are finished in index order.
    assert_eq!(a.status(), Status::Error(Errno::ECANCELED));
}

fn fences_after_member_signalled<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    let arr = a.as_array().unwrap();
    // Not enabled: a signalled member is still held on both backends.
    fs[0].signal().unwrap();
    assert_eq!(arr.fences().count(), 3);
    a.enable_sw_signaling();
    fs[1].signal().unwrap();
    let held: Vec<_> = arr.fences().collect();
    if common::releases_members::<B>() {
        // Finished members are released: the one found signalled at enable and the one
        // whose callback ran.
        assert_eq!(held.len(), 1);
        assert!(held[0].ptr_eq(&fs[2]));
        assert!(arr.fence(0).is_none() && arr.fence(1).is_none());
    } else {
        // The kernel's array keeps every member until its own release.
        assert_eq!(held.len(), 3);
        for (h, f) in held.iter().zip(&fs) {
            assert!(h.ptr_eq(f));
        }
    }
    assert_eq!(arr.num_fences(), 3, "num_fences is the size at creation");
    fs[2].signal().unwrap();
    assert_eq!(completed(&a), Status::Signaled);
    let expected = if common::releases_members::<B>() {
        0
    } else {
        3
    };
    assert_eq!(arr.fences().count(), expected);
}

/// Hooks that count the fence's release (the hooks are dropped with the fence).
struct Tracked(#[allow(dead_code)] common::DropGuard);

impl<B: Backend> FenceOps<B> for Tracked {
    fn driver_name(&self) -> &str {
        "tracked"
    }
    fn timeline_name(&self) -> &str {
        "tracked"
    }
}

fn member_references_released<B: Backend>() {
    // On `Rcu` and `LockedRcu` a signalled array holds nothing: a finished member's
    // reference goes with its callback (after a grace period). On `Locked` the members go
    // with the array.
    let tl = timeline::<B>();
    let freed = Counter::new();
    let fs: Vec<_> = (1..=3)
        .map(|s| tl.fence_with_ops(s, Arc::new(Tracked(freed.drop_guard()))))
        .collect();
    let a = array(&fs, false);
    a.enable_sw_signaling();
    for f in &fs {
        f.signal().unwrap();
    }
    drop(fs);
    assert_eq!(completed(&a), Status::Signaled);
    rcu_fence::synchronize_rcu();
    let releases = common::releases_members::<B>();
    assert_eq!(freed.get(), if releases { 3 } else { 0 });
    // On `Locked` the members go with the array's last reference.
    drop(a);
    rcu_fence::synchronize_rcu();
    assert_eq!(freed.get(), 3);
}

fn poll_without_enabling<B: Backend>() {
    let tl = timeline::<B>();
    let enables = Counter::new();
    let fs: Vec<_> = (1..=3).map(|s| counted_fence(&tl, s, &enables)).collect();
    let a = array(&fs, false);
    fs[0].signal().unwrap();
    fs[1].signal().unwrap();
    assert!(!a.is_signaled());
    assert_eq!(a.status(), Status::Pending);
    fs[2].signal().unwrap();
    assert!(
        !a.test_signaled_flag(),
        "nothing was enabled: nothing signals the array by itself"
    );
    assert!(
        a.is_signaled(),
        "polling sees every member signalled and signals the array"
    );
    assert!(a.test_signaled_flag());
    assert_eq!(a.status(), Status::Signaled);
    assert_eq!(enables.get(), 0, "polling does not enable members");
}

fn poll_any_mode_without_enabling<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
    let a = array(&fs, true);
    assert!(!a.is_signaled());
    fs[2].signal().unwrap();
    assert!(a.is_signaled());
    assert!(a.test_signaled_flag());
}

/// Hooks whose `signaled` reports a shared hardware flag.
struct Hw(Arc<AtomicBool>);

impl<B: Backend> FenceOps<B> for Hw {
    fn driver_name(&self) -> &str {
        "hw"
    }
    fn timeline_name(&self) -> &str {
        "ring"
    }
    fn signaled(&self, _: &Fence<B>) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll_reaches_member_hooks<B: Backend>() {
    let tl = timeline::<B>();
    let done = Arc::new(AtomicBool::new(false));
    let hw = tl.fence_with_ops(1, Arc::new(Hw(done.clone())));
    let plain = tl.fence(2);
    plain.signal().unwrap();
    let a = array(&[hw.clone(), plain], false);
    assert!(!a.is_signaled());
    done.store(true, Ordering::SeqCst);
    assert!(a.is_signaled());
    assert!(
        hw.test_signaled_flag(),
        "polling the member's hook signals the member"
    );
}

fn poll_after_enabling<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=2).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    a.enable_sw_signaling();
    fs[0].signal().unwrap();
    assert!(!a.is_signaled());
    fs[1].signal().unwrap();
    // Enabled: polling answers from the pending count (or the members); either way the
    // array is complete now.
    assert!(a.is_signaled());
    assert_eq!(settle(&a), Status::Signaled);
}

fn waiters_on_array<B: Backend>() {
    let tl = timeline::<B>();
    let fs: Vec<_> = (1..=8).map(|s| tl.fence(s)).collect();
    let a = array(&fs, false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| a.wait());
        for f in &fs {
            s.spawn(move || f.signal().unwrap());
        }
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    assert!(fs.iter().all(|f| f.test_signaled_flag()));
}

fn array_in_array_rules<B: Backend>() {
    // A nested array is accepted on both backends (Locked only counts it as a warning).
    let tl = timeline::<B>();
    let (x, y) = (tl.fence(1), tl.fence(2));
    let inner = array(std::slice::from_ref(&x), false);
    let outer = array(&[inner.clone(), y.clone()], false);
    outer.enable_sw_signaling();
    y.signal().unwrap();
    x.signal().unwrap();
    assert_eq!(settle(&inner), Status::Signaled);
    assert_eq!(settle(&outer), Status::Signaled);
}

/// A poll in the window after a member's flag is set but before the array's own callback
/// on it has run (here: from an earlier callback on the member) must not lose its error.
fn poll_from_member_callback_keeps_error<B: Backend>() {
    let tl = timeline::<B>();
    let member = tl.fence(1);
    let seen: Arc<std::sync::Mutex<Option<Fence<B>>>> = Arc::default();
    let polled = Arc::new(AtomicBool::new(false));
    let (s, p) = (seen.clone(), polled.clone());
    // Installed before the array exists, so it runs before the array's callback.
    member
        .add_callback(move |_| {
            if let Some(a) = s.lock().unwrap().take() {
                p.store(a.is_signaled(), Ordering::SeqCst);
            }
        })
        .unwrap();
    let a = array(std::slice::from_ref(&member), false);
    a.enable_sw_signaling();
    *seen.lock().unwrap() = Some(a.clone());
    member.set_error(Errno::ETIME).unwrap();
    member.signal().unwrap();
    // Enabled: the count decides (the kernel's rule), so the window poll says "not yet".
    assert!(
        !polled.load(Ordering::SeqCst),
        "an enabled array answers from its pending count"
    );
    assert_eq!(settle(&a), Status::Error(Errno::ETIME));

    // Never enabled: the poll walks the members' flags and must record the error it sees.
    let failed = tl.fence(2);
    failed.set_error(Errno::ENODATA).unwrap();
    failed.signal().unwrap();
    let b = array(std::slice::from_ref(&failed), false);
    assert!(b.is_signaled());
    assert_eq!(b.status(), Status::Error(Errno::ENODATA));
}

every_backend!(
    poll_from_member_callback_keeps_error,
    all_mode,
    all_mode_callback_once,
    any_mode,
    any_mode_error_of_first,
    error_first_by_signalling_order,
    error_of_member_signalled_before_enable,
    error_set_on_array_wins,
    empty,
    identity,
    enable_installs_on_members,
    enable_any_mode_installs_on_all,
    member_signalled_at_enable,
    all_members_signalled_at_enable,
    all_members_signalled_at_enable_with_error,
    fences_after_member_signalled,
    member_references_released,
    poll_without_enabling,
    poll_any_mode_without_enabling,
    poll_reaches_member_hooks,
    poll_after_enabling,
    waiters_on_array,
    array_in_array_rules,
);
