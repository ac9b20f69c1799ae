//! One report across several evaluated runs: every method's Spearman rho, with its 95%
//! interval and n, side by side per run.
//!
//! The input is a list of `(run name, Summary)` (each [`Summary`] as [`evaluate_run`] or
//! [`recompute_published`] produced it). [`CrossRunTable::new`] gathers the figures: one row
//! per method and reference (the row is named `reference / method` when the runs hold more
//! than one reference, else `method`), one column per run, in the order given. The pieces are
//! pure functions of the table (or of the runs, for the HTML page), and
//! [`write_cross_run_report`] writes them all into a folder:
//!
//! | file | content |
//! |---|---|
//! | `report.md` | the table, cells `rho [lo, hi], n`, the best rho of each run in bold |
//! | `report.csv` | one row per method; per run `rho`, `ci_low`, `ci_high`, `n`, `p`, `best` |
//! | `heatmap.svg`, `heatmap.png` | methods x runs, colour = rho on [-1, 1], value in each cell |
//! | `report.html` | one self-contained page: the sortable table, the heat map, and per method its interval chart across runs and its rank scatter in each run, all inline |
//!
//! The output is deterministic: the same runs give the same bytes (rows sorted by reference
//! then method, columns in the given order, no timestamps).
//!
//! The HTML page loads nothing: CSS and a little JavaScript are inline and a
//! Content-Security-Policy forbids every other source. Clicking a header sorts by that column
//! (numbers first descending, text ascending; a second click reverses; rows without a figure
//! stay last). The URL fragment `#sort=<column>` (the header's text: `method` or a run name,
//! URL-encoded), optionally with `&dir=asc` or `&dir=desc`, sorts on load by clicking that
//! header, and clicking writes the fragment back, so a sorted view can be shared as a link.
//!
//! [`evaluate_run`]: crate::evaluate_run
//! [`recompute_published`]: crate::recompute_published

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::plots::{interval_chart_svg, rank_scatter_svg, svg_to_png};
use crate::summary::{Granularity, Summary, fmt_p};

/// One run's Spearman figure for one method, as its summary stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossRunCell {
    /// Spearman's rho (`None` when the summary holds null, i.e. NaN).
    pub rho: Option<f64>,
    /// Lower end of the 95% bootstrap interval.
    pub ci_low: Option<f64>,
    /// Upper end of the 95% bootstrap interval.
    pub ci_high: Option<f64>,
    /// Usable pairs.
    pub n: usize,
    /// Two-sided p-value.
    pub p_value: Option<f64>,
    /// Whether this is the highest rho of its run (every row tying the highest is marked).
    pub best: bool,
}

/// One method (against one reference) across the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossRunRow {
    /// The name shown: `reference / method` when the runs hold more than one reference,
    /// else `method`.
    pub label: String,
    /// The reference (label set) the method is compared with.
    pub reference: String,
    /// The method (a sample group's member by its own name).
    pub method: String,
    /// Whether the figure is the per-state ranking mean, whose n counts states, not pairs.
    pub ranking: bool,
    /// One entry per run, in the table's run order; `None` where the run lacks the method.
    pub cells: Vec<Option<CrossRunCell>>,
}

/// Every method's Spearman figure in every run: methods as rows, runs as columns.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossRunTable {
    /// The run names, in the given order.
    pub runs: Vec<String>,
    /// The rows, sorted by reference then method.
    pub rows: Vec<CrossRunRow>,
}

fn invalid_runs(value: impl Into<String>, reason: &str) -> MetricsError {
    MetricsError::InvalidParameter {
        name: "runs",
        value: value.into(),
        reason: reason.into(),
    }
}

fn check_runs(runs: &[(String, Summary)]) -> Result<(), MetricsError> {
    if runs.is_empty() {
        return Err(invalid_runs("[]", "at least one run is needed"));
    }
    let mut seen = HashSet::new();
    for (name, _) in runs {
        if name.trim().is_empty() {
            return Err(invalid_runs(format!("{name:?}"), "a run needs a non-blank name"));
        }
        if !seen.insert(name.as_str()) {
            return Err(invalid_runs(
                format!("{name:?}"),
                "two runs share this name; the columns are keyed by run name",
            ));
        }
    }
    Ok(())
}

impl CrossRunTable {
    /// Gathers the Spearman figure (`estimations -> reference -> methods -> method ->
    /// correlations.spearman`, or the per-state mean `ranking_spearman` for ranking label
    /// sets) of every method and every sample group member of every run, and marks the best
    /// rho of each run that has two figures or more.
    ///
    /// # Errors
    /// [`MetricsError::InvalidParameter`] when `runs` is empty, or a run name is blank or
    /// repeated (the message names it).
    pub fn new(runs: &[(String, Summary)]) -> Result<Self, MetricsError> {
        check_runs(runs)?;
        // Every method, and every member of a sample group (codegen's samples) by its name.
        let keys: BTreeSet<(&str, String)> = runs
            .iter()
            .flat_map(|(_, s)| {
                s.estimations
                    .iter()
                    .flat_map(|(r, e)| e.flat_methods().into_iter().map(move |(m, _)| (r.as_str(), m)))
            })
            .collect();
        let references: BTreeSet<&str> = runs
            .iter()
            .flat_map(|(_, s)| s.estimations.keys().map(String::as_str))
            .collect();
        let qualify = references.len() > 1;
        let mut rows: Vec<CrossRunRow> = keys
            .into_iter()
            .map(|(reference, method)| CrossRunRow {
                label: if qualify {
                    format!("{reference} / {method}")
                } else {
                    method.clone()
                },
                reference: reference.to_string(),
                ranking: runs.iter().any(|(_, s)| {
                    s.estimations
                        .get(reference)
                        .is_some_and(|e| e.granularity == Granularity::Ranking)
                }),
                cells: runs
                    .iter()
                    .map(|(_, s)| {
                        let m = s.estimations.get(reference)?.method(&method)?;
                        // Ranking methods are compared by their per-state rho, as the run's
                        // own table reports them (n = states used).
                        if let Some(r) = &m.correlations.ranking_spearman {
                            let [lo, hi] = m.interval("ranking_spearman").unwrap_or([None, None]);
                            return Some(CrossRunCell {
                                rho: r.mean.filter(|v| v.is_finite()),
                                ci_low: lo.filter(|v| v.is_finite()),
                                ci_high: hi.filter(|v| v.is_finite()),
                                n: r.num_valid,
                                p_value: None,
                                best: false,
                            });
                        }
                        let f = m.correlations.spearman.as_ref()?;
                        let [lo, hi] = m.interval("spearman").unwrap_or([None, None]);
                        Some(CrossRunCell {
                            rho: f.correlation.filter(|v| v.is_finite()),
                            ci_low: lo.filter(|v| v.is_finite()),
                            ci_high: hi.filter(|v| v.is_finite()),
                            n: f.num_points,
                            p_value: f.p_value.filter(|v| v.is_finite()),
                            best: false,
                        })
                    })
                    .collect(),
                method,
            })
            .collect();
        for run in 0..runs.len() {
            let rhos: Vec<f64> = rows.iter().filter_map(|r| r.cells[run].as_ref()?.rho).collect();
            // A best needs a second method to beat: a lone method (a random baseline, say)
            // is not marked.
            if rhos.len() < 2 {
                continue;
            }
            let best = rhos.into_iter().fold(f64::NEG_INFINITY, f64::max);
            for row in &mut rows {
                if let Some(c) = &mut row.cells[run] {
                    c.best = c.rho == Some(best);
                }
            }
        }
        Ok(CrossRunTable {
            runs: runs.iter().map(|(n, _)| n.clone()).collect(),
            rows,
        })
    }

    /// The Markdown table: a `method` column, then one column per run with cells
    /// `rho [lo, hi], n=N` (three decimals; `-` where the run lacks the method; `n=N states`
    /// on per-state ranking rows), the best rho of each run in bold (when it has two methods
    /// or more).
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Spearman rho across runs\n\n");
        out.push_str(
            "Each cell: Spearman rho [95% bootstrap CI] against the reference labels, n usable pairs \
             (on per-state ranking rows: the mean of the per-state rho, n states); **bold**: the best rho of \
             the run.\n\n",
        );
        out.push_str("| method |");
        for run in &self.runs {
            let _ = write!(out, " {} |", md_escape(run));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.runs.len()));
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| {} |", md_escape(&row.label));
            for cell in &row.cells {
                match cell {
                    None => out.push_str(" - |"),
                    Some(c) if c.best => {
                        let _ = write!(out, " **{}**, {} |", rho_ci(c), n_text(row, c));
                    }
                    Some(c) => {
                        let _ = write!(out, " {}, {} |", rho_ci(c), n_text(row, c));
                    }
                }
            }
            out.push('\n');
        }
        if self.rows.is_empty() {
            out.push_str("| (no method in any run) |");
            out.push_str(&" |".repeat(self.runs.len()));
            out.push('\n');
        }
        out
    }

    /// The CSV table (RFC 4180 quoting, `\n` line ends): columns `method` (the row label),
    /// `reference`, `name` (the bare method name), then per run `<run> rho`, `<run> ci_low`,
    /// `<run> ci_high`, `<run> n`, `<run> p` and `<run> best` (`true` / `false`). Numbers
    /// are written so they parse back to the same `f64`; a missing figure, or a run without
    /// the method, is an empty field.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let mut header = vec!["method".to_string(), "reference".into(), "name".into()];
        for run in &self.runs {
            for col in ["rho", "ci_low", "ci_high", "n", "p", "best"] {
                header.push(format!("{run} {col}"));
            }
        }
        csv_line(&mut out, &header);
        for row in &self.rows {
            let mut fields = vec![row.label.clone(), row.reference.clone(), row.method.clone()];
            for cell in &row.cells {
                match cell {
                    None => fields.extend(std::iter::repeat_n(String::new(), 6)),
                    Some(c) => fields.extend([
                        csv_num(c.rho),
                        csv_num(c.ci_low),
                        csv_num(c.ci_high),
                        c.n.to_string(),
                        csv_num(c.p_value),
                        c.best.to_string(),
                    ]),
                }
            }
            csv_line(&mut out, &fields);
        }
        out
    }

    /// The heat map as SVG: methods as rows, runs as columns, each cell coloured by rho from
    /// red (-1) through white (0) to blue (+1) with its value printed (grey `NaN` where the
    /// figure is undefined, `-` where the run lacks the method); the best cell of each run is
    /// framed; a colour scale below. Names longer than 40 characters are shortened with `…`.
    ///
    /// # Errors
    /// [`MetricsError::Plot`] if plotters fails to draw.
    pub fn heatmap_svg(&self) -> Result<String, MetricsError> {
        heatmap(self).map_err(|message| MetricsError::Plot {
            what: "the cross-run heat map".into(),
            message,
        })
    }
}

fn num3(v: Option<f64>) -> String {
    match v {
        Some(x) => {
            let s = format!("{x:.3}");
            if s == "-0.000" { "0.000".into() } else { s }
        }
        None => "NaN".into(),
    }
}

fn rho_ci(c: &CrossRunCell) -> String {
    match (c.ci_low, c.ci_high) {
        (None, None) => num3(c.rho),
        (lo, hi) => format!("{} [{}, {}]", num3(c.rho), num3(lo), num3(hi)),
    }
}

/// `n=N`, or `n=N states` on a per-state ranking row.
fn n_text(row: &CrossRunRow, c: &CrossRunCell) -> String {
    if row.ranking {
        format!("n={} states", c.n)
    } else {
        format!("n={}", c.n)
    }
}

/// Backslash-escapes what Markdown would read as table syntax, emphasis, code or HTML.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn csv_num(v: Option<f64>) -> String {
    match v {
        // Display and LowerExp both print the shortest text that parses back exactly.
        Some(x) if x != 0.0 && x.abs() < 1e-4 => format!("{x:e}"),
        Some(x) => format!("{x}"),
        None => String::new(),
    }
}

fn csv_line(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let quote = f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') || f.ends_with(' ');
        if quote {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}

/// Escapes text for HTML content and quoted attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Sans-serif text of `size` pixels, vertically centred on its anchor.
fn font<'a>(size: u32, colour: &'a RGBColor, h: HPos) -> TextStyle<'a> {
    TextStyle::from(("sans-serif", size).into_font())
        .color(colour)
        .pos(Pos::new(h, VPos::Center))
}

/// Red (-1), white (0), blue (+1).
fn rho_colour(rho: f64) -> RGBColor {
    let t = rho.clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 {
        (33.0, 102.0, 172.0)
    } else {
        (178.0, 24.0, 43.0)
    };
    let a = t.abs();
    let mix = |c: f64| (255.0 + (c - 255.0) * a).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

fn heatmap(t: &CrossRunTable) -> Result<String, String> {
    const MARGIN: i32 = 16;
    const TITLE: i32 = 34;
    const HEAD: i32 = 30;
    const CELL_H: i32 = 30;
    const LEGEND: i32 = 56;
    const CHAR_W: i32 = 7;
    let labels: Vec<String> = t.rows.iter().map(|r| shorten(&r.label, 40)).collect();
    let runs: Vec<String> = t.runs.iter().map(|r| shorten(r, 40)).collect();
    let left = labels
        .iter()
        .map(|l| l.chars().count() as i32 * CHAR_W + 16)
        .max()
        .unwrap_or(0)
        .clamp(80, 320);
    let cell_w = runs
        .iter()
        .map(|r| r.chars().count() as i32 * CHAR_W + 16)
        .max()
        .unwrap_or(0)
        .clamp(84, 300);
    let width = (2 * MARGIN + left + cell_w * runs.len() as i32).max(320);
    let height = 2 * MARGIN + TITLE + HEAD + CELL_H * t.rows.len().max(1) as i32 + LEGEND;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.draw(&Text::new(
            "Spearman rho per method and run",
            (width / 2, MARGIN + TITLE / 2 - 4),
            font(16, &BLACK, HPos::Center),
        ))
        .map_err(e)?;
        let x0 = MARGIN + left;
        let y0 = MARGIN + TITLE + HEAD;
        for (j, run) in runs.iter().enumerate() {
            let x = x0 + cell_w * j as i32 + cell_w / 2;
            root.draw(&Text::new(
                run.clone(),
                (x, y0 - HEAD / 2),
                font(12, &BLACK, HPos::Center),
            ))
            .map_err(e)?;
        }
        for (i, (row, label)) in t.rows.iter().zip(&labels).enumerate() {
            let y = y0 + CELL_H * i as i32;
            root.draw(&Text::new(
                label.clone(),
                (x0 - 8, y + CELL_H / 2),
                font(12, &BLACK, HPos::Right),
            ))
            .map_err(e)?;
            for (j, cell) in row.cells.iter().enumerate() {
                let x = x0 + cell_w * j as i32;
                let (fill, text) = match cell {
                    None => (RGBColor(245, 245, 245), "-".to_string()),
                    Some(c) => match c.rho {
                        Some(r) => (rho_colour(r), format!("{r:.2}")),
                        None => (RGBColor(210, 210, 210), "NaN".to_string()),
                    },
                };
                root.draw(&Rectangle::new([(x, y), (x + cell_w, y + CELL_H)], fill.filled()))
                    .map_err(e)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell_w, y + CELL_H)],
                    RGBColor(255, 255, 255).stroke_width(1),
                ))
                .map_err(e)?;
                let strong = cell.as_ref().and_then(|c| c.rho).is_some_and(|r| r.abs() > 0.6);
                let ink = if strong { WHITE } else { BLACK };
                root.draw(&Text::new(
                    text,
                    (x + cell_w / 2, y + CELL_H / 2),
                    font(13, &ink, HPos::Center),
                ))
                .map_err(e)?;
                if cell.as_ref().is_some_and(|c| c.best) {
                    root.draw(&Rectangle::new(
                        [(x + 2, y + 2), (x + cell_w - 2, y + CELL_H - 2)],
                        BLACK.stroke_width(2),
                    ))
                    .map_err(e)?;
                }
            }
        }
        // The colour scale: 41 steps from -1 to 1.
        let bar_y = y0 + CELL_H * t.rows.len().max(1) as i32 + 14;
        let bar_w = 240;
        let bar_x = (width - bar_w) / 2;
        let steps = 41;
        for k in 0..steps {
            let xa = bar_x + bar_w * k / steps;
            let xb = bar_x + bar_w * (k + 1) / steps;
            let rho = -1.0 + 2.0 * k as f64 / (steps - 1) as f64;
            root.draw(&Rectangle::new(
                [(xa, bar_y), (xb, bar_y + 12)],
                rho_colour(rho).filled(),
            ))
            .map_err(e)?;
        }
        root.draw(&Rectangle::new(
            [(bar_x, bar_y), (bar_x + bar_w, bar_y + 12)],
            RGBColor(150, 150, 150).stroke_width(1),
        ))
        .map_err(e)?;
        for (rho, label) in [(-1.0, "-1"), (0.0, "0"), (1.0, "+1")] {
            let x = bar_x + ((rho + 1.0) / 2.0 * bar_w as f64).round() as i32;
            root.draw(&Text::new(label, (x, bar_y + 24), font(11, &BLACK, HPos::Center)))
                .map_err(e)?;
        }
        root.draw(&Text::new(
            "rho",
            (bar_x - 10, bar_y + 6),
            font(11, &BLACK, HPos::Right),
        ))
        .map_err(e)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#222;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.2rem;margin-top:2rem}h3{font-size:1.05rem;margin-bottom:.4rem}
table{border-collapse:collapse;margin:.5rem 0}
caption{caption-side:bottom;text-align:left;font-size:.85rem;color:#555;padding-top:.4rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f2f2f2;cursor:pointer;user-select:none}
th:hover,th:focus{background:#e4e4e4}
th[aria-sort=ascending]::after{content:' \\25B2'}
th[aria-sort=descending]::after{content:' \\25BC'}
.name{text-align:left}
td small{color:#666}
td.best{background:#fff1a8;font-weight:bold}
td.none{color:#999;text-align:center}
.plots{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure{margin:0}
figcaption{font-size:.85rem;color:#555}
figure svg{max-width:100%;height:auto}
figure.scatter svg{width:320px}
.warn{color:#a40}
";

const JS: &str = r#"
(function () {
  'use strict';
  var table = document.getElementById('rho-table');
  var tbody = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function value(row, i, num) {
    var v = row.cells[i].getAttribute('data-value');
    return num ? (v === null || v === '' ? NaN : parseFloat(v)) : (v || '');
  }
  function sortBy(i, dir) {
    var num = heads[i].getAttribute('data-type') === 'num';
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = value(a, i, num), y = value(b, i, num), c = 0;
      if (num && (isNaN(x) || isNaN(y))) {
        c = isNaN(x) === isNaN(y) ? 0 : (isNaN(x) ? 1 : -1);
      } else {
        c = x < y ? -1 : (x > y ? 1 : 0);
        if (dir === 'desc') { c = -c; }
      }
      return c !== 0 ? c : a.getAttribute('data-row') - b.getAttribute('data-row');
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    heads.forEach(function (h, j) {
      if (j === i) { h.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending'); }
      else { h.removeAttribute('aria-sort'); }
    });
    table.setAttribute('data-sorted', heads[i].getAttribute('data-key') + ' ' + dir);
  }
  heads.forEach(function (h, i) {
    h.tabIndex = 0;
    h.addEventListener('click', function () {
      var now = h.getAttribute('aria-sort');
      var dir = now ? (now === 'ascending' ? 'desc' : 'asc')
                    : (h.getAttribute('data-type') === 'num' ? 'desc' : 'asc');
      sortBy(i, dir);
      try {
        history.replaceState(null, '', '#sort=' + encodeURIComponent(h.getAttribute('data-key')) + '&dir=' + dir);
      } catch (e) { /* a file: URL may refuse; the sort stands */ }
    });
    h.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); h.click(); }
    });
  });
  function fromHash() {
    var m = /^#sort=([^&]*)(?:&dir=(asc|desc))?$/.exec(location.hash);
    if (!m) { return; }
    var key;
    try { key = decodeURIComponent(m[1]); } catch (e) { return; }
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute('data-key') === key) {
        heads[i].click();
        if (m[2] && table.getAttribute('data-sorted') !== key + ' ' + m[2]) { heads[i].click(); }
        return;
      }
    }
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
"#;

/// The self-contained HTML page: the table (sortable by clicking any header, the best rho
/// of each run highlighted), the heat map, and per method its interval chart across runs
/// ([`interval_chart_svg`]) and its rank scatter in each run ([`rank_scatter_svg`]), all as
/// inline SVG. Every name is HTML-escaped. A plot that cannot be drawn is replaced by a
/// note saying why.
///
/// # Errors
/// As [`CrossRunTable::new`], and [`MetricsError::Plot`] if the heat map cannot be drawn.
pub fn cross_run_html(runs: &[(String, Summary)]) -> Result<String, MetricsError> {
    let table = CrossRunTable::new(runs)?;
    let heat = table.heatmap_svg()?;
    Ok(html_page(runs, &table, &heat))
}

/// The page of [`cross_run_html`], from the table and heat map built from `runs`.
fn html_page(runs: &[(String, Summary)], table: &CrossRunTable, heat: &str) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<meta name=\"generator\" content=\"qval {}\">",
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("<title>qval: Spearman rho across runs</title>\n<style>\n");
    h.push_str(CSS);
    h.push_str("</style>\n</head>\n<body>\n<h1>Spearman rho across runs</h1>\n");
    let _ = writeln!(
        h,
        "<p>{} run(s), {} method(s). Runs: {}.</p>",
        table.runs.len(),
        table.rows.len(),
        table
            .runs
            .iter()
            .map(|r| format!("<code>{}</code>", html_escape(r)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The table.
    h.push_str(
        "<table id=\"rho-table\">\n<caption>Spearman rho [95% bootstrap CI] against the reference labels; \
                n usable pairs (on per-state ranking rows: the mean of the per-state rho, n states), p \
                two-sided. Highlighted: the best rho of the run. Click a header to sort \
                (again to reverse).</caption>\n<thead><tr>",
    );
    h.push_str("<th class=\"name\" data-key=\"method\" data-type=\"text\" scope=\"col\">method</th>");
    for run in &table.runs {
        let r = html_escape(run);
        let _ = write!(h, "<th data-key=\"{r}\" data-type=\"num\" scope=\"col\">{r}</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in table.rows.iter().enumerate() {
        let label = html_escape(&row.label);
        let _ = write!(
            h,
            "<tr data-row=\"{i}\"><td class=\"name\" data-value=\"{label}\"><a href=\"#m{i}\">{label}</a></td>"
        );
        for cell in &row.cells {
            match cell {
                None => h.push_str("<td class=\"none\" data-value=\"\">-</td>"),
                Some(c) => {
                    let _ = write!(
                        h,
                        "<td{} data-value=\"{}\">{}<br><small>{}{}</small></td>",
                        if c.best { " class=\"best\"" } else { "" },
                        c.rho.map(|v| format!("{v}")).unwrap_or_default(),
                        html_escape(&rho_ci(c)),
                        n_text(row, c),
                        if row.ranking {
                            String::new()
                        } else {
                            format!(", p={}", html_escape(&fmt_p(c.p_value)))
                        },
                    );
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");

    // The heat map.
    h.push_str("<h2>Heat map</h2>\n<figure class=\"heatmap\">\n");
    h.push_str(heat);
    h.push_str("</figure>\n");

    // Per method.
    h.push_str("<h2>Per method</h2>\n");
    for (i, row) in table.rows.iter().enumerate() {
        let _ = writeln!(h, "<section id=\"m{i}\">\n<h3>{}</h3>", html_escape(&row.label));
        let rows: Vec<(String, f64, f64, f64)> = table
            .runs
            .iter()
            .zip(&row.cells)
            .filter_map(|(run, c)| {
                let c = c.as_ref()?;
                let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
                Some((run.clone(), nan(c.rho), nan(c.ci_low), nan(c.ci_high)))
            })
            .collect();
        let title = format!("{}: Spearman rho per run", row.label);
        h.push_str("<div class=\"plots\">\n<figure class=\"interval\">\n");
        push_plot(&mut h, interval_chart_svg(&title, &rows));
        h.push_str("</figure>\n");
        for ((run, (_, summary)), cell) in table.runs.iter().zip(runs).zip(&row.cells) {
            let Some(cell) = cell else { continue };
            let est = &summary.estimations[&row.reference];
            let Some(m) = est.method(&row.method) else { continue };
            let labels = est.labels();
            let preds = m.values();
            let n = labels.len().min(preds.len());
            let title = format!("{} in {run}: rho = {}", row.method, num3(cell.rho));
            let _ = writeln!(
                h,
                "<figure class=\"scatter\">\n<figcaption>{}: rank of the prediction against rank of the \
                 reference label</figcaption>",
                html_escape(run)
            );
            push_plot(&mut h, rank_scatter_svg(&title, &labels[..n], &preds[..n]));
            h.push_str("</figure>\n");
        }
        h.push_str("</div>\n</section>\n");
    }
    h.push_str("<script>");
    h.push_str(JS);
    h.push_str("</script>\n</body>\n</html>\n");
    h
}

fn push_plot(h: &mut String, svg: Result<String, String>) {
    match svg {
        Ok(svg) => h.push_str(&svg),
        Err(e) => {
            let _ = writeln!(h, "<p class=\"warn\">plot not drawn: {}</p>", html_escape(&e));
        }
    }
}

/// Writes the cross-run report into `dir` (created if needed): `report.md`, `report.csv`,
/// `heatmap.svg`, `heatmap.png` and `report.html`; returns their paths in that order. Each
/// file is written atomically.
///
/// The PNG's text needs a system font (Debian `fonts-dejavu-core`, see [`crate::plots`]);
/// without one it is drawn without text.
///
/// # Errors
/// As [`CrossRunTable::new`] and [`cross_run_html`]; [`MetricsError::Io`] (or a wrapped
/// core error) naming the file that could not be written.
pub fn write_cross_run_report(runs: &[(String, Summary)], dir: &Path) -> Result<Vec<PathBuf>, MetricsError> {
    let table = CrossRunTable::new(runs)?;
    let heat = table.heatmap_svg()?;
    let html = html_page(runs, &table, &heat);
    let mut written = Vec::new();
    for (name, bytes) in [
        ("report.md", table.markdown().into_bytes()),
        ("report.csv", table.csv().into_bytes()),
        ("heatmap.svg", heat.as_bytes().to_vec()),
    ] {
        let p = dir.join(name);
        qval_core::io::write_atomic(&p, &bytes)?;
        written.push(p);
    }
    let p = dir.join("heatmap.png");
    svg_to_png(&heat, &p)?;
    written.push(p);
    let p = dir.join("report.html");
    qval_core::io::write_atomic(&p, html.as_bytes())?;
    written.push(p);
    Ok(written)
}
