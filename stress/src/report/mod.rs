//! Results: one [`Outcome`] per scenario and backend, and the whole run ([`RunReport`], the
//! JSON file).
//!
//! - [`text`]: the tables printed at the end of a run;
//! - [`markdown`]: the results file (`--markdown`), the same tables as a document.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub(crate) mod markdown;
pub(crate) mod text;

/// Signal-to-callback latency of one run, in nanoseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: u64,
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) max_ns: u64,
}

impl Latency {
    /// `None` if the histogram is empty.
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            samples: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
        })
    }
}

/// What the lock recorder (`rcu_fence::lockdep`) saw during one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct LockSummary {
    /// Distinct lock-class dependencies ("class A held while taking class B").
    pub(crate) dependencies: u64,
    /// Acquisitions of a lock while another lock of the same class was held.
    pub(crate) same_class: u64,
    /// Cycles between lock classes (potential ABBA deadlocks), as `a→b→a`.
    pub(crate) cycles: Vec<String>,
    /// The kernel's nesting `WARN_ON`s: containers built over containers it forbids.
    pub(crate) nesting_warnings: u64,
}

impl LockSummary {
    pub(crate) fn from_report(report: &rcu_fence::lockdep::LockdepReport) -> LockSummary {
        LockSummary {
            dependencies: report.dependencies.len() as u64,
            same_class: report.same_class.iter().map(|(_, n)| n).sum(),
            cycles: report
                .cycles
                .iter()
                .map(|cycle| {
                    let names: Vec<&str> = cycle
                        .iter()
                        .chain(cycle.first())
                        .map(|c| c.name())
                        .collect();
                    names.join("→")
                })
                .collect(),
            nesting_warnings: report.nesting_warning_count(),
        }
    }

    /// Adds a later run's figures (a slice of the same scenario): the larger number of
    /// distinct dependencies, the sums of the counts, every cycle of either.
    pub(crate) fn add(&mut self, other: &LockSummary) {
        self.dependencies = self.dependencies.max(other.dependencies);
        self.same_class += other.same_class;
        self.nesting_warnings += other.nesting_warnings;
        for c in &other.cycles {
            if !self.cycles.contains(c) {
                self.cycles.push(c.clone());
            }
        }
    }

    /// The larger of each count, and every cycle of either (another view of the same run:
    /// a child process's).
    pub(crate) fn merge(&mut self, other: &LockSummary) {
        self.dependencies = self.dependencies.max(other.dependencies);
        self.same_class = self.same_class.max(other.same_class);
        self.nesting_warnings = self.nesting_warnings.max(other.nesting_warnings);
        for c in &other.cycles {
            if !self.cycles.contains(c) {
                self.cycles.push(c.clone());
            }
        }
    }

    /// True if the kernel's lockdep or its nesting `WARN_ON`s would object: a cycle, a
    /// same-class nesting ("possible recursive locking") or a nesting warning.
    pub(crate) fn objects(&self) -> bool {
        !self.cycles.is_empty() || self.same_class > 0 || self.nesting_warnings > 0
    }
}

/// Containers checked for the error rule ("a container that signals carries an error
/// whenever a member under it failed"), and how many did not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorTally {
    /// Checks made: a container (or a merge or unwrap of one) seen signalled after a
    /// member under it failed.
    pub(crate) checked: u64,
    /// Of those, how many carried no error.
    pub(crate) lost: u64,
    /// Where the first few were lost.
    pub(crate) first: Vec<String>,
}

impl ErrorTally {
    /// Adds `other`'s checks to these.
    pub(crate) fn add(&mut self, other: &ErrorTally) {
        self.checked += other.checked;
        self.lost += other.lost;
        for w in &other.first {
            if self.first.len() < 4 {
                self.first.push(w.clone());
            }
        }
    }
}

/// How deep one mechanism of `deep` went on one backend, probed in child processes.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct DepthReached {
    /// `signal`, `enable` or `put`.
    pub(crate) mechanism: &'static str,
    /// The deepest depth that passed.
    pub(crate) survived: Option<u64>,
    /// The depth tried: every depth up to it passed if `failed_at` is `None`.
    pub(crate) tried: u64,
    /// The smallest depth seen failing.
    pub(crate) failed_at: Option<u64>,
    /// How that failure ended, and in which phase.
    pub(crate) failure: Option<String>,
    /// Peak stack at the shallowest passing depth: `(depth, bytes)`.
    pub(crate) peak_shallow: Option<(u64, u64)>,
    /// Peak stack at the deepest passing depth.
    pub(crate) peak_deepest: Option<u64>,
}

/// What one scenario measured on one backend: every column of the final tables.
///
/// A scenario fills what it measures and leaves the rest `None` (shown as `-`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) scenario: &'static str,
    pub(crate) backend: &'static str,
    /// What one of `ops` is (the scenario's unit, the same on every backend).
    pub(crate) unit: &'static str,
    /// The seed this run's random choices came from.
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    /// Wall time of the measured part.
    pub(crate) seconds: f64,
    /// Units of work done in the measured part.
    pub(crate) ops: u64,
    /// Callbacks that `add_callback` accepted.
    pub(crate) callbacks_installed: u64,
    /// Callbacks that ran (must equal installed minus removed).
    pub(crate) callbacks_delivered: u64,
    /// Callbacks taken back by a `remove_callback` that returned true.
    pub(crate) callbacks_removed: u64,
    /// Broken promises: exactly-once, remove semantics, status, container rules, and
    /// (on a strict backend) lost errors and failed depth probes.
    pub(crate) violations: u64,
    /// Objects still alive after the scenario dropped everything.
    pub(crate) leaked: u64,
    /// What was broken or leaked, first few (every slice's).
    pub(crate) problems: Vec<String>,
    /// Deepest nesting built and completed (leaves are depth 0).
    pub(crate) depth: Option<u64>,
    /// `deep`: the depth each mechanism survived in child processes.
    pub(crate) depth_probes: Vec<DepthReached>,
    /// Deepest stack seen, in bytes.
    pub(crate) peak_stack_bytes: Option<u64>,
    pub(crate) latency: Option<Latency>,
    /// What the lock recorder saw (backends whose locks it records).
    pub(crate) lockdep: Option<LockSummary>,
    /// The error rule, checked.
    pub(crate) errors: ErrorTally,
    /// The kernel's rules biting on a backend that keeps them (a stack overflow on
    /// nesting, a lock-class cycle, a lost error): reported, and not a failure. Never set
    /// on a strict backend, where such a thing is a violation.
    pub(crate) known_limits: Vec<String>,
    /// Set when the scenario did not run on this backend, with the reason.
    pub(crate) skipped: Option<String>,
    /// Anything else worth reading (the first slice's).
    pub(crate) notes: Vec<String>,
    /// Throughput of each slice, in the order they ran: the samples of the ratios.
    pub(crate) slice_rates: Vec<f64>,
    /// Which slice this is (0 for a combined outcome).
    #[serde(skip)]
    pub(crate) slice: usize,
    /// A lock pass: a short run with the lock recorder on, for its lock report (and its
    /// checks) only; not timed, so the recorder's cost stays out of the throughput and the
    /// latencies.
    #[serde(skip)]
    pub(crate) lock_pass: bool,
    /// The latency samples, kept for combining slices.
    #[serde(skip)]
    pub(crate) histogram: Option<Histogram<u64>>,
}

impl Outcome {
    pub(crate) fn new(
        scenario: &'static str,
        backend: &'static str,
        seed: u64,
        threads: usize,
    ) -> Outcome {
        Outcome {
            scenario,
            backend,
            unit: "ops",
            seed,
            threads,
            seconds: 0.0,
            ops: 0,
            callbacks_installed: 0,
            callbacks_delivered: 0,
            callbacks_removed: 0,
            violations: 0,
            leaked: 0,
            problems: Vec::new(),
            depth: None,
            depth_probes: Vec::new(),
            peak_stack_bytes: None,
            latency: None,
            lockdep: None,
            errors: ErrorTally::default(),
            known_limits: Vec::new(),
            skipped: None,
            notes: Vec::new(),
            slice_rates: Vec::new(),
            lock_pass: false,
            slice: 0,
            histogram: None,
        }
    }

    pub(crate) fn set_elapsed(&mut self, elapsed: Duration) {
        self.seconds = elapsed.as_secs_f64();
    }

    pub(crate) fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Records a known limit on a backend that keeps the kernel's rules, or a violation on
    /// a strict one (where nothing is excused).
    pub(crate) fn limit(&mut self, strict: bool, what: String) {
        if strict {
            self.violations += 1;
            self.problems.push(what);
        } else {
            self.known_limits.push(what);
        }
    }

    /// True if this row fails the run: a violation or a leak. (Known limits are never
    /// counted as violations, so they never fail a run.)
    pub(crate) fn failed(&self) -> bool {
        self.skipped.is_none() && (self.violations > 0 || self.leaked > 0)
    }

    /// The row's outcome in a word or two.
    pub(crate) fn result(&self) -> &'static str {
        if self.skipped.is_some() {
            "skipped"
        } else if self.failed() {
            "FAIL"
        } else if !self.known_limits.is_empty() {
            "known limit"
        } else {
            "ok"
        }
    }

    /// One line for progress output.
    pub(crate) fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("skipped: {why}");
        }
        format!(
            "{:.1} s, {} {}/s, {} callbacks, {} violations, {} leaked{}",
            self.seconds,
            si(self.ops_per_sec()),
            self.unit,
            self.callbacks_delivered,
            self.violations,
            self.leaked,
            if self.failed() { "  FAILED" } else { "" }
        )
    }
}

/// 1234567.0 → "1.23M".
pub(crate) fn si(v: f64) -> String {
    let (v, unit) = match v {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    if unit.is_empty() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Nanoseconds as a short human time.
pub(crate) fn time(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 => format!("{:.2}s", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}µs", n as f64 / 1e3),
        n => format!("{n}ns"),
    }
}

/// Bytes as KiB; `≥` when the whole painted part of a measured stack was used (the true
/// peak is then at least that).
pub(crate) fn kib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| {
        let at_least = if b >= crate::stack::PAINTED as u64 {
            "≥"
        } else {
            ""
        };
        format!("{at_least}{:.1} KiB", b as f64 / 1024.0)
    })
}

pub(crate) fn dash<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".to_string())
}

/// One outcome of a scenario on a backend from its slices (run alternately with the other
/// backends' slices): the work, callbacks, violations and leaks summed, the deepest depth and
/// stack, the latency samples merged, every slice's problems, the first slice's notes, each
/// slice's throughput kept for the ratios. Then the known limits that follow from the
/// totals: errors lost (a violation on a strict backend already) and the lock recorder's
/// objections.
pub(crate) fn combine(parts: &[Outcome]) -> Outcome {
    let timed = parts.iter().filter(|p| !p.lock_pass).count();
    let first = parts.iter().find(|p| !p.lock_pass).unwrap_or(&parts[0]);
    let spec = crate::backends::spec(first.backend);
    let strict = spec.is_none_or(|b| b.strict);
    let mut o = Outcome::new(first.scenario, first.backend, first.seed, first.threads);
    o.unit = first.unit;
    o.skipped = first.skipped.clone();
    o.notes = first.notes.clone();
    let many = timed > 1;
    for p in parts {
        if !p.lock_pass {
            o.seconds += p.seconds;
            o.ops += p.ops;
            if let Some(h) = &p.histogram {
                match &mut o.histogram {
                    Some(all) => {
                        let _ = all.add(h);
                    }
                    None => o.histogram = Some(h.clone()),
                }
            }
            if p.skipped.is_none() {
                o.slice_rates.push(p.ops_per_sec());
            }
        }
        o.callbacks_installed += p.callbacks_installed;
        o.callbacks_delivered += p.callbacks_delivered;
        o.callbacks_removed += p.callbacks_removed;
        o.violations += p.violations;
        o.leaked += p.leaked;
        let at = |what: &String| {
            if p.lock_pass {
                format!("lock pass: {what}")
            } else if many {
                format!("slice {}: {what}", p.slice + 1)
            } else {
                what.clone()
            }
        };
        o.problems.extend(p.problems.iter().map(at));
        o.depth = o.depth.max(p.depth);
        o.depth_probes.extend(p.depth_probes.iter().cloned());
        o.peak_stack_bytes = o.peak_stack_bytes.max(p.peak_stack_bytes);
        if let Some(l) = &p.lockdep {
            o.lockdep.get_or_insert_with(LockSummary::default).add(l);
        }
        o.errors.add(&p.errors);
        for l in &p.known_limits {
            if !o.known_limits.contains(l) {
                o.known_limits.push(l.clone());
            }
        }
    }
    o.latency = o.histogram.as_ref().and_then(Latency::from_histogram);
    if many && o.skipped.is_none() {
        o.notes = o
            .notes
            .iter()
            .map(|n| format!("slice 1 of {timed}: {n}"))
            .collect();
    }
    if !strict && o.errors.lost > 0 {
        o.known_limits.push(format!(
            "errors lost: {} of {} containers over a failed member signalled without an error (first: {})",
            o.errors.lost,
            o.errors.checked,
            o.errors.first.join("; ")
        ));
    }
    if let Some(lock) = o.lockdep.clone().filter(LockSummary::objects) {
        let mut parts = Vec::new();
        if !lock.cycles.is_empty() {
            parts.push(format!("lock-class cycles {}", lock.cycles.join(", ")));
        }
        if lock.same_class > 0 {
            parts.push(format!("{} same-class nestings", lock.same_class));
        }
        if lock.nesting_warnings > 0 {
            parts.push(format!("{} nesting warnings", lock.nesting_warnings));
        }
        o.limit(
            strict,
            format!("lock recorder objects: {}", parts.join(", ")),
        );
    }
    o
}

/// Combines the slice outcomes of a run, grouped by scenario and backend in the order
/// they first ran.
pub(crate) fn combine_all(slices: &[Outcome]) -> Vec<Outcome> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for o in slices {
        if !keys.contains(&(o.scenario, o.backend)) {
            keys.push((o.scenario, o.backend));
        }
    }
    keys.into_iter()
        .map(|(s, b)| {
            let parts: Vec<Outcome> = slices
                .iter()
                .filter(|o| o.scenario == s && o.backend == b)
                .cloned()
                .collect();
            combine(&parts)
        })
        .collect()
}

/// The machine a run ran on.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    /// Available parallelism.
    pub(crate) cores: usize,
    /// The CPU's model name, where the system tells it.
    pub(crate) cpu: Option<String>,
}

impl Machine {
    pub(crate) fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
        }
    }
}

/// One backend of the run, as the results file introduces it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BackendInfo {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    /// Every guarantee enforced (no known limits).
    pub(crate) strict: bool,
}

/// One row of the results: the outcome, and its throughput against the baseline's.
#[derive(Debug, Serialize)]
pub(crate) struct Row<'a> {
    #[serde(flatten)]
    pub(crate) outcome: &'a Outcome,
    /// Units of work per second.
    pub(crate) per_second: f64,
    /// `per_second` over the baseline backend's in the same scenario: the median of the
    /// slices' ratios.
    pub(crate) ratio_to_baseline: Option<f64>,
    /// The smallest and largest of the slices' ratios (with two slices or more).
    pub(crate) ratio_range: Option<(f64, f64)>,
}

/// The whole run, as written by `--json` and `--markdown`.
#[derive(Debug, Serialize)]
pub(crate) struct RunReport<'a> {
    /// The command that produced it.
    pub(crate) command: String,
    /// When it started, UTC.
    pub(crate) date: String,
    pub(crate) machine: Machine,
    /// Wall time of the whole run.
    pub(crate) duration_seconds: f64,
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) seconds_per_scenario: Option<f64>,
    pub(crate) ops_per_scenario: Option<u64>,
    /// Slices each scenario's budget was split into, run alternately on each backend.
    pub(crate) slices: usize,
    pub(crate) depth: usize,
    pub(crate) width: usize,
    pub(crate) quick: bool,
    /// The backend every ratio is taken against.
    pub(crate) baseline: &'static str,
    pub(crate) backends: Vec<BackendInfo>,
    pub(crate) passed: bool,
    /// Set when the watchdog stopped the run.
    pub(crate) stalled: Option<String>,
    pub(crate) results: Vec<Row<'a>>,
}

impl RunReport<'_> {
    /// The results' outcomes.
    pub(crate) fn outcomes(&self) -> Vec<Outcome> {
        self.results.iter().map(|r| r.outcome.clone()).collect()
    }

    pub(crate) fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    pub(crate) fn write_markdown(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, markdown::document(self))
    }
}

/// The rows of `outcomes`, each with its ratio to the baseline.
pub(crate) fn rows(outcomes: &[Outcome]) -> Vec<Row<'_>> {
    outcomes
        .iter()
        .map(|o| Row {
            outcome: o,
            per_second: o.ops_per_sec(),
            ratio_to_baseline: text::ratio_to_baseline(o, outcomes),
            ratio_range: text::ratio_range(o, outcomes),
        })
        .collect()
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (the civil calendar of
/// <http://howardhinnant.github.io/date_algorithms.html>, `civil_from_days`).
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_723), "2000-02-29 01:02 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn known_limits_are_violations_on_a_strict_backend_only() {
        let mut o = Outcome::new("deep", "rcu", 1, 2);
        o.limit(true, "stack overflow".into());
        assert!(o.failed() && o.known_limits.is_empty());
        let mut o = Outcome::new("deep", "locked", 1, 2);
        o.limit(false, "stack overflow".into());
        assert!(!o.failed() && o.result() == "known limit");
        o.violations = 1;
        assert!(o.failed(), "a known limit excuses no violation");
    }

    #[test]
    fn a_lock_pass_is_checked_but_not_timed() {
        let slice = |i: usize, ops: u64| {
            let mut o = Outcome::new("readers", "locked", 1, 2);
            (o.slice, o.seconds, o.ops) = (i, 1.0, ops);
            o
        };
        let mut pass = slice(2, 1);
        pass.lock_pass = true;
        pass.violations = 1;
        pass.lockdep = Some(LockSummary {
            cycles: vec!["array→chain→array".into()],
            ..LockSummary::default()
        });
        let o = combine(&[slice(0, 100), slice(1, 300), pass]);
        assert_eq!((o.ops, o.seconds), (400, 2.0));
        assert_eq!(o.slice_rates, vec![100.0, 300.0]);
        assert_eq!(o.violations, 1);
        assert_eq!(o.lockdep.map(|l| l.cycles.len()), Some(1));
    }
}
