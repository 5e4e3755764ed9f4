//! Results: one [`Outcome`] per scenario and backend, the final table and the JSON file.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::backends;

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

/// What one scenario measured on one backend: every column of the final table.
///
/// A scenario fills what it measures and leaves the rest `None` (shown as `-`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) scenario: &'static str,
    pub(crate) backend: &'static str,
    /// The seed this run's random choices came from.
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    /// Wall time of the measured part.
    pub(crate) seconds: f64,
    /// Fence operations performed (each API call counts one).
    pub(crate) ops: u64,
    /// Callbacks that `add_callback` accepted.
    pub(crate) callbacks_installed: u64,
    /// Callbacks that ran (must equal installed minus removed).
    pub(crate) callbacks_delivered: u64,
    /// Callbacks taken back by a `remove_callback` that returned true.
    pub(crate) callbacks_removed: u64,
    /// Broken promises: exactly-once, remove semantics, status, deadlock.
    pub(crate) violations: u64,
    /// Objects still alive after the scenario dropped everything.
    pub(crate) leaked: u64,
    /// Deepest stack seen, in bytes.
    pub(crate) peak_stack_bytes: Option<u64>,
    pub(crate) latency: Option<Latency>,
    /// Distinct lock-class dependencies recorded (Locked backend).
    pub(crate) lock_dependencies: Option<u64>,
    /// Set when a failure on the `Locked` backend is one of the kernel's rules biting (it is
    /// reported, and does not fail the run). Never set for the `Rcu` backend.
    pub(crate) known_limit: Option<String>,
    /// Set when the scenario did not run on this backend, with the reason.
    pub(crate) skipped: Option<String>,
    /// What went wrong, first few, and anything else worth reading.
    pub(crate) notes: Vec<String>,
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
            seed,
            threads,
            seconds: 0.0,
            ops: 0,
            callbacks_installed: 0,
            callbacks_delivered: 0,
            callbacks_removed: 0,
            violations: 0,
            leaked: 0,
            peak_stack_bytes: None,
            latency: None,
            lock_dependencies: None,
            known_limit: None,
            skipped: None,
            notes: Vec::new(),
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

    /// True if this row fails the run: violations or leaks not explained by a known limit of
    /// the classic scheme.
    pub(crate) fn failed(&self) -> bool {
        self.skipped.is_none()
            && (self.violations > 0 || self.leaked > 0)
            && (self.known_limit.is_none()
                || crate::backends::spec(self.backend).is_none_or(|b| b.strict))
    }

    /// One line for progress output.
    pub(crate) fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("skipped: {why}");
        }
        format!(
            "{:.1} s, {} ops/s, {} callbacks, {} violations, {} leaked{}",
            self.seconds,
            si(self.ops_per_sec()),
            self.callbacks_delivered,
            self.violations,
            self.leaked,
            if self.failed() { "  FAILED" } else { "" }
        )
    }
}

/// 1234567.0 → "1.23M".
fn si(v: f64) -> String {
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
fn time(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 => format!("{:.2}s", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}µs", n as f64 / 1e3),
        n => format!("{n}ns"),
    }
}

fn dash<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".to_string())
}

/// `o`'s throughput over the baseline's in the same scenario, if both ran.
pub(crate) fn ratio_to_baseline(o: &Outcome, outcomes: &[Outcome]) -> Option<f64> {
    let base = outcomes.iter().find(|b| {
        b.scenario == o.scenario && b.backend == backends::BASELINE && b.skipped.is_none()
    })?;
    (o.skipped.is_none() && base.ops_per_sec() > 0.0 && o.ops_per_sec() > 0.0)
        .then(|| o.ops_per_sec() / base.ops_per_sec())
}

/// The final table: one row per scenario and backend.
pub(crate) fn table(outcomes: &[Outcome]) -> String {
    let ratio_header = format!("×{}", backends::BASELINE);
    let header = [
        "scenario",
        "backend",
        "ops/s",
        ratio_header.as_str(),
        "callbacks",
        "violations",
        "leaked",
        "peak stack",
        "p50",
        "p99",
        "lock deps",
        "result",
    ];
    let rows: Vec<[String; 12]> = outcomes
        .iter()
        .map(|o| {
            let result = if o.skipped.is_some() {
                "skipped".to_string()
            } else if o.failed() {
                "FAIL".to_string()
            } else if o.known_limit.is_some() {
                "known limit".to_string()
            } else {
                "ok".to_string()
            };
            let run = o.skipped.is_none();
            [
                o.scenario.to_string(),
                o.backend.to_string(),
                if run { si(o.ops_per_sec()) } else { "-".into() },
                dash(ratio_to_baseline(o, outcomes), |r| format!("{r:.2}")),
                if run {
                    o.callbacks_delivered.to_string()
                } else {
                    "-".into()
                },
                if run {
                    o.violations.to_string()
                } else {
                    "-".into()
                },
                if run {
                    o.leaked.to_string()
                } else {
                    "-".into()
                },
                dash(o.peak_stack_bytes, |b| {
                    format!("{:.1}KiB", b as f64 / 1024.0)
                }),
                dash(o.latency, |l| time(l.p50_ns)),
                dash(o.latency, |l| time(l.p99_ns)),
                dash(o.lock_dependencies, |d| d.to_string()),
                result,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            // Text left-aligned, numbers right-aligned.
            if i < 2 || i == cells.len() - 1 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}", " ".repeat(pad));
            }
            if i + 1 < cells.len() {
                out.push_str("  ");
            }
        }
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &rule);
    for row in &rows {
        line(&mut out, row);
    }
    for o in outcomes {
        for note in o.known_limit.iter().chain(&o.notes).chain(&o.skipped) {
            let _ = writeln!(out, "  {}/{}: {note}", o.scenario, o.backend);
        }
    }
    out
}

/// The whole run, as written by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct RunReport<'a> {
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) seconds_per_scenario: Option<f64>,
    pub(crate) ops_per_scenario: Option<u64>,
    pub(crate) depth: usize,
    pub(crate) width: usize,
    pub(crate) quick: bool,
    pub(crate) passed: bool,
    /// Set when the watchdog stopped the run.
    pub(crate) stalled: Option<String>,
    pub(crate) results: &'a [Outcome],
}

impl RunReport<'_> {
    pub(crate) fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_dashes_for_unmeasured_columns() {
        let mut o = Outcome::new("flat", "rcu", 1, 2);
        o.seconds = 1.0;
        o.ops = 2_500_000;
        o.callbacks_delivered = 10;
        let t = table(&[o]);
        assert!(t.contains("2.50M"), "{t}");
        assert!(t.lines().nth(2).unwrap().contains(" -  "), "{t}");
        assert!(t.contains("ok"), "{t}");
    }

    #[test]
    fn failures_on_rcu_are_never_excused() {
        let mut o = Outcome::new("nest", "rcu", 1, 2);
        o.violations = 1;
        o.known_limit = Some("anything".into());
        assert!(o.failed());
        o.backend = "locked";
        assert!(!o.failed());
    }
}
