//! Blocking waits: one fence (`dma_fence_wait_timeout`) or any of several
//! (`dma_fence_wait_any_timeout`).
//!
//! A waiter checks, spins briefly, then installs a callback that unparks it and parks until
//! the fence's flag is set or the deadline passes. The callback is removed on the way out
//! if it has not run. Spurious unparks are harmless: every park is in a loop that re-checks.
//!
//! Waiting from inside a callback: on `Rcu` the thread's queued work (enabling the awaited
//! fence, cascades that may signal it) is run before the waiter parks, so the wait returns
//! once the fence signals. On `Locked` the callback holds its fence's lock, as in the
//! kernel (which forbids waiting in callbacks): a wait there that needs that lock deadlocks
//! (the lock recorder panics instead).

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::{FenceError, Status};
use crate::fence::Fence;
use crate::sync::{spin_hint, thread};

/// How many times a waiter re-checks the flag before it installs a callback and parks.
const SPINS: u32 = if cfg!(loom) { 0 } else { 64 };

/// Waits until `fence` signals or `deadline` (if any) passes.
pub(crate) fn wait_until<B: Backend>(
    fence: &Fence<B>,
    deadline: Option<Instant>,
) -> Result<Status, FenceError> {
    if fence.is_signaled() {
        return Ok(fence.status_now());
    }
    // Empty under loom (SPINS = 0): the model explores the parked path.
    #[allow(clippy::reversed_empty_ranges)]
    for _ in 0..SPINS {
        spin_hint();
        if fence.test_signaled_flag() {
            return Ok(fence.status_now());
        }
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(FenceError::TimedOut);
    }
    let me = thread::current();
    let id = match fence.add_callback(move |_| me.unpark()) {
        Ok(id) => id,
        Err(_) => return Ok(fence.status_now()),
    };
    crate::trace::event!("fence_wait_start", fence);
    crate::work::run_queued();
    park_until(deadline, || fence.test_signaled_flag());
    fence.remove_callback(id);
    crate::trace::event!(
        "fence_wait_end",
        fence,
        signaled = fence.test_signaled_flag()
    );
    if fence.test_signaled_flag() {
        Ok(fence.status_now())
    } else {
        Err(FenceError::TimedOut)
    }
}

/// Parks until `done()` holds or `deadline` passes; returns `done()`'s last answer.
/// Spurious unparks only cause a re-check.
fn park_until(deadline: Option<Instant>, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return done();
                }
                park_timeout(d - now);
            }
        }
    }
}

fn park_timeout(d: Duration) {
    #[cfg(not(loom))]
    thread::park_timeout(d);
    #[cfg(loom)]
    {
        let _ = d;
        thread::yield_now();
    }
}

/// Waits until any of `fences` signals (`dma_fence_wait_any_timeout`) and returns the index
/// of a signalled one, or `Err(TimedOut)`; `Err(Empty)` for an empty slice. A zero timeout
/// only checks.
///
/// ```
/// use std::time::Duration;
/// use rcu_fence::{Timeline, FenceError, wait_any_timeout};
/// let tl = Timeline::new("gpu");
/// let fences = [tl.fence(1), tl.fence(2)];
/// assert_eq!(wait_any_timeout(&fences, Duration::ZERO), Err(FenceError::TimedOut));
/// fences[1].signal().unwrap();
/// assert_eq!(wait_any_timeout(&fences, Duration::from_secs(1)), Ok(1));
/// ```
pub fn wait_any_timeout<B: Backend>(
    fences: &[Fence<B>],
    timeout: Duration,
) -> Result<usize, FenceError> {
    if fences.is_empty() {
        return Err(FenceError::Empty);
    }
    let first_signaled = || fences.iter().position(|f| f.test_signaled_flag());
    if let Some(i) = fences.iter().position(|f| f.is_signaled()) {
        return Ok(i);
    }
    let deadline = Instant::now().checked_add(timeout);
    if timeout.is_zero() {
        return Err(FenceError::TimedOut);
    }
    let mut ids = Vec::with_capacity(fences.len());
    let mut found = None;
    for (i, fence) in fences.iter().enumerate() {
        let me = thread::current();
        match fence.add_callback(move |_| me.unpark()) {
            Ok(id) => ids.push((i, id)),
            Err(_) => {
                found = Some(i);
                break;
            }
        }
    }
    if found.is_none() {
        crate::work::run_queued();
        park_until(deadline, || {
            found = first_signaled();
            found.is_some()
        });
    }
    for (i, id) in ids {
        fences[i].remove_callback(id);
    }
    found.ok_or(FenceError::TimedOut)
}
