//! The state every fence carries, whatever its scheme: one state word and one list word,
//! 16 bytes in all (the kernel's `flags`, `error` and `cb_list`/`timestamp` union).
//!
//! # The state word
//!
//! ```text
//!  63            32 31      8   7       6       5        4        3          2         1         0
//! [ error (i32)    | unused   | QUIET | INERT | PARKED | LOCKED | CONTAINER | SEQNO64 | ENABLED | SIGNALED ]
//! ```
//!
//! - `SIGNALED` is set once, by the signal winner's read-modify-write, which also freezes the
//!   error: `set_error` is a CAS that fails once `SIGNALED` is set (no lock, as the kernel's
//!   `dma_fence_set_error`), and "a reader who sees signalled sees the error" is one fact.
//! - `ENABLED` is set by the first `enable_signaling` (the kernel's test-and-set, re-check).
//! - `SEQNO64`, `CONTAINER`, `INERT` and `QUIET` are fixed at birth. An inert fence (the
//!   library's own plain ops: a timeline's, the stub's) is born `ENABLED` (there is no hook
//!   to call) and its last drop cannot cascade unless callbacks are still linked. A quiet
//!   fence's ops have no `signaled` poll (`FenceOps::polls`): its flag answers alone.
//! - `LOCKED` and `PARKED` belong to the scheme: `Rcu` uses `LOCKED` as its unlink lock,
//!   `Locked` both as its fence lock (`backend::locked::lock`).
//!
//! The list word ([`List`]) is the callback list's head while the fence is pending and the
//! signal time once it has signalled (the kernel overlays `cb_list` and `timestamp` too).
//!
//! # Orderings
//! Each method chooses its own and says why; in short: readers `Acquire` the word, pairing
//! with the signal winner's `AcqRel` RMW, so a reader who sees `SIGNALED` sees the error and
//! everything the signaller did before; `set_error` publishes with `Release` into the same
//! word the signaller's RMW reads.

use std::time::Instant;

use crate::error::{Errno, FenceError};
use crate::sync::{AtomicU64, Ordering};

use super::list::List;

/// A snapshot of the state word, with named predicates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Word(u64);

impl Word {
    pub(crate) const SIGNALED: u64 = 1 << 0;
    pub(crate) const ENABLED: u64 = 1 << 1;
    pub(crate) const SEQNO64: u64 = 1 << 2;
    pub(crate) const CONTAINER: u64 = 1 << 3;
    /// The scheme's lock bit (see the module docs).
    pub(crate) const LOCKED: u64 = 1 << 4;
    /// The scheme's parked-waiters bit (see the module docs).
    pub(crate) const PARKED: u64 = 1 << 5;
    /// Fixed at birth: see [`Birth::inert`].
    pub(crate) const INERT: u64 = 1 << 6;
    /// Fixed at birth: see [`Birth::polls`].
    pub(crate) const QUIET: u64 = 1 << 7;
    /// The bits a fence is born with and keeps.
    const FIXED: u64 = Self::SEQNO64 | Self::CONTAINER | Self::INERT | Self::QUIET;

    pub(crate) fn from_bits(bits: u64) -> Word {
        Word(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn is_signaled(self) -> bool {
        self.0 & Self::SIGNALED != 0
    }

    pub(crate) fn is_enabled(self) -> bool {
        self.0 & Self::ENABLED != 0
    }

    pub(crate) fn is_seqno64(self) -> bool {
        self.0 & Self::SEQNO64 != 0
    }

    pub(crate) fn is_container(self) -> bool {
        self.0 & Self::CONTAINER != 0
    }

    pub(crate) fn is_inert(self) -> bool {
        self.0 & Self::INERT != 0
    }

    pub(crate) fn is_quiet(self) -> bool {
        self.0 & Self::QUIET != 0
    }

    pub(crate) fn is_locked(self) -> bool {
        self.0 & Self::LOCKED != 0
    }

    pub(crate) fn error(self) -> Option<Errno> {
        Errno::new((self.0 >> 32) as u32 as i32)
    }

    fn with_error(self, error: Errno) -> Word {
        Word((self.0 & 0xffff_ffff) | ((error.get() as u32 as u64) << 32))
    }
}

/// The state word.
pub(crate) struct StateWord(AtomicU64);

impl StateWord {
    fn new(bits: u64) -> StateWord {
        StateWord(AtomicU64::new(bits))
    }

    /// A snapshot. `Acquire`: pairs with the signaller's `Release` half; a reader who sees
    /// `SIGNALED` sees the error and everything the signaller did before the signal.
    pub(crate) fn load(&self) -> Word {
        Word(self.0.load(Ordering::Acquire))
    }

    /// Records `error` while pending; `Err(AlreadySignaled)` once signalled. A later call
    /// replaces an earlier one.
    pub(crate) fn set_error(&self, error: Errno) -> Result<(), FenceError> {
        self.update_error(|_| Some(error))
    }

    /// Records `error` unless an error is set already (a container applying its first
    /// member error before it signals); `Err(AlreadySignaled)` once signalled.
    pub(crate) fn set_error_if_none(&self, error: Errno) -> Result<(), FenceError> {
        self.update_error(|current| current.is_none().then_some(error))
    }

    fn update_error(&self, new: impl Fn(Option<Errno>) -> Option<Errno>) -> Result<(), FenceError> {
        // Relaxed: the CAS below validates it.
        let mut current = Word(self.0.load(Ordering::Relaxed));
        loop {
            if current.is_signaled() {
                return Err(FenceError::AlreadySignaled);
            }
            let Some(error) = new(current.error()) else {
                return Ok(());
            };
            // Release: the error is published with the word; the signaller's RMW reads it.
            match self.0.compare_exchange_weak(
                current.0,
                current.with_error(error).0,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = Word(actual),
            }
        }
    }

    /// Sets `SIGNALED` unless it is set, applying `error` if the word carries none yet.
    /// Returns the word as it was: its `SIGNALED` tells whether this call won. One RMW
    /// decides the signaller.
    pub(crate) fn signal(&self, error: Option<Errno>) -> Word {
        match error {
            // AcqRel: Release publishes the signaller's prior work (and freezes the error)
            // to readers' Acquire loads; Acquire orders it after a racing set_error's CAS.
            None => Word(self.0.fetch_or(Word::SIGNALED, Ordering::AcqRel)),
            Some(error) => {
                // Relaxed: the CAS validates it.
                let mut current = Word(self.0.load(Ordering::Relaxed));
                loop {
                    if current.is_signaled() {
                        return current;
                    }
                    let base = if current.error().is_some() {
                        current
                    } else {
                        current.with_error(error)
                    };
                    // AcqRel: as the fetch_or above.
                    match self.0.compare_exchange_weak(
                        current.0,
                        base.0 | Word::SIGNALED,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return current,
                        Err(actual) => current = Word(actual),
                    }
                }
            }
        }
    }

    /// Sets `ENABLED`; returns the word as it was (the first caller runs the hook).
    /// `AcqRel`: ordering it after a racing `SIGNALED` lets the caller skip a hook that is no
    /// longer needed (the kernel's test-and-set, then re-check).
    pub(crate) fn enable(&self) -> Word {
        Word(self.0.fetch_or(Word::ENABLED, Ordering::AcqRel))
    }

    /// A CAS on the whole word, for the schemes' lock bits (each call site names its
    /// orderings and their pairs).
    pub(crate) fn compare_exchange_weak(
        &self,
        current: Word,
        new: Word,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Word, Word> {
        self.0
            .compare_exchange_weak(current.0, new.0, success, failure)
            .map(Word)
            .map_err(Word)
    }

    /// Clears `bits`, returning the word as it was (for the schemes' lock bits; the caller
    /// names the ordering).
    pub(crate) fn clear(&self, bits: u64, ordering: Ordering) -> Word {
        Word(self.0.fetch_and(!bits, ordering))
    }

    /// A snapshot with the caller's ordering (for spins on the lock bits).
    pub(crate) fn load_with(&self, ordering: Ordering) -> Word {
        Word(self.0.load(ordering))
    }
}

/// What a fence is born as: pending, or already signalled at a time (a stub).
pub(crate) struct Birth {
    pub(crate) seqno64: bool,
    pub(crate) container: bool,
    /// The fence's ops are the library's own plain ones (a timeline's, the stub's): they
    /// have no `enable_signaling` hook to call (the fence is born enabled) and own nothing
    /// whose drop could cascade.
    pub(crate) inert: bool,
    /// The fence's ops have a `signaled` poll (`FenceOps::polls`); if not, the fence is
    /// quiet: its flag answers "signalled?" without calling into the ops.
    pub(crate) polls: bool,
    pub(crate) signaled_at: Option<Instant>,
}

/// A fence's state: the state word and the list word (16 bytes).
pub(crate) struct FenceState {
    pub(crate) word: StateWord,
    pub(crate) list: List,
}

impl FenceState {
    pub(crate) fn new(birth: Birth) -> FenceState {
        let mut bits = 0;
        if birth.seqno64 {
            bits |= Word::SEQNO64;
        }
        if birth.container {
            bits |= Word::CONTAINER;
        }
        if birth.inert {
            bits |= Word::INERT | Word::ENABLED;
        }
        if !birth.polls {
            bits |= Word::QUIET;
        }
        let list = match birth.signaled_at {
            Some(at) => {
                bits |= Word::SIGNALED | Word::ENABLED;
                List::closed_at(at)
            }
            None => List::new(),
        };
        FenceState {
            word: StateWord::new(bits),
            list,
        }
    }

    /// True if callbacks are linked (a pending fence's list is not empty). Stable for the
    /// holder of the last handle: nobody else can link or unlink without a handle.
    pub(crate) fn has_linked(&self) -> bool {
        self.list.has_linked()
    }

    /// The signalled flag alone.
    pub(crate) fn is_signaled(&self) -> bool {
        self.word.load().is_signaled()
    }

    /// The error, once signalled.
    pub(crate) fn error(&self) -> Option<Errno> {
        let word = self.word.load();
        if word.is_signaled() {
            word.error()
        } else {
            None
        }
    }

    /// The signal time, once signalled. The winner publishes it right after `SIGNALED`
    /// (closing the list); a reader that sees the flag first waits out that short window.
    pub(crate) fn timestamp(&self) -> Option<Instant> {
        if !self.is_signaled() {
            return None;
        }
        let mut spins = 0u32;
        loop {
            if let Some(at) = self.list.timestamp() {
                return Some(at);
            }
            crate::sync::backoff(&mut spins);
        }
    }

    /// On the final drop of a fence whose callbacks are still linked: their state, moved into
    /// a fresh pending one (keeping the error and the fixed bits) so that they can be run
    /// with `-EDEADLK` through a new handle.
    pub(crate) fn take_pending(&mut self) -> Option<FenceState> {
        let list = self.list.take_linked()?;
        let word = self.word.load_with(Ordering::Relaxed); // `&mut self`: exclusive
        let kept = word.bits() & (0xffff_ffff_0000_0000 | Word::FIXED);
        Some(FenceState {
            word: StateWord::new(kept),
            list,
        })
    }
}
