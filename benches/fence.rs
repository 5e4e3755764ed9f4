//! B1 (create a fence, add k callbacks, signal) and B2 (add + remove a callback on a pending
//! fence): every backend, the floor and the peers in one group each.

mod common;

use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use common::condvar::LockCondvar;
use common::{Callback, CondvarFence, FloorFence, ParkingLot, StdSync, for_each_backend};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use rcu_fence::{Backend, Timeline};

/// What a callback captures: one pointer, so that boxing it allocates in every variant.
static SINK: u64 = 0;

fn callback() -> Callback {
    let sink: &'static u64 = &SINK;
    Box::new(move || {
        black_box(sink);
    })
}

/// The callback counts B1 runs.
const KS: [usize; 3] = [0, 1, 8];

/// Add + remove pairs per fence in B2. Each batch creates its fence and drops it inside the
/// timed part, so that what a scheme defers to the drop (unlinking, freeing) is paid too.
const B2_BATCH: u64 = 256;

/// The shared workload: one implementation per variant, one benchmark body for all.
trait OneShot {
    /// The variant's name in benchmark ids.
    fn name(&self) -> &'static str;
    /// B1: create, add `k` callbacks, signal, drop.
    fn create_signal(&self, k: usize);
    /// B2: create a pending fence, add a callback and take it back `n` times, drop the
    /// fence. The whole of it is timed by the caller.
    fn add_remove(&self, n: u64);
}

/// A fence of backend `B`.
struct Fences<B: Backend>(Timeline<B>);

impl<B: Backend> Fences<B> {
    fn new(name: &str) -> Self {
        Fences(Timeline::new_in(name, B::default()))
    }
}

impl<B: Backend> OneShot for Fences<B> {
    fn name(&self) -> &'static str {
        B::NAME
    }

    fn create_signal(&self, k: usize) {
        let fence = self.0.fence(1);
        for _ in 0..k {
            let sink: &'static u64 = &SINK;
            fence
                .add_callback(move |_| {
                    black_box(sink);
                })
                .unwrap();
        }
        fence.signal().unwrap();
    }

    fn add_remove(&self, n: u64) {
        let fence = self.0.fence(1);
        for _ in 0..n {
            let sink: &'static u64 = &SINK;
            let id = fence
                .add_callback(move |_| {
                    black_box(sink);
                })
                .unwrap();
            assert!(fence.remove_callback(id));
        }
        drop(fence);
    }
}

/// The floor: one heap object with the callback slots inline, k boxed closures, one atomic
/// store, k direct calls.
struct Floor;

/// B1's floor with exactly `K` slots.
fn floor_create_signal<const K: usize>() {
    let mut fence = FloorFence::<K>::new();
    for _ in 0..K {
        fence.add(callback());
    }
    fence.signal();
    black_box(fence.is_signaled());
}

impl OneShot for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

    fn create_signal(&self, k: usize) {
        match k {
            0 => floor_create_signal::<0>(),
            1 => floor_create_signal::<1>(),
            8 => floor_create_signal::<8>(),
            _ => unimplemented!("add a floor for k = {k}"),
        }
    }

    fn add_remove(&self, n: u64) {
        let mut fence = FloorFence::<1>::new();
        for _ in 0..n {
            fence.add(callback());
            drop(black_box(fence.remove_last()));
        }
        drop(fence);
    }
}

/// A mutex + condvar fence written the obvious way.
struct Condvar<L: LockCondvar>(std::marker::PhantomData<L>);

impl<L: LockCondvar> Condvar<L> {
    const NEW: Self = Condvar(std::marker::PhantomData);
}

impl<L: LockCondvar> OneShot for Condvar<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn create_signal(&self, k: usize) {
        let fence = std::sync::Arc::new(CondvarFence::<L>::new());
        for _ in 0..k {
            fence.add_callback(callback()).unwrap();
        }
        fence.signal();
    }

    fn add_remove(&self, n: u64) {
        let fence = CondvarFence::<L>::new();
        for _ in 0..n {
            let id = fence.add_callback(callback()).unwrap();
            assert!(fence.remove_callback(id));
        }
        drop(fence);
    }
}

/// `event-listener`: registering a listener and dropping it is its add + remove.
struct EventListener;

impl OneShot for EventListener {
    fn name(&self) -> &'static str {
        "event_listener"
    }

    fn create_signal(&self, _k: usize) {
        unreachable!("event-listener has no callbacks")
    }

    fn add_remove(&self, n: u64) {
        let event = event_listener::Event::new();
        for _ in 0..n {
            let listener = event.listen();
            drop(black_box(listener));
        }
        drop(event);
    }
}

/// `tokio::sync::Notify`: enabling a `Notified` future registers it, dropping removes it.
struct TokioNotify;

impl OneShot for TokioNotify {
    fn name(&self) -> &'static str {
        "tokio_notify"
    }

    fn create_signal(&self, _k: usize) {
        unreachable!("Notify has no callbacks")
    }

    fn add_remove(&self, n: u64) {
        let notify = tokio::sync::Notify::new();
        for _ in 0..n {
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            // The pinned future is dropped (deregistered) at the end of the loop body.
            black_box(&mut notified);
        }
        // `notify` drops here, inside the caller's timer.
    }
}

fn b1_variant<V: OneShot>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V, k: usize) {
    group.bench_with_input(BenchmarkId::new(v.name(), k), &k, |b, &k| {
        b.iter(|| v.create_signal(k))
    });
}

fn b1(c: &mut Criterion) {
    let mut group = c.benchmark_group("b1_create_signal");
    for k in KS {
        b1_variant(&mut group, &Floor, k);
        for_each_backend!(|B| b1_variant(&mut group, &Fences::<B>::new("b1"), k));
        b1_variant(&mut group, &Condvar::<StdSync>::NEW, k);
        b1_variant(&mut group, &Condvar::<ParkingLot>::NEW, k);
    }
    group.finish();
}

/// Times `ops` add + remove pairs in batches of `B2_BATCH`, each batch with its own fence.
fn add_remove_timed<V: OneShot>(v: &V, ops: u64) -> Duration {
    let mut left = ops;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(B2_BATCH);
        left -= n;
        v.add_remove(n);
    }
    start.elapsed()
}

fn b2_variant<V: OneShot>(group: &mut BenchmarkGroup<'_, WallTime>, v: &V) {
    group.bench_function(BenchmarkId::new(v.name(), 1), |b| {
        b.iter_custom(|iters| add_remove_timed(v, iters))
    });
}

fn b2(c: &mut Criterion) {
    let mut group = c.benchmark_group("b2_add_remove");
    b2_variant(&mut group, &Floor);
    for_each_backend!(|B| b2_variant(&mut group, &Fences::<B>::new("b2")));
    b2_variant(&mut group, &Condvar::<StdSync>::NEW);
    b2_variant(&mut group, &Condvar::<ParkingLot>::NEW);
    b2_variant(&mut group, &EventListener);
    b2_variant(&mut group, &TokioNotify);
    group.finish();
}

/// `RCU_FENCE_PROFILE=<variant>:<k>:<rounds>` runs B1 alone that many rounds and exits: for
/// `valgrind --tool=callgrind`, whose instruction counts are repeatable where times are not
/// (per op = (count at N rounds - count at 0 rounds) / N). `<variant>` is a backend's name,
/// `floor`, `mutex_condvar` or `parking_lot_condvar`.
fn profile(spec: &str) {
    let mut parts = spec.split(':');
    let variant = parts.next().unwrap_or("rcu");
    let k: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let rounds: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(100_000);
    let mut variants: Vec<Box<dyn OneShot>> = vec![
        Box::new(Floor),
        Box::new(Condvar::<StdSync>::NEW),
        Box::new(Condvar::<ParkingLot>::NEW),
    ];
    for_each_backend!(|B| variants.push(Box::new(Fences::<B>::new("b1"))));
    let v = variants
        .iter()
        .find(|v| v.name() == variant)
        .unwrap_or_else(|| panic!("no variant {variant}"));
    for _ in 0..rounds {
        v.create_signal(k);
    }
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var("RCU_FENCE_PROFILE") {
        return profile(&spec);
    }
    let mut c = common::criterion();
    b1(&mut c);
    b2(&mut c);
    c.final_summary();
}
