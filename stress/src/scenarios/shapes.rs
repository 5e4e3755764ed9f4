//! Round-based container shapes: `wide`, `chain-of-arrays`, `array-of-chains` and `dag`
//! (and the measured part of `deep`).
//!
//! Each round builds a checked network (see `net`: every node watched as it is built, its
//! container rule and the error rule checked when it signals), signals every leaf from all
//! threads in a random order (one leaf in 64 fails with an injected error first) while a
//! meddling thread makes a fixed number of polls, unwraps and merges of random containers
//! of the round (checking that none of them loses an error), checks that every container has signalled once every
//! leaf's signal has returned, and drops everything. Rounds repeat until the budget runs
//! out. The signalling threads have 256 KiB stacks whose peak use is measured.
//!
//! Every random draw comes from the scenario's seed, so every backend builds the same
//! networks, signals them in the same per-thread order and meddles with them by the same
//! operations: the unit of work, a **node** (one leaf or container built, watched,
//! signalled or completed, and dropped, with the round's share of meddling), is the same on
//! every backend.
//!
//! - `wide`: thousands of leaves under one all-mode and one any-mode array, plus all-mode
//!   arrays over random quarters of them.
//! - `chain-of-arrays`: a timeline whose points are arrays over leaves of four rings.
//! - `array-of-chains`: several timelines whose points are small arrays, and arrays over the
//!   chain heads and over random middle points (array → chain → array: on `Locked` the lock
//!   classes nest both ways, and the kernel's nesting warnings fire).
//! - `dag`: random mixtures; each new container takes random earlier nodes, so one fence
//!   sits in several containers at different depths.

use std::sync::Arc;
use std::thread;

use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rcu_fence::{Backend, Fence, Timeline};

use super::net::{Builder, Node, array_poll_keeps_error, check_merge, check_unwrap, signal_leaf};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{Checks, Op};
use crate::report::Outcome;
use crate::stack::{Peak, spawn_small};

/// The unit of the round-based shapes.
pub(crate) const NODES: &str = "nodes";

/// One round's network: the leaves to signal and the containers to check.
pub(crate) struct Round<B: Backend> {
    pub(crate) leaves: Vec<Fence<B>>,
    pub(crate) containers: Vec<Fence<B>>,
    /// Largest nesting depth built (leaves are depth 0).
    pub(crate) depth: usize,
}

/// A network shape.
pub(crate) trait Shape {
    const NAME: &'static str;
    const ABOUT: &'static str;
    fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut SmallRng, cfg: &RunConfig) -> Round<B>;
}

/// Runs rounds of `S` until the budget runs out and fills `outcome`'s throughput (in
/// nodes), peak stack and depth. The standard columns are left to [`Checks::finish`].
pub(crate) fn rounds<S: Shape, B: Backend>(
    cfg: &RunConfig,
    checks: &Arc<Checks>,
    outcome: &mut Outcome,
) {
    let main = checks.watch.helper("main");
    let stop = Stop::new(cfg);
    let peak = Peak::default();
    let mut rng = cfg.rng(0);
    let mut depth = 0;
    let mut builder = Builder::<B>::new(checks, S::NAME);
    loop {
        main.at(Op::Build);
        let before = builder.nodes;
        let mut round = S::build(&mut builder, &mut rng, cfg);
        depth = depth.max(round.depth);
        round.leaves.shuffle(&mut rng);
        let chunk = round.leaves.len().div_ceil(cfg.threads).max(1);
        let meddler_seed = rng.random::<u64>();
        main.at(Op::Signal);
        thread::scope(|s| {
            let mut handles = Vec::new();
            for (t, part) in round.leaves.chunks(chunk).enumerate() {
                let peak = &peak;
                let seed = rng.random::<u64>();
                handles.push(spawn_small(
                    s,
                    format!("{}-{t}", S::NAME),
                    peak,
                    move || {
                        let heart = checks.watch.worker(t);
                        let mut rng = cfg.rng(seed);
                        for leaf in part {
                            heart.at(Op::Signal);
                            signal_leaf(leaf, &mut rng, 64, checks);
                        }
                        heart.idle();
                        checks.flush_latency();
                    },
                ));
            }
            let containers = &round.containers;
            handles.push(s.spawn(move || {
                meddle(containers, cfg.rng(meddler_seed), checks);
            }));
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
        // Every backend completes a container on the thread whose signal (or poll)
        // completed it, before that call returns (`Locked` runs its irq_work as that thread
        // releases its outermost fence lock): with every leaf's signal returned, all are
        // done.
        let pending = round
            .containers
            .iter()
            .filter(|c| !c.test_signaled_flag())
            .count();
        checks.violations.check(pending == 0, || {
            format!(
                "{}: {pending} containers pending after every leaf's signal returned",
                S::NAME
            )
        });
        main.at(Op::Drop);
        drop(round);
        if !stop.round_done(builder.nodes - before) {
            break;
        }
    }
    main.at(Op::Cleanup);
    drop(builder);
    rcu_fence::synchronize_rcu();
    main.idle();
    outcome.unit = NODES;
    outcome.set_elapsed(stop.elapsed());
    outcome.ops = stop.ops();
    outcome.peak_stack_bytes = peak.get();
    outcome.depth = Some(depth as u64);
}

/// The most leaves the meddling thread unwraps or merges at once. A container with shared
/// members is unwrapped once per path to each leaf: in a deep `dag` that is a great many,
/// more where signalled members are kept (`Locked`) than where they are released (`Rcu`).
const MEDDLE_LEAVES: u64 = 4096;

/// The meddling thread's operations per round. A fixed count, the same on every backend: a
/// meddler that ran until the signals were done would do as many operations as the scheme
/// made room for, so the round's work (and the CPU the meddler takes from the signallers
/// on a small machine) would differ by scheme.
const MEDDLE_OPS: usize = 32;

/// The meddling thread of a round: [`MEDDLE_OPS`] polls, unwraps and merges of random
/// containers of the round, made while the network signals as a driver's other threads
/// would (`check_unwrap` and `check_merge` check what comes out). A walk gives up
/// (unchecked) after [`MEDDLE_LEAVES`], and a merge is tried only on a container whose walk
/// came in under that bound.
fn meddle<B: Backend>(containers: &[Fence<B>], mut rng: SmallRng, checks: &Checks) {
    let heart = checks.watch.helper(MEDDLER);
    let mut writer = checks.ledger.writer();
    let give_up = |n: u64| n > MEDDLE_LEAVES;
    for _ in 0..MEDDLE_OPS {
        let Some(c) = containers.choose(&mut rng) else {
            break;
        };
        match rng.random_range(0..4) {
            0 | 1 => {
                heart.at(Op::Poll);
                let _ = c.is_signaled();
            }
            2 => {
                heart.at(Op::Walk);
                check_unwrap(c, checks, &give_up);
            }
            _ => {
                heart.at(Op::Walk);
                if check_unwrap(c, checks, &give_up).is_some() {
                    heart.at(Op::Merge);
                    check_merge(c, checks, &mut writer);
                }
            }
        }
    }
    heart.idle();
    checks.flush_latency();
}

/// The name of the meddling thread's heartbeat (a helper of every round-based scenario).
pub(crate) const MEDDLER: &str = "meddler";

macro_rules! scenario {
    ($ty:ident) => {
        impl Scenario for $ty {
            const NAME: &'static str = <$ty as Shape>::NAME;
            const ABOUT: &'static str = <$ty as Shape>::ABOUT;
            const UNIT: &'static str = NODES;
            const HELPERS: &'static [&'static str] = &[MEDDLER];
            fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
                let name = <$ty as Shape>::NAME;
                let mut outcome = Outcome::new(name, B::NAME, cfg.seed, cfg.threads);
                if name == <Dag as Shape>::NAME {
                    array_poll_keeps_error::<B>(checks);
                }
                rounds::<$ty, B>(cfg, checks, &mut outcome);
                checks.finish(&mut outcome);
                outcome
            }
        }
    };
}

/// Arrays of thousands of members.
#[derive(Debug)]
pub(crate) struct Wide;

impl Shape for Wide {
    const NAME: &'static str = "wide";
    const ABOUT: &'static str = "arrays of thousands of members, all- and any-mode, leaves signalled from all threads in random order";

    fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut SmallRng, cfg: &RunConfig) -> Round<B> {
        let n = 512 * cfg.width;
        let leaves: Vec<Node<B>> = (0..n).map(|_| b.leaf()).collect();
        let all: Vec<&Node<B>> = leaves.iter().collect();
        let mut containers = vec![b.array(&all, false).fence, b.array(&all, true).fence];
        for _ in 0..2 {
            let quarter: Vec<&Node<B>> = all.choose_multiple(rng, n / 4).copied().collect();
            containers.push(b.array(&quarter, false).fence);
        }
        Round {
            leaves: leaves.into_iter().map(|l| l.fence).collect(),
            containers,
            depth: 1,
        }
    }
}
scenario!(Wide);

/// A timeline whose points are arrays.
#[derive(Debug)]
pub(crate) struct ChainOfArrays;

impl Shape for ChainOfArrays {
    const NAME: &'static str = "chain-of-arrays";
    const ABOUT: &'static str =
        "a timeline (chain) whose points are arrays over leaves of four rings";

    fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut SmallRng, cfg: &RunConfig) -> Round<B> {
        let points = if cfg.quick { 200 } else { 1000 };
        let rings: Vec<Timeline<B>> = (0..4)
            .map(|_| Timeline::new_in("ring", B::default()))
            .collect();
        let mut leaves = Vec::new();
        let mut containers = Vec::new();
        let mut head: Option<Node<B>> = None;
        for p in 1..=points {
            let members: Vec<Node<B>> = (0..rng.random_range(1..=cfg.width))
                .map(|i| b.leaf_on(&rings[i % rings.len()], p))
                .collect();
            let refs: Vec<&Node<B>> = members.iter().collect();
            let array = b.array(&refs, rng.random_range(0..8) == 0);
            let link = b.chain(head.as_ref(), &array, p);
            leaves.extend(members.into_iter().map(|m| m.fence));
            containers.push(array.fence);
            containers.push(link.fence.clone());
            head = Some(link);
        }
        Round {
            leaves,
            containers,
            depth: 2,
        }
    }
}
scenario!(ChainOfArrays);

/// Arrays whose members are chain heads.
#[derive(Debug)]
pub(crate) struct ArrayOfChains;

impl Shape for ArrayOfChains {
    const NAME: &'static str = "array-of-chains";
    const ABOUT: &'static str =
        "arrays over chain heads and middle points; each chain point is itself a small array";

    fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut SmallRng, cfg: &RunConfig) -> Round<B> {
        let chains = cfg.width.max(2);
        let points = if cfg.quick { 50 } else { 200 };
        let mut leaves = Vec::new();
        let mut containers = Vec::new();
        let mut heads = Vec::new();
        let mut middles = Vec::new();
        for _ in 0..chains {
            let mut head: Option<Node<B>> = None;
            for p in 1..=points {
                let (x, y) = (b.leaf(), b.leaf());
                let point = b.array(&[&x, &y], false);
                let link = b.chain(head.as_ref(), &point, p);
                leaves.push(x.fence);
                leaves.push(y.fence);
                containers.push(point.fence);
                if rng.random_range(0..points) == 0 {
                    middles.push(link.clone());
                }
                head = Some(link);
            }
            heads.push(head.expect("points > 0"));
        }
        let refs: Vec<&Node<B>> = heads.iter().collect();
        containers.push(b.array(&refs, false).fence);
        containers.push(b.array(&refs, true).fence);
        middles.push(heads[0].clone());
        let refs: Vec<&Node<B>> = middles.iter().collect();
        containers.push(b.array(&refs, false).fence);
        containers.extend(heads.into_iter().map(|h| h.fence));
        Round {
            leaves,
            containers,
            depth: 3,
        }
    }
}
scenario!(ArrayOfChains);

/// Random mixtures of arrays and chains sharing members.
#[derive(Debug)]
pub(crate) struct Dag;

impl Shape for Dag {
    const NAME: &'static str = "dag";
    const ABOUT: &'static str =
        "random mixtures of arrays and chains; one fence in several containers at different depths";

    fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut SmallRng, cfg: &RunConfig) -> Round<B> {
        let n = if cfg.quick { 1000 } else { 4000 };
        let mut nodes: Vec<(Node<B>, usize)> = Vec::with_capacity(n);
        let mut leaves = Vec::new();
        let mut containers = Vec::new();
        let mut seqno = 0;
        let mut deepest = 0;
        for i in 0..n {
            if i < 16 || rng.random_range(0..10) < 3 {
                let leaf = b.leaf();
                leaves.push(leaf.fence.clone());
                nodes.push((leaf, 0));
                continue;
            }
            // Prefer recent nodes, so that depth builds up; any earlier node may be taken.
            let pick = |rng: &mut SmallRng| {
                if rng.random_range(0..2) == 0 {
                    rng.random_range(i.saturating_sub(32)..i)
                } else {
                    rng.random_range(0..i)
                }
            };
            let node = if rng.random_range(0..4) == 0 {
                let (p, f) = (pick(rng), pick(rng));
                seqno += 1;
                let d = nodes[p].1.max(nodes[f].1) + 1;
                (b.chain(Some(&nodes[p].0), &nodes[f].0, seqno), d)
            } else {
                let k = rng.random_range(1..=6);
                let picks: Vec<usize> = (0..k).map(|_| pick(rng)).collect();
                let d = picks.iter().map(|&j| nodes[j].1).max().unwrap_or(0) + 1;
                let refs: Vec<&Node<B>> = picks.iter().map(|&j| &nodes[j].0).collect();
                (b.array(&refs, rng.random_range(0..4) == 0), d)
            };
            deepest = deepest.max(node.1);
            containers.push(node.0.fence.clone());
            nodes.push(node);
        }
        Round {
            leaves,
            containers,
            depth: deepest,
        }
    }
}
scenario!(Dag);
