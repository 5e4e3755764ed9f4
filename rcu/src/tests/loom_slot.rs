//! loom models of a slot on the [`Reference`] reclaimer.
//!
//! Run with:
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p rcu --release --target-dir target-loom --lib loom
//! ```
//!
//! Without the variable the models use a preemption bound of 2 anyway.
//!
//! Each value carries a drop flag kept outside the value, so a reader checks
//! "not yet dropped" without touching the value's memory, and the drop checks
//! "not dropped before" (exactly once).

use super::loom_support::model;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, Ordering::SeqCst};
use crate::sync::thread;
use crate::{Reference, Slot, pin, synchronize};

type R = Reference;

struct Tracked {
    dropped: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(!self.dropped.swap(true, SeqCst), "dropped twice");
    }
}

/// A value, its address in the slot, and its drop flag.
fn tracked() -> (Box<Tracked>, *const (), Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    let value = Box::new(Tracked {
        dropped: flag.clone(),
    });
    let raw = (&*value as *const Tracked).cast::<()>();
    (value, raw, flag)
}

/// A reader sees the old or the new value, and whichever it sees is not
/// dropped while it holds it; the old value is dropped by `synchronize`.
#[test]
fn loom_replace_vs_read() {
    model(|| {
        let (v0, raw0, flag0) = tracked();
        let (v1, raw1, flag1) = tracked();
        let slot: Arc<Slot<Box<Tracked>, R>> = Arc::new(Slot::new(Some(v0)));
        let reader = {
            let (slot, flag0, flag1) = (slot.clone(), flag0.clone(), flag1.clone());
            let (raw0, raw1) = (raw0 as usize, raw1 as usize);
            thread::spawn(move || {
                let mut guard = pin::<R>();
                let seen = slot.load(&mut guard).expect("never empty");
                let flag = match seen.as_raw() as usize {
                    raw if raw == raw0 => &flag0,
                    raw if raw == raw1 => &flag1,
                    _ => panic!("unknown pointer"),
                };
                assert!(!flag.load(SeqCst), "reader holds a dropped value");
                drop(guard);
            })
        };
        slot.replace(Some(v1));
        synchronize::<R>();
        assert!(
            flag0.load(SeqCst),
            "synchronize returned before the old value was dropped"
        );
        reader.join().unwrap();
        assert!(!flag1.load(SeqCst));
        drop(slot);
        assert!(flag1.load(SeqCst));
    });
}

/// `take` on one thread, a reader on another: the taken value outlives the
/// reader's view and is dropped exactly once, by the time `synchronize` ends.
#[test]
fn loom_take_vs_reclaim() {
    model(|| {
        let (v0, _, flag0) = tracked();
        let slot: Arc<Slot<Box<Tracked>, R>> = Arc::new(Slot::new(Some(v0)));
        let taker = {
            let slot = slot.clone();
            thread::spawn(move || {
                assert!(slot.take());
                synchronize::<R>();
            })
        };
        {
            let mut guard = pin::<R>();
            if slot.load(&mut guard).is_some() {
                assert!(!flag0.load(SeqCst), "reader holds a dropped value");
            }
        }
        taker.join().unwrap();
        assert!(flag0.load(SeqCst));
        assert!(slot.is_empty());
    });
}

/// A compare-exchange (expecting what it read under its guard) races a
/// replace: exactly one of the three values survives, the others are dropped
/// exactly once, and a losing compare-exchange gets its value back.
#[test]
fn loom_compare_exchange_vs_replace() {
    model(|| {
        let (v0, _, flag0) = tracked();
        let (v1, _, flag1) = tracked();
        let (v2, _, flag2) = tracked();
        let slot: Arc<Slot<Box<Tracked>, R>> = Arc::new(Slot::new(Some(v0)));
        let replacer = {
            let slot = slot.clone();
            thread::spawn(move || slot.replace(Some(v1)))
        };
        let won = {
            let mut guard = pin::<R>();
            let seen = slot.load(&mut guard).expect("never empty").as_raw();
            match slot.compare_exchange(seen, Some(v2)) {
                Ok(()) => true,
                Err(back) => {
                    assert!(back.is_some(), "the losing value comes back");
                    false
                }
            }
        };
        replacer.join().unwrap();
        synchronize::<R>();
        assert!(flag0.load(SeqCst), "the first value is always replaced");
        let survivor = Arc::try_unwrap(slot).expect("sole owner").into_inner();
        let survivor = survivor.expect("never empty");
        let dropped = [&flag0, &flag1, &flag2]
            .iter()
            .filter(|f| f.load(SeqCst))
            .count();
        // With the losing value (dropped when `back` went out of scope), two
        // of three are gone and the survivor is alive.
        assert_eq!(dropped, 2);
        assert!(!survivor.dropped.load(SeqCst));
        if !won {
            assert!(flag2.load(SeqCst));
        }
        drop(survivor);
        assert!(flag0.load(SeqCst) && flag1.load(SeqCst) && flag2.load(SeqCst));
    });
}
