//! Loom model of callback removal from a third thread while two threads race to signal
//! the fence (`backend::rcu::callbacks`: the node's state CAS decides between remover
//! and runner, whichever signaller wins the claim).
//!
//! Run with `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-fence
//! --release --lib loom_`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::{Fence, Rcu, Timeline};

fn counting(f: &Fence<Rcu>, runs: &Arc<AtomicUsize>) -> crate::CallbackId<Rcu> {
    let r = runs.clone();
    f.add_callback(move |me| {
        assert!(me.test_signaled_flag());
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
}

/// Two signallers and a remover: exactly one signal succeeds; the removed callback ran iff
/// `remove_callback` returned `false` (and then it had finished); the other callback ran
/// exactly once.
#[test]
fn loom_remove_vs_two_signallers() {
    loom::model(|| {
        let f = Timeline::new("loom").fence(1);
        let (target, other) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let id = counting(&f, &target);
        counting(&f, &other);
        let signallers: Vec<_> = (0..2)
            .map(|_| {
                let g = f.clone();
                thread::spawn(move || g.signal().is_ok())
            })
            .collect();
        let removed = f.remove_callback(id);
        if !removed {
            assert_eq!(target.load(Ordering::SeqCst), 1, "false means it has run");
        }
        let wins: usize = signallers
            .into_iter()
            .map(|s| usize::from(s.join().unwrap()))
            .sum();
        assert_eq!(wins, 1, "exactly one signal succeeds");
        assert_eq!(target.load(Ordering::SeqCst), usize::from(!removed));
        assert_eq!(other.load(Ordering::SeqCst), 1);
    });
}

/// A remover that has observed the fence signalled (a waiter whose wait returned) must get
/// `false`, after the callback has run: the kernel's "false once signalled", with the call
/// as a barrier. (The callback list claimed by the signaller used to let a remover take a
/// not-yet-run node back after `SIGNALED` was already visible.)
#[test]
fn loom_remove_after_observing_the_signal() {
    loom::model(|| {
        let f = Timeline::new("loom").fence(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let id = counting(&f, &runs);
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        let observed = f.test_signaled_flag();
        let removed = f.remove_callback(id);
        if observed {
            assert!(!removed, "removed after the signal was observed");
        }
        if !removed {
            assert_eq!(runs.load(Ordering::SeqCst), 1, "false means it has run");
        }
        signaller.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(!removed));
    });
}

/// Removal unlinks: a remover taking out the middle node races the signal and a second
/// remover taking out the first node. Each callback runs iff its removal returned `false`
/// (after it ran), the third always runs once, and every node is freed (loom's leak check
/// covers the nodes).
#[test]
fn loom_unlink_vs_signal_vs_second_remover() {
    loom::model(|| {
        let f = Timeline::new("loom").fence(1);
        let runs: Vec<_> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let mut ids: Vec<_> = runs.iter().map(|r| counting(&f, r)).collect();
        let (first, middle) = (ids.remove(0), ids.remove(0));
        let g = f.clone();
        let signaller = thread::spawn(move || g.signal().unwrap());
        let g = f.clone();
        let remover = thread::spawn(move || g.remove_callback(middle));
        let removed_first = f.remove_callback(first);
        let removed_middle = remover.join().unwrap();
        signaller.join().unwrap();
        assert_eq!(runs[0].load(Ordering::SeqCst), usize::from(!removed_first));
        assert_eq!(runs[1].load(Ordering::SeqCst), usize::from(!removed_middle));
        assert_eq!(runs[2].load(Ordering::SeqCst), 1);
    });
}

/// A push racing the unlink of the head node: the remover's CAS on the head fails and it
/// unlinks behind the pushed node instead. Both outcomes keep the list whole: the pushed
/// callback runs exactly once, the removed one never.
#[test]
fn loom_push_vs_unlink_of_the_head() {
    loom::model(|| {
        let f = Timeline::new("loom").fence(1);
        let (old, new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let id = counting(&f, &old);
        let g = f.clone();
        let n = new.clone();
        let pusher = thread::spawn(move || {
            counting(&g, &n);
        });
        assert!(
            f.remove_callback(id),
            "the fence is pending: removal unlinks"
        );
        pusher.join().unwrap();
        f.signal().unwrap();
        assert_eq!(old.load(Ordering::SeqCst), 0);
        assert_eq!(new.load(Ordering::SeqCst), 1);
    });
}
