//! Interleaved rounds: the harness for comparisons whose ratio swings between runs (two
//! threads on two cores: B6, B10 with a writer, B11) and for runs too slow for criterion
//! (B8's quadratic re-arm).
//!
//! Each variant's batch size is fixed once, by a calibration that doubles as its warm-up;
//! then every round runs one batch of every variant, starting from a different variant each
//! round, so a load change during the run hits all variants alike. What is recorded per
//! variant is the time per iteration in each round; the report quotes the median across
//! rounds with the spread (min–max), and takes ratios round by round (two variants of one
//! round ran seconds apart, two medians of criterion ran minutes apart).

use std::time::{Duration, Instant};

use serde_json::json;

/// One batch: its time, and the units of work it did (what a per-unit figure divides by,
/// e.g. leaves visited; the iterations when there is nothing else to count).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub(crate) elapsed: Duration,
    pub(crate) work: u64,
}

impl Batch {
    /// A batch whose unit of work is the iteration.
    pub(crate) fn iters(elapsed: Duration, iters: u64) -> Self {
        Batch {
            elapsed,
            work: iters,
        }
    }
}

/// Rounds per measurement: `$RCU_FENCE_BENCH_ROUNDS`, else 9 (5 in quick mode). Odd, so
/// that the median is one round's figure.
pub(crate) fn default_rounds() -> usize {
    std::env::var("RCU_FENCE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if super::quick() { 5 } else { 9 })
}

/// The time one batch aims at.
fn batch_time() -> Duration {
    if super::quick() {
        Duration::from_millis(40)
    } else {
        Duration::from_millis(150)
    }
}

struct Entry<'a> {
    variant: String,
    param: String,
    /// `Some(n)`: always `n` iterations per batch, no calibration (slow cases).
    fixed: Option<u64>,
    run: Box<dyn FnMut(u64) -> Batch + 'a>,
}

/// One interleaved measurement: a group of variants, each with a parameter.
pub(crate) struct Rounds<'a> {
    group: String,
    rounds: usize,
    entries: Vec<Entry<'a>>,
}

impl<'a> Rounds<'a> {
    /// An empty group; ids read `<group>/<variant>/<param>`.
    pub(crate) fn new(group: &str) -> Self {
        Rounds {
            group: group.to_string(),
            rounds: default_rounds(),
            entries: Vec::new(),
        }
    }

    /// Overrides the number of rounds.
    pub(crate) fn rounds(mut self, rounds: usize) -> Self {
        self.rounds = rounds.max(1);
        self
    }

    /// Adds a variant; `run(iters)` does `iters` iterations and times them. Its batch size
    /// is calibrated to the batch time.
    pub(crate) fn add(
        &mut self,
        variant: &str,
        param: impl ToString,
        run: impl FnMut(u64) -> Batch + 'a,
    ) {
        self.entries.push(Entry {
            variant: variant.to_string(),
            param: param.to_string(),
            fixed: None,
            run: Box::new(run),
        });
    }

    /// Adds a variant run `iters` iterations per round, with no calibration and no warm-up
    /// (for iterations of a second or more).
    pub(crate) fn add_fixed(
        &mut self,
        variant: &str,
        param: impl ToString,
        iters: u64,
        run: impl FnMut(u64) -> Batch + 'a,
    ) {
        self.entries.push(Entry {
            variant: variant.to_string(),
            param: param.to_string(),
            fixed: Some(iters.max(1)),
            run: Box::new(run),
        });
    }

    /// Calibrates, runs the rounds, prints a summary and writes `rounds_<group>.json`.
    pub(crate) fn run(mut self) {
        if super::listing() {
            for e in &self.entries {
                println!(
                    "{}/{}/{}: interleaved rounds",
                    self.group, e.variant, e.param
                );
            }
            return;
        }
        if !super::selected(&self.group) {
            return;
        }
        let target = batch_time();
        let iters: Vec<u64> = self
            .entries
            .iter_mut()
            .map(|e| e.fixed.unwrap_or_else(|| calibrate(&mut e.run, target)))
            .collect();
        let n = self.entries.len();
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut work: Vec<Vec<f64>> = vec![Vec::new(); n];
        let started = Instant::now();
        for round in 0..self.rounds {
            for k in 0..n {
                let i = (round + k) % n;
                let batch = (self.entries[i].run)(iters[i]);
                ns[i].push(batch.elapsed.as_nanos() as f64 / iters[i] as f64);
                work[i].push(batch.work as f64 / iters[i] as f64);
            }
        }
        println!(
            "{} ({} rounds, interleaved, {:.1} s)",
            self.group,
            self.rounds,
            started.elapsed().as_secs_f64()
        );
        let mut variants = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let mut sorted = ns[i].clone();
            sorted.sort_by(f64::total_cmp);
            // The upper median for an even count: a console summary only; the report
            // computes its own.
            println!(
                "  {:<40} median {:>12.1} ns/iter  min {:>12.1}  max {:>12.1}  ({} iters/round)",
                format!("{}/{}", e.variant, e.param),
                sorted[sorted.len() / 2],
                sorted[0],
                sorted[sorted.len() - 1],
                iters[i]
            );
            variants.push(json!({
                "variant": e.variant,
                "param": e.param,
                "iters": iters[i],
                "fixed": e.fixed.is_some(),
                "ns_per_iter": ns[i],
                "work_per_iter": work[i],
            }));
        }
        super::write_json(
            &format!("rounds_{}", self.group),
            &json!({ "group": self.group, "rounds": self.rounds, "variants": variants }),
        );
    }
}

/// The batch size whose time is about `target`: doubles from 1 until a batch takes a
/// quarter of it, then scales. Every batch run here is also warm-up.
fn calibrate(run: &mut dyn FnMut(u64) -> Batch, target: Duration) -> u64 {
    let mut iters = 1u64;
    loop {
        let t = run(iters).elapsed.max(Duration::from_nanos(1));
        if t >= target / 4 || iters >= 1 << 40 {
            let scaled = iters as f64 * target.as_secs_f64() / t.as_secs_f64();
            return (scaled.round() as u64).max(1);
        }
        iters *= 2;
    }
}
