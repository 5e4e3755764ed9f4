//! Contained runs: a shape the classic scheme may not survive runs in a child process (this
//! very binary, started again with a hidden first argument), so that a stack overflow or a
//! hang is observed from outside and reported as a result.
//!
//! `stress __contained <backend> <shape> <depth> <seed>` runs one `deep` shape and prints
//! `phase <name>` as each phase starts, then one `ok ...` line. The parent tries increasing
//! depths and reports the deepest that passed and how the first failing one ended.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::scenarios::deep::{self, Shape};

/// The hidden first argument that selects the child side.
pub(crate) const CHILD_ARG: &str = "__contained";

/// How long a child may run before it is killed as stuck.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The child side: parses the arguments after [`CHILD_ARG`] and runs the shape.
pub(crate) fn child_main(args: &[String]) -> i32 {
    let parsed = (|| {
        let backend = args.first()?.clone();
        let shape = Shape::parse(args.get(1)?)?;
        let depth = args.get(2)?.parse().ok()?;
        let seed = args.get(3)?.parse().ok()?;
        Some((backend, shape, depth, seed))
    })();
    let Some((backend, shape, depth, seed)) = parsed else {
        eprintln!("usage: stress {CHILD_ARG} <rcu|locked> <checked|enable|put> <depth> <seed>");
        return 64;
    };
    struct Child(Shape, usize, u64);
    impl crate::backends::Generic for Child {
        type Output = i32;
        fn call<B: rcu_fence::Backend>(self) -> i32 {
            deep::child::<B>(self.0, self.1, self.2)
        }
    }
    crate::backends::dispatch(&backend, Child(shape, depth, seed)).unwrap_or_else(|| {
        eprintln!("no backend called {backend}");
        64
    })
}

/// How one child run ended.
#[derive(Debug)]
enum Ending {
    Passed { peak: u64, deps: u64, line: String },
    Failed(String),
}

fn run_child(backend: &str, shape: Shape, depth: usize, seed: u64) -> Ending {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Ending::Failed(format!("cannot find the stress binary: {e}")),
    };
    let child = Command::new(exe)
        .args([
            CHILD_ARG,
            backend,
            shape.name(),
            &depth.to_string(),
            &seed.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Ending::Failed(format!("cannot start a child process: {e}")),
    };
    // Read both pipes on helper threads so that a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > CHILD_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let phase = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("phase "))
        .unwrap_or("start")
        .to_string();
    let Some(status) = status else {
        return Ending::Failed(format!(
            "no progress for {} s in {phase} (killed; deadlock?)",
            CHILD_TIMEOUT.as_secs()
        ));
    };
    if status.success() {
        let line = out
            .lines()
            .find(|l| l.starts_with("ok "))
            .unwrap_or("")
            .to_string();
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        return Ending::Passed {
            peak: field("peak"),
            deps: field("deps"),
            line,
        };
    }
    let overflow = err.contains("overflowed its stack");
    let how = {
        use std::os::unix::process::ExitStatusExt as _;
        match (status.signal(), status.code()) {
            (Some(sig), _) if overflow => format!("stack overflow (signal {sig})"),
            (Some(sig), _) => format!("killed by signal {sig}"),
            (None, Some(code)) => format!("exit status {code}"),
            (None, None) => "ended abnormally".to_string(),
        }
    };
    let first_err = err
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    Ending::Failed(if overflow || first_err.is_empty() {
        format!("{how} in {phase}")
    } else {
        format!("{how} in {phase}: {first_err}")
    })
}

/// What probing a shape at increasing depths found.
#[derive(Debug, Default)]
pub(crate) struct DepthProbe {
    pub(crate) shape: &'static str,
    /// The deepest depth that passed.
    pub(crate) survived: Option<usize>,
    /// The first failing depth and how it failed.
    pub(crate) failure: Option<String>,
    /// Peak stack at the deepest passing depth.
    pub(crate) peak: Option<u64>,
    /// Lock dependencies the deepest passing child recorded.
    pub(crate) lock_deps: Option<u64>,
    /// The child's `ok` line at the deepest passing depth.
    pub(crate) last_ok: String,
}

impl DepthProbe {
    pub(crate) fn describe(&self) -> String {
        let passed = match self.survived {
            Some(d) => format!("passed at depth {d} (peak stack {})", deep::kib(self.peak)),
            None => "passed at no depth".to_string(),
        };
        match &self.failure {
            Some(f) => format!("{} in a child process: {passed}; {f}", self.shape),
            None => format!("{} in a child process: {passed}", self.shape),
        }
    }
}

/// Runs `shape` in child processes at depths 10, 100, ... up to `max_depth`; after the first
/// failure, narrows the breaking depth down by bisection (not with `quick`).
pub(crate) fn probe_depths(
    backend: &'static str,
    shape: Shape,
    max_depth: usize,
    seed: u64,
    quick: bool,
) -> DepthProbe {
    let mut probe = DepthProbe {
        shape: shape.name(),
        ..DepthProbe::default()
    };
    let mut depths: Vec<usize> = std::iter::successors(Some(10usize), |d| d.checked_mul(10))
        .take_while(|d| *d < max_depth)
        .collect();
    depths.push(max_depth);
    let mut failed_at = None;
    for depth in depths {
        match run_child(backend, shape, depth, seed) {
            Ending::Passed { peak, deps, line } => {
                probe.survived = Some(depth);
                probe.peak = Some(peak);
                probe.lock_deps = Some(deps);
                probe.last_ok = line;
            }
            Ending::Failed(how) => {
                failed_at = Some((depth, how));
                break;
            }
        }
    }
    let Some((mut bad, mut how)) = failed_at else {
        return probe;
    };
    // Bisection between the deepest pass and the first failure.
    let mut good = probe.survived.unwrap_or(0);
    let steps = if quick { 0 } else { 8 };
    for _ in 0..steps {
        if bad - good <= (bad / 50).max(1) {
            break;
        }
        let mid = good + (bad - good) / 2;
        match run_child(backend, shape, mid, seed) {
            Ending::Passed { peak, deps, line } => {
                good = mid;
                probe.survived = Some(mid);
                probe.peak = Some(peak);
                probe.lock_deps = Some(deps);
                probe.last_ok = line;
            }
            Ending::Failed(h) => {
                bad = mid;
                how = h;
            }
        }
    }
    probe.failure = Some(format!("{how} at depth ~{bad}"));
    probe
}
