//! Error codes, fence status and the library's error type.

use std::fmt;

/// A negative errno value carried by a fence that completed with an error (never 0).
///
/// The kernel accepts codes in `-MAX_ERRNO..0` (`-4095..=-1`); so does [`Errno::new`].
/// Codes use Linux's numbering. `Display` prints the symbolic name for every Linux errno
/// (`-EIO`, `-ECANCELED`) and the plain number for a code that has none (`-4000`); it is
/// an [`Error`](std::error::Error), and converts into [`std::io::Error`].
///
/// ```
/// use rcu_fence::Errno;
/// let e = Errno::new(-125).unwrap();
/// assert_eq!(e, Errno::ECANCELED);
/// assert_eq!(e.get(), -125);
/// assert_eq!(e.to_string(), "-ECANCELED");
/// assert_eq!(Errno::new(-4000).unwrap().to_string(), "-4000");
/// assert_eq!(format!("{:?}", Errno::EIO), "Errno(-EIO)");
/// assert!(Errno::new(0).is_none());
/// assert!(Errno::new(5).is_none());
///
/// // `?` into any error type that takes a `std::error::Error`.
/// fn check(e: Errno) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     Err(e)?
/// }
/// assert_eq!(check(Errno::EIO).unwrap_err().to_string(), "-EIO");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    /// The largest magnitude the kernel accepts for an error code.
    pub const MAX_ERRNO: i32 = 4095;
    /// `-EPERM`: operation not permitted.
    pub const EPERM: Errno = Errno(-1);
    /// `-ENOENT`: no such entry.
    pub const ENOENT: Errno = Errno(-2);
    /// `-EINTR`: interrupted.
    pub const EINTR: Errno = Errno(-4);
    /// `-EIO`: an I/O or device error.
    pub const EIO: Errno = Errno(-5);
    /// `-EAGAIN`: try again.
    pub const EAGAIN: Errno = Errno(-11);
    /// `-ENOMEM`: out of memory.
    pub const ENOMEM: Errno = Errno(-12);
    /// `-EFAULT`: a bad address.
    pub const EFAULT: Errno = Errno(-14);
    /// `-EBUSY`: the device or resource is busy.
    pub const EBUSY: Errno = Errno(-16);
    /// `-ENODEV`: no such device (a device lost or unplugged).
    pub const ENODEV: Errno = Errno(-19);
    /// `-EINVAL`: an invalid argument.
    pub const EINVAL: Errno = Errno(-22);
    /// `-ENOSPC`: no space left.
    pub const ENOSPC: Errno = Errno(-28);
    /// `-EPIPE`: the other end is gone.
    pub const EPIPE: Errno = Errno(-32);
    /// `-EDEADLK`: a fence was dropped while callbacks were still waiting on it.
    pub const EDEADLK: Errno = Errno(-35);
    /// `-ENODATA`.
    pub const ENODATA: Errno = Errno(-61);
    /// `-ETIME`: the work behind a fence timed out.
    pub const ETIME: Errno = Errno(-62);
    /// `-EPROTO`: a protocol error.
    pub const EPROTO: Errno = Errno(-71);
    /// `-EOPNOTSUPP`: operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(-95);
    /// `-ENOTSUP`: Linux's other name for [`Errno::EOPNOTSUPP`] (the same code).
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;
    /// `-ETIMEDOUT`: a timeout (the kernel's GPU schedulers report hung jobs with it or
    /// with [`Errno::ETIME`]).
    pub const ETIMEDOUT: Errno = Errno(-110);
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

    /// Linux's symbolic name for the code (`"EIO"` for -5), or `None` for a code that has
    /// none (the unused 41 and 58, and everything past 133).
    ///
    /// ```
    /// use rcu_fence::Errno;
    /// assert_eq!(Errno::EIO.name(), Some("EIO"));
    /// assert_eq!(Errno::new(-4000).unwrap().name(), None);
    /// ```
    pub const fn name(self) -> Option<&'static str> {
        let code = -self.0 as usize;
        if code >= NAMES.len() || NAMES[code].is_empty() {
            None
        } else {
            Some(NAMES[code])
        }
    }
}

/// Linux's errno names, indexed by the (positive) code; empty where the code has no name
/// of its own (41 and 58 are unused: `EWOULDBLOCK` and `EDEADLOCK` are aliases of 11 and 35).
#[rustfmt::skip]
const NAMES: [&str; 134] = [
    /*   0 */ "", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF",
    /*  10 */ "ECHILD", "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST",
    /*  18 */ "EXDEV", "ENODEV", "ENOTDIR", "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY",
    /*  26 */ "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE",
    /*  35 */ "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP", "", "ENOMSG",
    /*  43 */ "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI",
    /*  51 */ "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "", "EBFONT",
    /*  60 */ "ENOSTR", "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK",
    /*  68 */ "EADV", "ESRMNT", "ECOMM", "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW",
    /*  76 */ "ENOTUNIQ", "EBADFD", "EREMCHG", "ELIBACC", "ELIBBAD", "ELIBSCN", "ELIBMAX",
    /*  83 */ "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ",
    /*  90 */ "EMSGSIZE", "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT",
    /*  95 */ "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL",
    /* 100 */ "ENETDOWN", "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS",
    /* 106 */ "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT", "ECONNREFUSED",
    /* 112 */ "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN",
    /* 118 */ "ENOTNAM", "ENAVAIL", "EISNAM", "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE",
    /* 125 */ "ECANCELED", "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD",
    /* 131 */ "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
];

impl fmt::Display for Errno {
    /// `-EIO` for a code with a Linux name, `-4000` for one without.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "-{name}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for Errno {
    /// `Errno(-EIO)`: the code as `Display` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({self})")
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    /// On Linux, the OS error with that code (`raw_os_error()` is the positive errno, the
    /// kind and message are the system's). Elsewhere, where the numbering differs, an
    /// `Other` error carrying the `Errno`.
    fn from(e: Errno) -> std::io::Error {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return std::io::Error::from_raw_os_error(-e.get());
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return std::io::Error::other(e);
    }
}

impl fmt::Display for Status {
    /// `pending`, `signaled`, or `error -ETIME` (the code, as [`Errno`] prints it), as the
    /// fence's `Debug` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Pending => f.write_str("pending"),
            Status::Signaled => f.write_str("signaled"),
            Status::Error(e) => write!(f, "error {e}"),
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

    /// The status as a result a caller can `?`: `Ok(())` for signalled without error,
    /// `Err(Failed(e))` for signalled with error `e`, `Err(Pending)` while pending.
    ///
    /// ```
    /// use rcu_fence::{Errno, FenceError, Status};
    /// assert_eq!(Status::Signaled.into_result(), Ok(()));
    /// assert_eq!(Status::Error(Errno::EIO).into_result(), Err(FenceError::Failed(Errno::EIO)));
    /// assert_eq!(Status::Pending.into_result(), Err(FenceError::Pending));
    /// ```
    pub const fn into_result(self) -> Result<(), FenceError> {
        match self {
            Status::Pending => Err(FenceError::Pending),
            Status::Signaled => Ok(()),
            Status::Error(e) => Err(FenceError::Failed(e)),
        }
    }
}

/// Errors returned by fence operations, and by waits whose fence completed with an error
/// ([`FenceError::Failed`]).
///
/// It is an [`Error`](std::error::Error) and converts into [`std::io::Error`] (a failed
/// fence into the OS error of its code, the others into a matching
/// [`ErrorKind`](std::io::ErrorKind) carrying this value).
///
/// ```
/// use rcu_fence::{Errno, FenceError, Timeline};
/// let f = Timeline::new("gpu").fence(1);
/// f.set_error(Errno::EIO).unwrap();
/// f.signal().unwrap();
/// assert_eq!(f.signal(), Err(FenceError::AlreadySignaled));
/// assert_eq!(f.wait(), Err(FenceError::Failed(Errno::EIO)));
///
/// fn job(f: &rcu_fence::Fence) -> std::io::Result<()> {
///     f.wait()?; // FenceError into io::Error
///     Ok(())
/// }
/// assert_eq!(job(&f).unwrap_err().raw_os_error(), Some(5));
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
    /// The fence signalled with this error (a wait's result; see [`Status::into_result`]).
    Failed(Errno),
    /// The fence has not signalled yet ([`Status::into_result`] of [`Status::Pending`]).
    Pending,
}

impl fmt::Display for FenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let FenceError::Failed(e) = self {
            return write!(f, "fence signalled with error {e}");
        }
        f.write_str(match self {
            FenceError::AlreadySignaled => "fence already signalled",
            FenceError::TimedOut => "timed out waiting for the fence",
            FenceError::Empty => "no fences given",
            FenceError::InvalidSeqno => "seqno not reached by this timeline or chain",
            FenceError::ForeignCallback => "callback id belongs to another fence",
            FenceError::ContextsExhausted => "the 64-bit fence context id space is exhausted",
            FenceError::WouldDeadlock => "blocking here could deadlock (a fence lock is held)",
            FenceError::Pending => "fence not signalled yet",
            FenceError::Failed(_) => unreachable!("handled above"),
        })
    }
}

impl std::error::Error for FenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FenceError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FenceError> for std::io::Error {
    /// `Failed(e)` becomes `e`'s OS error (see `From<Errno>`); the others an error of the
    /// matching kind that carries the `FenceError`: `TimedOut` → `TimedOut`, `Pending` →
    /// `WouldBlock`, `WouldDeadlock` → `Deadlock`, `ContextsExhausted` → `OutOfMemory`,
    /// the rest (misuse: a signalled fence, no fences, a bad seqno or id) → `InvalidInput`.
    fn from(e: FenceError) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match e {
            FenceError::Failed(errno) => return errno.into(),
            FenceError::TimedOut => ErrorKind::TimedOut,
            FenceError::Pending => ErrorKind::WouldBlock,
            FenceError::WouldDeadlock => ErrorKind::Deadlock,
            FenceError::ContextsExhausted => ErrorKind::OutOfMemory,
            FenceError::AlreadySignaled
            | FenceError::Empty
            | FenceError::InvalidSeqno
            | FenceError::ForeignCallback => ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

impl From<Errno> for FenceError {
    /// [`FenceError::Failed`].
    fn from(e: Errno) -> FenceError {
        FenceError::Failed(e)
    }
}

/// A callback refused because its fence has already signalled, handed back uncalled (so
/// that nothing it owns is dropped behind the caller's back, as the Rust-for-Linux binding's
/// `CallbackError::AlreadySignaled(T)`): the error of [`Fence::add_callback`] and
/// [`CallbackRegistration::register`].
///
/// Its `Debug` and `Display` need nothing of the callback, it is `Send + Sync` whenever the
/// callback is `Send` (every callback is), and it converts into
/// [`FenceError::AlreadySignaled`]; so `.unwrap()`, `?` into [`FenceError`] or into
/// `Box<dyn Error + Send + Sync>`, and `is_err()` all work as with any error.
///
/// [`Fence::add_callback`]: crate::Fence::add_callback
/// [`CallbackRegistration::register`]: crate::CallbackRegistration::register
///
/// ```
/// use std::sync::mpsc;
/// use rcu_fence::{FenceError, Timeline};
/// let fence = Timeline::new("gpu").fence(1);
/// fence.signal().unwrap();
/// let (tx, rx) = mpsc::channel();
/// let refused = fence.add_callback(move |_| tx.send("done").unwrap()).unwrap_err();
/// assert_eq!(refused, FenceError::AlreadySignaled);
/// let callback = refused.into_inner(); // still ours: call it, or drop it deliberately
/// callback(&fence);
/// assert_eq!(rx.recv(), Ok("done"));
///
/// fn install(fence: &rcu_fence::Fence) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     fence.add_callback(|_| ())?;
///     Ok(())
/// }
/// assert!(install(&fence).is_err());
/// ```
pub struct AlreadySignaled<F> {
    callback: F,
}

impl<F> AlreadySignaled<F> {
    pub(crate) fn new(callback: F) -> Self {
        AlreadySignaled { callback }
    }

    /// The callback, handed back.
    pub fn into_inner(self) -> F {
        self.callback
    }
}

// SAFETY: a shared `&AlreadySignaled<F>` gives no access to the callback: the field is
// private, and every method and trait impl taking `&self` (`Debug`, `Display`, `Error`,
// `PartialEq<FenceError>`) ignores it; only `into_inner`, by value, reaches it, and moving
// the value to another thread needs `Send`. So sharing it between threads shares nothing of
// `F`, as with std's `Exclusive`. (It lets `?` put it into `Box<dyn Error + Send + Sync>`
// for closures that capture values that are `Send` but not `Sync`, such as a `Cell`.)
unsafe impl<F: Send> Sync for AlreadySignaled<F> {}

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
