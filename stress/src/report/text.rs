//! The tables printed at the end of a run, for any number of backends:
//!
//! - [`table`]: one row per scenario and backend, every measured column, then the notes;
//! - [`throughput`]: one row per scenario, one column per backend, each against the
//!   baseline backend of the same scenario (the same unit of work on every backend);
//! - [`depths`]: `deep`'s depth per mechanism and backend.

use std::fmt::Write as _;

use super::{DepthReached, Outcome, dash, kib, si, time};
use crate::backends;

/// The ratios of `o`'s throughput to the baseline's in the same scenario, one per slice
/// (the two ran alternately, slice by slice), or the overall ratio if the slices do not pair
/// up; empty if either did not run.
fn ratios(o: &Outcome, outcomes: &[Outcome]) -> Vec<f64> {
    let Some(base) = outcomes.iter().find(|b| {
        b.scenario == o.scenario && b.backend == backends::BASELINE && b.skipped.is_none()
    }) else {
        return Vec::new();
    };
    if o.skipped.is_some() || base.ops_per_sec() <= 0.0 || o.ops_per_sec() <= 0.0 {
        return Vec::new();
    }
    let paired = o.slice_rates.len() == base.slice_rates.len()
        && !o.slice_rates.is_empty()
        && base.slice_rates.iter().all(|r| *r > 0.0);
    if paired {
        o.slice_rates
            .iter()
            .zip(&base.slice_rates)
            .map(|(r, b)| r / b)
            .collect()
    } else {
        vec![o.ops_per_sec() / base.ops_per_sec()]
    }
}

/// `o`'s throughput over the baseline's in the same scenario, if both ran: the median of
/// the per-slice ratios.
pub(crate) fn ratio_to_baseline(o: &Outcome, outcomes: &[Outcome]) -> Option<f64> {
    let mut r = ratios(o, outcomes);
    r.sort_by(f64::total_cmp);
    match r.len() {
        0 => None,
        n if n % 2 == 1 => Some(r[n / 2]),
        n => Some((r[n / 2 - 1] + r[n / 2]) / 2.0),
    }
}

/// The smallest and largest per-slice ratio, with two slices or more.
pub(crate) fn ratio_range(o: &Outcome, outcomes: &[Outcome]) -> Option<(f64, f64)> {
    let r = ratios(o, outcomes);
    (r.len() > 1).then(|| {
        let min = r.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    })
}

/// The ratio as a cell: the median, and the range of the slices' ratios (the baseline's own
/// row reads 1.00).
pub(crate) fn ratio_cell(o: &Outcome, outcomes: &[Outcome]) -> String {
    match (ratio_to_baseline(o, outcomes), ratio_range(o, outcomes)) {
        (Some(r), _) if o.backend == backends::BASELINE => format!("{r:.2}"),
        (Some(r), Some((lo, hi))) => format!("{r:.2} ({lo:.2}–{hi:.2})"),
        (Some(r), None) => format!("{r:.2}"),
        _ => "-".into(),
    }
}

/// The lock recorder's figures as `dependencies/cycles/nesting warnings`.
pub(crate) fn locks(o: &Outcome) -> String {
    dash(o.lockdep.as_ref(), |l| {
        format!(
            "{}/{}/{}",
            l.dependencies,
            l.cycles.len(),
            l.nesting_warnings
        )
    })
}

/// Errors lost of errors checked, `-` if nothing needed checking.
pub(crate) fn errors(o: &Outcome) -> String {
    if o.errors.checked == 0 {
        "-".into()
    } else {
        format!("{}/{}", o.errors.lost, o.errors.checked)
    }
}

/// Lays `rows` out under `header`: the first `text` columns and the last one left-aligned,
/// the rest right-aligned.
fn layout(header: &[String], rows: &[Vec<String>], text: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i < text || i == cells.len() - 1 {
                let _ = write!(s, "{cell}{pad}");
            } else {
                let _ = write!(s, "{pad}{cell}");
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &rule);
    for row in rows {
        line(&mut out, row);
    }
    out
}

/// The main table: one row per scenario and backend, then every row's notes.
pub(crate) fn table(outcomes: &[Outcome]) -> String {
    let header: Vec<String> = [
        "scenario",
        "backend",
        "unit",
        "per s",
        &format!("×{}", backends::BASELINE),
        "callbacks",
        "violations",
        "leaked",
        "depth",
        "peak stack",
        "p50",
        "p99",
        "errors lost",
        "locks d/c/w",
        "result",
    ]
    .map(String::from)
    .into();
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let run = o.skipped.is_none();
            let ran = |s: String| if run { s } else { "-".to_string() };
            vec![
                o.scenario.to_string(),
                o.backend.to_string(),
                o.unit.to_string(),
                ran(si(o.ops_per_sec())),
                ratio_cell(o, outcomes),
                ran(o.callbacks_delivered.to_string()),
                ran(o.violations.to_string()),
                ran(o.leaked.to_string()),
                dash(o.depth, |d| d.to_string()),
                dash(o.peak_stack_bytes, |b| kib(Some(b))),
                dash(o.latency, |l| time(l.p50_ns)),
                dash(o.latency, |l| time(l.p99_ns)),
                errors(o),
                locks(o),
                o.result().to_string(),
            ]
        })
        .collect();
    let mut out = layout(&header, &rows, 3);
    for o in outcomes {
        let problems = o.problems.iter().cloned();
        let limits = o.known_limits.iter().map(|l| format!("known limit: {l}"));
        let notes = o.notes.iter().cloned();
        let skipped = o.skipped.iter().map(|s| format!("skipped: {s}"));
        for note in problems.chain(limits).chain(notes).chain(skipped) {
            let _ = writeln!(out, "  {}/{}: {note}", o.scenario, o.backend);
        }
    }
    out
}

/// The backends of a run, in the order they ran (that of `backends::ALL`).
pub(crate) fn backends_of(outcomes: &[Outcome]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for o in outcomes {
        if !names.contains(&o.backend) {
            names.push(o.backend);
        }
    }
    names
}

/// The scenarios of a run, in the order they ran.
pub(crate) fn scenarios_of(outcomes: &[Outcome]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for o in outcomes {
        if !names.contains(&o.scenario) {
            names.push(o.scenario);
        }
    }
    names
}

/// A backend's throughput cell: the rate, and the ratio to the baseline where there is one.
pub(crate) fn rate_cell(o: Option<&Outcome>, outcomes: &[Outcome]) -> String {
    match o {
        None => "-".into(),
        Some(o) if o.skipped.is_some() => "skipped".into(),
        Some(o) if o.backend == backends::BASELINE => si(o.ops_per_sec()),
        Some(o) => match (ratio_to_baseline(o, outcomes), ratio_range(o, outcomes)) {
            (Some(r), Some((lo, hi))) => {
                format!("{} ({r:.2}×, {lo:.2}–{hi:.2})", si(o.ops_per_sec()))
            }
            (Some(r), None) => format!("{} ({r:.2}×)", si(o.ops_per_sec())),
            _ => si(o.ops_per_sec()),
        },
    }
}

/// One row per scenario, one column per backend: the throughput in the scenario's unit,
/// and its ratio to the baseline's.
pub(crate) fn throughput(outcomes: &[Outcome]) -> String {
    let names = backends_of(outcomes);
    let mut header = vec!["scenario".to_string(), "unit".to_string()];
    header.extend(names.iter().map(|b| format!("{b} /s")));
    let rows: Vec<Vec<String>> = scenarios_of(outcomes)
        .into_iter()
        .map(|scenario| {
            let of = |b: &str| {
                outcomes
                    .iter()
                    .find(|o| o.scenario == scenario && o.backend == b)
            };
            let unit = outcomes
                .iter()
                .find(|o| o.scenario == scenario)
                .map_or("", |o| o.unit);
            let mut row = vec![scenario.to_string(), unit.to_string()];
            row.extend(names.iter().map(|b| rate_cell(of(b), outcomes)));
            row
        })
        .collect();
    let mut out = format!(
        "throughput per backend (the same unit of work on every backend; ratios against {}: the median of the slices' ratios, and their range)\n",
        backends::BASELINE
    );
    // Every column is a number: all right-aligned after the first two.
    out.push_str(&layout(&header, &rows, 2));
    out
}

/// One mechanism's depth as a cell: the deepest passing depth, and where it broke.
pub(crate) fn depth_cell(p: &DepthReached) -> String {
    let passed = p.survived.map_or("none".to_string(), |d| d.to_string());
    match p.failed_at {
        Some(bad) => format!("{passed} (breaks at ~{bad})"),
        None => format!("{passed} (all passed)"),
    }
}

/// `deep`'s depth per mechanism (rows) and backend (columns); empty if `deep` did not run.
pub(crate) fn depths(outcomes: &[Outcome]) -> String {
    let deep: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.depth_probes.is_empty())
        .collect();
    if deep.is_empty() {
        return String::new();
    }
    let mut header = vec!["deep: depth on".to_string()];
    header.extend(deep.iter().map(|o| o.backend.to_string()));
    let mechanisms: Vec<&str> = deep[0].depth_probes.iter().map(|p| p.mechanism).collect();
    let rows: Vec<Vec<String>> = mechanisms
        .iter()
        .map(|m| {
            let mut row = vec![m.to_string()];
            row.extend(deep.iter().map(|o| {
                o.depth_probes
                    .iter()
                    .find(|p| p.mechanism == *m)
                    .map_or("-".into(), depth_cell)
            }));
            row
        })
        .collect();
    let mut out = String::from("depth reached per mechanism (child processes, 256 KiB stacks)\n");
    out.push_str(&layout(&header, &rows, 1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(scenario: &'static str, backend: &'static str, ops: u64) -> Outcome {
        let mut o = Outcome::new(scenario, backend, 1, 2);
        o.seconds = 1.0;
        o.ops = ops;
        o
    }

    #[test]
    fn table_shows_dashes_for_unmeasured_columns() {
        let mut o = outcome("flat", "rcu", 2_500_000);
        o.callbacks_delivered = 10;
        let t = table(&[o]);
        assert!(t.contains("2.50M"), "{t}");
        assert!(t.lines().nth(2).unwrap().contains(" -  "), "{t}");
        assert!(t.contains("ok"), "{t}");
    }

    #[test]
    fn the_ratio_is_the_median_of_the_paired_slices() {
        let mut base = outcome("flat", backends::BASELINE, 3_000);
        base.slice_rates = vec![1000.0, 1000.0, 1000.0];
        let mut rcu = outcome("flat", "rcu", 6_000);
        rcu.slice_rates = vec![1000.0, 3000.0, 2000.0];
        let all = [base, rcu];
        assert_eq!(ratio_to_baseline(&all[1], &all), Some(2.0));
        assert_eq!(ratio_range(&all[1], &all), Some((1.0, 3.0)));
        assert_eq!(ratio_cell(&all[1], &all), "2.00 (1.00–3.00)");
    }

    #[test]
    fn ratios_are_against_the_baseline_for_any_number_of_backends() {
        let all = [
            outcome("flat", backends::BASELINE, 1_000_000),
            outcome("flat", "rcu", 2_000_000),
            outcome("flat", "third", 500_000),
        ];
        assert_eq!(ratio_to_baseline(&all[1], &all), Some(2.0));
        assert_eq!(ratio_to_baseline(&all[2], &all), Some(0.5));
        let t = throughput(&all);
        assert!(
            t.contains("2.00M (2.00×)") && t.contains("500.00k (0.50×)"),
            "{t}"
        );
        // No baseline in the run: no ratio.
        assert_eq!(ratio_to_baseline(&all[1], &all[1..]), None);
    }
}
