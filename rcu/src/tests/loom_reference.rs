//! loom models of the [`Reference`] reclaimer: its two-phase count of
//! read-side sections (`reclaimer::phases`) against `synchronize` and the
//! opportunistic collection, and `synchronize` against another thread's
//! collection.
//!
//! Run with:
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p rcu --release --target-dir target-loom --lib loom_reference
//! ```
//!
//! Each model finishes at preemption bound 2 (the default here) in about
//! 0.1 s on the project's 2-vCPU machine (release build, process start
//! included); at bound 4, `loom_pin_never_waits_for_synchronize` takes 1.5 s
//! and the others 0.2 s.
//!
//! Mutations the models catch: dropping the fence after a reader's increment
//! (five models fail), a quiescence check that reads only the current counter,
//! a grace period that skips draining the other counter before the flip (both
//! caught by `loom_reader_across_two_grace_periods`), a `pin` that takes the
//! grace-period lock (caught by `loom_pin_never_waits_for_synchronize`), and a
//! `synchronize` that does not take the drain lock (caught by
//! `loom_synchronize_vs_collection`).
//! Dropping the *waiter's* fence is not caught: loom's model of `SeqCst`
//! fences is stronger than C++'s here, so that half rests on the argument in
//! the `phases` module.

use super::loom_support::{Signal, model};
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::sync::thread;
use crate::{Reference, Slot, pending, pin, synchronize};

type R = Reference;

/// Reader A waits, inside its section, for reader C to have pinned; B runs
/// `synchronize`, which waits for A. C's pin must not wait for B, or the
/// three deadlock (loom reports the deadlock). With a reader-writer lock that
/// lets a waiting writer go first, it did.
///
/// A blocks on a `Notify` rather than spinning: loom cannot schedule two
/// threads that both spin waiting for a third (tokio-rs/loom#53), and B's
/// grace period already spins.
#[test]
fn loom_pin_never_waits_for_synchronize() {
    model(|| {
        let c_pinned = Arc::new(loom::sync::Notify::new());
        let a = {
            let c_pinned = c_pinned.clone();
            thread::spawn(move || {
                let guard = pin::<R>();
                c_pinned.wait();
                drop(guard);
            })
        };
        let b = thread::spawn(synchronize::<R>);
        let guard = pin::<R>();
        c_pinned.notify();
        drop(guard);
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// `synchronize` waits for every reader that was in a section when it was
/// called: a reader seen inside before the call has left when it returns.
#[test]
fn loom_synchronize_waits_for_earlier_reader() {
    model(|| {
        let entered = Arc::new(AtomicBool::new(false));
        let left = Arc::new(AtomicBool::new(false));
        let reader = {
            let (entered, left) = (entered.clone(), left.clone());
            thread::spawn(move || {
                let guard = pin::<R>();
                entered.store(true, SeqCst);
                thread::yield_now();
                left.store(true, SeqCst);
                drop(guard);
            })
        };
        if entered.load(SeqCst) {
            synchronize::<R>();
            assert!(left.load(SeqCst), "synchronize returned under a reader");
        }
        reader.join().unwrap();
    });
}

struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A reader against two grace periods in a row: whichever value it loads is
/// alive while it holds it, however its section's phase interleaves with the
/// flips (a section that read the phase before a flip and counted itself
/// after it must still hold back the second grace period).
#[test]
fn loom_reader_across_two_grace_periods() {
    model(|| {
        let drops: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let slot: Arc<Slot<Box<(usize, Tracked)>, R>> =
            Arc::new(Slot::new(Some(Box::new((0, Tracked(drops[0].clone()))))));
        let reader = {
            let (slot, drops) = (slot.clone(), drops.clone());
            thread::spawn(move || {
                let mut guard = pin::<R>();
                let seen = slot.load(&mut guard).expect("never empty");
                thread::yield_now();
                assert_eq!(
                    drops[seen.0].load(SeqCst),
                    0,
                    "reader holds a dropped value"
                );
            })
        };
        for i in 1..3 {
            slot.replace(Some(Box::new((i, Tracked(drops[i].clone())))));
            synchronize::<R>();
            assert_eq!(drops[i - 1].load(SeqCst), 1);
        }
        reader.join().unwrap();
        assert_eq!(pending::<R>(), 0);
    });
}

/// Opportunistic collection (a replace on a thread outside any section)
/// racing a reader, with no `synchronize` before the reader is done: the
/// collection runs the drop only if it saw no reader that could hold it.
#[test]
fn loom_collection_vs_reader() {
    model(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Slot<Box<Tracked>, R>> =
            Arc::new(Slot::new(Some(Box::new(Tracked(dropped.clone())))));
        let reader = {
            let (slot, dropped) = (slot.clone(), dropped.clone());
            thread::spawn(move || {
                let mut guard = pin::<R>();
                if slot.load(&mut guard).is_some() {
                    thread::yield_now();
                    assert_eq!(dropped.load(SeqCst), 0, "dropped under a reader");
                }
            })
        };
        assert!(slot.take());
        reader.join().unwrap();
        crate::flush::<R>();
        synchronize::<R>();
        assert_eq!(dropped.load(SeqCst), 1);
        assert_eq!(pending::<R>(), 0);
    });
}

/// `synchronize` racing a collection on another thread: a job queued before
/// the call has finished when it returns, whether the other thread's
/// collection took it first (and still runs it) or `synchronize` did.
#[test]
fn loom_synchronize_vs_collection() {
    model(|| {
        let runs = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(Signal::default());
        let other = {
            let (runs, queued) = (runs.clone(), queued.clone());
            thread::spawn(move || {
                let guard = pin::<R>();
                // Inside a section: queued, not collected.
                crate::defer::<R>(move || {
                    runs.fetch_add(1, SeqCst);
                });
                drop(guard);
                queued.set();
                crate::flush::<R>();
            })
        };
        queued.wait();
        synchronize::<R>();
        assert_eq!(
            runs.load(SeqCst),
            1,
            "synchronize returned before the job ran"
        );
        other.join().unwrap();
        assert_eq!(pending::<R>(), 0);
    });
}
