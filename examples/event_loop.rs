//! Fences in event loops (Linux): many fence fds in one epoll set, then the same fences
//! awaited by tokio tasks through `AsyncFd`.
//!
//! A `FenceFd` is an eventfd that turns readable when its fence signals, so a loop that
//! already waits on sockets and timers can wait on GPU-style completions too.
//!
//! Run with `cargo run --example event_loop`.

#[cfg(any(target_os = "linux", target_os = "android"))]
fn main() {
    linux::epoll_loop();
    linux::tokio_tasks();
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn main() {
    eprintln!("event_loop needs Linux: FenceFd is built on eventfd");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::collections::HashMap;
    use std::thread;
    use std::time::{Duration, Instant};

    use rcu_fence::{Fence, FenceFd, Status, Timeline};
    use rustix::event::{Timespec, epoll};
    use tokio::io::unix::AsyncFd;

    const FENCES: u64 = 64;

    /// `FENCES` independent jobs, each on its own timeline (as jobs of different rings
    /// are): they may complete in any order, which one timeline's fences may not.
    fn jobs(name: &str) -> Vec<Fence> {
        (1..=FENCES).map(|s| Timeline::new(name).fence(s)).collect()
    }

    /// Starts a producer that signals `fences` in a shuffled order, a little apart, and
    /// fails one of them.
    fn produce(fences: Vec<Fence>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let n = fences.len();
            // A fixed permutation (stride coprime to n): deterministic, out of order.
            for k in 0..n {
                let f = &fences[(k * 37 + 11) % n];
                if f.seqno() == 13 {
                    f.set_error(rcu_fence::Errno::ETIME).unwrap();
                }
                f.signal().unwrap();
                thread::sleep(Duration::from_micros(300));
            }
        })
    }

    /// One epoll set over every fence fd; each turns ready once, when its fence signals.
    pub(crate) fn epoll_loop() {
        let fences = jobs("render");
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        let mut pending: HashMap<u64, FenceFd> = HashMap::new();
        for f in &fences {
            let fd = f.to_fd().expect("eventfd");
            // Edge-triggered: each fd is reported once, when it turns readable.
            let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
            epoll::add(&ep, &fd, epoll::EventData::new_u64(f.seqno()), flags).expect("epoll add");
            pending.insert(f.seqno(), fd);
        }
        let start = Instant::now();
        let producer = produce(fences);
        let mut order = Vec::new();
        let timeout = Timespec::try_from(Duration::from_secs(10)).unwrap();
        while !pending.is_empty() {
            let mut events = Vec::with_capacity(16);
            epoll::wait(
                &ep,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            )
            .expect("epoll wait");
            assert!(!events.is_empty(), "a fence never signalled");
            for event in events {
                let seqno = event.data.u64();
                // Done with it: dropping the FenceFd closes it (and leaves the epoll set).
                let fd = pending.remove(&seqno).expect("reported once");
                if let Status::Error(e) = fd.fence().status() {
                    println!("epoll: fence {seqno} failed with {e}");
                }
                order.push(seqno);
            }
        }
        producer.join().unwrap();
        println!(
            "epoll: {} fences completed in {:?}; first few in order: {:?}",
            order.len(),
            start.elapsed(),
            &order[..8]
        );
    }

    /// The same with tokio: one task per fence awaits its fd's readiness.
    pub(crate) fn tokio_tasks() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let fences = jobs("compute");
            let mut tasks = Vec::new();
            for f in &fences {
                let fd = f.to_fd().expect("eventfd");
                // SAFETY: a `FenceFd` owns its descriptor until dropped and `as_raw_fd`
                // always returns that one: `register`'s contract.
                let fd = unsafe { AsyncFd::register(fd) }.expect("register");
                tasks.push(tokio::spawn(async move {
                    let _ready = fd.readable().await.expect("readable");
                    (fd.get_ref().fence().seqno(), fd.get_ref().fence().status())
                }));
            }
            let producer = produce(fences);
            let mut failed = Vec::new();
            for task in tasks {
                let (seqno, status) = task.await.expect("task");
                if status != Status::Signaled {
                    failed.push(seqno);
                }
            }
            producer.join().unwrap();
            println!("tokio: {FENCES} tasks woke, failed: {failed:?}");
            // A fence is also a future: no fd needed inside async code of this process.
            let f = Timeline::new("compute").fence(FENCES + 1);
            let g = f.clone();
            thread::spawn(move || g.signal().unwrap());
            assert_eq!(f.await, Ok(()));
        });
    }
}
