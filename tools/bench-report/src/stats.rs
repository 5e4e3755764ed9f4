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

    /// The median of per-slice figures, bracketed by the median's 95 % interval
    /// ([`median_rank`]): the whole range up to eight slices (as [`Measured::rounds`]),
    /// narrower with more, so that the bracket does not widen only because the same time
    /// was cut into more slices.
    pub(crate) fn slices(values: &[f64], what: &str) -> Option<Self> {
        let mut s: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let k = median_rank(n);
        let basis = if k == 1 {
            format!("min–max over {n} {what}")
        } else {
            let k = ordinal(k);
            format!("{k} lowest–{k} highest of {n} {what} (the median's 95 % interval)")
        };
        Some(Measured {
            value: median(&s),
            lo: s[k - 1],
            hi: s[n - k],
            basis,
        })
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, ..., `11th`, ..., `21st`.
fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

/// The rank `k` such that the `k`-th lowest and `k`-th highest of `n` independent samples
/// bracket their distribution's median with at least 95 % confidence, whatever the
/// distribution (the chance that fewer than `k` samples fall on one side is a binomial
/// tail: `1 - 2 P(Bin(n, 1/2) < k)`); the largest such `k`, or 1 (the whole range) when
/// even that is below 95 % (up to five samples).
pub(crate) fn median_rank(n: usize) -> usize {
    let mut best = 1;
    // P(Bin(n, 1/2) = j) for the current j, and P(Bin(n, 1/2) < k).
    let mut pmf = 0.5f64.powi(n as i32);
    let mut below = 0.0;
    for k in 1..=n / 2 {
        below += pmf;
        if 1.0 - 2.0 * below < 0.95 {
            break;
        }
        best = k;
        pmf *= (n - (k - 1)) as f64 / k as f64;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_is_the_whole_range_for_few_samples_and_narrower_for_many() {
        // 1 - 2^(1-n): 87.5 % for four, 96.9 % for six.
        assert_eq!((1..=8).map(median_rank).collect::<Vec<_>>(), [1; 8]);
        // Nine: the 2nd of each end covers 96.1 %, the 3rd 82.0 %.
        assert_eq!(median_rank(9), 2);
        // Sixteen: the 4th covers 97.9 %, the 5th 92.3 %.
        assert_eq!(median_rank(16), 4);
        assert_eq!(median_rank(100), 40);
    }

    #[test]
    fn slices_are_bracketed_by_the_median_interval() {
        let four = Measured::slices(&[4.0, 1.0, 3.0, 2.0], "slices").unwrap();
        assert_eq!((four.value, four.lo, four.hi), (2.5, 1.0, 4.0));
        assert_eq!(four.basis, "min–max over 4 slices");
        let sixteen: Vec<f64> = (1..=16).rev().map(f64::from).chain([f64::NAN]).collect();
        let m = Measured::slices(&sixteen, "slices").unwrap();
        assert_eq!((m.value, m.lo, m.hi), (8.5, 4.0, 13.0));
        assert!(m.basis.starts_with("4th lowest–4th highest of 16 slices"));
        let nine = Measured::slices(&(1..=9).map(f64::from).collect::<Vec<_>>(), "slices");
        assert!(
            nine.unwrap()
                .basis
                .starts_with("2nd lowest–2nd highest of 9")
        );
        assert!(Measured::slices(&[f64::NAN], "slices").is_none());
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).into();
        assert_eq!(
            words,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"
            ]
        );
    }
}
