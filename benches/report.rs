//! The report: runs every benchmark target of the workspace (B1–B11) once, in sequence,
//! then gathers their results into `BENCHMARKS.md` (a table per benchmark with each
//! variant's median and its ratios to the floor and to `Locked`, the targets, the machine
//! and the noise) and draws the plots under `benches/plots/`.
//!
//! `cargo bench --bench report` runs everything; `-- --report-only` only rewrites the
//! report from the last results; `RCU_FENCE_BENCH_QUICK=1` makes every run short;
//! `RCU_FENCE_BENCH_ONLY=chain,latency` reruns only those targets and keeps the other
//! results; `RCU_FENCE_BENCH_NOTE="..."` adds a line about the run (e.g. concurrent load).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use plotters::prelude::*;
use serde_json::Value;

/// The workspace root (this package is the root package).
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every target the report runs: (package, bench target).
const TARGETS: [(&str, &str); 8] = [
    ("rcu-fence", "fence"),
    ("rcu-fence", "array"),
    ("rcu-fence", "nesting"),
    ("rcu-fence", "chain"),
    ("rcu-fence", "sched"),
    ("rcu-fence", "latency"),
    ("rcu-fence", "alloc"),
    ("rcu", "rcu"),
];

/// One criterion measurement: the median time per iteration and its 95 % interval, in ns.
#[derive(Clone, Copy)]
struct Estimate {
    median: f64,
    lo: f64,
    hi: f64,
}

impl Estimate {
    /// Half the interval's width relative to the median, in percent.
    fn noise(&self) -> f64 {
        (self.hi - self.lo) / 2.0 / self.median * 100.0
    }
}

/// group -> (variant, param) -> estimate.
type Results = BTreeMap<String, BTreeMap<(String, String), Estimate>>;

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Walks criterion's output for every `benchmark.json` with a `new/estimates.json` beside it.
fn criterion_results(home: &Path) -> Results {
    let mut out = Results::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let (Some(b), Some(est)) = (
                        read_json(&p.join("benchmark.json")),
                        read_json(&p.join("estimates.json")),
                    ) else {
                        continue;
                    };
                    let m = &est["median"];
                    let estimate = Estimate {
                        median: m["point_estimate"].as_f64().unwrap_or(f64::NAN),
                        lo: m["confidence_interval"]["lower_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN),
                        hi: m["confidence_interval"]["upper_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN),
                    };
                    let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
                    out.entry(s("group_id"))
                        .or_default()
                        .insert((s("function_id"), s("value_str")), estimate);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out
}

fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "–".into()
    } else if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "–".into(),
    }
}

/// How a group's raw time per iteration becomes the quoted unit.
struct Unit {
    /// Column header for the normalised figure.
    header: &'static str,
    /// Divisor from the param (e.g. N members): time per unit = median / divisor(param).
    divisor: fn(&str) -> f64,
}

fn one(_: &str) -> f64 {
    1.0
}

fn by_param(p: &str) -> f64 {
    p.parse().unwrap_or(1.0)
}

fn by_depth(p: &str) -> f64 {
    p.parse::<f64>().unwrap_or(1.0)
}

/// The order variants appear in.
fn variant_rank(v: &str) -> usize {
    ["floor", "rcu", "locked", "epoch", "hazard", "reference"]
        .iter()
        .position(|x| *x == v)
        .unwrap_or(10)
}

fn param_key(p: &str) -> (u64, String) {
    (p.parse().unwrap_or(u64::MAX), p.to_string())
}

/// A markdown table of one criterion group.
fn group_table(md: &mut String, results: &Results, group: &str, unit: &Unit) {
    let Some(rows) = results.get(group) else {
        let _ = writeln!(md, "_No results for `{group}`._\n");
        return;
    };
    let mut keys: Vec<&(String, String)> = rows.keys().collect();
    keys.sort_by_key(|(v, p)| (param_key(p), variant_rank(v), v.clone()));
    let _ = writeln!(
        md,
        "| id | median / iteration | {} | ÷ floor | ÷ locked | ±95 % |",
        unit.header
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for key in keys {
        let (v, p) = key;
        let e = rows[key];
        let per = e.median / (unit.divisor)(p);
        let floor = rows
            .get(&("floor".to_string(), p.clone()))
            .map(|f| e.median / f.median);
        let locked = rows
            .get(&("locked".to_string(), p.clone()))
            .map(|l| e.median / l.median);
        let _ = writeln!(
            md,
            "| `{group}/{v}/{p}` | {} | {} | {} | {} | {:.1} % |",
            fmt_ns(e.median),
            fmt_ns(per),
            fmt_ratio(floor),
            fmt_ratio(locked),
            e.noise()
        );
    }
    md.push('\n');
}

fn median(results: &Results, group: &str, variant: &str, param: &str) -> Option<f64> {
    results
        .get(group)?
        .get(&(variant.to_string(), param.to_string()))
        .map(|e| e.median)
}

/// One row of the targets table.
struct Target {
    id: &'static str,
    what: String,
    value: Option<f64>,
    ok: Option<bool>,
}

fn target(
    id: &'static str,
    what: impl Into<String>,
    value: Option<f64>,
    pass: impl Fn(f64) -> bool,
) -> Target {
    Target {
        id,
        what: what.into(),
        ok: value.map(&pass),
        value,
    }
}

fn latency_series<'a>(latency: &'a Value, bench: &str, name: &str) -> Option<&'a Value> {
    latency[bench]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

fn lat(latency: &Value, bench: &str, name: &str, kind: &str, q: &str) -> Option<f64> {
    latency_series(latency, bench, name)?[kind][q].as_f64()
}

fn run_targets(out: &Path, home: &Path) {
    let only = std::env::var("RCU_FENCE_BENCH_ONLY").ok();
    let quick = common::quick();
    if only.is_none() {
        let _ = std::fs::remove_dir_all(home);
    }
    for (package, bench) in TARGETS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|b| b == bench))
        {
            continue;
        }
        let started = Instant::now();
        println!("== cargo bench -p {package} --bench {bench}");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["bench", "-p", package, "--bench", bench])
            .current_dir(ROOT)
            .env("RCU_FENCE_BENCH_OUT", out)
            .env("CRITERION_HOME", home)
            .status()
            .expect("run cargo bench");
        println!(
            "== {bench}: {status} in {:.0} s{}",
            started.elapsed().as_secs_f64(),
            if quick { " (quick)" } else { "" }
        );
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} × {cpu}; {}; {}",
        sh("rustc", &["--version"]),
        sh("uname", &["-sr"])
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let out = common::out_dir();
    let home = out.join("criterion");
    let load_before = loadavg();
    let started = Instant::now();
    let run_path = out.join("run.json");
    if !args.iter().any(|a| a == "--report-only") {
        run_targets(&out, &home);
        let run = serde_json::json!({
            "date": sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            "seconds": started.elapsed().as_secs_f64(),
            "load_before": load_before,
            "load_after": loadavg(),
            "quick": common::quick(),
        });
        std::fs::write(&run_path, run.to_string()).expect("write run.json");
    }
    // The run's own facts, also when only the report is rewritten.
    let run = read_json(&run_path).unwrap_or(Value::Null);
    let text = |k: &str| run[k].as_str().unwrap_or("?").to_string();
    let (date, load_before, load_after) = (text("date"), text("load_before"), text("load_after"));
    let seconds = run["seconds"].as_f64().unwrap_or(f64::NAN);
    let quick = run["quick"].as_bool().unwrap_or(false);

    let results = criterion_results(&home);
    let latency = read_json(&out.join("latency.json")).unwrap_or(Value::Null);
    let alloc = read_json(&out.join("alloc.json")).unwrap_or(Value::Null);
    let stalled = read_json(&out.join("rcu_stalled.json")).unwrap_or(Value::Null);
    let probe = read_json(&out.join("b7_probe.json")).unwrap_or(Value::Null);

    let plots = Path::new(ROOT).join("benches/plots");
    std::fs::create_dir_all(&plots).expect("plots directory");
    plot_cdf(
        &plots.join("b3_wake_cdf.svg"),
        &latency,
        "b3",
        "B3: blocked waiter wake latency (CDF)",
    );
    plot_cdf(
        &plots.join("b4_await_cdf.svg"),
        &latency,
        "b4",
        "B4: .await wake latency (CDF)",
    );
    plot_depth(&plots.join("b7_depth.svg"), &results);

    let facts = RunFacts {
        date,
        load_before,
        load_after,
        seconds,
        quick,
    };
    let md = render(&results, &latency, &alloc, &stalled, &probe, &facts);
    std::fs::write(Path::new(ROOT).join("BENCHMARKS.md"), md).expect("write BENCHMARKS.md");
    println!(
        "wrote BENCHMARKS.md and benches/plots/*.svg ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

/// When and under what load the measurements were taken.
struct RunFacts {
    date: String,
    load_before: String,
    load_after: String,
    seconds: f64,
    quick: bool,
}

fn render(
    results: &Results,
    latency: &Value,
    alloc: &Value,
    stalled: &Value,
    probe: &Value,
    run: &RunFacts,
) -> String {
    let mut md = String::new();
    let RunFacts {
        date,
        load_before,
        load_after,
        seconds,
        quick,
    } = run;
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `cargo bench --bench report` (`benches/report.rs`), which runs every benchmark \
         target of the workspace in sequence and rewrites this file and `benches/plots/*.svg`. The set \
         (B1–B11), the baselines and the rules are those of the project's benchmark brief: every figure \
         that matters is a ratio between two things measured in the same run.\n"
    );
    let _ = writeln!(md, "{}", RUNNING.trim_start());
    let _ = writeln!(md, "- date: {date}");
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(
        md,
        "- run: {:.0} s{}; load average (1, 5, 15 min) {load_before} before, {load_after} after",
        seconds,
        if *quick {
            ", QUICK mode (short runs)"
        } else {
            ""
        }
    );
    let noise: Vec<f64> = results
        .values()
        .flat_map(|g| g.values().map(|e| e.noise()))
        .filter(|n| n.is_finite())
        .collect();
    if !noise.is_empty() {
        let mut sorted = noise.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let _ = writeln!(
            md,
            "- noise: half-width of the 95 % interval of each criterion median, median over {} ids {:.1} %, worst {:.1} %",
            sorted.len(),
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1]
        );
    }
    if let Ok(note) = std::env::var("RCU_FENCE_BENCH_NOTE") {
        let _ = writeln!(md, "- note on this run: {note}");
    }
    let _ = writeln!(md, "{}", NOTES);

    // Targets first: the summary a reader wants.
    let targets = targets(results, latency, alloc);
    let _ = writeln!(
        md,
        "## Targets\n\n| id | target | measured | met |\n| --- | --- | ---: | :---: |"
    );
    for t in &targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.id,
            t.what,
            t.value.map_or("–".into(), |v| format!("{v:.2}")),
            match t.ok {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            }
        );
    }
    md.push('\n');
    md.push_str(ANALYSIS);

    let sections: Vec<(&str, &str, &str, Unit)> = vec![
        (
            "B1",
            "b1_create_signal",
            "create a fence, add k callbacks, signal, drop (param k)",
            Unit {
                header: "per op",
                divisor: one,
            },
        ),
        (
            "B2",
            "b2_add_remove",
            "add + remove a callback on a pending fence",
            Unit {
                header: "per op",
                divisor: one,
            },
        ),
        (
            "B5",
            "b5_array_all",
            "an array over N members with one waiter; every member signals (param N)",
            Unit {
                header: "per member",
                divisor: by_param,
            },
        ),
        (
            "B6",
            "b6_read_nested",
            "one reader polls (`is_signaled` on the top) or iterates (`unwrap`) a 4 × 16 nested array while a writer builds, signals and replaces it; reader ops/s = 1 / time per op",
            Unit {
                header: "per op",
                divisor: one,
            },
        ),
        (
            "B7",
            "b7_nesting",
            "signal at the bottom, cascade to the top, final drop and `synchronize_rcu` through depth D, on a 256 KiB stack (param D)",
            Unit {
                header: "per level",
                divisor: by_depth,
            },
        ),
        (
            "B8 forward",
            "b8_chain_forward",
            "every link enabled, a waiter on the newest, own fences signalled oldest first (param links)",
            Unit {
                header: "per link",
                divisor: by_param,
            },
        ),
        (
            "B8 backward",
            "b8_chain_backward",
            "the same, newest first",
            Unit {
                header: "per link",
                divisor: by_param,
            },
        ),
        (
            "B8 random",
            "b8_chain_random",
            "the same, in a fixed random order",
            Unit {
                header: "per link",
                divisor: by_param,
            },
        ),
        (
            "B8 find_seqno",
            "b8_find_seqno",
            "`chain_find_seqno` on a pending chain, 64 points spread over it (time per call; the walk visits N/2 links on average)",
            Unit {
                header: "per link walked",
                divisor: |p| by_param(p) / 2.0,
            },
        ),
        (
            "B10",
            "b10_rcu_read",
            "one protected read of a replaceable `Arc` (pin + load + deref), alone and beside a writer that replaces it in a loop",
            Unit {
                header: "per read",
                divisor: one,
            },
        ),
        (
            "B11",
            "b11_scheduler",
            "2 rings, jobs with merged dependencies and timeline syncobjs, 32 in flight (param jobs)",
            Unit {
                header: "per job",
                divisor: by_param,
            },
        ),
    ];
    for (id, group, what, unit) in &sections {
        let _ = writeln!(md, "## {id}: {what}\n");
        group_table(&mut md, results, group, unit);
        if *group == "b6_read_nested" {
            for op in ["poll", "iterate"] {
                if let (Some(r), Some(l)) = (
                    median(results, group, "rcu", op),
                    median(results, group, "locked", op),
                ) {
                    let _ = writeln!(
                        md,
                        "- {op}: reader throughput Rcu {:.2} M ops/s, Locked {:.2} M ops/s, Rcu ÷ Locked {:.2}×",
                        1e3 / r,
                        1e3 / l,
                        l / r
                    );
                }
            }
            md.push('\n');
        }
        if *group == "b7_nesting" {
            let _ = writeln!(
                md,
                "`Locked` survives depth {} on the 256 KiB stack (probed in child processes: its final put recurses); it is timed only at depths up to half that.\n\n![B7](benches/plots/b7_depth.svg)\n",
                probe["locked_max_depth"]
            );
        }
        if *group == "b11_scheduler" {
            for v in ["rcu", "locked"] {
                if let Some(t) = results
                    .get(*group)
                    .and_then(|g| g.iter().find(|((var, _), _)| var == v))
                {
                    let jobs = by_param(&t.0.1);
                    let _ = writeln!(md, "- {v}: {:.0} jobs/s", jobs / (t.1.median / 1e9));
                }
            }
            md.push('\n');
        }
    }

    for (bench, title, what) in [
        (
            "b3",
            "B3: cross-thread signal → blocked waiter wakes",
            "A waiter thread blocks (asleep for 200 µs); the other thread signals. Wake = signal start → waiter running; call = the signalling call itself.",
        ),
        (
            "b4",
            "B4: signal → `.await` resumes",
            "A task awaits on a single-thread executor (`futures::executor::block_on`, or a tokio current-thread runtime) on another thread; wake = signal start → the task resumes.",
        ),
    ] {
        let _ = writeln!(
            md,
            "## {title}\n\n{what} Samples per variant: {}, interleaved.\n",
            latency["samples"]
        );
        let _ = writeln!(
            md,
            "| variant | wake p50 | p99 | p99.9 | p50 ÷ floor | signal call p50 | call ÷ floor |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        if let Some(series) = latency[bench].as_array() {
            for s in series {
                let name = s["name"].as_str().unwrap_or("");
                let floor_name = match name.split_once('/') {
                    Some((_, exec)) => format!("floor/{exec}"),
                    None => "floor".into(),
                };
                let g = |k: &str, q: &str| s[k][q].as_f64();
                let fl = |k: &str| lat(latency, bench, &floor_name, k, "p50");
                let ratio = |k: &str| g(k, "p50").zip(fl(k)).map(|(a, b)| a / b);
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    fmt_ns(g("wake_ns", "p50").unwrap_or(f64::NAN)),
                    fmt_ns(g("wake_ns", "p99").unwrap_or(f64::NAN)),
                    fmt_ns(g("wake_ns", "p999").unwrap_or(f64::NAN)),
                    fmt_ratio(ratio("wake_ns")),
                    fmt_ns(g("call_ns", "p50").unwrap_or(f64::NAN)),
                    fmt_ratio(ratio("call_ns")),
                );
            }
        }
        let _ = writeln!(
            md,
            "\n![{bench}](benches/plots/{bench}_{}_cdf.svg)\n",
            if bench == "b3" { "wake" } else { "await" }
        );
    }

    let _ = writeln!(
        md,
        "## B9: heap bytes per object (counting global allocator, N = {})\n",
        alloc["n"]
    );
    let _ = writeln!(
        md,
        "| shape | floor | rcu | locked | rcu allocations |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for shape in [
        "fence",
        "array_member",
        "array_member_enabled",
        "chain_link",
        "chain_link_enabled",
        "callback",
    ] {
        let b = |v: &str| {
            alloc[v][shape]["bytes"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.1} B"))
        };
        let a = alloc["rcu"][shape]["allocs"]
            .as_f64()
            .map_or("–".into(), |x| format!("{x:.2}"));
        let _ = writeln!(
            md,
            "| {shape} | {} | {} | {} | {a} |",
            b("floor"),
            b("rcu"),
            b("locked")
        );
    }
    let _ = writeln!(
        md,
        "\n`_enabled` rows: what enabling adds per member or link (the callbacks the container installs). A callback's closure holds one pointer.\n"
    );

    let _ = writeln!(
        md,
        "## B10: memory held back by one stalled reader\n\nOne reader holds a protected read while the writer replaces the value 100,000 times, then offers its garbage to the reclaimer (`rcu::flush`).\n\n| reclaimer | values still alive | ≈ bytes | `rcu::pending` |\n| --- | ---: | ---: | ---: |"
    );
    if let Some(rows) = stalled.as_array() {
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                r["name"].as_str().unwrap_or(""),
                r["values_held"],
                r["bytes_held"],
                if r["pending"].is_null() {
                    "–".into()
                } else {
                    r["pending"].to_string()
                }
            );
        }
    }
    md.push('\n');
    md
}

fn targets(r: &Results, lat_: &Value, alloc: &Value) -> Vec<Target> {
    let m = |g: &str, v: &str, p: &str| median(r, g, v, p);
    let div = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let mut t = vec![
        target(
            "B1",
            "Rcu create + 1 callback + signal ≤ 2.0× floor",
            div(
                m("b1_create_signal", "rcu", "1"),
                m("b1_create_signal", "floor", "1"),
            ),
            |x| x <= 2.0,
        ),
        target(
            "B1",
            "… and ≤ 1.0× Locked",
            div(
                m("b1_create_signal", "rcu", "1"),
                m("b1_create_signal", "locked", "1"),
            ),
            |x| x <= 1.0,
        ),
        target(
            "B3",
            "wake p50 ≤ 1.05× park/unpark",
            div(
                lat(lat_, "b3", "rcu", "wake_ns", "p50"),
                lat(lat_, "b3", "floor", "wake_ns", "p50"),
            ),
            |x| x <= 1.05,
        ),
        target(
            "B3",
            "signalling call (one blocked waiter) ≤ 1.1× unpark",
            div(
                lat(lat_, "b3", "rcu", "call_ns", "p50"),
                lat(lat_, "b3", "floor", "call_ns", "p50"),
            ),
            |x| x <= 1.1,
        ),
    ];
    for exec in ["block_on", "tokio"] {
        t.push(target(
            "B4",
            format!("`.await` wake p50 ≤ 1.03× bare AtomicWaker ({exec})"),
            div(
                lat(lat_, "b4", &format!("rcu/{exec}"), "wake_ns", "p50"),
                lat(lat_, "b4", &format!("floor/{exec}"), "wake_ns", "p50"),
            ),
            |x| x <= 1.03,
        ));
    }
    let per_member = m("b5_array_all", "rcu", "1024").map(|x| x / 1024.0);
    t.push(target(
        "B5",
        "array of 1024, per member ≤ 2× B1 floor (k = 1)",
        div(per_member, m("b1_create_signal", "floor", "1")),
        |x| x <= 2.0,
    ));
    t.push(target(
        "B5",
        "… and ≤ 0.3× join_all",
        div(
            m("b5_array_all", "rcu", "1024"),
            m("b5_array_all", "join_all", "1024"),
        ),
        |x| x <= 0.3,
    ));
    for op in ["poll", "iterate"] {
        t.push(target(
            "B6",
            format!("reader throughput Rcu ≥ 3× Locked ({op})"),
            div(
                m("b6_read_nested", "locked", op),
                m("b6_read_nested", "rcu", op),
            ),
            |x| x >= 3.0,
        ));
    }
    t.push(target(
        "B7",
        "t(1e5) / t(1e3) in 80..120 (Rcu, 256 KiB stack)",
        div(
            m("b7_nesting", "rcu", "100000"),
            m("b7_nesting", "rcu", "1000"),
        ),
        |x| (80.0..=120.0).contains(&x),
    ));
    t.push(target(
        "B8",
        "backward ÷ forward ≤ 2 at 4096 (Rcu)",
        div(
            m("b8_chain_backward", "rcu", "4096"),
            m("b8_chain_forward", "rcu", "4096"),
        ),
        |x| x <= 2.0,
    ));
    for order in ["forward", "backward", "random"] {
        let g = format!("b8_chain_{order}");
        t.push(target(
            "B8",
            format!("t(65536) / t(4096) ≤ 20 ({order}, Rcu)"),
            div(m(&g, "rcu", "65536"), m(&g, "rcu", "4096")),
            |x| x <= 20.0,
        ));
    }
    t.push(target(
        "B9",
        "≤ 64 bytes per plain fence (Rcu)",
        alloc["rcu"]["fence"]["bytes"].as_f64(),
        |x| x <= 64.0,
    ));
    t.push(target(
        "B9",
        "≤ 32 bytes per array member (Rcu, built)",
        alloc["rcu"]["array_member"]["bytes"].as_f64(),
        |x| x <= 32.0,
    ));
    let jobs = |v: &str| {
        r.get("b11_scheduler").and_then(|g| {
            g.iter()
                .find(|((var, _), _)| var == v)
                .map(|(_, e)| e.median)
        })
    };
    t.push(target(
        "B11",
        "scheduler jobs/s Rcu ≥ 1.5× Locked",
        div(jobs("locked"), jobs("rcu")),
        |x| x >= 1.5,
    ));
    t
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// The latency CDFs of one bench (x: µs, log scale; y: fraction of samples).
fn plot_cdf(path: &PathBuf, latency: &Value, bench: &str, title: &str) {
    let Some(series) = latency[bench].as_array() else {
        return;
    };
    let points: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            let pts = s["cdf"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (
                                p[0].as_f64().unwrap_or(1.0) / 1e3,
                                p[1].as_f64().unwrap_or(0.0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (s["name"].as_str().unwrap_or("").to_string(), pts)
        })
        .collect();
    let xs = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .filter(|x| *x > 0.0);
    let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo >= hi {
        return;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).ok();
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..1.0)
    else {
        return;
    };
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("fraction of samples ≤ x")
        .draw()
        .ok();
    for (i, (name, pts)) in points.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        if let Ok(series) =
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        {
            series.label(name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .ok();
    root.present().ok();
}

/// B7: time per level against depth, log-log, one line per variant.
fn plot_depth(path: &PathBuf, results: &Results) {
    let Some(rows) = results.get("b7_nesting") else {
        return;
    };
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for ((v, p), e) in rows {
        let d = by_depth(p);
        lines.entry(v.as_str()).or_default().push((d, e.median / d));
    }
    let all: Vec<(f64, f64)> = lines.values().flatten().copied().collect();
    if all.is_empty() {
        return;
    }
    let (ylo, yhi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).ok();
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(
            "B7: cost per nesting level against depth (256 KiB stack)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (5.0..200_000.0).log_scale(),
            (ylo * 0.5..yhi * 2.0).log_scale(),
        )
    else {
        return;
    };
    chart
        .configure_mesh()
        .x_desc("depth D (log scale)")
        .y_desc("ns per level (log scale)")
        .draw()
        .ok();
    for (i, (name, pts)) in lines.iter_mut().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = PALETTE[i % PALETTE.len()];
        if let Ok(series) =
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        {
            series.label(name.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .ok();
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .ok();
    root.present().ok();
}

/// How to run it (fixed text).
const RUNNING: &str = "
Running: `cargo bench --bench report` runs the whole set (about 3.5 minutes on a 2-core
machine) and rewrites this file and the plots. Options, as environment variables:
`RCU_FENCE_BENCH_QUICK=1` (short runs, to check that everything works; about 2 minutes),
`RCU_FENCE_BENCH_ONLY=chain,latency` (rerun only those targets, keep the other results),
`RCU_FENCE_BENCH_NOTE=\"...\"` (a line about the run, such as concurrent load); and
`cargo bench --bench report -- --report-only` rewrites the report from the last results.
Each target also runs alone (`cargo bench --bench fence`, `array`, `nesting`, `chain`,
`sched`, `latency`, `alloc`; `cargo bench -p rcu --bench rcu`). Raw results are kept under
`target/bench-report/`.
";

/// How to read the tables (fixed text).
const NOTES: &str = "
How to read this: each table lists every variant of one benchmark with its criterion median
per iteration, the figure per unit (member, link, level, job), and its ratio to the floor and
to `Locked` at the same parameter. `floor` is the least work the operation could do with the
same allocations; `locked` is the kernel's classic scheme on the same API; the rest are the
crates a user would pick instead. The `Locked` backend's lock recorder (lockdep) is switched
off, as the kernel's is in production builds. Criterion runs the variants one after another,
not interleaved (B3 and B4 interleave sample by sample), so a load change during the run
shows as noise in the ratios: compare within one run only.
";

/// The analysis of the targets that are missed (kept with the generator so that it travels
/// with the figures; the figures above are regenerated, this text is not).
const ANALYSIS: &str = include_str!("report_analysis.md");
