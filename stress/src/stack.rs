//! Peak stack use of a thread, measured by painting.
//!
//! A thread started with [`spawn_small`] has a 256 KiB stack. Before its workload runs, a
//! helper fills most of the stack below the current frame with a pattern; after the
//! workload, the painted area is scanned from its far end to find the deepest byte that was
//! overwritten. Unlike sampling the stack pointer inside callbacks, this also catches the
//! deepest point of a drop or of a recursion the workload never reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, Scope, ScopedJoinHandle};

/// The stack of the measured threads: small, so that anything that recurses with nesting
/// depth overflows early.
pub(crate) const SMALL_STACK: usize = 256 * 1024;

/// How much of it is painted (the rest is the thread's own start-up frames and a margin).
pub(crate) const PAINTED: usize = 224 * 1024;

const PATTERN: u8 = 0xa5;

/// [`PATTERN`] in every byte of a word: painting and scanning go a word at a time, so that
/// the check costs the measured rounds little next to their fences.
const PATTERN_WORD: u64 = u64::from_ne_bytes([PATTERN; 8]);

/// The painted region of the current thread: `(lowest address, base)`, where `base` is the
/// address of a local in the frame that called [`paint`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Painted {
    low: usize,
    base: usize,
}

#[inline(never)]
fn fill() -> usize {
    // Uninitialised: zeroing the area first would write it twice.
    let mut area = std::mem::MaybeUninit::<[u64; PAINTED / 8]>::uninit();
    let words = area.as_mut_ptr().cast::<u64>();
    for i in 0..PAINTED / 8 {
        // Volatile: the stores must happen although the array is never read.
        // SAFETY: `i` is below the array's length, so `words.add(i)` stays inside the local
        // array, which this frame owns exclusively; writing an uninitialised `u64` is fine.
        unsafe { std::ptr::write_volatile(words.add(i), PATTERN_WORD) };
    }
    std::hint::black_box(&mut area);
    words as usize
}

/// Paints the stack below the caller's frame.
#[inline(never)]
pub(crate) fn paint() -> Painted {
    let marker = 0u8;
    let base = std::hint::black_box(&marker) as *const u8 as usize;
    let low = fill();
    Painted { low, base }
}

/// Bytes of stack used below `painted.base` since [`paint`], as far as the pattern tells.
/// A result of [`PAINTED`] or more means the whole painted area was used (a lower bound).
#[inline(never)]
pub(crate) fn measure(painted: Painted) -> u64 {
    // Scan upwards from the far end: the first byte that differs is the deepest one used.
    // By 64-byte lines first (`low` is a `u64` array's address, so aligned), then by words,
    // then by bytes.
    let mut addr = painted.low;
    const LINE: usize = 64;
    while addr + LINE <= painted.base {
        // SAFETY: the line lies inside this thread's own stack, below the current frame's
        // caller and at or above the painted area's low end: mapped, readable memory,
        // aligned for `u64`, that no one else writes. Volatile, so that it is actually read.
        let line = unsafe { std::ptr::read_volatile(addr as *const [u64; LINE / 8]) };
        if line.iter().fold(0, |diff, w| diff | (w ^ PATTERN_WORD)) != 0 {
            break;
        }
        addr += LINE;
    }
    while addr + 8 <= painted.base {
        // SAFETY: as for the lines above, for one word below `base` (still aligned).
        let word = unsafe { std::ptr::read_volatile(addr as *const u64) };
        if word != PATTERN_WORD {
            break;
        }
        addr += 8;
    }
    while addr < painted.base {
        // SAFETY: as for the lines above, for one byte below `base`.
        let byte = unsafe { std::ptr::read_volatile(addr as *const u8) };
        if byte != PATTERN {
            break;
        }
        addr += 1;
    }
    (painted.base - addr) as u64
}

/// The deepest stack use measured on any thread of a run.
#[derive(Debug, Default)]
pub(crate) struct Peak(AtomicU64);

impl Peak {
    pub(crate) fn record(&self, bytes: u64) {
        self.0.fetch_max(bytes, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Runs `f` on this thread with the stack painted first, and records the peak in `peak`.
pub(crate) fn measured<T>(peak: &Peak, f: impl FnOnce() -> T) -> T {
    let painted = paint();
    let out = f();
    peak.record(measure(painted));
    out
}

/// Spawns a scoped thread with a 256 KiB stack whose peak use is recorded in `peak`.
pub(crate) fn spawn_small<'scope, 'env, T: Send + 'scope>(
    s: &'scope Scope<'scope, 'env>,
    name: String,
    peak: &'scope Peak,
    f: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    thread::Builder::new()
        .name(name)
        .stack_size(SMALL_STACK)
        .spawn_scoped(s, move || measured(peak, f))
        .expect("spawn a thread")
}

/// Runs `f` on a new thread with a 256 KiB stack, waits for it and records its peak in `peak`.
pub(crate) fn run_small<T: Send>(name: &str, peak: &Peak, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        spawn_small(s, name.to_string(), peak, f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn recurse(n: u32) -> u32 {
        let pad = std::hint::black_box([n as u8; 512]);
        if n == 0 {
            u32::from(pad[0])
        } else {
            recurse(n - 1) + u32::from(pad[1])
        }
    }

    #[test]
    fn painting_sees_deeper_recursion() {
        let peak_small = Peak::default();
        let peak_big = Peak::default();
        thread::scope(|s| {
            spawn_small(s, "a".into(), &peak_small, || recurse(2));
            spawn_small(s, "b".into(), &peak_big, || recurse(100));
        });
        let (small, big) = (peak_small.get().unwrap(), peak_big.get().unwrap());
        assert!(big > small + 40_000, "{small} {big}");
    }
}
