//! Each contender against the baseline: the headline comparisons, one row each, with a
//! reading that claims an advantage only where the whole bracket lies on one side of 1.

use std::fmt::Write as _;

use crate::format::{self, Align, Table};
use crate::results::Results;
use crate::stats::Measured;
use crate::targets::{bytes, criterion_ratio, latency_ratio, rounds_ratio};

/// How to get `backend ÷ baseline` for one comparison.
type RatioFn = Box<dyn Fn(&Results, &str) -> Option<Measured>>;

/// One comparison: where it is from, and its ratio (time or bytes).
struct Row {
    bench: &'static str,
    case: String,
    ratio: RatioFn,
}

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let crit = |group: &'static str, param: &'static str| {
        Box::new(move |r: &Results, b: &str| {
            criterion_ratio(r, [group, b, param], [group, &r.baseline, param], 1.0)
        }) as RatioFn
    };
    let rounds = |group: &'static str, param: &'static str| {
        Box::new(move |r: &Results, b: &str| {
            rounds_ratio(r, group, [b, param], [&r.baseline, param])
        }) as RatioFn
    };
    for k in ["0", "1", "8"] {
        rows.push(Row {
            bench: "B1",
            case: format!("create, k = {k} callbacks, signal"),
            ratio: crit("b1_create_signal", k),
        });
    }
    rows.push(Row {
        bench: "B2",
        case: "add + remove a callback".into(),
        ratio: crit("b2_add_remove", "1"),
    });
    for (bench, what) in [
        ("b3", "blocked waiter wake p50"),
        ("b4", "`.await` wake p50, tokio"),
    ] {
        let suffix = if bench == "b4" { "/tokio" } else { "" };
        rows.push(Row {
            bench: if bench == "b3" { "B3" } else { "B4" },
            case: what.into(),
            ratio: Box::new(move |r: &Results, b: &str| {
                let base = format!("{}{suffix}", r.baseline);
                latency_ratio(r, bench, &format!("{b}{suffix}"), &base, "wake")
            }),
        });
    }
    for n in ["16", "1024"] {
        rows.push(Row {
            bench: "B5",
            case: format!("array of {n}, all signal"),
            ratio: crit("b5_array_all", n),
        });
    }
    for op in ["poll_held", "iterate_pending"] {
        rows.push(Row {
            bench: "B6",
            case: format!("reader beside a writer, {op} (time per read)"),
            ratio: rounds("b6_read_nested", op),
        });
    }
    for d in ["10", "100"] {
        rows.push(Row {
            bench: "B7",
            case: format!("cascade and drop through depth {d}"),
            ratio: crit("b7_nesting", d),
        });
    }
    for (order, n) in [("forward", "4096"), ("backward", "4096")] {
        rows.push(Row {
            bench: "B8",
            case: format!("chain of {n}, {order} (re-arm rounds)"),
            ratio: rounds(
                "b8_rearm",
                if order == "forward" {
                    "forward_4096"
                } else {
                    "backward_4096"
                },
            ),
        });
    }
    rows.push(Row {
        bench: "B8",
        case: "chain of 65536, forward".into(),
        ratio: crit("b8_chain_forward", "65536"),
    });
    rows.push(Row {
        bench: "B8",
        case: "chain of 4096, random".into(),
        ratio: crit("b8_chain_random", "4096"),
    });
    rows.push(Row {
        bench: "B8",
        case: "find_seqno, 65536 links".into(),
        ratio: crit("b8_find_seqno", "65536"),
    });
    for (case, keys) in [
        ("bytes per plain fence", &["fence"][..]),
        (
            "bytes per array member, enabled",
            &["array_member", "array_member_enabled"][..],
        ),
        (
            "bytes per chain link, enabled",
            &["chain_link", "chain_link_enabled"][..],
        ),
    ] {
        rows.push(Row {
            bench: "B9",
            case: case.into(),
            ratio: Box::new(move |r: &Results, b: &str| {
                let (x, y) = (bytes(r, b, keys)?, bytes(r, &r.baseline, keys)?);
                Some(Measured::exact(x.value / y.value, "counted"))
            }),
        });
    }
    rows.push(Row {
        bench: "B11",
        case: "scheduler, time per job".into(),
        ratio: Box::new(|r: &Results, b: &str| {
            let param = r.rounds_of_variant("b11_scheduler", b)?;
            rounds_ratio(r, "b11_scheduler", [b, &param], [&r.baseline, &param])
        }),
    });
    rows
}

/// By how much the faster side is ahead, from its ratio `x` < 1 to the other.
fn lead(x: f64) -> String {
    if x < 0.5 {
        let factor = 1.0 / x;
        let digits = if factor >= 100.0 { 0 } else { 1 };
        format!("{factor:.digits$}× at the median")
    } else {
        format!("by {:.0} % at the median", (1.0 - x) * 100.0)
    }
}

/// What the bracket allows one to say.
fn reading(m: &Measured, backend: &str, baseline: &str) -> String {
    if m.lo == m.hi && (m.value - 1.0).abs() < 0.005 {
        // A counted figure whose lead would print as "0 %" (bytes that differ by a few).
        "the same to within 0.5 %".into()
    } else if m.hi < 1.0 {
        format!("`{backend}` ahead, {}", lead(m.value))
    } else if m.lo > 1.0 {
        format!("`{baseline}` ahead, {}", lead(1.0 / m.value))
    } else {
        "not separable in this run".into()
    }
}

pub(super) fn summary(md: &mut String, r: &Results) {
    for b in r.contenders() {
        let _ = writeln!(
            md,
            "## `{b}` against `{}`: what holds\n\nEach row is `{b}` ÷ `{}` in time (or bytes), \
             so below 1 favours `{b}`; the bracket is as in the targets. An advantage is claimed \
             only where the whole bracket lies on one side of 1.\n",
            r.baseline, r.baseline
        );
        let mut table = Table::new(["id", "case", "ratio (bracket)", "bracket", "reading"])
            .align(1, Align::Left)
            .align(3, Align::Left)
            .align(4, Align::Left);
        for row in rows() {
            let m = (row.ratio)(r, b);
            table.row(vec![
                row.bench.into(),
                row.case,
                m.as_ref().map_or("–".into(), format::measured),
                m.as_ref().map_or(String::new(), |m| m.basis.clone()),
                m.as_ref()
                    .map_or("not measured".into(), |m| reading(m, b, &r.baseline)),
            ]);
        }
        md.push_str(&table.render());
    }
}
