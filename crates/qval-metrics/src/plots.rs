//! Plots a reader would rather look at than read: per method, prediction rank against
//! reference rank; per reference, every method's rho with its 95% interval. Drawn as SVG with
//! plotters and rendered to PNG with resvg (text needs a system font such as DejaVu Sans,
//! Debian package `fonts-dejavu-core`; without one the PNG has no text and a warning says so).

use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::MetricsError;
use crate::rank::doubled_average_ranks;
use crate::summary::Summary;

fn plot_err(path: &Path, e: impl std::fmt::Display) -> MetricsError {
    MetricsError::Io {
        op: "drawing",
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A file-name-safe version of a name.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Prediction rank against reference rank over the usable pairs.
pub fn rank_scatter_svg(title: &str, labels: &[f64], predictions: &[f64]) -> Result<String, String> {
    let (x, y): (Vec<f64>, Vec<f64>) = labels
        .iter()
        .zip(predictions)
        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
        .map(|(a, b)| (*a, *b))
        .unzip();
    let rx: Vec<f64> = doubled_average_ranks(&x).into_iter().map(|r| r as f64 / 2.0).collect();
    let ry: Vec<f64> = doubled_average_ranks(&y).into_iter().map(|r| r as f64 / 2.0).collect();
    let n = rx.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..n + 1.0, 0.0..n + 1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("reference rank (MVMC label)")
            .y_desc("prediction rank")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (n + 1.0, n + 1.0)], BLACK.mix(0.3)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                rx.iter()
                    .zip(&ry)
                    .map(|(a, b)| Circle::new((*a, *b), 2, BLUE.mix(0.5).filled())),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Every method's value with its interval, one row per method.
pub fn interval_chart_svg(title: &str, rows: &[(String, f64, f64, f64)]) -> Result<String, String> {
    let h = 90 + 28 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let m = rows.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(150)
            .build_cartesian_2d(-1.05..1.05, -0.5..m - 0.5)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("Spearman rho (95% bootstrap CI)")
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, -0.5), (0.0, m - 0.5)], BLACK.mix(0.4)))
            .map_err(|e| e.to_string())?;
        for (i, (_, v, lo, hi)) in rows.iter().enumerate() {
            let y = i as f64;
            if lo.is_finite() && hi.is_finite() {
                chart
                    .draw_series(LineSeries::new([(*lo, y), (*hi, y)], BLUE.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
            }
            if v.is_finite() {
                chart
                    .draw_series([Circle::new((*v, y), 4, BLUE.filled())])
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Each guided method's alignment (x, Spearman's rho) against its acting gain (y), both with
/// their 95% intervals drawn as error bars, and the method's name beside its point.
pub fn alignment_gain_svg(title: &str, rows: &[crate::acting::AlignmentGain]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-1.05..1.45, -1.05..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("alignment: Spearman rho (95% CI)")
            .y_desc("gain: success at the largest k minus k = 1 (95% CI)")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        for line in [[(0.0, -1.05), (0.0, 1.05)], [(-1.05, 0.0), (1.45, 0.0)]] {
            chart
                .draw_series(LineSeries::new(line, BLACK.mix(0.3)))
                .map_err(|e| e.to_string())?;
        }
        let shown: Vec<&crate::acting::AlignmentGain> = rows
            .iter()
            .filter(|r| r.rho.is_finite() && r.gain.is_finite())
            .collect();
        for (i, r) in shown.iter().enumerate() {
            // Names of points close together are staggered so they stay readable.
            let near = shown[..i]
                .iter()
                .filter(|o| (o.rho - r.rho).abs() < 0.3 && (o.gain - r.gain).abs() < 0.08)
                .count();
            if let Some((lo, hi)) = r.rho_interval.filter(|(lo, hi)| lo.is_finite() && hi.is_finite()) {
                chart
                    .draw_series(LineSeries::new([(lo, r.gain), (hi, r.gain)], BLUE.stroke_width(1)))
                    .map_err(|e| e.to_string())?;
            }
            let (lo, hi) = r.gain_interval;
            chart
                .draw_series(LineSeries::new([(r.rho, lo), (r.rho, hi)], RED.stroke_width(1)))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Circle::new((r.rho, r.gain), 4, BLACK.filled())])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Text::new(
                    r.method.clone(),
                    (r.rho + 0.03, r.gain + 0.05 - 0.07 * near as f64),
                    ("sans-serif", 12),
                )])
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The font database, loaded once, with the sans-serif family mapped to an installed font.
fn fonts() -> &'static (std::sync::Arc<resvg::usvg::fontdb::Database>, bool) {
    static DB: OnceLock<(std::sync::Arc<resvg::usvg::fontdb::Database>, bool)> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_system_fonts();
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
            .collect();
        let preferred = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica"];
        let pick = preferred
            .iter()
            .map(|s| s.to_string())
            .find(|p| families.contains(p))
            .or_else(|| families.first().cloned());
        let found = pick.is_some();
        if let Some(f) = pick {
            db.set_sans_serif_family(f);
        }
        (std::sync::Arc::new(db), found)
    })
}

/// Renders SVG text to a PNG file.
pub fn svg_to_png(svg: &str, path: &Path) -> Result<(), MetricsError> {
    let (db, _) = fonts();
    let opt = resvg::usvg::Options {
        fontdb: db.clone(),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| plot_err(path, e))?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| plot_err(path, "empty image"))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    let png = pixmap.encode_png().map_err(|e| plot_err(path, e))?;
    qval_core::io::write_atomic(path, &png)?;
    Ok(())
}

/// Writes every plot of `summary` into `dir`, as SVG and PNG.
pub fn write_plots(summary: &Summary, dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), MetricsError> {
    let mut written = Vec::new();
    let mut warnings = Vec::new();
    if !fonts().1 {
        warnings.push("no system font found: PNG plots have no text (install fonts-dejavu-core)".to_string());
    }
    let mut save = |name: String, svg: Result<String, String>| -> Result<(), MetricsError> {
        match svg {
            Ok(svg) => {
                let p = dir.join(format!("{name}.svg"));
                qval_core::io::write_atomic(&p, svg.as_bytes())?;
                written.push(p);
                let p = dir.join(format!("{name}.png"));
                svg_to_png(&svg, &p)?;
                written.push(p);
            }
            Err(e) => warnings.push(format!("plot {name}: {e}")),
        }
        Ok(())
    };
    for (rname, est) in &summary.estimations {
        if est.granularity != crate::summary::Granularity::Point {
            continue;
        }
        let labels = est.labels();
        let mut rows = Vec::new();
        for (mname, m) in est.flat_methods() {
            let preds = m.values();
            let n = labels.len().min(preds.len());
            let rho = m.correlations.spearman.as_ref().and_then(|f| f.correlation);
            let title = format!(
                "{mname} vs {rname}: rho = {}",
                rho.map(|v| format!("{v:.3}")).unwrap_or("NaN".into())
            );
            save(
                format!("{}__{}_ranks", safe(rname), safe(&mname)),
                rank_scatter_svg(&title, &labels[..n], &preds[..n]),
            )?;
            let [lo, hi] = m.interval("spearman").unwrap_or([None, None]);
            rows.push((
                mname.clone(),
                rho.unwrap_or(f64::NAN),
                lo.unwrap_or(f64::NAN),
                hi.unwrap_or(f64::NAN),
            ));
        }
        if !rows.is_empty() {
            save(
                format!("{}__spearman", safe(rname)),
                interval_chart_svg(&format!("Spearman rho against {rname}"), &rows),
            )?;
        }
    }
    Ok((written, warnings))
}
