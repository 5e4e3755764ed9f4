//! A fence as a file descriptor (Linux and Android): the userspace counterpart of the
//! kernel's `sync_file`. See [`FenceFd`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

use crate::backend::{Backend, FenceScheme, FencesOf, Rcu};
use crate::callback::CallbackId;
use crate::fence::Fence;

/// A file descriptor that becomes readable when a fence signals (the kernel's `sync_file`).
///
/// Made by [`Fence::to_fd`] or [`FenceFd::new`]; it keeps a reference to the fence. Dropping
/// it closes the descriptor (copies made with [`try_clone_fd`](FenceFd::try_clone_fd) or
/// held by other processes stay open) and, if the fence is still pending, removes its
/// callback.
///
/// It owns an eventfd that becomes readable when its fence signals, so a fence can
/// sit in a `poll`/`epoll` set, behind `tokio::io::unix::AsyncFd` or a mio registration, or
/// travel to another process (`fork`, `SCM_RIGHTS`, an inherited descriptor) like any fd.
///
/// # How it works
///
/// - The eventfd is created with `EFD_CLOEXEC | EFD_NONBLOCK` and a counter of 0 (not
///   readable).
/// - One callback on the fence writes 1 to it: the fd becomes readable (`POLLIN`). A fence
///   that has already signalled gets the write at once, when the `FenceFd` is made.
/// - The callback shares ownership of the fd (`Arc<OwnedFd>`): the fd number stays open
///   while a callback might still write to it, so the write can never reach a closed number
///   reused by something else.
/// - Dropping the `FenceFd` of a pending fence removes the callback; the closure, and with
///   it the callback's share of the fd, is dropped then. Nothing stays behind for a fence
///   that never signals. If the fence has signalled already, the callback has run or is
///   about to: it closes its share itself when it is done.
/// - Other fences pay nothing: this is one ordinary callback, on this fence only.
///
/// # Limits
///
/// - Readability is the eventfd's counter: **reading the fd consumes it** and makes the fd
///   unreadable again (unlike `sync_file`, which stays readable). Poll it, do not read it;
///   [`is_ready`](FenceFd::is_ready) and [`poll`](FenceFd::poll) only poll.
/// - Readable means "signalled", with or without an error: the status is on the fence
///   ([`fence`](FenceFd::fence)). A process that only has the descriptor learns completion only.
/// - Across `fork` or `SCM_RIGHTS` the receiver's descriptor refers to the same eventfd, so it
///   turns readable when the fence signals in the process that owns the `FenceFd`.
/// - [`as_raw_fd`](AsRawFd::as_raw_fd) returns the same open descriptor for the whole life
///   of the `FenceFd`, which is what `tokio::io::unix::AsyncFd::register` asks of it.
/// - Linux and Android only (eventfd), like [`Fence::to_fd`]; not built under `--cfg loom`.
///
/// ```
/// use std::time::Duration;
/// use rcu_fence::Timeline;
///
/// let fence = Timeline::new("gpu").fence(1);
/// let fd = fence.to_fd().unwrap();
/// assert!(!fd.is_ready());
/// fence.signal().unwrap();
/// assert!(fd.poll(Some(Duration::from_secs(1))).unwrap());
/// ```
pub struct FenceFd<B: Backend = Rcu> {
    fd: Arc<OwnedFd>,
    fence: Fence<B>,
    /// The writing callback, while it may still be queued.
    callback: Option<CallbackId<B>>,
}

impl<B: Backend> Fence<B> {
    /// A file descriptor that becomes readable when this fence signals; see [`FenceFd`]
    /// (Linux and Android only). Fails only if the eventfd cannot be created (for example
    /// `EMFILE`).
    pub fn to_fd(&self) -> io::Result<FenceFd<B>> {
        FenceFd::new(self)
    }
}

/// Makes `fd` readable: adds 1 to the eventfd's counter. A failure is impossible short of
/// the counter overflowing from outside writes, and there is nobody to report it to.
fn notify(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

impl<B: Backend> FenceFd<B> {
    /// A new eventfd for `fence` (takes a reference to it); readable at once if the fence
    /// has already signalled.
    pub fn new(fence: &Fence<B>) -> io::Result<Self> {
        let fd = Arc::new(rustix::event::eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?);
        let writer = Arc::clone(&fd);
        let callback = match fence.add_callback(move |_| notify(&writer)) {
            Ok(id) => Some(id),
            Err(refused) => {
                // Already signalled: the closure comes back uncalled; run it now.
                (refused.into_inner())(fence);
                None
            }
        };
        Ok(FenceFd {
            fd,
            fence: fence.clone(),
            callback,
        })
    }

    /// The fence this descriptor stands for.
    pub fn fence(&self) -> &Fence<B> {
        &self.fence
    }

    /// True if the descriptor is readable now (a `poll` with zero timeout).
    pub fn is_ready(&self) -> bool {
        self.poll(Some(Duration::ZERO)).unwrap_or(false)
    }

    /// Blocks in `poll(2)` until the descriptor is readable (`Ok(true)`) or `timeout` passes
    /// (`Ok(false)`); `None` waits forever. Interrupted polls are retried with the full
    /// timeout. A timeout too large for `poll` waits forever. A blocking poll from inside a
    /// callback on `Locked` is refused (`ErrorKind::WouldBlock`), as [`Fence::wait`] is.
    pub fn poll(&self, timeout: Option<Duration>) -> io::Result<bool> {
        if timeout != Some(Duration::ZERO) && !self.poll_once(Some(Timespec::default()))? {
            // A blocking poll from inside a callback: refused where a wait is (`Locked`),
            // and after the work this thread owes where it is not (see `Fence::wait`).
            FencesOf::<B>::may_block().map_err(|e| io::Error::new(io::ErrorKind::WouldBlock, e))?;
            FencesOf::<B>::before_park();
        }
        self.poll_once(timeout.and_then(|t| Timespec::try_from(t).ok()))
    }

    /// One `poll(2)` (retried if interrupted) with `timeout` (`None`: forever).
    fn poll_once(&self, timeout: Option<Timespec>) -> io::Result<bool> {
        loop {
            let mut fds = [PollFd::new(&*self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(n) => return Ok(n > 0 && fds[0].revents().contains(PollFlags::IN)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A new descriptor for the same eventfd (`dup`, close-on-exec), to send over a socket
    /// (`SCM_RIGHTS`), hand to a child process or register elsewhere. It turns readable with
    /// this one and stays open after this `FenceFd` is dropped; it does not keep the fence's
    /// callback installed, so if this `FenceFd` is dropped while the fence is pending, the
    /// copy never becomes readable.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

impl<B: Backend> AsFd for FenceFd<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<B: Backend> AsRawFd for FenceFd<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl<B: Backend> Drop for FenceFd<B> {
    fn drop(&mut self) {
        let Some(id) = self.callback.take() else {
            return;
        };
        // Once the flag is set the callback has been claimed by the signaller (it runs, or
        // has run, and then drops its share of the fd): nothing to take back. Skipping the
        // removal also keeps a drop from inside this fence's own callbacks legal on `Locked`.
        if !self.fence.test_signaled_flag() {
            self.fence.remove_callback(id);
        }
    }
}

impl<B: Backend> fmt::Debug for FenceFd<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceFd")
            .field("fd", &self.fd.as_raw_fd())
            .field("fence", &self.fence)
            .finish()
    }
}
