//! B8: a fence chain with every link enabled and a waiter on the newest link; its fences
//! signalled forward, backward or in random order (the kernel's selftest shape), and
//! `chain_find_seqno` on a pending chain.
//!
//! The kernel's chain re-arms its callback on the next pending link each time one fires,
//! which is quadratic when fences signal newest first (21 ms forward vs 17 s backward at
//! 4096 links in the kernel's selftest). `Locked` does the same, so one backward run at
//! 4096 links takes seconds: criterion runs a (variant, order) at a size only if a probe
//! there (the best of up to three runs) took at most `CRITERION_BUDGET`, and skips larger
//! sizes once one was slower, or when the growth seen between the smaller sizes (quadratic
//! when only one is known) predicts more than `PREDICTED_BUDGET`. The skipped ids are
//! recorded for the report. The ratios that show the re-arm (backward ÷
//! forward at 4096 links, t(4096) ÷ t(1024) backward) come from `b8_rearm`: interleaved
//! rounds of one or a few runs each, every backend side by side.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::for_each_backend;
use common::rounds::{Batch, Rounds};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rcu_fence::{Backend, Fence, FenceChain, Timeline, chain_find_seqno};
use serde_json::json;

/// The chain lengths of the signalling groups.
const SIZES: [usize; 3] = [1_024, 4_096, 65_536];
/// The chain lengths of `b8_find_seqno`.
const FIND_SIZES: [usize; 2] = [4_096, 65_536];
/// The sizes of the re-arm comparison.
const REARM_SIZES: [usize; 2] = [1_024, 4_096];
/// Criterion runs a size only if a probe there took at most this long.
const CRITERION_BUDGET: Duration = Duration::from_millis(250);
/// ... and probes it only if the growth seen so far predicts at most this.
const PREDICTED_BUDGET: Duration = Duration::from_secs(3);

/// The order in which the links' own fences are signalled.
#[derive(Clone, Copy)]
enum Order {
    Forward,
    Backward,
    Random,
}

impl Order {
    const ALL: [Order; 3] = [Order::Forward, Order::Backward, Order::Random];

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
trait Chain: Send + Sync + 'static {
    /// The variant's name in benchmark ids.
    fn name(&self) -> &'static str;
    /// Build `n` links, enable each, a waiter on the newest (untimed); time signalling every
    /// fence in `order` until the waiter has run.
    fn signal_all(&self, n: usize, order: &[usize]) -> Duration;
    /// Build `n` pending links (untimed); time `lookups.len()` finds.
    fn find(&self, n: usize, lookups: &[u64]) -> Duration;
}

struct Links<B: Backend>(B);

impl<B: Backend> Links<B> {
    fn new() -> Self {
        Links(B::default())
    }

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
    fn name(&self) -> &'static str {
        B::NAME
    }

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
        let elapsed = start.elapsed();
        // Every backend completes the chain within the last fence's `signal`.
        assert!(done.load(Ordering::Acquire));
        elapsed
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
    fn name(&self) -> &'static str {
        "floor"
    }

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

/// Benchmarks `v` in `order` at every size within the budget; records the sizes it skips
/// in `skipped`.
fn signal_variant<V: Chain>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    skipped: &mut Vec<serde_json::Value>,
    v: &V,
    order: Order,
) {
    let group_id = format!("b8_chain_{}", order.name());
    let mut skip = |n: usize, m: usize, t: Duration, predicted: Option<Duration>| {
        println!(
            "{group_id}/{}/{n}: skipped (one run at {m} links took {t:?}; predicted {predicted:?})",
            v.name()
        );
        skipped.push(json!({
            "group": group_id, "variant": v.name(), "param": n.to_string(),
            "from_param": m.to_string(), "from_ns": t.as_nanos() as f64,
            "predicted_ns": predicted.map(|p| p.as_nanos() as f64),
        }));
    };
    // (links, best probe time) of the sizes probed so far.
    let mut probed: Vec<(usize, Duration)> = Vec::new();
    for n in SIZES {
        if !common::selected(&format!("{group_id}/{}/{n}", v.name())) {
            continue;
        }
        if let Some(&(m, t)) = probed.last() {
            let predicted = predict(&probed, n);
            if t > CRITERION_BUDGET || predicted > PREDICTED_BUDGET {
                skip(n, m, t, Some(predicted));
                continue;
            }
        }
        let indices = order.indices(n);
        let one = if common::listing() {
            Duration::ZERO
        } else {
            probe(v, n, &indices)
        };
        probed.push((n, one));
        if one > CRITERION_BUDGET {
            skip(n, n, one, None);
            continue;
        }
        group.bench_with_input(BenchmarkId::new(v.name(), n), &n, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| v.signal_all(n, &indices)).sum())
        });
    }
}

/// The best of up to three runs (one if a run takes a noticeable part of the budget): a
/// single cold run on a loaded machine can be several times too slow.
fn probe<V: Chain>(v: &V, n: usize, indices: &[usize]) -> Duration {
    let first = v.signal_all(n, indices);
    if first > CRITERION_BUDGET / 4 {
        return first;
    }
    (0..2)
        .map(|_| v.signal_all(n, indices))
        .fold(first, Duration::min)
}

/// The time one run at `n` links is expected to take: the last probe, grown by the exponent
/// seen between the last two (between 1 and 2), or quadratically if only one is known.
fn predict(probed: &[(usize, Duration)], n: usize) -> Duration {
    let (m, t) = probed[probed.len() - 1];
    let exponent = match probed {
        [.., (m0, t0), (m1, t1)] if t0 > &Duration::ZERO => {
            (t1.as_secs_f64() / t0.as_secs_f64()).ln() / (*m1 as f64 / *m0 as f64).ln()
        }
        _ => 2.0,
    };
    t.mul_f64((n as f64 / m as f64).powf(exponent.clamp(1.0, 2.0)))
}

fn b8_signal(c: &mut Criterion) {
    let mut skipped = Vec::new();
    for order in Order::ALL {
        let mut group = c.benchmark_group(format!("b8_chain_{}", order.name()));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        signal_variant(&mut group, &mut skipped, &Floor, order);
        for_each_backend!(|B| signal_variant(&mut group, &mut skipped, &Links::<B>::new(), order));
        group.finish();
    }
    if !common::listing() {
        common::write_json("b8_skipped", &serde_json::Value::Array(skipped));
    }
}

fn find_variant<V: Chain>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    v: &V,
    n: usize,
    lookups: &[u64],
) {
    group.bench_with_input(BenchmarkId::new(v.name(), n), &n, |b, &n| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| v.find(n, lookups) / lookups.len() as u32)
                .sum()
        })
    });
}

fn b8_find(c: &mut Criterion) {
    let mut group = c.benchmark_group("b8_find_seqno");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for n in FIND_SIZES {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xf1d);
        let mut lookups: Vec<u64> = (1..=n as u64).step_by((n / 64).max(1)).collect();
        lookups.shuffle(&mut rng);
        find_variant(&mut group, &Floor, n, &lookups);
        for_each_backend!(|B| find_variant(&mut group, &Links::<B>::new(), n, &lookups));
    }
    group.finish();
}

fn rearm_variant<V: Chain>(rounds: &mut Rounds<'_>, v: V) {
    let v = Arc::new(v);
    for n in REARM_SIZES {
        for order in [Order::Forward, Order::Backward] {
            let (v, indices) = (v.clone(), order.indices(n));
            rounds.add(v.name(), format!("{}_{n}", order.name()), move |iters| {
                let t = (0..iters).map(|_| v.signal_all(n, &indices)).sum();
                Batch::iters(t, iters)
            });
        }
    }
}

/// The re-arm comparison: every backend, forward and backward at 1024 and 4096 links,
/// interleaved. An iteration of a second or more runs once per round (its calibration is
/// one run, which is also its warm-up).
fn b8_rearm() {
    let mut rounds = Rounds::new("b8_rearm").rounds(if common::quick() { 3 } else { 5 });
    for_each_backend!(|B| rearm_variant(&mut rounds, Links::<B>::new()));
    rounds.run();
}

/// `RCU_FENCE_PROFILE=<variant>:<order>:<links>` runs one round and exits, for
/// `valgrind --tool=callgrind` (compare the inclusive count of `Fence::signal` across sizes).
/// `<variant>` is a backend's name or `floor`. `RCU_FENCE_PROFILE=merge:<backend>:<rounds>`
/// instead merges a chain of `MERGE_POINTS` pending points of one timeline `rounds` times
/// (a timeline syncobj dependency, as B11's jobs merge them).
fn profile(spec: &str) {
    if let Some(rest) = spec.strip_prefix("merge:") {
        let mut parts = rest.split(':');
        let backend = parts.next().unwrap_or("rcu");
        let rounds: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(1_000);
        let mut ran = false;
        for_each_backend!(|B| if B::NAME == backend {
            merge_points::<B>(rounds);
            ran = true;
        });
        assert!(ran, "no backend {backend}");
        return;
    }
    let mut parts = spec.split(':');
    let variant = parts.next().unwrap_or("rcu");
    let order = match parts.next() {
        Some("backward") => Order::Backward,
        Some("random") => Order::Random,
        _ => Order::Forward,
    };
    let n: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(4_096);
    let indices = order.indices(n);
    let mut variants: Vec<Box<dyn Chain>> = vec![Box::new(Floor)];
    for_each_backend!(|B| variants.push(Box::new(Links::<B>::new())));
    let v = variants
        .iter()
        .find(|v| v.name() == variant)
        .unwrap_or_else(|| panic!("no variant {variant}"));
    let t = v.signal_all(n, &indices);
    println!("{variant} {} {n}: {t:?}", order.name());
}

/// Pending points in the `merge` profile's chain.
const MERGE_POINTS: u64 = 100;

/// Merges a chain of `MERGE_POINTS` pending points `rounds` times.
fn merge_points<B: Backend>(rounds: usize) {
    let tl = Timeline::<B>::new_in("merge", B::default());
    let points: Vec<Fence<B>> = (1..=MERGE_POINTS).map(|s| tl.fence(s)).collect();
    let head = points
        .iter()
        .fold(None, |prev: Option<Fence<B>>, f| {
            Some(FenceChain::create(prev, f.clone(), f.seqno()))
        })
        .expect("points");
    for _ in 0..rounds {
        let merged = rcu_fence::merge(std::slice::from_ref(&head)).expect("merge");
        assert!(merged.ptr_eq(&points[points.len() - 1]));
    }
    println!("merge {} x{rounds}", B::NAME);
}

fn main() {
    common::setup();
    if let Ok(spec) = std::env::var("RCU_FENCE_PROFILE") {
        return profile(&spec);
    }
    let mut c = common::criterion();
    b8_signal(&mut c);
    b8_find(&mut c);
    c.final_summary();
    b8_rearm();
}
