//! B7: the signal cascade and the final drop through a nesting depth D (an array over an
//! array over ... over one fence), on a thread with a 256 KiB stack.
//!
//! A backend whose final put recurses (`Locked`, as the kernel's does) overflows a small
//! stack past some depth. Each backend's deepest surviving depth is found first by probing
//! in child processes (an overflow aborts the process, which must not be the benchmark's),
//! and a backend is timed only at depths at most half of it.

mod common;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Callback, FloorFence, for_each_backend};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use rcu_fence::{Backend, Fence, FenceArray, Timeline, context_alloc};
use serde_json::json;

/// The stack of the thread every round runs on.
const STACK: usize = 256 * 1024;
/// The depths timed (and plotted).
const DEPTHS: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
/// Set in a child process to `<backend>:<depth>`: run one round there and exit.
const PROBE_ENV: &str = "RCU_FENCE_B7_PROBE";

/// B7's shared workload: build a structure of depth `d` with a waiter on the top
/// (untimed), then time the signal at the bottom, the cascade to the top and the release
/// of everything.
trait Cascade: Sync {
    /// The variant's name in benchmark ids.
    fn name(&self) -> &'static str;
    /// One round; returns the timed part.
    fn round(&self, depth: usize) -> Duration;
}

struct Nested<B: Backend>(B);

impl<B: Backend> Nested<B> {
    fn new() -> Self {
        Nested(B::default())
    }
}

impl<B: Backend> Cascade for Nested<B> {
    fn name(&self) -> &'static str {
        B::NAME
    }

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
        // Every backend completes the whole cascade within `signal`.
        assert!(done.load(Ordering::Acquire));
        drop(top);
        drop(leaf);
        // What a container released is dropped past RCU readers: count that work too.
        rcu_fence::synchronize_rcu();
        start.elapsed()
    }
}

/// The floor: `d` heap nodes, each with a flag and one boxed callback inline; a loop marks
/// each and calls its callback, then frees them.
struct Floor;

impl Cascade for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

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

/// True if a child process survives one round of `backend` at `depth`.
fn survives(backend: &str, depth: usize) -> bool {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .env(PROBE_ENV, format!("{backend}:{depth}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The largest depth `backend` survives on the small stack, up to the largest timed depth:
/// a decade scan, then bisection.
fn max_depth(backend: &str) -> usize {
    let top = *DEPTHS.last().unwrap();
    let mut ok = 1;
    let mut fail = None;
    for d in [10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000] {
        if survives(backend, d) {
            ok = d;
        } else {
            fail = Some(d);
            break;
        }
    }
    let Some(mut fail) = fail else { return top };
    while fail - ok > 1 + ok / 50 {
        let mid = ok + (fail - ok) / 2;
        if survives(backend, mid) {
            ok = mid;
        } else {
            fail = mid;
        }
    }
    ok
}

fn b7_variant<V: Cascade>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V, depth: usize) {
    group.bench_with_input(BenchmarkId::new(v.name(), depth), &depth, |b, &depth| {
        b.iter_custom(|iters| on_small_stack(v, depth, iters))
    });
}

fn b7(c: &mut Criterion) {
    let mut max = serde_json::Map::new();
    if !common::listing() {
        for name in common::backend_names() {
            let depth = max_depth(name);
            println!(
                "b7: {name} survives depth {depth} on a {} KiB stack",
                STACK / 1024
            );
            max.insert(name.to_string(), json!(depth));
        }
        common::write_json(
            "b7_probe",
            &json!({ "max_depth": max, "stack_kib": STACK / 1024, "largest_probed": DEPTHS.last() }),
        );
    }
    let fits = |name: &str, depth: usize| {
        max.get(name)
            .and_then(|d| d.as_u64())
            .is_none_or(|m| depth as u64 <= m / 2 || m as usize == *DEPTHS.last().unwrap())
    };
    let mut group = c.benchmark_group("b7_nesting");
    group.sampling_mode(SamplingMode::Flat);
    for depth in DEPTHS {
        if depth >= 10_000 {
            group.sample_size(10);
        }
        b7_variant(&mut group, &Floor, depth);
        for_each_backend!(|B| if fits(B::NAME, depth) {
            b7_variant(&mut group, &Nested::<B>::new(), depth)
        });
    }
    group.finish();
}

/// The probe child: one round of the named backend at the given depth.
fn probe(spec: &str) {
    let (name, depth) = spec.split_once(':').expect("<backend>:<depth>");
    let depth: usize = depth.parse().expect("probe depth");
    for_each_backend!(|B| if B::NAME == name {
        on_small_stack(&Nested::<B>::new(), depth, 1);
    });
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var(PROBE_ENV) {
        return probe(&spec);
    }
    let mut c = common::criterion();
    b7(&mut c);
    c.final_summary();
}
