//! Batches of deferred jobs handed to a grace-period provider, and the count
//! of batches in flight that `synchronize` waits for.
//!
//! [`Epoch`](crate::Epoch) uses this with crossbeam-epoch as the provider
//! ([`Grace`]); the loom models use a stand-in provider, so the protocol below
//! is checked without crossbeam (which plain `--cfg loom` cannot see).
//!
//! # Protocol
//!
//! State: per thread, the jobs deferred and not yet handed over (the *local
//! batch*); globally, a [`Phases`] count of batches *in flight* (handed over
//! and not yet finished), the *ready* queue of batches whose grace period has
//! elapsed, a count of cascades, and the pending count.
//!
//! - **defer**: push the job on the local batch; when it holds `BATCH` jobs,
//!   hand it over, then drain *its own*.
//! - **hand over**: enter the in-flight count (the batch keeps its
//!   [`Phase`]), then give the provider a closure that, once every reader now
//!   inside a section has left, moves the batch to the ready queue. That
//!   closure runs no user code: the provider may run it on a reader's thread
//!   (crossbeam collects inside every 128th `pin`), and readers must not pay
//!   for, or be interrupted by, writers' destructors.
//! - **drain** (writers only: `defer` after a hand-over, `flush`,
//!   `synchronize`; never from inside a job): pop ready batches one at a
//!   time and run each. `flush` and `synchronize` run every ready batch;
//!   `defer` runs those its own thread handed over (each batch records its
//!   owner), and others' only while more than `BACKLOG` wait, oldest
//!   first (so it never looks through more than `BACKLOG` for its own).
//!   A thread so frees what it retired, as the kernel invokes RCU
//!   callbacks on the CPU that queued them: the allocator takes a freed
//!   block back on the thread that holds its cache, not across threads
//!   (with one global queue, two writers ran each other's batches about
//!   half the time, and glibc's cross-thread frees cost `Rcu` a third of
//!   its throughput in the stress `stalled` run). The backlog bound keeps
//!   the batches of a thread that exited or stopped deferring from waiting
//!   for ever.
//! - **run**: run each job with its panic caught, counting each done; if the
//!   jobs deferred more work on this thread (a cascade), hand that over too
//!   and count the cascade; last, exit the in-flight count (a drop guard, so
//!   it happens whatever the jobs did).
//! - **flush**: hand over the local batch (if empty, just let the provider
//!   move what is due), then drain.
//! - **synchronize**: hand over the local batch (even an empty one: its
//!   running is the provider's grace period for the readers inside now),
//!   then run a grace period on the in-flight count ([`Phases::wait`]) while
//!   polling the provider and draining; repeat while the cascade count moved
//!   during the round (at most `MAX_ROUNDS` rounds, so other threads'
//!   endless cascades cannot hold it).
//! - **thread exit**: the local batch is handed over by its destructor (no
//!   drain: user code does not run in a thread-local destructor).
//!
//! # Why synchronize cannot miss a batch
//!
//! A batch is counted in flight *before* the provider can see it and stops
//! being counted only *after* its last job has returned, on whatever thread
//! ran it. Between the two it may sit in a provider's queue, be taken by
//! another thread's collection and wait there for that thread to be
//! scheduled, sit in the ready queue, or be running: it is counted
//! throughout. `synchronize` returns
//! only after both in-flight counters have been read at zero after its
//! fence, so every batch handed over before the call has finished
//! ([`Phases`] carries the proof). (The earlier protocol waited for a marker
//! job and then for a count of *running* jobs; a bag that another thread had
//! taken but not started, or that was between two of its jobs, was counted
//! nowhere, and `synchronize` could return before it ran.)
//!
//! # Races considered
//!
//! - *Jobs in another live thread's local batch*: not handed over, so not
//!   waited for; covered once that thread fills its batch, calls `flush` or
//!   `synchronize`, or exits (joined threads are therefore always covered).
//! - *A cascade*: a job that defers puts the new job on the local batch of
//!   the thread running it; `run` hands that over before its own batch exits
//!   and bumps the cascade count, so a `synchronize` that waited for the
//!   batch sees the count move and runs another round, which waits for the
//!   cascade.
//! - *Ready batches and no writer*: they wait in the ready queue until some
//!   thread defers (and fills a batch), flushes or synchronizes; `pending`
//!   counts them meanwhile. Readers never run them.
//! - *Two drainers*: each pops whole batches under the queue's lock, so a
//!   batch runs once, whoever owns it; a batch popped by one is still
//!   counted in flight until it finishes, so the other's `synchronize`
//!   waits for it.
//! - *A batch handed over while synchronize waits*: it joins whichever
//!   counter the phase names; if it is the one being drained, the wait may
//!   also wait for it (harmless), otherwise it is left for a later call.
//! - *A job panics*: caught ([`FirstPanic`]); the rest of the batch runs;
//!   nothing is left counted; the payload is kept in a thread-local until
//!   the outermost `rcu` call on that thread resumes it (see the
//!   `reclaimer` module docs).
//! - *synchronize from a job*: it would wait for its own batch; the
//!   per-thread `running` flag detects it and panics.
//!
//! # Orderings
//!
//! The in-flight count's orderings are [`Phases`]'s: its Release exit after
//! the last job pairs with the Acquire reads in `wait`, so a `synchronize`
//! that returns sees every effect of the jobs it waited for, including their
//! cascade-count increments (which are `Relaxed`, ordered by that pair). The
//! hand-off of the batch to the ready queue is the provider's (crossbeam's
//! epoch fences); from the ready queue to the thread that runs it, the queue
//! mutex's.

use core::cell::{Cell, RefCell};

use std::collections::VecDeque;
use std::sync::PoisonError;

use super::phases::{Phase, Phases};
use super::{FirstPanic, Job, Pending, tally};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::thread::yield_now;

/// A grace-period provider: runs a closure once no reader that is now in a
/// read-side section can still be in it.
pub(crate) trait Grace {
    /// Runs `f` once, on any thread, after every reader now inside a section
    /// has left, provided [`poll`](Grace::poll) keeps being called.
    fn after_grace(f: impl FnOnce() + Send + 'static);

    /// Lets due work run, possibly on this thread.
    fn poll();
}

/// Jobs per local batch: one is handed over when it holds this many.
#[cfg(not(loom))]
const BATCH: usize = 64;
#[cfg(loom)]
const BATCH: usize = 2;

/// Ready batches a `defer` leaves to their owners: beyond this many, it runs
/// others' too, oldest first.
#[cfg(not(loom))]
const BACKLOG: usize = 16;
#[cfg(loom)]
const BACKLOG: usize = 1;

/// Bound on `synchronize`'s rounds, so that other threads' endless cascades
/// cannot keep it looping.
#[cfg(not(loom))]
const MAX_ROUNDS: usize = 64;
#[cfg(loom)]
const MAX_ROUNDS: usize = 4;

/// The global state.
struct Shared {
    /// Batches handed over and not yet finished.
    in_flight: Phases,
    /// Batches whose grace period has elapsed, oldest first, waiting for a
    /// writer to run them.
    ready: Mutex<VecDeque<Batch>>,
    /// Batches so far whose jobs deferred more work when they ran.
    cascades: AtomicUsize,
    pending: Pending,
}

#[cfg(not(loom))]
impl Shared {
    const fn new() -> Self {
        Self {
            in_flight: Phases::new(),
            ready: Mutex::new(VecDeque::new()),
            cascades: AtomicUsize::new(0),
            pending: Pending::new(),
        }
    }
}

#[cfg(loom)]
impl Shared {
    fn new() -> Self {
        Self {
            in_flight: Phases::new(),
            ready: Mutex::new(VecDeque::new()),
            cascades: AtomicUsize::new(0),
            pending: Pending::new(),
        }
    }
}

crate::sync::global! {
    fn shared() -> &'static Shared = Shared::new();
}

/// A provider's `hand_over`.
type HandOver = fn(Vec<Job>);

/// This thread's side of the protocol.
struct Local {
    /// Jobs deferred on this thread and not yet handed over.
    jobs: RefCell<Vec<Job>>,
    /// How the jobs are handed over (the provider they were deferred
    /// through), for the destructor.
    hand_over: Cell<Option<HandOver>>,
    /// Set while this thread runs jobs.
    running: Cell<bool>,
    /// The first panic caught from a job on this thread, until the
    /// outermost `rcu` call resumes it.
    caught: RefCell<FirstPanic>,
}

impl Drop for Local {
    /// Thread exit: hand the local batch over.
    fn drop(&mut self) {
        let jobs = core::mem::take(self.jobs.get_mut());
        if let (false, Some(hand_over)) = (jobs.is_empty(), self.hand_over.get()) {
            hand_over(jobs);
        }
        core::mem::take(self.caught.get_mut()).discard();
    }
}

crate::sync::thread_local! {
    static LOCAL: Local = const {
        Local {
            jobs: RefCell::new(Vec::new()),
            hand_over: Cell::new(None),
            running: Cell::new(false),
            caught: RefCell::new(FirstPanic::new()),
        }
    };
}

/// A handed-over batch: its jobs and its place in the in-flight count.
struct Batch {
    jobs: Vec<Job>,
    phase: Phase,
    /// The thread that handed it over ([`owner_id`]).
    owner: usize,
}

/// This thread's id as a batch owner: the address of its `LOCAL`, unique
/// among live threads; 0 (no live thread's) once it is being torn down.
fn owner_id() -> usize {
    LOCAL
        .try_with(|l| core::ptr::from_ref(l) as usize)
        .unwrap_or(0)
}

/// Exits the in-flight count when dropped.
struct Finished(Option<Phase>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(phase) = self.0.take() {
            shared().in_flight.exit(phase);
        }
    }
}

/// Sets this thread's `running` flag for its lifetime, restoring the previous
/// value on drop.
struct Running(bool);

impl Running {
    fn enter() -> Self {
        Self(LOCAL.try_with(|l| l.running.replace(true)).unwrap_or(false))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| l.running.set(self.0));
    }
}

/// Whether this thread is running jobs (so an `rcu` call now is nested in
/// one).
fn is_running() -> bool {
    LOCAL.try_with(|l| l.running.get()).unwrap_or(false)
}

/// Defers `job` through provider `G`.
pub(crate) fn defer<G: Grace>(job: Job) {
    // Counted globally when its batch is handed over: one shared write per
    // batch, not one per job from every writer.
    tally::bump();
    let mut job = Some(job);
    let full = LOCAL.try_with(|l| {
        l.hand_over.set(Some(hand_over::<G>));
        let mut jobs = l.jobs.borrow_mut();
        if jobs.capacity() == 0 {
            // A fresh batch (the last one was handed over): one allocation of its
            // whole size, not a series of doublings that each copy and free.
            jobs.reserve_exact(BATCH);
        }
        jobs.extend(job.take());
        jobs.len() >= BATCH
    });
    match full {
        Ok(true) => {
            hand_over_local::<G>();
            drain_own();
            // Only a drain runs jobs, so only it can have caught a panic to
            // resume (every outermost call that drains resumes its own).
            resume_caught();
        }
        Ok(false) => {}
        // The thread is being torn down (the job is still here): hand it
        // over on its own.
        Err(_) => hand_over::<G>(job.into_iter().collect()),
    }
}

/// Hands this thread's local batch over; `false` if it was empty.
fn hand_over_local<G: Grace>() -> bool {
    let jobs = take_local();
    if jobs.is_empty() {
        return false;
    }
    hand_over::<G>(jobs);
    true
}

/// How this thread's jobs are handed over (set by its first `defer`).
fn hand_over_fn() -> Option<HandOver> {
    LOCAL.try_with(|l| l.hand_over.get()).ok().flatten()
}

/// This thread's local batch, leaving it empty.
fn take_local() -> Vec<Job> {
    LOCAL
        .try_with(|l| core::mem::take(&mut *l.jobs.borrow_mut()))
        .unwrap_or_default()
}

/// Counts `jobs` in flight and gives them to the provider.
fn hand_over<G: Grace>(jobs: Vec<Job>) {
    shared().pending.add_many(jobs.len());
    let phase = shared().in_flight.enter();
    let batch = Batch {
        jobs,
        phase,
        owner: owner_id(),
    };
    G::after_grace(move || make_ready(batch));
}

/// The provider's closure: the batch's grace period has elapsed. Runs no
/// user code.
fn make_ready(batch: Batch) {
    lock_ready().push_back(batch);
}

fn lock_ready() -> crate::sync::MutexGuard<'static, VecDeque<Batch>> {
    // Nothing panics while the queue is locked (jobs run after it is
    // released), and a poisoned deque would still be consistent.
    shared()
        .ready
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs ready batches until none is left, unless this thread is running jobs
/// (then the outermost drain goes on with the queue).
fn drain() {
    drain_with(VecDeque::pop_front, false);
}

/// Runs the oldest ready batches while more than `BACKLOG` are ready, then
/// those this thread handed over, unless this thread is running jobs.
fn drain_own() {
    let me = owner_id();
    drain_with(
        |ready| {
            if ready.len() > BACKLOG {
                ready.pop_front()
            } else {
                // At most `BACKLOG` to look through.
                let mine = ready.iter().position(|b| b.owner == me);
                mine.and_then(|i| ready.remove(i))
            }
        },
        true,
    );
}

/// Runs the batches `take` picks from the ready queue (under its lock, run
/// after it is released) until it picks none, unless this thread is running
/// jobs. With `recycle`, a batch's emptied vector becomes this thread's next
/// local batch if it has none.
fn drain_with(mut take: impl FnMut(&mut VecDeque<Batch>) -> Option<Batch>, recycle: bool) {
    if is_running() {
        return;
    }
    loop {
        let next = take(&mut lock_ready());
        match next {
            Some(batch) => run(batch, recycle),
            None => break,
        }
    }
}

/// Runs a batch whose grace period has elapsed; with `recycle`, keeps its
/// vector for this thread's next local batch ([`give_back`]).
fn run(batch: Batch, recycle: bool) {
    let s = shared();
    let Batch {
        mut jobs, phase, ..
    } = batch;
    let _finished = Finished(Some(phase));
    let before = tally::now();
    let mut panic = FirstPanic::new();
    {
        let _running = Running::enter();
        let n = jobs.len();
        let mut rest = jobs.drain(..);
        // One catch for the batch, not one per job: after a panic, the loop
        // goes on with the jobs after the one that panicked.
        while rest.len() > 0 {
            panic.catch(|| rest.by_ref().for_each(Job::run));
        }
        drop(rest);
        s.pending.done_many(n);
    }
    if tally::now() != before {
        // A cascade: counted in flight before this batch stops being.
        let cascade = take_local();
        if !cascade.is_empty() {
            let hand_over = hand_over_fn()
                .expect("a thread's local batch is filled only through `defer`, which sets it");
            hand_over(cascade);
        }
        // Relaxed: read by `synchronize` after the Acquire read that sees
        // this batch's exit (the `Finished` guard, below), which orders it.
        s.cascades.fetch_add(1, Ordering::Relaxed);
    }
    if recycle {
        give_back(jobs);
    }
    stash(panic);
}

/// Makes `jobs` (empty) this thread's local batch if it has none: a writer
/// that runs its own batches then fills the same few vectors in turn, instead
/// of allocating and freeing a batch-sized block for every batch (which
/// glibc serves by merging its small free blocks, each time).
fn give_back(jobs: Vec<Job>) {
    if jobs.capacity() < BATCH {
        return;
    }
    let _ = LOCAL.try_with(|l| {
        if let Ok(mut local) = l.jobs.try_borrow_mut() {
            if local.capacity() == 0 {
                *local = jobs;
            }
        }
    });
}

/// Keeps a panic caught from a job until the outermost `rcu` call on this
/// thread resumes it.
fn stash(panic: FirstPanic) {
    let mut panic = Some(panic);
    let _ = LOCAL.try_with(|l| {
        if let Some(panic) = panic.take() {
            l.caught.borrow_mut().merge(panic);
        }
    });
    if let Some(unstored) = panic {
        // The thread is being torn down: nobody is left to resume it.
        unstored.discard();
    }
}

/// Takes the panic caught on this thread, unless this thread is running jobs
/// (then the outermost call takes it).
fn take_caught() -> FirstPanic {
    if is_running() {
        return FirstPanic::new();
    }
    LOCAL
        .try_with(|l| core::mem::take(&mut *l.caught.borrow_mut()))
        .unwrap_or_default()
}

/// Resumes a panic caught from a job on this thread, if this is the
/// outermost `rcu` call.
fn resume_caught() {
    take_caught().resume();
}

/// Hands this thread's local batch over and lets due work run.
pub(crate) fn flush<G: Grace>() {
    if !hand_over_local::<G>() {
        G::poll();
    }
    drain();
    resume_caught();
}

/// Waits until every job deferred on this thread, and every batch handed
/// over anywhere, before the call has run (see the module docs).
///
/// # Panics
///
/// When called from a job.
pub(crate) fn synchronize<G: Grace>() {
    assert!(
        !is_running(),
        "rcu::synchronize called from a deferred closure: it would wait for itself"
    );
    let s = shared();
    let mut panic = FirstPanic::new();
    for _ in 0..MAX_ROUNDS {
        // Relaxed: compared after the grace period, whose Acquire reads order
        // every increment made by a batch it waited for.
        let cascades = s.cascades.load(Ordering::Relaxed);
        // Handed over even when empty: waiting for it to run is the grace
        // period that covers readers inside now, with nothing retired.
        hand_over::<G>(take_local());
        s.in_flight.wait(|| {
            G::poll();
            drain();
            panic.merge(take_caught());
            yield_now();
        });
        panic.merge(take_caught());
        let idle = LOCAL
            .try_with(|l| l.jobs.borrow().is_empty())
            .unwrap_or(true);
        // Relaxed: as above.
        if idle && s.cascades.load(Ordering::Relaxed) == cascades {
            break;
        }
    }
    panic.resume();
}

/// The jobs deferred and not yet run: every batch handed over, and this
/// thread's local batch (other threads' local batches are not counted).
pub(crate) fn pending() -> usize {
    let local = LOCAL.try_with(|l| l.jobs.borrow().len()).unwrap_or(0);
    shared().pending.get() + local
}
