//! The exactly-once ledger: one byte of state per callback a run creates.
//!
//! Each slot counts the callback's runs (low four bits) and records what the API answered
//! about it: `add_callback` accepted it ([`INSTALLED`]) or refused it ([`REFUSED`]),
//! `remove_callback` took it back ([`REMOVED`]). The rules are checked twice:
//!
//! - **as it happens**: a run records itself last thing in the callback ([`Ticket::ran`])
//!   and fails if it is the second run or follows a removal or a refusal; a
//!   `remove_callback` answer is checked against the slot at once ([`Ticket::removed`]:
//!   `true` means it never ran, `false` that it has run to completion);
//! - **at the end**: [`Ledger::audit`] walks every slot once all fences have signalled:
//!   installed and not removed means exactly one run, refused or removed means none.
//!
//! So a callback run twice, run after it was taken back, or never run at all is caught and
//! named by its number, not just counted. Nothing is counted in shared counters on the hot
//! path: each thread fills its own chunks ([`LedgerWriter`]), and the totals ([`Tally`])
//! are derived by the audit.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Errors, Violations};

/// Slots per chunk of the ledger.
const CHUNK: usize = 4096;

/// Low bits of a slot: how many times the callback has finished running.
const RUNS: u8 = 0x0f;
/// `add_callback` returned `Ok`: the callback must run exactly once unless removed.
const INSTALLED: u8 = 1 << 4;
/// `add_callback` returned `Err`: the callback must never run.
const REFUSED: u8 = 1 << 5;
/// `remove_callback` returned `true`: the callback must never run.
const REMOVED: u8 = 1 << 6;

struct Chunk {
    slots: Box<[AtomicU8]>,
    used: AtomicUsize,
    /// The error rule's checks (and through them the violations), reached through a
    /// ticket so that a callback's closure needs no handle of its own on them (a shared
    /// count both threads would write).
    errors: Arc<Errors>,
}

impl Chunk {
    fn new(errors: Arc<Errors>) -> Arc<Chunk> {
        Arc::new(Chunk {
            slots: (0..CHUNK).map(|_| AtomicU8::new(0)).collect(),
            used: AtomicUsize::new(0),
            errors,
        })
    }
}

/// One byte of state per callback, for every callback a run creates.
///
/// Each thread takes [`Ticket`]s from its own [`LedgerWriter`]; the ticket travels in the
/// callback's closure and records the run, and a second handle on it, kept by the thread
/// that added the callback, records what `add_callback` and `remove_callback` answered.
/// Nothing is counted in shared counters on the hot path: [`Ledger::audit`] derives the
/// totals and checks every slot once all fences are signalled.
pub(crate) struct Ledger {
    chunks: Mutex<Vec<Arc<Chunk>>>,
    errors: Arc<Errors>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// Totals of a ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// `add_callback` returned `Ok`.
    pub(crate) installed: u64,
    /// `add_callback` returned `Err(AlreadySignaled)`.
    pub(crate) refused: u64,
    /// `remove_callback` returned `true`.
    pub(crate) removed: u64,
    /// Callback runs (each exactly once, if the run is clean).
    pub(crate) delivered: u64,
}

impl Ledger {
    pub(crate) fn new(errors: Arc<Errors>) -> Ledger {
        Ledger {
            chunks: Mutex::new(Vec::new()),
            errors,
        }
    }

    /// A writer for one thread.
    pub(crate) fn writer(&self) -> LedgerWriter<'_> {
        LedgerWriter {
            ledger: self,
            chunk: None,
            next: CHUNK,
        }
    }

    /// Checks every slot (installed and not removed: ran exactly once; refused or removed:
    /// never ran) and returns the totals. Call once every fence of the run has signalled.
    pub(crate) fn audit(&self) -> Tally {
        let violations = self.errors.violations();
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut tally = Tally::default();
        let mut never_ran = 0u64;
        for (c, chunk) in chunks.iter().enumerate() {
            let used = chunk.used.load(Ordering::Acquire);
            for (i, slot) in chunk.slots[..used].iter().enumerate() {
                let s = slot.load(Ordering::Acquire);
                let runs = s & RUNS;
                let id = c * CHUNK + i;
                tally.delivered += u64::from(runs);
                if s & REFUSED != 0 {
                    tally.refused += 1;
                    violations.check(runs == 0, || {
                        format!("callback #{id} ran although add_callback refused it")
                    });
                } else if s & REMOVED != 0 {
                    tally.installed += 1;
                    tally.removed += 1;
                    violations.check(runs == 0, || {
                        format!("callback #{id} ran although remove_callback returned true")
                    });
                } else if s & INSTALLED != 0 {
                    tally.installed += 1;
                    if runs == 0 {
                        never_ran += 1;
                        if never_ran <= 4 {
                            violations
                                .report(format!("callback #{id} was installed and never ran"));
                        } else {
                            violations.report("more callbacks installed and never run");
                        }
                    }
                } else {
                    violations.report(format!(
                        "callback #{id}: add_callback never returned (harness error)"
                    ));
                }
            }
        }
        tally
    }
}

/// A thread's source of [`Ticket`]s.
pub(crate) struct LedgerWriter<'a> {
    ledger: &'a Ledger,
    chunk: Option<Arc<Chunk>>,
    next: usize,
}

impl LedgerWriter<'_> {
    /// A fresh slot for one callback.
    pub(crate) fn ticket(&mut self) -> Ticket {
        if self.next == CHUNK {
            let chunk = Chunk::new(self.ledger.errors.clone());
            self.ledger
                .chunks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(chunk.clone());
            self.chunk = Some(chunk);
            self.next = 0;
        }
        let chunk = self.chunk.clone().expect("a chunk was just made");
        let index = self.next;
        self.next += 1;
        chunk.used.store(self.next, Ordering::Release);
        Ticket {
            chunk,
            index: index as u16,
        }
    }
}

/// The slot of one callback. One handle moves into the callback's closure; the thread that
/// added the callback keeps another ([`Ticket::share`]).
pub(crate) struct Ticket {
    chunk: Arc<Chunk>,
    index: u16,
}

impl Ticket {
    fn slot(&self) -> &AtomicU8 {
        &self.chunk.slots[self.index as usize]
    }

    fn violations(&self) -> &Violations {
        self.chunk.errors.violations()
    }

    /// The run's error-rule checks.
    pub(crate) fn errors(&self) -> &Errors {
        &self.chunk.errors
    }

    /// Another handle on the same slot, kept by the thread that added the callback.
    pub(crate) fn share(&self) -> Ticket {
        Ticket {
            chunk: self.chunk.clone(),
            index: self.index,
        }
    }

    /// `add_callback` returned `Ok`.
    pub(crate) fn installed(&self) {
        self.slot().fetch_or(INSTALLED, Ordering::AcqRel);
    }

    /// `add_callback` returned `Err`: the closure was dropped without running.
    pub(crate) fn refused(&self) {
        let prev = self.slot().fetch_or(REFUSED, Ordering::AcqRel);
        self.violations().check(prev & RUNS == 0, || {
            "add_callback returned Err but the callback ran".to_string()
        });
    }

    /// Records what `remove_callback` answered and checks the promise behind it: `true`
    /// means it never ran (and never will), `false` that it has run to completion.
    pub(crate) fn removed(&self, answer: bool, op: &str) {
        if answer {
            let prev = self.slot().fetch_or(REMOVED, Ordering::AcqRel);
            self.violations().check(prev & RUNS == 0, || {
                format!("{op}: remove_callback returned true but the callback had run")
            });
        } else {
            let runs = self.slot().load(Ordering::Acquire) & RUNS;
            self.violations().check(runs == 1, || {
                format!("{op}: remove_callback returned false but the callback had completed {runs} runs (expected 1)")
            });
        }
    }

    /// Called by the callback as the last thing it does: counts the run and checks that it
    /// is the first and that the callback had not been taken back.
    pub(crate) fn ran(&self) {
        let prev = self.slot().fetch_add(1, Ordering::AcqRel);
        self.violations()
            .check(prev & RUNS == 0, || "a callback ran twice".to_string());
        self.violations()
            .check(prev & (REMOVED | REFUSED) == 0, || {
                "a callback ran after remove_callback returned true or add_callback refused it"
                    .to_string()
            });
    }

    /// Reports a broken promise seen inside a callback.
    pub(crate) fn report(&self, what: impl Into<String>) {
        self.violations().report(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_catches_double_run_never_run_and_run_after_remove() {
        let violations = Arc::new(Violations::default());
        let errors = Arc::new(Errors::new(true, violations.clone()));
        let ledger = Ledger::new(errors);
        let mut w = ledger.writer();
        let twice = w.ticket();
        twice.installed();
        twice.ran();
        twice.ran();
        let never = w.ticket();
        never.installed();
        let removed = w.ticket();
        removed.installed();
        removed.removed(true, "test");
        removed.ran();
        let fine = w.ticket();
        fine.installed();
        fine.ran();
        fine.share().removed(false, "test");
        let refused = w.ticket();
        refused.refused();
        assert_eq!(violations.count(), 2, "{:?}", violations.descriptions());
        let tally = ledger.audit();
        assert_eq!(
            tally,
            Tally {
                installed: 4,
                refused: 1,
                removed: 1,
                delivered: 4
            }
        );
        // + never ran, + removed but ran (seen again by the audit)
        assert_eq!(violations.count(), 4, "{:?}", violations.descriptions());
    }
}
