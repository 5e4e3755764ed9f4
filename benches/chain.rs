//! B8: a fence chain with every link enabled and a waiter on the newest link; its fences
//! signalled forward, backward or in random order (the kernel's selftest shape), and
//! `chain_find_seqno` on a pending chain.
//!
//! `Locked` re-arms one callback per link as the kernel does, which is quadratic backwards
//! (and in random order): it runs those orders at 4096 links only.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rcu_fence::{Backend, Fence, FenceChain, Locked, Rcu, Timeline, chain_find_seqno};

/// The chain lengths.
const SIZES: [usize; 2] = [4_096, 65_536];

/// The order in which the links' own fences are signalled.
#[derive(Clone, Copy)]
enum Order {
    Forward,
    Backward,
    Random,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Forward => "forward",
            Order::Backward => "backward",
            Order::Random => "random",
        }
    }

    /// The signalling order of `n` fences (a fixed seed: every variant gets the same one).
    fn indices(self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        match self {
            Order::Forward => {}
            Order::Backward => v.reverse(),
            Order::Random => v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0x5eed)),
        }
        v
    }
}

/// B8's shared workload.
trait Chain: Sync {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// Build `n` links, enable each, a waiter on the newest (untimed); time signalling every
    /// fence in `order` until the waiter has run.
    fn signal_all(&self, n: usize, order: &[usize]) -> Duration;
    /// Build `n` pending links (untimed); time `lookups.len()` finds.
    fn find(&self, n: usize, lookups: &[u64]) -> Duration;
}

struct Links<B: Backend>(B);

impl<B: Backend> Links<B> {
    fn build(&self, n: usize) -> (Vec<Fence<B>>, Vec<Fence<B>>) {
        let timeline = Timeline::new_in("b8", self.0);
        let fences: Vec<Fence<B>> = (1..=n as u64).map(|s| timeline.fence(s)).collect();
        let mut links: Vec<Fence<B>> = Vec::with_capacity(n);
        for (i, f) in fences.iter().enumerate() {
            let link = FenceChain::create(links.last().cloned(), f.clone(), i as u64 + 1);
            links.push(link);
        }
        (fences, links)
    }
}

impl<B: Backend> Chain for Links<B> {
    const NAME: &'static str = B::NAME;

    fn signal_all(&self, n: usize, order: &[usize]) -> Duration {
        let (fences, links) = self.build(n);
        for link in &links {
            link.enable_sw_signaling();
        }
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let head = links.last().unwrap();
        head.add_callback(move |_| flag.store(true, Ordering::Release))
            .unwrap();
        let start = Instant::now();
        for &i in order {
            fences[i].signal().unwrap();
        }
        // `Locked` completes links from its irq_work thread.
        let _ = head.wait();
        common::wait_flag(&done);
        start.elapsed()
    }

    fn find(&self, n: usize, lookups: &[u64]) -> Duration {
        let (_fences, links) = self.build(n);
        let head = links.last().unwrap();
        let start = Instant::now();
        for &s in lookups {
            black_box(chain_find_seqno(head, s).unwrap());
        }
        start.elapsed()
    }
}

/// The floor: per link one flag, and a countdown the waiter watches; find walks a linked
/// list of `Arc` nodes.
struct Floor;

struct FloorLink {
    prev_seqno: u64,
    prev: Option<Arc<FloorLink>>,
}

impl Chain for Floor {
    const NAME: &'static str = "floor";

    fn signal_all(&self, n: usize, order: &[usize]) -> Duration {
        let flags: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
        let left = AtomicUsize::new(n);
        let done = AtomicBool::new(false);
        let start = Instant::now();
        for &i in order {
            flags[i].store(true, Ordering::Release);
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                done.store(true, Ordering::Release);
            }
        }
        let elapsed = start.elapsed();
        assert!(done.load(Ordering::Acquire));
        elapsed
    }

    fn find(&self, n: usize, lookups: &[u64]) -> Duration {
        let mut head: Option<Arc<FloorLink>> = None;
        for s in 1..=n as u64 {
            head = Some(Arc::new(FloorLink {
                prev_seqno: s - 1,
                prev: head,
            }));
        }
        let head = head.unwrap();
        let start = Instant::now();
        for &s in lookups {
            let mut link = &head;
            while link.prev_seqno >= s {
                link = link.prev.as_ref().unwrap();
            }
            black_box(Arc::clone(link));
        }
        let elapsed = start.elapsed();
        // Drop iteratively: a recursive drop of 65536 nodes would need a big stack.
        let mut next = Arc::into_inner(head);
        while let Some(mut link) = next {
            next = link.prev.take().and_then(Arc::into_inner);
        }
        elapsed
    }
}

fn signal_variant<V: Chain>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    v: &V,
    n: usize,
    order: Order,
) {
    let indices = order.indices(n);
    group.bench_with_input(BenchmarkId::new(V::NAME, n), &n, |b, &n| {
        b.iter_custom(|iters| (0..iters).map(|_| v.signal_all(n, &indices)).sum())
    });
}

fn b8(c: &mut Criterion) {
    for order in [Order::Forward, Order::Backward, Order::Random] {
        let mut group = c.benchmark_group(format!("b8_chain_{}", order.name()));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        for n in SIZES {
            signal_variant(&mut group, &Floor, n, order);
            signal_variant(&mut group, &Links(Rcu), n, order);
            if n == SIZES[0] || matches!(order, Order::Forward) {
                signal_variant(&mut group, &Links(Locked), n, order);
            }
        }
        group.finish();
    }

    let mut group = c.benchmark_group("b8_find_seqno");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for n in SIZES {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xf1d);
        let mut lookups: Vec<u64> = (1..=n as u64).step_by((n / 64).max(1)).collect();
        lookups.shuffle(&mut rng);
        let per_call = |total: Duration| total / lookups.len() as u32;
        fn find_variant<V: Chain>(
            group: &mut BenchmarkGroup<'_, WallTime>,
            v: &V,
            n: usize,
            lookups: &[u64],
            per_call: &dyn Fn(Duration) -> Duration,
        ) {
            group.bench_with_input(BenchmarkId::new(V::NAME, n), &n, |b, &n| {
                b.iter_custom(|iters| (0..iters).map(|_| per_call(v.find(n, lookups))).sum())
            });
        }
        find_variant(&mut group, &Floor, n, &lookups, &per_call);
        find_variant(&mut group, &Links(Rcu), n, &lookups, &per_call);
        find_variant(&mut group, &Links(Locked), n, &lookups, &per_call);
    }
    group.finish();
}

/// `RCU_FENCE_PROFILE=<variant>:<order>:<links>` runs one round and exits, for
/// `valgrind --tool=callgrind` (compare the inclusive count of `Fence::signal` across sizes).
fn profile(spec: &str) {
    let mut parts = spec.split(':');
    let variant = parts.next().unwrap_or("rcu");
    let order = match parts.next() {
        Some("backward") => Order::Backward,
        Some("random") => Order::Random,
        _ => Order::Forward,
    };
    let n: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(4_096);
    let indices = order.indices(n);
    let t = match variant {
        "locked" => Links(Locked).signal_all(n, &indices),
        "floor" => Floor.signal_all(n, &indices),
        _ => Links(Rcu).signal_all(n, &indices),
    };
    println!("{variant} {} {n}: {t:?}", order.name());
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var("RCU_FENCE_PROFILE") {
        return profile(&spec);
    }
    let mut c = common::criterion();
    b8(&mut c);
    c.final_summary();
}
