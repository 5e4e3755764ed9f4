//! Live-object gauges: objects a scenario created that must all be gone at its end.
//!
//! A [`LiveToken`] travels inside each object to count (a fence's ops, a callback's
//! closure): made with [`Live::token`], it counts the object until it is dropped with it.
//! [`settle`] compares each gauge with its level at the start of the run, waiting a
//! bounded moment for deferred reclamation (RCU releases lag the last handle's drop), and
//! names what is left: a fence or closure still alive then is a leak.
//!
//! The gauges are sharded by thread, each shard on its own cache line, so that counting
//! does not itself serialise the threads it measures.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const SHARDS: usize = 32;

#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicI64);

/// A gauge of live objects, sharded so that counting does not itself serialise the threads.
pub(crate) struct Live {
    name: &'static str,
    shards: [Shard; SHARDS],
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("name", &self.name)
            .field("now", &self.now())
            .finish()
    }
}

/// Live fences made by the scenarios (through [`crate::scenarios::TrackedOps`]).
pub(crate) static FENCES: Live = Live::new("fences");
/// Live callback closures (installed, not yet run or dropped).
pub(crate) static CALLBACKS: Live = Live::new("callbacks");

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Live {
    const fn new(name: &'static str) -> Live {
        Live {
            name,
            shards: [const { Shard(AtomicI64::new(0)) }; SHARDS],
        }
    }

    /// Counts one object until the token is dropped.
    pub(crate) fn token(&'static self) -> LiveToken {
        let shard = SHARD.with(|s| *s) as u8;
        self.shards[shard as usize]
            .0
            .fetch_add(1, Ordering::Relaxed);
        LiveToken { live: self, shard }
    }

    /// How many objects are alive now.
    pub(crate) fn now(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Acquire))
            .sum()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// One live object; dropping it uncounts the object.
pub(crate) struct LiveToken {
    live: &'static Live,
    shard: u8,
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.live.shards[self.shard as usize]
            .0
            .fetch_sub(1, Ordering::Release);
    }
}

/// Waits up to `patience` for every gauge to come back to its level at the start of the run
/// (deferred reclamation may lag) and returns how many objects are still alive.
pub(crate) fn settle(baseline: &[(&'static Live, i64)], patience: Duration) -> (u64, Vec<String>) {
    let until = Instant::now() + patience;
    loop {
        let left: Vec<(&'static str, i64)> = baseline
            .iter()
            .map(|(l, b)| (l.name(), l.now() - b))
            .filter(|(_, n)| *n != 0)
            .collect();
        if left.is_empty() {
            return (0, Vec::new());
        }
        if Instant::now() >= until {
            let total = left.iter().map(|(_, n)| n.unsigned_abs()).sum();
            let notes = left
                .iter()
                .map(|(name, n)| format!("{name} still alive at the end: {n}"))
                .collect();
            return (total, notes);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_tokens_count_and_settle() {
        let base = [(&CALLBACKS, CALLBACKS.now())];
        let t = CALLBACKS.token();
        assert_eq!(settle(&base, Duration::ZERO).0, 1);
        drop(t);
        assert_eq!(settle(&base, Duration::ZERO).0, 0);
    }
}
