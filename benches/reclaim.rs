//! B10 with a writer: one reader's protected read of a replaceable `Arc` (pin + load +
//! deref) while a writer replaces it in a loop, for each reclaimer of the `rcu` crate and
//! arc-swap, beside a floor with the same cache-line traffic and no reclamation, in
//! interleaved rounds (two threads on two cores: the ratios swing between
//! runs). The single-threaded reads and the stalled-reader memory figure are the `rcu`
//! package's own bench (`cargo bench -p rcu --bench rcu`).

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use arc_swap::ArcSwap;
use common::rounds::{Batch, Rounds};
use rcu::{Epoch, Hazard, Reclaimer, Reference, Slot};

/// B10's shared workload: a replaceable `Arc<u64>` that a reader reads.
trait Cell: Send + Sync + 'static {
    /// The variant's name in benchmark ids.
    const NAME: &'static str;
    /// One protected read.
    fn read(&self) -> u64;
    /// Replaces the value (the old one is reclaimed as the scheme allows).
    fn write(&self, v: u64);
    /// Offers retired values to the reclaimer without waiting.
    fn flush(&self) {}
}

struct RcuCell<R: Reclaimer>(Slot<Arc<u64>, R>);

macro_rules! rcu_cell {
    ($r:ty, $name:literal) => {
        impl Cell for RcuCell<$r> {
            const NAME: &'static str = $name;
            fn read(&self) -> u64 {
                let mut guard = rcu::pin::<$r>();
                self.0.load(&mut guard).map_or(0, |v| **v)
            }
            fn write(&self, v: u64) {
                self.0.replace(Some(Arc::new(v)));
            }
            fn flush(&self) {
                rcu::flush::<$r>();
            }
        }
    };
}

rcu_cell!(Epoch, "epoch");
rcu_cell!(Hazard, "hazard");
rcu_cell!(Reference, "reference");

impl Cell for ArcSwap<u64> {
    const NAME: &'static str = "arc_swap";
    fn read(&self) -> u64 {
        **self.load()
    }
    fn write(&self, v: u64) {
        self.store(Arc::new(v));
    }
}

/// The floor beside a writer: the same cache-line traffic with no reclamation at all. The
/// writer writes a value into a slot of a fixed pool that lives for the whole run, then
/// publishes that slot's index; the reader reads the index and then the value, as a
/// protected read loads the pointer and then the fresh value behind it.
struct Floor {
    pool: Box<[AtomicU64]>,
    current: AtomicUsize,
}

impl Floor {
    /// Slots in the pool: enough that the writer is rarely rewriting the slot being read.
    const POOL: usize = 64;

    fn new() -> Self {
        Floor {
            pool: (0..Self::POOL).map(|_| AtomicU64::new(0)).collect(),
            current: AtomicUsize::new(0),
        }
    }
}

impl Cell for Floor {
    const NAME: &'static str = "floor";
    fn read(&self) -> u64 {
        // Acquire: pairs with the Release publishing the index, so the value written
        // before it is the one read (as a protected read sees the initialised value).
        let i = self.current.load(Ordering::Acquire);
        // Relaxed: ordered by the Acquire above.
        self.pool[i].load(Ordering::Relaxed)
    }
    fn write(&self, v: u64) {
        let i = v as usize % Self::POOL;
        // Relaxed: published by the Release store of the index below.
        self.pool[i].store(v, Ordering::Relaxed);
        self.current.store(i, Ordering::Release);
    }
}

/// Times `iters` reads while a writer replaces the value on another thread.
fn reads_under_writer<C: Cell>(cell: &C, iters: u64) -> Batch {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            let mut v = 0;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                cell.write(v);
            }
            cell.flush();
        });
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            black_box(cell.read());
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        Batch::iters(elapsed, iters)
    })
}

fn variant<C: Cell>(rounds: &mut Rounds<'_>, cell: C) {
    rounds.add(C::NAME, "1reader_1writer", move |iters| {
        reads_under_writer(&cell, iters)
    });
}

fn main() {
    common::setup();
    let mut rounds = Rounds::new("b10_rcu_read");
    variant(&mut rounds, Floor::new());
    variant(&mut rounds, RcuCell::<Epoch>(Slot::new(Some(Arc::new(0)))));
    variant(&mut rounds, RcuCell::<Hazard>(Slot::new(Some(Arc::new(0)))));
    variant(
        &mut rounds,
        RcuCell::<Reference>(Slot::new(Some(Arc::new(0)))),
    );
    variant(&mut rounds, ArcSwap::from_pointee(0u64));
    rounds.run();
}
