//! B9 (bytes per object) and B10's stalled reader: counted, not timed.

use std::fmt::Write as _;

use crate::format::Table;
use crate::results::Results;

/// One B9 shape: its label and the keys whose bytes add up to it.
struct Shape {
    label: &'static str,
    keys: &'static [&'static str],
}

const SHAPES: [Shape; 6] = [
    Shape {
        label: "plain fence",
        keys: &["fence"],
    },
    Shape {
        label: "**array member, enabled** (headline)",
        keys: &["array_member", "array_member_enabled"],
    },
    Shape {
        label: "array member, bare slot",
        keys: &["array_member"],
    },
    Shape {
        label: "**chain link, enabled** (headline)",
        keys: &["chain_link", "chain_link_enabled"],
    },
    Shape {
        label: "chain link, built",
        keys: &["chain_link"],
    },
    Shape {
        label: "callback",
        keys: &["callback"],
    },
];

pub(super) fn b9(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B9: heap bytes per object (counting global allocator, N = {})\n",
        r.alloc["n"]
    );
    let mut variants = vec!["floor".to_string()];
    variants.extend(r.backends.iter().cloned());
    let mut header = vec!["shape".to_string()];
    header.extend(variants.iter().map(|v| format!("{v} bytes")));
    header.extend(r.backends.iter().map(|b| format!("{b} allocations")));
    let mut table = Table::new(header);
    for shape in &SHAPES {
        let sum = |v: &str, what: &str| -> Option<f64> {
            shape
                .keys
                .iter()
                .map(|k| r.alloc[v][*k][what].as_f64())
                .sum()
        };
        let mut cells = vec![shape.label.to_string()];
        cells.extend(
            variants
                .iter()
                .map(|v| sum(v, "bytes").map_or("–".into(), |x| format!("{x:.1} B"))),
        );
        cells.extend(
            r.backends
                .iter()
                .map(|b| sum(b, "allocs").map_or("–".into(), |x| format!("{x:.2}"))),
        );
        table.row(cells);
    }
    md.push_str(&table.render());
    let _ = writeln!(
        md,
        "\"Enabled\" is what a member or link costs once anything waits on its container: \
         the slot or link plus the callback the container installs on the member (the \
         kernel's array counts `callbacks[]` the same way: 8 B in `fences[]` plus a 32 B \
         `dma_fence_array_cb` per member, 40 B). The bare figures are the second rows. A \
         callback's closure holds one pointer; the floor's callback is one node with its \
         closure inline.\n"
    );
}

pub(super) fn b10_stalled(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "## B10: memory held back by one stalled reader\n\nOne reader holds a protected read \
         while the writer replaces the value 100,000 times, then offers its garbage to the \
         reclaimer (`rcu::flush`).\n"
    );
    let mut table = Table::new([
        "reclaimer",
        "values still alive",
        "≈ bytes",
        "`rcu::pending`",
    ]);
    for row in r.stalled.as_array().into_iter().flatten() {
        table.row(vec![
            row["name"].as_str().unwrap_or("").to_string(),
            row["values_held"].to_string(),
            row["bytes_held"].to_string(),
            if row["pending"].is_null() {
                "–".into()
            } else {
                row["pending"].to_string()
            },
        ]);
    }
    md.push_str(&table.render());
}
