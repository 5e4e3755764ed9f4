//! Heartbeats and the watchdog: a thread stuck inside one operation fails the run, named.
//!
//! Every thread of a run owns one heartbeat slot ([`Heart`]) in the run's [`Watch`]. On
//! entering an operation it stores the operation's name ([`Op`]) and bumps its count
//! ([`Heart::at`]); outside any operation it says so ([`Heart::idle`]). The [`Watchdog`]
//! thread samples every slot each 50 ms: a slot whose count has not moved for the timeout
//! while not idle is a stuck thread. A deadlock or a livelock cannot be recovered from, so
//! the watchdog hands a description naming each stuck thread and its operation to the
//! run's stall handler, which reports what the run has so far and exits.
//!
//! Heartbeats are `Relaxed` stores on the thread's own cache line: they order nothing, and
//! the watchdog only needs to see them eventually.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// What a thread is doing, for the watchdog's report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Op {
    Idle = 0,
    Setup,
    AddCallback,
    RemoveCallback,
    Signal,
    SetError,
    Wait,
    WaitTimeout,
    Await,
    Drop,
    Cleanup,
    Build,
    Walk,
    Poll,
    Merge,
}

impl Op {
    const ALL: [Op; 15] = [
        Op::Idle,
        Op::Setup,
        Op::AddCallback,
        Op::RemoveCallback,
        Op::Signal,
        Op::SetError,
        Op::Wait,
        Op::WaitTimeout,
        Op::Await,
        Op::Drop,
        Op::Cleanup,
        Op::Build,
        Op::Walk,
        Op::Poll,
        Op::Merge,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Idle => "idle",
            Op::Setup => "setup",
            Op::AddCallback => "add_callback",
            Op::RemoveCallback => "remove_callback",
            Op::Signal => "signal",
            Op::SetError => "set_error",
            Op::Wait => "wait",
            Op::WaitTimeout => "wait_timeout",
            Op::Await => "await",
            Op::Drop => "drop",
            Op::Cleanup => "cleanup",
            Op::Build => "build",
            Op::Walk => "walk",
            Op::Poll => "poll",
            Op::Merge => "merge",
        }
    }

    fn from_u8(v: u8) -> Op {
        Op::ALL.get(v as usize).copied().unwrap_or(Op::Idle)
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Beat {
    count: AtomicU64,
    op: AtomicU8,
}

/// Heartbeats of the threads of one run.
pub(crate) struct Watch {
    beats: Box<[Beat]>,
    names: Box<[String]>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("threads", &self.names)
            .finish()
    }
}

impl Watch {
    /// Heartbeat slots for `workers` worker threads plus the named helper threads.
    pub(crate) fn new(workers: usize, helpers: &[&str]) -> Watch {
        let names: Vec<String> = (0..workers)
            .map(|i| format!("worker {i}"))
            .chain(helpers.iter().map(|h| h.to_string()))
            .collect();
        Watch {
            beats: names.iter().map(|_| Beat::default()).collect(),
            names: names.into(),
        }
    }

    /// The heartbeat of worker `i`.
    pub(crate) fn worker(&self, i: usize) -> Heart<'_> {
        Heart {
            beat: &self.beats[i],
        }
    }

    /// The heartbeat of the helper thread called `name`.
    pub(crate) fn helper(&self, name: &str) -> Heart<'_> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .expect("helper registered in Watch::new");
        Heart {
            beat: &self.beats[i],
        }
    }

    fn snapshot(&self) -> Vec<(u64, Op)> {
        self.beats
            .iter()
            .map(|b| {
                (
                    b.count.load(Ordering::Relaxed),
                    Op::from_u8(b.op.load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}

/// One thread's heartbeat.
#[derive(Clone, Copy)]
pub(crate) struct Heart<'a> {
    beat: &'a Beat,
}

impl Heart<'_> {
    /// Entering `op`: counts as progress.
    #[inline]
    pub(crate) fn at(&self, op: Op) {
        self.beat.op.store(op as u8, Ordering::Relaxed);
        self.beat.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Out of any operation: the watchdog leaves this thread alone.
    pub(crate) fn idle(&self) {
        self.at(Op::Idle);
    }
}

/// Fails the run if a thread stays inside one operation for longer than its timeout.
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Watches `watch`; on a stall, calls `on_stall` with a description naming the stuck
    /// threads and their operations. `on_stall` is expected not to return (it exits).
    pub(crate) fn start(
        watch: Arc<Watch>,
        label: String,
        timeout: Duration,
        on_stall: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut last = watch.snapshot();
                let mut since = vec![Instant::now(); last.len()];
                while !stop2.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(50));
                    let now = watch.snapshot();
                    let mut stuck = Vec::new();
                    for (i, ((count, op), (old, _))) in now.iter().zip(&last).enumerate() {
                        if count != old || *op == Op::Idle {
                            since[i] = Instant::now();
                        } else if since[i].elapsed() >= timeout {
                            stuck.push(format!("{} stuck in {}", watch.names[i], op.name()));
                        }
                    }
                    if !stuck.is_empty() {
                        on_stall(format!(
                            "{label}: no progress for {:.0} s: {}",
                            timeout.as_secs_f64(),
                            stuck.join(", ")
                        ));
                    }
                    last = now;
                }
            })
            .expect("spawn the watchdog");
        Watchdog {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
