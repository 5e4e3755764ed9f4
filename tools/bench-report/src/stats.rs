//! Medians and spreads, and the measured value of a ratio with its bracket.

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A median across rounds with the range the rounds spanned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
}

impl Spread {
    /// The spread of `samples`; `None` if there are none.
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        Some(Spread {
            median: median(&s),
            min: s.iter().copied().fold(f64::INFINITY, f64::min),
            max: s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: s.len(),
        })
    }

    /// The range relative to the median, in percent.
    pub(crate) fn width_percent(&self) -> f64 {
        (self.max - self.min) / self.median * 100.0
    }
}

/// Round-by-round quotients `a[r] / b[r]`.
pub(crate) fn per_round(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// A figure a target is checked against: its value and the bracket it must hold over.
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    pub(crate) value: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    /// What the bracket is: "9 rounds", "95 % intervals", "counted", ...
    pub(crate) basis: String,
}

impl Measured {
    /// A figure with no spread (counted, not timed).
    pub(crate) fn exact(value: f64, basis: &str) -> Self {
        Measured {
            value,
            lo: value,
            hi: value,
            basis: basis.to_string(),
        }
    }

    /// The median and range of per-round figures.
    pub(crate) fn rounds(values: &[f64], what: &str) -> Option<Self> {
        let s = Spread::of(values)?;
        Some(Measured {
            value: s.median,
            lo: s.min,
            hi: s.max,
            basis: format!("min–max over {} {what}", s.n),
        })
    }
}
