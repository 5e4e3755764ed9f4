//! [`Phases`]: a two-phase count of open sections, the scheme of the kernel's
//! SRCU, and the grace period that waits for them.
//!
//! [`Reference`](crate::Reference) counts its readers' critical sections with
//! it; [`Epoch`](crate::Epoch) counts the batches of deferred work it has handed
//! to crossbeam-epoch and not yet run. In both, entering never waits, and a
//! grace period waits only for what entered before it.
//!
//! # Protocol
//!
//! State: `phase`, whose low bit names the counter new sections join, and two
//! counters `open[0]`, `open[1]`; a mutex `gp` serialises grace periods.
//!
//! - **enter**: read `phase`, increment `open[phase & 1]`, then a `SeqCst`
//!   fence. The section keeps the index it incremented (a [`Phase`]). Nothing
//!   here waits or takes a lock.
//! - **exit**: decrement the same counter.
//! - **is_quiescent** (non-blocking): a `SeqCst` fence, then both counters
//!   read zero.
//! - **wait** (a grace period, under `gp`): a `SeqCst` fence; with `c` the
//!   current index, wait until `open[c ^ 1]` reads zero; flip `phase` to
//!   `c ^ 1`; wait until `open[c]` reads zero.
//!
//! # Why a zero is proof
//!
//! Let a section S enter (increment I, fence F_S) and a waiter W run its fence
//! F_W and then read S's counter as zero. The fences are totally ordered.
//!
//! - If F_S comes first, W's read must see I or a later value (a read after
//!   F_W cannot miss a write before F_S), so a zero means S's decrement is in
//!   the count too: S has exited, and its Release decrement synchronises with
//!   W's Acquire read. Everything S read happens before W goes on.
//! - If F_W comes first, S's reads after F_S see every write that happens
//!   before F_W, in particular the unlinking of anything W is about to free:
//!   S cannot reach it, so W need not wait for S.
//!
//! A waiter reads *both* counters as zero after its fence (at different
//! moments, which the argument allows), so it does not matter which counter a
//! section joined. That is what makes a stale `phase` harmless.
//!
//! # Races considered
//!
//! - *A section reads `phase` just before a flip and increments after it* (a
//!   straggler): it is counted in the old counter, which the waiter may already
//!   have seen at zero. Safe by the argument above: its fence follows the
//!   waiter's. The next grace period first waits for the counter that is about
//!   to become current, so stragglers from an earlier flip are drained there.
//! - *Sections keep entering during a wait*: new sections join the current
//!   counter; a wait first drains the other one (which receives only
//!   stragglers), then flips and drains the old current one (which from then
//!   on receives only stragglers). Each counter drains in bounded time, so a
//!   steady stream of sections cannot starve the waiter.
//! - *Two waiters*: `gp` serialises them, so flips never interleave with a
//!   wait's two halves.
//! - *A section open forever* (a forgotten guard): every later wait waits for
//!   it forever. That is RCU's rule: a reader that never leaves blocks every
//!   grace period.
//!
//! # Orderings
//!
//! `SeqCst` fences after the increment and before the waiter's reads carry
//! the proof above. The decrement is `Release` and the waiter's reads
//! `Acquire`: a section's accesses happen before whatever the waiter does once
//! it sees the count fall. `phase` is read `Relaxed` by sections (any value is
//! safe) and written only by waiters, which `gp` orders.

use std::sync::PoisonError;

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering, fence};

/// Two counters of open sections and the phase that picks between them.
#[derive(Debug)]
pub(crate) struct Phases {
    /// The low bit is the index of the counter new sections join.
    phase: AtomicUsize,
    /// Open sections per phase.
    open: [AtomicUsize; 2],
    /// Held for a whole grace period: one waiter at a time.
    gp: Mutex<()>,
}

/// An open section: the index of the counter it incremented. Hand it back to
/// [`Phases::exit`] exactly once.
#[derive(Debug)]
#[must_use = "a section stays open until its phase is passed to `exit`"]
pub(crate) struct Phase(usize);

impl Phases {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            phase: AtomicUsize::new(0),
            open: [AtomicUsize::new(0), AtomicUsize::new(0)],
            gp: Mutex::new(()),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            phase: AtomicUsize::new(0),
            open: [AtomicUsize::new(0), AtomicUsize::new(0)],
            gp: Mutex::new(()),
        }
    }

    /// Opens a section. Never waits.
    pub(crate) fn enter(&self) -> Phase {
        // Relaxed: any index is safe (a wait reads both counters); a flip is
        // seen eventually, which is all progress needs.
        let index = self.phase.load(Ordering::Relaxed) & 1;
        // Relaxed: ordered before the section's accesses by the fence below.
        self.open[index].fetch_add(1, Ordering::Relaxed);
        // SeqCst: pairs with the fence a waiter runs before reading the
        // counters (module docs, "Why a zero is proof").
        fence(Ordering::SeqCst);
        Phase(index)
    }

    /// Closes a section.
    pub(crate) fn exit(&self, phase: Phase) {
        // Release: the section's accesses happen before a waiter's Acquire
        // read (`is_zero`) that sees the count fall.
        self.open[phase.0].fetch_sub(1, Ordering::Release);
    }

    /// Whether no section that entered before this call is still open. Never
    /// waits.
    pub(crate) fn is_quiescent(&self) -> bool {
        // SeqCst: pairs with the fence in `enter`.
        fence(Ordering::SeqCst);
        self.is_zero(0) && self.is_zero(1)
    }

    /// A grace period: returns once every section that entered before the
    /// call has exited. `drive` is called while waiting (to yield, or to make
    /// progress that the sections' exits depend on).
    pub(crate) fn wait(&self, mut drive: impl FnMut()) {
        let _gp = self.gp.lock().unwrap_or_else(PoisonError::into_inner);
        // SeqCst: pairs with the fence in `enter`.
        fence(Ordering::SeqCst);
        // Relaxed: only waits store `phase`, and `gp` orders the previous
        // wait's store before this load.
        let current = self.phase.load(Ordering::Relaxed) & 1;
        while !self.is_zero(current ^ 1) {
            drive();
        }
        // Relaxed: sections may see the flip late (module docs, stragglers);
        // the next wait reads it under `gp`.
        self.phase.store(current ^ 1, Ordering::Relaxed);
        while !self.is_zero(current) {
            drive();
        }
    }

    fn is_zero(&self, index: usize) -> bool {
        // Acquire: pairs with the Release decrement in `exit`.
        self.open[index].load(Ordering::Acquire) == 0
    }
}
