//! loom models of the batch protocol that [`Epoch`](crate::Epoch) runs on
//! crossbeam-epoch (`reclaimer::batches`), with a stand-in grace-period
//! provider: a FIFO of closures that any thread may pop and, after releasing
//! the queue's lock, run. That is the shape of crossbeam's collection (take a
//! bag, then run its functions) without crossbeam, which plain `--cfg loom`
//! cannot see. The stand-in has no readers, so it may run a closure as soon as
//! it is polled; what the models check is the counting: `synchronize` must
//! not return while a batch handed over before it is anywhere short of
//! finished (queued, taken by another thread and not started, between two
//! jobs, or running).
//!
//! Run with:
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p rcu --release --target-dir target-loom --lib loom_batches
//! ```
//!
//! Each model finishes at preemption bound 2 (the default here) in about
//! 0.1 s on the project's 2-vCPU machine (release build, process start
//! included), and at bound 4 in at most 0.25 s.
//!
//! The previous protocol (a marker job, then waiting for a count of
//! *running* jobs to read zero), modelled over the same stand-in in the shape
//! of `loom_synchronize_waits_for_batch_run_by_other_writer`, fails at bound 2:
//! `synchronize` returns while the other thread holds the popped bag. Of the
//! mutations tried, ending a batch's count before its jobs run and not
//! counting cascades are caught; handing over no batch when `synchronize`
//! has none of its own is not (the stand-in has no readers: the suite's
//! `synchronize_waits_for_readers` catches that one).

use std::collections::VecDeque;

use super::loom_support::{Signal, model};
use crate::reclaimer::batches::{self, Grace};
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::sync::thread;
use crate::sync::{Arc, Mutex};

type Closure = Box<dyn FnOnce() + Send>;

loom::lazy_static! {
    static ref QUEUE: Mutex<VecDeque<Closure>> = Mutex::new(VecDeque::new());
}

/// The stand-in provider: no readers, a FIFO that callers of `poll` drain
/// one closure at a time, running it outside the lock.
struct StandIn;

impl Grace for StandIn {
    fn after_grace(f: impl FnOnce() + Send + 'static) {
        QUEUE.lock().unwrap().push_back(Box::new(f));
    }

    fn poll() {
        let next = QUEUE.lock().unwrap().pop_front();
        if let Some(f) = next {
            f();
        }
    }
}

fn counting(runs: &Arc<AtomicUsize>) -> crate::reclaimer::Job {
    let runs = runs.clone();
    crate::reclaimer::Job::closure(move || {
        runs.fetch_add(1, SeqCst);
    })
}

/// Another thread hands over a batch of two jobs, then `other_side` runs on
/// it; a `synchronize` called after the hand-over returns only once both
/// jobs have run, wherever that thread is when `synchronize` looks.
fn synchronize_waits_for_batch(other_side: fn()) {
    model(move || {
        let runs = Arc::new(AtomicUsize::new(0));
        let handed = Arc::new(Signal::default());
        let other = {
            let (runs, handed) = (runs.clone(), handed.clone());
            thread::spawn(move || {
                // The second job fills the batch (two under loom): handed over.
                batches::defer::<StandIn>(counting(&runs));
                batches::defer::<StandIn>(counting(&runs));
                handed.set();
                other_side();
            })
        };
        handed.wait();
        batches::synchronize::<StandIn>();
        assert_eq!(runs.load(SeqCst), 2, "synchronize returned early");
        other.join().unwrap();
        batches::synchronize::<StandIn>();
        assert_eq!(runs.load(SeqCst), 2);
        assert_eq!(batches::pending(), 0);
    });
}

/// The other thread collects as a reader does (crossbeam collects inside
/// `pin`): it takes the batch from the provider and moves it to the ready
/// queue, never running it; `synchronize` runs it, whenever the move lands.
#[test]
fn loom_synchronize_waits_for_batch_moved_by_reader() {
    synchronize_waits_for_batch(StandIn::poll);
}

/// The other thread is a writer that flushes: it may take the batch from the
/// provider, then from the ready queue, and run it; `synchronize` waits for
/// it at every point (queued, taken and not started, between its jobs,
/// running).
#[test]
fn loom_synchronize_waits_for_batch_run_by_other_writer() {
    synchronize_waits_for_batch(batches::flush::<StandIn>);
}

/// A job run by another thread defers another (a cascade): a `synchronize`
/// called after the first job's hand-over waits for the cascade too.
#[test]
fn loom_synchronize_waits_for_cascade_on_other_thread() {
    model(|| {
        let runs = Arc::new(AtomicUsize::new(0));
        let handed = Arc::new(Signal::default());
        let other = {
            let (runs, handed) = (runs.clone(), handed.clone());
            thread::spawn(move || {
                let inner = counting(&runs);
                let outer = runs.clone();
                batches::defer::<StandIn>(crate::reclaimer::Job::closure(move || {
                    outer.fetch_add(1, SeqCst);
                    batches::defer::<StandIn>(inner);
                }));
                batches::flush::<StandIn>();
                handed.set();
                batches::flush::<StandIn>();
            })
        };
        handed.wait();
        batches::synchronize::<StandIn>();
        assert_eq!(runs.load(SeqCst), 2, "synchronize missed the cascade");
        other.join().unwrap();
        batches::synchronize::<StandIn>();
        assert_eq!(runs.load(SeqCst), 2);
        assert_eq!(batches::pending(), 0);
    });
}

/// Two threads defer and synchronize at once: each `synchronize` returns
/// only after its own thread's job ran (the grace periods are serialised;
/// either thread may run either batch).
#[test]
fn loom_two_synchronizes() {
    model(|| {
        let mine = Arc::new(AtomicUsize::new(0));
        let theirs = Arc::new(AtomicUsize::new(0));
        let other = {
            let theirs = theirs.clone();
            thread::spawn(move || {
                batches::defer::<StandIn>(counting(&theirs));
                batches::synchronize::<StandIn>();
                assert_eq!(theirs.load(SeqCst), 1);
            })
        };
        batches::defer::<StandIn>(counting(&mine));
        batches::synchronize::<StandIn>();
        assert_eq!(mine.load(SeqCst), 1);
        other.join().unwrap();
        assert_eq!(batches::pending(), 0);
    });
}

/// A writer's `defer` runs the oldest ready batches while more than the
/// backlog (one under loom) are ready, then those its own thread handed over,
/// and leaves another thread's within the backlog to it. `flush` runs every
/// ready batch, whoever handed it over.
#[test]
fn loom_defer_runs_its_own_batches_and_the_backlog() {
    model(|| {
        let theirs = Arc::new(AtomicUsize::new(0));
        let mine = Arc::new(AtomicUsize::new(0));
        let other = {
            let theirs = theirs.clone();
            thread::spawn(move || {
                // Two batches of two jobs, handed over; nothing is ready yet.
                for _ in 0..4 {
                    batches::defer::<StandIn>(counting(&theirs));
                }
            })
        };
        other.join().unwrap();
        assert_eq!(theirs.load(SeqCst), 0);
        // Both of the other thread's batches become ready: one over the backlog.
        StandIn::poll();
        StandIn::poll();
        batches::defer::<StandIn>(counting(&mine));
        batches::defer::<StandIn>(counting(&mine));
        assert_eq!(
            theirs.load(SeqCst),
            2,
            "the hand-over ran no batch over the backlog, or another's within it"
        );
        assert_eq!(mine.load(SeqCst), 0, "a batch ran before its grace period");
        // Mine becomes ready behind theirs: two over a backlog of one again. The
        // next hand-over runs the oldest, then its own.
        StandIn::poll();
        batches::defer::<StandIn>(counting(&mine));
        batches::defer::<StandIn>(counting(&mine));
        assert_eq!(theirs.load(SeqCst), 4);
        assert_eq!(mine.load(SeqCst), 2, "a hand-over left its own ready batch");
        batches::flush::<StandIn>();
        assert_eq!((theirs.load(SeqCst), mine.load(SeqCst)), (4, 4));
        assert_eq!(batches::pending(), 0);
    });
}
