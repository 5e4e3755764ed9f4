//! Loom models of the per-thread work list (`work`) on the `Rcu` backend: a cascade of
//! container signals running on one thread while another thread drops the last handles,
//! and a container's final drop racing its member's signal.
//!
//! Every fence, callback node and closure here lives in a loom `Arc` or is owned by one,
//! so loom's leak check at the end of each execution proves that everything was freed;
//! the models also count what they can observe directly: callback runs, closure drops
//! and the release of each leaf fence (its hooks are dropped with it).
//!
//! Run with `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-fence
//! --release --lib loom_`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::loom_support::{fail_on_thread, tracked, tracked_pair_array};

use crate::{Errno, Fence, FenceArray, FenceChain, Rcu, Status, Timeline, context_alloc};

/// Counts a closure's drop (it is dropped exactly once, after running or when removed).
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a counting callback saw: how often it ran, the status it saw, and how often its
/// closure was dropped.
#[derive(Clone)]
struct Probe {
    runs: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Probe {
    /// Installs a callback on `f` that checks the fence is signalled with `expect`.
    fn install(f: &Fence<Rcu>, expect: Status) -> Probe {
        let probe = Probe {
            runs: Arc::new(AtomicUsize::new(0)),
            errors: Arc::new(AtomicUsize::new(0)),
            drops: Arc::new(AtomicUsize::new(0)),
        };
        let p = probe.clone();
        let guard = DropCount(probe.drops.clone());
        f.add_callback(move |me| {
            let _guard = guard;
            if me.status() != expect {
                p.errors.fetch_add(1, Ordering::SeqCst);
            }
            p.runs.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        probe
    }

    fn assert_ran_once(&self) {
        assert_eq!(
            self.runs.load(Ordering::SeqCst),
            1,
            "the callback ran exactly once"
        );
        assert_eq!(
            self.errors.load(Ordering::SeqCst),
            0,
            "it saw the final status"
        );
        assert_eq!(
            self.drops.load(Ordering::SeqCst),
            1,
            "its closure was dropped once"
        );
    }
}

/// A two-level cascade: leaf → inner array → outer array, each array with a callback.
/// Thread A signals the leaf (the inner array's completion and then the outer's run from
/// A's work list); thread B drops the last user handle of the outer array meanwhile.
/// Each callback runs exactly once with the leaf's error, and every fence is freed.
#[test]
fn loom_cascade_vs_last_handle_drop() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let leaf = tracked(&tl, 1, &freed);
        let inner = FenceArray::create(vec![leaf.clone()], context_alloc(1), 1, false).unwrap();
        let outer = FenceArray::create(vec![inner.clone()], context_alloc(1), 1, false).unwrap();
        let expect = Status::Error(Errno::ETIME);
        let inner_probe = Probe::install(&inner, expect);
        let outer_probe = Probe::install(&outer, expect);
        drop(inner);
        let signaller = fail_on_thread(leaf, Errno::ETIME);
        let dropper = thread::spawn(move || drop(outer));
        signaller.join().unwrap();
        dropper.join().unwrap();
        inner_probe.assert_ran_once();
        outer_probe.assert_ran_once();
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 1, "the leaf was freed once");
    });
}

/// A callback on thread A signals a second fence (queued on A's work list) while thread B
/// drops the last handle of that second fence: its callback runs exactly once (with the
/// signal, or with `-EDEADLK` if B's final drop came first) and nothing is freed twice.
#[test]
fn loom_callback_signals_vs_final_drop() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let (a, b) = (tracked(&tl, 1, &freed), tracked(&tl, 2, &freed));
        let runs = Arc::new(AtomicUsize::new(0));
        let deadlocked = Arc::new(AtomicUsize::new(0));
        let (r, d) = (runs.clone(), deadlocked.clone());
        b.add_callback(move |me| {
            if me.error() == Some(Errno::EDEADLK) {
                d.fetch_add(1, Ordering::SeqCst);
            }
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        // `a`'s callback holds a handle to `b` and signals it; the other handle goes to B.
        let b_for_a = b.clone();
        a.add_callback(move |_| {
            let _ = b_for_a.signal();
        })
        .unwrap();
        let signaller = thread::spawn(move || a.signal().unwrap());
        let dropper = thread::spawn(move || drop(b));
        signaller.join().unwrap();
        dropper.join().unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "b's callback ran exactly once"
        );
        // The callback on `a` holds `b` until it has signalled it: no -EDEADLK possible.
        assert_eq!(deadlocked.load(Ordering::SeqCst), 0);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}

/// The final drop of a never-enabled array on thread B (its members are dropped through
/// B's work list) races its member's signal on thread A: the member's own callback runs
/// exactly once, the array never runs anything, and both fences are freed.
#[test]
fn loom_container_final_drop_vs_member_signal() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let a = tracked(&tl, 1, &freed);
        let probe = Probe::install(&a, Status::Signaled);
        let array = FenceArray::create(vec![a.clone()], context_alloc(1), 1, false).unwrap();
        let signaller = thread::spawn(move || a.signal().unwrap());
        let dropper = thread::spawn(move || drop(array));
        signaller.join().unwrap();
        dropper.join().unwrap();
        probe.assert_ran_once();
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 1);
    });
}

/// An enabled array whose user handles are all gone (only its callbacks on the members
/// keep it alive) completes on thread A while thread B drops the last handle of the other
/// (already signalled) member: the array's callback runs exactly once, every fence is freed.
#[test]
fn loom_enabled_container_completes_after_last_handle() {
    loom::model(|| {
        let (freed, a, b, array) = tracked_pair_array();
        let probe = Probe::install(&array, Status::Signaled);
        b.signal().unwrap();
        drop(array);
        let signaller = thread::spawn(move || a.signal().unwrap());
        let dropper = thread::spawn(move || drop(b));
        signaller.join().unwrap();
        dropper.join().unwrap();
        probe.assert_ran_once();
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}

/// A chain link enabled on thread B (enabling `prev` is queued on B's work list) while
/// thread A signals both points: the head's callback runs exactly once.
#[test]
fn loom_chain_enable_vs_signals() {
    loom::model(|| {
        let tl = Timeline::new("loom");
        let freed = Arc::new(AtomicUsize::new(0));
        let (f1, f2) = (tracked(&tl, 1, &freed), tracked(&tl, 2, &freed));
        let p1 = FenceChain::create(None, f1.clone(), 1);
        let p2 = FenceChain::create(Some(p1), f2.clone(), 2);
        let signaller = thread::spawn(move || {
            f1.signal().unwrap();
            f2.signal().unwrap();
        });
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let added = p2
            .add_callback(move |me| {
                assert!(me.test_signaled_flag());
                r.fetch_add(1, Ordering::SeqCst);
            })
            .is_ok();
        signaller.join().unwrap();
        assert!(p2.is_signaled());
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(added));
        drop(p2);
        crate::synchronize_rcu();
        assert_eq!(freed.load(Ordering::SeqCst), 2);
    });
}
