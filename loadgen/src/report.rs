//! `report` and `compare`: runs side by side as a text table, and their latency percentile
//! distributions in one chart (log-scale percentile axis up to 99.999%, HdrHistogram style).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;

use crate::hgrm::parse_hgrm;
use crate::summary::{read_summary, Summary};

pub(crate) fn table(runs: &[(String, Summary)]) -> String {
    let name_w = runs.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "run",
        "latency",
        "msgs/s",
        "MB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms",
        "errors"
    );
    for (name, s) in runs {
        let l = &s.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<8} {:>11.0} {:>9.2} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            name,
            s.latency_kind,
            s.msgs_per_s,
            s.mb_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.p9999),
            ms(l.max),
            s.errors
        );
    }
    out
}

fn load(dirs: &[PathBuf]) -> Result<Vec<(String, Summary)>> {
    if dirs.is_empty() {
        bail!("give at least one run directory");
    }
    dirs.iter()
        .map(|d| Ok((d.display().to_string(), read_summary(d)?)))
        .collect()
}

pub(crate) fn report(dirs: &[PathBuf]) -> Result<()> {
    out_raw!(table(&load(dirs)?));
    Ok(())
}

pub(crate) fn compare(dirs: &[PathBuf], chart: &Path) -> Result<()> {
    let runs = load(dirs)?;
    out_raw!(table(&runs));
    let mut series = Vec::new();
    for (d, (name, s)) in dirs.iter().zip(&runs) {
        let path = d.join(format!("{}.hgrm", s.latency_kind));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        series.push((format!("{name} ({})", s.latency_kind), parse_hgrm(&text)));
    }
    draw_chart(&series, chart)?;
    out!("chart: {}", chart.display());
    Ok(())
}

/// The percentile axis runs to 99.999%: x = 1/(1-percentile), from 1 to 10^5.
const X_MAX: f64 = 100_000.0;

fn x_of(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile.min(0.999_99))).clamp(1.0, X_MAX)
}

fn x_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    match p {
        p if p < 0.5 => "0%".into(),
        p if p < 95.0 => format!("{p:.0}%"),
        p if p < 99.5 => format!("{p:.0}%"),
        p if p < 99.95 => format!("{p:.1}%"),
        p if p < 99.995 => format!("{p:.2}%"),
        p => format!("{p:.3}%"),
    }
}

/// Chart size in pixels.
const CHART_SIZE: (u32, u32) = (1000, 620);

/// Draws the runs' percentile curves (latency in ms against percentile) into an SVG, or a PNG
/// (the same SVG rasterized) when `out` ends in `.png`.
pub(crate) fn draw_chart(series: &[(String, Vec<(f64, f64)>)], out: &Path) -> Result<()> {
    let extension = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut svg = String::new();
    draw_svg(series, &mut svg, out)?;
    match extension.as_deref() {
        Some("svg") => {
            std::fs::write(out, svg).map_err(|e| anyhow!("writing {}: {e}", out.display()))
        }
        Some("png") => write_png(&svg, out),
        _ => bail!("charts are SVG or PNG (give --out chart.svg or chart.png)"),
    }
}

/// Rasterizes the SVG chart into a PNG; text uses the system fonts found.
fn write_png(svg: &str, out: &Path) -> Result<()> {
    let mut options = resvg::usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    // plotters asks for "sans-serif", which fontdb maps to Arial: map it to a font that exists.
    let family = fonts
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .min_by_key(|name| !name.contains("Sans"));
    if let Some(family) = family {
        fonts.set_sans_serif_family(family);
    }
    let tree =
        resvg::usvg::Tree::from_str(svg, &options).map_err(|e| anyhow!("rendering chart: {e}"))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(CHART_SIZE.0, CHART_SIZE.1)
        .ok_or_else(|| anyhow!("cannot allocate a {}x{} image", CHART_SIZE.0, CHART_SIZE.1))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .save_png(out)
        .map_err(|e| anyhow!("writing {}: {e}", out.display()))
}

fn draw_svg(series: &[(String, Vec<(f64, f64)>)], svg: &mut String, out: &Path) -> Result<()> {
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let root = SVGBackend::with_string(svg, CHART_SIZE).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", out.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0f64..X_MAX).log_scale(), 0.0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&x_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(q, v)| (x_of(q), v)),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_chart_is_a_valid_svg_with_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("chart.svg");
        let a: Vec<(f64, f64)> = (0..50)
            .map(|i| (1.0 - 0.8f64.powi(i), 1.0 + i as f64 * 0.1))
            .collect();
        let b: Vec<(f64, f64)> = a
            .iter()
            .map(|&(q, v)| (q, v * 2.0))
            .chain([(1.0, 20.0)])
            .collect();
        draw_chart(&[("run-a".into(), a), ("run-b".into(), b)], &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("run-a") && svg.contains("run-b"));
        assert!(svg.contains("99.99%") || svg.contains("99.999%"));
        assert!(svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn compare_chart_as_png_is_a_picture_with_the_curves() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("chart.png");
        let a: Vec<(f64, f64)> = (0..50)
            .map(|i| (1.0 - 0.8f64.powi(i), 1.0 + i as f64 * 0.1))
            .collect();
        draw_chart(&[("run-a".into(), a)], &out).unwrap();
        let png = resvg::tiny_skia::Pixmap::load_png(&out).unwrap();
        assert_eq!((png.width(), png.height()), CHART_SIZE);
        // the curve's colour (Palette99's first) appears somewhere on the white page
        let coloured = png
            .pixels()
            .iter()
            .filter(|p| p.red() != p.green() || p.green() != p.blue())
            .count();
        assert!(coloured > 100, "{coloured} coloured pixels");
        assert!(draw_chart(&[], &dir.path().join("chart.gif")).is_err());
    }

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(x_label(&1.0), "0%");
        assert_eq!(x_label(&10.0), "90%");
        assert_eq!(x_label(&100.0), "99%");
        assert_eq!(x_label(&1000.0), "99.9%");
        assert_eq!(x_label(&100_000.0), "99.999%");
        assert_eq!(x_of(1.0), X_MAX);
        assert_eq!(x_of(0.0), 1.0);
    }
}
