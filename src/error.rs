//! Error codes, fence status and the library's error type.

use std::fmt;

/// A negative errno value carried by a fence that completed with an error (never 0).
///
/// The kernel accepts codes in `-MAX_ERRNO..0` (`-4095..=-1`); so does [`Errno::new`].
///
/// ```
/// use rcu_fence::Errno;
/// let e = Errno::new(-125).unwrap();
/// assert_eq!(e, Errno::ECANCELED);
/// assert_eq!(e.get(), -125);
/// assert!(Errno::new(0).is_none());
/// assert!(Errno::new(5).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Errno(i32);

impl Errno {
    /// The largest magnitude the kernel accepts for an error code.
    pub const MAX_ERRNO: i32 = 4095;
    /// `-ENOENT`.
    pub const ENOENT: Errno = Errno(-2);
    /// `-EINVAL`.
    pub const EINVAL: Errno = Errno(-22);
    /// `-EDEADLK`: a fence was dropped while callbacks were still waiting on it.
    pub const EDEADLK: Errno = Errno(-35);
    /// `-ENODATA`.
    pub const ENODATA: Errno = Errno(-61);
    /// `-ETIME`: the work behind a fence timed out.
    pub const ETIME: Errno = Errno(-62);
    /// `-ECANCELED`: a producer dropped its [`DriverFence`](crate::DriverFence) without signalling.
    pub const ECANCELED: Errno = Errno(-125);

    /// An error code in `-4095..=-1`; `None` for 0, positive or out-of-range values.
    pub const fn new(code: i32) -> Option<Errno> {
        if code < 0 && code >= -Self::MAX_ERRNO {
            Some(Errno(code))
        } else {
            None
        }
    }

    /// The (negative) code.
    pub const fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Errno::ENOENT => "ENOENT",
            Errno::EINVAL => "EINVAL",
            Errno::EDEADLK => "EDEADLK",
            Errno::ENODATA => "ENODATA",
            Errno::ETIME => "ETIME",
            Errno::ECANCELED => "ECANCELED",
            _ => return write!(f, "errno {}", self.0),
        };
        write!(f, "-{name}")
    }
}

/// What a fence reports about its completion (`dma_fence_get_status`: 0, 1 or a negative code).
///
/// ```
/// use rcu_fence::{Status, Timeline};
/// let tl = Timeline::new("gpu");
/// let f = tl.fence(1);
/// assert_eq!(f.status(), Status::Pending);
/// f.signal().unwrap();
/// assert_eq!(f.status(), Status::Signaled);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Status {
    /// Not signalled yet.
    Pending,
    /// Signalled without error.
    Signaled,
    /// Signalled with an error.
    Error(Errno),
}

impl Status {
    /// True once the fence has signalled, with or without an error.
    pub const fn is_signaled(self) -> bool {
        !matches!(self, Status::Pending)
    }

    /// The kernel's integer form: 0 pending, 1 signalled, or the negative error.
    pub const fn to_kernel(self) -> i32 {
        match self {
            Status::Pending => 0,
            Status::Signaled => 1,
            Status::Error(e) => e.get(),
        }
    }
}

/// Errors returned by fence operations.
///
/// ```
/// use rcu_fence::{FenceError, Timeline};
/// let f = Timeline::new("gpu").fence(1);
/// f.signal().unwrap();
/// assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum FenceError {
    /// The fence has already signalled: nothing was changed or installed.
    AlreadySignaled,
    /// The wait ended before the fence signalled.
    TimedOut,
    /// A container or wait was given no fences.
    Empty,
    /// A seqno that a chain or timeline has not reached, or a fence that is not a chain.
    InvalidSeqno,
    /// A callback id that was issued by a different fence.
    ForeignCallback,
    /// [`try_context_alloc`](crate::try_context_alloc) found too few context ids left.
    ContextsExhausted,
}

impl fmt::Display for FenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FenceError::AlreadySignaled => "fence already signalled",
            FenceError::TimedOut => "timed out waiting for the fence",
            FenceError::Empty => "no fences given",
            FenceError::InvalidSeqno => "seqno not reached by this timeline or chain",
            FenceError::ForeignCallback => "callback id belongs to another fence",
            FenceError::ContextsExhausted => "the 64-bit fence context id space is exhausted",
        })
    }
}

impl std::error::Error for FenceError {}
