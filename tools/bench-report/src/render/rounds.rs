//! The sections measured in interleaved rounds (B6, B8's re-arm, B10 with a writer, B11):
//! medians with their spread, and ratios taken round by round.

use std::fmt::Write as _;

use super::criterion::{PER_OP, Unit, per_param};
use crate::format::{self, Table};
use crate::results::{Results, RoundsGroup};
use crate::stats::{Spread, per_round};

/// A table of one interleaved group: each id's median time per iteration with the range
/// across rounds, the figure per unit, optionally the work per iteration (`work`: its
/// header and the per-work-unit header), and the per-round ratios against `baselines`.
fn rounds_table(
    md: &mut String,
    r: &Results,
    group: &str,
    unit: &Unit,
    work: Option<(&str, &str)>,
    baselines: &[&str],
) -> bool {
    let Some(g) = r.rounds.get(group) else {
        let _ = writeln!(md, "_No results for `{group}`._\n");
        return false;
    };
    let mut header = vec![
        "id".to_string(),
        format!("median / iteration (min–max over {} rounds)", g.rounds),
        unit.header.to_string(),
    ];
    if let Some((w, per)) = work {
        header.extend([w.to_string(), per.to_string()]);
    }
    header.extend(baselines.iter().map(|b| format!("÷ {b} (per round)")));
    let mut table = Table::new(header);
    let mut variants: Vec<_> = g.variants.iter().collect();
    // Stable: variants that rank alike keep the order the bench gave them.
    variants.sort_by_key(|v| (v.param.clone(), r.variant_rank(&v.variant).0));
    for v in variants {
        let Some(s) = Spread::of(&v.ns) else { continue };
        let mut cells = vec![
            format!("`{group}/{}/{}`", v.variant, v.param),
            format::ns_spread(&s),
            format::ns(s.median / (unit.divisor)(&v.param)),
        ];
        if work.is_some() {
            let w = Spread::of(&v.work).map_or(f64::NAN, |w| w.median);
            cells.extend([format!("{w:.1}"), format::ns(s.median / w)]);
        }
        for b in baselines {
            let ratio = g
                .get(b, &v.param)
                .and_then(|base| Spread::of(&per_round(&v.ns, &base.ns)));
            cells.push(format::ratio_spread(ratio));
        }
        table.row(cells);
    }
    md.push_str(&table.render());
    true
}

/// Throughput of each contender ÷ the baseline's, round by round, at `param`.
fn throughput_ratio(r: &Results, g: &RoundsGroup, backend: &str, param: &str) -> Option<Spread> {
    let (b, base) = (g.get(backend, param)?, g.get(&r.baseline, param)?);
    Spread::of(&per_round(&base.ns, &b.ns))
}

pub(super) fn b6(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B6: one reader polls or iterates a 4 × 16 nested array while a writer signals\n\n\
         `poll_held`: `is_signaled` on the container the reader holds while the writer \
         signals its leaves; once it reads signalled the reader takes the current one, which \
         the writer published meanwhile (a poll that loaded the publishing cell every time \
         measured mostly that cell's `ArcSwap` load, the same for every variant). \
         `iterate_pending`: `unwrap` over every \
         leaf of the current top, which stays pending while it is current (the writer \
         publishes the next container, then signals the previous one), so every variant \
         visits the same 64 leaves: `Rcu` drops signalled members from its containers and \
         `Locked` keeps them, and iterating a container being signalled visited about 3 \
         leaves on one and 64 on the other. The leaves visited per read are measured, not \
         assumed. Reader ops/s = 1 / time per op.\n"
    );
    if !rounds_table(
        md,
        r,
        "b6_read_nested",
        &PER_OP,
        Some(("leaves per read", "per leaf")),
        &["floor", &r.baseline],
    ) {
        return;
    }
    let g = &r.rounds["b6_read_nested"];
    for op in ["poll_held", "iterate_pending"] {
        for b in r.contenders() {
            let _ = writeln!(
                md,
                "- {op}: reader throughput `{b}` ÷ `{}` {}",
                r.baseline,
                format::ratio_spread(throughput_ratio(r, g, b, op))
            );
        }
    }
    md.push('\n');
}

pub(super) fn b8_rearm(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B8 re-arm: backward against forward, every backend, interleaved\n\n\
         The kernel's chain re-arms its callback on the next pending link each time one \
         fires, which is quadratic when fences signal newest first (the kernel's selftest: \
         21 ms forward, 17 s backward at 4096 links). Each round runs every cell once; a cell \
         whose one run takes longer than the batch time (the slow backward runs) is one run \
         per round, so its median is of a few runs only, with no criterion statistics. Ratios \
         are taken within each round.\n"
    );
    let Some(g) = r.rounds.get("b8_rearm") else {
        let _ = writeln!(md, "_No results for `b8_rearm`._\n");
        return;
    };
    let cells = [
        "forward_1024",
        "backward_1024",
        "forward_4096",
        "backward_4096",
    ];
    let mut header = vec!["backend".to_string()];
    header.extend(cells.iter().map(|c| c.replace('_', " ")));
    header.extend([
        "backward ÷ forward, 4096".to_string(),
        "t(4096) ÷ t(1024), backward".to_string(),
        "runs per round".to_string(),
    ]);
    let mut table = Table::new(header);
    for b in &r.backends {
        let mut row = vec![format!("`{b}`")];
        for c in cells {
            row.push(
                g.get(b, c)
                    .and_then(|v| Spread::of(&v.ns))
                    .map_or("–".into(), |s| format::ns_spread(&s)),
            );
        }
        let ratio = |a: &str, d: &str| {
            let (a, d) = (g.get(b, a)?, g.get(b, d)?);
            Spread::of(&per_round(&a.ns, &d.ns))
        };
        row.push(format::ratio_spread(ratio("backward_4096", "forward_4096")));
        row.push(format::ratio_spread(ratio(
            "backward_4096",
            "backward_1024",
        )));
        let runs: Vec<String> = cells
            .iter()
            .filter_map(|c| g.get(b, c).map(|v| v.iters.to_string()))
            .collect();
        row.push(runs.join(" / "));
        table.row(row);
    }
    md.push_str(&table.render());
}

pub(super) fn b10(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B10: the same read beside a writer that replaces the value in a loop, \
         interleaved\n"
    );
    rounds_table(md, r, "b10_rcu_read", &PER_OP, None, &["epoch"]);
}

pub(super) fn b11(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B11: 2 rings, jobs with merged dependencies and timeline syncobjs, 32 in flight \
         (param jobs), interleaved\n"
    );
    if !rounds_table(
        md,
        r,
        "b11_scheduler",
        &per_param("per job"),
        None,
        &[&r.baseline],
    ) {
        return;
    }
    let g = &r.rounds["b11_scheduler"];
    for v in &g.variants {
        if let Some(s) = Spread::of(&v.ns) {
            let jobs: f64 = v.param.parse().unwrap_or(f64::NAN);
            let _ = writeln!(
                md,
                "- `{}`: {:.0} jobs/s ({:.0}–{:.0})",
                v.variant,
                jobs / (s.median / 1e9),
                jobs / (s.max / 1e9),
                jobs / (s.min / 1e9)
            );
        }
    }
    for b in r.contenders() {
        if let Some(p) = g.variants.iter().find(|v| v.variant == b).map(|v| &v.param) {
            let _ = writeln!(
                md,
                "- jobs/s `{b}` ÷ `{}`: {}",
                r.baseline,
                format::ratio_spread(throughput_ratio(r, g, b, p))
            );
        }
    }
    md.push('\n');
}
