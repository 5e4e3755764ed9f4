//! B5 (an array of N completes after all N members signal) and B6 (a reader polls or
//! iterates a nested container while a writer signals, interleaved rounds).

mod common;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwap;
use common::rounds::{Batch, Rounds};
use common::{FloorFence, for_each_backend};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use rcu_fence::{Backend, Fence, FenceArray, Timeline, context_alloc, unwrap};

/// B5's shared workload: build N pending members and an all-of-N over them with one
/// waiter, signal every member, see the whole complete.
trait AllOf {
    /// The variant's name in benchmark ids.
    fn name(&self) -> &'static str;
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
    fn name(&self) -> &'static str {
        B::NAME
    }

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
        // Every backend completes the array within the last member's `signal`.
        assert!(done.load(Ordering::Acquire));
    }
}

/// The floor: per member one heap object with its callback slot inline and one boxed
/// callback holding a countdown; one atomic store and one decrement at signal.
struct Floor;

impl AllOf for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

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
    fn name(&self) -> &'static str {
        "waitgroup"
    }

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
    fn name(&self) -> &'static str {
        "join_all"
    }

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
    group.bench_with_input(BenchmarkId::new(v.name(), n), &n, |b, &n| {
        b.iter(|| v.round(n))
    });
}

fn b5(c: &mut Criterion) {
    let mut group = c.benchmark_group("b5_array_all");
    for n in [16usize, 1024] {
        b5_variant(&mut group, &Floor, n);
        for_each_backend!(|B| b5_variant(&mut group, &Array::<B>::new(), n));
        b5_variant(&mut group, &WaitGroup, n);
        b5_variant(&mut group, &JoinAll, n);
    }
    group.finish();
}

/// B6's nested container: `OUTER` arrays of `INNER` fences, under one array.
const OUTER: usize = 4;
const INNER: usize = 16;
const LEAVES: usize = OUTER * INNER;

/// What the reader does, and what the writer does meanwhile.
#[derive(Clone, Copy)]
enum Op {
    /// `is_signaled` on the container the reader holds while the writer signals its leaves;
    /// once it reads signalled, the reader takes the current one (which the writer published
    /// meanwhile). Holding it keeps the publishing cell (an `ArcSwap` load, about two thirds
    /// of the instructions of a poll that loads it every time, the same for every variant)
    /// off the measured operation.
    Poll,
    /// `unwrap` over every leaf of the current top, which stays pending while it is
    /// current: the writer publishes a fresh container, then signals the previous one.
    /// Every variant visits the same 64 leaves (`Rcu` drops signalled members from its
    /// containers and `Locked` keeps them, so iterating a container that is being signalled
    /// would visit a few leaves on one and 64 on the other). The leaves visited per read are
    /// recorded to show it.
    IteratePending,
}

impl Op {
    const ALL: [Op; 2] = [Op::Poll, Op::IteratePending];

    fn name(self) -> &'static str {
        match self {
            Op::Poll => "poll_held",
            Op::IteratePending => "iterate_pending",
        }
    }
}

/// B6's shared workload: a writer keeps building, publishing and signalling nested
/// containers; the reader's operation on the current one is timed.
trait Nested: Send + Sync + 'static {
    /// What a reader keeps between its operations.
    type Held: Default;
    /// The variant's name in benchmark ids.
    fn name(&self) -> &'static str;
    /// The writer: publishes a first container, waits on `ready`, then loops until `stop`.
    fn writer(&self, op: Op, ready: &Barrier, stop: &AtomicBool);
    /// One reader operation: the leaves visited (`IteratePending`) or whether the held
    /// container read signalled (`Poll`).
    fn read(&self, op: Op, held: &mut Self::Held) -> usize;
}

struct NestedFences<B: Backend> {
    current: ArcSwap<Fence<B>>,
    timeline: Timeline<B>,
}

impl<B: Backend> NestedFences<B> {
    fn new() -> Self {
        let timeline = Timeline::new_in("b6", B::default());
        NestedFences {
            current: ArcSwap::from_pointee(timeline.fence(0)),
            timeline,
        }
    }

    /// Builds a pending nested container, enables it (as any waiter would) and publishes
    /// it; returns it with its leaves.
    fn publish(&self) -> (Fence<B>, Vec<Fence<B>>) {
        let mut leaves = Vec::with_capacity(LEAVES);
        let arrays: Vec<Fence<B>> = (0..OUTER)
            .map(|_| {
                let members: Vec<Fence<B>> =
                    (0..INNER as u64).map(|s| self.timeline.fence(s)).collect();
                leaves.extend(members.iter().cloned());
                FenceArray::create(members, context_alloc(1), 1, false).unwrap()
            })
            .collect();
        let top = FenceArray::create(arrays, context_alloc(1), 1, false).unwrap();
        top.enable_sw_signaling();
        self.current.store(Arc::new(top.clone()));
        (top, leaves)
    }

    fn signal(top: &Fence<B>, leaves: &[Fence<B>]) {
        for leaf in leaves {
            leaf.signal().unwrap();
        }
        assert!(top.is_signaled());
    }
}

impl<B: Backend> Nested for NestedFences<B> {
    type Held = Option<Arc<Fence<B>>>;

    fn name(&self) -> &'static str {
        B::NAME
    }

    fn writer(&self, op: Op, ready: &Barrier, stop: &AtomicBool) {
        let (mut top, mut leaves) = self.publish();
        ready.wait();
        loop {
            match op {
                Op::Poll => {
                    Self::signal(&top, &leaves);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    (top, leaves) = self.publish();
                }
                Op::IteratePending => {
                    let (next, next_leaves) = self.publish();
                    Self::signal(&top, &leaves);
                    (top, leaves) = (next, next_leaves);
                    if stop.load(Ordering::Relaxed) {
                        Self::signal(&top, &leaves);
                        break;
                    }
                }
            }
        }
    }

    fn read(&self, op: Op, held: &mut Self::Held) -> usize {
        match op {
            Op::Poll => {
                let top = held.get_or_insert_with(|| self.current.load_full());
                let signaled = top.is_signaled();
                if signaled {
                    *held = Some(self.current.load_full());
                }
                signaled as usize
            }
            Op::IteratePending => unwrap(&self.current.load()).count(),
        }
    }
}

/// The floor: two generations of leaf flags and a top flag, read while the writer flips
/// them; no structure, no reclamation.
struct FloorNested {
    generations: [Vec<AtomicBool>; 2],
    current: AtomicUsize,
    top: AtomicBool,
}

impl FloorNested {
    fn new() -> Self {
        let flags = || (0..LEAVES).map(|_| AtomicBool::new(false)).collect();
        FloorNested {
            generations: [flags(), flags()],
            current: AtomicUsize::new(0),
            top: AtomicBool::new(false),
        }
    }
}

impl Nested for FloorNested {
    type Held = ();

    fn name(&self) -> &'static str {
        "floor"
    }

    fn writer(&self, op: Op, ready: &Barrier, stop: &AtomicBool) {
        ready.wait();
        let mut cur = self.current.load(Ordering::Relaxed);
        while !stop.load(Ordering::Relaxed) {
            match op {
                Op::Poll => {
                    let leaves = &self.generations[0];
                    for leaf in leaves {
                        leaf.store(false, Ordering::Relaxed);
                    }
                    self.top.store(false, Ordering::Release);
                    for leaf in leaves {
                        leaf.store(true, Ordering::Release);
                    }
                    self.top.store(true, Ordering::Release);
                }
                Op::IteratePending => {
                    let next = 1 - cur;
                    for leaf in &self.generations[next] {
                        leaf.store(false, Ordering::Relaxed);
                    }
                    self.current.store(next, Ordering::Release);
                    for leaf in &self.generations[cur] {
                        leaf.store(true, Ordering::Release);
                    }
                    cur = next;
                }
            }
        }
    }

    fn read(&self, op: Op, _held: &mut ()) -> usize {
        match op {
            Op::Poll => self.top.load(Ordering::Acquire) as usize,
            Op::IteratePending => self.generations[self.current.load(Ordering::Acquire)]
                .iter()
                .filter(|l| !l.load(Ordering::Acquire))
                .count(),
        }
    }
}

/// Times `iters` reader operations while the writer runs on another thread.
fn read_under_writer<V: Nested>(v: &V, op: Op, iters: u64) -> Batch {
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| v.writer(op, &ready, &stop));
        ready.wait();
        let mut held = V::Held::default();
        let mut work = 0u64;
        let start = Instant::now();
        for _ in 0..iters {
            work += black_box(v.read(op, &mut held)) as u64;
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        match op {
            Op::Poll => Batch::iters(elapsed, iters),
            Op::IteratePending => Batch { elapsed, work },
        }
    })
}

fn b6_variant<V: Nested>(rounds: &mut Rounds<'_>, v: V) {
    let v = Arc::new(v);
    for op in Op::ALL {
        let v = v.clone();
        rounds.add(v.name(), op.name(), move |iters| {
            read_under_writer(&*v, op, iters)
        });
    }
}

fn b6() {
    let mut rounds = Rounds::new("b6_read_nested");
    b6_variant(&mut rounds, FloorNested::new());
    for_each_backend!(|B| b6_variant(&mut rounds, NestedFences::<B>::new()));
    rounds.run();
}

/// `RCU_FENCE_PROFILE=b5:<variant>:<n>:<rounds>` runs B5 rounds alone, and
/// `RCU_FENCE_PROFILE=b6:<variant>:<op>:<reads>` reader operations on one published container
/// with no writer, then exits: for `valgrind --tool=callgrind` (per op = (count at N - count
/// at 0) / N). `<variant>` is a backend's name or `floor`.
fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let arg = |i: usize, default: u64| parts.get(i).and_then(|x| x.parse().ok()).unwrap_or(default);
    let variant = parts.get(1).copied().unwrap_or("rcu");
    match parts.first().copied() {
        Some("b6") => {
            let op = match parts.get(2) {
                Some(&"poll") | Some(&"poll_held") => Op::Poll,
                _ => Op::IteratePending,
            };
            let reads = arg(3, 10_000);
            for_each_backend!(|B| if B::NAME == variant {
                let v = NestedFences::<B>::new();
                let (_top, leaves) = v.publish();
                let mut held = None;
                for _ in 0..reads {
                    black_box(v.read(op, &mut held));
                }
                drop(leaves);
            });
        }
        _ => {
            let (n, rounds) = (arg(2, 1024) as usize, arg(3, 100));
            let mut variants: Vec<Box<dyn AllOf>> = vec![Box::new(Floor)];
            for_each_backend!(|B| variants.push(Box::new(Array::<B>::new())));
            let v = variants
                .iter()
                .find(|v| v.name() == variant)
                .unwrap_or_else(|| panic!("no variant {variant}"));
            for _ in 0..rounds {
                v.round(n);
            }
        }
    }
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var("RCU_FENCE_PROFILE") {
        return profile(&spec);
    }
    let mut c = common::criterion();
    b5(&mut c);
    c.final_summary();
    b6();
}
