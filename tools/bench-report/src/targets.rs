//! The targets: each a figure per backend, checked over its whole bracket (the spread
//! across interleaved rounds, the median's 95 % interval over the stress run's slices, or
//! criterion's 95 % intervals), so that a target that holds only at the median is reported
//! as missed.

use crate::results::Results;
use crate::stats::{Measured, per_round};

/// What a figure must satisfy.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    AtMost(f64),
    AtLeast(f64),
    Within(f64, f64),
}

impl Check {
    fn holds(self, x: f64) -> bool {
        match self {
            Check::AtMost(t) => x <= t,
            Check::AtLeast(t) => x >= t,
            Check::Within(lo, hi) => (lo..=hi).contains(&x),
        }
    }
}

/// Whether a target was met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Over the whole bracket.
    Met,
    /// At the median, not over the bracket: reported as missed.
    MedianOnly,
    Missed,
    /// Nothing was measured.
    Unknown,
}

/// One row of the targets table.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) id: &'static str,
    pub(crate) what: String,
    pub(crate) backend: String,
    pub(crate) measured: Option<Measured>,
    check: Check,
}

impl Target {
    pub(crate) fn verdict(&self) -> Verdict {
        let Some(m) = &self.measured else {
            return Verdict::Unknown;
        };
        if !m.value.is_finite() {
            Verdict::Unknown
        } else if [m.value, m.lo, m.hi].iter().all(|x| self.check.holds(*x)) {
            Verdict::Met
        } else if self.check.holds(m.value) {
            Verdict::MedianOnly
        } else {
            Verdict::Missed
        }
    }
}

/// A criterion ratio `scale · a / b` with the bracket of the two 95 % intervals.
pub(crate) fn criterion_ratio(
    r: &Results,
    a: [&str; 3],
    b: [&str; 3],
    scale: f64,
) -> Option<Measured> {
    let (x, y) = (r.estimate(a[0], a[1], a[2])?, r.estimate(b[0], b[1], b[2])?);
    Some(Measured {
        value: scale * x.median / y.median,
        lo: scale * x.lo / y.hi,
        hi: scale * x.hi / y.lo,
        basis: "criterion 95 % intervals".into(),
    })
}

/// A ratio `a / b` of two interleaved variants, round by round.
pub(crate) fn rounds_ratio(
    r: &Results,
    group: &str,
    a: [&str; 2],
    b: [&str; 2],
) -> Option<Measured> {
    let (x, y) = (
        r.rounds_of(group, a[0], a[1])?,
        r.rounds_of(group, b[0], b[1])?,
    );
    Measured::rounds(&per_round(&x.ns, &y.ns), "rounds")
}

/// A latency p50 ratio `name / floor`: the whole run's, bracketed by the blocks'.
pub(crate) fn latency_ratio(
    r: &Results,
    bench: &str,
    name: &str,
    floor: &str,
    kind: &str,
) -> Option<Measured> {
    let series = r.latency[bench].as_array()?;
    let find = |n: &str| series.iter().find(|s| s["name"] == n);
    let (a, b) = (find(name)?, find(floor)?);
    let value =
        a[format!("{kind}_ns")]["p50"].as_f64()? / b[format!("{kind}_ns")]["p50"].as_f64()?;
    let blocks = |s: &serde_json::Value| -> Vec<f64> {
        s[format!("{kind}_p50_blocks")]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let per_block = per_round(&blocks(a), &blocks(b));
    let mut m = Measured::rounds(&per_block, "blocks of samples")
        .unwrap_or_else(|| Measured::exact(value, "one run"));
    m.value = value;
    Some(m)
}

/// B10: the per-round time of `reclaimer`'s read beside a writer over the same read alone
/// (a criterion figure), bracketed by the rounds' range and the read's 95 % interval.
fn beside_writer(r: &Results, reclaimer: &str) -> Option<Measured> {
    let alone = r.estimate("b10_rcu_read", reclaimer, "1reader")?;
    let rounds = r.rounds_of("b10_rcu_read", reclaimer, "1reader_1writer")?;
    let per: Vec<f64> = rounds.ns.iter().map(|ns| ns / alone.median).collect();
    let mut m = Measured::rounds(&per, "rounds")?;
    m.lo *= alone.median / alone.hi;
    m.hi *= alone.median / alone.lo;
    m.basis = format!("{} × the read's 95 % interval", m.basis);
    Some(m)
}

/// The stress default run: `backend`'s throughput in `scenario` over the baseline's, the
/// median of the slices' ratios (as the run reports it) bracketed by the median's 95 %
/// interval over the slices ([`Measured::slices`]); from the run's own min–max if its
/// results do not carry the slices' rates.
fn stress_ratio(r: &Results, scenario: &str, backend: &str) -> Option<Measured> {
    let rows = r.stress["results"].as_array()?;
    let find = |b: &str| {
        rows.iter()
            .find(|row| row["scenario"] == scenario && row["backend"] == b)
    };
    let row = find(backend)?;
    let value = row["ratio_to_baseline"].as_f64()?;
    let rates = |row: &serde_json::Value| -> Vec<f64> {
        row["slice_rates"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let baseline = r.stress["baseline"].as_str().unwrap_or(&r.baseline);
    let (mine, base) = (rates(row), find(baseline).map(rates).unwrap_or_default());
    if mine.len() > 1 && mine.len() == base.len() && base.iter().all(|b| *b > 0.0) {
        let mut m = Measured::slices(&per_round(&mine, &base), "slices")?;
        m.value = value;
        return Some(m);
    }
    let range = row["ratio_range"].as_array();
    let bound = |i: usize| range.and_then(|a| a.get(i)).and_then(|x| x.as_f64());
    let (lo, hi) = match (bound(0), bound(1)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (value, value),
    };
    let slices = r.stress["slices"].as_u64().unwrap_or(1);
    Some(Measured {
        value,
        lo,
        hi,
        basis: format!("min–max over {slices} slices"),
    })
}

/// The scenarios of the stress run that ran on the baseline, in the run's order.
fn stress_scenarios(r: &Results) -> Vec<String> {
    let rows = r.stress["results"].as_array().into_iter().flatten();
    rows.filter(|row| row["backend"] == r.baseline.as_str() && row["skipped"].is_null())
        .filter_map(|row| row["scenario"].as_str().map(String::from))
        .collect()
}

/// Bytes per object from B9.
pub(crate) fn bytes(r: &Results, backend: &str, shapes: &[&str]) -> Option<Measured> {
    let sum = shapes
        .iter()
        .map(|s| r.alloc[backend][*s]["bytes"].as_f64())
        .sum::<Option<f64>>()?;
    Some(Measured::exact(sum, "counted"))
}

/// Every target, for every backend it applies to.
pub(crate) fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    let base = r.baseline.as_str();
    let mut each =
        |id: &'static str, what: &str, check: Check, f: &dyn Fn(&str) -> Option<Measured>| {
            for b in r.contenders() {
                t.push(Target {
                    id,
                    what: what.to_string(),
                    backend: b.to_string(),
                    measured: f(b),
                    check,
                });
            }
        };
    each(
        "B1",
        "create + 1 callback + signal ≤ 2.0× floor",
        Check::AtMost(2.0),
        &|b| {
            criterion_ratio(
                r,
                ["b1_create_signal", b, "1"],
                ["b1_create_signal", "floor", "1"],
                1.0,
            )
        },
    );
    each("B1", "… and ≤ 0.8× Locked", Check::AtMost(0.8), &|b| {
        criterion_ratio(
            r,
            ["b1_create_signal", b, "1"],
            ["b1_create_signal", base, "1"],
            1.0,
        )
    });
    each(
        "B3",
        "wake p50 ≤ 1.05× park/unpark",
        Check::AtMost(1.05),
        &|b| latency_ratio(r, "b3", b, "floor", "wake"),
    );
    each(
        "B3",
        "signalling call (one blocked waiter) ≤ 1.1× unpark",
        Check::AtMost(1.1),
        &|b| latency_ratio(r, "b3", b, "floor", "call"),
    );
    for exec in ["block_on", "tokio"] {
        let what = format!("`.await` wake p50 ≤ 1.03× bare AtomicWaker ({exec})");
        each("B4", &what, Check::AtMost(1.03), &|b| {
            latency_ratio(
                r,
                "b4",
                &format!("{b}/{exec}"),
                &format!("floor/{exec}"),
                "wake",
            )
        });
    }
    each(
        "B5",
        "array of 1024, per member ≤ 2× B1 floor (k = 1)",
        Check::AtMost(2.0),
        &|b| {
            criterion_ratio(
                r,
                ["b5_array_all", b, "1024"],
                ["b1_create_signal", "floor", "1"],
                1.0 / 1024.0,
            )
        },
    );
    each(
        "B5",
        "… and ≤ 0.3× join_all",
        Check::AtMost(0.3),
        &|b| {
            criterion_ratio(
                r,
                ["b5_array_all", b, "1024"],
                ["b5_array_all", "join_all", "1024"],
                1.0,
            )
        },
    );
    for op in ["poll_held", "iterate_pending"] {
        let what = format!("reader throughput ≥ 3× Locked ({op})");
        each("B6", &what, Check::AtLeast(3.0), &|b| {
            rounds_ratio(r, "b6_read_nested", [base, op], [b, op])
        });
    }
    each(
        "B7",
        "t(1e5) / t(1e3) in 80..120 (256 KiB stack)",
        Check::Within(80.0, 120.0),
        &|b| {
            criterion_ratio(
                r,
                ["b7_nesting", b, "100000"],
                ["b7_nesting", b, "1000"],
                1.0,
            )
        },
    );
    each(
        "B8",
        "backward ÷ forward ≤ 2 at 4096 links",
        Check::AtMost(2.0),
        &|b| rounds_ratio(r, "b8_rearm", [b, "backward_4096"], [b, "forward_4096"]),
    );
    for order in ["forward", "backward", "random"] {
        let what = format!("t(65536) / t(4096) ≤ 20 ({order})");
        let g = format!("b8_chain_{order}");
        each("B8", &what, Check::AtMost(20.0), &|b| {
            criterion_ratio(r, [&g, b, "65536"], [&g, b, "4096"], 1.0)
        });
    }
    each(
        "B9",
        "≤ 64 bytes per plain fence",
        Check::AtMost(64.0),
        &|b| bytes(r, b, &["fence"]),
    );
    each(
        "B9",
        "≤ 32 bytes per array member, enabled (slot + the callback enabling installs)",
        Check::AtMost(32.0),
        &|b| bytes(r, b, &["array_member", "array_member_enabled"]),
    );
    each(
        "B11",
        "scheduler jobs/s ≥ 1.5× Locked",
        Check::AtLeast(1.5),
        &|b| {
            let jobs = r.rounds_of_variant("b11_scheduler", b)?;
            rounds_ratio(r, "b11_scheduler", [base, &jobs], [b, &jobs])
        },
    );
    // The README's main command: every scenario at or above the baseline, `sched` at twice.
    for scenario in stress_scenarios(r) {
        let at_least = if scenario == "sched" { 2.0 } else { 1.0 };
        let what = format!("`{scenario}`: throughput ≥ {at_least:.1}× Locked");
        each("stress", &what, Check::AtLeast(at_least), &|b| {
            stress_ratio(r, &scenario, b)
        });
    }
    // The reclaimer under every RCU scheme (epoch): a reader beside a retiring writer must
    // not pay for the writer's frees.
    t.push(Target {
        id: "B10",
        what: "read beside a retiring writer ≤ 2× the read alone (epoch)".to_string(),
        backend: "rcu crate".to_string(),
        measured: beside_writer(r, "epoch"),
        check: Check::AtMost(2.0),
    });
    // The baseline's own: the classic scheme must cost what the kernel's does.
    let faithful = [
        (
            "backward ÷ forward ≥ 50 at 4096 links (the kernel's quadratic re-arm)",
            ["backward_4096", "forward_4096"],
            50.0,
        ),
        (
            "t(4096) / t(1024) ≥ 8 backward (quadratic)",
            ["backward_4096", "backward_1024"],
            8.0,
        ),
    ];
    for (what, [a, b], at_least) in faithful {
        t.push(Target {
            id: "B8",
            what: what.to_string(),
            backend: base.to_string(),
            measured: rounds_ratio(r, "b8_rearm", [base, a], [base, b]),
            check: Check::AtLeast(at_least),
        });
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads a results directory holding only the backends and a stress run.
    fn with_stress(stress: serde_json::Value) -> Results {
        let dir = std::env::temp_dir().join(format!(
            "bench-report-stress-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let backends = serde_json::json!({"backends": ["rcu", "locked"], "baseline": "locked"});
        std::fs::write(dir.join("backends.json"), backends.to_string()).unwrap();
        std::fs::write(dir.join("stress.json"), stress.to_string()).unwrap();
        let r = Results::load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn row(
        scenario: &str,
        backend: &str,
        ratio: f64,
        range: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({
            "scenario": scenario, "backend": backend, "skipped": null,
            "ratio_to_baseline": ratio, "ratio_range": range,
        })
    }

    #[test]
    fn stress_rows_are_checked_over_their_slices() {
        let mut skipped = row("reentrant", "locked", 1.0, serde_json::Value::Null);
        skipped["skipped"] = "by design".into();
        let r = with_stress(serde_json::json!({"slices": 3, "results": [
            row("flat", "locked", 1.0, serde_json::json!([1.0, 1.0])),
            row("flat", "rcu", 1.03, serde_json::json!([0.96, 1.06])),
            row("sched", "locked", 1.0, serde_json::json!([1.0, 1.0])),
            row("sched", "rcu", 2.1, serde_json::json!([2.05, 2.2])),
            row("stalled", "locked", 1.0, serde_json::Value::Null),
            row("stalled", "rcu", 0.73, serde_json::json!([])),
            skipped,
            row("reentrant", "rcu", 1.0, serde_json::Value::Null),
        ]}));
        let rows: Vec<(String, Verdict)> = targets(&r)
            .into_iter()
            .filter(|t| t.id == "stress")
            .map(|t| (t.what.clone(), t.verdict()))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "`flat`: throughput ≥ 1.0× Locked".to_string(),
                    Verdict::MedianOnly
                ),
                (
                    "`sched`: throughput ≥ 2.0× Locked".to_string(),
                    Verdict::Met
                ),
                // A malformed range falls back to the median alone.
                (
                    "`stalled`: throughput ≥ 1.0× Locked".to_string(),
                    Verdict::Missed
                ),
            ]
        );
    }

    #[test]
    fn stress_rows_with_their_slices_are_checked_over_the_median_interval() {
        // Sixteen slices: the baseline at 100 in each, `rcu` at 90, 95, 98 and then 101 up
        // to 113. The median is over 1, the three lowest slices are not; the 4th lowest is.
        let mut base = row("wide", "locked", 1.0, serde_json::json!([1.0, 1.0]));
        let mut rcu = row("wide", "rcu", 1.065, serde_json::json!([0.9, 1.13]));
        let rates: Vec<f64> = [90.0, 95.0, 98.0]
            .into_iter()
            .chain((101..=113).map(f64::from))
            .collect();
        rcu["slice_rates"] = serde_json::json!(rates);
        base["slice_rates"] = serde_json::json!(vec![100.0; 16]);
        let r = with_stress(
            serde_json::json!({"slices": 16, "baseline": "locked", "results": [base, rcu]}),
        );
        let t = targets(&r)
            .into_iter()
            .find(|t| t.id == "stress")
            .expect("a stress row");
        let m = t.measured.as_ref().expect("measured");
        assert_eq!((m.value, m.lo, m.hi), (1.065, 1.01, 1.10));
        assert_eq!(t.verdict(), Verdict::Met);
        // With a slice fewer over 1, the 4th lowest is under it: median only.
        let mut lower = rates.clone();
        lower[3] = 99.0;
        let mut r = r;
        r.stress["results"][1]["slice_rates"] = serde_json::json!(lower);
        let t = targets(&r)
            .into_iter()
            .find(|t| t.id == "stress")
            .expect("a stress row");
        assert_eq!(t.verdict(), Verdict::MedianOnly);
    }

    #[test]
    fn no_stress_run_means_no_stress_rows() {
        let r = with_stress(serde_json::Value::Null);
        assert!(targets(&r).iter().all(|t| t.id != "stress"));
    }
}
