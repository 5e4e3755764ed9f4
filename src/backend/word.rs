//! The fence state word, shared by both backends.
//!
//! One `AtomicU64`: the low bits are flags, the high 32 bits the pending error (0 = none).
//! Keeping the error in the same word as `SIGNALED` makes "set an error only while pending"
//! and "a reader who sees signalled sees the error" single atomic facts: `set_error` is a
//! CAS that fails once `SIGNALED` is set (no lock, as the kernel's `dma_fence_set_error`),
//! and the signaller's read-modify-write that sets `SIGNALED` freezes the error.

use crate::sync::{AtomicU64, Ordering};

use crate::error::Errno;

/// A snapshot of the state word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    /// Set once by the signal winner.
    pub(crate) const SIGNALED: u64 = 1 << 0;
    /// Set by the signal winner after the timestamp cell is written.
    pub(crate) const TIMESTAMP: u64 = 1 << 1;
    /// Set by the first `enable_signaling`.
    pub(crate) const ENABLED: u64 = 1 << 2;
    /// `Rcu` only: held by a callback remover while it unlinks a node (the unlink lock of
    /// `backend::rcu::callbacks`).
    pub(crate) const UNLINKING: u64 = 1 << 3;

    pub(crate) fn is_signaled(self) -> bool {
        self.0 & Self::SIGNALED != 0
    }

    pub(crate) fn has_timestamp(self) -> bool {
        self.0 & Self::TIMESTAMP != 0
    }

    pub(crate) fn is_enabled(self) -> bool {
        self.0 & Self::ENABLED != 0
    }

    pub(crate) fn error(self) -> Option<Errno> {
        Errno::new((self.0 >> 32) as u32 as i32)
    }

    pub(crate) fn with_error(self, error: Errno) -> Word {
        Word((self.0 & 0xffff_ffff) | ((error.get() as u32 as u64) << 32))
    }
}

/// Records `error` on a pending fence's word; `Err(AlreadySignaled)` once signalled.
pub(crate) fn set_error(word: &AtomicU64, error: Errno) -> Result<(), crate::FenceError> {
    // Relaxed initial load: the CAS below validates it.
    let mut current = Word(word.load(Ordering::Relaxed));
    loop {
        if current.is_signaled() {
            return Err(crate::FenceError::AlreadySignaled);
        }
        let new = current.with_error(error);
        // Release: the error is published with the word; the signaller's RMW reads it.
        match word.compare_exchange_weak(current.0, new.0, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(actual) => current = Word(actual),
        }
    }
}

/// Sets `bits` (which include `SIGNALED`) unless already signalled, applying `error` if the
/// word carries none yet. Returns the word as it was before. One RMW decides the signaller.
pub(crate) fn signal(word: &AtomicU64, bits: u64, error: Option<Errno>) -> Word {
    match error {
        // AcqRel: Release publishes the signaller's prior work (and freezes the error) to
        // readers' Acquire loads; Acquire orders it after a racing set_error's CAS.
        None => Word(word.fetch_or(bits, Ordering::AcqRel)),
        Some(error) => {
            // Relaxed: the CAS validates it.
            let mut current = Word(word.load(Ordering::Relaxed));
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
                match word.compare_exchange_weak(
                    current.0,
                    base.0 | bits,
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
