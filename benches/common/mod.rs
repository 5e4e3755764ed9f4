//! What every benchmark target shares: the one list of backends, the criterion
//! configuration, where results go, the interleaved-rounds harness, and the hand-written
//! baselines (the floor fence and the `Mutex`+`Condvar` fences).
#![allow(dead_code, unused_imports, unused_macros)]

pub(crate) mod condvar;
mod floor;
pub(crate) mod rounds;

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

pub(crate) use condvar::{CondvarFence, ParkingLot, StdSync};
pub(crate) use floor::{Callback, FloorFence};

/// Runs `$body` once per backend, in table order, with `$B` naming the backend's type:
/// `for_each_backend!(|B| group_add::<B>(&mut group))`.
///
/// The list below is the only list of backends in the benchmarks: every target and the
/// report take their variants from it, so adding a backend is one line here.
macro_rules! for_each_backend {
    (|$B:ident| $body:expr) => {
        $crate::common::for_each_backend!(@list |$B| $body;
            rcu_fence::Rcu,
            rcu_fence::Locked,
            rcu_fence::LockedRcu,
        )
    };
    (@list |$B:ident| $body:expr; $($backend:ty),* $(,)?) => {{
        $({
            type $B = $backend;
            $body;
        })*
    }};
}
pub(crate) use for_each_backend;

/// The backend every ratio is taken against: the kernel's classic scheme.
pub(crate) const BASELINE: &str = <rcu_fence::Locked as rcu_fence::Backend>::NAME;

/// The backends' names, in table order.
pub(crate) fn backend_names() -> Vec<&'static str> {
    let mut names = Vec::new();
    for_each_backend!(|B| names.push(<B as rcu_fence::Backend>::NAME));
    names
}

/// True when `RCU_FENCE_BENCH_QUICK` is set: short runs to check that everything works.
pub(crate) fn quick() -> bool {
    std::env::var_os("RCU_FENCE_BENCH_QUICK").is_some()
}

/// True when the target is only asked for its benchmark list (`cargo bench -- --list`).
pub(crate) fn listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// True unless the command line names a filter (criterion's positional argument) that `id`
/// does not contain: `cargo bench --bench array -- b6` runs only B6.
pub(crate) fn selected(id: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

/// Turns the `Locked` backend's lock recorder off (the kernel's lockdep is a debug option,
/// off in production builds, and the comparison is against the bare classic scheme), and
/// records which backends this run compares, for the report.
pub(crate) fn setup() {
    rcu_fence::lockdep::set_enabled(false);
    if !listing() {
        write_json(
            "backends",
            &serde_json::json!({ "backends": backend_names(), "baseline": BASELINE }),
        );
    }
}

/// Short measurement and warm-up times and fewer resamples: on 2 cores criterion's
/// analysis, not the measurement, dominates with the defaults.
pub(crate) fn criterion() -> Criterion {
    let c = Criterion::default()
        .without_plots()
        .nresamples(2_000)
        .sample_size(20);
    let c = if quick() {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(400))
            .measurement_time(Duration::from_millis(1_500))
    };
    c.configure_from_args()
}

/// The directory for results that criterion does not record (rounds, latency samples,
/// bytes, probes): `$RCU_FENCE_BENCH_OUT`, else `target/bench-report` beside the bench
/// binary.
pub(crate) fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("RCU_FENCE_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/release/deps/<bench> -> target
            let target = exe
                .ancestors()
                .nth(3)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"));
            target.join("bench-report")
        }
    };
    std::fs::create_dir_all(&dir).expect("create the results directory");
    dir
}

/// Writes `value` as `<out_dir>/<name>.json`.
pub(crate) fn write_json(name: &str, value: &serde_json::Value) {
    let path = out_dir().join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json"))
        .expect("write results");
}
