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

impl fmt::Display for Status {
    /// `pending`, `signaled`, or `error -62` (the code), as the fence's `Debug` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Pending => f.write_str("pending"),
            Status::Signaled => f.write_str("signaled"),
            Status::Error(e) => write!(f, "error {}", e.get()),
        }
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
    /// The call would block where blocking can deadlock: on `Locked`, inside a callback or
    /// hook (which hold a fence lock, as in the kernel, where sleeping there is forbidden).
    WouldDeadlock,
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
            FenceError::WouldDeadlock => "blocking here could deadlock (a fence lock is held)",
        })
    }
}

impl std::error::Error for FenceError {}

/// A callback refused because its fence has already signalled, handed back uncalled (so
/// that nothing it owns is dropped behind the caller's back, as the Rust-for-Linux binding's
/// `CallbackError::AlreadySignaled(T)`). Its `Debug` and `Display` need nothing of the
/// callback; it converts into [`FenceError::AlreadySignaled`] for `?`.
///
/// ```
/// use std::pin::pin;
/// use rcu_fence::{AlreadySignaled, CallbackRegistration, FenceError, Timeline};
/// let fence = Timeline::new("gpu").fence(1);
/// fence.signal().unwrap();
/// let mut reg = pin!(CallbackRegistration::new(|_| ()));
/// let AlreadySignaled(callback) = reg.as_mut().register(&fence).unwrap_err();
/// callback(&fence); // still ours to call, or to drop
/// ```
pub struct AlreadySignaled<F>(pub F);

impl<F> AlreadySignaled<F> {
    /// The callback, handed back.
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for AlreadySignaled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlreadySignaled(..)")
    }
}

impl<F> fmt::Display for AlreadySignaled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&FenceError::AlreadySignaled, f)
    }
}

impl<F> std::error::Error for AlreadySignaled<F> {}

impl<F> From<AlreadySignaled<F>> for FenceError {
    fn from(_: AlreadySignaled<F>) -> FenceError {
        FenceError::AlreadySignaled
    }
}

impl<F> PartialEq<FenceError> for AlreadySignaled<F> {
    fn eq(&self, other: &FenceError) -> bool {
        *other == FenceError::AlreadySignaled
    }
}
