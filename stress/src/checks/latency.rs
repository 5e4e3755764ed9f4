//! Signal-to-callback latency: per-thread histograms, merged at the end of a run.
//!
//! A callback measures the time from the signal that completed its fence (the fence's
//! timestamp, or the completing member's) to itself and [`record`]s it on whichever thread
//! runs it, into that thread's own histogram: no shared write on the hot path. Each thread
//! that may run callbacks [`flush`]es its histogram into the run's before it ends; the run
//! reports p50, p99 and the maximum.
//!
//! Every callback runs on a thread the scenario owns: on `Rcu` the signalling thread runs
//! them, and `Locked` runs its irq_work (container completion) on the signalling thread as
//! it releases its outermost fence lock, as the kernel does. The library starts no thread.

use std::cell::RefCell;
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// A histogram of 1 ns to 60 s at 3 significant digits. (Fixed bounds: with the default
/// auto-resizing bounds, `saturating_record` clamps at the initial tiny range.)
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

thread_local! {
    static LOCAL: RefCell<Option<Histogram<u64>>> = const { RefCell::new(None) };
}

/// Records one sample (nanoseconds) on this thread.
pub(crate) fn record(nanos: u64) {
    LOCAL.with(|h| {
        let mut h = h.borrow_mut();
        let h = h.get_or_insert_with(new_histogram);
        h.saturating_record(nanos.max(1));
    });
}

/// Moves this thread's samples into `into`.
pub(crate) fn flush(into: &Mutex<Histogram<u64>>) {
    if let Some(local) = LOCAL.with(|h| h.borrow_mut().take()) {
        let mut all = into.lock().unwrap_or_else(|e| e.into_inner());
        let _ = all.add(&local);
    }
}
