//! `FenceFd`: a fence as an eventfd, under poll, epoll, tokio, mio, `SCM_RIGHTS` and a child
//! process, on both backends; closing before and after the signal.
#![cfg(all(any(target_os = "linux", target_os = "android"), not(loom)))]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcu_fence::{Backend, Errno, Fence, FenceFd, Locked, Rcu, Status, Timeline};
use rustix::event::epoll;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

const LONG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(30);

/// Polls any descriptor for readability, as a program that only has the fd would.
fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).unwrap();
    rustix::event::poll(&mut fds, Some(&timeout)).unwrap() == 1
        && fds[0].revents().contains(PollFlags::IN)
}

/// Signals `fence` from another thread after `delay`.
fn signal_later<B: Backend>(fence: &Fence<B>, delay: Duration) -> thread::JoinHandle<()> {
    let fence = fence.clone();
    thread::spawn(move || {
        thread::sleep(delay);
        fence.signal().unwrap();
    })
}

/// The open descriptors of this process.
/// Held by the tests that open many descriptors at once and by the one that counts them,
/// so that the count is not disturbed by a parallel test of this binary.
static MANY_FDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

macro_rules! every_backend {
    ($($name:ident),* $(,)?) => {
        mod rcu {
            $(#[test] fn $name() { super::$name(super::Rcu); })*
        }
        mod locked {
            $(#[test] fn $name() { super::$name(super::Locked); })*
        }
    };
}

every_backend!(
    poll_without_timeout,
    poll_with_timeout,
    already_signalled_is_ready_at_once,
    error_is_readable_and_on_the_fence,
    epoll_exactly_the_signalled,
    close_before_signal,
    close_after_signal,
    drop_racing_signal,
    drop_inside_own_callback,
    scm_rights,
    mio_poll,
    tokio_async_fd,
);

fn poll_without_timeout<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = fence.to_fd().unwrap();
    let signaller = signal_later(&fence, SHORT);
    assert!(fd.poll(None).unwrap());
    assert!(fd.fence().test_signaled_flag());
    signaller.join().unwrap();
}

fn poll_with_timeout<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = FenceFd::new(&fence).unwrap();
    assert!(!fd.is_ready());
    let start = Instant::now();
    assert!(!fd.poll(Some(SHORT)).unwrap());
    assert!(start.elapsed() >= SHORT);
    assert!(!readable(fd.as_fd(), Duration::ZERO));
    let signaller = signal_later(&fence, SHORT);
    assert!(fd.poll(Some(LONG)).unwrap());
    signaller.join().unwrap();
    // Polling does not consume readiness: it stays readable.
    assert!(fd.is_ready() && fd.is_ready());
    assert!(readable(fd.as_fd(), Duration::ZERO));
}

fn already_signalled_is_ready_at_once<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    fence.signal().unwrap();
    let fd = fence.to_fd().unwrap();
    assert!(fd.is_ready());
    assert!(rcu_fence::stub::<B>().to_fd().unwrap().is_ready());
}

fn error_is_readable_and_on_the_fence<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = fence.to_fd().unwrap();
    fence.set_error(Errno::ECANCELED).unwrap();
    fence.signal().unwrap();
    assert!(fd.is_ready());
    assert_eq!(fd.fence().status(), Status::Error(Errno::ECANCELED));
}

/// An epoll set of many fence fds: exactly the signalled ones are reported, each once.
fn epoll_exactly_the_signalled<B: Backend>(backend: B) {
    let _many = MANY_FDS.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 200;
    let tl = Timeline::new_in("fd", backend);
    let fences: Vec<_> = (0..N as u64).map(|s| tl.fence(s + 1)).collect();
    let fds: Vec<_> = fences.iter().map(|f| f.to_fd().unwrap()).collect();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    for (i, fd) in fds.iter().enumerate() {
        epoll::add(
            &ep,
            fd,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .unwrap();
    }
    let ready = |timeout: Duration| -> BTreeSet<usize> {
        let mut events = Vec::with_capacity(N + 1);
        epoll::wait(
            &ep,
            spare(&mut events),
            Some(&Timespec::try_from(timeout).unwrap()),
        )
        .unwrap();
        events.iter().map(|e| e.data.u64() as usize).collect()
    };
    assert!(ready(Duration::ZERO).is_empty());
    // Every 3rd from several threads, and one chosen index on this one.
    let chosen: BTreeSet<usize> = (0..N).filter(|i| i % 3 == 0).chain([N - 1]).collect();
    thread::scope(|s| {
        for t in 0..4 {
            let (fences, chosen) = (&fences, &chosen);
            s.spawn(move || {
                for &i in chosen.iter().filter(|&&i| i % 4 == t) {
                    fences[i].signal().unwrap();
                }
            });
        }
    });
    assert_eq!(ready(LONG), chosen);
    // Level-triggered: still ready, and still only those.
    assert_eq!(ready(Duration::ZERO), chosen);
    for (i, fd) in fds.iter().enumerate() {
        assert_eq!(fd.is_ready(), chosen.contains(&i));
    }
}

/// The spare capacity of `events` as epoll's output buffer; `events` grows to what was
/// written.
fn spare(events: &mut Vec<epoll::Event>) -> rustix::buffer::SpareCapacity<'_, epoll::Event> {
    rustix::buffer::spare_capacity(events)
}

fn close_before_signal<B: Backend>(backend: B) {
    let tl = Timeline::new_in("fd", backend);
    let fence = tl.fence(1);
    let fd = fence.to_fd().unwrap();
    let copy = fd.try_clone_fd().unwrap();
    drop(fd);
    // The callback went with the FenceFd: a copy of the descriptor never turns readable.
    fence.signal().unwrap();
    assert!(!readable(copy.as_fd(), SHORT));

    // Never-signalled fences: every descriptor is closed on drop, the fences are freed.
    let _many = MANY_FDS.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_fds();
    let drops = Arc::new(AtomicUsize::new(0));
    for seqno in 0..500 {
        let fence = tl.fence(seqno);
        let d = drops.clone();
        let guard = Guard(d);
        // A callback that owns a guard: dropped when the fence is freed (-EDEADLK run) or
        // removed; here it runs through the fence's final drop.
        fence.add_callback(move |_| drop(guard)).unwrap();
        let fd = fence.to_fd().unwrap();
        drop(fence);
        drop(fd);
    }
    rcu_fence::synchronize_rcu();
    assert_eq!(drops.load(Ordering::SeqCst), 500, "every fence was freed");
    // Other tests of this binary open descriptors too, so allow some slack.
    assert!(
        open_fds() < before + 100,
        "descriptors leaked: {} then {}",
        before,
        open_fds()
    );
}

struct Guard(Arc<AtomicUsize>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn close_after_signal<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = fence.to_fd().unwrap();
    let copy = fd.try_clone_fd().unwrap();
    fence.signal().unwrap();
    drop(fd);
    assert!(readable(copy.as_fd(), Duration::ZERO));
    drop(fence);
    assert!(readable(copy.as_fd(), Duration::ZERO));
}

/// Dropping the fd while another thread signals: the callback either is removed or writes
/// to the descriptor it co-owns, never to a closed number reused meanwhile. A pipe opened
/// right after each drop (likely to reuse the number) must stay empty.
fn drop_racing_signal<B: Backend>(backend: B) {
    let tl = Timeline::new_in("fd", backend);
    for seqno in 0..300 {
        let fence = tl.fence(seqno);
        let fd = fence.to_fd().unwrap();
        let signaller = signal_later(&fence, Duration::ZERO);
        drop(fd);
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        signaller.join().unwrap();
        drop(writer);
        let mut buf = [0u8; 8];
        assert_eq!(
            rustix::io::read(&reader, &mut buf).unwrap(),
            0,
            "nothing was written to a reused fd"
        );
    }
}

fn drop_inside_own_callback<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = fence.to_fd().unwrap();
    let copy = fd.try_clone_fd().unwrap();
    let slot = Arc::new(std::sync::Mutex::new(Some(fd)));
    let s = slot.clone();
    fence
        .add_callback(move |_| drop(s.lock().unwrap().take()))
        .unwrap();
    fence.signal().unwrap();
    assert!(slot.lock().unwrap().is_none());
    assert!(readable(copy.as_fd(), LONG));
}

/// Passes the descriptor over a Unix socket; the received one turns readable on the signal.
fn scm_rights<B: Backend>(backend: B) {
    let fence = Timeline::new_in("fd", backend).fence(1);
    let fd = fence.to_fd().unwrap();
    let (a, b) = UnixStream::pair().unwrap();

    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let to_send = [fd.as_fd()];
    assert!(control.push(SendAncillaryMessage::ScmRights(&to_send)));
    sendmsg(
        &a,
        &[IoSlice::new(b"fence")],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();

    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 5];
    recvmsg(
        &b,
        &mut [IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let received: Vec<OwnedFd> = control
        .drain()
        .flat_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!((&data, received.len()), (b"fence", 1));
    assert!(!readable(received[0].as_fd(), Duration::ZERO));
    fence.signal().unwrap();
    assert!(readable(received[0].as_fd(), LONG));
}

fn mio_poll<B: Backend>(backend: B) {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    let tl = Timeline::new_in("fd", backend);
    let fences: Vec<_> = (0..8).map(|s| tl.fence(s)).collect();
    let fds: Vec<_> = fences.iter().map(|f| f.to_fd().unwrap()).collect();
    let mut poll = Poll::new().unwrap();
    for (i, fd) in fds.iter().enumerate() {
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), Token(i), Interest::READABLE)
            .unwrap();
    }
    let mut events = Events::with_capacity(16);
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
    let signaller = signal_later(&fences[5], SHORT);
    poll.poll(&mut events, Some(LONG)).unwrap();
    let tokens: Vec<_> = events
        .iter()
        .map(|e| (e.token(), e.is_readable()))
        .collect();
    assert_eq!(tokens, [(Token(5), true)]);
    signaller.join().unwrap();
}

/// Registers a fence fd with tokio's reactor.
fn async_fd<B: Backend>(fd: FenceFd<B>) -> tokio::io::unix::AsyncFd<FenceFd<B>> {
    // SAFETY: a `FenceFd` owns its descriptor until it is dropped, and `as_raw_fd` always
    // returns that same open descriptor: `register`'s contract.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.unwrap()
}

fn tokio_async_fd<B: Backend>(backend: B) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tl = Timeline::new_in("fd", backend);
        let fence = tl.fence(1);
        let afd = async_fd(fence.to_fd().unwrap());
        // Pending: no readiness within a short timeout.
        assert!(tokio::time::timeout(SHORT, afd.readable()).await.is_err());
        let signaller = signal_later(&fence, SHORT);
        let guard = tokio::time::timeout(LONG, afd.readable())
            .await
            .expect("readable")
            .unwrap();
        assert!(guard.get_inner().fence().test_signaled_flag());
        drop(guard);
        // Still readable (nothing was read): a second await returns at once.
        let _ = tokio::time::timeout(LONG, afd.readable())
            .await
            .expect("still readable")
            .unwrap();
        signaller.join().unwrap();

        // Many fences awaited by tasks on one runtime.
        let fences: Vec<_> = (2..34).map(|s| tl.fence(s)).collect();
        let mut tasks = Vec::new();
        for f in &fences {
            let afd = async_fd(f.to_fd().unwrap());
            tasks.push(tokio::spawn(async move {
                let _ = afd.readable().await.unwrap();
                afd.get_ref().fence().seqno()
            }));
        }
        for f in fences.iter().rev() {
            f.signal().unwrap();
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(
                tokio::time::timeout(LONG, t)
                    .await
                    .expect("task done")
                    .unwrap(),
            );
        }
        assert_eq!(done, (2..34).collect::<Vec<_>>());
    });
}

/// The descriptor handed to a child process (as its standard input) turns readable there
/// when the fence signals here. The child is this test binary running
/// `child_polls_inherited_fd` with `RCU_FENCE_FD_CHILD` set.
#[test]
fn child_process_sees_the_signal() {
    let fence = Timeline::new("fd").fence(1);
    let fd = fence.to_fd().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_polls_inherited_fd",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RCU_FENCE_FD_CHILD", "1")
        .stdin(Stdio::from(fd.try_clone_fd().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until the child has seen the descriptor pending, then signal.
    // (The harness may print the test's name on the same line first.)
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.ends_with("child: pending"))
    );
    fence.signal().unwrap();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.ends_with("child: readable"))
    );
    lines.for_each(drop); // read to the end, so the child's last lines have somewhere to go
    assert!(child.wait().unwrap().success());
}

/// The child half of [`child_process_sees_the_signal`]; does nothing when run normally.
#[test]
fn child_polls_inherited_fd() {
    if std::env::var_os("RCU_FENCE_FD_CHILD").is_none() {
        return;
    }
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    assert!(!readable(fd, Duration::ZERO));
    println!("child: pending");
    assert!(readable(fd, LONG));
    println!("child: readable");
}

#[test]
fn debug_and_raw_fd() {
    use std::os::fd::AsRawFd;
    let fence = Timeline::new("fd").fence(7);
    let fd = fence.to_fd().unwrap();
    assert!(fd.as_raw_fd() >= 0);
    let text = format!("{fd:?}");
    assert!(
        text.contains("FenceFd") && text.contains("pending"),
        "{text}"
    );
    let _: &Fence<Rcu> = fd.fence();
    let _ = Locked;
}
