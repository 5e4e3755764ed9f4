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

/// Samples a thread keeps as raw values before it moves them into a histogram of its own.
/// Most threads of the container scenarios live for one round and record a few hundred
/// samples: they never build a histogram (a few hundred KiB to allocate, and to merge
/// bucket by bucket), which would otherwise be a large part of a round's time.
const BUFFERED: usize = 4096;

#[derive(Default)]
struct Local {
    samples: Vec<u64>,
    histogram: Option<Histogram<u64>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

/// Records one sample (nanoseconds) on this thread.
pub(crate) fn record(nanos: u64) {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let Local { samples, histogram } = &mut *local;
        samples.push(nanos.max(1));
        if samples.len() >= BUFFERED {
            let h = histogram.get_or_insert_with(new_histogram);
            for sample in samples.drain(..) {
                h.saturating_record(sample);
            }
        }
    });
}

/// Moves this thread's samples into `into`.
pub(crate) fn flush(into: &Mutex<Histogram<u64>>) {
    let Local { samples, histogram } = LOCAL.with(|local| std::mem::take(&mut *local.borrow_mut()));
    if samples.is_empty() && histogram.is_none() {
        return;
    }
    let mut all = into.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = histogram {
        let _ = all.add(&h);
    }
    for sample in samples {
        all.saturating_record(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_moves_every_sample_buffered_or_not() {
        for n in [0, 3, BUFFERED - 1, BUFFERED, 2 * BUFFERED + 5] {
            let all = Mutex::new(new_histogram());
            std::thread::scope(|s| {
                s.spawn(|| (1..=n as u64).for_each(record));
            });
            // The other thread's samples are its own: nothing reaches `all` from here.
            flush(&all);
            assert_eq!(all.lock().unwrap().len(), 0, "n = {n}");
            std::thread::scope(|s| {
                s.spawn(|| {
                    (1..=n as u64).for_each(record);
                    flush(&all);
                    // A second flush finds nothing left.
                    flush(&all);
                });
            });
            let all = all.into_inner().unwrap();
            assert_eq!(all.len(), n as u64, "n = {n}");
            if n > 0 {
                // Equal within the histogram's precision.
                assert!(all.equivalent(all.max(), n as u64), "n = {n}");
                assert!(all.equivalent(all.min(), 1), "n = {n}");
            }
        }
    }
}
