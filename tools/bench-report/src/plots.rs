//! The plots: latency CDFs (B3, B4) and cost per level against nesting depth (B7), as SVG.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

use crate::results::{CriterionResults, Results};

/// Draws every plot into `dir`.
pub(crate) fn draw_all(dir: &Path, r: &Results) {
    plot_cdf(
        &dir.join("b3_wake_cdf.svg"),
        &r.latency,
        "b3",
        "B3: blocked waiter wake latency (CDF)",
    );
    plot_cdf(
        &dir.join("b4_await_cdf.svg"),
        &r.latency,
        "b4",
        "B4: .await wake latency (CDF)",
    );
    plot_depth(&dir.join("b7_depth.svg"), &r.criterion);
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// The latency CDFs of one bench (x: µs, log scale; y: fraction of samples).
fn plot_cdf(path: &Path, latency: &Value, bench: &str, title: &str) {
    let Some(series) = latency[bench].as_array() else {
        return;
    };
    let points: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            let pts = s["cdf"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (
                                p[0].as_f64().unwrap_or(1.0) / 1e3,
                                p[1].as_f64().unwrap_or(0.0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (s["name"].as_str().unwrap_or("").to_string(), pts)
        })
        .collect();
    let xs = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .filter(|x| *x > 0.0);
    let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo >= hi {
        return;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).ok();
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..1.0)
    else {
        return;
    };
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("fraction of samples ≤ x")
        .draw()
        .ok();
    for (i, (name, pts)) in points.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        if let Ok(series) =
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        {
            series.label(name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .ok();
    root.present().ok();
}

/// B7: time per level against depth, log-log, one line per variant.
fn plot_depth(path: &Path, results: &CriterionResults) {
    let Some(rows) = results.get("b7_nesting") else {
        return;
    };
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for ((v, p), e) in rows {
        let d: f64 = p.parse().unwrap_or(1.0);
        lines.entry(v.as_str()).or_default().push((d, e.median / d));
    }
    let all: Vec<(f64, f64)> = lines.values().flatten().copied().collect();
    if all.is_empty() {
        return;
    }
    let (ylo, yhi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).ok();
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(
            "B7: cost per nesting level against depth (256 KiB stack)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (5.0..200_000.0).log_scale(),
            (ylo * 0.5..yhi * 2.0).log_scale(),
        )
    else {
        return;
    };
    chart
        .configure_mesh()
        .x_desc("depth D (log scale)")
        .y_desc("ns per level (log scale)")
        .draw()
        .ok();
    for (i, (name, pts)) in lines.iter_mut().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = PALETTE[i % PALETTE.len()];
        if let Ok(series) =
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        {
            series.label(name.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .ok();
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .ok();
    root.present().ok();
}
