//! Contained runs: work a scheme may not survive runs in a child process (this very binary,
//! started again with the hidden first argument [`CHILD_ARG`]), so that a stack overflow or
//! a hang is observed from outside and reported as a result, not suffered.
//!
//! The protocol between the two sides is three kinds of line on the child's stdout:
//! `phase <name>` as each phase starts ([`phase`]), so that a crash can be placed; on
//! success, one `ok key=value ...` line with what the child measured ([`ok`]); on a failure
//! it found itself, `problem <text>` lines ([`problem`]), the first of which describes the
//! failure. Otherwise the first line the child wrote to stderr does (a Rust stack overflow
//! says "overflowed its stack" there before the abort).
//!
//! This module knows nothing of what the child runs: the caller builds the arguments that
//! follow [`CHILD_ARG`], and `main` routes them back to their owner. [`probe_depths`] runs
//! one such child at increasing depths and narrows the first failing depth down.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden first argument that selects the child side.
pub(crate) const CHILD_ARG: &str = "__contained";

/// How long a child may run before it is killed as stuck.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The child side: announces the phase that starts now.
pub(crate) fn phase(name: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "phase {name}");
    let _ = out.flush();
}

/// The child side: reports success with what it measured.
pub(crate) fn ok(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ok {}", line.join(" "));
    let _ = out.flush();
}

/// The child side: reports a problem it found (a violation, a leak); the first one
/// describes the child's failure.
pub(crate) fn problem(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "problem {}", text.replace('\n', " "));
    let _ = out.flush();
}

/// The `key=value` fields of a child's `ok` line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(line: &str) -> Fields {
        Fields(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The field called `name`, as text.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field called `name`, as a number (0 if absent or not a number).
    pub(crate) fn number(&self, name: &str) -> u64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// How one child run ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Exit status 0 and an `ok` line.
    Passed(Fields),
    /// Anything else: the phase it was in and how it ended.
    Failed { phase: String, how: String },
}

/// Runs this binary as a child with `args` after [`CHILD_ARG`] and waits (at most
/// [`CHILD_TIMEOUT`]) for it to end.
pub(crate) fn run_child(args: &[String]) -> Ending {
    let failed = |how: String| Ending::Failed {
        phase: "start".into(),
        how,
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return failed(format!("cannot find the stress binary: {e}")),
    };
    let child = Command::new(exe)
        .arg(CHILD_ARG)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start a child process: {e}")),
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
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
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
        return Ending::Failed {
            phase,
            how: format!(
                "no progress for {} s (killed; deadlock?)",
                CHILD_TIMEOUT.as_secs()
            ),
        };
    };
    let ok_line = out.lines().find_map(|l| l.strip_prefix("ok "));
    if let (true, Some(line)) = (status.success(), ok_line) {
        return Ending::Passed(Fields::parse(line));
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
    let first_err = out
        .lines()
        .find_map(|l| l.strip_prefix("problem "))
        .or_else(|| err.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .to_string();
    Ending::Failed {
        phase,
        how: if overflow || first_err.is_empty() {
            how
        } else {
            format!("{how}: {first_err}")
        },
    }
}

/// The first failing depth of a probe and how it failed.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The smallest depth seen failing.
    pub(crate) depth: usize,
    /// The phase the child was in.
    pub(crate) phase: String,
    /// How it ended (signal, exit status, first line of stderr).
    pub(crate) how: String,
}

/// What running a child at increasing depths found.
#[derive(Clone, Debug, Default)]
pub(crate) struct DepthProbe {
    /// The deepest depth that passed.
    pub(crate) survived: Option<usize>,
    /// The `ok` fields at the deepest passing depth.
    pub(crate) deepest: Fields,
    /// The `ok` fields at the shallowest depth tried, if it passed.
    pub(crate) shallowest: Option<(usize, Fields)>,
    /// The first failure, once narrowed down.
    pub(crate) failure: Option<Failure>,
    /// Children started.
    pub(crate) runs: usize,
}

/// Runs `child(depth)` at depths 10, 100, ... below `max_depth`, then at `max_depth`; after
/// the first failure, narrows the breaking depth down by up to `bisect` bisection steps
/// (to within 2 %).
pub(crate) fn probe_depths(
    max_depth: usize,
    bisect: usize,
    mut child: impl FnMut(usize) -> Ending,
) -> DepthProbe {
    let mut probe = DepthProbe::default();
    let mut depths: Vec<usize> = std::iter::successors(Some(10usize), |d| d.checked_mul(10))
        .take_while(|d| *d < max_depth)
        .collect();
    depths.push(max_depth);
    let mut failed = None;
    for depth in depths {
        probe.runs += 1;
        match child(depth) {
            Ending::Passed(fields) => {
                if probe.shallowest.is_none() {
                    probe.shallowest = Some((depth, fields.clone()));
                }
                probe.survived = Some(depth);
                probe.deepest = fields;
            }
            Ending::Failed { phase, how } => {
                failed = Some(Failure { depth, phase, how });
                break;
            }
        }
    }
    let Some(mut failure) = failed else {
        return probe;
    };
    let mut good = probe.survived.unwrap_or(0);
    for _ in 0..bisect {
        if failure.depth - good <= (failure.depth / 50).max(1) {
            break;
        }
        let mid = good + (failure.depth - good) / 2;
        probe.runs += 1;
        match child(mid) {
            Ending::Passed(fields) => {
                good = mid;
                probe.survived = Some(mid);
                probe.deepest = fields;
            }
            Ending::Failed { phase, how } => {
                failure = Failure {
                    depth: mid,
                    phase,
                    how,
                };
            }
        }
    }
    probe.failure = Some(failure);
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(limit: usize) -> impl FnMut(usize) -> Ending {
        move |depth| {
            if depth <= limit {
                Ending::Passed(Fields::parse(&format!("peak={}", depth * 2)))
            } else {
                Ending::Failed {
                    phase: "drop".into(),
                    how: "stack overflow".into(),
                }
            }
        }
    }

    #[test]
    fn probe_finds_and_narrows_the_breaking_depth() {
        let p = probe_depths(100_000, 16, fake(1_234));
        let failure = p.failure.clone().expect("fails");
        let survived = p.survived.expect("passes at 10");
        assert!(survived <= 1_234 && failure.depth > 1_234, "{p:?}");
        assert!(failure.depth - survived <= failure.depth / 50, "{p:?}");
        assert_eq!(failure.phase, "drop");
        assert_eq!(p.deepest.number("peak"), survived as u64 * 2);
        assert_eq!(p.shallowest.as_ref().map(|s| s.0), Some(10));
    }

    #[test]
    fn probe_without_failure_reaches_the_maximum() {
        let p = probe_depths(5_000, 16, fake(usize::MAX));
        assert_eq!(p.survived, Some(5_000));
        assert!(p.failure.is_none());
        assert_eq!(p.runs, 4); // 10, 100, 1000, 5000
    }
}
