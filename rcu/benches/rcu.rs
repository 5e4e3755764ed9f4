//! B10: the read side of each reclaimer (epoch, hazard pointers, the lock-based reference)
//! against arc-swap and a bare `Arc` read, alone; and the memory a stalled reader makes the
//! writer hold back. The same reads beside a writer are measured by the fence package's
//! `reclaim` bench, in interleaved rounds (two threads on two cores swing between runs).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use rcu::{Epoch, Hazard, Reclaimer, Reference, Slot};
use serde_json::json;

/// Values alive right now (made minus dropped), for the stalled-reader figure.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The value behind the slot: counts itself.
struct Value(u64);

impl Value {
    fn new(v: u64) -> Arc<Self> {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(Value(v))
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// B10's shared workload: a replaceable `Arc<Value>` that readers read.
trait Cell: Sync {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// A cell holding `Value(0)`.
    fn new() -> Self;
    /// One protected read.
    fn read(&self) -> u64;
    /// Replaces the value (the old one is reclaimed as the scheme allows).
    fn write(&self, v: u64);
    /// Holds a protected read until `release` is set (the stalled reader).
    fn stall(&self, stalled: &AtomicBool, release: &AtomicBool);
    /// Offers retired values to the reclaimer without waiting.
    fn flush(&self) {}
    /// Values retired but not yet reclaimed, if the scheme tracks them.
    fn pending(&self) -> Option<usize> {
        None
    }
}

struct RcuCell<R: Reclaimer>(Slot<Arc<Value>, R>);

macro_rules! rcu_cell {
    ($r:ty, $name:literal) => {
        impl Cell for RcuCell<$r> {
            const NAME: &'static str = $name;
            fn new() -> Self {
                RcuCell(Slot::new(Some(Value::new(0))))
            }
            fn read(&self) -> u64 {
                let mut guard = rcu::pin::<$r>();
                self.0.load(&mut guard).map_or(0, |v| v.0)
            }
            fn write(&self, v: u64) {
                self.0.replace(Some(Value::new(v)));
            }
            fn stall(&self, stalled: &AtomicBool, release: &AtomicBool) {
                let mut guard = rcu::pin::<$r>();
                let held = self.0.load(&mut guard).map(|v| v.0);
                stalled.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                black_box(held);
            }
            fn flush(&self) {
                rcu::flush::<$r>();
            }
            fn pending(&self) -> Option<usize> {
                Some(rcu::pending::<$r>())
            }
        }
    };
}

rcu_cell!(Epoch, "epoch");
rcu_cell!(Hazard, "hazard");
rcu_cell!(Reference, "reference");

struct ArcSwapCell(ArcSwap<Value>);

impl Cell for ArcSwapCell {
    const NAME: &'static str = "arc_swap";
    fn new() -> Self {
        ArcSwapCell(ArcSwap::new(Value::new(0)))
    }
    fn read(&self) -> u64 {
        self.0.load().0
    }
    fn write(&self, v: u64) {
        self.0.store(Value::new(v));
    }
    fn stall(&self, stalled: &AtomicBool, release: &AtomicBool) {
        let held = self.0.load();
        stalled.store(true, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        black_box(held.0);
    }
}

/// The floor: an `Arc` that never changes, read with no protection at all.
struct Floor(Arc<Value>);

impl Cell for Floor {
    const NAME: &'static str = "floor";
    fn new() -> Self {
        Floor(Value::new(0))
    }
    fn read(&self) -> u64 {
        black_box(&self.0).0
    }
    fn write(&self, _v: u64) {}
    fn stall(&self, _stalled: &AtomicBool, _release: &AtomicBool) {
        unreachable!("the floor has no writer")
    }
}

/// Times `iters` reads.
fn reads<C: Cell>(cell: &C, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(cell.read());
    }
    start.elapsed()
}

fn read_variant<C: Cell>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let cell = C::new();
    group.bench_function(BenchmarkId::new(C::NAME, "1reader"), |b| {
        b.iter_custom(|iters| reads(&cell, iters))
    });
}

/// Values the writer holds back after `writes` replacements while one reader is stalled.
fn stalled<C: Cell>(writes: u64) -> serde_json::Value {
    let cell = C::new();
    let (stalled, release) = (AtomicBool::new(false), AtomicBool::new(false));
    let before = LIVE.load(Ordering::SeqCst);
    let result = std::thread::scope(|s| {
        s.spawn(|| cell.stall(&stalled, &release));
        while !stalled.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        for v in 1..=writes {
            cell.write(v);
        }
        cell.flush();
        let held = LIVE.load(Ordering::SeqCst) - before;
        let pending = cell.pending();
        release.store(true, Ordering::SeqCst);
        (held, pending)
    });
    cell.flush();
    let value_bytes = std::mem::size_of::<Value>() + 2 * std::mem::size_of::<usize>();
    println!(
        "b10_stalled_reader {:<10} values held after {writes} writes: {:>7} (~{} KiB){}",
        C::NAME,
        result.0,
        result.0 as usize * value_bytes / 1024,
        result
            .1
            .map(|p| format!(", rcu::pending {p}"))
            .unwrap_or_default()
    );
    json!({ "name": C::NAME, "writes": writes, "values_held": result.0, "bytes_held": result.0 as usize * value_bytes, "pending": result.1 })
}

fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("RCU_FENCE_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            exe.ancestors()
                .nth(3)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"))
                .join("bench-report")
        }
    };
    std::fs::create_dir_all(&dir).expect("create the results directory");
    dir
}

fn main() {
    let quick = std::env::var_os("RCU_FENCE_BENCH_QUICK").is_some();
    let c = Criterion::default()
        .without_plots()
        .nresamples(2_000)
        .sample_size(if quick { 10 } else { 20 });
    let mut c = if quick {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
    } else {
        c.warm_up_time(Duration::from_millis(400))
            .measurement_time(Duration::from_millis(1_500))
    }
    .configure_from_args();
    let listing = std::env::args().any(|a| a == "--list");

    if !listing {
        let writes = 100_000;
        let stalls = vec![
            stalled::<RcuCell<Epoch>>(writes),
            stalled::<RcuCell<Hazard>>(writes),
            stalled::<RcuCell<Reference>>(writes),
            stalled::<ArcSwapCell>(writes),
        ];
        let path = out_dir().join("rcu_stalled.json");
        std::fs::write(path, serde_json::to_string_pretty(&json!(stalls)).unwrap())
            .expect("write results");
    }

    let mut group = c.benchmark_group("b10_rcu_read");
    read_variant::<Floor>(&mut group);
    read_variant::<RcuCell<Epoch>>(&mut group);
    read_variant::<RcuCell<Hazard>>(&mut group);
    read_variant::<RcuCell<Reference>>(&mut group);
    read_variant::<ArcSwapCell>(&mut group);
    group.finish();
    c.final_summary();
}
