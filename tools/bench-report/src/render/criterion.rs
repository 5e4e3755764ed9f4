//! The sections measured by criterion: a table per group, every variant with its ratios.

use std::fmt::Write as _;

use crate::format::{self, Table};
use crate::results::Results;

/// How a group's time per iteration becomes the quoted unit.
pub(super) struct Unit {
    /// Column header for the normalised figure.
    pub(super) header: &'static str,
    /// time per unit = median / divisor(param).
    pub(super) divisor: fn(&str) -> f64,
}

/// One unit per iteration.
pub(super) const PER_OP: Unit = Unit {
    header: "per op",
    divisor: |_| 1.0,
};

/// The parameter counts the units (members, links, levels, jobs).
pub(super) const fn per_param(header: &'static str) -> Unit {
    Unit {
        header,
        divisor: |p| p.parse().unwrap_or(1.0),
    }
}

fn param_key(p: &str) -> (u64, String) {
    (p.parse().unwrap_or(u64::MAX), p.to_string())
}

/// A table of one criterion group, ratios against each of `baselines` at the same
/// parameter, plus rows for what the bench recorded as skipped.
fn group_table(md: &mut String, r: &Results, group: &str, unit: &Unit, baselines: &[&str]) {
    let Some(rows) = r.criterion.get(group) else {
        let _ = writeln!(md, "_No results for `{group}`._\n");
        return;
    };
    let mut header = vec![
        "id".to_string(),
        "median / iteration".into(),
        unit.header.into(),
    ];
    header.extend(baselines.iter().map(|b| format!("÷ {b}")));
    header.push("±95 % (within run)".into());
    let mut table = Table::new(header);
    let mut keys: Vec<_> = rows.keys().collect();
    keys.sort_by_key(|(v, p)| (param_key(p), r.variant_rank(v)));
    for key in keys {
        let (v, p) = key;
        let e = rows[key];
        let mut cells = vec![
            format!("`{group}/{v}/{p}`"),
            format::ns(e.median),
            format::ns(e.median / (unit.divisor)(p)),
        ];
        for b in baselines {
            let base = rows.get(&(b.to_string(), p.clone()));
            cells.push(format::ratio(base.map(|x| e.median / x.median)));
        }
        cells.push(format!("{:.1} %", e.noise()));
        table.row(cells);
    }
    for s in r.b8_skipped.iter().filter(|s| s["group"] == group) {
        let text = |k: &str| s[k].as_str().unwrap_or("?").to_string();
        let took = format!(
            "one run at {} links took {}",
            text("from_param"),
            format::ns(s["from_ns"].as_f64().unwrap_or(f64::NAN))
        );
        let why = match s["predicted_ns"].as_f64() {
            Some(p) => format!("not run: {took}, predicts {}", format::ns(p)),
            None => format!("not run: {took}"),
        };
        table.row(vec![
            format!("`{group}/{}/{}`", text("variant"), text("param")),
            why,
        ]);
    }
    md.push_str(&table.render());
}

fn section(md: &mut String, r: &Results, title: &str, group: &str, unit: &Unit) {
    let _ = writeln!(md, "## {title}\n");
    group_table(md, r, group, unit, &["floor", &r.baseline]);
}

pub(super) fn b1_b2(md: &mut String, r: &Results) {
    section(
        md,
        r,
        "B1: create a fence, add k callbacks, signal, drop (param k)",
        "b1_create_signal",
        &PER_OP,
    );
    let _ = writeln!(
        md,
        "The floor is one heap object with the k callback slots inline and k boxed closures \
         (1 + k allocations). `mutex_condvar` is std's `Mutex` + `Condvar`, whose \
         `notify_all` makes a futex system call even with no waiter; `parking_lot_condvar` \
         is the same fence on parking_lot's, which does not.\n"
    );
    section(
        md,
        r,
        "B2: add + remove a callback on a pending fence",
        "b2_add_remove",
        &PER_OP,
    );
    let _ = writeln!(
        md,
        "Timed per batch of 256 pairs, including creating the batch's fence (or event) and \
         dropping it: what a scheme defers to the drop is paid inside the timer.\n"
    );
}

pub(super) fn b5(md: &mut String, r: &Results) {
    section(
        md,
        r,
        "B5: an array over N members with one waiter; every member signals (param N)",
        "b5_array_all",
        &per_param("per member"),
    );
}

pub(super) fn b7(md: &mut String, r: &Results) {
    section(
        md,
        r,
        "B7: signal at the bottom, cascade to the top, final drop and `synchronize_rcu` \
         through depth D, on a 256 KiB stack (param D)",
        "b7_nesting",
        &per_param("per level"),
    );
    let survived: Vec<String> = r.b7_probe["max_depth"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(b, d)| format!("`{b}` {d}"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Deepest depth survived on the 256 KiB stack (probed in child processes, up to {}): {}. \
         A backend is timed only at depths up to half of it (its final put recurses).\n\n\
         ![B7](benches/plots/b7_depth.svg)\n",
        r.b7_probe["largest_probed"],
        survived.join(", ")
    );
}

pub(super) fn b8(md: &mut String, r: &Results) {
    let unit = per_param("per link");
    section(
        md,
        r,
        "B8 forward: every link enabled, a waiter on the newest, own fences signalled oldest \
         first (param links)",
        "b8_chain_forward",
        &unit,
    );
    section(
        md,
        r,
        "B8 backward: the same, newest first",
        "b8_chain_backward",
        &unit,
    );
    section(
        md,
        r,
        "B8 random: the same, in a fixed random order",
        "b8_chain_random",
        &unit,
    );
    let _ = writeln!(
        md,
        "Criterion runs a (variant, order) at a size only if a probe there (the best of up \
         to three runs) took at most 250 ms, and skips the larger sizes after one that did \
         not, or when the growth seen between the smaller sizes predicts more than 3 s: the \
         rows marked \"not run\". The backward runs at 1024 and 4096 links are all in the \
         re-arm table below, for every backend.\n"
    );
}

pub(super) fn b8_find(md: &mut String, r: &Results) {
    section(
        md,
        r,
        "B8 find_seqno: `chain_find_seqno` on a pending chain, 64 points spread over it \
         (time per call; the walk visits N/2 links on average)",
        "b8_find_seqno",
        &Unit {
            header: "per link walked",
            divisor: |p| p.parse::<f64>().unwrap_or(2.0) / 2.0,
        },
    );
}

pub(super) fn b10(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B10: one protected read of a replaceable `Arc` (pin + load + deref), alone\n"
    );
    group_table(md, r, "b10_rcu_read", &PER_OP, &["floor"]);
}
