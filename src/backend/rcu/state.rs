//! The `Rcu` fence's state word.
//!
//! One `AtomicU64`: the low bits are flags, the high 32 bits the pending error (0 = none).
//! Keeping the error in the same word as `SIGNALED` makes "set an error only while pending"
//! and "a reader who sees signalled sees the error" single atomic facts: `set_error` is a
//! CAS that fails once `SIGNALED` is set, and `signal`'s `fetch_or` freezes the error.

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
