//! What every benchmark target shares: the criterion configuration, where results go, and
//! the two hand-written baselines (the floor fence and the `Mutex`+`Condvar` fence).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use criterion::Criterion;

/// True when `RCU_FENCE_BENCH_QUICK` is set: short runs to check that everything works.
pub(crate) fn quick() -> bool {
    std::env::var_os("RCU_FENCE_BENCH_QUICK").is_some()
}

/// Turns the `Locked` backend's lock recorder off: the kernel's lockdep is a debug option,
/// off in production builds, and the comparison is against the bare classic scheme.
pub(crate) fn setup() {
    rcu_fence::lockdep::set_enabled(false);
}

/// Short measurement and warm-up times and fewer resamples: on 2 cores criterion's
/// analysis, not the measurement, dominates with the defaults.
pub(crate) fn criterion() -> Criterion {
    let c = Criterion::default()
        .without_plots()
        .nresamples(2_000)
        .sample_size(20);
    let c = if quick() {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(400))
            .measurement_time(Duration::from_millis(1_500))
    };
    c.configure_from_args()
}

/// The directory for results that criterion does not record (latency samples, bytes,
/// probes): `$RCU_FENCE_BENCH_OUT`, else `target/bench-report` beside the bench binary.
pub(crate) fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("RCU_FENCE_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/release/deps/<bench> -> target
            let target = exe
                .ancestors()
                .nth(3)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"));
            target.join("bench-report")
        }
    };
    std::fs::create_dir_all(&dir).expect("create the results directory");
    dir
}

/// Writes `value` as `<out_dir>/<name>.json`.
pub(crate) fn write_json(name: &str, value: &serde_json::Value) {
    let path = out_dir().join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json"))
        .expect("write results");
}

/// Waits for `flag`, set by a waiter's callback. A fence's `wait` may return as soon as the
/// signalled bit is set, while the signalling thread is still running the callbacks.
pub(crate) fn wait_flag(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
}

/// A boxed one-shot callback, as every variant stores it.
pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// The floor of "a fence with callbacks": one heap object with a flag and the callbacks'
/// boxes, one atomic store, direct calls. No lock, no ordering guarantees for adders racing
/// the signal: the least work the operation could do with the same allocations.
pub(crate) struct FloorFence {
    signaled: AtomicBool,
    callbacks: Vec<Callback>,
}

impl FloorFence {
    /// A pending floor fence with room for `k` callbacks.
    pub(crate) fn new(k: usize) -> Box<Self> {
        Box::new(FloorFence {
            signaled: AtomicBool::new(false),
            callbacks: Vec::with_capacity(k),
        })
    }

    /// Adds a callback (single owner: no synchronisation).
    pub(crate) fn add(&mut self, f: Callback) {
        self.callbacks.push(f);
    }

    /// Marks it signalled and calls every callback.
    pub(crate) fn signal(&mut self) {
        self.signaled.store(true, Ordering::Release);
        for f in self.callbacks.drain(..) {
            f();
        }
    }

    /// The flag.
    pub(crate) fn is_signaled(&self) -> bool {
        self.signaled.load(Ordering::Acquire)
    }
}

/// A fence written the obvious way with a `Mutex` and a `Condvar`: callbacks in a `Vec`
/// under the lock, run after it is released; waiters block on the condvar.
#[derive(Default)]
pub(crate) struct CondvarFence {
    state: Mutex<CondvarState>,
    cond: Condvar,
}

#[derive(Default)]
struct CondvarState {
    signaled: bool,
    next_id: u64,
    callbacks: Vec<(u64, Callback)>,
}

impl CondvarFence {
    /// A pending fence.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a callback; `None` if already signalled.
    pub(crate) fn add_callback(&self, f: Callback) -> Option<u64> {
        let mut s = self.state.lock().unwrap();
        if s.signaled {
            return None;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.callbacks.push((id, f));
        Some(id)
    }

    /// Removes a callback; true if it will not run.
    pub(crate) fn remove_callback(&self, id: u64) -> bool {
        let mut s = self.state.lock().unwrap();
        match s.callbacks.iter().position(|(i, _)| *i == id) {
            Some(pos) => {
                drop(s.callbacks.remove(pos));
                true
            }
            None => false,
        }
    }

    /// Signals: marks it, wakes waiters, then runs the callbacks outside the lock.
    pub(crate) fn signal(&self) {
        let callbacks = {
            let mut s = self.state.lock().unwrap();
            s.signaled = true;
            std::mem::take(&mut s.callbacks)
        };
        self.cond.notify_all();
        for (_, f) in callbacks {
            f();
        }
    }

    /// Blocks until signalled.
    pub(crate) fn wait(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.signaled {
            s = self.cond.wait(s).unwrap();
        }
    }
}
