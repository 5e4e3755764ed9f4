//! What every scenario is checked against, one concept per file:
//!
//! - [`ledger`]: one byte per callback, so that a callback run twice, run after it was
//!   taken back, or never run at all is caught and named, not just counted.
//! - [`live`]: gauges of objects the scenario created (fences, callback closures) that must
//!   all be gone once the scenario has dropped its handles.
//! - [`violations`]: the count and the first few descriptions of every broken promise.
//! - [`watchdog`]: per-thread heartbeats with the name of the operation in progress; a
//!   thread that stays inside one operation for too long fails the whole run and is named.
//! - [`latency`]: per-thread signal-to-callback histograms, merged at the end of a run.
//! - [`errors`]: the error rule (a container carries an error whenever a member under it
//!   failed), counted, and a violation on a strict backend.
//!
//! [`Checks`] bundles them for one scenario on one backend, and [`Checks::finish`] turns
//! them into the standard columns of the scenario's row.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::backends::Spec;
use crate::report::{Latency, Outcome};

pub(crate) mod errors;
pub(crate) mod latency;
pub(crate) mod ledger;
pub(crate) mod live;
pub(crate) mod violations;
pub(crate) mod watchdog;

pub(crate) use errors::Errors;
pub(crate) use ledger::{Ledger, LedgerWriter, Ticket};
pub(crate) use live::{CALLBACKS, FENCES, Live, LiveToken};
pub(crate) use violations::Violations;
pub(crate) use watchdog::{Op, Watch, Watchdog};

/// The checks of one scenario on one backend.
#[derive(Debug)]
pub(crate) struct Checks {
    pub(crate) violations: Arc<Violations>,
    pub(crate) ledger: Ledger,
    pub(crate) watch: Arc<Watch>,
    pub(crate) errors: Arc<Errors>,
    latency: Mutex<Histogram<u64>>,
    baseline: Vec<(&'static Live, i64)>,
}

impl Checks {
    /// Fresh checks with heartbeats for `workers` workers, the given helper threads and the
    /// thread that runs the scenario itself (`"main"`), on `backend`.
    pub(crate) fn new(workers: usize, helpers: &[&str], backend: &'static Spec) -> Checks {
        let violations = Arc::new(Violations::default());
        let mut names = helpers.to_vec();
        names.push("main");
        let errors = Arc::new(Errors::new(backend.strict, violations.clone()));
        Checks {
            ledger: Ledger::new(errors.clone()),
            errors,
            violations,
            watch: Arc::new(Watch::new(workers, &names)),
            latency: Mutex::new(latency::new_histogram()),
            baseline: [&FENCES, &CALLBACKS]
                .into_iter()
                .map(|l| (l, l.now()))
                .collect(),
        }
    }

    /// Moves this thread's latency samples into the run's histogram; every thread that may
    /// have run callbacks calls it before it ends.
    pub(crate) fn flush_latency(&self) {
        latency::flush(&self.latency);
    }

    /// Once the scenario has signalled and dropped everything: audits the ledger, waits for
    /// the live gauges to settle and fills the standard columns of `outcome`.
    pub(crate) fn finish(&self, outcome: &mut Outcome) {
        self.flush_latency();
        // No wait for stragglers: every backend runs a callback on the thread whose signal
        // (or whose release of its last fence lock) completed the fence, so once the
        // scenario's threads are done every callback that will ever run has run.
        let tally = self.ledger.audit();
        outcome.callbacks_installed = tally.installed;
        outcome.callbacks_delivered = tally.delivered;
        outcome.callbacks_removed = tally.removed;
        let expected = tally.installed - tally.removed;
        self.violations.check(tally.delivered == expected, || {
            format!(
                "{} callbacks ran, expected {expected} ({} installed, {} removed)",
                tally.delivered, tally.installed, tally.removed
            )
        });
        let (leaked, notes) = live::settle(&self.baseline, Duration::from_secs(2));
        outcome.leaked = leaked;
        outcome.problems.extend(notes);
        outcome.violations += self.violations.count();
        outcome.problems.extend(self.violations.descriptions());
        outcome.errors.add(&self.errors.tally());
        let histogram = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        outcome.latency = Latency::from_histogram(&histogram);
        outcome.histogram = Some(histogram);
    }
}
