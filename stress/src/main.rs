//! Stress runs and the nesting evaluation of rcu-fence, on every backend.
//!
//! `cargo run --release -p stress` runs every scenario on every backend of
//! [`backends::ALL`] and prints one table row per scenario and backend: throughput in the
//! scenario's unit (the same work on every backend) and its ratio to the baseline
//! (`locked`), callbacks delivered, violations of the fence guarantees, leaked objects,
//! nesting depth, peak stack, signal to callback latency, errors lost and what the lock
//! recorder saw; then the throughput with one column per backend, and `deep`'s depth per
//! mechanism. `--json` and `--markdown` also write the results to files (see `report`).
//! The exit status is 1 if a guarantee was broken (any on a strict backend; on the others,
//! any but the kernel's own known limits), 2 if an operation got stuck.
//!
//! Every random choice comes from the seed printed at the start, through one seed per
//! scenario that every backend shares; `--seed` replays them.
//!
//! Layout: [`backends`] (the list of backends), [`scenarios`] (one file per scenario),
//! [`checks`] (what every scenario is checked against), [`stack`] (peak stack by painting),
//! [`contained`] (child processes), [`report`] (the tables and the results files).

use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

mod backends;
mod checks;
mod contained;
mod report;
mod scenarios;
mod stack;

use checks::{Checks, Watchdog};
use report::{BackendInfo, LockSummary, Machine, Outcome, RunReport};
use scenarios::{Entry, RunConfig, mix, name_hash};

/// Slices per scenario of a default run (each backend runs 0.25 s in each).
const DEFAULT_SLICES: usize = 16;

/// Stress runs and the nesting evaluation of rcu-fence, on every fence backend.
///
/// Runs each scenario on each chosen backend for a time (or operation) budget, checks
/// every fence guarantee as it goes, and prints a table at the end. Exits with 1 if a
/// guarantee was broken, 2 if an operation got stuck (the watchdog names it).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Backends to run on (see --list), several separated by commas, or `all`. Ratios are
    /// taken against `locked`, the kernel's classic scheme, when it runs.
    #[arg(long, default_value = "all", value_name = "NAME,...|all")]
    backend: String,

    /// Scenario to run (see --list), several separated by commas, or `all`.
    #[arg(long, default_value = "all", value_name = "NAME|all")]
    scenario: String,

    /// Worker threads [default: available cores; at most 4 with --quick].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Time budget of each scenario on each backend, in seconds [default: 4; 0.5 with
    /// --quick; none if only --ops is given].
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,

    /// Work budget of each scenario on each backend, in the scenario's unit (see --list;
    /// with --seconds too, whichever runs out first).
    #[arg(long, value_name = "N")]
    ops: Option<u64>,

    /// Nesting depth of `deep` [default: 100000; 10000 with --quick].
    #[arg(long, value_name = "D")]
    depth: Option<usize>,

    /// Fan-out of the container scenarios, and fences per thread in `flat` [default: 8;
    /// 4 with --quick].
    #[arg(long, value_name = "W")]
    width: Option<usize>,

    /// Slices each scenario's budget is split into, run alternately on each backend, the
    /// baseline between the others, in one order in even slices and the reverse in odd ones;
    /// the ratios are the median of the slices' ratios [default: 16; 1 with --quick].
    #[arg(long, value_name = "N")]
    slices: Option<usize>,

    /// Seed of every random choice [default: random, printed at the start].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Also write the results as a markdown document to this file: the command, date,
    /// seed, machine and duration, then the shape × scheme table and the others.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,

    /// CI-sized run: small budgets, the whole run under a minute.
    #[arg(long)]
    quick: bool,

    /// Seconds an operation may make no progress before the run fails as stuck.
    #[arg(long, value_name = "S", default_value_t = 30)]
    watchdog: u64,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

/// The run-wide settings, resolved from the command line.
#[derive(Clone, Debug)]
struct Settings {
    seed: u64,
    threads: usize,
    seconds: Option<Duration>,
    ops: Option<u64>,
    slices: usize,
    depth: usize,
    width: usize,
    quick: bool,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    /// The backends to run on, in the order of `backends::ALL`.
    backends: Vec<&'static backends::Spec>,
    /// The command line, as the results files quote it.
    command: String,
    /// When the run started, UTC.
    date: String,
    started: Instant,
}

impl Settings {
    fn from_cli(cli: &Cli) -> Result<Settings, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = cli
            .threads
            .unwrap_or(if cli.quick { cores.min(4) } else { cores });
        if threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        let seconds = match (cli.seconds, cli.ops) {
            (Some(s), _) if !(s.is_finite() && s > 0.0) => {
                return Err("--seconds must be positive".into());
            }
            (Some(s), _) => Some(Duration::from_secs_f64(s)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs_f64(if cli.quick { 0.5 } else { 4.0 })),
        };
        if cli.ops == Some(0) {
            return Err("--ops must be at least 1".into());
        }
        // Many short slices rather than a few long ones: a slice's ratio varies about as
        // much at 0.25 s as at 1 s (what varies is drawn as each slice starts), so the
        // median is steadier the more slices it is taken over.
        let slices = cli
            .slices
            .unwrap_or(if cli.quick { 1 } else { DEFAULT_SLICES });
        if slices == 0 {
            return Err("--slices must be at least 1".into());
        }
        Ok(Settings {
            seed: cli.seed.unwrap_or_else(rand::random),
            threads,
            seconds,
            ops: cli.ops,
            slices,
            depth: cli
                .depth
                .unwrap_or(if cli.quick { 10_000 } else { 100_000 })
                .max(1),
            width: cli.width.unwrap_or(if cli.quick { 4 } else { 8 }).max(1),
            quick: cli.quick,
            json: cli.json.clone(),
            markdown: cli.markdown.clone(),
            backends: backends::parse(&cli.backend)?,
            command: command_line(),
            date: report::utc(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
            started: Instant::now(),
        })
    }

    /// The configuration of one slice of `scenario` on any backend: its share of the
    /// budget, and a seed from the run's seed, the scenario's name and the slice only, so
    /// that every backend makes the same random draws in each slice.
    fn run_config(&self, scenario: &str, slice: usize) -> RunConfig {
        let n = self.slices as u32;
        RunConfig {
            threads: self.threads,
            seconds: self.seconds.map(|s| s / n),
            ops: self.ops.map(|o| o.div_ceil(u64::from(n))),
            depth: self.depth,
            width: self.width,
            seed: mix(mix(self.seed, name_hash(scenario)), slice as u64),
            quick: self.quick,
            slice,
        }
    }

    /// The configuration of `scenario`'s lock pass: a quarter of a slice's budget, numbered
    /// after the last slice (so that work done once per scenario is not repeated), with
    /// that slice number's draws.
    fn lock_pass_config(&self, scenario: &str) -> RunConfig {
        let mut cfg = self.run_config(scenario, self.slices);
        cfg.seconds = cfg.seconds.map(|s| s / 4);
        cfg.ops = cfg.ops.map(|o| o.div_ceil(4));
        cfg
    }

    fn report<'a>(&self, results: &'a [Outcome], stalled: Option<String>) -> RunReport<'a> {
        RunReport {
            command: self.command.clone(),
            date: self.date.clone(),
            machine: Machine::this(),
            duration_seconds: self.started.elapsed().as_secs_f64(),
            seed: self.seed,
            threads: self.threads,
            seconds_per_scenario: self.seconds.map(|s| s.as_secs_f64()),
            ops_per_scenario: self.ops,
            slices: self.slices,
            depth: self.depth,
            width: self.width,
            quick: self.quick,
            baseline: backends::BASELINE,
            backends: self
                .backends
                .iter()
                .map(|b| BackendInfo {
                    name: b.name,
                    about: b.about,
                    strict: b.strict,
                })
                .collect(),
            passed: stalled.is_none() && !results.iter().any(Outcome::failed),
            stalled,
            results: report::rows(results),
        }
    }

    /// Writes the results files asked for (`--json`, `--markdown`).
    fn write_files(&self, results: &[Outcome], stalled: Option<String>) {
        let report = self.report(results, stalled);
        let said = |path: &Path, written: std::io::Result<()>| match written {
            Ok(()) => eprintln!("stress: wrote {}", path.display()),
            Err(e) => eprintln!("stress: cannot write {}: {e}", path.display()),
        };
        if let Some(path) = &self.json {
            said(path, report.write_json(path));
        }
        if let Some(path) = &self.markdown {
            said(path, report.write_markdown(path));
        }
    }
}

/// This run's command line, as `cargo run` would take it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect();
    if args.is_empty() {
        "cargo run --release -p stress".into()
    } else {
        format!("cargo run --release -p stress -- {}", args.join(" "))
    }
}

fn select(spec: &str) -> Result<Vec<Entry>, String> {
    let all = scenarios::all();
    if spec == "all" {
        return Ok(all);
    }
    spec.split(',')
        .map(str::trim)
        .map(|name| {
            all.iter().copied().find(|e| e.name == name).ok_or_else(|| {
                let known: Vec<_> = all.iter().map(|e| e.name).collect();
                format!(
                    "unknown scenario `{name}` (known: {}, or all)",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// Progress on stderr: on a terminal, a bar that names the run in progress and a line for
/// each run that failed (the table at the end has the others); otherwise one line per start
/// and end.
enum Progress {
    Bar(ProgressBar),
    Lines { total: usize },
}

impl Progress {
    fn new(total: usize) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else {
            Progress::Lines { total }
        }
    }

    fn start(&self, n: usize, label: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(label.to_string()),
            Progress::Lines { total } => eprintln!("[{n}/{total}] {label} ..."),
        }
    }

    fn end(&self, n: usize, label: &str, outcome: &Outcome) {
        match self {
            Progress::Bar(bar) => {
                if outcome.failed() {
                    bar.println(format!("{label}: {}", outcome.summary()));
                }
                bar.inc(1);
            }
            Progress::Lines { total } => eprintln!("[{n}/{total}] {label}: {}", outcome.summary()),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Runs one scenario on one backend; a panic is reported as a violation.
fn run_one(entry: &Entry, backend: &'static str, cfg: &RunConfig, checks: &Arc<Checks>) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| entry.run(backend, cfg, checks))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            let mut outcome = Outcome::new(entry.name, backend, cfg.seed, cfg.threads);
            outcome.unit = entry.unit;
            outcome.violations = checks.violations.count() + 1;
            outcome.slice = cfg.slice;
            outcome.problems.push(format!("panicked: {why}"));
            outcome.problems.extend(checks.violations.descriptions());
            outcome
        }
    }
}

/// The order the backends run in within slice `slice`: the baseline (if it runs) between
/// the others, so that each scheme's run sits next to the baseline's run it is divided by
/// (every scheme's, with the three backends there are); in even slices in that order, in
/// odd ones reversed.
fn slice_order(backends: &[&'static str], slice: usize) -> Vec<&'static str> {
    let mut order: Vec<&'static str> = backends
        .iter()
        .copied()
        .filter(|&b| b != backends::BASELINE)
        .collect();
    if backends.contains(&backends::BASELINE) {
        order.insert(order.len() / 2, backends::BASELINE);
    }
    if slice % 2 == 1 {
        order.reverse();
    }
    order
}

/// Fills the lock columns from the process-wide lock recorder (reset before the run) on a
/// backend whose locks it records. (`report::combine` turns a cycle, a same-class nesting or
/// a nesting warning into the kernel's known limit.)
fn record_locks(spec: &backends::Spec, outcome: &mut Outcome) {
    if !spec.recorded_locks || outcome.skipped.is_some() {
        return;
    }
    let mut lock = LockSummary::from_report(&rcu_fence::lockdep::report());
    if let Some(children) = &outcome.lockdep {
        lock.merge(children);
    }
    outcome.lockdep = Some(lock);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(contained::CHILD_ARG) {
        let code = scenarios::deep::child_main(&args[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    if cli.list {
        println!("scenarios:");
        for e in scenarios::all() {
            println!("  {:<16} {} (unit: {})", e.name, e.about, e.unit);
        }
        println!("backends:");
        for b in backends::ALL {
            println!("  {:<16} {}", b.name, b.about);
        }
        return ExitCode::SUCCESS;
    }
    let parsed = Settings::from_cli(&cli).and_then(|s| Ok((s, select(&cli.scenario)?)));
    let (settings, entries) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("stress: {e}");
            return ExitCode::from(64);
        }
    };
    let backends: Vec<&'static str> = settings.backends.iter().map(|b| b.name).collect();
    let budget = match (settings.seconds, settings.ops) {
        (Some(s), Some(n)) => format!("{:.1} s or {n} ops", s.as_secs_f64()),
        (Some(s), None) => format!("{:.1} s", s.as_secs_f64()),
        (None, Some(n)) => format!("{n} ops"),
        (None, None) => unreachable!("one budget is always set"),
    };
    println!(
        "stress: seed {} (replay with --seed {}), {} threads, {budget} per scenario and backend{}, backends {}, \
         scenarios {}{}",
        settings.seed,
        settings.seed,
        settings.threads,
        if settings.slices > 1 {
            format!(" in {} slices run alternately", settings.slices)
        } else {
            String::new()
        },
        backends.join("+"),
        entries.iter().map(|e| e.name).collect::<Vec<_>>().join(","),
        if settings.quick { " (quick)" } else { "" },
    );

    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let on_stall: Arc<dyn Fn(String) + Send + Sync> = {
        let results = results.clone();
        let settings = settings.clone();
        Arc::new(move |why: String| {
            // A stuck operation cannot be recovered from: report what we have and leave.
            let done = report::combine_all(&results.lock().unwrap_or_else(|e| e.into_inner()));
            eprintln!("\nstress: FAILED: watchdog: {why}");
            print!("{}", report::text::table(&done));
            println!("stress: stuck; replay with --seed {}", settings.seed);
            settings.write_files(&done, Some(why));
            std::process::exit(2);
        })
    };

    let slices = settings.slices;
    let recorded = backends
        .iter()
        .filter(|b| backends::spec(b).is_some_and(|s| s.recorded_locks))
        .count();
    let total = entries.len() * (backends.len() * slices + recorded);
    let progress = Progress::new(total);
    let mut n = 0;
    // Each scenario's slices run alternately on the backends, so that the ratios pair runs
    // made close in time: the baseline runs between the other backends, so that each one's
    // run is next to the baseline run it is divided by (on a shared machine the speed can
    // change within seconds: over ten default runs, the slices' ratios of two backends
    // that ran next to each other spread 15-25 % less than those of two that did not), and
    // the order is reversed in odd slices. A run leaves the process in a state (its heap,
    // the caches) that the next one may gain or lose from; with a fixed order the same
    // backend would follow the baseline in every slice. An even number of slices (the
    // default) gives each order the same weight. They run with the lock recorder off, as
    // the kernel's lockdep is in production: its bookkeeping is not the classic scheme's
    // cost. A short lock pass per recorded backend follows, recorder on, for the lock
    // report alone (checked like any run, never timed).
    rcu_fence::lockdep::set_enabled(false);
    for entry in &entries {
        let runs = (0..slices)
            .flat_map(|s| {
                slice_order(&backends, s)
                    .into_iter()
                    .map(move |b| (Some(s), b))
            })
            .chain(backends.iter().map(|&b| (None, b)));
        for (slice, backend) in runs {
            let spec = backends::spec(backend).expect("parsed from backends::ALL");
            if slice.is_none() && !spec.recorded_locks {
                continue;
            }
            n += 1;
            let label = match slice {
                None => format!("{} on {backend}, lock pass", entry.name),
                Some(slice) if slices > 1 => {
                    format!("{} on {backend}, slice {}/{slices}", entry.name, slice + 1)
                }
                Some(_) => format!("{} on {backend}", entry.name),
            };
            progress.start(n, &label);
            let cfg = match slice {
                Some(slice) => settings.run_config(entry.name, slice),
                None => settings.lock_pass_config(entry.name),
            };
            let checks = Arc::new(Checks::new(cfg.threads, entry.helpers, spec));
            let watchdog = Watchdog::start(
                checks.watch.clone(),
                label.clone(),
                Duration::from_secs(cli.watchdog.max(1)),
                on_stall.clone(),
            );
            rcu_fence::lockdep::reset();
            rcu_fence::lockdep::set_enabled(slice.is_none());
            let mut outcome = run_one(entry, backend, &cfg, &checks);
            rcu_fence::lockdep::set_enabled(false);
            outcome.slice = cfg.slice;
            outcome.lock_pass = slice.is_none();
            record_locks(spec, &mut outcome);
            drop(watchdog);
            progress.end(n, &label, &outcome);
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(outcome);
        }
    }
    progress.finish();

    let results = report::combine_all(&results.lock().unwrap_or_else(|e| e.into_inner()));
    println!();
    print!("{}", report::text::table(&results));
    println!();
    print!("{}", report::text::throughput(&results));
    let depths = report::text::depths(&results);
    if !depths.is_empty() {
        println!();
        print!("{depths}");
    }
    settings.write_files(&results, None);
    let failed: Vec<&Outcome> = results.iter().filter(|o| o.failed()).collect();
    let skipped = results.iter().filter(|o| o.skipped.is_some()).count();
    println!(
        "stress: {} runs in {:.1} s, seed {}",
        results.len(),
        settings.started.elapsed().as_secs_f64(),
        settings.seed
    );
    let passed = results.len() - failed.len() - skipped;
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    println!("stress: {passed} passed, {} failed{skipped}", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for o in &failed {
            eprintln!(
                "stress: FAILED: {} on {}: {} violations, {} leaked{}",
                o.scenario,
                o.backend,
                o.violations,
                o.leaked,
                o.notes
                    .first()
                    .map(|n| format!(" (first: {n})"))
                    .unwrap_or_default()
            );
        }
        eprintln!("stress: replay with --seed {}", settings.seed);
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::slice_order;

    #[test]
    fn slices_alternate_the_order_with_the_baseline_between_the_others() {
        let all = ["locked", "locked-rcu", "rcu"];
        let order = |s| slice_order(&all, s);
        assert_eq!(order(0), ["locked-rcu", "locked", "rcu"]);
        assert_eq!(order(1), ["rcu", "locked", "locked-rcu"]);
        assert_eq!(order(2), order(0));
        assert_eq!(order(3), order(1));
        assert_eq!(slice_order(&all[..1], 1), ["locked"]);
        assert_eq!(slice_order(&["locked", "rcu"], 0), ["locked", "rcu"]);
        assert_eq!(slice_order(&["locked", "rcu"], 1), ["rcu", "locked"]);
        assert_eq!(
            slice_order(&["locked-rcu", "rcu"], 1),
            ["rcu", "locked-rcu"]
        );
    }
}
