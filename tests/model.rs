//! Model-based randomized testing (proptest): random operations on fences, arrays, chains
//! and callbacks, from several "threads" whose op lists are merged by a random schedule
//! (a sequential interleaving), are applied to the `Rcu` backend and to a plain sequential
//! reference model; flags, errors and callback counts must agree after every step, and
//! the members an array still holds and the leaves `unwrap` yields must agree at the end.
//! The same sequences run on `Locked` and `LockedRcu`, compared once their irq_work has
//! completed the containers (statuses of fences and arrays, signalled flags of chains, callback counts).
//! A failing case shrinks to a minimal sequence.
//!
//! Cases: `PROPTEST_CASES` (default 128).

mod common;

use std::collections::VecDeque;

use proptest::prelude::*;
use rcu_fence::{
    Backend, CallbackId, Errno, Fence, FenceArray, FenceChain, FenceError, Locked, LockedRcu, Rcu,
    Timeline, context_alloc, unwrap,
};

use common::Counter;

const ERRORS: [Errno; 3] = [Errno::ETIME, Errno::ECANCELED, Errno::ENODATA];

/// One operation; fence and callback indices are taken modulo the number that exist.
#[derive(Clone, Copy, Debug)]
enum Op {
    Fence {
        timeline: u8,
    },
    Array {
        members: [u8; 3],
        len: u8,
        any: bool,
    },
    Chain {
        prev: Option<u8>,
        fence: u8,
    },
    Callback {
        fence: u8,
    },
    Remove {
        callback: u8,
    },
    SetError {
        fence: u8,
        code: u8,
    },
    Signal {
        fence: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..2).prop_map(|timeline| Op::Fence { timeline }),
        1 => (any::<[u8; 3]>(), 1u8..=3, any::<bool>())
            .prop_map(|(members, len, any)| Op::Array { members, len, any }),
        1 => (proptest::option::of(any::<u8>()), any::<u8>())
            .prop_map(|(prev, fence)| Op::Chain { prev, fence }),
        2 => any::<u8>().prop_map(|fence| Op::Callback { fence }),
        1 => any::<u8>().prop_map(|callback| Op::Remove { callback }),
        1 => (any::<u8>(), 0u8..3).prop_map(|(fence, code)| Op::SetError { fence, code }),
        3 => any::<u8>().prop_map(|fence| Op::Signal { fence }),
    ]
}

/// Three "threads" of up to 12 operations each, and the schedule that interleaves them.
fn program() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(proptest::collection::vec(op(), 0..12), 3),
        proptest::collection::vec(0usize..3, 36),
    )
        .prop_map(|(threads, schedule)| {
            let mut queues: Vec<VecDeque<Op>> = threads.into_iter().map(Into::into).collect();
            let mut merged = Vec::new();
            for t in schedule {
                if let Some(op) = queues[t].pop_front() {
                    merged.push(op);
                }
            }
            merged.extend(queues.into_iter().flatten());
            merged
        })
}

// ---- the reference model ----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Listener {
    /// A user callback (index into `Model::callbacks`).
    User(usize),
    /// Container `c` waits on this fence as input `input` (a chain: 0 own, 1 prev).
    Container(usize, usize),
}

#[derive(Debug)]
enum Kind {
    Plain,
    Array { members: Vec<usize>, any: bool },
    Chain { own: usize, prev: Option<usize> },
}

#[derive(Debug)]
struct MFence {
    kind: Kind,
    signaled: bool,
    /// The error set on the fence itself while pending.
    own_error: Option<Errno>,
    /// An array's first recorded input error.
    recorded: Option<Errno>,
    /// A chain link's seqno (its point) and its previous link's (0 after a plain fence).
    point: u64,
    /// A chain link's earliest failure: the point it came from and its code (a link
    /// reports the error of the earliest failed point at or below it).
    failure: Option<(u64, Errno)>,
    /// The error it signalled with.
    error: Option<Errno>,
    /// Inputs not yet finished (containers).
    pending: usize,
    /// Per input of a container: finished, so released on `Rcu`.
    released: Vec<bool>,
    listeners: Vec<Listener>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CbState {
    Queued,
    Ran,
    Removed,
}

#[derive(Default, Debug)]
struct Model {
    fences: Vec<MFence>,
    callbacks: Vec<CbState>,
}

impl Model {
    fn push(&mut self, kind: Kind) -> usize {
        self.fences.push(MFence {
            kind,
            signaled: false,
            own_error: None,
            recorded: None,
            point: 0,
            failure: None,
            error: None,
            pending: 0,
            released: Vec::new(),
            listeners: Vec::new(),
        });
        self.fences.len() - 1
    }

    /// Signals `f`; its listeners run FIFO, as the work list runs a cascade.
    fn signal(&mut self, f: usize) -> bool {
        if self.fences[f].signaled {
            return false;
        }
        let mut queue = VecDeque::from([f]);
        self.mark(f, false);
        while let Some(f) = queue.pop_front() {
            for listener in std::mem::take(&mut self.fences[f].listeners) {
                match listener {
                    Listener::User(cb) => {
                        if self.callbacks[cb] == CbState::Queued {
                            self.callbacks[cb] = CbState::Ran;
                        }
                    }
                    Listener::Container(c, i) => {
                        if self.finish(c, i, f) && !self.fences[c].signaled {
                            self.mark(c, true);
                            queue.push_back(c);
                        }
                    }
                }
            }
        }
        true
    }

    /// Marks `f` signalled: by hand, or (`completed`) by its inputs. A chain link takes its
    /// earliest failure when its inputs complete it; by hand, only an error set on it.
    fn mark(&mut self, f: usize, completed: bool) {
        let fence = &mut self.fences[f];
        fence.signaled = true;
        let recorded = match fence.kind {
            Kind::Chain { .. } => fence.failure.map(|(_, e)| e).filter(|_| completed),
            _ => fence.recorded,
        };
        fence.error = fence.own_error.or(recorded);
    }

    /// The failure a chain input carries, with its point: a link's earliest failure (else
    /// an error set on it directly, at its own point); any other fence's error as point 0.
    fn failure_of(&self, f: usize) -> Option<(u64, Errno)> {
        let fence = &self.fences[f];
        match fence.kind {
            Kind::Chain { .. } => fence.failure.or(fence.error.map(|e| (fence.point, e))),
            _ => fence.error.map(|e| (0, e)),
        }
    }

    /// Container `c` finishes an input that signalled; true if that completes it.
    fn finish(&mut self, c: usize, index: usize, input: usize) -> bool {
        let error = self.fences[input].error;
        let failure = match self.fences[c].kind {
            // Input 0 is the link's own fence: a failure of the link's own point.
            Kind::Chain { .. } if index == 0 => error.map(|e| (self.fences[c].point, e)),
            Kind::Chain { .. } => self.failure_of(input),
            _ => None,
        };
        let container = &mut self.fences[c];
        container.released[index] = true;
        container.recorded = container.recorded.or(error);
        if let Some((point, e)) = failure {
            // Frozen once the link has signalled (a manual signal before its inputs).
            if !container.signaled && container.failure.is_none_or(|(p, _)| point < p) {
                container.failure = Some((point, e));
            }
        }
        match container.kind {
            Kind::Array { any: true, .. } => std::mem::replace(&mut container.pending, 0) == 1,
            _ => {
                container.pending -= 1;
                container.pending == 0
            }
        }
    }

    /// Enables a new container over `inputs` (in the order the backend installs them);
    /// true if it completed at once (the enable loop stops there: in any mode the later
    /// members are left held, with no callback).
    fn enable(&mut self, c: usize, inputs: &[usize]) -> bool {
        let mut complete = false;
        self.fences[c].released = vec![false; inputs.len()];
        for (i, &input) in inputs.iter().enumerate() {
            if self.fences[input].signaled {
                if self.finish(c, i, input) {
                    complete = true;
                    break;
                }
            } else {
                self.fences[input].listeners.push(Listener::Container(c, i));
            }
        }
        if complete {
            self.mark(c, true);
        }
        complete
    }

    fn add_callback(&mut self, f: usize) -> bool {
        self.callbacks.push(if self.fences[f].signaled {
            CbState::Removed
        } else {
            CbState::Queued
        });
        let cb = self.callbacks.len() - 1;
        if self.fences[f].signaled {
            return false;
        }
        self.fences[f].listeners.push(Listener::User(cb));
        true
    }

    /// True if `f`'s error may differ on `Locked`: `f` is, or contains at any depth, a chain
    /// (its errors are recorded in walk order) or an any-mode array (the kernel records the
    /// errors of members that finish after the completing one until irq_work signals it).
    fn locked_error_differs(&self, f: usize) -> bool {
        match &self.fences[f].kind {
            Kind::Plain => false,
            Kind::Chain { .. } | Kind::Array { any: true, .. } => true,
            Kind::Array { members, .. } => members.iter().any(|&m| self.locked_error_differs(m)),
        }
    }

    /// The members an array still holds on `Rcu` (a finished member is released).
    fn held(&self, f: usize) -> Vec<usize> {
        match &self.fences[f].kind {
            Kind::Array { members, .. } => members
                .iter()
                .zip(&self.fences[f].released)
                .filter(|(_, released)| !**released)
                .map(|(m, _)| *m)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The leaves `unwrap` yields on `Rcu`, every container having been enabled at birth.
    fn unwrap(&self, f: usize, out: &mut Vec<usize>) {
        match &self.fences[f].kind {
            Kind::Plain => out.push(f),
            Kind::Array { .. } => {
                for m in self.held(f) {
                    self.unwrap(m, out);
                }
            }
            Kind::Chain { .. } => {
                for item in self.walk(f) {
                    match &self.fences[item].kind {
                        Kind::Chain { own, .. } => {
                            if !self.fences[*own].signaled {
                                self.unwrap(*own, out);
                            }
                        }
                        _ => self.unwrap(item, out),
                    }
                }
            }
        }
    }

    /// `chain_walk` from `head`: a link's inputs are released once they signal.
    fn walk(&self, head: usize) -> Vec<usize> {
        let mut items = vec![head];
        let held = |x: Option<usize>| x.filter(|&p| !self.fences[p].signaled);
        let mut next = match self.fences[head].kind {
            Kind::Chain { prev, .. } => held(prev),
            _ => None,
        };
        while let Some(p) = next {
            match self.fences[p].kind {
                Kind::Chain { own, prev } => {
                    if self.fences[own].signaled {
                        next = held(prev); // collected
                    } else {
                        items.push(p);
                        next = held(prev);
                    }
                }
                _ => {
                    items.push(p);
                    next = None;
                }
            }
        }
        items
    }
}

// ---- applying a program to a backend and to the model ------------------------------------

struct Real<B: Backend> {
    timelines: [Timeline<B>; 2],
    seqno: u64,
    fences: Vec<Fence<B>>,
    callbacks: Vec<(Counter, Option<CallbackId<B>>, usize)>,
}

impl<B: Backend> Real<B> {
    fn new() -> Self {
        Real {
            timelines: [common::timeline::<B>(), common::timeline::<B>()],
            seqno: 0,
            fences: Vec::new(),
            callbacks: Vec::new(),
        }
    }

    fn add_callback(&mut self, f: usize) -> bool {
        let runs = Counter::new();
        let r = runs.clone();
        let id = self.fences[f].add_callback(move |_| r.inc()).ok();
        let added = id.is_some();
        self.callbacks.push((runs, id, f));
        added
    }
}

fn pick(index: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(index) % len)
}

/// Applies `program` to both; with `check_each_step` (`Rcu`) compares after every step,
/// otherwise (the classic schemes) waits after every step for the containers the model
/// completed.
fn run<B: Backend>(
    program: &[Op],
    check_each_step: bool,
) -> Result<(Model, Real<B>), TestCaseError> {
    let mut model = Model::default();
    let mut real = Real::<B>::new();
    for (step, op) in program.iter().enumerate() {
        let n = model.fences.len();
        match *op {
            Op::Fence { timeline } => {
                real.seqno += 1;
                real.fences
                    .push(real.timelines[usize::from(timeline)].fence(real.seqno));
                model.push(Kind::Plain);
            }
            Op::Array { members, len, any } => {
                let Some(_) = pick(0, n) else { continue };
                let members: Vec<usize> = members[..usize::from(len)]
                    .iter()
                    .map(|&m| usize::from(m) % n)
                    .collect();
                let fences = members.iter().map(|&m| real.fences[m].clone()).collect();
                real.seqno += 1;
                real.fences
                    .push(FenceArray::create(fences, context_alloc(1), real.seqno, any).unwrap());
                let c = model.push(Kind::Array {
                    members: members.clone(),
                    any,
                });
                model.fences[c].pending = if any { 1 } else { members.len() };
                // Enabled at birth (by its first callback), as a waiter would.
                let complete = model.enable(c, &members);
                let added = real.add_callback(c);
                let expect = !complete && model.add_callback(c);
                if complete {
                    model.add_callback(c);
                }
                prop_assert_eq!(added, expect, "step {}: enabling array {}", step, c);
            }
            Op::Chain { prev, fence } => {
                let Some(own) = pick(fence, n) else { continue };
                let prev = prev.and_then(|p| pick(p, n));
                real.seqno += 1;
                let link = FenceChain::create(
                    prev.map(|p| real.fences[p].clone()),
                    real.fences[own].clone(),
                    real.seqno,
                );
                real.fences.push(link);
                let c = model.push(Kind::Chain { own, prev });
                model.fences[c].point = real.seqno;
                model.fences[c].pending = 1 + usize::from(prev.is_some());
                let inputs: Vec<usize> = std::iter::once(own).chain(prev).collect();
                let complete = model.enable(c, &inputs);
                let added = real.add_callback(c);
                let expect = !complete && model.add_callback(c);
                if complete {
                    model.add_callback(c);
                }
                prop_assert_eq!(added, expect, "step {}: enabling chain {}", step, c);
            }
            Op::Callback { fence } => {
                let Some(f) = pick(fence, n) else { continue };
                let added = real.add_callback(f);
                prop_assert_eq!(
                    added,
                    model.add_callback(f),
                    "step {}: add_callback on {}",
                    step,
                    f
                );
            }
            Op::Remove { callback } => {
                let Some(cb) = pick(callback, real.callbacks.len()) else {
                    continue;
                };
                let Some(id) = real.callbacks[cb].1.take() else {
                    continue;
                };
                let f = real.callbacks[cb].2;
                let removed = real.fences[f].remove_callback(id);
                let expect = model.callbacks[cb] == CbState::Queued;
                if expect {
                    model.callbacks[cb] = CbState::Removed;
                }
                prop_assert_eq!(removed, expect, "step {}: remove callback {}", step, cb);
            }
            Op::SetError { fence, code } => {
                let Some(f) = pick(fence, n) else { continue };
                let e = ERRORS[usize::from(code)];
                let ok = real.fences[f].set_error(e).is_ok();
                let expect = !model.fences[f].signaled;
                if expect {
                    model.fences[f].own_error = Some(e);
                }
                prop_assert_eq!(ok, expect, "step {}: set_error on {}", step, f);
            }
            Op::Signal { fence } => {
                let Some(f) = pick(fence, n) else { continue };
                if !check_each_step && matches!(model.fences[f].kind, Kind::Chain { .. }) {
                    // `Locked`'s chain completes on the own fences it walks (the kernel's
                    // scheme), not on a manually signalled previous link: not comparable.
                    continue;
                }
                let ok = real.fences[f].signal().is_ok();
                prop_assert_eq!(ok, model.signal(f), "step {}: signal {}", step, f);
            }
        }
        if check_each_step {
            compare(&model, &real, true, step)?;
        } else {
            // The classic schemes complete containers from irq_work: make sure it has
            // run, so that the next step's answers are deterministic.
            for (i, m) in model.fences.iter().enumerate() {
                if m.signaled {
                    let done = !matches!(
                        real.fences[i].wait_timeout(SETTLE),
                        Err(FenceError::TimedOut)
                    );
                    prop_assert!(done, "step {}: fence {} signals", step, i);
                }
            }
        }
    }
    Ok((model, real))
}

fn compare<B: Backend>(
    model: &Model,
    real: &Real<B>,
    all_errors: bool,
    step: usize,
) -> Result<(), TestCaseError> {
    for (i, (m, r)) in model.fences.iter().zip(&real.fences).enumerate() {
        prop_assert_eq!(
            r.test_signaled_flag(),
            m.signaled,
            "step {}: fence {} flag",
            step,
            i
        );
        if all_errors || !model.locked_error_differs(i) {
            prop_assert_eq!(r.error(), m.error, "step {}: fence {} error", step, i);
        }
    }
    for (cb, (runs, _, _)) in real.callbacks.iter().enumerate() {
        let expect = usize::from(model.callbacks[cb] == CbState::Ran);
        prop_assert_eq!(runs.get(), expect, "step {}: callback {} runs", step, cb);
    }
    Ok(())
}

fn same_fences<B: Backend>(
    real: &Real<B>,
    got: impl Iterator<Item = Fence<B>>,
    expect: &[usize],
) -> bool {
    let got: Vec<Fence<B>> = got.collect();
    got.len() == expect.len()
        && got
            .iter()
            .zip(expect)
            .all(|(g, &e)| g.ptr_eq(&real.fences[e]))
}

/// How long a classic scheme gets to complete containers (short, so that shrinking a
/// failure stays quick).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

fn eventually_by(deadline: std::time::Instant, mut cond: impl FnMut() -> bool) -> bool {
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `Rcu` against the model after every step; members held and unwrap at the end.
    #[test]
    fn rcu_agrees_with_the_model(program in program()) {
        let (model, real) = run::<Rcu>(&program, true)?;
        for (i, m) in model.fences.iter().enumerate() {
            if let Kind::Array { .. } = m.kind {
                let array = real.fences[i].as_array().unwrap();
                prop_assert!(same_fences(&real, array.fences(), &model.held(i)), "array {} members", i);
            }
        }
        for i in 0..model.fences.len() {
            let mut leaves = Vec::new();
            model.unwrap(i, &mut leaves);
            prop_assert!(same_fences(&real, unwrap(&real.fences[i]), &leaves), "unwrap of {}: expected {:?}", i, leaves);
        }
    }

    /// `Locked` against the model once its irq_work has completed the containers.
    #[test]
    fn locked_agrees_with_the_model(program in program()) {
        classic_agrees::<Locked>(&program)?;
    }

    /// `LockedRcu` (the classic scheme with RCU member slots) the same way.
    #[test]
    fn locked_rcu_agrees_with_the_model(program in program()) {
        classic_agrees::<LockedRcu>(&program)?;
    }
}

/// A classic scheme against the model once its irq_work has completed the containers.
fn classic_agrees<B: Backend>(program: &[Op]) -> Result<(), TestCaseError> {
    let (model, real) = run::<B>(program, false)?;
    for (i, m) in model.fences.iter().enumerate() {
        if m.signaled {
            prop_assert!(
                !matches!(
                    real.fences[i].wait_timeout(SETTLE),
                    Err(FenceError::TimedOut)
                ),
                "fence {} signals",
                i
            );
        }
    }
    let deadline = std::time::Instant::now() + SETTLE;
    let settled = eventually_by(deadline, || {
        real.callbacks.iter().enumerate().all(|(cb, (runs, _, _))| {
            runs.get() == usize::from(model.callbacks[cb] == CbState::Ran)
        })
    });
    prop_assert!(settled, "callback counts settle");
    // Errors that legitimately differ on the classic chain are not compared (see
    // `locked_error_differs`).
    compare(&model, &real, false, program.len())
}
