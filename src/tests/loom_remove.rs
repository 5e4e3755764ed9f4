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
