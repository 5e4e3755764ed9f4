//! B1 (create a fence, add k callbacks, signal) and B2 (add + remove a callback on a pending
//! fence): both backends, the floor and the peers in one group each.

mod common;

use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use common::{Callback, CondvarFence, FloorFence};
use criterion::{BenchmarkId, Criterion};
use rcu_fence::{Backend, Locked, Rcu, Timeline};

/// What a callback captures: one pointer, so that boxing it allocates in every variant.
static SINK: u64 = 0;

fn callback() -> Callback {
    let sink: &'static u64 = &SINK;
    Box::new(move || {
        black_box(sink);
    })
}

/// The shared workload: one implementation per variant, one benchmark body for all.
trait OneShot {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// B1: create, add `k` callbacks, signal, drop.
    fn create_signal(&self, k: usize);
    /// B2: `ops` times add a callback to one pending fence and take it back.
    fn add_remove(&self, ops: u64) -> Duration;
}

/// A fence of backend `B`.
struct Fences<B: Backend>(Timeline<B>);

impl<B: Backend> OneShot for Fences<B> {
    const NAME: &'static str = B::NAME;

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

    fn add_remove(&self, ops: u64) -> Duration {
        // A fresh fence every 256 operations: the `Rcu` fence keeps a removed callback's node
        // linked until it signals or drops, and an unbounded list would measure memory growth.
        let mut total = Duration::ZERO;
        let mut left = ops;
        while left > 0 {
            let n = left.min(256);
            left -= n;
            let fence = self.0.fence(1);
            let start = Instant::now();
            for _ in 0..n {
                let sink: &'static u64 = &SINK;
                let id = fence
                    .add_callback(move |_| {
                        black_box(sink);
                    })
                    .unwrap();
                assert!(fence.remove_callback(id));
            }
            total += start.elapsed();
        }
        total
    }
}

/// The floor: one heap object, k boxed closures, one atomic store, k direct calls.
struct Floor;

impl OneShot for Floor {
    const NAME: &'static str = "floor";

    fn create_signal(&self, k: usize) {
        let mut fence = FloorFence::new(k);
        for _ in 0..k {
            fence.add(callback());
        }
        fence.signal();
        black_box(fence.is_signaled());
    }

    fn add_remove(&self, ops: u64) -> Duration {
        let mut list: Vec<Callback> = Vec::with_capacity(1);
        let start = Instant::now();
        for _ in 0..ops {
            list.push(callback());
            drop(black_box(list.pop()));
        }
        start.elapsed()
    }
}

/// A `Mutex` + `Condvar` fence written the obvious way.
struct Condvar;

impl OneShot for Condvar {
    const NAME: &'static str = "mutex_condvar";

    fn create_signal(&self, k: usize) {
        let fence = std::sync::Arc::new(CondvarFence::new());
        for _ in 0..k {
            fence.add_callback(callback()).unwrap();
        }
        fence.signal();
    }

    fn add_remove(&self, ops: u64) -> Duration {
        let fence = CondvarFence::new();
        let start = Instant::now();
        for _ in 0..ops {
            let id = fence.add_callback(callback()).unwrap();
            assert!(fence.remove_callback(id));
        }
        start.elapsed()
    }
}

/// `event-listener`: registering a listener and dropping it is its add + remove.
struct EventListener;

impl OneShot for EventListener {
    const NAME: &'static str = "event_listener";

    fn create_signal(&self, _k: usize) {
        unreachable!("event-listener has no callbacks")
    }

    fn add_remove(&self, ops: u64) -> Duration {
        let event = event_listener::Event::new();
        let start = Instant::now();
        for _ in 0..ops {
            let listener = event.listen();
            drop(black_box(listener));
        }
        start.elapsed()
    }
}

/// `tokio::sync::Notify`: enabling a `Notified` future registers it, dropping removes it.
struct TokioNotify;

impl OneShot for TokioNotify {
    const NAME: &'static str = "tokio_notify";

    fn create_signal(&self, _k: usize) {
        unreachable!("Notify has no callbacks")
    }

    fn add_remove(&self, ops: u64) -> Duration {
        let notify = tokio::sync::Notify::new();
        let start = Instant::now();
        for _ in 0..ops {
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            // The pinned future is dropped (deregistered) at the end of the loop body.
            black_box(&mut notified);
        }
        start.elapsed()
    }
}

fn b1_variant<V: OneShot>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    v: &V,
    k: usize,
) {
    group.bench_with_input(BenchmarkId::new(V::NAME, k), &k, |b, &k| {
        b.iter(|| v.create_signal(k))
    });
}

fn b1(c: &mut Criterion) {
    let mut group = c.benchmark_group("b1_create_signal");
    let (rcu, locked) = (
        Fences(Timeline::new_in("b1", Rcu)),
        Fences(Timeline::new_in("b1", Locked)),
    );
    for k in [0usize, 1, 8] {
        b1_variant(&mut group, &Floor, k);
        b1_variant(&mut group, &rcu, k);
        b1_variant(&mut group, &locked, k);
        b1_variant(&mut group, &Condvar, k);
    }
    group.finish();
}

fn b2_variant<V: OneShot>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    v: &V,
) {
    group.bench_function(BenchmarkId::new(V::NAME, 1), |b| {
        b.iter_custom(|iters| v.add_remove(iters))
    });
}

fn b2(c: &mut Criterion) {
    let mut group = c.benchmark_group("b2_add_remove");
    b2_variant(&mut group, &Floor);
    b2_variant(&mut group, &Fences(Timeline::new_in("b2", Rcu)));
    b2_variant(&mut group, &Fences(Timeline::new_in("b2", Locked)));
    b2_variant(&mut group, &Condvar);
    b2_variant(&mut group, &EventListener);
    b2_variant(&mut group, &TokioNotify);
    group.finish();
}

/// `RCU_FENCE_PROFILE=<variant>:<k>:<rounds>` runs B1 alone that many rounds and exits: for
/// `valgrind --tool=callgrind`, whose instruction counts are repeatable where times are not
/// (per op = (count at N rounds - count at 0 rounds) / N).
fn profile(spec: &str) {
    let mut parts = spec.split(':');
    let variant = parts.next().unwrap_or("rcu");
    let k: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let rounds: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(100_000);
    let (rcu, locked) = (
        Fences(Timeline::new_in("b1", Rcu)),
        Fences(Timeline::new_in("b1", Locked)),
    );
    for _ in 0..rounds {
        match variant {
            "floor" => Floor.create_signal(k),
            "locked" => locked.create_signal(k),
            "mutex_condvar" => Condvar.create_signal(k),
            _ => rcu.create_signal(k),
        }
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
