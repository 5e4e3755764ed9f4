//! B5 (an array of N completes after all N members signal) and B6 (a reader iterates and
//! polls a nested container while a writer signals its members).

mod common;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use common::FloorFence;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use rcu_fence::{Backend, Fence, FenceArray, Locked, Rcu, Timeline, context_alloc, unwrap};

/// B5's shared workload: build N pending members and an all-of-N over them with one
/// waiter, signal every member, see the whole complete.
trait AllOf {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// One round over `n` members.
    fn round(&self, n: usize);
}

struct Array<B: Backend> {
    timeline: Timeline<B>,
    context: u64,
}

impl<B: Backend> Array<B> {
    fn new() -> Self {
        Array {
            timeline: Timeline::new_in("b5", B::default()),
            context: context_alloc(1),
        }
    }
}

impl<B: Backend> AllOf for Array<B> {
    const NAME: &'static str = B::NAME;

    fn round(&self, n: usize) {
        let members: Vec<Fence<B>> = (0..n as u64).map(|s| self.timeline.fence(s)).collect();
        let array = FenceArray::create(members.clone(), self.context, 1, false).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        array
            .add_callback(move |_| flag.store(true, Ordering::Release))
            .unwrap();
        for m in &members {
            m.signal().unwrap();
        }
        // `Locked` completes the array on its irq_work thread: wait for it.
        array.wait();
        common::wait_flag(&done);
    }
}

/// The floor: per member one heap object and one boxed callback holding a countdown, one
/// atomic store and one decrement at signal.
struct Floor;

impl AllOf for Floor {
    const NAME: &'static str = "floor";

    fn round(&self, n: usize) {
        let left = Arc::new(AtomicUsize::new(n));
        let done = Arc::new(AtomicBool::new(false));
        let mut members: Vec<Box<FloorFence<1>>> = (0..n)
            .map(|_| {
                let mut f = FloorFence::<1>::new();
                let (left, done) = (left.clone(), done.clone());
                f.add(Box::new(move || {
                    if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        done.store(true, Ordering::Release);
                    }
                }));
                f
            })
            .collect();
        for m in &mut members {
            m.signal();
        }
        assert!(done.load(Ordering::Acquire));
    }
}

/// `crossbeam_utils::sync::WaitGroup`: one clone per member, dropped to signal.
struct WaitGroup;

impl AllOf for WaitGroup {
    const NAME: &'static str = "waitgroup";

    fn round(&self, n: usize) {
        let wg = crossbeam_utils::sync::WaitGroup::new();
        let members: Vec<_> = (0..n).map(|_| wg.clone()).collect();
        for m in members {
            drop(m);
        }
        wg.wait();
    }
}

/// `futures::future::join_all` over N `futures::channel::oneshot`s: polled once before the
/// sends (the waiter is registered), once after.
struct JoinAll;

impl AllOf for JoinAll {
    const NAME: &'static str = "join_all";

    fn round(&self, n: usize) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| futures::channel::oneshot::channel::<()>())
            .unzip();
        let mut all = futures::future::join_all(rxs);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut all).poll(&mut cx).is_pending());
        for tx in txs {
            tx.send(()).unwrap();
        }
        match Pin::new(&mut all).poll(&mut cx) {
            Poll::Ready(v) => {
                black_box(v);
            }
            Poll::Pending => unreachable!("every oneshot has been sent"),
        }
    }
}

fn b5_variant<V: AllOf>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V, n: usize) {
    group.bench_with_input(BenchmarkId::new(V::NAME, n), &n, |b, &n| {
        b.iter(|| v.round(n))
    });
}

fn b5(c: &mut Criterion) {
    let mut group = c.benchmark_group("b5_array_all");
    let (rcu, locked) = (Array::<Rcu>::new(), Array::<Locked>::new());
    for n in [16usize, 1024] {
        b5_variant(&mut group, &Floor, n);
        b5_variant(&mut group, &rcu, n);
        b5_variant(&mut group, &locked, n);
        b5_variant(&mut group, &WaitGroup, n);
        b5_variant(&mut group, &JoinAll, n);
    }
    group.finish();
}

/// B6's nested container: `OUTER` arrays of `INNER` fences, under one array.
const OUTER: usize = 4;
const INNER: usize = 16;

/// B6's shared workload: a writer keeps building, publishing and signalling nested
/// containers; the reader's operation on the current one is timed.
trait Nested: Sync {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// The writer's loop, until `stop`.
    fn writer(&self, stop: &AtomicBool);
    /// One reader operation: `iterate` walks every leaf still held, else polls the top.
    fn read(&self, iterate: bool) -> usize;
}

struct NestedFences<B: Backend> {
    current: ArcSwap<Fence<B>>,
    timeline: Timeline<B>,
}

impl<B: Backend> NestedFences<B> {
    fn new() -> Self {
        let timeline = Timeline::new_in("b6", B::default());
        let (current, _) = Self::build(&timeline);
        NestedFences {
            current: ArcSwap::from_pointee(current),
            timeline,
        }
    }

    fn build(timeline: &Timeline<B>) -> (Fence<B>, Vec<Fence<B>>) {
        let mut leaves = Vec::with_capacity(OUTER * INNER);
        let arrays: Vec<Fence<B>> = (0..OUTER)
            .map(|_| {
                let members: Vec<Fence<B>> = (0..INNER as u64).map(|s| timeline.fence(s)).collect();
                leaves.extend(members.iter().cloned());
                FenceArray::create(members, context_alloc(1), 1, false).unwrap()
            })
            .collect();
        (
            FenceArray::create(arrays, context_alloc(1), 1, false).unwrap(),
            leaves,
        )
    }
}

impl<B: Backend> Nested for NestedFences<B> {
    const NAME: &'static str = B::NAME;

    fn writer(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let (top, leaves) = Self::build(&self.timeline);
            top.enable_sw_signaling();
            self.current.store(Arc::new(top.clone()));
            for leaf in &leaves {
                leaf.signal().unwrap();
            }
            top.wait();
        }
    }

    fn read(&self, iterate: bool) -> usize {
        let top = self.current.load();
        if iterate {
            unwrap(&top).count()
        } else {
            top.is_signaled() as usize
        }
    }
}

/// The floor: a fixed set of leaf flags, read while the writer flips them; no structure,
/// no reclamation.
struct FloorNested {
    leaves: Vec<AtomicBool>,
    top: AtomicBool,
}

impl Nested for FloorNested {
    const NAME: &'static str = "floor";

    fn writer(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            for leaf in &self.leaves {
                leaf.store(false, Ordering::Relaxed);
            }
            self.top.store(false, Ordering::Release);
            for leaf in &self.leaves {
                leaf.store(true, Ordering::Release);
            }
            self.top.store(true, Ordering::Release);
        }
    }

    fn read(&self, iterate: bool) -> usize {
        if iterate {
            self.leaves
                .iter()
                .filter(|l| !l.load(Ordering::Acquire))
                .count()
        } else {
            self.top.load(Ordering::Acquire) as usize
        }
    }
}

/// Times `iters` reader operations while the writer runs on another thread.
fn read_under_writer<V: Nested>(v: &V, iters: u64, iterate: bool) -> Duration {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            v.writer(&stop);
        });
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            black_box(v.read(iterate));
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn b6_variant<V: Nested>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V) {
    for (param, iterate) in [("poll", false), ("iterate", true)] {
        group.bench_function(BenchmarkId::new(V::NAME, param), |b| {
            b.iter_custom(|iters| read_under_writer(v, iters, iterate))
        });
    }
}

fn b6(c: &mut Criterion) {
    let mut group = c.benchmark_group("b6_read_nested");
    let floor = FloorNested {
        leaves: (0..OUTER * INNER).map(|_| AtomicBool::new(false)).collect(),
        top: AtomicBool::new(false),
    };
    b6_variant(&mut group, &floor);
    b6_variant(&mut group, &NestedFences::<Rcu>::new());
    b6_variant(&mut group, &NestedFences::<Locked>::new());
    group.finish();
}

fn main() {
    common::setup();
    let mut c = common::criterion();
    b5(&mut c);
    b6(&mut c);
    c.final_summary();
}
