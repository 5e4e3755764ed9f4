//! Forgetting a value of any public type is safe: at worst it leaks.
//!
//! Safe code may `mem::forget` anything, so a type whose `Drop` restores an
//! invariant must leave everything sound without it (the rule `Vec::drain`
//! follows by shortening the vector before it hands out elements). Each test
//! forgets one value, then uses and drops everything else.

use std::mem;
use std::sync::atomic::Ordering::SeqCst;

use super::support::{Counted, counter};
use crate::{Reclaimer, Slot, pin};

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

macro_rules! forget_suite {
    ($module:ident, $reclaimer:ty) => {
        mod $module {
            type R = $reclaimer;

            #[test]
            fn forgotten_slot_mut() {
                super::forgotten_slot_mut::<R>();
            }
        }
    };
}

forget_suite!(epoch, crate::Epoch);
forget_suite!(hazard, crate::Hazard);
forget_suite!(reference, crate::Reference);
