//! Stalled readers: one thread stays inside a read-side section while others churn.
//!
//! - With epoch reclamation (the library's `DefaultReclaimer`), nothing retired after the
//!   reader pinned can be freed while it stays pinned: the garbage grows with the churn,
//!   and all of it is freed once the reader leaves.
//! - With hazard pointers (`rcu::Hazard` slots), a stalled reader holds back only the value
//!   it protects: the garbage stays bounded however long the churn goes on.
//!
//! The figures are printed (`--nocapture`); DESIGN.md's open questions discuss them.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};

use common::alloc::{CountingAlloc, live, tracked};
use common::{Counter, DropCounted};
use rcu::{Epoch, Hazard, Reclaimer, Slot};
use rcu_fence::{
    Backend, Fence, FenceArray, Locked, LockedRcu, Rcu, Timeline, context_alloc, unwrap,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The count is global to the binary: one measurement at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ROUNDS: usize = 4;
const ARRAYS_PER_ROUND: usize = 250;
const WIDTH: usize = 4;

/// Churns `ARRAYS_PER_ROUND` enabled arrays of `WIDTH` members, signalling every member
/// (each member's release is deferred past readers).
fn churn(tl: &Timeline) {
    for _ in 0..ARRAYS_PER_ROUND {
        let members: Vec<_> = (0..WIDTH as u64).map(|s| tl.fence(s)).collect();
        let array = FenceArray::create(members.clone(), context_alloc(1), 1, false).unwrap();
        array.enable_sw_signaling();
        for m in &members {
            m.signal().unwrap();
        }
        assert!(array.test_signaled_flag());
    }
}

/// Runs `hold` on a reader thread until told to leave, after the reader has entered.
fn with_stalled_reader(
    hold: impl FnOnce(&Barrier, mpsc::Receiver<()>) + Send + 'static,
    f: impl FnOnce(),
) {
    let entered = Arc::new(Barrier::new(2));
    let (leave, wait) = mpsc::channel();
    let e = entered.clone();
    let reader = std::thread::spawn(move || hold(&e, wait));
    entered.wait();
    f();
    leave.send(()).unwrap();
    reader.join().unwrap();
}

/// A reader that pins `Epoch` and stays until told to leave.
fn stall_epoch(entered: &Barrier, leave: mpsc::Receiver<()>) {
    let guard = rcu::pin::<Epoch>();
    entered.wait();
    leave.recv().unwrap();
    drop(guard);
}

/// Epoch: a pinned reader holds back every deferred release; the pending count and the
/// live bytes grow each round, and all of it goes once the reader leaves.
#[test]
fn epoch_garbage_grows_under_a_stalled_reader_and_is_freed_after() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tl = Timeline::new("stalled");
    churn(&tl);
    rcu_fence::synchronize_rcu();
    // Allocated before tracking starts, so that only the churn is counted.
    let mut figures = Vec::with_capacity(ROUNDS);
    let (pending0, live0) = (rcu::pending::<Epoch>(), live());
    with_stalled_reader(stall_epoch, || {
        tracked(|| {
            for _ in 0..ROUNDS {
                churn(&tl);
                rcu::flush::<Epoch>();
                figures.push((
                    rcu::pending::<Epoch>() - pending0.min(rcu::pending::<Epoch>()),
                    live().1 - live0.1,
                ));
            }
        });
    });
    common::eventually(|| {
        rcu_fence::synchronize_rcu();
        live() == live0
    });
    let after = (rcu::pending::<Epoch>(), live());
    eprintln!(
        "epoch, stalled reader: per round of {ARRAYS_PER_ROUND} arrays x {WIDTH}: (pending, live bytes) = {figures:?}; after the reader left: pending {}, live bytes {}",
        after.0,
        after.1.1 - live0.1
    );
    for pair in figures.windows(2) {
        assert!(
            pair[1].0 > pair[0].0,
            "the garbage grows while the reader stays: {figures:?}"
        );
    }
    assert!(
        figures[0].0 >= ARRAYS_PER_ROUND * WIDTH,
        "every release of the round is held back"
    );
    assert_eq!(after.1, live0, "everything is freed once the reader leaves");
}

/// The same churn with an `unwrap` iterator kept open on a long-lived array: the iterator
/// holds references, not a read-side section, so it holds back nothing but those.
#[test]
fn open_unwrap_iterator_holds_back_nothing_else() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tl = Timeline::new("stalled");
    let kept: Vec<_> = (0..3).map(|s| tl.fence(s)).collect();
    let array = FenceArray::create(kept.clone(), context_alloc(1), 1, false).unwrap();
    let mut leaves = unwrap(&array);
    assert!(leaves.next().is_some());
    churn(&tl);
    rcu_fence::synchronize_rcu();
    let live0 = live();
    tracked(|| churn(&tl));
    for _ in 0..4 {
        rcu_fence::synchronize_rcu();
    }
    assert_eq!(
        live(),
        live0,
        "the churn's garbage is freed while the iterator is open"
    );
    assert_eq!(leaves.count(), 2);
}

/// Churns a slot of reclaimer `R` while a reader on another thread holds a guard that has
/// loaded the first value; returns the pending count after each round.
fn slot_churn<R: Reclaimer>() -> (Vec<usize>, usize) {
    let slot: Arc<Slot<Box<[u8; 256]>, R>> = Arc::new(Slot::new(Some(Box::new([0; 256]))));
    let base = rcu::pending::<R>();
    let mut figures = Vec::new();
    let s = slot.clone();
    with_stalled_reader(
        move |entered, leave| {
            let mut guard = rcu::pin::<R>();
            let seen = s.load(&mut guard).map(|v| v[0]);
            entered.wait();
            leave.recv().unwrap();
            assert_eq!(seen, Some(0));
            drop(guard);
        },
        || {
            for _ in 0..ROUNDS {
                for i in 0..2_000 {
                    slot.replace(Some(Box::new([i as u8; 256])));
                }
                rcu::flush::<R>();
                figures.push(rcu::pending::<R>().saturating_sub(base));
            }
        },
    );
    rcu::synchronize::<R>();
    (figures, rcu::pending::<R>().saturating_sub(base))
}

/// Hazard pointers: the stalled reader protects one value; the garbage stays bounded.
/// Epoch, the same churn: it grows with every round.
#[test]
fn hazard_garbage_stays_bounded_epoch_grows() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (hazard, hazard_after) = slot_churn::<Hazard>();
    let (epoch, epoch_after) = slot_churn::<Epoch>();
    eprintln!(
        "slot churn, 2000 replaces per round, stalled reader: pending per round hazard {hazard:?} (after: {hazard_after}), epoch {epoch:?} (after: {epoch_after})"
    );
    assert!(
        hazard.iter().all(|&p| p < 1_000),
        "hazard pointers keep garbage bounded: {hazard:?}"
    );
    for pair in epoch.windows(2) {
        assert!(pair[1] > pair[0], "epoch garbage grows: {epoch:?}");
    }
    assert_eq!(
        (hazard_after, epoch_after),
        (0, 0),
        "all freed once the reader left"
    );
}

/// An array releases its signalled members while a reader stays pinned, and every handle is
/// then dropped. Returns how many members' driver ops were dropped before the reader left,
/// and after it left and a grace period passed.
fn members_dropped_under_a_stalled_reader<B: Backend>() -> (usize, usize) {
    const MEMBERS: usize = 8;
    let dropped = Counter::new();
    let mut before = 0;
    with_stalled_reader(stall_epoch, || {
        let tl = Timeline::new_in("stalled", B::default());
        let members: Vec<Fence<B>> = (1..=MEMBERS as u64)
            .map(|s| tl.fence_with_ops(s, Arc::new(DropCounted(dropped.clone()))))
            .collect();
        let array = FenceArray::create(members.clone(), context_alloc(1), 1, false).unwrap();
        array.enable_sw_signaling();
        for m in &members {
            m.signal().unwrap();
        }
        assert!(array.test_signaled_flag());
        drop(array);
        drop(members);
        before = dropped.get();
    });
    rcu_fence::synchronize_rcu();
    (before, dropped.get())
}

/// Regression (`Rcu`): an array released each signalled member's reference past RCU
/// readers, so a stalled reader held back whole members (their drivers' state too) until it
/// left. Now the reference goes at once and readers reach members through a weak
/// reference, which keeps only the memory: the members are dropped with their last handle,
/// as on `Locked`, where the kernel's `kfree_rcu` also holds back memory only. `LockedRcu`
/// keeps the counted slot (its classic final put rules out weak references), so its members
/// wait for the reader.
#[test]
fn a_stalled_reader_holds_back_memory_not_members() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(members_dropped_under_a_stalled_reader::<Rcu>(), (8, 8));
    assert_eq!(members_dropped_under_a_stalled_reader::<Locked>(), (8, 8));
    assert_eq!(
        members_dropped_under_a_stalled_reader::<LockedRcu>(),
        (0, 8)
    );
}
