//! B10 with a writer: one reader's protected read of a replaceable `Arc` (pin + load +
//! deref) while a writer replaces it in a loop, for each reclaimer of the `rcu` crate and
//! arc-swap, in interleaved rounds (two threads on two cores: the ratios swing between
//! runs). The single-threaded reads and the stalled-reader memory figure are the `rcu`
//! package's own bench (`cargo bench -p rcu --bench rcu`).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Times `iters` reads while a writer replaces the value on another thread.
fn reads_under_writer<C: Cell>(cell: &C, iters: u64) -> Batch {
    let (stop, writing) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut v = 0;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                cell.write(v);
                if v == 1 {
                    // Relaxed: a start signal; nothing is published through it.
                    writing.store(true, Ordering::Relaxed);
                }
            }
            cell.flush();
        });
        // The clock starts once the writer is writing, not when its thread was woken: a
        // short round could otherwise end before the writer ran at all.
        while !writing.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
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
    variant(&mut rounds, RcuCell::<Epoch>(Slot::new(Some(Arc::new(0)))));
    variant(&mut rounds, RcuCell::<Hazard>(Slot::new(Some(Arc::new(0)))));
    variant(
        &mut rounds,
        RcuCell::<Reference>(Slot::new(Some(Arc::new(0)))),
    );
    variant(&mut rounds, ArcSwap::from_pointee(0u64));
    rounds.run();
}
