//! The classic scheme's fence lock (`fence->lock`, the 2026 kernel's inline lock): two bits
//! of the fence's state word, `LOCKED` and `PARKED`, so that the fence stays 64 bytes as the
//! kernel's does. Contended lockers spin briefly, then park on the word's address
//! (`parking_lot_core`), as `parking_lot`'s own mutex does with its byte.
//!
//! Every acquisition reports to the lock recorder ([`lockdep`](super::lockdep)) and counts
//! in the thread's irq_work section ([`irq_work`](super::irq_work)): releasing the thread's
//! outermost fence lock runs the irq_work queued meanwhile.
//!
//! **Re-entry.** The kernel's spinlock is not re-entrant: a callback (which runs under its
//! fence's lock) or an `enable_signaling` hook that takes its own fence's lock again
//! deadlocks. Here the recorder sees that the thread already holds the lock; the attempt is
//! counted as a self-deadlock (`LockdepReport::self_deadlocks`) and the caller goes on under
//! the lock it already holds, so that safe code cannot hang, and a callback registration
//! dropped inside its own fence's callback can still take itself back.
//!
//! # Protocol of the bits
//! - lock: CAS `LOCKED` in while clear (`Acquire`); when contended, after a short spin, set
//!   `PARKED` and park on the word's address, validating that both bits are still set (the
//!   validation runs under the parking lot's bucket lock, as does the unlocker's callback).
//! - unlock: without `PARKED`, a CAS clears `LOCKED` (`Release`); with it, `unpark_one`, whose
//!   callback (under the bucket lock) clears `LOCKED`, and `PARKED` too if no thread is left
//!   parked.
//!
//! # Orderings
//! The acquiring CAS is `Acquire` and every release of `LOCKED` is `Release`: what one holder
//! did under the lock happens before the next holder's critical section. `PARKED` alone
//! orders nothing (it only says whom to wake): `Relaxed`.

use crate::backend::Backend;
use crate::backend::state::{FenceState, StateWord, Word};
use crate::fence::Fence;
use crate::sync::Ordering;

use super::lockdep::{self, LockClass};

/// The guard of a fence lock: unlocks (unless it re-entered a lock the thread held), then
/// records the release, then, for the thread's outermost lock, runs its queued irq_work.
pub(crate) struct FenceLock<'a> {
    state: &'a FenceState,
    /// True if this guard took the lock (not a re-entry).
    taken: bool,
}

/// The lock class of `fence` for the recorder.
fn class_of<B: Backend>(fence: &Fence<B>) -> LockClass {
    if !fence.is_container() {
        LockClass::Fence
    } else if fence.as_array().is_some() {
        LockClass::Array
    } else {
        LockClass::Chain
    }
}

/// Takes `fence`'s lock for `op` (or re-enters it if this thread holds it already).
pub(crate) fn lock<'a, B: Backend>(fence: &'a Fence<B>, op: &'static str) -> FenceLock<'a> {
    lock_annotated(fence, op, false)
}

/// As [`lock`], with the nested annotation (the kernel's `spin_lock_nested`): for taking the
/// lock of a fence that signals before one whose lock is held (the reverse-signal-order rule).
pub(crate) fn lock_nested<'a, B: Backend>(fence: &'a Fence<B>, op: &'static str) -> FenceLock<'a> {
    lock_annotated(fence, op, true)
}

fn lock_annotated<'a, B: Backend>(
    fence: &'a Fence<B>,
    op: &'static str,
    nested: bool,
) -> FenceLock<'a> {
    let state = fence.state();
    let addr = state as *const FenceState as usize;
    match lockdep::enter(addr, || class_of(fence), op, nested) {
        lockdep::Entered::Reentered => FenceLock {
            state,
            taken: false,
        },
        lockdep::Entered::Taken => {
            raw_lock(&state.word);
            FenceLock { state, taken: true }
        }
    }
}

impl Drop for FenceLock<'_> {
    fn drop(&mut self) {
        if self.taken {
            raw_unlock(&self.state.word);
            if lockdep::leave(self.state as *const FenceState as usize) {
                // The thread's outermost fence lock: its irq_work runs now, no lock held.
                super::irq_work::run_queued();
            }
        }
    }
}

fn raw_lock(word: &StateWord) {
    let mut spins = 0u32;
    loop {
        // Relaxed: the CAS below validates it.
        let current = word.load_with(Ordering::Relaxed);
        if !current.is_locked() {
            let locked = Word::from_bits(current.bits() | Word::LOCKED);
            // Acquire: see the module's Orderings.
            if word
                .compare_exchange_weak(current, locked, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            continue;
        }
        let parked = current.bits() & Word::PARKED != 0;
        if !parked && spins < 40 {
            crate::sync::backoff(&mut spins);
            continue;
        }
        if !parked {
            let with_parked = Word::from_bits(current.bits() | Word::PARKED);
            // Relaxed: PARKED orders nothing (see the module's Orderings).
            if word
                .compare_exchange_weak(current, with_parked, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
        }
        park(word);
        spins = 0;
    }
}

fn raw_unlock(word: &StateWord) {
    loop {
        // Relaxed: the CAS below validates it.
        let current = word.load_with(Ordering::Relaxed);
        if current.bits() & Word::PARKED != 0 {
            unpark_one(word);
            return;
        }
        let unlocked = Word::from_bits(current.bits() & !Word::LOCKED);
        // Release: see the module's Orderings.
        if word
            .compare_exchange_weak(current, unlocked, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

#[cfg(not(loom))]
fn park(word: &StateWord) {
    let both = Word::LOCKED | Word::PARKED;
    // SAFETY: the validate closure only loads the word (alive: the fence is borrowed by the
    // locker); no callback panics or parks.
    unsafe {
        let _ = parking_lot_core::park(
            word as *const StateWord as usize,
            // Relaxed: a hint; the lock CAS after waking validates.
            || word.load_with(Ordering::Relaxed).bits() & both == both,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            None,
        );
    }
}

#[cfg(not(loom))]
fn unpark_one(word: &StateWord) {
    // SAFETY: the callback only updates the word (alive: the unlocker borrows the fence);
    // it does not panic or park.
    unsafe {
        parking_lot_core::unpark_one(word as *const StateWord as usize, |result| {
            let clear = if result.have_more_threads {
                Word::LOCKED
            } else {
                Word::LOCKED | Word::PARKED
            };
            // Release: see the module's Orderings.
            word.clear(clear, Ordering::Release);
            parking_lot_core::DEFAULT_UNPARK_TOKEN
        });
    }
}

// Under loom there is no parking: a contended locker yields until the bit clears.
#[cfg(loom)]
fn park(word: &StateWord) {
    // Relaxed: as in `raw_lock`; the model explores the yields.
    if word.load_with(Ordering::Relaxed).is_locked() {
        loom::thread::yield_now();
    }
}

#[cfg(loom)]
fn unpark_one(word: &StateWord) {
    // Release: see the module's Orderings.
    word.clear(Word::LOCKED | Word::PARKED, Ordering::Release);
}
