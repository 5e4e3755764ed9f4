//! One behaviour suite, instantiated for each reclaimer by `suite!` at the
//! bottom. Every test counts drops with its own counter, so tests running in
//! parallel (and sharing a reclaimer's global state) do not disturb each
//! other's counts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::support::{Counted, counter};
use crate::{Guard, Reclaimer, Slot, Slots, defer, flush, pin, synchronize};

fn replace_drops_after_synchronize<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    slot.replace(Some(Counted::new(2, &drops)));
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    {
        let mut guard = pin::<R>();
        assert_eq!(slot.load(&mut guard).unwrap().check(), 2);
    }
    drop(slot);
    // Dropping the slot drops its value at once, without synchronize.
    assert_eq!(drops.load(SeqCst), 2);
}

fn reader_keeps_replaced_value<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let mut guard = pin::<R>();
    let old = slot.load(&mut guard).unwrap();
    slot.replace(Some(Counted::new(2, &drops)));
    flush::<R>();
    assert_eq!(
        drops.load(SeqCst),
        0,
        "replaced value dropped under a reader"
    );
    assert_eq!(old.check(), 1);
    drop(guard);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    drop(slot);
    assert_eq!(drops.load(SeqCst), 2);
}

fn reader_on_another_thread_holds_back_reclaim<R: Reclaimer>() {
    let drops = counter();
    let slot: Arc<Slot<Box<Counted>, R>> = Arc::new(Slot::new(Some(Counted::new(1, &drops))));
    let loaded = Arc::new(Barrier::new(2));
    let replaced = Arc::new(Barrier::new(2));
    let reader = {
        let (slot, loaded, replaced) = (slot.clone(), loaded.clone(), replaced.clone());
        thread::spawn(move || {
            let mut guard = pin::<R>();
            let value = slot.load(&mut guard).unwrap();
            loaded.wait();
            replaced.wait();
            value.check()
        })
    };
    loaded.wait();
    slot.replace(Some(Counted::new(2, &drops)));
    flush::<R>();
    assert_eq!(
        drops.load(SeqCst),
        0,
        "replaced value dropped under a reader"
    );
    replaced.wait();
    assert_eq!(reader.join().unwrap(), 1);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
}

fn take_retires_once<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    assert!(!slot.is_empty());
    assert!(slot.take());
    assert!(slot.is_empty());
    assert!(!slot.take());
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    let mut guard = pin::<R>();
    assert!(slot.load(&mut guard).is_none());
}

fn compare_exchange_success_and_failure<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::empty();
    // Empty slot: `null` matches.
    assert!(
        slot.compare_exchange(std::ptr::null(), Some(Counted::new(1, &drops)))
            .is_ok()
    );
    let mut guard = pin::<R>();
    let first = slot.load(&mut guard).unwrap().as_raw();
    // Wrong expectation: the new value comes back intact, nothing dropped.
    let back = slot.compare_exchange(std::ptr::null(), Some(Counted::new(2, &drops)));
    let back = back.unwrap_err().unwrap();
    assert_eq!(back.check(), 2);
    assert_eq!(drops.load(SeqCst), 0);
    drop(back);
    assert_eq!(drops.load(SeqCst), 1);
    // Right expectation: installed; the old value is retired.
    assert!(
        slot.compare_exchange(first, Some(Counted::new(3, &drops)))
            .is_ok()
    );
    assert_eq!(slot.load(&mut guard).unwrap().check(), 3);
    // A stale expectation fails, also for `None`.
    assert!(matches!(slot.compare_exchange(first, None), Err(None)));
    drop(guard);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 2);
    drop(slot);
    assert_eq!(drops.load(SeqCst), 3);
}

fn exclusive_access_does_not_defer<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let value = slot.into_inner().unwrap();
    assert_eq!(value.check(), 1);
    assert_eq!(drops.load(SeqCst), 0);
    drop(value);
    assert_eq!(drops.load(SeqCst), 1);

    let mut slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(2, &drops)));
    *slot.get_mut().unwrap() = Counted::new(3, &drops);
    // The overwritten value is dropped on the spot.
    assert_eq!(drops.load(SeqCst), 2);
    assert_eq!(slot.into_inner().unwrap().check(), 3);
    assert_eq!(drops.load(SeqCst), 3);
    assert!(Slot::<Box<Counted>, R>::empty().into_inner().is_none());
}

fn slots_array<R: Reclaimer>() {
    let drops = counter();
    let slots: Slots<Box<Counted>, R> = (0..4).map(|i| Counted::new(i, &drops)).collect();
    assert_eq!(slots.len(), 4);
    assert!(!slots.is_empty());
    assert!(slots.get(4).is_none());
    assert!(slots.get(1).unwrap().take());
    assert!(slots.get(3).unwrap().take());
    let mut guard = Guard::<R>::new();
    let mut seen = Vec::new();
    for slot in &slots {
        let mut inner = pin::<R>();
        if let Some(v) = slot.load(&mut inner) {
            seen.push(v.check());
        }
    }
    assert_eq!(seen, [0, 2]);
    assert_eq!(slots.get(0).unwrap().load(&mut guard).unwrap().check(), 0);
    drop(guard);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 2);
    drop(slots);
    assert_eq!(drops.load(SeqCst), 4);
    assert!(Slots::<Box<Counted>, R>::new([]).is_empty());
}

fn arc_values<R: Reclaimer>() {
    let drops = counter();
    let value: Arc<Counted> = Arc::from(Counted::new(7, &drops));
    let slot: Slot<Arc<Counted>, R> = Slot::new(Some(value.clone()));
    let cloned = slot.load_clone().unwrap();
    assert!(Arc::ptr_eq(&cloned, &value));
    assert_eq!(Arc::strong_count(&value), 3);
    slot.take();
    synchronize::<R>();
    assert_eq!(Arc::strong_count(&value), 2);
    drop((cloned, value));
    assert_eq!(drops.load(SeqCst), 1);
}

fn deferred_closures_run_by_synchronize<R: Reclaimer>() {
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..100 {
        let log = log.clone();
        defer::<R>(move || log.lock().unwrap().push(i));
    }
    synchronize::<R>();
    let mut seen = log.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

/// A closure deferred while another thread is inside a section does not run
/// until that reader leaves. Not for `Hazard`, which protects values only.
fn defer_waits_for_readers<R: Reclaimer>() {
    let ran = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(Barrier::new(2));
    let leave = Arc::new(Barrier::new(2));
    let reader = {
        let (entered, leave) = (entered.clone(), leave.clone());
        thread::spawn(move || {
            let guard = pin::<R>();
            entered.wait();
            leave.wait();
            drop(guard);
        })
    };
    entered.wait();
    let flag = ran.clone();
    defer::<R>(move || flag.store(true, SeqCst));
    for _ in 0..10 {
        flush::<R>();
    }
    assert!(!ran.load(SeqCst), "deferred closure ran under a reader");
    leave.wait();
    reader.join().unwrap();
    synchronize::<R>();
    assert!(ran.load(SeqCst));
}

/// `synchronize` is a grace period even when nothing was retired: it returns
/// only after a reader that was inside when it was called has left. (Not for
/// `Hazard`, which protects values, not sections.) A reader that is still
/// inside when `synchronize` returns fails the test; a `synchronize` slow to
/// start can only make it pass vacuously, never fail.
fn synchronize_waits_for_readers<R: Reclaimer>() {
    let left = Arc::new(AtomicBool::new(false));
    let (inside, is_inside) = std::sync::mpsc::channel();
    let reader = {
        let left = left.clone();
        thread::spawn(move || {
            let guard = pin::<R>();
            inside.send(()).unwrap();
            for _ in 0..1_000 {
                thread::yield_now();
            }
            left.store(true, SeqCst);
            drop(guard);
        })
    };
    is_inside.recv().unwrap();
    synchronize::<R>();
    assert!(left.load(SeqCst), "synchronize returned under a reader");
    reader.join().unwrap();
}

/// Hazard pointers protect values, not sections: a deferred closure runs at
/// the next reclamation pass even while a reader is inside.
fn defer_ignores_readers<R: Reclaimer>() {
    let ran = Arc::new(AtomicBool::new(false));
    let guard = pin::<R>();
    let flag = ran.clone();
    defer::<R>(move || flag.store(true, SeqCst));
    // `flush` offers the closure to a reclamation pass without waiting: a pass that a test
    // running alongside has already started may take it and run it a moment later. Offer
    // again until it has run (bounded), still inside this thread's section.
    let deadline = Instant::now() + Duration::from_secs(10);
    flush::<R>();
    while !ran.load(SeqCst) && Instant::now() < deadline {
        thread::yield_now();
        flush::<R>();
    }
    assert!(
        ran.load(SeqCst),
        "a deferred closure waited for a reader's section"
    );
    drop(guard);
}

/// A value whose drop replaces another slot and defers a closure: one
/// `synchronize` drains the cascade.
struct Cascade<R: Reclaimer> {
    inner: Arc<Slot<Box<Counted>, R>>,
    drops: Arc<AtomicUsize>,
}

impl<R: Reclaimer> Drop for Cascade<R> {
    fn drop(&mut self) {
        self.inner.replace(None);
        let drops = self.drops.clone();
        defer::<R>(move || {
            drops.fetch_add(1, SeqCst);
        });
    }
}

fn cascading_drops<R: Reclaimer>() {
    let drops = counter();
    let inner: Arc<Slot<Box<Counted>, R>> = Arc::new(Slot::new(Some(Counted::new(1, &drops))));
    let outer: Slot<Box<Cascade<R>>, R> = Slot::new(Some(Box::new(Cascade {
        inner: inner.clone(),
        drops: drops.clone(),
    })));
    assert!(outer.take());
    synchronize::<R>();
    // The inner value and the deferred closure.
    assert_eq!(drops.load(SeqCst), 2);
    assert!(inner.is_empty());
}

/// Writers replace while readers load: readers never see a dropped value and
/// every value is dropped exactly once.
fn concurrent_replace_and_load<R: Reclaimer>() {
    const WRITERS: usize = 3;
    const READERS: usize = 3;
    const REPLACES: usize = 2000;
    let drops = counter();
    let slot: Arc<Slot<Box<Counted>, R>> = Arc::new(Slot::new(Some(Counted::new(0, &drops))));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (slot, stop) = (slot.clone(), stop.clone());
            thread::spawn(move || {
                let mut loads = 0usize;
                while !stop.load(SeqCst) {
                    let mut guard = pin::<R>();
                    if let Some(v) = slot.load(&mut guard) {
                        v.check();
                        loads += 1;
                    }
                }
                loads
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (slot, drops) = (slot.clone(), drops.clone());
            thread::spawn(move || {
                for i in 0..REPLACES {
                    let id = 1 + w * REPLACES + i;
                    match i % 3 {
                        0 => slot.replace(Some(Counted::new(id, &drops))),
                        1 => {
                            let mut guard = pin::<R>();
                            let seen = slot
                                .load(&mut guard)
                                .map_or(std::ptr::null(), |v| v.as_raw());
                            // Lost races give the value back; it is dropped here.
                            let _ = slot.compare_exchange(seen, Some(Counted::new(id, &drops)));
                        }
                        _ => {
                            slot.take();
                            drop(Counted::new(id, &drops));
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    drop(Arc::try_unwrap(slot).unwrap());
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1 + WRITERS * REPLACES);
}

/// Records whether it was dropped on the reader's thread.
struct Spy {
    reader: Arc<std::sync::OnceLock<thread::ThreadId>>,
    on_reader: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Spy {
    fn drop(&mut self) {
        if self.reader.get() == Some(&thread::current().id()) {
            self.on_reader.fetch_add(1, SeqCst);
        }
        self.drops.fetch_add(1, SeqCst);
    }
}

/// Readers never run deferred work: a reader pinning and loading over and
/// over while a writer retires values, and after it stops (crossbeam
/// collects inside every 128th pin), never drops one of them; the writer's
/// own calls do.
fn readers_never_run_deferred_work<R: Reclaimer>() {
    const WRITES: usize = 5_000;
    let reader_id = Arc::new(std::sync::OnceLock::new());
    let (on_reader, drops) = (counter(), counter());
    let spy = || {
        Box::new(Spy {
            reader: reader_id.clone(),
            on_reader: on_reader.clone(),
            drops: drops.clone(),
        })
    };
    let slot: Arc<Slot<Box<Spy>, R>> = Arc::new(Slot::new(Some(spy())));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (slot, stop, reader_id) = (slot.clone(), stop.clone(), reader_id.clone());
        thread::spawn(move || {
            reader_id.set(thread::current().id()).unwrap();
            while !stop.load(SeqCst) {
                let mut guard = pin::<R>();
                assert!(slot.load(&mut guard).is_some());
            }
            // The writer is done: the last batches expire during these
            // pins, and crossbeam collects in every 128th of them.
            for _ in 0..20_000 {
                let mut guard = pin::<R>();
                assert!(slot.load(&mut guard).is_some());
            }
        })
    };
    while reader_id.get().is_none() {
        thread::yield_now();
    }
    for i in 0..WRITES {
        slot.replace(Some(spy()));
        if i % 500 == 0 {
            flush::<R>();
        }
    }
    stop.store(true, SeqCst);
    reader.join().unwrap();
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), WRITES, "every replaced value dropped");
    assert_eq!(
        on_reader.load(SeqCst),
        0,
        "deferred drops ran on the reader's thread"
    );
}

fn synchronize_inside_a_section_panics<R: Reclaimer>() {
    let guard = pin::<R>();
    let result = std::panic::catch_unwind(|| synchronize::<R>());
    drop(guard);
    assert!(result.is_err());
}

fn nested_guards<R: Reclaimer>() {
    let drops = counter();
    let slot: Slot<Box<Counted>, R> = Slot::new(Some(Counted::new(1, &drops)));
    let mut outer = pin::<R>();
    let mut inner = pin::<R>();
    let a = slot.load(&mut outer).unwrap();
    let b = slot.load(&mut inner).unwrap();
    assert_eq!(a.as_raw(), b.as_raw());
    slot.replace(None);
    drop(outer);
    flush::<R>();
    // `b` still protects it.
    assert_eq!(b.check(), 1);
    drop(inner);
    synchronize::<R>();
    assert_eq!(drops.load(SeqCst), 1);
    assert!(format!("{:?}", pin::<R>()).contains(R::NAME));
}

/// Reader A waits, inside its section, for reader C; B is in `synchronize`,
/// waiting for A. C's `pin` must not wait for B (an RCU read side never
/// blocks), or the three deadlock. C pins and unpins repeatedly from before B
/// starts until well after, so that some of its pins overlap B's wait.
fn pin_does_not_wait_for_synchronize<R: Reclaimer>() {
    const ROUNDS: usize = 2_000;
    super::support::within(60, "pin_does_not_wait_for_synchronize", || {
        let (a_inside, a_is_inside) = std::sync::mpsc::channel();
        let (c_done, c_is_done) = std::sync::mpsc::channel::<()>();
        let b_started = Arc::new(AtomicBool::new(false));
        let a = thread::spawn(move || {
            let guard = pin::<R>();
            a_inside.send(()).unwrap();
            c_is_done.recv().unwrap();
            drop(guard);
        });
        a_is_inside.recv().unwrap();
        let b = {
            let b_started = b_started.clone();
            thread::spawn(move || {
                b_started.store(true, SeqCst);
                synchronize::<R>();
            })
        };
        let c = thread::spawn(move || {
            let mut after = 0;
            while after < ROUNDS {
                drop(pin::<R>());
                if b_started.load(SeqCst) {
                    after += 1;
                }
                thread::yield_now();
            }
            c_done.send(()).unwrap();
        });
        for t in [c, a, b] {
            t.join().unwrap();
        }
    });
}

macro_rules! suite {
    ($module:ident, $reclaimer:ty, sections: $sections:literal) => {
        mod $module {
            type R = $reclaimer;

            #[test]
            fn replace_drops_after_synchronize() {
                let _serial = crate::tests::support::shared();
                super::replace_drops_after_synchronize::<R>();
            }
            #[test]
            fn reader_keeps_replaced_value() {
                let _serial = crate::tests::support::shared();
                super::reader_keeps_replaced_value::<R>();
            }
            #[test]
            fn reader_on_another_thread_holds_back_reclaim() {
                let _serial = crate::tests::support::shared();
                super::reader_on_another_thread_holds_back_reclaim::<R>();
            }
            #[test]
            fn take_retires_once() {
                let _serial = crate::tests::support::shared();
                super::take_retires_once::<R>();
            }
            #[test]
            fn compare_exchange_success_and_failure() {
                let _serial = crate::tests::support::shared();
                super::compare_exchange_success_and_failure::<R>();
            }
            #[test]
            fn exclusive_access_does_not_defer() {
                let _serial = crate::tests::support::shared();
                super::exclusive_access_does_not_defer::<R>();
            }
            #[test]
            fn slots_array() {
                let _serial = crate::tests::support::shared();
                super::slots_array::<R>();
            }
            #[test]
            fn arc_values() {
                let _serial = crate::tests::support::shared();
                super::arc_values::<R>();
            }
            #[test]
            fn deferred_closures_run_by_synchronize() {
                let _serial = crate::tests::support::shared();
                super::deferred_closures_run_by_synchronize::<R>();
            }
            #[test]
            fn deferred_closures_and_readers() {
                let _serial = crate::tests::support::shared();
                if $sections {
                    super::defer_waits_for_readers::<R>();
                    super::synchronize_waits_for_readers::<R>();
                } else {
                    super::defer_ignores_readers::<R>();
                }
            }
            #[test]
            fn cascading_drops() {
                let _serial = crate::tests::support::shared();
                super::cascading_drops::<R>();
            }
            #[test]
            fn concurrent_replace_and_load() {
                let _serial = crate::tests::support::shared();
                super::concurrent_replace_and_load::<R>();
            }
            #[test]
            fn synchronize_inside_a_section_panics() {
                let _serial = crate::tests::support::shared();
                super::synchronize_inside_a_section_panics::<R>();
            }
            #[test]
            fn pin_does_not_wait_for_synchronize() {
                let _serial = crate::tests::support::shared();
                super::pin_does_not_wait_for_synchronize::<R>();
            }
            #[test]
            fn readers_never_run_deferred_work() {
                let _serial = crate::tests::support::shared();
                super::readers_never_run_deferred_work::<R>();
            }
            #[test]
            fn nested_guards() {
                let _serial = crate::tests::support::shared();
                super::nested_guards::<R>();
            }
        }
    };
}

suite!(epoch, crate::Epoch, sections: true);
suite!(hazard, crate::Hazard, sections: false);
suite!(reference, crate::Reference, sections: true);
