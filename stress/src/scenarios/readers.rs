//! `readers`: iterating containers while other threads signal their leaves and drop them.
//!
//! A pool of slots, each holding a nested structure: a chain whose points are arrays over a
//! leaf and an inner array (chain → array → array), or an array over chain heads. Every
//! thread picks at random: read a structure (`FenceArray::fences`, `unwrap`, `chain_walk`,
//! `merge`, or a poll of `is_signaled`), signal one of its pending leaves, or replace it by a fresh one (its last
//! leaves are signalled and the old one dropped while others may still be reading it).
//!
//! Checked, besides the network rules and exactly-once: `unwrap` yields no container;
//! `chain_walk` yields seqnos strictly decreasing along the head's context; `merge` returns
//! a fence that is not nested (a leaf, a stub, or an array of leaves on distinct contexts);
//! a merge of a structure whose leaves have all signalled is signalled; the unwrap and the
//! merge of a structure that signalled with an error carry an error (the error rule).
//!
//! The unit is an **action**: one read (a single traversal, however many items it visits:
//! `Locked` keeps signalled members in its containers where `Rcu` releases them, so the same
//! read visits more there), one leaf signalled, or one structure replaced.

use std::sync::{Arc, Mutex};
use std::thread;

use rand::Rng;
use rcu_fence::{Backend, Fence, chain_walk};

use super::net::{Builder, Node, check_merge, check_unwrap, signal_leaf};
use super::{RunConfig, Scenario, Stop};
use crate::checks::{Checks, LedgerWriter, Op};
use crate::report::Outcome;
use crate::stack::{Peak, spawn_small};

/// Readers against signallers and droppers.
#[derive(Debug)]
pub(crate) struct Readers;

const SLOTS: usize = 16;
const POINTS: u64 = 8;

struct Structure<B: Backend> {
    root: Fence<B>,
    pending: Vec<Fence<B>>,
}

fn build<B: Backend>(b: &mut Builder<'_, B>, rng: &mut impl Rng) -> Structure<B> {
    let mut pending = Vec::new();
    let mut leaf = |b: &mut Builder<'_, B>| {
        let l = b.leaf();
        pending.push(l.fence.clone());
        l
    };
    let root = if rng.random_range(0..2) == 0 {
        let mut head: Option<Node<B>> = None;
        for p in 1..=POINTS {
            let (x, y, z) = (leaf(b), leaf(b), leaf(b));
            let inner = b.array(&[&y, &z], false);
            let point = b.array(&[&x, &inner], false);
            head = Some(b.chain(head.as_ref(), &point, p));
        }
        head.expect("points").fence
    } else {
        let heads: Vec<Node<B>> = (0..3)
            .map(|_| {
                let mut head: Option<Node<B>> = None;
                for p in 1..=POINTS / 2 {
                    let x = leaf(b);
                    head = Some(b.chain(head.as_ref(), &x, p));
                }
                head.expect("points")
            })
            .collect();
        let refs: Vec<&Node<B>> = heads.iter().collect();
        b.array(&refs, false).fence
    };
    Structure { root, pending }
}

/// Reads `root` one way: one traversal, whatever it visits.
fn read<B: Backend>(root: &Fence<B>, how: u32, checks: &Checks, writer: &mut LedgerWriter<'_>) {
    let v = &checks.violations;
    match how {
        0 => {
            if let Some(array) = root.as_array() {
                for m in array.fences() {
                    v.check(m.context() != root.context(), || {
                        "an array member on the array's own context".into()
                    });
                }
            }
        }
        1 => {
            check_unwrap(root, checks, &|_| false);
        }
        2 => {
            let mut last: Option<u64> = None;
            for link in chain_walk(root) {
                if link.context() == root.context() {
                    if let Some(prev) = last {
                        v.check(link.seqno() < prev, || {
                            format!(
                                "chain_walk went from seqno {prev} to {} on one context",
                                link.seqno()
                            )
                        });
                    }
                    last = Some(link.seqno());
                }
            }
        }
        3 => check_merge(root, checks, writer),
        _ => {
            let _ = root.is_signaled();
        }
    }
}

impl Scenario for Readers {
    const NAME: &'static str = "readers";
    const ABOUT: &'static str = "fences(), unwrap, chain_walk, merge and polls on nested containers while others signal and drop them";
    const UNIT: &'static str = "actions";

    fn run<B: Backend>(cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
        let mut outcome = Outcome::new(Self::NAME, B::NAME, cfg.seed, cfg.threads);
        let main = checks.watch.helper("main");
        main.at(Op::Setup);
        let mut rng = cfg.rng(0);
        let mut b = Builder::<B>::new(checks, "readers");
        let slots: Vec<Mutex<Structure<B>>> = (0..SLOTS)
            .map(|_| Mutex::new(build(&mut b, &mut rng)))
            .collect();
        main.idle();
        let stop = Stop::new(cfg);
        let peak = Peak::default();
        thread::scope(|s| {
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                let (slots, stop, peak) = (&slots, &stop, &peak);
                handles.push(spawn_small(s, format!("readers-{t}"), peak, move || {
                    worker(t, cfg, checks, slots, stop);
                }));
            }
            // Joined explicitly: a joined thread has also run its thread-local
            // destructors, which hand its deferred garbage to the reclaimer.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
        outcome.set_elapsed(stop.elapsed());
        outcome.ops = stop.ops();
        main.at(Op::Cleanup);
        for slot in slots {
            let st = slot.into_inner().unwrap_or_else(|e| e.into_inner());
            for f in &st.pending {
                signal_leaf(f, &mut rng, 64, checks);
            }
            let _ = st.root.wait();
        }
        drop(b);
        rcu_fence::synchronize_rcu();
        main.idle();
        outcome.peak_stack_bytes = peak.get();
        checks.finish(&mut outcome);
        outcome
    }
}

fn worker<B: Backend>(
    t: usize,
    cfg: &RunConfig,
    checks: &Arc<Checks>,
    slots: &[Mutex<Structure<B>>],
    stop: &Stop,
) {
    let heart = checks.watch.worker(t);
    let mut rng = cfg.rng(1 + t as u64);
    let mut meter = stop.meter();
    let mut b = Builder::<B>::new(checks, "readers");
    let mut writer = checks.ledger.writer();
    let lock = |i: usize| slots[i].lock().unwrap_or_else(|e| e.into_inner());
    while meter.keep_going() {
        let i = rng.random_range(0..slots.len());
        let dice = rng.random_range(0..100);
        if dice < 60 {
            let root = lock(i).root.clone();
            heart.at(Op::Walk);
            read(&root, rng.random_range(0..5), checks, &mut writer);
            meter.add(1);
        } else if dice < 92 {
            let leaf = {
                let mut st = lock(i);
                if st.pending.is_empty() {
                    None
                } else {
                    let j = rng.random_range(0..st.pending.len());
                    Some(st.pending.swap_remove(j))
                }
            };
            if let Some(leaf) = leaf {
                heart.at(Op::Signal);
                signal_leaf(&leaf, &mut rng, 64, checks);
                meter.add(1);
            }
        } else {
            heart.at(Op::Build);
            let fresh = build(&mut b, &mut rng);
            let old = std::mem::replace(&mut *lock(i), fresh);
            heart.at(Op::Signal);
            for f in &old.pending {
                signal_leaf(f, &mut rng, 64, checks);
            }
            heart.at(Op::Drop);
            drop(old);
            meter.add(1);
        }
        heart.idle();
    }
    heart.idle();
    checks.flush_latency();
}
