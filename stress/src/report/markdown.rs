//! The results file (`--markdown PATH`): a run of the nesting evaluation as a markdown
//! document, written by the binary so that no measured table is copied by hand.
//!
//! The document says what produced it (command, date, seed, machine, duration), then gives
//! the main table, **shape × scheme**: one row per scenario and backend, the backends in
//! the order of `backends::ALL`, the baseline first. Every column is one question the
//! evaluation answers for every scheme: did it hold (outcome), how deep did it go, how much
//! stack, were errors lost, what did the lock recorder see (dependencies, cycles, nesting
//! warnings), how fast and with what latency. A backend added to the list adds a row to
//! every shape, which makes the table an ablation: each scheme's row next to the others
//! for the same work. Then `deep`'s depth per mechanism (signal, enable, the final put of an unsignalled and of a signalled tree), the
//! throughput with one column per scheme against the baseline, each row's known limits and
//! notes, and how to read the columns.

use std::fmt::Write as _;

use super::text::{backends_of, rate_cell, ratio_cell, scenarios_of};
use super::{DepthReached, Outcome, RunReport, kib, si, time};
use crate::backends;

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Writes one markdown table.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header.iter().map(|_| " --- |").collect::<String>()
    );
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// The short name of a known limit: its text up to the first colon.
fn tag(limit: &str) -> &str {
    limit.split(':').next().unwrap_or(limit).trim()
}

/// The outcome in a few words.
fn outcome(o: &Outcome) -> String {
    if let Some(why) = &o.skipped {
        return format!("skipped ({why})");
    }
    if o.failed() {
        return format!("FAIL: {} violations, {} leaked", o.violations, o.leaked);
    }
    if o.known_limits.is_empty() {
        return "ok".into();
    }
    let tags: Vec<&str> = o.known_limits.iter().map(|l| tag(l)).collect();
    format!("known limit: {}", tags.join("; "))
}

/// One mechanism's depth: the deepest passing depth, and the first failing one.
fn mechanism_depth(p: &DepthReached) -> String {
    let passed = p.survived.map_or("none".to_string(), group);
    match p.failed_at {
        Some(bad) => format!("{} {passed} (fails at ~{})", p.mechanism, group(bad)),
        None => format!("{} {passed}", p.mechanism),
    }
}

/// The depth column: per mechanism for `deep`, the deepest nesting built elsewhere.
fn depth(o: &Outcome) -> String {
    if !o.depth_probes.is_empty() {
        let parts: Vec<String> = o.depth_probes.iter().map(mechanism_depth).collect();
        return parts.join("; ");
    }
    o.depth.map_or("-".into(), group)
}

fn errors_lost(o: &Outcome) -> String {
    if o.errors.checked == 0 {
        "-".into()
    } else {
        format!("{} of {}", group(o.errors.lost), group(o.errors.checked))
    }
}

/// The main table's row for `o`.
fn row(o: &Outcome, all: &[Outcome]) -> Vec<String> {
    let run = o.skipped.is_none();
    let lock = o.lockdep.as_ref().filter(|_| run);
    vec![
        o.scenario.to_string(),
        o.backend.to_string(),
        outcome(o),
        if run { depth(o) } else { "-".into() },
        kib(o.peak_stack_bytes),
        if run { errors_lost(o) } else { "-".into() },
        lock.map_or("-".into(), |l| group(l.dependencies)),
        lock.map_or("-".into(), |l| {
            if l.cycles.is_empty() {
                "0".into()
            } else {
                format!("{}: {}", l.cycles.len(), l.cycles.join(", "))
            }
        }),
        lock.map_or("-".into(), |l| group(l.nesting_warnings)),
        o.latency.map_or("-".into(), |l| {
            format!("{} / {}", time(l.p50_ns), time(l.p99_ns))
        }),
        if run {
            format!("{} {}/s", si(o.ops_per_sec()), o.unit)
        } else {
            "-".into()
        },
        ratio_cell(o, all),
    ]
}

/// The whole document.
pub(crate) fn document(run: &RunReport<'_>) -> String {
    let all = run.outcomes();
    let mut out = String::new();
    let _ = writeln!(out, "# Nesting evaluation: results\n");
    let _ = writeln!(
        out,
        "Written by the stress binary (`--markdown`); regenerate it rather than edit it.\n"
    );
    let passed = all.iter().filter(|o| o.skipped.is_none() && !o.failed());
    let failed = all.iter().filter(|o| o.failed()).count();
    let skipped = all.iter().filter(|o| o.skipped.is_some()).count();
    let budget = match (run.seconds_per_scenario, run.ops_per_scenario) {
        (Some(s), Some(n)) => format!("{s:.1} s or {} units", group(n)),
        (Some(s), None) => format!("{s:.1} s"),
        (None, Some(n)) => format!("{} units", group(n)),
        (None, None) => "-".into(),
    };
    let machine = match &run.machine.cpu {
        Some(cpu) => format!("{} cores ({cpu})", run.machine.cores),
        None => format!("{} cores", run.machine.cores),
    };
    let status = match &run.stalled {
        Some(why) => format!("STOPPED by the watchdog: {why}"),
        None if run.passed => "passed".into(),
        None => "FAILED".into(),
    };
    for (k, v) in [
        ("command", format!("`{}`", run.command)),
        ("date", run.date.clone()),
        (
            "seed",
            format!("{} (replay with `--seed {}`)", run.seed, run.seed),
        ),
        ("machine", machine),
        ("threads", run.threads.to_string()),
        (
            "budget",
            format!(
                "{budget} per scenario and scheme; `deep` probed to depth {}{}",
                group(run.depth as u64),
                if run.quick { " (quick)" } else { "" }
            ),
        ),
        (
            "slices",
            format!(
                "{} per scenario, run alternately on each scheme",
                run.slices
            ),
        ),
        ("duration", format!("{:.1} s", run.duration_seconds)),
        (
            "result",
            format!(
                "{status} ({} runs passed, {failed} failed, {skipped} skipped)",
                passed.count()
            ),
        ),
    ] {
        let _ = writeln!(out, "- {k}: {v}");
    }
    let _ = writeln!(out, "\nSchemes (backends), the baseline first:\n");
    for b in &run.backends {
        let role = if b.name == run.baseline {
            " (the baseline of every ratio)"
        } else {
            ""
        };
        let _ = writeln!(out, "- **{}**{role}: {}.", b.name, b.about);
    }

    let _ = writeln!(out, "\n## Shape × scheme\n");
    let rows: Vec<Vec<String>> = all.iter().map(|o| row(o, &all)).collect();
    let ratio = format!("× {} (median, range)", backends::BASELINE);
    table(
        &mut out,
        &[
            "shape",
            "scheme",
            "outcome",
            "depth reached",
            "peak stack",
            "errors lost",
            "lock deps",
            "lock cycles",
            "nesting warnings",
            "latency p50 / p99",
            "throughput",
            &ratio,
        ],
        &rows,
    );

    let deep: Vec<&Outcome> = all.iter().filter(|o| !o.depth_probes.is_empty()).collect();
    if !deep.is_empty() {
        let _ = writeln!(
            out,
            "\n## Depth by mechanism (`deep`: arrays of arrays, child processes, 256 KiB stacks)\n"
        );
        let mut rows = Vec::new();
        for o in &deep {
            for p in &o.depth_probes {
                rows.push(vec![
                    o.backend.to_string(),
                    p.mechanism.to_string(),
                    p.survived.map_or("none".into(), group),
                    match (&p.failed_at, &p.failure) {
                        (Some(d), Some(how)) => format!("~{}: {how}", group(*d)),
                        _ => format!("none up to {}", group(p.tried)),
                    },
                    p.peak_shallow.map_or("-".into(), |(d, b)| {
                        format!("{} at {}", kib(Some(b)), group(d))
                    }),
                    kib(p.peak_deepest),
                ]);
            }
        }
        table(
            &mut out,
            &[
                "scheme",
                "mechanism",
                "deepest passed",
                "first failure",
                "peak stack, shallowest",
                "peak stack, deepest passed",
            ],
            &rows,
        );
    }

    let _ = writeln!(
        out,
        "\n## Throughput, one column per scheme (ratios against {})\n",
        backends::BASELINE
    );
    let names = backends_of(&all);
    let mut header = vec!["shape".to_string(), "unit".to_string()];
    header.extend(names.iter().map(|b| format!("{b} /s")));
    let rows: Vec<Vec<String>> = scenarios_of(&all)
        .into_iter()
        .map(|scenario| {
            let of = |b: &str| {
                all.iter()
                    .find(|o| o.scenario == scenario && o.backend == b)
            };
            let unit = of(names[0]).map_or("", |o| o.unit);
            let mut row = vec![scenario.to_string(), unit.to_string()];
            row.extend(names.iter().map(|b| rate_cell(of(b), &all)));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&mut out, &header, &rows);

    let _ = writeln!(out, "\n## Known limits and notes\n");
    for o in &all {
        let problems = o.problems.iter().map(|p| format!("**problem**: {p}"));
        let limits = o.known_limits.iter().map(|l| format!("known limit: {l}"));
        let skipped = o.skipped.iter().map(|s| format!("skipped: {s}"));
        let notes = o.notes.iter().cloned();
        for note in problems.chain(limits).chain(notes).chain(skipped) {
            let _ = writeln!(out, "- {} / {}: {note}", o.scenario, o.backend);
        }
    }

    let _ = writeln!(out, "\n## Reading the tables\n");
    for line in [
        "**outcome**: ok; known limit (the kernel's rules biting on a scheme that keeps them: reported, not a failure; never on a strict scheme, where it is a violation); FAIL (a violation or a leak: the run exits non-zero); skipped (with the reason).",
        "**depth reached**: the deepest nesting built and completed; for `deep`, the deepest passing depth of each mechanism probed alone in a child process (10, 100, ... up to the run's depth, then bisected after the first failure).",
        "**peak stack**: the deepest stack use measured on the 256 KiB threads that signal (and, in `deep`, build, enable and drop), by painting the stack first; `≥224.0 KiB` means the whole painted area was used.",
        "**errors lost**: containers (and merges, unwraps, found chain links) seen complete after a member under them failed, that carried no error, of all those checked.",
        "**lock deps / cycles / nesting warnings**: what the lock recorder (`rcu_fence::lockdep`) saw: distinct lock-class dependencies, cycles between classes (potential ABBA deadlocks) and the kernel's nesting `WARN_ON`s; `-` for a scheme that takes no recorded fence locks. Dependencies and cycles come from a lock pass after the timed slices (a quarter of a slice, recorder on, checked like every run and not timed); the timed slices run with the recorder off, as the kernel's lockdep is in production, so that its bookkeeping is not counted as the classic scheme's cost.",
        "**latency**: from the signal of the member that completed a container (or of a plain fence) to the callback.",
        "**throughput**: units of the same work on every scheme, per second of the measured part: actions (one operation: a callback added or removed, a signal, a wait, a read of a whole structure), nodes (one leaf or container built, watched, signalled or completed, and dropped), jobs, arrays. Each scenario's budget is split into slices run alternately on each scheme (in one order in even slices and the reverse in odd ones, so that no scheme always runs first or last), with the same random draws on every scheme within a slice; the ratio is the median of the per-slice ratios against the baseline, and the range shows how noisy the machine was.",
    ] {
        let _ = writeln!(out, "- {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ErrorTally, LockSummary, Machine, rows};

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(100_000), "100,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn document_has_a_row_per_shape_and_scheme() {
        let mut locked = Outcome::new("deep", backends::BASELINE, 1, 2);
        locked.seconds = 1.0;
        locked.ops = 1000;
        locked.known_limits.push("put fails: stack overflow".into());
        locked.lockdep = Some(LockSummary {
            dependencies: 3,
            cycles: vec!["array→chain→array".into()],
            ..LockSummary::default()
        });
        locked.depth_probes.push(DepthReached {
            mechanism: "put",
            survived: Some(1140),
            tried: 100_000,
            failed_at: Some(1175),
            failure: Some("stack overflow in drop".into()),
            ..DepthReached::default()
        });
        let mut rcu = Outcome::new("deep", "rcu", 1, 2);
        rcu.seconds = 1.0;
        rcu.ops = 2000;
        rcu.errors = ErrorTally {
            checked: 10,
            lost: 0,
            first: Vec::new(),
        };
        let all = [locked, rcu];
        let run = RunReport {
            command: "stress".into(),
            date: "2026-01-01 00:00 UTC".into(),
            machine: Machine {
                cores: 2,
                cpu: None,
            },
            duration_seconds: 1.0,
            seed: 1,
            threads: 2,
            seconds_per_scenario: Some(3.0),
            ops_per_scenario: None,
            slices: 1,
            depth: 100_000,
            width: 8,
            quick: false,
            baseline: backends::BASELINE,
            backends: Vec::new(),
            passed: true,
            stalled: None,
            results: rows(&all),
        };
        let doc = document(&run);
        assert!(
            doc.contains("| deep | locked | known limit: put fails |"),
            "{doc}"
        );
        assert!(doc.contains("put 1,140 (fails at ~1,175)"), "{doc}");
        assert!(doc.contains("1: array→chain→array"), "{doc}");
        assert!(doc.contains("| deep | rcu | ok |"), "{doc}");
        assert!(doc.contains("0 of 10"), "{doc}");
        assert!(doc.contains("| 2.00 |"), "{doc}");
    }
}
