//! B3 and B4: latency percentiles from the harness's histograms.

use std::fmt::Write as _;

use serde_json::Value;

use crate::format::{self, Table};
use crate::results::Results;
use crate::stats::{Spread, per_round};

/// A sample series' p50s per block of samples.
fn blocks(s: &Value, kind: &str) -> Vec<f64> {
    s[format!("{kind}_p50_blocks")]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn table(md: &mut String, r: &Results, bench: &str) {
    let Some(series) = r.latency[bench].as_array() else {
        let _ = writeln!(md, "_No results for `{bench}`._\n");
        return;
    };
    let mut table = Table::new([
        "variant",
        "wake p50",
        "p99",
        "p99.9",
        "p50 ÷ floor (blocks: min–max)",
        "signal call p50",
        "call ÷ floor (blocks: min–max)",
    ]);
    for s in series {
        let name = s["name"].as_str().unwrap_or("");
        let floor_name = match name.split_once('/') {
            Some((_, exec)) => format!("floor/{exec}"),
            None => "floor".into(),
        };
        let Some(floor) = series.iter().find(|f| f["name"] == floor_name.as_str()) else {
            continue;
        };
        let q = |k: &str, p: &str| s[k][p].as_f64().unwrap_or(f64::NAN);
        let ratio = |kind: &str| {
            let whole = q(&format!("{kind}_ns"), "p50")
                / floor[format!("{kind}_ns")]["p50"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
            let spread = Spread::of(&per_round(&blocks(s, kind), &blocks(floor, kind)));
            match spread {
                Some(b) => format!("{whole:.2}× ({:.2}–{:.2})", b.min, b.max),
                None => format::ratio(Some(whole)),
            }
        };
        table.row(vec![
            name.to_string(),
            format::ns(q("wake_ns", "p50")),
            format::ns(q("wake_ns", "p99")),
            format::ns(q("wake_ns", "p999")),
            ratio("wake"),
            format::ns(q("call_ns", "p50")),
            ratio("call"),
        ]);
    }
    md.push_str(&table.render());
}

pub(super) fn b3_b4(md: &mut String, r: &Results) {
    let samples = &r.latency["samples"];
    let blocks = &r.latency["blocks"];
    let _ = writeln!(
        md,
        "## B3: cross-thread signal → blocked waiter wakes\n\nA waiter thread blocks (asleep \
         for 200 µs); the other thread signals. Wake = signal start → waiter running; call = \
         the signalling call itself. Samples per variant: {samples}, interleaved sample by \
         sample; the brackets are the ratios of the p50s of {blocks} consecutive blocks of \
         samples.\n"
    );
    table(md, r, "b3");
    let _ = writeln!(md, "![b3](benches/plots/b3_wake_cdf.svg)\n");
    let _ = writeln!(
        md,
        "## B4: signal → `.await` resumes\n\nA task awaits on a single-thread executor \
         (`futures::executor::block_on`, or a tokio current-thread runtime) on another \
         thread; wake = signal start → the task resumes. Samples per variant: {samples}, \
         interleaved.\n"
    );
    table(md, r, "b4");
    let _ = writeln!(md, "![b4](benches/plots/b4_await_cdf.svg)\n");
}
