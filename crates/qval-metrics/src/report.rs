//! The evaluate stage: pair labels with predictions, compute every statistic, and write
//! `summary.json` (the published layout, extended), a Markdown table and plots.
//!
//! ## `summary.json`
//! ```text
//! {
//!   "experiment": { "qval_version", "source", "config", "labels": [...], "predictions": [...] },
//!   "estimations": {
//!     "<reference>": {
//!       "signal": "q", "point_ids": [...], "values": [...], "aborted": 0,
//!       "methods": {
//!         "<method>": {
//!           "signal": "q", "values": [...], "missing": 0, "failed": 0,
//!           "correlations": {
//!             "pearson":     { "correlation", "p_value", "num_points", "ci95": [lo, hi], "note" },
//!             "spearman":    { ... },
//!             "kendall_tau": { ... }
//!           },
//!           "pairwise_accuracy": { "value", "concordant", "pairs", "ci95" },
//!           "sign_agreement": { "value", "agree", "n", "p_value" }
//!         } } } } }
//! ```
//! NaN is written as `null`. `estimations -> reference -> methods -> method -> correlations
//! -> pearson / spearman / kendall_tau -> correlation, p_value, num_points` is the published
//! testbed's layout, so tools written for it read qval's summaries; the other keys are
//! qval's additions.
//!
//! ## Reading the published testbed's files
//! [`recompute_published`] reads a published `summary_*.json`: per reference,
//! `estimations.<ref>.values` (or `reference_values`, `labels`) and per method
//! `methods.<m>.values` (or `predictions`), nulls as NaN. It recomputes every figure under
//! the published rules (prefix truncation of unequal lengths, at least 50 usable pairs) and
//! lists where the stored figures differ. A run folder may also hold published prediction
//! JSONs (`predictions/<method>.json` with `values`) and label JSONs (`labels/<ref>.json`
//! with `values`): those are paired by position with prefix truncation.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::align::align;
use crate::bootstrap::{BootstrapConfig, Statistic, bootstrap};
use crate::correlation::{
    Correlation, CorrelationConfig, LengthPolicy, kendall, pairwise_accuracy, pearson, sign_agreement, spearman,
};
use qval_core::io::{Kind, read_jsonl};
use qval_core::{Label, Prediction, Signal};

/// How to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluateConfig {
    /// Minimum pairs and length policy.
    pub correlation: CorrelationConfig,
    /// Bootstrap for the confidence intervals; `None` skips them.
    pub bootstrap: Option<BootstrapConfig>,
}

impl Default for EvaluateConfig {
    /// The published rules (50 pairs minimum) with 95% bootstrap intervals from 10,000
    /// resamples, seed 0.
    fn default() -> Self {
        EvaluateConfig {
            correlation: CorrelationConfig::default(),
            bootstrap: Some(
                BootstrapConfig::builder()
                    .resamples(10_000)
                    .seed(0)
                    .build()
                    .expect("valid defaults"),
            ),
        }
    }
}

/// One correlation in the published layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The coefficient (null when NaN).
    pub correlation: Option<f64>,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
    /// Usable pairs.
    pub num_points: usize,
    /// The bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[Option<f64>; 2]>,
    /// Why the figure is NaN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn opt(v: f64) -> Option<f64> {
    if v.is_finite() { Some(v) } else { None }
}

fn unopt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

impl Figure {
    fn from(c: &Correlation, ci: Option<[f64; 2]>) -> Self {
        Figure {
            correlation: opt(c.value),
            p_value: opt(c.p_value),
            num_points: c.n,
            ci95: ci.map(|[a, b]| [opt(a), opt(b)]),
            note: c.note.clone(),
        }
    }
}

/// The three correlations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Pearson's r.
    pub pearson: Figure,
    /// Spearman's rho.
    pub spearman: Figure,
    /// Kendall's tau-b.
    pub kendall_tau: Figure,
}

/// Pairwise accuracy in the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseFigure {
    /// Concordant / pairs with different reference values.
    pub value: Option<f64>,
    /// Concordant pairs.
    pub concordant: u64,
    /// Pairs with different reference values.
    pub pairs: u64,
    /// Bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[Option<f64>; 2]>,
}

/// Sign agreement in the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignFigure {
    /// Share of signed pairs whose signs agree.
    pub value: Option<f64>,
    /// Agreements.
    pub agree: u64,
    /// Signed pairs.
    pub n: u64,
    /// Two-sided binomial p-value.
    pub p_value: Option<f64>,
}

/// One method evaluated against one reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodEstimation {
    /// The signal the method estimates.
    pub signal: Signal,
    /// Its predictions aligned to the reference's points (null for NaN or missing).
    pub values: Vec<Option<f64>>,
    /// Labelled points without a prediction.
    #[serde(default)]
    pub missing: usize,
    /// Predictions that are NaN (the method failed on the point).
    #[serde(default)]
    pub failed: usize,
    /// The correlations.
    pub correlations: Correlations,
    /// Pairwise accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairwise_accuracy: Option<PairwiseFigure>,
    /// Sign agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_agreement: Option<SignFigure>,
}

/// One reference (a label set) and every method compared with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimation {
    /// The signal of the labels.
    pub signal: Signal,
    /// The points, in order (empty for published files, which pair by position).
    #[serde(default)]
    pub point_ids: Vec<String>,
    /// The reference values (null where aborted).
    pub values: Vec<Option<f64>>,
    /// Aborted points.
    #[serde(default)]
    pub aborted: usize,
    /// The methods, by name.
    pub methods: BTreeMap<String, MethodEstimation>,
}

/// Everything an evaluation produced: enough to recompute any figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What was evaluated and how.
    pub experiment: Value,
    /// Per reference.
    pub estimations: BTreeMap<String, Estimation>,
}

/// Computes every figure of `predictions` against `labels` (already aligned).
pub fn evaluate_method(
    signal: Signal,
    labels: &[f64],
    predictions: &[f64],
    missing: usize,
    cfg: &EvaluateConfig,
) -> Result<MethodEstimation, MetricsError> {
    let c = &cfg.correlation;
    let ci = |stat: Statistic| -> Result<Option<[f64; 2]>, MetricsError> {
        match &cfg.bootstrap {
            Some(b) => {
                let i = bootstrap(predictions, labels, stat, c, b)?;
                Ok(Some([i.low, i.high]))
            }
            None => Ok(None),
        }
    };
    let p = pearson(predictions, labels, c)?;
    let s = spearman(predictions, labels, c)?;
    let k = kendall(predictions, labels, c)?;
    let pa = pairwise_accuracy(predictions, labels, c)?;
    let sa = sign_agreement(predictions, labels, c)?;
    let defined = |x: &Correlation| !x.value.is_nan();
    let n = predictions.len().min(labels.len());
    Ok(MethodEstimation {
        signal,
        values: predictions.iter().map(|v| opt(*v)).collect(),
        missing,
        failed: predictions[..n]
            .iter()
            .filter(|v| v.is_nan())
            .count()
            .saturating_sub(missing),
        correlations: Correlations {
            pearson: Figure::from(&p, if defined(&p) { ci(Statistic::Pearson)? } else { None }),
            spearman: Figure::from(&s, if defined(&s) { ci(Statistic::Spearman)? } else { None }),
            kendall_tau: Figure::from(&k, if defined(&k) { ci(Statistic::Kendall)? } else { None }),
        },
        pairwise_accuracy: Some(PairwiseFigure {
            value: opt(pa.value),
            concordant: pa.concordant,
            pairs: pa.pairs,
            ci95: if pa.value.is_nan() {
                None
            } else {
                ci(Statistic::PairwiseAccuracy)?.map(|[a, b]| [opt(a), opt(b)])
            },
        }),
        sign_agreement: Some(SignFigure {
            value: opt(sa.value),
            agree: sa.agree,
            n: sa.n,
            p_value: opt(sa.p_value),
        }),
    })
}

fn io_err(op: &'static str, path: &Path, e: impl std::fmt::Display) -> MetricsError {
    MetricsError::Io {
        op,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, MetricsError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a published-style JSON file holding `values` (nulls as NaN) and an optional
/// `signal`.
fn read_values_json(path: &Path) -> Result<(Vec<f64>, Signal), MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err("reading", path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| MetricsError::Format {
        path: path.to_path_buf(),
        message: format!("line {}: {e}", e.line()),
    })?;
    let values =
        values_of(&v, &["values", "predictions", "reference_values", "labels"]).map_err(|m| MetricsError::Format {
            path: path.to_path_buf(),
            message: m,
        })?;
    Ok((values, signal_of(&v)))
}

fn values_of(v: &Value, keys: &[&str]) -> Result<Vec<f64>, String> {
    let (key, arr) = keys
        .iter()
        .find_map(|k| v.get(*k).and_then(|a| a.as_array()).map(|a| (*k, a)))
        .ok_or_else(|| format!("no `{}` array", keys.join("` / `")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{key}[{i}]` is not a number")),
            other => Err(format!("`{key}[{i}]` is {other}, expected a number or null")),
        })
        .collect()
}

fn signal_of(v: &Value) -> Signal {
    let s = v
        .get("signal")
        .or_else(|| v.get("target"))
        .and_then(|s| s.as_str())
        .unwrap_or("q");
    match s.to_ascii_lowercase().as_str() {
        "v" | "value" => Signal::V,
        "a" | "advantage" => Signal::Advantage,
        _ => Signal::Q,
    }
}

/// A reference read from a run folder.
struct Reference {
    name: String,
    signal: Signal,
    ids: Vec<String>,
    values: Vec<f64>,
    labels: Option<Vec<Label>>,
    aborted: usize,
}

/// A method's predictions read from a run folder.
struct Method {
    name: String,
    signal: Signal,
    records: Option<Vec<Prediction>>,
    values: Vec<f64>,
}

/// Stage 5: evaluates every method in `run/predictions/` against every reference in
/// `run/labels/` that estimates the same signal. qval's JSON Lines files pair by point id;
/// published-style JSON files pair by position with prefix truncation.
///
/// # Errors
/// A missing or malformed file (naming file and line), or a folder with no labels.
pub fn evaluate_run(run: &Path, cfg: &EvaluateConfig) -> Result<Summary, MetricsError> {
    let mut refs = Vec::new();
    for path in files_with(&run.join("labels"), "jsonl")? {
        let (meta, labels) = read_jsonl::<Label>(&path, Kind::Labels)?;
        let signal = labels.first().map(|l| l.signal).unwrap_or(Signal::Q);
        let _ = meta;
        refs.push(Reference {
            name: stem(&path),
            signal,
            ids: labels.iter().map(|l| l.point_id.clone()).collect(),
            values: labels.iter().map(|l| l.value).collect(),
            aborted: labels.iter().filter(|l| l.aborted.is_some()).count(),
            labels: Some(labels),
        });
    }
    for path in files_with(&run.join("labels"), "json")? {
        let (values, signal) = read_values_json(&path)?;
        let aborted = values.iter().filter(|v| v.is_nan()).count();
        refs.push(Reference {
            name: stem(&path),
            signal,
            ids: Vec::new(),
            values,
            labels: None,
            aborted,
        });
    }
    if refs.is_empty() {
        return Err(MetricsError::Format {
            path: run.join("labels"),
            message: "no label files (`labels/*.jsonl` from qval, or `labels/*.json` with `values`)".into(),
        });
    }
    let mut methods = Vec::new();
    for path in files_with(&run.join("predictions"), "jsonl")? {
        let (meta, preds) = read_jsonl::<Prediction>(&path, Kind::Predictions)?;
        let signal = serde_json::from_value::<Signal>(meta.params["signal"].clone()).unwrap_or(Signal::Q);
        methods.push(Method {
            name: meta.producer.clone(),
            signal,
            values: Vec::new(),
            records: Some(preds),
        });
    }
    for path in files_with(&run.join("predictions"), "json")? {
        let (values, signal) = read_values_json(&path)?;
        methods.push(Method {
            name: stem(&path),
            signal,
            values,
            records: None,
        });
    }
    let mut estimations = BTreeMap::new();
    for r in &refs {
        let mut est = Estimation {
            signal: r.signal,
            point_ids: r.ids.clone(),
            values: r.values.iter().map(|v| opt(*v)).collect(),
            aborted: r.aborted,
            methods: BTreeMap::new(),
        };
        for m in methods.iter().filter(|m| m.signal == r.signal) {
            let result = match (&r.labels, &m.records) {
                (Some(labels), Some(preds)) => {
                    let a = align(labels, preds);
                    evaluate_method(m.signal, &a.labels, &a.predictions, a.missing, cfg)?
                }
                _ => {
                    let mut c = cfg.clone();
                    c.correlation.lengths = LengthPolicy::TruncateToShorter;
                    let values: Vec<f64> = match &m.records {
                        Some(p) => p.iter().map(|p| p.value).collect(),
                        None => m.values.clone(),
                    };
                    evaluate_method(m.signal, &r.values, &values, 0, &c)?
                }
            };
            est.methods.insert(m.name.clone(), result);
        }
        estimations.insert(r.name.clone(), est);
    }
    let experiment = serde_json::json!({
        "qval_version": env!("CARGO_PKG_VERSION"),
        "source": run.display().to_string(),
        "config": cfg,
        "labels": refs.iter().map(|r| &r.name).collect::<Vec<_>>(),
        "predictions": methods.iter().map(|m| &m.name).collect::<Vec<_>>(),
    });
    Ok(Summary {
        experiment,
        estimations,
    })
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "NaN".into(),
    }
}

fn fmt_p(v: Option<f64>) -> String {
    match v {
        Some(x) if x < 1e-3 => format!("{x:.1e}"),
        Some(x) => format!("{x:.3}"),
        None => "NaN".into(),
    }
}

impl Summary {
    /// The Markdown report: per reference, a table of method, signal, n, rho [95% CI], p,
    /// tau, r, pairwise accuracy; notes below.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for (name, est) in &self.estimations {
            out.push_str(&format!(
                "### Reference `{name}` ({} labels, signal {}, {} aborted)\n\n",
                est.values.len(),
                est.signal,
                est.aborted
            ));
            out.push_str("| method | signal | n | rho [95% CI] | p | tau | r | pairwise acc. |\n");
            out.push_str("|---|---|---:|---|---:|---:|---:|---:|\n");
            let mut notes = Vec::new();
            for (m, e) in &est.methods {
                let s = &e.correlations.spearman;
                let ci = match s.ci95 {
                    Some([a, b]) => format!(" [{}, {}]", fmt(a, 3), fmt(b, 3)),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "| {m} | {} | {} | {}{ci} | {} | {} | {} | {} |\n",
                    e.signal,
                    s.num_points,
                    fmt(s.correlation, 3),
                    fmt_p(s.p_value),
                    fmt(e.correlations.kendall_tau.correlation, 3),
                    fmt(e.correlations.pearson.correlation, 3),
                    fmt(e.pairwise_accuracy.as_ref().and_then(|p| p.value), 3),
                ));
                if let Some(n) = &s.note {
                    notes.push(format!("- `{m}`: {n}"));
                }
                if e.failed > 0 || e.missing > 0 {
                    notes.push(format!(
                        "- `{m}`: {} failed (NaN) and {} missing predictions",
                        e.failed, e.missing
                    ));
                }
            }
            if est.methods.is_empty() {
                out.push_str("| (no method estimates this signal) | | | | | | | |\n");
            }
            if !notes.is_empty() {
                out.push('\n');
                out.push_str(&notes.join("\n"));
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// Writes `<stem>.json`, `<stem>.md` and plots (`<stem>_plots/*.svg` and `.png`) into
    /// `dir`; returns the files written. Plots that cannot be drawn are reported in the
    /// returned list of warnings, never fatal.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(Vec<PathBuf>, Vec<String>), MetricsError> {
        let mut written = Vec::new();
        let json = serde_json::to_string_pretty(self).map_err(|e| MetricsError::Format {
            path: dir.join(stem),
            message: e.to_string(),
        })?;
        let p = dir.join(format!("{stem}.json"));
        qval_core::io::write_atomic(&p, (json + "\n").as_bytes())?;
        written.push(p);
        let p = dir.join(format!("{stem}.md"));
        qval_core::io::write_atomic(&p, self.markdown().as_bytes())?;
        written.push(p);
        let (plots, warnings) = crate::plots::write_plots(self, &dir.join(format!("{stem}_plots")))?;
        written.extend(plots);
        Ok((written, warnings))
    }
}

/// A figure where qval and a stored summary disagree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// `reference / method / statistic / field`.
    pub what: String,
    /// The stored value.
    pub stored: Value,
    /// qval's value.
    pub recomputed: Value,
}

/// Reads a published testbed `summary_*.json`, recomputes every figure from its stored
/// values under the published rules (prefix truncation, `cfg`'s minimum of pairs), and
/// returns qval's summary with the differences from the stored figures (statistics and
/// p-values compared to 1e-9 relative, counts exactly).
///
/// # Errors
/// The file cannot be read, is not JSON, or lacks `estimations` / values (the message
/// names the JSON path).
pub fn recompute_published(path: &Path, cfg: &EvaluateConfig) -> Result<(Summary, Vec<Difference>), MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err("reading", path, e))?;
    let fmt_err = |message: String| MetricsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let root: Value = serde_json::from_str(&text).map_err(|e| fmt_err(format!("line {}: {e}", e.line())))?;
    let ests = root
        .get("estimations")
        .and_then(|e| e.as_object())
        .ok_or_else(|| fmt_err("no `estimations` object".into()))?;
    let mut cfg = cfg.clone();
    cfg.correlation.lengths = LengthPolicy::TruncateToShorter;
    let mut estimations = BTreeMap::new();
    let mut diffs = Vec::new();
    for (rname, r) in ests {
        let labels = values_of(r, &["values", "reference_values", "labels"])
            .map_err(|m| fmt_err(format!("estimations.{rname}: {m}")))?;
        let signal = signal_of(r);
        let methods = r
            .get("methods")
            .and_then(|m| m.as_object())
            .ok_or_else(|| fmt_err(format!("estimations.{rname}: no `methods` object")))?;
        let mut est = Estimation {
            signal,
            point_ids: Vec::new(),
            values: labels.iter().map(|v| opt(*v)).collect(),
            aborted: labels.iter().filter(|v| v.is_nan()).count(),
            methods: BTreeMap::new(),
        };
        for (mname, m) in methods {
            let preds = values_of(m, &["values", "predictions"])
                .map_err(|e| fmt_err(format!("estimations.{rname}.methods.{mname}: {e}")))?;
            let ours = evaluate_method(signal_of(m), &labels, &preds, 0, &cfg)?;
            if let Some(stored) = m.get("correlations") {
                for (key, fig) in [
                    ("pearson", &ours.correlations.pearson),
                    ("spearman", &ours.correlations.spearman),
                    ("kendall_tau", &ours.correlations.kendall_tau),
                ] {
                    let Some(s) = stored.get(key) else { continue };
                    for (field, mine) in [("correlation", fig.correlation), ("p_value", fig.p_value)] {
                        let theirs = s.get(field).map(|v| v.as_f64());
                        let Some(theirs) = theirs else { continue };
                        let same = match (theirs, mine) {
                            (None, None) => true,
                            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300),
                            _ => false,
                        };
                        if !same {
                            diffs.push(Difference {
                                what: format!("{rname} / {mname} / {key} / {field}"),
                                stored: s[field].clone(),
                                recomputed: mine.map(Value::from).unwrap_or(Value::Null),
                            });
                        }
                    }
                    if let Some(n) = s.get("num_points").and_then(|v| v.as_u64())
                        && n as usize != fig.num_points
                    {
                        diffs.push(Difference {
                            what: format!("{rname} / {mname} / {key} / num_points"),
                            stored: Value::from(n),
                            recomputed: Value::from(fig.num_points),
                        });
                    }
                }
            }
            est.methods.insert(mname.clone(), ours);
        }
        estimations.insert(rname.clone(), est);
    }
    let experiment = serde_json::json!({
        "qval_version": env!("CARGO_PKG_VERSION"),
        "source": path.display().to_string(),
        "recomputed_from": "published summary",
        "config": cfg,
        "stored_experiment": root.get("experiment").or_else(|| root.get("experiment_info")).cloned().unwrap_or(Value::Null),
    });
    Ok((
        Summary {
            experiment,
            estimations,
        },
        diffs,
    ))
}

/// The reference values and predictions of one method in a summary, as numbers (NaN for
/// null), to recompute any figure.
pub fn values_of_method(summary: &Summary, reference: &str, method: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let e = summary.estimations.get(reference)?;
    let m = e.methods.get(method)?;
    Some((
        e.values.iter().map(|v| unopt(*v)).collect(),
        m.values.iter().map(|v| unopt(*v)).collect(),
    ))
}
