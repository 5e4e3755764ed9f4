//! What several loom models share: fences whose release can be counted.

use std::sync::Arc as StdArc;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

use crate::{Fence, FenceOps, Rcu, Timeline};

/// Hooks that count the release of their fence (the hooks are dropped with it).
pub(super) struct Freed(pub(super) Arc<AtomicUsize>);

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl<B: crate::Backend> FenceOps<B> for Freed {
    fn driver_name(&self) -> &str {
        "loom"
    }
    fn timeline_name(&self) -> &str {
        "loom"
    }
}

/// A fence on `tl` whose release increments `freed`.
pub(super) fn tracked(tl: &Timeline<Rcu>, seqno: u64, freed: &Arc<AtomicUsize>) -> Fence<Rcu> {
    tl.fence_with_ops(seqno, StdArc::new(Freed(freed.clone())))
}

/// A fresh timeline's two tracked fences (seqnos 1 and 2) and an all-mode array over them,
/// with the count their releases increment.
pub(super) fn tracked_pair_array() -> (Arc<AtomicUsize>, Fence<Rcu>, Fence<Rcu>, Fence<Rcu>) {
    let tl = Timeline::new("loom");
    let freed = Arc::new(AtomicUsize::new(0));
    let (a, b) = (tracked(&tl, 1, &freed), tracked(&tl, 2, &freed));
    let array = crate::FenceArray::create(
        vec![a.clone(), b.clone()],
        crate::context_alloc(1),
        1,
        false,
    )
    .unwrap();
    (freed, a, b, array)
}

/// Fails `f` with `error` and signals it, on a thread of its own (which takes the handle).
pub(super) fn fail_on_thread<B: crate::Backend>(
    f: Fence<B>,
    error: crate::Errno,
) -> loom::thread::JoinHandle<()> {
    loom::thread::spawn(move || {
        f.set_error(error).unwrap();
        f.signal().unwrap();
    })
}
