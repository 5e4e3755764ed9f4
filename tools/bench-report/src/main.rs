//! The benchmark report: runs every benchmark target of the workspace (B1–B11) once, in
//! sequence, and the stress binary's default run, then gathers their results into
//! `BENCHMARKS.md` (a table per benchmark with each variant's median and its ratios to the
//! floor and to the baseline backend, the targets, the machine and the noise) and draws the
//! plots under `benches/plots/`.
//!
//! ```text
//! cargo run --release -p bench-report -- [--quick] [--only chain,latency,stress] [--note "..."] [--report-only]
//! ```
//!
//! `--quick` makes every run short; `--only` reruns only those targets and keeps the other
//! results; `--note` adds a line about the run (e.g. concurrent load); `--report-only` only
//! rewrites the report from the last results. The same options can be given as
//! `RCU_FENCE_BENCH_QUICK=1`, `RCU_FENCE_BENCH_ONLY=...` and `RCU_FENCE_BENCH_NOTE=...`.

mod format;
mod plots;
mod render;
mod results;
mod runner;
mod stats;
mod targets;

use std::path::PathBuf;
use std::time::Instant;

/// What the command line asked for.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    only: Option<String>,
    note: Option<String>,
    report_only: bool,
}

impl Options {
    /// The flags, with the environment variables as defaults.
    fn parse() -> Self {
        let mut o = Options {
            quick: std::env::var_os("RCU_FENCE_BENCH_QUICK").is_some(),
            only: std::env::var("RCU_FENCE_BENCH_ONLY").ok(),
            note: std::env::var("RCU_FENCE_BENCH_NOTE").ok(),
            report_only: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--report-only" => o.report_only = true,
                "--only" => o.only = args.next(),
                "--note" => o.note = args.next(),
                "-h" | "--help" => {
                    println!(
                        "bench-report [--quick] [--only <target,...>] [--note <text>] [--report-only]"
                    );
                    std::process::exit(0);
                }
                other => {
                    eprintln!("bench-report: unknown argument {other:?} (try --help)");
                    std::process::exit(2);
                }
            }
        }
        o
    }
}

/// The workspace root: this package lives in `tools/bench-report`.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}

fn main() {
    let options = Options::parse();
    let root = workspace_root();
    let out = runner::out_dir(&root);
    let started = Instant::now();
    if !options.report_only {
        runner::run_all(&root, &out, &options);
    }
    let facts = runner::RunFacts::load(&out, options.note.clone());
    let results = results::Results::load(&out);

    let plots = root.join("benches/plots");
    std::fs::create_dir_all(&plots).expect("plots directory");
    plots::draw_all(&plots, &results);

    let md = render::render(&results, &facts);
    std::fs::write(root.join("BENCHMARKS.md"), md).expect("write BENCHMARKS.md");
    println!(
        "wrote BENCHMARKS.md and benches/plots/*.svg ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}
