//! Broken promises: how many, and what the first few were.
//!
//! Every check of a run reports here ([`Violations::report`], [`Violations::check`]). The
//! count is exact and goes on for as long as the run does; only the first
//! [`KEPT_VIOLATIONS`] descriptions are kept, so that a systematic failure neither floods
//! the report nor costs memory. The count decides whether a row fails; the descriptions are
//! the row's notes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many violation descriptions are kept (the count goes on).
const KEPT_VIOLATIONS: usize = 16;

/// Broken promises seen during one run.
#[derive(Debug, Default)]
pub(crate) struct Violations {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Violations {
    /// Records one violation.
    pub(crate) fn report(&self, what: impl Into<String>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < KEPT_VIOLATIONS {
            first.push(what.into());
        }
    }

    /// Checks a condition; reports `what` if it does not hold.
    pub(crate) fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.report(what());
        }
    }

    /// How many violations were reported.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first few descriptions.
    pub(crate) fn descriptions(&self) -> Vec<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
