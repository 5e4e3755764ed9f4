//! Number formats and markdown tables.

use std::fmt::Write as _;

use crate::stats::{Measured, Spread};

/// A time in ns, in the unit that reads best.
pub(crate) fn ns(ns: f64) -> String {
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

/// A ratio, `–` when there is none.
pub(crate) fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "–".into(),
    }
}

/// A time across rounds: `median (min–max)`.
pub(crate) fn ns_spread(s: &Spread) -> String {
    format!("{} ({}–{})", ns(s.median), ns(s.min), ns(s.max))
}

/// A ratio across rounds: `median× (min–max)`.
pub(crate) fn ratio_spread(s: Option<Spread>) -> String {
    match s {
        Some(s) if s.median.is_finite() => {
            format!("{:.2}× ({:.2}–{:.2})", s.median, s.min, s.max)
        }
        _ => "–".into(),
    }
}

/// A figure with about three significant digits (two decimals between 0.01 and 100).
fn figure(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.5}")
    }
}

/// A target's figure: `value (lo–hi)` when it has a bracket.
pub(crate) fn measured(m: &Measured) -> String {
    if m.lo == m.hi {
        figure(m.value)
    } else {
        format!("{} ({}–{})", figure(m.value), figure(m.lo), figure(m.hi))
    }
}

/// Column alignment.
#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
    Center,
}

/// A markdown table built row by row.
pub(crate) struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; the first is left-aligned, the rest right-aligned.
    pub(crate) fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        let align = (0..header.len())
            .map(|i| if i == 0 { Align::Left } else { Align::Right })
            .collect();
        Table {
            header,
            align,
            rows: Vec::new(),
        }
    }

    /// Sets one column's alignment.
    pub(crate) fn align(mut self, column: usize, align: Align) -> Self {
        self.align[column] = align;
        self
    }

    /// Adds a row (missing cells are blank).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The markdown, with a blank line after it.
    pub(crate) fn render(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "| {} |", self.header.join(" | "));
        let rule: Vec<&str> = self
            .align
            .iter()
            .map(|a| match a {
                Align::Left => "---",
                Align::Right => "---:",
                Align::Center => ":---:",
            })
            .collect();
        let _ = writeln!(md, "| {} |", rule.join(" | "));
        for row in &self.rows {
            let cells: Vec<&str> = (0..self.header.len())
                .map(|i| row.get(i).map_or("", String::as_str))
                .collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
        md.push('\n');
        md
    }
}
