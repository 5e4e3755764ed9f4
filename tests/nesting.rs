//! Deep nesting on the `Rcu` backend, on a 256 KiB stack: arrays of arrays, chains of
//! arrays, arrays of chains and a DAG sharing one fence at many depths. Each structure is
//! built, enabled, signalled leaf by leaf in a seeded random order, unwrapped, merged and
//! dropped; every callback runs exactly once, the top signals exactly with the last leaf,
//! and every allocation made on the way is freed (a counting global allocator).
//!
//! Depth: 100,000 for every shape, in debug builds too (about 25 s for the file there).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use common::alloc::{CountingAlloc, live, tracked};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rcu_fence::{
    DriverFence, Errno, Fence, FenceArray, FenceChain, Status, Timeline, context_alloc, merge,
    unwrap,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The nesting depth of every shape: 100,000, in debug builds too.
const DEPTH: usize = 100_000;
/// Leaves come from this many timelines, round robin, so that merge has work to do.
const TIMELINES: usize = 16;

/// Runs `test` on a thread with a 256 KiB stack.
fn on_small_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap();
}

/// Runs `scenario(depth)` on a small stack: first at a small depth untracked (so that
/// per-thread and global state the library keeps is set up), then at `depth` with every
/// allocation tracked, and asserts that everything tracked has been freed once releases
/// deferred past RCU readers have run.
fn leak_checked(depth: usize, scenario: fn(usize)) {
    // The count is global to the test binary: one tracked scenario at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    on_small_stack(move || {
        scenario(64);
        rcu_fence::synchronize_rcu();
        let before = live();
        tracked(|| scenario(depth));
        // The epoch reclaimer frees the queue nodes that carried deferred releases one
        // grace period after running them: a few rounds free those too.
        for _ in 0..4 {
            rcu_fence::synchronize_rcu();
        }
        assert_eq!(
            live(),
            before,
            "live (blocks, bytes) after the structure is gone"
        );
    });
}

/// Leaves on `TIMELINES` timelines round robin, seqno = index + 1, each with a producer
/// handle that signals it with -ECANCELED if dropped unsignalled.
struct Leaves {
    timelines: Vec<Timeline>,
    fences: Vec<Fence>,
    producers: Vec<DriverFence>,
}

impl Leaves {
    fn new() -> Self {
        Leaves {
            timelines: (0..TIMELINES)
                .map(|i| Timeline::new(&format!("leaf{i}")))
                .collect(),
            fences: Vec::new(),
            producers: Vec::new(),
        }
    }
    fn leaf(&mut self, i: usize) -> Fence {
        self.push(self.timelines[i % TIMELINES].driver_fence(i as u64 + 1))
    }
    fn push(&mut self, producer: DriverFence) -> Fence {
        let f = producer.fence();
        self.fences.push(f.clone());
        self.producers.push(producer);
        f
    }
    fn finish(self, top: Fence, containers: Vec<Fence>, leaf_places: usize) -> Built {
        Built {
            top,
            containers,
            leaves: self.fences,
            producers: self.producers,
            leaf_places,
        }
    }
}

fn array(members: Vec<Fence>) -> Fence {
    FenceArray::create(members, context_alloc(1), 1, false).unwrap()
}

/// A built structure: its top, every container in it, and every distinct leaf with its
/// producer handle (dropped last).
struct Built {
    top: Fence,
    containers: Vec<Fence>,
    leaves: Vec<Fence>,
    producers: Vec<DriverFence>,
    /// How many times `unwrap(top)` yields a leaf (a shared leaf counts once per place).
    leaf_places: usize,
}

fn arrays_of_arrays(depth: usize) -> Built {
    let mut l = Leaves::new();
    let mut top = l.leaf(0);
    let mut containers = Vec::with_capacity(depth);
    for i in 1..=depth {
        top = array(vec![top, l.leaf(i)]);
        containers.push(top.clone());
    }
    l.finish(top, containers, depth + 1)
}

fn chains_of_arrays(depth: usize) -> Built {
    let mut l = Leaves::new();
    let mut head: Option<Fence> = None;
    let mut containers = Vec::with_capacity(2 * depth);
    for i in 0..depth {
        let a = array(vec![l.leaf(i)]);
        containers.push(a.clone());
        let link = FenceChain::create(head.take(), a, i as u64 + 1);
        containers.push(link.clone());
        head = Some(link);
    }
    l.finish(head.unwrap(), containers, depth)
}

fn arrays_of_chains(depth: usize) -> Built {
    let mut l = Leaves::new();
    let mut top: Option<Fence> = None;
    let mut containers = Vec::with_capacity(2 * depth);
    for i in 0..depth {
        let link = FenceChain::create(top.take(), l.leaf(i), i as u64 + 1);
        containers.push(link.clone());
        let a = array(vec![link]);
        containers.push(a.clone());
        top = Some(a);
    }
    l.finish(top.unwrap(), containers, depth)
}

/// Arrays of arrays and a chain of arrays under one top array; one shared fence sits in
/// every 1000th array of both, at many depths, and at the very bottom.
fn dag(depth: usize) -> Built {
    let mut l = Leaves::new();
    let shared = l.push(Timeline::new("shared").driver_fence(1));
    let mut places = 0;
    let mut containers = Vec::new();
    let mut side = shared.clone();
    places += 1;
    for i in 0..depth / 2 {
        let leaf = l.leaf(i);
        let mut members = vec![side, leaf];
        places += 1;
        if i % 1000 == 0 {
            members.push(shared.clone());
            places += 1;
        }
        side = array(members);
        containers.push(side.clone());
    }
    let mut head: Option<Fence> = None;
    for i in depth / 2..depth {
        let leaf = l.leaf(i);
        let mut members = vec![leaf];
        places += 1;
        if i % 1000 == 0 {
            members.push(shared.clone());
            places += 1;
        }
        let a = array(members);
        containers.push(a.clone());
        let link = FenceChain::create(head.take(), a, i as u64 + 1);
        containers.push(link.clone());
        head = Some(link);
    }
    let top = array(vec![side, head.unwrap(), shared]);
    places += 1;
    containers.push(top.clone());
    l.finish(top, containers, places)
}

/// One callback per container, each counting its runs in its own cell.
fn count_callbacks(containers: &[Fence]) -> Arc<Vec<AtomicU8>> {
    let runs: Arc<Vec<AtomicU8>> = Arc::new(containers.iter().map(|_| AtomicU8::new(0)).collect());
    for (i, c) in containers.iter().enumerate() {
        let runs = runs.clone();
        c.add_callback(move |_| {
            runs[i].fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    runs
}

fn assert_each_once(runs: &[AtomicU8]) {
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.load(Ordering::SeqCst), 1, "container {i}");
    }
}

/// The merge of the unsignalled structure: one leaf per context, the latest.
fn assert_merge_is_latest_per_context(built: &Built) {
    let mut latest: HashMap<u64, &Fence> = HashMap::new();
    for leaf in &built.leaves {
        let e = latest.entry(leaf.context()).or_insert(leaf);
        if leaf.is_later(e) {
            *e = leaf;
        }
    }
    let mut want: Vec<_> = latest.into_values().collect();
    want.sort_by_key(|f| f.context());
    let merged = merge(std::slice::from_ref(&built.top)).unwrap();
    let got: Vec<_> = merged
        .as_array()
        .expect("several contexts: an array")
        .fences()
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(g.ptr_eq(w));
    }
}

/// Build, enable, unwrap and merge, signal in random order, unwrap and merge again, drop.
fn full_cycle(built: Built, seed: u64) {
    let runs = count_callbacks(&built.containers);
    let top_runs = crate::common::Counter::new();
    let t = top_runs.clone();
    built.top.add_callback(move |_| t.inc()).unwrap();
    assert_eq!(unwrap(&built.top).count(), built.leaf_places);
    assert_merge_is_latest_per_context(&built);

    let mut order: Vec<usize> = (0..built.leaves.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let (last, rest) = order.split_last().unwrap();
    for &i in rest {
        built.leaves[i].signal().unwrap();
        assert!(!built.top.test_signaled_flag());
    }
    assert_eq!(top_runs.get(), 0);
    built.leaves[*last].signal().unwrap();
    assert!(
        built.top.test_signaled_flag(),
        "the top signals with the last leaf"
    );
    assert_eq!(built.top.status(), Status::Signaled);
    assert_eq!(top_runs.get(), 1);
    assert_each_once(&runs);
    assert!(built.containers.iter().all(|c| c.test_signaled_flag()));

    // Signalled containers on `Rcu` hold nothing; a chain head still yields its own
    // (signalled) fence if it kept one. Nothing is pending, so merge gives a stub.
    assert!(unwrap(&built.top).all(|f| f.test_signaled_flag()));
    let m = merge(std::slice::from_ref(&built.top)).unwrap();
    assert_eq!(
        (m.context(), m.seqno(), m.status()),
        (0, 0, Status::Signaled)
    );
    drop(built);
    assert_each_once(&runs);
}

#[test]
fn arrays_of_arrays_deep() {
    leak_checked(DEPTH, |d| full_cycle(arrays_of_arrays(d), 1));
}

#[test]
fn chains_of_arrays_deep() {
    leak_checked(DEPTH, |d| full_cycle(chains_of_arrays(d), 2));
}

#[test]
fn arrays_of_chains_deep() {
    leak_checked(DEPTH, |d| full_cycle(arrays_of_chains(d), 3));
}

#[test]
fn dag_deep() {
    leak_checked(DEPTH, |d| full_cycle(dag(d), 4));
}

#[test]
fn never_enabled_dropped_deep() {
    leak_checked(DEPTH, |d| {
        for built in [
            arrays_of_arrays(d),
            chains_of_arrays(d),
            arrays_of_chains(d),
            dag(d),
        ] {
            assert_eq!(unwrap(&built.top).count(), built.leaf_places);
            drop(built);
        }
        // Held only by the top: the chain of nested singletons, dropped from its top.
        let mut top = Timeline::new("single").fence(1);
        for _ in 0..d {
            top = array(vec![top]);
        }
        drop(top);
    });
}

/// Enabled, half signalled, then everything dropped: the producers of the unsignalled
/// leaves go last and signal them with -ECANCELED, so the structure completes with that
/// error; every callback runs once and nothing leaks. (A leaf with pending callbacks is
/// kept alive by the containers those callbacks hold, as in the kernel: only its
/// producer can complete it.)
fn partial_then_drop(built: Built, seed: u64) {
    let runs = count_callbacks(&built.containers);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    built
        .top
        .add_callback(move |f| *s.lock().unwrap() = Some(f.status()))
        .unwrap();
    let mut order: Vec<usize> = (0..built.leaves.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    for &i in &order[..order.len() / 2] {
        built.leaves[i].signal().unwrap();
    }
    assert!(!built.top.test_signaled_flag());
    assert!(seen.lock().unwrap().is_none());
    drop(built);
    assert_eq!(*seen.lock().unwrap(), Some(Status::Error(Errno::ECANCELED)));
    assert_each_once(&runs);
}

#[test]
fn partially_signalled_dropped_deep() {
    leak_checked(DEPTH, |d| {
        partial_then_drop(arrays_of_arrays(d), 5);
        partial_then_drop(chains_of_arrays(d), 6);
        partial_then_drop(arrays_of_chains(d), 7);
        partial_then_drop(dag(d), 8);
    });
}

/// Enabled and half signalled; the handles to the top and the containers go first, then
/// the remaining leaves signal: the structure still completes and is freed.
#[test]
fn partially_signalled_top_dropped_first() {
    leak_checked(DEPTH, |d| {
        let built = arrays_of_arrays(d);
        let runs = count_callbacks(&built.containers);
        let mut order: Vec<usize> = (0..built.leaves.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(9));
        let (first, second) = order.split_at(order.len() / 2);
        for &i in first {
            built.leaves[i].signal().unwrap();
        }
        let Built {
            top,
            containers,
            leaves,
            producers,
            ..
        } = built;
        drop((top, containers));
        for &i in second {
            leaves[i].signal().unwrap();
        }
        assert_each_once(&runs);
        drop((leaves, producers));
    });
}
