//! Panic safety: a retired value whose `Drop` panics, and a deferred closure
//! that panics, leave every reclaimer working.
//!
//! The rule (see each reclaimer's module docs): a panicking job is caught, the
//! rest of its batch still runs, and the first panic resumes on the thread
//! that ran the batch, from the `rcu` call that ran it, once no counter or
//! flag is left raised. Afterwards every operation, `synchronize` included,
//! works; `pending()` comes back to its baseline; every other value retired
//! alongside is dropped exactly once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::support::{Counted, counter, exclusive, quiet_deliberate_panics, settle, within};
use crate::{Reclaimer, Slot, defer, flush, pending, pin, synchronize};

/// Seconds a scenario may take before the run is declared wedged.
const LIMIT: u64 = 60;

/// A value whose drop counts itself, then panics.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("a retired value's drop panicked (deliberately)");
    }
}

/// Runs `f`, returning how many times a panic escaped it (0 or 1).
fn panics(f: impl FnOnce()) -> usize {
    usize::from(catch_unwind(AssertUnwindSafe(f)).is_err())
}

/// After a panic: the reclaimer still pins, loads, retires and synchronizes,
/// and `pending()` is back at `baseline`.
fn still_works<R: Reclaimer>(baseline: usize) {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(10, &drops)));
    {
        let mut guard = pin::<R>();
        assert_eq!(slot.load(&mut guard).unwrap().check(), 10);
    }
    slot.replace(Some(Counted::new(11, &drops)));
    let ran = counter();
    let r = ran.clone();
    defer::<R>(move || {
        r.fetch_add(1, SeqCst);
    });
    flush::<R>();
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(ran.load(SeqCst), 1);
    drop(slot);
    assert_eq!(drops.load(SeqCst), 2);
    let now = settle::<R>(baseline);
    assert!(
        now <= baseline,
        "pending() is {now} after the panic, {baseline} before"
    );
}

/// Values retired around one whose drop panics are each dropped once, and the
/// panic reaches the caller once.
fn panicking_drop<R: Reclaimer>() {
    let _serial = exclusive();
    quiet_deliberate_panics();
    within(LIMIT, "panicking_drop", || {
        synchronize::<R>();
        let baseline = pending::<R>();
        let drops = counter();
        let bombs = counter();
        let values: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(0, &drops)));
        let bomb: Slot<Box<Bomb>, R> = Slot::new(Some(Box::new(Bomb(bombs.clone()))));
        let mut escaped = panics(|| values.replace(Some(Counted::new(1, &drops))));
        escaped += panics(|| assert!(bomb.take()));
        for id in 2..5 {
            escaped += panics(|| values.replace(Some(Counted::new(id, &drops))));
        }
        escaped += panics(synchronize::<R>);
        escaped += panics(synchronize::<R>);
        assert_eq!(escaped, 1, "the panic reaches a caller exactly once");
        assert_eq!(bombs.load(SeqCst), 1, "the panicking value dropped once");
        assert_eq!(drops.load(SeqCst), 4, "the values retired alongside");
        drop(values);
        assert_eq!(drops.load(SeqCst), 5);
        still_works::<R>(baseline);
    });
}

/// Closures deferred around one that panics each run once, and the panic
/// reaches the caller once.
fn panicking_closure<R: Reclaimer>() {
    let _serial = exclusive();
    quiet_deliberate_panics();
    within(LIMIT, "panicking_closure", || {
        synchronize::<R>();
        let baseline = pending::<R>();
        let ran = counter();
        let mut escaped = 0;
        for i in 0..8 {
            let ran = ran.clone();
            escaped += panics(|| {
                defer::<R>(move || {
                    ran.fetch_add(1, SeqCst);
                    if i == 3 {
                        panic!("a deferred closure panicked (deliberately)");
                    }
                })
            });
        }
        escaped += panics(synchronize::<R>);
        escaped += panics(synchronize::<R>);
        assert_eq!(escaped, 1, "the panic reaches a caller exactly once");
        assert_eq!(ran.load(SeqCst), 8, "every closure ran once");
        still_works::<R>(baseline);
    });
}

/// Several panics in one batch: the first is resumed, the rest are reported
/// by the panic hook and dropped; nothing aborts.
fn several_panics<R: Reclaimer>() {
    let _serial = exclusive();
    quiet_deliberate_panics();
    within(LIMIT, "several_panics", || {
        synchronize::<R>();
        let baseline = pending::<R>();
        let bombs = counter();
        let mut escaped = 0;
        for _ in 0..3 {
            let slot: Slot<Box<Bomb>, R> = Slot::new(Some(Box::new(Bomb(bombs.clone()))));
            escaped += panics(|| assert!(slot.take()));
        }
        escaped += panics(synchronize::<R>);
        escaped += panics(synchronize::<R>);
        assert!(
            (1..=3).contains(&escaped),
            "{escaped} panics reached a caller"
        );
        assert_eq!(bombs.load(SeqCst), 3);
        still_works::<R>(baseline);
    });
}

macro_rules! panic_suite {
    ($module:ident, $reclaimer:ty) => {
        mod $module {
            type R = $reclaimer;

            #[test]
            fn panicking_drop() {
                super::panicking_drop::<R>();
            }
            #[test]
            fn panicking_closure() {
                super::panicking_closure::<R>();
            }
            #[test]
            fn several_panics() {
                super::several_panics::<R>();
            }
        }
    };
}

panic_suite!(epoch, crate::Epoch);
panic_suite!(hazard, crate::Hazard);
panic_suite!(reference, crate::Reference);
