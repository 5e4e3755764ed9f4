//! Helpers shared by the loom models.

use crate::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// Checks `f` under loom at the preemption bound `LOOM_MAX_PREEMPTIONS`, or 2
/// when the variable is unset.
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// A one-shot signal a thread blocks on (rather than checking a flag once),
/// so that reaching the interesting interleavings costs no preemption: the
/// waiter sleeps until the other thread has reached the point of interest,
/// and a single preemption then lands it anywhere after that.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    notify: loom::sync::Notify,
}

impl Signal {
    pub(crate) fn set(&self) {
        self.set.store(true, SeqCst);
        self.notify.notify();
    }

    pub(crate) fn wait(&self) {
        // `Notify` may wake spuriously: the flag decides.
        while !self.set.load(SeqCst) {
            self.notify.wait();
        }
    }
}
