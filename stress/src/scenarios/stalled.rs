//! `stalled`: one reader stalls inside a read-side section while the workers churn
//! containers.
//!
//! A helper thread pins the RCU reclaimer (`rcu::pin`, the library's default: epoch-based)
//! for the first half of the run and then leaves. Meanwhile every worker builds arrays of
//! tracked leaves, enables them, signals the leaves and drops everything. The stalled
//! reader holds back every scheme's garbage: on `Rcu` the memory of each signalled member
//! (the weak reference its array's readers upgrade; the member itself goes with its last
//! handle); on `LockedRcu` each signalled member whole (the array's slot reference); on the
//! classic schemes the memory of every fence put for the last time (the kernel's
//! `dma_fence_free` is `kfree_rcu`). The run samples how much is pending while it is
//! stalled (`rcu::pending`) and checks that all of it is reclaimed once the reader has left
//! (a violation otherwise).
//!
//! Checked: the usual exactly-once, leak and watchdog checks; an array over a failed leaf
//! carries an error (the error rule); nothing pending after the reader leaves and
//! `synchronize_rcu` returns.
//!
//! The unit is an **array**: 64 watched leaves and the array over them built, enabled,
//! signalled, waited for and dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use rcu_fence::{Backend, Fence, FenceArray, Timeline, context_alloc};

use super::net::{Builder, signal_leaf};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{Checks, Op};
use crate::report::Outcome;

/// A stalled RCU reader under container churn.
#[derive(Debug)]
pub(crate) struct Stalled;

/// Leaves per array.
const MEMBERS: usize = 64;

impl Scenario for Stalled {
    const NAME: &'static str = "stalled";
    const ABOUT: &'static str = "a reader stalls in an RCU read-side section while others churn arrays: garbage grows, then is all freed";
    const UNIT: &'static str = "arrays";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let stop = Stop::new(cfg);
        let stalled = AtomicBool::new(true);
        let peak_pending = AtomicUsize::new(0);
        thread::scope(|s| {
            let (stop, stalled, peak_pending) = (&stop, &stalled, &peak_pending);
            let reader = s.spawn(move || {
                let guard = rcu::pin::<rcu::DefaultReclaimer>();
                // Stall for about half the budget (or until the workers stop).
                let half = cfg.seconds.unwrap_or(Duration::from_secs(1)) / 2;
                let until = std::time::Instant::now() + half;
                while std::time::Instant::now() < until && !stop.is_stopped() {
                    let now = rcu::pending::<rcu::DefaultReclaimer>();
                    peak_pending.fetch_max(now, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
                peak_pending.fetch_max(rcu::pending::<rcu::DefaultReclaimer>(), Ordering::Relaxed);
                drop(guard);
                stalled.store(false, Ordering::Release);
            });
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                handles.push(s.spawn(move || worker::<B>(t, cfg, checks, stop)));
            }
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
            reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
        });
        outcome.set_elapsed(stop.elapsed());
        outcome.ops = stop.ops();
        let main = checks.watch.helper("main");
        main.at(Op::Cleanup);
        rcu_fence::synchronize_rcu();
        let left = rcu::pending::<rcu::DefaultReclaimer>();
        main.idle();
        let peak = peak_pending.load(Ordering::Relaxed);
        outcome.notes.push(format!(
            "while a reader was stalled: up to {peak} releases pending; after it left and synchronize_rcu: {left}"
        ));
        checks.violations.check(left == 0, || {
            format!("{left} deferred releases still pending after the stalled reader left")
        });
        checks.finish(&mut outcome);
        outcome
    }
}

fn worker<B: Backend>(t: usize, cfg: &RunConfig, checks: &Arc<Checks>, stop: &Stop) {
    let heart = checks.watch.worker(t);
    let mut rng = cfg.rng(t as u64);
    let mut meter = stop.meter();
    let mut builder = Builder::<B>::new(checks, "stalled");
    let timeline = Timeline::new_in("stalled", B::default());
    let mut seqno = 0;
    while meter.keep_going() {
        heart.at(Op::Build);
        let leaves: Vec<Fence<B>> = (0..MEMBERS)
            .map(|_| {
                seqno += 1;
                builder.leaf_on(&timeline, seqno).fence
            })
            .collect();
        let array =
            FenceArray::create(leaves.clone(), context_alloc(1), 1, false).expect("non-empty");
        array.enable_sw_signaling();
        heart.at(Op::Signal);
        let mut failed = false;
        for leaf in &leaves {
            failed |= signal_leaf(leaf, &mut rng, 64, checks);
        }
        heart.at(Op::Wait);
        let _ = array.wait();
        if failed {
            checks.errors.check(array.error().is_some(), || {
                "an array over a failed leaf".into()
            });
        }
        meter.add(1);
        heart.at(Op::Drop);
        drop(array);
        drop(leaves);
    }
    heart.idle();
}
