//! Errors never lost: a container that signals carries an error whenever a member under it
//! failed.
//!
//! The checks that see a container complete (the network watchers, the merges and unwraps
//! of the meddling threads, a job's merged dependencies, a syncobj's found point) call
//! [`Errors::check`] once for each container whose inputs included a failure, saying
//! whether the container kept an error. Every check is counted, and every miss too, with
//! the first few places described.
//!
//! On a strict backend a miss is also a violation: the scheme promises that errors are
//! never lost. On the others it is the classic scheme's known limit, reported with its count
//! (by `report::combine`, from the tally) and never silently skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Violations;
use crate::report::ErrorTally;

/// How many places a miss is described at.
const KEPT: usize = 4;

/// The error rule's checks in one run.
#[derive(Debug)]
pub(crate) struct Errors {
    checked: AtomicU64,
    lost: AtomicU64,
    first: Mutex<Vec<String>>,
    strict: bool,
    violations: Arc<Violations>,
}

impl Errors {
    pub(crate) fn new(strict: bool, violations: Arc<Violations>) -> Errors {
        Errors {
            checked: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            first: Mutex::new(Vec::new()),
            strict,
            violations,
        }
    }

    /// Where the run's violations are reported.
    pub(crate) fn violations(&self) -> &Violations {
        &self.violations
    }

    /// A container whose inputs included a failure has signalled: `kept` says whether it
    /// carries an error; `what` describes it if not.
    pub(crate) fn check(&self, kept: bool, what: impl FnOnce() -> String) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        if kept {
            return;
        }
        self.lost.fetch_add(1, Ordering::Relaxed);
        let what = what();
        if self.strict {
            self.violations.report(format!("error lost: {what}"));
        }
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < KEPT {
            first.push(what);
        }
    }

    /// The checks made, the misses and where the first few were.
    pub(crate) fn tally(&self) -> ErrorTally {
        ErrorTally {
            checked: self.checked.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            first: self.first.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_a_violation_only_when_strict() {
        for strict in [true, false] {
            let v = Arc::new(Violations::default());
            let e = Errors::new(strict, v.clone());
            e.check(true, || unreachable!());
            e.check(false, || "array #1".into());
            let t = e.tally();
            assert_eq!((t.checked, t.lost), (2, 1));
            assert_eq!(t.first, ["array #1"]);
            assert_eq!(v.count(), u64::from(strict));
        }
    }
}
