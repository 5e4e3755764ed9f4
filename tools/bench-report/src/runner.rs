//! Running the benchmark targets, and the facts of the run (date, load, machine).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::Options;

/// One benchmark target: its package, its name, and the arguments passed to it.
struct Target {
    package: &'static str,
    bench: &'static str,
    args: &'static [&'static str],
}

/// Every target the report runs, in order.
const TARGETS: &[Target] = &[
    Target {
        package: "rcu-fence",
        bench: "fence",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "array",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "nesting",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "chain",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "sched",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "reclaim",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "latency",
        args: &[],
    },
    Target {
        package: "rcu-fence",
        bench: "alloc",
        args: &[],
    },
    // The single-threaded reads and the stalled reader; the reads beside a writer are
    // `reclaim`'s, interleaved.
    Target {
        package: "rcu",
        bench: "rcu",
        args: &[],
    },
];

/// Where the targets write what criterion does not (and criterion's own `criterion/`):
/// `$CARGO_TARGET_DIR/bench-report`, else `<root>/target/bench-report`.
pub(crate) fn out_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("bench-report")
}

/// Runs the selected targets (all, unless `--only`) and records the run's facts.
pub(crate) fn run_all(root: &Path, out: &Path, options: &Options) {
    let started = Instant::now();
    let load_before = loadavg();
    if options.only.is_none() {
        // A full run starts from nothing: no result of an earlier run can leak in.
        let _ = std::fs::remove_dir_all(out);
    }
    std::fs::create_dir_all(out).expect("create the results directory");
    let selected = |name: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|b| b == name))
    };
    for target in TARGETS {
        if selected(target.bench) {
            run_target(root, out, target, options.quick);
        }
    }
    if selected("stress") {
        run_stress(root, out, options.quick);
    }
    let run = json!({
        "date": sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "seconds": started.elapsed().as_secs_f64(),
        "load_before": load_before,
        "load_after": loadavg(),
        "quick": options.quick,
        "only": options.only,
    });
    std::fs::write(out.join("run.json"), run.to_string()).expect("write run.json");
}

fn run_target(root: &Path, out: &Path, target: &Target, quick: bool) {
    let started = Instant::now();
    println!(
        "== cargo bench -p {} --bench {}",
        target.package, target.bench
    );
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["bench", "-p", target.package, "--bench", target.bench])
        .current_dir(root)
        .env("RCU_FENCE_BENCH_OUT", out)
        .env("CRITERION_HOME", out.join("criterion"));
    if !target.args.is_empty() {
        cmd.arg("--").args(target.args);
    }
    if quick {
        cmd.env("RCU_FENCE_BENCH_QUICK", "1");
    }
    let status = cmd.status().expect("run cargo bench");
    println!(
        "== {}: {status} in {:.0} s{}",
        target.bench,
        started.elapsed().as_secs_f64(),
        if quick { " (quick)" } else { "" }
    );
}

/// The stress binary's default run (the README's main command), written to `stress.json`:
/// its throughput ratios are targets too. `--only stress` selects it.
fn run_stress(root: &Path, out: &Path, quick: bool) {
    let started = Instant::now();
    println!("== cargo run --release -p stress");
    let json = out.join("stress.json");
    // A failed run must not leave an earlier run's figures behind.
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["run", "--release", "-p", "stress", "--", "--json"])
        .arg(&json)
        .current_dir(root);
    if quick {
        cmd.arg("--quick");
    }
    let status = cmd.status().expect("run the stress binary");
    println!(
        "== stress: {status} in {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if quick { " (quick)" } else { "" }
    );
}

/// When and under what load the measurements were taken.
#[derive(Debug)]
pub(crate) struct RunFacts {
    pub(crate) date: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) seconds: f64,
    pub(crate) quick: bool,
    /// The targets rerun by the last `--only`, if it was one.
    pub(crate) only: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) machine: String,
}

impl RunFacts {
    /// The facts recorded by the last run (also when only the report is rewritten).
    pub(crate) fn load(out: &Path, note: Option<String>) -> Self {
        let run = read(&out.join("run.json"));
        let text = |k: &str| run[k].as_str().unwrap_or("?").to_string();
        RunFacts {
            date: text("date"),
            load_before: text("load_before"),
            load_after: text("load_after"),
            seconds: run["seconds"].as_f64().unwrap_or(f64::NAN),
            quick: run["quick"].as_bool().unwrap_or(false),
            only: run["only"].as_str().map(str::to_string),
            note,
            machine: machine(),
        }
    }
}

fn read(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
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
