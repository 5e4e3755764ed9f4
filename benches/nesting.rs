//! B7: the signal cascade and the final drop through a nesting depth D (an array over an
//! array over ... over one fence), on a thread with a 256 KiB stack.
//!
//! `Locked`'s final put recurses as the kernel's does, so it overflows a small stack past
//! some depth. That depth is found first by probing in child processes (an overflow aborts
//! the process, which must not be the benchmark's), and `Locked` is timed only at depths at
//! most half of it.

mod common;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Callback, FloorFence};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use rcu_fence::{Backend, Fence, FenceArray, Locked, Rcu, Timeline, context_alloc};

/// The stack of the thread every round runs on.
const STACK: usize = 256 * 1024;
/// The depths timed (and plotted).
const DEPTHS: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
/// Set in a child process: run one round of `Locked` at this depth and exit.
const PROBE_ENV: &str = "RCU_FENCE_B7_PROBE";

/// B7's shared workload: build a structure of depth `d` with a waiter on the top
/// (untimed), then time the signal at the bottom, the cascade to the top and the release
/// of everything.
trait Cascade: Sync {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// One round; returns the timed part.
    fn round(&self, depth: usize) -> Duration;
}

struct Nested<B: Backend>(B);

impl<B: Backend> Cascade for Nested<B> {
    const NAME: &'static str = B::NAME;

    fn round(&self, depth: usize) -> Duration {
        let timeline = Timeline::new_in("b7", self.0);
        let leaf = timeline.fence(1);
        let context = context_alloc(1);
        let mut top: Fence<B> = leaf.clone();
        for level in 1..depth as u64 {
            top = FenceArray::create(vec![top], context, level, false).unwrap();
        }
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        top.add_callback(move |_| flag.store(true, Ordering::Release))
            .unwrap();

        let start = Instant::now();
        leaf.signal().unwrap();
        // `Locked` signals each level from its irq_work thread.
        top.wait();
        common::wait_flag(&done);
        drop(top);
        drop(leaf);
        // What a container released is dropped past RCU readers: count that work too.
        rcu_fence::synchronize_rcu();
        start.elapsed()
    }
}

/// The floor: `d` heap nodes, each with a flag and a boxed callback; a loop marks each and
/// calls its callback, then frees them.
struct Floor;

impl Cascade for Floor {
    const NAME: &'static str = "floor";

    fn round(&self, depth: usize) -> Duration {
        static SINK: u64 = 0;
        let mut nodes: Vec<Box<FloorFence<1>>> = (0..depth)
            .map(|_| {
                let mut f = FloorFence::<1>::new();
                let sink: &'static u64 = &SINK;
                let cb: Callback = Box::new(move || {
                    black_box(sink);
                });
                f.add(cb);
                f
            })
            .collect();
        let start = Instant::now();
        for node in &mut nodes {
            node.signal();
        }
        drop(nodes);
        start.elapsed()
    }
}

/// Runs `rounds` rounds on a fresh thread with a 256 KiB stack.
fn on_small_stack<V: Cascade>(v: &V, depth: usize, rounds: u64) -> Duration {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, || (0..rounds).map(|_| v.round(depth)).sum())
            .expect("spawn")
            .join()
            .expect("a round panicked")
    })
}

/// True if a child process survives one `Locked` round at `depth`.
fn survives(depth: usize) -> bool {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .env(PROBE_ENV, depth.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The largest depth `Locked` survives on the small stack, up to the largest timed depth:
/// a decade scan, then bisection.
fn locked_max_depth() -> usize {
    let top = *DEPTHS.last().unwrap();
    let mut ok = 1;
    let mut fail = None;
    for d in [10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000] {
        if survives(d) {
            ok = d;
        } else {
            fail = Some(d);
            break;
        }
    }
    let Some(mut fail) = fail else { return top };
    while fail - ok > 1 + ok / 50 {
        let mid = ok + (fail - ok) / 2;
        if survives(mid) {
            ok = mid;
        } else {
            fail = mid;
        }
    }
    ok
}

fn b7_variant<V: Cascade>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V, depth: usize) {
    group.bench_with_input(BenchmarkId::new(V::NAME, depth), &depth, |b, &depth| {
        b.iter_custom(|iters| on_small_stack(v, depth, iters))
    });
}

fn b7(c: &mut Criterion) {
    let max = locked_max_depth();
    println!(
        "b7: Locked survives depth {max} on a {} KiB stack",
        STACK / 1024
    );
    common::write_json(
        "b7_probe",
        &serde_json::json!({ "locked_max_depth": max, "stack_kib": STACK / 1024 }),
    );
    let mut group = c.benchmark_group("b7_nesting");
    group.sampling_mode(SamplingMode::Flat);
    for depth in DEPTHS {
        if depth >= 10_000 {
            group.sample_size(10);
        }
        b7_variant(&mut group, &Floor, depth);
        b7_variant(&mut group, &Nested(Rcu), depth);
        if depth <= max / 2 {
            b7_variant(&mut group, &Nested(Locked), depth);
        }
    }
    group.finish();
}

fn main() {
    common::setup();
    if let Some(depth) = std::env::var_os(PROBE_ENV) {
        let depth: usize = depth
            .to_str()
            .and_then(|d| d.parse().ok())
            .expect("probe depth");
        on_small_stack(&Nested(Locked), depth, 1);
        return;
    }
    let mut c = common::criterion();
    b7(&mut c);
    c.final_summary();
}
