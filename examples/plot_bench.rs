//! Draws `benches/hit_latency.png`, the chart of `BENCHMARKS.md`: the hit
//! latency of every contender of `benches/cached_hit.rs`, on one and on two
//! threads, from criterion's own estimates.
//!
//! ```text
//! cargo bench --bench cached_hit        # writes target/criterion/...
//! cargo run --example plot_bench        # reads them, writes the PNG
//! ```
//!
//! The labels use DejaVu Sans (`COVET_PLOT_FONT` names another TTF file).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// `(contender, mean ns)` of one criterion group, in name order.
fn group(root: &Path, name: &str) -> Vec<(String, f64)> {
    let Ok(dirs) = std::fs::read_dir(root.join(name)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, f64)> = dirs
        .filter_map(Result::ok)
        .filter_map(|d| {
            let text = std::fs::read_to_string(d.path().join("new/estimates.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let ns = json["mean"]["point_estimate"].as_f64()?;
            Some((d.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
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
    let panels = [
        ("hit_1_thread", group(&root, "hit_1_thread")),
        ("hit_2_threads", group(&root, "hit_2_threads")),
    ];
    if panels.iter().all(|(_, g)| g.is_empty()) {
        return Err(format!(
            "no criterion data under {}: run the bench first",
            root.display()
        )
        .into());
    }
    let out = PathBuf::from("benches/hit_latency.png");
    let canvas = BitMapBackend::new(&out, (1200, 900)).into_drawing_area();
    canvas.fill(&WHITE)?;
    for ((name, data), area) in panels.iter().zip(canvas.split_evenly((2, 1))) {
        let max = data.iter().map(|(_, ns)| *ns).fold(0.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{name}: ns per hit (lower is better)"),
                ("sans-serif", 22),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(250)
            .build_cartesian_2d(0.0..max.max(1.0), (0..data.len()).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(data.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => data.get(*i).map(|d| d.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .draw()?;
        chart.draw_series(data.iter().enumerate().map(|(i, (label, ns))| {
            let ours = label.contains("covet");
            let color = if ours {
                RGBColor(46, 125, 50)
            } else {
                RGBColor(120, 120, 120)
            };
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*ns, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            )
        }))?;
        chart.draw_series(data.iter().enumerate().map(|(i, (_, ns))| {
            Text::new(
                format!("{ns:.1}"),
                (*ns, SegmentValue::CenterOf(i)),
                ("sans-serif", 14),
            )
        }))?;
    }
    canvas.present()?;
    println!("wrote {}", out.display());
    Ok(())
}
