//! loom models of `defer` (`call_rcu`) and `synchronize` on the [`Reference`] reclaimer:
//! a deferred closure waits for readers that may still see what it frees, two writers
//! replacing one slot retire each old value exactly once, and `synchronize` waits for a
//! cascade of deferred work.
//!
//! Run with:
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p rcu --release --target-dir target-loom --lib loom
//! ```

use super::loom_support::model;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::sync::thread;
use crate::{Reference, Slot, defer, pending, pin, synchronize};

type R = Reference;

/// A value unlinked and then freed by a deferred closure: a reader that found it still
/// linked never sees it freed while pinned; `synchronize` runs the closure exactly once.
#[test]
fn loom_defer_vs_reader() {
    model(|| {
        let unlinked = Arc::new(AtomicBool::new(false));
        let freed = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (unlinked, freed) = (unlinked.clone(), freed.clone());
            thread::spawn(move || {
                let guard = pin::<R>();
                if !unlinked.load(SeqCst) {
                    // Reached it while linked: it must outlive this section.
                    thread::yield_now();
                    assert_eq!(freed.load(SeqCst), 0, "freed under a reader");
                }
                drop(guard);
            })
        };
        unlinked.store(true, SeqCst);
        let f = freed.clone();
        defer::<R>(move || {
            f.fetch_add(1, SeqCst);
        });
        synchronize::<R>();
        assert_eq!(freed.load(SeqCst), 1);
        reader.join().unwrap();
        synchronize::<R>();
        assert_eq!(freed.load(SeqCst), 1, "run exactly once");
        assert_eq!(pending::<R>(), 0);
    });
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Two writers replace one slot concurrently: each old value is retired by the writer that
/// swapped it out and dropped exactly once; the survivor is one of the two new values.
#[test]
fn loom_two_writers_replace() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Slot<Box<Counted>, R>> =
            Arc::new(Slot::new(Some(Box::new(Counted(drops.clone())))));
        let writer = {
            let (slot, drops) = (slot.clone(), drops.clone());
            thread::spawn(move || {
                slot.replace(Some(Box::new(Counted(drops))));
            })
        };
        slot.replace(Some(Box::new(Counted(drops.clone()))));
        writer.join().unwrap();
        synchronize::<R>();
        assert_eq!(drops.load(SeqCst), 2, "both replaced values dropped once");
        assert!(!slot.is_empty());
        drop(slot);
        assert_eq!(drops.load(SeqCst), 3);
        assert_eq!(pending::<R>(), 0);
    });
}

/// A deferred closure that defers another (a cascade), with a reader pinned on another
/// thread: `synchronize` returns only after both have run, each once.
#[test]
fn loom_synchronize_waits_for_cascade() {
    model(|| {
        let runs = Arc::new(AtomicUsize::new(0));
        let reader = thread::spawn(|| {
            let _guard = pin::<R>();
            thread::yield_now();
        });
        let r = runs.clone();
        defer::<R>(move || {
            r.fetch_add(1, SeqCst);
            let r2 = r.clone();
            defer::<R>(move || {
                r2.fetch_add(1, SeqCst);
            });
        });
        synchronize::<R>();
        assert_eq!(runs.load(SeqCst), 2);
        reader.join().unwrap();
        assert_eq!(pending::<R>(), 0);
    });
}
