//! Reading what the targets wrote: criterion's estimates, the interleaved rounds, the
//! latency samples, the byte counts and the probes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One criterion measurement: the median time per iteration and its 95 % confidence
/// interval (criterion's bootstrap, within one run), in ns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    pub(crate) median: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Estimate {
    /// Half the interval's width relative to the median, in percent.
    pub(crate) fn noise(&self) -> f64 {
        (self.hi - self.lo) / 2.0 / self.median * 100.0
    }
}

/// A benchmark's variant and parameter: the last two parts of its id.
pub(crate) type Key = (String, String);

/// group -> (variant, param) -> estimate.
pub(crate) type CriterionResults = BTreeMap<String, BTreeMap<Key, Estimate>>;

/// One variant of an interleaved measurement: its time per iteration in each round.
#[derive(Debug)]
pub(crate) struct RoundsVariant {
    pub(crate) variant: String,
    pub(crate) param: String,
    pub(crate) iters: u64,
    pub(crate) ns: Vec<f64>,
    /// Units of work per iteration in each round (e.g. leaves visited per read).
    pub(crate) work: Vec<f64>,
}

/// An interleaved measurement (`rounds_<group>.json`).
#[derive(Debug, Default)]
pub(crate) struct RoundsGroup {
    pub(crate) rounds: usize,
    pub(crate) variants: Vec<RoundsVariant>,
}

impl RoundsGroup {
    pub(crate) fn get(&self, variant: &str, param: &str) -> Option<&RoundsVariant> {
        self.variants
            .iter()
            .find(|v| v.variant == variant && v.param == param)
    }
}

/// Everything one report is made from.
#[derive(Debug)]
pub(crate) struct Results {
    /// The backends compared, in table order, and the one ratios are taken against.
    pub(crate) backends: Vec<String>,
    pub(crate) baseline: String,
    pub(crate) criterion: CriterionResults,
    pub(crate) rounds: BTreeMap<String, RoundsGroup>,
    pub(crate) latency: Value,
    pub(crate) alloc: Value,
    pub(crate) stalled: Value,
    /// The stress binary's default run (`stress.json`).
    pub(crate) stress: Value,
    pub(crate) b7_probe: Value,
    pub(crate) b8_skipped: Vec<Value>,
}

impl Results {
    /// Reads the results directory.
    pub(crate) fn load(out: &Path) -> Self {
        let backends = read_json(&out.join("backends.json"));
        let names: Vec<String> = backends["backends"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| vec!["rcu".into(), "locked".into()]);
        Results {
            backends: names,
            baseline: backends["baseline"]
                .as_str()
                .unwrap_or("locked")
                .to_string(),
            criterion: criterion_results(&out.join("criterion")),
            rounds: rounds_results(out),
            latency: read_json(&out.join("latency.json")),
            alloc: read_json(&out.join("alloc.json")),
            stalled: read_json(&out.join("rcu_stalled.json")),
            stress: read_json(&out.join("stress.json")),
            b7_probe: read_json(&out.join("b7_probe.json")),
            b8_skipped: read_json(&out.join("b8_skipped.json"))
                .as_array()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The backends other than the baseline: the ones each target is checked for.
    pub(crate) fn contenders(&self) -> impl Iterator<Item = &str> {
        self.backends
            .iter()
            .map(String::as_str)
            .filter(|b| *b != self.baseline)
    }

    /// A criterion estimate.
    pub(crate) fn estimate(&self, group: &str, variant: &str, param: &str) -> Option<Estimate> {
        self.criterion
            .get(group)?
            .get(&(variant.to_string(), param.to_string()))
            .copied()
    }

    /// An interleaved variant.
    pub(crate) fn rounds_of(
        &self,
        group: &str,
        variant: &str,
        param: &str,
    ) -> Option<&RoundsVariant> {
        self.rounds.get(group)?.get(variant, param)
    }

    /// The parameter a rounds group ran `variant` with (B11's job count).
    pub(crate) fn rounds_of_variant(&self, group: &str, variant: &str) -> Option<String> {
        self.rounds
            .get(group)?
            .variants
            .iter()
            .find(|v| v.variant == variant)
            .map(|v| v.param.clone())
    }

    /// Where a variant sorts in a table: the floor, the backends in order, the rest by name.
    pub(crate) fn variant_rank(&self, variant: &str) -> (usize, String) {
        let rank = if variant == "floor" {
            0
        } else if let Some(i) = self.backends.iter().position(|b| b == variant) {
            1 + i
        } else {
            1 + self.backends.len()
        };
        (rank, variant.to_string())
    }
}

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// Walks criterion's output for every `benchmark.json` with a `new/estimates.json` beside it.
fn criterion_results(home: &Path) -> CriterionResults {
    let mut out = CriterionResults::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            if path.file_name().is_none_or(|n| n != "new") {
                stack.push(path);
                continue;
            }
            let (b, est) = (
                read_json(&path.join("benchmark.json")),
                read_json(&path.join("estimates.json")),
            );
            if b.is_null() || est.is_null() {
                continue;
            }
            let m = &est["median"];
            let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            let estimate = Estimate {
                median: f(&m["point_estimate"]),
                lo: f(&m["confidence_interval"]["lower_bound"]),
                hi: f(&m["confidence_interval"]["upper_bound"]),
            };
            let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
            out.entry(s("group_id"))
                .or_default()
                .insert((s("function_id"), s("value_str")), estimate);
        }
    }
    out
}

/// Every `rounds_<group>.json` in the results directory.
fn rounds_results(out: &Path) -> BTreeMap<String, RoundsGroup> {
    let mut groups = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return groups;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("rounds_") && name.ends_with(".json")) {
            continue;
        }
        let v = read_json(&path);
        let floats = |x: &Value| -> Vec<f64> {
            x.as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let variants = v["variants"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| RoundsVariant {
                        variant: e["variant"].as_str().unwrap_or("").to_string(),
                        param: e["param"].as_str().unwrap_or("").to_string(),
                        iters: e["iters"].as_u64().unwrap_or(0),
                        ns: floats(&e["ns_per_iter"]),
                        work: floats(&e["work_per_iter"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let group = RoundsGroup {
            rounds: v["rounds"].as_u64().unwrap_or(0) as usize,
            variants,
        };
        groups.insert(v["group"].as_str().unwrap_or(name).to_string(), group);
    }
    groups
}
