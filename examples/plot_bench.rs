//! Draws the charts of `BENCHMARKS.md` from criterion's own estimates:
//!
//! * `benches/hit_latency.png`: the hit latency of every contender of
//!   `benches/cached_hit.rs` (`#[cached]`, `#[cached(local)]`, the `cached`
//!   crate, raw moka...), on one and on two threads;
//! * `benches/session_throughput.png`: requests per second of
//!   `benches/sessions.rs` (covet's `SessionLayer` against tower-sessions,
//!   on memory and on Redis, and the handler without sessions);
//! * `benches/http_cache_hits.png`: requests per second of
//!   `benches/http_cache.rs` (hits of `HttpCacheLayer` against the bare
//!   handler).
//!
//! ```text
//! cargo bench --bench cached_hit -- --noplot         # writes target/criterion/...
//! cargo bench --bench sessions --features redis,axum -- --noplot
//! cargo bench --bench http_cache --features redis,axum -- --noplot
//! cargo run --example plot_bench                     # reads them, writes the PNGs
//! ```
//!
//! A chart whose bench has not run is skipped. The labels use DejaVu Sans
//! (`COVET_PLOT_FONT` names another TTF file); `COVET_CRITERION_DIR` points
//! at another criterion output directory.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// What a bar shows.
#[derive(Clone, Copy)]
enum Measure {
    /// Mean time per iteration, in nanoseconds (lower is better).
    Nanos,
    /// Elements (requests) per second, from the bench's throughput
    /// (higher is better).
    PerSecond,
    /// The median of the bench's interleaved rounds (requests per second,
    /// from `interleaved.json` beside criterion's output).
    RoundsMedian,
}

/// `(contender, req/s)`: the median of a bench's interleaved rounds.
fn round_medians(root: &Path, name: &str) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(root.join(name).join("interleaved.json")) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(&text) else {
        return Vec::new();
    };
    let mut out: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["median"].as_f64()?)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(contender, value)` of one criterion group, in name order.
fn group(root: &Path, name: &str, measure: Measure) -> Vec<(String, f64)> {
    match measure {
        Measure::RoundsMedian => return round_medians(root, name),
        Measure::Nanos | Measure::PerSecond => {}
    }
    let Ok(dirs) = std::fs::read_dir(root.join(name)) else {
        return Vec::new();
    };
    let read = |path: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let mut out: Vec<(String, f64)> = dirs
        .filter_map(Result::ok)
        .filter_map(|d| {
            let estimates = read(d.path().join("new/estimates.json"))?;
            let bench = read(d.path().join("new/benchmark.json"));
            let ns = estimates["mean"]["point_estimate"].as_f64()?;
            let label = bench
                .as_ref()
                .and_then(|b| b["function_id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| d.file_name().to_string_lossy().into_owned());
            let value = match measure {
                Measure::PerSecond => {
                    let elements = bench?["throughput"]["Elements"].as_f64()?;
                    elements / (ns * 1e-9)
                }
                _ => ns,
            };
            Some((label, value))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

struct Panel {
    caption: String,
    data: Vec<(String, f64)>,
    measure: Measure,
}

fn draw(out: &Path, panels: &[Panel]) -> Result<(), Box<dyn std::error::Error>> {
    let height = 120 + 60 * panels.iter().map(|p| p.data.len() + 2).sum::<usize>() as u32;
    let canvas = BitMapBackend::new(out, (1200, height.max(400))).into_drawing_area();
    canvas.fill(&WHITE)?;
    let weights: Vec<u32> = panels.iter().map(|p| p.data.len() as u32 + 2).collect();
    let total: u32 = weights.iter().sum();
    let mut rest = canvas.clone();
    for (i, panel) in panels.iter().enumerate() {
        let area = if i + 1 == panels.len() {
            rest.clone()
        } else {
            let (h, _) = rest.dim_in_pixel();
            let split = height * weights[i] / total;
            let (top, bottom) = rest.split_vertically(split.min(h));
            rest = bottom;
            top
        };
        let data = &panel.data;
        let max = data.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.18;
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.caption, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(300)
            .build_cartesian_2d(0.0..max.max(1.0), (0..data.len()).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(data.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => data.get(*i).map(|d| d.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 15))
            .draw()?;
        chart.draw_series(data.iter().enumerate().map(|(i, (label, v))| {
            let ours = label.contains("covet") || label.contains("layer");
            let color = if ours {
                RGBColor(46, 125, 50)
            } else {
                RGBColor(120, 120, 120)
            };
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            )
        }))?;
        chart.draw_series(data.iter().enumerate().map(|(i, (_, v))| {
            let text = match panel.measure {
                Measure::Nanos => format!("{v:.1} ns"),
                _ => format!("{v:.0} req/s"),
            };
            Text::new(text, (*v, SegmentValue::CenterOf(i)), ("sans-serif", 14))
        }))?;
    }
    canvas.present()?;
    println!("wrote {}", out.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let font_path = std::env::var("COVET_PLOT_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".to_owned());
    let font: &'static [u8] = Box::leak(std::fs::read(&font_path)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| format!("{font_path} is not a font"))?;
    let root = PathBuf::from(
        std::env::var("COVET_CRITERION_DIR").unwrap_or_else(|_| "target/criterion".to_owned()),
    );

    let charts = [
        (
            "benches/hit_latency.png",
            vec![
                (
                    "hit_1_thread: ns per hit (lower is better)",
                    "hit_1_thread",
                    Measure::Nanos,
                ),
                (
                    "hit_2_threads: ns per hit (lower is better)",
                    "hit_2_threads",
                    Measure::Nanos,
                ),
            ],
        ),
        (
            "benches/session_throughput.png",
            vec![
                (
                    "sessions, median of interleaved rounds: req/s (higher is better)",
                    "session_rps",
                    Measure::RoundsMedian,
                ),
                (
                    "sessions, criterion mean (contenders one after the other): req/s",
                    "session_rps",
                    Measure::PerSecond,
                ),
            ],
        ),
        (
            "benches/http_cache_hits.png",
            vec![
                (
                    "HTTP cache, median of interleaved rounds: req/s (higher is better)",
                    "http_cache",
                    Measure::RoundsMedian,
                ),
                (
                    "HTTP cache, criterion mean: req/s",
                    "http_cache",
                    Measure::PerSecond,
                ),
            ],
        ),
    ];
    let mut drawn = 0;
    for (out, specs) in charts {
        let panels: Vec<Panel> = specs
            .into_iter()
            .map(|(caption, name, measure)| Panel {
                caption: caption.to_owned(),
                data: group(&root, name, measure),
                measure,
            })
            .filter(|p| !p.data.is_empty())
            .collect();
        if panels.is_empty() {
            eprintln!("skipping {out}: no criterion data under {}", root.display());
            continue;
        }
        draw(Path::new(out), &panels)?;
        drawn += 1;
    }
    if drawn == 0 {
        return Err(format!(
            "no criterion data under {}: run the benches first",
            root.display()
        )
        .into());
    }
    Ok(())
}
