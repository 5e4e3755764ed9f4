//! Signal-to-callback latency: per-thread histograms, merged at the end of a run.
//!
//! A callback measures the time from the signal that completed its fence (the fence's
//! timestamp, or the completing member's) to itself and [`record`]s it on whichever thread
//! runs it, into that thread's own histogram: no shared write on the hot path. Each thread
//! that may run callbacks [`flush`]es its histogram into the run's before it ends; the run
//! reports p50, p99 and the maximum.
//!
//! Samples recorded on the `Locked` backend's irq_work thread, which belongs to the library
//! and never flushes, go to a shared histogram the run takes over at its end
//! ([`take_foreign`]).

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
    /// True on the `Locked` backend's irq_work thread, which belongs to the library and
    /// never flushes: its samples go straight to [`FOREIGN`].
    static FOREIGN_THREAD: bool =
        std::thread::current().name() == Some("fence-irq-work");
}

/// Samples recorded on threads the scenarios do not own (see `FOREIGN_THREAD`).
static FOREIGN: Mutex<Option<Histogram<u64>>> = Mutex::new(None);

/// Moves the samples recorded on foreign threads into `into` (and clears them).
pub(crate) fn take_foreign(into: &Mutex<Histogram<u64>>) {
    let foreign = FOREIGN.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(h) = foreign {
        let _ = into.lock().unwrap_or_else(|e| e.into_inner()).add(&h);
    }
}

/// Records one sample (nanoseconds) on this thread.
pub(crate) fn record(nanos: u64) {
    if FOREIGN_THREAD.with(|f| *f) {
        let mut foreign = FOREIGN.lock().unwrap_or_else(|e| e.into_inner());
        foreign
            .get_or_insert_with(new_histogram)
            .saturating_record(nanos.max(1));
        return;
    }
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
