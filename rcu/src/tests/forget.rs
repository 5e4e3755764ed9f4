//! Forgetting a value of any public type is safe: at worst it leaks.
//!
//! Safe code may `mem::forget` anything, so a type whose `Drop` restores an
//! invariant must leave everything sound without it (the rule `Vec::drain`
//! follows by shortening the vector before it hands out elements). Each test
//! forgets one value, then uses and drops everything else.
//!
//! - [`SlotMut`](crate::SlotMut): the slot is left empty, the value leaks.
//! - [`Shared`](crate::Shared): a borrowed view with no `Drop`; forgetting it
//!   changes nothing.
//! - [`Slot`]: its value leaks; nothing else refers to it.
//! - [`Guard`](crate::Guard): the thread stays in a read-side section for
//!   good. Every reclaimer then holds back what that section may see (for
//!   `Epoch` and `Reference`, everything retired afterwards; for `Hazard`,
//!   the value the guard protected last), so nothing is freed early; that
//!   thread's `synchronize` panics, as inside any section, and other
//!   threads' `synchronize` waits forever, as for any reader that never
//!   leaves. Because that would wedge every later test of the reclaimer in
//!   this process, the scenario runs in a child process of the test binary.

use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::SeqCst;

use super::support::{Counted, counter};
use crate::{Reclaimer, Slot, flush, pin, synchronize};

/// A `SlotMut` forgotten after its value was replaced: the slot is left empty
/// and the new value leaks; nothing dangles and nothing is dropped twice.
fn forgotten_slot_mut<R: Reclaimer>() {
    let drops = counter();
    let mut slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let mut access = slot.get_mut().expect("the slot is full");
    *access = Counted::new(2, &drops);
    assert_eq!(
        drops.load(SeqCst),
        1,
        "the replaced value is dropped at once"
    );
    let leaked: *mut Counted = &mut **access;
    mem::forget(access);

    let mut guard = pin::<R>();
    assert!(
        slot.load(&mut guard).is_none(),
        "a slot whose `SlotMut` was forgotten still points at a value"
    );
    drop(guard);
    assert!(slot.is_empty());
    slot.replace(Some(Counted::new(3, &drops)));
    drop(slot);
    assert_eq!(drops.load(SeqCst), 2, "values 1 and 3 dropped, 2 leaked");

    // Reclaim the leak so that memcheck sees no lost block.
    // SAFETY: `leaked` points into the box the forgotten `SlotMut` owned; that
    // handle is gone, the slot no longer refers to the box, and the pointer
    // came from a mutable borrow of the whole allocation.
    let value = unsafe { Box::from_raw(leaked) };
    assert_eq!(value.check(), 2);
    drop(value);
    assert_eq!(drops.load(SeqCst), 3);
}

/// A `Shared` forgotten: nothing happens; the guard, the slot and the
/// reclaimer carry on.
fn forgotten_shared<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let mut guard = pin::<R>();
    let shared = slot.load(&mut guard).expect("the slot is full");
    assert_eq!(shared.check(), 1);
    // `Shared` has no `Drop` today; the test guards against one being added
    // that restores something.
    #[allow(clippy::forget_non_drop)]
    mem::forget(shared);
    slot.replace(Some(Counted::new(2, &drops)));
    assert_eq!(slot.load(&mut guard).unwrap().check(), 2);
    drop(guard);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    drop(slot);
    assert_eq!(drops.load(SeqCst), 2);
}

/// A `Slot` forgotten: its value leaks; other slots and the reclaimer carry
/// on.
fn forgotten_slot<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let leaked = {
        let mut guard = pin::<R>();
        slot.load(&mut guard).expect("the slot is full").as_raw()
    };
    mem::forget(slot);
    let other: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(2, &drops)));
    other.replace(Some(Counted::new(3, &drops)));
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1, "only the replaced value");
    drop(other);
    assert_eq!(drops.load(SeqCst), 2, "the forgotten slot's value leaked");

    // Reclaim the leak so that memcheck sees no lost block.
    // SAFETY: `leaked` came from `Box::into_raw` when the forgotten slot was
    // made; that slot owned the box and is gone without having dropped it.
    let value = unsafe { Box::from_raw(leaked.cast_mut().cast::<Counted>()) };
    assert_eq!(value.check(), 1);
    drop(value);
    assert_eq!(drops.load(SeqCst), 3);
}

/// Set in the child process that runs [`forgotten_guard_child`].
const CHILD: &str = "RCU_FORGOTTEN_GUARD_CHILD";

/// Runs the test named `child` of this test binary in a child process, with
/// [`CHILD`] set, and checks that it ran and passed.
fn in_child_process(child: &str) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            child,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{child} in a child process: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `Guard` forgotten (run only in a child process, see the module docs):
/// the thread stays in a section. Reads and writes still work; what the
/// section may see is not freed; this thread's `synchronize` panics.
fn forgotten_guard_child<R: Reclaimer>() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let mut guard = pin::<R>();
    assert_eq!(slot.load(&mut guard).unwrap().check(), 1);
    mem::forget(guard);

    {
        let mut guard = pin::<R>();
        assert_eq!(slot.load(&mut guard).unwrap().check(), 1);
    }
    slot.replace(Some(Counted::new(2, &drops)));
    flush::<R>();
    assert_eq!(
        drops.load(SeqCst),
        0,
        "a value the forgotten section may hold was dropped"
    );
    let waited = catch_unwind(AssertUnwindSafe(synchronize::<R>));
    assert!(waited.is_err(), "synchronize inside the section must panic");
    drop(slot);
    assert_eq!(drops.load(SeqCst), 1, "the slot's own value");
}

macro_rules! forget_suite {
    ($module:ident, $reclaimer:ty) => {
        mod $module {
            type R = $reclaimer;

            #[test]
            fn forgotten_slot_mut() {
                super::forgotten_slot_mut::<R>();
            }
            #[test]
            fn forgotten_shared() {
                let _serial = crate::tests::support::shared();
                super::forgotten_shared::<R>();
            }
            #[test]
            fn forgotten_slot() {
                let _serial = crate::tests::support::shared();
                super::forgotten_slot::<R>();
            }
            #[test]
            fn forgotten_guard() {
                let name = concat!(module_path!(), "::forgotten_guard_child");
                // Test names leave out the crate's name.
                let name = name.split_once("::").map_or(name, |(_, rest)| rest);
                super::in_child_process(name);
            }
            #[test]
            #[ignore = "run in a child process by `forgotten_guard`"]
            fn forgotten_guard_child() {
                super::forgotten_guard_child::<R>();
            }
        }
    };
}

forget_suite!(epoch, crate::Epoch);
forget_suite!(hazard, crate::Hazard);
forget_suite!(reference, crate::Reference);
